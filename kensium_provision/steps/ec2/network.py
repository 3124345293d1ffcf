"""EC2 network step types: the region's VPC, its subnets, internet gateway and route tables.

Every resource is found by its `Name` tag (describe before create), so a re-run adopts what an earlier
run made. A create without an idempotency token goes through `aws.idempotent.create_once` (see
`steps.aws_helpers.creating`): one attempt per send, and after a timeout or a 5xx the resource is looked
up again before any retry, so a lost response never makes a second VPC.

Values the sandbox (moto) accepts but AWS rejects (research/reliability-notes.md section 1.3) are
refused here, before any call: malformed or non-canonical CIDRs, badly formed zones. Differences AWS
cannot change in place (a VPC's CIDR) are reported, never "fixed" by replacing the resource: that is an
operator's decision.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from kensium_provision.aws.gather import gather
from kensium_provision.errors import StepError
from kensium_provision.steps.aws_helpers import (
    aws_id,
    aws_ids,
    creating,
    name_filter,
    one_named,
    param_error,
    refuse_unfixable,
    step_call,
    tag_spec,
    tags_of,
    text_param,
    wait_until,
    with_defaults,
    zone_param,
)
from kensium_provision.steps.base import (
    CheckContext,
    Created,
    Difference,
    Param,
    Probe,
    StepContext,
    UndoCheck,
    record_created,
)

__all__ = ["STEP_TYPES", "Ec2InternetGateway", "Ec2RouteTable", "Ec2Subnet", "Ec2Vpc"]


def _named_in_vpc(ctx: StepContext, operation: str, key: str, name: str, vpc_id: str) -> list[dict[str, Any]]:
    """Every `key` item of the VPC, then the ones named `name`: one read of the VPC's subnets (or route
    tables) serves all the steps that look for one of them, through the run's read cache."""
    found = step_call(ctx, "ec2", operation, Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[key]
    return [item for item in found if tags_of(item.get("Tags")).get("Name") == name]


# Under this key an act returns the resource as AWS's answers to its own writes show it (`verify_act`).
_SEEN = "seen"


def _seen(acted: Mapping[str, object]) -> dict[str, Any] | None:
    seen = acted.get(_SEEN)
    return dict(seen) if isinstance(seen, Mapping) else None


def _cidr(ctx: StepContext, value: object, what: str) -> str:
    """A canonical IPv4 network of /16 to /28, the sizes AWS allows for VPCs and subnets."""
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        # moto takes 10.0.0.1/16 (host bits set) as is; AWS refuses it, so kprov does too.
        raise param_error(ctx, f"{what} {value!r} is not an IPv4 network in CIDR form ({exc})",
                   hint="write the network address, e.g. 10.0.16.0/20") from None
    if not 16 <= network.prefixlen <= 28:
        raise param_error(ctx, f"{what} {value!r}: AWS allows /16 to /28 here")
    return str(network)



# --- undo: what a run created in the VPC (issue 17.5) -------------------------------------------------------


def undone_ids(ctx: StepContext) -> frozenset[str]:
    """In an undo, the ids of everything the undone runs created (`engine.undo`): what a resource may hold."""
    found = ctx.values.get("undone_ids")
    return frozenset(str(i) for i in found) if isinstance(found, (list, tuple, frozenset, set)) else frozenset()


def _ec2(ctx: StepContext, operation: str, key: str, missing: str, **params: Any) -> list[dict[str, Any]]:
    found = step_call(ctx, "ec2", operation, missing=(missing,), **params)
    return list(found[key]) if found else []


def _foreign(what: str, ids: Sequence[str], made: frozenset[str]) -> list[str]:
    others = sorted(i for i in ids if i not in made)
    return [f"{what}: {', '.join(others)}"] if others else []


def _network_state(ctx: StepContext, made: Created, ids: frozenset[str]) -> tuple[bool, list[str]]:
    """(whether `made` is still there, what it holds or carries that the undone runs did not make)."""
    vpc_filter = [{"Name": "vpc-id", "Values": [made.id]}]
    if made.kind == "vpc":
        if not _ec2(ctx, "DescribeVpcs", "Vpcs", "InvalidVpcID.NotFound", VpcIds=[made.id]):
            return False, []
        groups = [g for g in _ec2(ctx, "DescribeSecurityGroups", "SecurityGroups", "", Filters=vpc_filter)
                  if g.get("GroupName") != "default"]
        tables = [t for t in _ec2(ctx, "DescribeRouteTables", "RouteTables", "", Filters=vpc_filter)
                  if not any(a.get("Main") for a in t.get("Associations") or ())]
        gateways = _ec2(ctx, "DescribeInternetGateways", "InternetGateways", "",
                        Filters=[{"Name": "attachment.vpc-id", "Values": [made.id]}])
        instances = [i["InstanceId"] for r in _ec2(ctx, "DescribeInstances", "Reservations", "", Filters=vpc_filter)
                     for i in r["Instances"] if i.get("State", {}).get("Name") != "terminated"]
        return True, [
            *_foreign("subnets", [s["SubnetId"] for s in _ec2(ctx, "DescribeSubnets", "Subnets", "",
                                                               Filters=vpc_filter)], ids),
            *_foreign("security groups", [g["GroupId"] for g in groups], ids),
            *_foreign("route tables", [t["RouteTableId"] for t in tables], ids),
            *_foreign("internet gateways", [g["InternetGatewayId"] for g in gateways], ids),
            *_foreign("instances", instances, ids)]
    if made.kind == "subnet":
        if not _ec2(ctx, "DescribeSubnets", "Subnets", "InvalidSubnetID.NotFound", SubnetIds=[made.id]):
            return False, []
        interfaces = _ec2(ctx, "DescribeNetworkInterfaces", "NetworkInterfaces", "",
                          Filters=[{"Name": "subnet-id", "Values": [made.id]}])
        return True, _foreign("network interfaces (instances, databases)",
                              [n["NetworkInterfaceId"] for n in interfaces], ids)
    if made.kind == "internet gateway":
        found = _ec2(ctx, "DescribeInternetGateways", "InternetGateways", "InvalidInternetGatewayID.NotFound",
                     InternetGatewayIds=[made.id])
        if not found:
            return False, []
        return True, _foreign("attached to", [a["VpcId"] for a in found[0].get("Attachments") or ()], ids)
    found = _ec2(ctx, "DescribeRouteTables", "RouteTables", "InvalidRouteTableID.NotFound", RouteTableIds=[made.id])
    if not found:
        return False, []
    routes = [str(r.get("GatewayId") or r.get("NatGatewayId") or r.get("NetworkInterfaceId") or "?")
              for r in found[0].get("Routes") or () if r.get("GatewayId") != "local"]
    subnets = [str(a["SubnetId"]) for a in found[0].get("Associations") or () if a.get("SubnetId")]
    return True, [*_foreign("routes to", routes, ids), *_foreign("subnets", subnets, ids)]


class NetworkUndo:
    """The undo of the network step types: each resource the run created (`record_created`), read again by its
    id; refused when it holds or carries what the undone runs did not make (another's subnet in the VPC, an
    instance in the subnet, a route to another's gateway)."""

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        present: list[Created] = []
        changed: list[str] = []
        ids = undone_ids(ctx)
        for made in created:
            there, foreign = _network_state(ctx, made, ids)
            if there:
                present.append(made)
                changed += [f"{made.kind} {made.id} has {f} since the run" for f in foreign]
        return UndoCheck(present=tuple(present), changed=tuple(changed))

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        for made in reversed(created):
            ctx.progress(f"deleting {made.kind} {made.id}")
            if made.kind == "vpc":  # its default security group and main route table go with it
                step_call(ctx, "ec2", "DeleteVpc", resource=made.id, VpcId=made.id)
            elif made.kind == "subnet":
                step_call(ctx, "ec2", "DeleteSubnet", resource=made.id, SubnetId=made.id)
            elif made.kind == "internet gateway":
                found = _ec2(ctx, "DescribeInternetGateways", "InternetGateways", "", InternetGatewayIds=[made.id])
                for attached in (found[0].get("Attachments") or ()) if found else ():
                    step_call(ctx, "ec2", "DetachInternetGateway", resource=made.id, InternetGatewayId=made.id,
                              VpcId=attached["VpcId"])
                step_call(ctx, "ec2", "DeleteInternetGateway", resource=made.id, InternetGatewayId=made.id)
            else:
                found = _ec2(ctx, "DescribeRouteTables", "RouteTables", "", RouteTableIds=[made.id])
                for association in (found[0].get("Associations") or ()) if found else ():
                    step_call(ctx, "ec2", "DisassociateRouteTable", resource=made.id,
                              AssociationId=association["RouteTableAssociationId"])
                step_call(ctx, "ec2", "DeleteRouteTable", resource=made.id, RouteTableId=made.id)


# --- ec2.vpc ---------------------------------------------------------------------------------------


class Ec2Vpc(NetworkUndo):
    """The region's POS VPC, found by its Name tag: CIDR, default tenancy, no IPv6, DNS support and hostnames.

    Params: `name` (Name tag, rule vpc-entity-name), `cidr` (rule vpc-cidr, 10.0.0.0/16), `tenancy`
    (default), `dns_support`, `dns_hostnames` (both true: AWS needs both for a publicly accessible RDS
    instance). A DNS setting that drifted is turned back on; a different CIDR, tenancy or an IPv6 block
    is reported, not changed. Outputs: `vpc_id`.

    Example: `type: ec2.vpc`, `params: {name: POS-VPC, cidr: 10.0.0.0/16}`, `outputs: {vpc_id: vpc_id}`.
    """

    name: ClassVar[str] = "ec2.vpc"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "A VPC found by its Name tag: CIDR, tenancy, no IPv6, DNS support and hostnames on."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The VPC's Name tag, e.g. POS-VPC."),
        Param(name="cidr", kind="cidr", required=False, default="10.0.0.0/16", rule="vpc-cidr",
              doc="IPv4 block (10.0.0.0/16)."),
        Param(name="tenancy", required=False, default="default", choices=("default",),
              doc="Instance tenancy: default (dedicated hosting is per instance, never per VPC)."),
        Param(name="dns_support", kind="bool", required=False, default=True, doc="enableDnsSupport."),
        Param(name="dns_hostnames", kind="bool", required=False, default=True, doc="enableDnsHostnames."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("vpc_id",)
    _FIXABLE: ClassVar[set[str]] = {"enableDnsSupport", "enableDnsHostnames"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        p["cidr"] = _cidr(ctx, p["cidr"], "cidr")
        text_param(ctx, p, "name")
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        return one_named(step_call(ctx, "ec2", "DescribeVpcs", Filters=name_filter(name))["Vpcs"], "VPC", name, "VpcId")

    def _attribute(self, ctx: StepContext, vpc_id: str, attribute: str) -> bool:
        found = step_call(ctx, "ec2", "DescribeVpcAttribute", VpcId=vpc_id, Attribute=attribute)
        key = attribute[0].upper() + attribute[1:]
        return bool(found[key]["Value"])

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        vpc = self._find(ctx, p["name"])
        if vpc is None:
            return {}, []
        # The two attributes are one call each (an AWS rule) and independent: asked at once.
        support, hostnames = gather(lambda: self._attribute(ctx, vpc["VpcId"], "enableDnsSupport"),
                                    lambda: self._attribute(ctx, vpc["VpcId"], "enableDnsHostnames"))
        current = self._state(vpc, support, hostnames)
        return current, self._compare(current, p)

    @staticmethod
    def _state(vpc: Mapping[str, Any], support: object, hostnames: object) -> dict[str, Any]:
        ipv6 = sorted(a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet") or ()
                      if (a.get("Ipv6CidrBlockState") or {}).get("State") in ("associated", "associating"))
        return {"vpc_id": vpc["VpcId"], "CidrBlock": vpc["CidrBlock"], "InstanceTenancy": vpc["InstanceTenancy"],
                "Ipv6CidrBlocks": ipv6, "enableDnsSupport": support, "enableDnsHostnames": hostnames}

    def _compare(self, current: Mapping[str, Any], p: Mapping[str, Any]) -> list[Difference]:
        return [Difference(k, current.get(k), v) for k, v in self._desired(p).items() if current.get(k) != v]

    def _desired(self, p: Mapping[str, Any]) -> dict[str, object]:
        return {"CidrBlock": p["cidr"], "InstanceTenancy": p["tenancy"], "Ipv6CidrBlocks": [],
                "enableDnsSupport": bool(p["dns_support"]), "enableDnsHostnames": bool(p["dns_hostnames"])}

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        if not current:
            return Probe(done=False, note=f"no VPC is named {p['name']}: will create it", desired=self._desired(p))
        vpc_id = current["vpc_id"]
        state = "; ".join(map(str, differences)) if differences else "as it should be"
        note = f"{vpc_id} ({p['name']}): {state}"
        return Probe(done=not differences, note=note, current=current, desired=self._desired(p),
                     differences=tuple(differences), outputs={"vpc_id": vpc_id})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        refuse_unfixable(ctx, f"VPC {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            vpc_id = str(probe.current["vpc_id"])
            support, hostnames = probe.current["enableDnsSupport"], probe.current["enableDnsHostnames"]
            seen = dict(probe.current)
        else:
            vpc = creating(ctx, "ec2", "CreateVpc", find=lambda: self._find(ctx, p["name"]), resource=p["name"],
                           make=lambda client: client.create_vpc(
                               CidrBlock=p["cidr"], InstanceTenancy=p["tenancy"],
                               TagSpecifications=tag_spec("vpc", {"Name": p["name"]}))["Vpc"])
            vpc_id = vpc["VpcId"]
            record_created(ctx, "vpc", vpc_id, name=p["name"])
            if vpc.get("State") != "available":  # CreateVpc's own answer may say so already: no read then
                wait_until(ctx, f"VPC {vpc_id}", lambda: (self._find(ctx, p["name"]) or {}).get("State"),
                           ["available"])
            # A VPC made by CreateVpc has DNS resolution on and DNS hostnames off ("By default, only the DNS
            # resolution attribute is set to true in a VPC created any other way" than the default VPC or the
            # wizard: https://docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html#vpc-dns-support),
            # so only what differs from that is sent: one call on the new VPC's critical path, not two.
            support, hostnames = True, False
            seen = self._state(vpc, None, None)  # CreateVpc's answer: CIDR, tenancy, IPv6
        # One attribute per call (an AWS rule); hostnames need support, so support goes on first and off last.
        order = [("EnableDnsSupport", support, p["dns_support"]), ("EnableDnsHostnames", hostnames, p["dns_hostnames"])]
        for attribute, actual, wanted in order if p["dns_support"] else reversed(order):
            if actual != bool(wanted):
                step_call(ctx, "ec2", "ModifyVpcAttribute", resource=vpc_id, VpcId=vpc_id,
                         **{attribute: {"Value": bool(wanted)}})
            seen["e" + attribute[1:]] = bool(wanted)  # set now, or already so
        return {"vpc_id": vpc_id, _SEEN: seen}

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: CreateVpc's answer and the attributes ModifyVpcAttribute just set, no read."""
        seen = _seen(acted)
        return None if seen is None else self._compare(seen, self._args(ctx, params))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("VPC", None, p["name"])]


# --- ec2.subnet ------------------------------------------------------------------------------------


class Ec2Subnet(NetworkUndo):
    """A subnet of a VPC, found by its Name tag in that VPC: CIDR, zone, public or private.

    Params: `name` (rule vpc-entity-name), `vpc_id`, `cidr` (inside the VPC's block, /16 to /28),
    `zone`, `public` (true: instances get a public IPv4 address at launch, MapPublicIpOnLaunch),
    `other_than_zone` (optional: a zone this subnet must not be in, so the secondary zone differs from
    the primary). Outputs: `subnet_id`, `zone`, `cidr`.

    Example: `params: {name: 'POS-public-{{ primary_zone }}', vpc_id: '{{ vpc_id }}', cidr: 10.0.0.0/20,
    zone: '{{ primary_zone }}', public: true}`.
    """

    name: ClassVar[str] = "ec2.subnet"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "A subnet found by its Name tag in a VPC: CIDR, availability zone, public IP on launch."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The subnet's Name tag."),
        Param(name="vpc_id", doc="The VPC (an earlier step's output)."),
        Param(name="cidr", kind="cidr", doc="IPv4 block inside the VPC's, /16 to /28, e.g. 10.0.0.0/20."),
        Param(name="zone", doc="Availability zone, e.g. us-east-1a."),
        Param(name="public", kind="bool", required=False, default=False,
              doc="true: a public subnet (instances get a public IPv4 address at launch)."),
        Param(name="other_than_zone", required=False, default="",
              doc="A zone this subnet must not be in (the primary zone, for a secondary subnet)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("subnet_id", "zone", "cidr")

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Its subnet, by block and by Name tag in the VPC (`steps.base.Touches`)."""
        vpc = params.get("vpc_id")
        return frozenset({f"subnet:{vpc}:{params.get('cidr')}", f"subnet-name:{vpc}:{params.get('name')}"})

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> Sequence[str]:
        """The secondary zone differs from the primary, refused before the first change once both are known."""
        if ctx.known(params, "zone", "other_than_zone") and params["other_than_zone"] \
                and params["zone"] == params["other_than_zone"]:
            return [f"zone \"{params['zone']}\" is the zone this subnet must differ from (other_than_zone): the "
                    "primary and secondary zones must be two different zones (for example us-east-1a and us-east-1b)"]
        return []

    _FIXABLE: ClassVar[set[str]] = {"MapPublicIpOnLaunch"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        text_param(ctx, p, "name")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        p["cidr"] = _cidr(ctx, p["cidr"], "cidr")
        zone_param(ctx, p["zone"])
        if p["other_than_zone"] and p["zone"] == p["other_than_zone"]:
            raise param_error(ctx, f"{p['name']} would be in {p['zone']}, the zone it must differ from: the "
                              "primary and secondary zones must be two different zones",
                              hint="answer a different secondary zone")
        return p

    def _find(self, ctx: StepContext, p: Mapping[str, Any]) -> dict[str, Any] | None:
        named = _named_in_vpc(ctx, "DescribeSubnets", "Subnets", p["name"], p["vpc_id"])
        return one_named(named, "subnet", p["name"], "SubnetId")

    def _desired(self, p: Mapping[str, Any]) -> dict[str, object]:
        return {"CidrBlock": p["cidr"], "AvailabilityZone": p["zone"], "MapPublicIpOnLaunch": bool(p["public"])}

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        subnet = self._find(ctx, p)
        if subnet is None:
            return {}, []
        current = {"subnet_id": subnet["SubnetId"], **{k: subnet.get(k) for k in self._desired(p)}}
        return current, self._compare(current, p)

    def _compare(self, current: Mapping[str, Any], p: Mapping[str, Any]) -> list[Difference]:
        return [Difference(k, current.get(k), v) for k, v in self._desired(p).items() if current.get(k) != v]

    @staticmethod
    def _outputs(current: Mapping[str, Any]) -> dict[str, object]:
        return {"subnet_id": current["subnet_id"], "zone": current["AvailabilityZone"], "cidr": current["CidrBlock"]}

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        if not current:
            return Probe(done=False, note=f"no subnet {p['name']} in {p['vpc_id']}: will create it",
                         desired=self._desired(p))
        note = f"{current['subnet_id']} ({p['name']})" + (
            ": " + "; ".join(map(str, differences)) if differences else " as it should be")
        return Probe(done=not differences, note=note, current=current, desired=self._desired(p),
                     differences=tuple(differences), outputs=self._outputs(current))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        refuse_unfixable(ctx, f"subnet {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            subnet_id, public = str(probe.current["subnet_id"]), probe.current["MapPublicIpOnLaunch"]
            seen = dict(probe.current)
        else:
            subnet = creating(ctx, "ec2", "CreateSubnet", find=lambda: self._find(ctx, p), resource=p["name"],
                              make=lambda client: client.create_subnet(
                                  VpcId=p["vpc_id"], CidrBlock=p["cidr"], AvailabilityZone=p["zone"],
                                  TagSpecifications=tag_spec("subnet", {"Name": p["name"]}))["Subnet"])
            subnet_id, public = subnet["SubnetId"], subnet.get("MapPublicIpOnLaunch", False)
            record_created(ctx, "subnet", subnet_id, name=p["name"])
            seen = {"subnet_id": subnet_id, **{k: subnet.get(k) for k in self._desired(p)}}  # CreateSubnet's answer
        if bool(public) != bool(p["public"]):
            step_call(ctx, "ec2", "ModifySubnetAttribute", resource=subnet_id, SubnetId=subnet_id,
                     MapPublicIpOnLaunch={"Value": bool(p["public"])})
            seen["MapPublicIpOnLaunch"] = bool(p["public"])
        return {"subnet_id": subnet_id, "zone": p["zone"], "cidr": p["cidr"], _SEEN: seen}

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: CreateSubnet's answer and the attribute ModifySubnetAttribute just set, no read."""
        seen = _seen(acted)
        return None if seen is None else self._compare(seen, self._args(ctx, params))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("subnet", None, p["name"])]


# --- ec2.internet-gateway --------------------------------------------------------------------------


class Ec2InternetGateway(NetworkUndo):
    """An internet gateway found by its Name tag, attached to the VPC.

    Params: `name` (rule vpc-entity-name), `vpc_id`. A gateway that exists but is detached is attached;
    one attached to another VPC is reported. If the VPC already has another gateway, kprov stops
    (a VPC can have only one) and says which. Outputs: `igw_id`.

    Example: `params: {name: POS-IGW, vpc_id: '{{ vpc_id }}'}`, `outputs: {igw_id: igw_id}`.
    """

    name: ClassVar[str] = "ec2.internet-gateway"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "An internet gateway found by its Name tag, attached to the VPC."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The gateway's Name tag."),
        Param(name="vpc_id", doc="The VPC it is attached to."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("igw_id",)

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Its gateway by Name tag, and the VPC's one gateway attachment (`steps.base.Touches`)."""
        return frozenset({f"internet-gateway:{params.get('name')}", f"vpc-gateway:{params.get('vpc_id')}"})
    _FIXABLE: ClassVar[set[str]] = {"attached to"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        text_param(ctx, p, "name")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = step_call(ctx, "ec2", "DescribeInternetGateways", Filters=name_filter(name))
        return one_named(found["InternetGateways"], "internet gateway", name, "InternetGatewayId")

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        igw = self._find(ctx, p["name"])
        if igw is None:
            return {}, []
        attached = sorted(a["VpcId"] for a in igw.get("Attachments") or ()
                          if a.get("State") in ("available", "attached", "attaching"))
        current = {"igw_id": igw["InternetGatewayId"], "attached to": attached}
        return current, self._compare(current, p)

    @staticmethod
    def _compare(current: Mapping[str, Any], p: Mapping[str, Any]) -> list[Difference]:
        attached = current.get("attached to")
        return [] if attached == [p["vpc_id"]] else [Difference("attached to", attached, [p["vpc_id"]])]

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        if not current:
            return Probe(done=False, note=f"no internet gateway is named {p['name']}: will create and attach it",
                         desired={"attached to": [p["vpc_id"]]})
        return Probe(done=not differences, note=f"{current['igw_id']} ({p['name']})", current=current,
                     desired={"attached to": [p["vpc_id"]]}, differences=tuple(differences),
                     outputs={"igw_id": current["igw_id"]})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        attached = list(probe.current.get("attached to") or [])  # type: ignore[call-overload]
        if attached:
            raise StepError(f"internet gateway {p['name']} is attached to {', '.join(attached)}, not {p['vpc_id']}",
                            hint="detach it there by hand, or give this VPC's gateway another name")
        # A VPC takes one internet gateway: name any other one rather than fail on attach.
        others = step_call(ctx, "ec2", "DescribeInternetGateways",
                          Filters=[{"Name": "attachment.vpc-id", "Values": [p["vpc_id"]]}])["InternetGateways"]
        others = [g for g in others if g["InternetGatewayId"] != probe.current.get("igw_id")]
        if others:
            other = others[0]
            raise StepError(f"{p['vpc_id']} already has internet gateway {other['InternetGatewayId']} "
                            f"(Name={tags_of(other.get('Tags')).get('Name', 'none')}); a VPC takes only one",
                            hint=f"tag that gateway Name={p['name']} so kprov adopts it, or detach it")
        if probe.current:
            igw_id = str(probe.current["igw_id"])
        else:
            igw = creating(ctx, "ec2", "CreateInternetGateway", find=lambda: self._find(ctx, p["name"]),
                           resource=p["name"], make=lambda client: client.create_internet_gateway(
                               TagSpecifications=tag_spec("internet-gateway", {"Name": p["name"]}))["InternetGateway"])
            igw_id = igw["InternetGatewayId"]
            record_created(ctx, "internet gateway", igw_id, name=p["name"])
        step_call(ctx, "ec2", "AttachInternetGateway", resource=igw_id, InternetGatewayId=igw_id, VpcId=p["vpc_id"])
        return {"igw_id": igw_id, _SEEN: {"igw_id": igw_id, "attached to": [p["vpc_id"]]}}  # AWS said yes to it

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: the gateway AttachInternetGateway just attached, no read."""
        seen = _seen(acted)
        return None if seen is None else self._compare(seen, self._args(ctx, params))

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("internet gateway", None, p["name"])]


# --- ec2.route-table -------------------------------------------------------------------------------


class Ec2RouteTable(NetworkUndo):
    """A route table found by its Name tag in the VPC: its subnets, and a default route when public.

    Params: `name` (rule vpc-entity-name), `vpc_id`, `subnet_ids` (explicitly associated; a subnet
    associated with another table is moved to this one), `gateway_id` (an internet gateway: the default
    route 0.0.0.0/0 goes to it; empty: a private table, no default route). Extra subnets or an
    unexpected default route are reported, never removed by kprov. Outputs: `route_table_id`.

    Example: `params: {name: POS-public-routes, vpc_id: '{{ vpc_id }}', subnet_ids: ['{{ public_a }}',
    '{{ public_b }}'], gateway_id: '{{ igw_id }}'}`.
    """

    name: ClassVar[str] = "ec2.route-table"
    probes_ahead: ClassVar[bool] = True  # its probe only reads AWS: the engine may start it early
    summary: ClassVar[str] = "A route table found by its Name tag: associated subnets and the default route."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The route table's Name tag."),
        Param(name="vpc_id", doc="The VPC."),
        Param(name="subnet_ids", kind="list", doc="Subnets associated with this table."),
        Param(name="gateway_id", required=False, default="",
              doc="Internet gateway for the default route 0.0.0.0/0; empty for a private table."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("route_table_id",)

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Its table by Name tag in the VPC and each subnet's association, which it may move here
        (`steps.base.Touches`)."""
        subnets = params.get("subnet_ids") or []
        return frozenset({f"route-table:{params.get('vpc_id')}:{params.get('name')}",
                          *(f"subnet-association:{s}" for s in (subnets if isinstance(subnets, list) else [subnets]))})
    _FIXABLE: ClassVar[set[str]] = {"missing subnets", "0.0.0.0/0"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        text_param(ctx, p, "name")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        p["subnet_ids"] = sorted(set(aws_ids(ctx, p["subnet_ids"], "subnet", "subnet_ids")))
        if p["gateway_id"]:
            aws_id(ctx, p["gateway_id"], "igw", "gateway_id")
        return p

    def _find(self, ctx: StepContext, p: Mapping[str, Any]) -> dict[str, Any] | None:
        named = _named_in_vpc(ctx, "DescribeRouteTables", "RouteTables", p["name"], p["vpc_id"])
        return one_named(named, "route table", p["name"], "RouteTableId")

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        table = self._find(ctx, p)
        if table is None:
            return {}, []
        subnets = sorted(a["SubnetId"] for a in table.get("Associations") or ()
                         if a.get("SubnetId") and (a.get("AssociationState") or {}).get("State", "associated")
                         in ("associated", "associating"))
        default = next((r for r in table.get("Routes") or () if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)
        target = None
        if default is not None:
            target = default.get("GatewayId") or default.get("NatGatewayId") or default.get("NetworkInterfaceId") or "?"
            if default.get("State") == "blackhole":
                target = f"{target} (blackhole)"
        current = {"route_table_id": table["RouteTableId"], "subnets": subnets, "0.0.0.0/0": target}
        return current, self._compare(current, p)

    @staticmethod
    def _compare(current: Mapping[str, Any], p: Mapping[str, Any]) -> list[Difference]:
        subnets, target = current["subnets"], current["0.0.0.0/0"]
        differences = []
        missing = [s for s in p["subnet_ids"] if s not in subnets]
        extra = [s for s in subnets if s not in p["subnet_ids"]]
        if missing:
            differences.append(Difference("missing subnets", [], missing))
        if extra:
            differences.append(Difference("other subnets", extra, []))
        if target != (p["gateway_id"] or None):
            field = "0.0.0.0/0" if p["gateway_id"] else "unexpected 0.0.0.0/0"
            differences.append(Difference(field, target, p["gateway_id"] or None))
        return differences

    def _desired(self, p: Mapping[str, Any]) -> dict[str, object]:
        return {"subnets": p["subnet_ids"], "0.0.0.0/0": p["gateway_id"] or None}

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        if not current:
            return Probe(done=False, note=f"no route table {p['name']} in {p['vpc_id']}: will create it",
                         desired=self._desired(p))
        return Probe(done=not differences, note=f"{current['route_table_id']} ({p['name']})", current=current,
                     desired=self._desired(p), differences=tuple(differences),
                     outputs={"route_table_id": current["route_table_id"]})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        refuse_unfixable(ctx, f"route table {p['name']}", probe.differences, self._FIXABLE)
        associated = self._associations(ctx, p["vpc_id"])  # before the first write: the probe's cached read
        if probe.current:
            table_id = str(probe.current["route_table_id"])
            subnets = list(probe.current["subnets"])  # type: ignore[call-overload]
            target = probe.current["0.0.0.0/0"]
        else:
            table = creating(ctx, "ec2", "CreateRouteTable", find=lambda: self._find(ctx, p), resource=p["name"],
                             make=lambda client: client.create_route_table(
                                 VpcId=p["vpc_id"],
                                 TagSpecifications=tag_spec("route-table", {"Name": p["name"]}))["RouteTable"])
            table_id, subnets, target = table["RouteTableId"], [], None
            record_created(ctx, "route table", table_id, name=p["name"])
        # The route and each subnet's association are writes to different things that AWS takes in any
        # order: sent at once (at 50 ms a call and a retry each while the new table settles: bench/latency).
        writes: list[Callable[[], object]] = []
        if p["gateway_id"] and target is None:
            writes.append(lambda: step_call(ctx, "ec2", "CreateRoute", resource=table_id, RouteTableId=table_id,
                                            DestinationCidrBlock="0.0.0.0/0", GatewayId=p["gateway_id"]))
        elif p["gateway_id"] and target != p["gateway_id"]:
            writes.append(lambda: step_call(ctx, "ec2", "ReplaceRoute", resource=table_id, RouteTableId=table_id,
                                            DestinationCidrBlock="0.0.0.0/0", GatewayId=p["gateway_id"]))
        seen = {"route_table_id": table_id, "subnets": sorted({*subnets, *p["subnet_ids"]}),
                "0.0.0.0/0": p["gateway_id"] or target}  # as the writes below leave it
        writes.extend(partial(self._associate, ctx, table_id, subnet_id, associated.get(subnet_id))
                      for subnet_id in p["subnet_ids"] if subnet_id not in subnets)
        gather(*writes)
        return {"route_table_id": table_id, _SEEN: seen}

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        """Right after act: the route and the associations AWS just accepted, no read."""
        seen = _seen(acted)
        return None if seen is None else self._compare(seen, self._args(ctx, params))

    @staticmethod
    def _associate(ctx: StepContext, table_id: str, subnet_id: str, elsewhere: tuple[str, str] | None) -> None:
        """A subnet has one explicit association: moved if it has one elsewhere (AWS refuses a second)."""
        if elsewhere is not None and elsewhere[0] != table_id:
            ctx.progress(f"moving {subnet_id} from {elsewhere[0]} to {table_id}")
            step_call(ctx, "ec2", "ReplaceRouteTableAssociation", resource=subnet_id,
                      AssociationId=elsewhere[1], RouteTableId=table_id)
        else:
            step_call(ctx, "ec2", "AssociateRouteTable", resource=subnet_id, RouteTableId=table_id,
                      SubnetId=subnet_id)

    @staticmethod
    def _associations(ctx: StepContext, vpc_id: str) -> dict[str, tuple[str, str]]:
        """subnet id -> (route table id, association id) of each explicit association in the VPC. A subnet's
        table is always in the subnet's VPC, so the VPC's listing the probe read (cached) answers for every
        subnet: no read per subnet (bench/latency: 4 of the fresh VPC job's reads)."""
        tables = step_call(ctx, "ec2", "DescribeRouteTables",
                           Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
        return {a["SubnetId"]: (t["RouteTableId"], a["RouteTableAssociationId"])
                for t in tables for a in t.get("Associations") or ()
                if a.get("SubnetId") and (a.get("AssociationState") or {}).get("State", "associated")
                in ("associated", "associating")}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("route table", None, p["name"])]


STEP_TYPES = (Ec2Vpc, Ec2Subnet, Ec2InternetGateway, Ec2RouteTable)
"""Every step type of this module, for the registry."""
