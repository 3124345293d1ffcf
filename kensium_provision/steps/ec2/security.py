"""EC2 security step types: SG-POS-OPS, an operator's public address, and the operator's inbound rule.

Values the sandbox (moto) accepts but AWS rejects are refused before any call: security group names
starting with `sg-`, text outside EC2's character set, private or reserved operator addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import InputError
from kensium_provision.steps.aws_helpers import (
    aws_id,
    creating,
    in_sandbox,
    param_error,
    refuse_unfixable,
    step_call,
    tag_spec,
    tags_of,
    text_param,
    with_defaults,
)
from kensium_provision.steps.base import Created, Difference, Param, Probe, StepContext, UndoCheck, record_created
from kensium_provision.steps.ec2.reachability import Rule, ingress_rules

__all__ = ["STEP_TYPES", "Ec2GroupRules", "Ec2IngressRule", "Ec2OperatorIp", "Ec2SecurityGroup", "operator_cidr"]

# EC2 security group names and descriptions (VPC groups): ASCII letters, digits, space and these.
_SG_TEXT = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+$")
_DOCUMENTATION_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
_SHARED_NET = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


def operator_cidr(value: object, *, sandbox: bool) -> str:
    """The /32 CIDR of an operator's public IPv4 address, or `InputError` saying why it cannot be one.

    Private, loopback, link-local, carrier-grade-NAT, multicast and reserved addresses are refused
    everywhere (a rule for one of them opens SQL Server to nobody, or to the wrong people).
    Documentation addresses (203.0.113.0/24 and friends) are refused on AWS and allowed in the sandbox,
    where examples use them.
    """
    if not isinstance(value, str) or value != value.strip() or not value:
        raise InputError(f"{value!r} is not an IPv4 address (write it like 203.0.113.10)")
    try:
        network = ipaddress.ip_network(value if "/" in value else f"{value}/32", strict=True)
    except ValueError:
        raise InputError(f"{value!r} is not an IPv4 address (write it like 203.0.113.10)") from None
    if network.version != 4:
        raise InputError(f"{value!r} is IPv6; SG-POS-OPS rules are for IPv4 addresses")
    if network.prefixlen != 32:
        raise InputError(f"{value!r} is a range of {network.num_addresses} addresses; give your one address "
                         "(/32): a range would open SQL Server to others")
    address = network.network_address
    hint = "give the address the internet sees for you, e.g. from https://checkip.amazonaws.com"
    if any(address in n for n in _DOCUMENTATION_NETS):
        if sandbox:
            return str(network)
        raise InputError(f"{address} is a documentation address (RFC 5737), not a real one", hint=hint)
    reasons = [(address.is_loopback, "a loopback address"), (address.is_link_local, "a link-local address"),
               (address.is_multicast, "a multicast address"), (address.is_unspecified, "the unspecified address"),
               (address in _SHARED_NET, "a carrier-grade NAT address (your provider's, not your public one)"),
               (address.is_private, "a private address (RFC 1918)"), (address.is_reserved, "a reserved address"),
               (not address.is_global, "not a public address")]
    for hit, reason in reasons:
        if hit:
            raise InputError(f"{address} is {reason}; the rule needs your public IPv4 address", hint=hint)
    return str(network)


# --- undo: the groups and rules a run created (issue 17.5) ------------------------------------------------


def rule_keys(group_id: str, permission: Mapping[str, Any]) -> list[str]:
    """`sg-1 tcp 3389-3389 203.0.113.7/32`: one key per source of an IpPermissions entry (descriptions aside)."""
    ports = f"{permission.get('FromPort', -1)}-{permission.get('ToPort', -1)}"
    head = f"{group_id} {permission.get('IpProtocol')} {ports}"
    sources = [*(r["CidrIp"] for r in permission.get("IpRanges") or ()),
               *(r["CidrIpv6"] for r in permission.get("Ipv6Ranges") or ()),
               *(r["GroupId"] for r in permission.get("UserIdGroupPairs") or ()),
               *(r["PrefixListId"] for r in permission.get("PrefixListIds") or ())]
    return [f"{head} {source}" for source in sources]


def record_rules(ctx: StepContext, group_id: str, permissions: Sequence[Mapping[str, Any]]) -> None:
    """Journal each ingress rule an act has just added (`record_created`), with what revokes it."""
    import json

    for permission in permissions:
        for key in rule_keys(group_id, permission):
            record_created(ctx, "ingress rule", key, group=group_id, permission=json.dumps(permission, sort_keys=True))


def _group(ctx: StepContext, group_id: str) -> dict[str, Any] | None:
    found = step_call(ctx, "ec2", "DescribeSecurityGroups", missing=("InvalidGroup.NotFound",), GroupIds=[group_id])
    groups = (found or {}).get("SecurityGroups") or []
    return dict(groups[0]) if groups else None


def _group_keys(group: Mapping[str, Any]) -> list[str]:
    return [k for p in group.get("IpPermissions") or () for k in rule_keys(str(group["GroupId"]), p)]


def _as_shown(group: Mapping[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """The IpPermissions entries, one source each, of `group`'s rules whose key (`rule_keys`) is `key`."""
    found: list[dict[str, Any]] = []
    for permission in (group or {}).get("IpPermissions") or ():
        head = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in permission}
        for kind in ("IpRanges", "Ipv6Ranges", "UserIdGroupPairs", "PrefixListIds"):
            for source in permission.get(kind) or ():
                one = {**head, kind: [source]}
                if key in rule_keys(str((group or {}).get("GroupId")), one):
                    found.append(one)
    return found


class SecurityUndo:
    """The undo of the security step types: a group the run created (refused when it has rules, users or
    referrers the undone runs did not make) and the ingress rules it added (revoked; rules it revoked are not
    put back)."""

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        from kensium_provision.steps.ec2.network import undone_ids

        ids = undone_ids(ctx)
        present: list[Created] = []
        changed: list[str] = []
        for made in created:
            if made.kind == "ingress rule":
                group = _group(ctx, made.details.get("group", ""))
                if group is not None and made.id in _group_keys(group):
                    present.append(made)
                continue
            group = _group(ctx, made.id)
            if group is None:
                continue
            present.append(made)
            rules = sorted(k for k in _group_keys(group) if k not in ids)
            users = step_call(ctx, "ec2", "DescribeNetworkInterfaces",
                              Filters=[{"Name": "group-id", "Values": [made.id]}])["NetworkInterfaces"]
            referrers = step_call(ctx, "ec2", "DescribeSecurityGroups",
                                  Filters=[{"Name": "ip-permission.group-id", "Values": [made.id]}])["SecurityGroups"]
            for what, found in (("rules", rules), ("network interfaces", [n["NetworkInterfaceId"] for n in users]),
                                ("rules in other groups naming it",
                                 [g["GroupId"] for g in referrers if g["GroupId"] not in ids])):
                if found:
                    changed.append(f"security group {made.id} has {what} the run did not make: {', '.join(found)}")
        return UndoCheck(present=tuple(present), changed=tuple(changed))

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        for made in reversed(created):
            ctx.progress(f"deleting {made.kind} {made.id}")
            if made.kind == "ingress rule":  # revoked as the group shows it now (its source exactly so)
                group_id = made.details.get("group", "")
                for permission in _as_shown(_group(ctx, group_id), made.id):
                    step_call(ctx, "ec2", "RevokeSecurityGroupIngress", resource=group_id, GroupId=group_id,
                              IpPermissions=[permission])
            else:
                step_call(ctx, "ec2", "DeleteSecurityGroup", resource=made.id, GroupId=made.id)


# --- ec2.security-group ----------------------------------------------------------------------------


# Under this key an act returns what AWS's answers to its own writes show (`steps.base.VerifiesAct`).
_SEEN = "seen"


def _seen(acted: Mapping[str, object]) -> Any:
    return acted.get(_SEEN)


def _sg_text(ctx: StepContext, value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or not _SG_TEXT.fullmatch(value):
        raise param_error(ctx, f"{what} {value!r}: 1 to 255 of ASCII letters, digits, spaces and "
                               "._-:/()#,@[]+=&;{}!$*")
    return value


class Ec2SecurityGroup(SecurityUndo):
    """A POS security group in the VPC: SG-POS-OPS, SG-POS-HOST or SG-POS-DB (names compared ignoring
    case, as AWS does). Its rules are `ec2.group-rules`' and `ec2.ingress-rule`'s business.

    Params: `name` (rule security-group), `vpc_id`, `description` (fixed at creation:
    AWS cannot change it, so a different one is reported). Outputs: `group_id`, `vpc_id`.

    Example: `params: {name: SG-POS-OPS, vpc_id: '{{ vpc_id }}', description: Operator access to SQL
    Server}`, `outputs: {group_id: group_id}`.
    """

    name: ClassVar[str] = "ec2.security-group"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "A POS security group (SG-POS-OPS, SG-POS-HOST, SG-POS-DB) in a VPC, found by name."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="security-group", doc="The group name: SG-POS-OPS, SG-POS-HOST or SG-POS-DB."),
        Param(name="vpc_id", doc="The VPC."),
        Param(name="description", doc="What the group is for (cannot be changed later)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("group_id", "vpc_id")

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Its group, by name in the VPC (`steps.base.Touches`); its rules are other steps'."""
        return frozenset({f"security-group:{params.get('vpc_id')}:{params.get('name')}"})
    _FIXABLE: ClassVar[set[str]] = {"tag Name"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        name = _sg_text(ctx, p["name"], "security group name")
        if name.startswith("sg-"):  # moto accepts it; AWS: "Can't start with sg-"
            raise param_error(ctx, f"security group name {name!r} cannot start with sg- (AWS reserves it for ids)")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        _sg_text(ctx, p["description"], "description")
        return p

    def _find(self, ctx: StepContext, p: Mapping[str, Any]) -> dict[str, Any] | None:
        groups = step_call(ctx, "ec2", "DescribeSecurityGroups",
                          Filters=[{"Name": "vpc-id", "Values": [p["vpc_id"]]}])["SecurityGroups"]
        # AWS: names are unique in a VPC ignoring case, so sg-pos-ops would block SG-POS-OPS.
        same = [g for g in groups if g["GroupName"].lower() == p["name"].lower()]
        return same[0] if same else None

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        group = self._find(ctx, p)
        if group is None:
            return {}, []
        current = {"group_id": group["GroupId"], "GroupName": group["GroupName"], "Description": group["Description"],
                   "tag Name": tags_of(group.get("Tags")).get("Name")}
        return current, self._compare(current, p)

    @staticmethod
    def _compare(current: Mapping[str, Any], p: Mapping[str, Any]) -> list[Difference]:
        wanted = {"GroupName": p["name"], "Description": p["description"], "tag Name": p["name"]}
        return [Difference(k, current.get(k), v) for k, v in wanted.items() if current.get(k) != v]

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        desired = {"GroupName": p["name"], "Description": p["description"]}
        if not current:
            return Probe(done=False, note=f"no {p['name']} in {p['vpc_id']}: will create it", desired=desired)
        return Probe(done=not differences, note=f"{current['group_id']} ({current['GroupName']})", current=current,
                     desired=desired, differences=tuple(differences),
                     outputs={"group_id": current["group_id"], "vpc_id": p["vpc_id"]})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        refuse_unfixable(ctx, f"security group {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            group_id = str(probe.current["group_id"])
            step_call(ctx, "ec2", "CreateTags", resource=group_id, Resources=[group_id],
                     Tags=[{"Key": "Name", "Value": p["name"]}])
            seen: dict[str, Any] | None = {**probe.current, "tag Name": p["name"]}
        else:
            found: list[str] = []

            def find() -> str | None:
                group = self._find(ctx, p)
                if group:
                    found.append(group["GroupId"])
                return group["GroupId"] if group else None

            group_id = creating(ctx, "ec2", "CreateSecurityGroup", find=find, resource=p["name"],
                                make=lambda client: client.create_security_group(
                                    GroupName=p["name"], Description=p["description"], VpcId=p["vpc_id"],
                                    TagSpecifications=tag_spec("security-group", {"Name": p["name"]}))["GroupId"])
            record_created(ctx, "security group", group_id, name=p["name"])
            # CreateSecurityGroup answers only the id; its success says the group is as sent. A group found
            # after a lost answer may be another's: `verify` reads that one.
            seen = None if found else {"group_id": group_id, "GroupName": p["name"],
                                       "Description": p["description"], "tag Name": p["name"]}
        return {"group_id": group_id, "vpc_id": p["vpc_id"], _SEEN: seen}

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: the group CreateSecurityGroup (or CreateTags) just made as sent, no read."""
        seen = _seen(acted)
        return None if not isinstance(seen, Mapping) else self._compare(seen, self._args(ctx, params))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("security group", None, p["name"])]


# --- ec2.operator-ip and ec2.ingress-rule ----------------------------------------------------------


class Ec2OperatorIp:
    """Check the operator's public IPv4 address before anything is created; gives its /32 CIDR.

    No AWS call. Refuses private, loopback, link-local, carrier-grade-NAT, multicast and reserved
    addresses, and ranges wider than one address; documentation addresses (203.0.113.0/24) only in
    the sandbox. kprov never guesses the address: the operator gives it. Params: `ip`. Outputs: `cidr`.

    Example: `params: {ip: '{{ operator_ip }}'}`, `outputs: {operator_cidr: cidr}`.
    """

    name: ClassVar[str] = "ec2.operator-ip"
    summary: ClassVar[str] = "Check an operator's public IPv4 address (no AWS call) and give its /32 CIDR."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="ip", kind="ipv4", doc="The operator's public IPv4 address, e.g. 203.0.113.10."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("cidr",)

    def _cidr(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        try:
            return operator_cidr(params.get("ip"), sandbox=in_sandbox(ctx))
        except InputError as exc:
            raise param_error(ctx, str(exc), exc.hint) from None

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        cidr = self._cidr(ctx, params)
        return Probe(done=True, note=f"{cidr} is a public address", current={"cidr": cidr}, outputs={"cidr": cidr})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        return {"cidr": self._cidr(ctx, params)}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        self._cidr(ctx, params)
        return ()


class Ec2IngressRule(SecurityUndo):
    """An operator's inbound rule in a security group: their IP on one TCP port, described by their name.

    The description (the operator's name) identifies the rule: when it is found with another address,
    the operator's IP has changed and the rule is moved (the new address is allowed first, then the old
    one revoked, so access never lapses). An address already allowed with an empty description gets the
    operator's name; one allowed under another operator's name (a shared office address) counts as done.
    Params: `group_id`, `port` (1433, SQL Server), `cidr` (the operator's public IPv4 address or /32),
    `description` (rule sg-rule-description). Outputs: `cidr`.

    Example: `params: {group_id: '{{ group_id }}', port: 1433, cidr: '{{ operator_cidr }}', description:
    '{{ operator_name }}'}`.
    """

    name: ClassVar[str] = "ec2.ingress-rule"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "An operator's IP rule on a TCP port of a security group, found by its description."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="group_id", doc="The security group (SG-POS-OPS)."),
        Param(name="port", kind="int", required=False, default=1433, doc="TCP port (1433: SQL Server)."),
        Param(name="cidr", doc="The operator's public IPv4 address (or its /32)."),
        Param(name="description", rule="sg-rule-description", doc="The operator's name: identifies the rule."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("cidr",)

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """The inbound rules of its group (`steps.base.Touches`): two rule steps of one group run in turn."""
        return frozenset({f"security-group-rules:{params.get('group_id')}"})
    _FIXABLE: ClassVar[set[str]] = {"CidrIp", "Description", "old addresses"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        aws_id(ctx, p["group_id"], "sg", "group_id")
        if not isinstance(p["port"], int) or isinstance(p["port"], bool) or not 1 <= p["port"] <= 65535:
            raise param_error(ctx, f"port {p['port']!r} must be a whole number from 1 to 65535")
        try:
            p["cidr"] = operator_cidr(p["cidr"], sandbox=in_sandbox(ctx))
        except InputError as exc:
            raise param_error(ctx, str(exc), exc.hint) from None
        text_param(ctx, p, "description")
        return p

    def _ranges(self, ctx: StepContext, p: Mapping[str, Any]) -> list[tuple[str, str]]:
        groups = step_call(ctx, "ec2", "DescribeSecurityGroups", resource=p["group_id"],
                          GroupIds=[p["group_id"]])["SecurityGroups"]
        ranges: list[tuple[str, str]] = []
        for perm in groups[0].get("IpPermissions") or () if groups else ():
            if perm.get("IpProtocol") == "tcp" and perm.get("FromPort") == p["port"] == perm.get("ToPort"):
                ranges += [(r["CidrIp"], r.get("Description") or "") for r in perm.get("IpRanges") or ()]
        return ranges

    def _state(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[bool, dict[str, Any], list[Difference], str]:
        """(done, current rules, differences, note) for the operator's rule."""
        return self._judge(self._ranges(ctx, p), p)

    @staticmethod
    def _judge(ranges: Sequence[tuple[str, str]],
               p: Mapping[str, Any]) -> tuple[bool, dict[str, Any], list[Difference], str]:
        mine = sorted(c for c, d in ranges if d == p["description"])
        holders = sorted(d for c, d in ranges if c == p["cidr"])
        current: dict[str, Any] = {"rules": [f"{c} ({d or 'no description'})" for c, d in ranges]} if ranges else {}
        if p["cidr"] in mine:
            old = [c for c in mine if c != p["cidr"]]
            if old:
                return False, current, [Difference("old addresses", old, [])], f"will revoke {', '.join(old)}"
            return True, current, [], f"{p['cidr']} is allowed for {p['description']}"
        if mine:
            shown: object = mine[0] if len(mine) == 1 else mine
            return False, current, [Difference("CidrIp", shown, p["cidr"])], \
                f"{p['description']}'s address changed: will allow {p['cidr']}, then revoke {', '.join(mine)}"
        if "" in holders:
            return False, current, [Difference("Description", "", p["description"])], \
                f"{p['cidr']} is allowed without a description: will name it {p['description']}"
        if holders:
            return True, current, [], f"{p['cidr']} is already allowed by {holders[0]}'s rule (a shared address)"
        return False, {}, [], f"will allow {p['cidr']} on TCP {p['port']} for {p['description']}"

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        done, current, differences, note = self._state(ctx, p)
        desired = {"rule": f"{p['cidr']} on TCP {p['port']} ({p['description']})"}
        return Probe(done=done, note=note, current=current, desired=desired, differences=tuple(differences),
                     outputs={"cidr": p["cidr"]} if current else {})

    def _permission(self, p: Mapping[str, Any], cidr: str, description: str | None) -> list[dict[str, Any]]:
        ip_range = {"CidrIp": cidr, **({"Description": description} if description is not None else {})}
        return [{"IpProtocol": "tcp", "FromPort": p["port"], "ToPort": p["port"], "IpRanges": [ip_range]}]

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        ranges = self._ranges(ctx, p)
        present = dict(ranges)
        if p["cidr"] not in present:
            def find() -> bool | None:
                return True if any(c == p["cidr"] for c, _ in self._ranges(ctx, p)) else None

            creating(ctx, "ec2", "AuthorizeSecurityGroupIngress", find=find, resource=p["group_id"],
                     make=lambda client: client.authorize_security_group_ingress(
                         GroupId=p["group_id"], IpPermissions=self._permission(p, p["cidr"], p["description"])))
            record_rules(ctx, p["group_id"], self._permission(p, p["cidr"], p["description"]))
        elif present[p["cidr"]] == "":
            step_call(ctx, "ec2", "UpdateSecurityGroupRuleDescriptionsIngress", resource=p["group_id"],
                     GroupId=p["group_id"], IpPermissions=self._permission(p, p["cidr"], p["description"]))
        # Only now, with the new address allowed, revoke the operator's old ones: access never lapses.
        for cidr, description in ranges:
            if description == p["description"] and cidr != p["cidr"]:
                step_call(ctx, "ec2", "RevokeSecurityGroupIngress", resource=p["group_id"], GroupId=p["group_id"],
                         IpPermissions=self._permission(p, cidr, None))
        # The port's rules as AWS's answers to these writes leave them (the act's read, then its changes).
        kept = [(c, d) for c, d in ranges if d != p["description"] or c == p["cidr"]]
        after = [(c, p["description"] if c == p["cidr"] and not d else d) for c, d in kept]
        if p["cidr"] not in present:
            after.append((p["cidr"], p["description"]))
        return {"cidr": p["cidr"], _SEEN: after}

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: the rules it read, with what AWS just accepted, no read."""
        seen, p = _seen(acted), self._args(ctx, params)
        return self._verdict(p, self._judge(seen, p)) if isinstance(seen, list) else None

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        return self._verdict(p, self._state(ctx, p))

    @staticmethod
    def _verdict(p: Mapping[str, Any],
                 state: tuple[bool, dict[str, Any], list[Difference], str]) -> Sequence[Difference]:
        done, _, differences, _ = state
        if done:
            return ()
        return differences or [Difference("rule", None, f"{p['cidr']} on TCP {p['port']} ({p['description']})")]


# --- ec2.group-rules -------------------------------------------------------------------------------


def _declared(ctx: StepContext, value: object) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        raise param_error(ctx, f"rules must be a list of {{port, cidr or source_group, description}}, got {value!r}")
    rules: list[Rule] = []
    for item in value:
        if not isinstance(item, dict) or ("cidr" in item) == ("source_group" in item):
            raise param_error(ctx, f"rule {item!r}: give a port and exactly one of cidr or source_group, e.g. "
                                   "{port: 443, cidr: 0.0.0.0/0, description: HTTPS}")
        port, description = item.get("port"), str(item.get("description") or "")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise param_error(ctx, f"rule port {port!r} must be a whole number from 1 to 65535")
        if description:
            _sg_text(ctx, description, "rule description")
        if "source_group" in item:
            source = aws_id(ctx, item["source_group"], "sg", "source_group")
        else:
            try:
                source = str(ipaddress.IPv4Network(str(item["cidr"]), strict=True))
            except ValueError:
                raise param_error(ctx, f"rule cidr {item['cidr']!r} is not an IPv4 network (e.g. 0.0.0.0/0)") from None
        rules.append(Rule("tcp", port, port, source, description))
    return tuple(sorted(rules))


def _key(rule: Rule) -> tuple[str, int, int, str]:
    return rule.protocol, rule.from_port, rule.to_port, rule.source


class Ec2GroupRules(SecurityUndo):
    """A security group's inbound rules are exactly what POS needs: the declared ones, and operators' /32s.

    Every rule of `rules` must be there (a port from a CIDR, or from another group by reference: a
    host reaches its database because the database's group admits the host's group); besides them only
    one-address (/32) rules on `operator_ports` may exist (the operators' own, kept by
    ec2.ingress-rule). Anything else (a wider CIDR, another port, all traffic) is a finding, and apply
    revokes it after adding what is missing. Params: `group_id`, `rules` (list of {port, cidr |
    source_group, description}), `operator_ports` (list of ports). Outputs: `group_id`.

    Example: `params: {group_id: '{{ db_group_id }}', rules: [{port: 1433, source_group: '{{ host_group_id }}',
    description: POS hosts}], operator_ports: [1433]}`.
    """

    name: ClassVar[str] = "ec2.group-rules"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "A security group's inbound rules: the declared ones, operators' /32s, nothing wider."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="group_id", doc="The security group."),
        Param(name="rules", kind="list", required=False, default=None,
              doc="The rules it must have: {port, cidr or source_group, description}."),
        Param(name="operator_ports", kind="list", required=False, default=None,
              doc="Ports on which operators' one-address (/32) rules may exist besides."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("group_id",)

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """The inbound rules of its group (`steps.base.Touches`): two rule steps of one group run in turn."""
        return frozenset({f"security-group-rules:{params.get('group_id')}"})

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, tuple[Rule, ...], frozenset[int]]:
        p = with_defaults(self.params, params)
        group_id = aws_id(ctx, p["group_id"], "sg", "group_id")
        ports = p["operator_ports"] or []
        if not isinstance(ports, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ports):
            raise param_error(ctx, f"operator_ports must be a list of ports, got {ports!r}")
        return group_id, _declared(ctx, p["rules"] or []), frozenset(ports)

    def _state(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[str, list[Rule], list[Rule]]:
        """(group id, declared rules missing, rules present that are wider than allowed)."""
        group_id, _, _ = self._args(ctx, params)
        return group_id, *self._judge(self._read(ctx, group_id), params, ctx)

    @staticmethod
    def _read(ctx: StepContext, group_id: str) -> tuple[Rule, ...]:
        groups = step_call(ctx, "ec2", "DescribeSecurityGroups", resource=group_id,
                           GroupIds=[group_id])["SecurityGroups"]
        return tuple(ingress_rules(groups[0])) if groups else ()

    def _judge(self, present: Sequence[Rule], params: Mapping[str, Any],
               ctx: StepContext) -> tuple[list[Rule], list[Rule]]:
        _, declared, ports = self._args(ctx, params)
        wanted = {_key(r) for r in declared}
        have = {_key(r) for r in present}
        missing = [r for r in declared if _key(r) not in have]
        wider = [r for r in present if _key(r) not in wanted and not (
            r.protocol == "tcp" and r.from_port == r.to_port and r.from_port in ports
            and not r.from_group and r.source.endswith("/32"))]
        return missing, wider

    @staticmethod
    def _differences(missing: Sequence[Rule], wider: Sequence[Rule]) -> list[Difference]:
        return [Difference("missing rule", None, r.shown()) for r in missing] + [
            Difference("rule wider than allowed", r.shown(), None) for r in wider]

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        group_id, missing, wider = self._state(ctx, params)
        differences = self._differences(missing, wider)
        note = "; ".join(map(str, differences)) if differences else f"{group_id}: inbound rules as POS needs"
        return Probe(done=not differences, note=note, differences=tuple(differences),
                     desired={"rules": [r.shown() for r in self._args(ctx, params)[1]]},
                     outputs={"group_id": group_id})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        group_id, _, _ = self._args(ctx, params)
        present = self._read(ctx, group_id)
        missing, wider = self._judge(present, params, ctx)
        if missing:  # first allow what is needed, then take away what is too wide: nothing lapses
            step_call(ctx, "ec2", "AuthorizeSecurityGroupIngress", resource=group_id, GroupId=group_id,
                      IpPermissions=[_permission(r) for r in missing])
            record_rules(ctx, group_id, [_permission(r) for r in missing])
        if wider:
            step_call(ctx, "ec2", "RevokeSecurityGroupIngress", resource=group_id, GroupId=group_id,
                      IpPermissions=[_permission(r) for r in wider])
        # The rules the act's read found, as AWS's answers to these writes leave them.
        return {"group_id": group_id, _SEEN: [*(r for r in present if r not in wider), *missing]}

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: the rules it read, with what AWS just added and revoked, no read."""
        seen = _seen(acted)
        return self._differences(*self._judge(seen, params, ctx)) if isinstance(seen, list) else None

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        _, missing, wider = self._state(ctx, params)
        return self._differences(missing, wider)


def _permission(rule: Rule) -> dict[str, Any]:
    kind, key = (("UserIdGroupPairs", "GroupId") if rule.from_group else ("PrefixListIds", "PrefixListId")
                 if rule.source.startswith("pl-") else ("Ipv6Ranges", "CidrIpv6") if ":" in rule.source
                 else ("IpRanges", "CidrIp"))
    source: dict[str, Any] = {key: rule.source}
    if rule.description:
        source["Description"] = rule.description
    permission: dict[str, Any] = {"IpProtocol": rule.protocol}
    if rule.protocol != "-1":
        permission.update(FromPort=rule.from_port, ToPort=rule.to_port)
    permission[kind] = [source]
    return permission


STEP_TYPES = (Ec2SecurityGroup, Ec2OperatorIp, Ec2IngressRule, Ec2GroupRules)
"""Every step type of this module, for the registry."""
