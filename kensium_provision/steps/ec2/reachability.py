"""Who can reach what in the POS estate, judged as data from the described security groups and routes.

Pure functions, no AWS call: the caller describes the groups (DescribeSecurityGroups), the route tables
(DescribeRouteTables) and the two ends (an instance's or DB instance's groups, subnet, addresses), and
`judge` says what AWS would let through, as the VPC Reachability Analyzer reasons about it: a path
needs an inbound rule on one of the target's groups (a CIDR holding the source's address, or a group
the source is a member of: security group members cannot reach each other without such a rule), an
outbound rule on one of the source's groups, and, from the internet, a public address on a subnet
routed to an internet gateway. Security groups are stateful, so replies need no rule.
https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-group-rules.html
https://docs.aws.amazon.com/vpc/latest/reachability/what-is-reachability-analyzer.html

The rules' one flat form (`Rule`) is also what `ec2.group-rules` compares a group with.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["WORLD", "Endpoint", "Estate", "Rule", "egress_rules", "ingress_rules", "judge", "world_ports"]

WORLD = "0.0.0.0/0"
_WORLD_PREFIX = 8


@dataclass(frozen=True, slots=True, order=True)
class Rule:
    """One permission of a security group: protocol ("tcp", "-1" for all), ports, and one source (a CIDR
    or a security group id), with its description."""

    protocol: str
    from_port: int
    to_port: int
    source: str
    description: str = ""

    def covers(self, port: int, protocol: str = "tcp") -> bool:
        if self.protocol == "-1":
            return True  # all traffic: AWS reports no ports for it
        return self.protocol == protocol and self.from_port <= port <= self.to_port

    @property
    def from_group(self) -> bool:
        return self.source.startswith("sg-")

    def admits(self, address: str, groups: Iterable[str]) -> bool:
        """Whether traffic from `address` (a member of `groups`) matches this rule's source."""
        if self.from_group:
            return self.source in set(groups)
        if self.source.startswith("pl-"):
            return False  # a managed prefix list's entries are not described here: never counted as open
        return ipaddress.ip_address(address) in ipaddress.ip_network(self.source, strict=False)

    def shown(self) -> str:
        ports = "all traffic" if self.protocol == "-1" else (
            f"{self.protocol} {self.from_port}" + (f"-{self.to_port}" if self.to_port != self.from_port else ""))
        return f"{ports} from {self.source}"


_SOURCES = (("IpRanges", "CidrIp"), ("UserIdGroupPairs", "GroupId"), ("Ipv6Ranges", "CidrIpv6"),
            ("PrefixListIds", "PrefixListId"))


def _rules(permissions: object) -> tuple[Rule, ...]:
    found: list[Rule] = []
    for perm in permissions if isinstance(permissions, list) else ():
        protocol = str(perm.get("IpProtocol", ""))
        low, high = int(perm.get("FromPort", 0) or 0), int(perm.get("ToPort", 65535) or 0)
        if protocol == "-1":
            low, high = 0, 65535
        for key, id_key in _SOURCES:
            found.extend(Rule(protocol, low, high, str(item[id_key]), str(item.get("Description") or ""))
                         for item in perm.get(key) or ())
    return tuple(sorted(found))


def ingress_rules(group: Mapping[str, Any]) -> tuple[Rule, ...]:
    """The inbound rules of a DescribeSecurityGroups item, one per source."""
    return _rules(group.get("IpPermissions"))


def egress_rules(group: Mapping[str, Any]) -> tuple[Rule, ...]:
    """The outbound rules of a DescribeSecurityGroups item, one per destination."""
    return _rules(group.get("IpPermissionsEgress"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One end of a path: a POS host or an RDS instance, as AWS describes it."""

    name: str
    group_ids: tuple[str, ...]
    subnet_id: str
    private_ip: str
    public_ip: str = ""  # the Elastic IP (host), or a publicly accessible DB instance's address


@dataclass(frozen=True, slots=True, kw_only=True)
class Estate:
    """What the judgement needs: every group by id, and each subnet's routes (destination -> target)."""

    groups: Mapping[str, Mapping[str, Any]]
    routes: Mapping[str, Mapping[str, str]]  # subnet id -> {"0.0.0.0/0": "igw-...", "10.0.0.0/16": "local"}

    @classmethod
    def from_described(cls, groups: Sequence[Mapping[str, Any]], route_tables: Sequence[Mapping[str, Any]]) -> Estate:
        """From DescribeSecurityGroups' and DescribeRouteTables' items (explicit subnet associations)."""
        routes: dict[str, dict[str, str]] = {}
        for table in route_tables:
            targets = {str(r.get("DestinationCidrBlock")): str(r.get("GatewayId") or r.get("NatGatewayId") or "")
                       for r in table.get("Routes") or () if r.get("DestinationCidrBlock")
                       and r.get("State", "active") == "active"}
            for association in table.get("Associations") or ():
                if association.get("SubnetId"):
                    routes[str(association["SubnetId"])] = targets
        return cls(groups={str(g["GroupId"]): g for g in groups}, routes=routes)

    def _rules(self, endpoint: Endpoint, inbound: bool) -> list[Rule]:
        pick = ingress_rules if inbound else egress_rules
        return [r for g in endpoint.group_ids for r in pick(self.groups.get(g, {}))]

    def from_internet(self, target: Endpoint) -> bool:
        """A public address on a subnet whose default route is an internet gateway."""
        return bool(target.public_ip) and self.routes.get(target.subnet_id, {}).get(WORLD, "").startswith("igw-")

    def admits(self, target: Endpoint, port: int, address: str, groups: Iterable[str] = ()) -> bool:
        members = tuple(groups)
        return any(r.covers(port) and r.admits(address, members) for r in self._rules(target, inbound=True))

    def internal(self, source: Endpoint, target: Endpoint, port: int) -> bool:
        """Source to target inside the VPC (the local route): source's egress and target's ingress."""
        out = any(r.covers(port) and r.admits(target.private_ip, target.group_ids)
                  for r in self._rules(source, inbound=False))
        return out and self.admits(target, port, source.private_ip, source.group_ids)

    def external(self, address: str, target: Endpoint, port: int) -> bool:
        """An internet address to the target's public address."""
        return self.from_internet(target) and self.admits(target, port, address)


def world_ports(estate: Estate, target: Endpoint) -> tuple[Rule, ...]:
    """The inbound rules through which anyone on the internet reaches `target`: a source of /8 or wider
    (0.0.0.0/0 and its halves and quarters are the world; an operator's /32 or an office's /24 are not)."""
    if not estate.from_internet(target):
        return ()
    return tuple(r for r in estate._rules(target, inbound=True) if not r.from_group and not r.source.startswith("pl-")
                 and ipaddress.ip_network(r.source, strict=False).prefixlen <= _WORLD_PREFIX)


# Any public address stands for "the world" (it is in no operator's /32); TEST-NET-3 is never anyone's.
_SOMEONE = "203.0.113.250"


def judge(estate: Estate, *, host: Endpoint, database: Endpoint, operator_cidrs: Sequence[str],
          sql_port: int = 1433, rdp_port: int = 3389, https_port: int = 443) -> list[str]:
    """What is wrong with the estate's reachability; [] when it is as POS needs and nothing more:
    the host reaches the database on SQL Server's port, every operator reaches the host by RDP (and the
    database's SQL Server), the world reaches the host on HTTPS and nothing else, and the database not
    at all."""
    problems: list[str] = []
    if not estate.internal(host, database, sql_port):
        problems.append(f"{host.name} cannot reach {database.name} on TCP {sql_port}")
    for cidr in operator_cidrs:
        address = str(ipaddress.ip_network(cidr, strict=False).network_address)
        if not estate.external(address, host, rdp_port):
            problems.append(f"operator {cidr} cannot reach {host.name} by RDP (TCP {rdp_port})")
        if not estate.external(address, database, sql_port):
            problems.append(f"operator {cidr} cannot reach {database.name} on TCP {sql_port}")
    if not estate.external(_SOMEONE, host, https_port):
        problems.append(f"the internet cannot reach {host.name} on HTTPS (TCP {https_port})")
    for target, allowed in ((host, {("tcp", https_port, https_port)}), (database, set())):
        wider = [r for r in world_ports(estate, target) if (r.protocol, r.from_port, r.to_port) not in allowed]
        problems += [f"the internet reaches {target.name}: {r.shown()}" for r in wider]
    return problems
