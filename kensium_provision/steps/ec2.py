"""EC2 step types: the region's VPC and its network, SG-POS-OPS and operator rules, POS hosts and their tags.

Every resource is found by its `Name` tag (describe before create), so a re-run adopts what an earlier
run made. A create without an idempotency token goes through `aws.idempotent.create_once`: one
attempt per send, and after a timeout or a 5xx the resource is looked up again before any retry, so
a lost response never makes a second VPC. RunInstances sends a deterministic `ClientToken`.

Values the sandbox (moto) accepts but AWS rejects (research/reliability-notes.md section 1.3) are
refused here, before any call: security group names starting with `sg-`, malformed or non-canonical
CIDRs, instance types and image ids of the wrong shape, over-long tags, private operator addresses.
Differences AWS cannot change in place (a VPC's CIDR, an instance's subnet) are reported, never
"fixed" by replacing the resource: that is an operator's decision.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from kensium_provision.errors import InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.steps.base import Difference, Param, Probe, StepContext

__all__ = [
    "STEP_TYPES",
    "Ec2IngressRule",
    "Ec2Instance",
    "Ec2InternetGateway",
    "Ec2KeyPair",
    "Ec2LaunchCheck",
    "Ec2OperatorIp",
    "Ec2RouteTable",
    "Ec2SecurityGroup",
    "Ec2Subnet",
    "Ec2Tags",
    "Ec2Vpc",
    "Ec2WindowsPassword",
    "aws_call",
    "aws_id",
    "aws_ids",
    "creating",
    "operator_cidr",
    "param_error",
    "with_defaults",
]

T = TypeVar("T")

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9]*\.[a-z0-9]+$")
_IMAGE_ID = re.compile(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$")  # AWS ids: 8 hex (old) or 17 hex
_ZONE = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)+[a-z]$")
# EC2 security group names and descriptions (VPC groups): ASCII letters, digits, space and these.
_SG_TEXT = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]+$")
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]  # every state but shutting-down/terminated
_DOCUMENTATION_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
_SHARED_NET = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


# --- shared helpers ------------------------------------------------------------------------------


def with_defaults(declared: Sequence[Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered params with each optional parameter's declared default filled in."""
    values = {p.name: p.default for p in declared if not p.required}
    values.update({k: v for k, v in params.items() if v is not None})
    return values


def _sandbox(ctx: StepContext) -> bool:
    env = getattr(ctx.runtime.aws, "env", None)
    return bool(env.sandbox) if env is not None else ctx.runtime.env_name == "sandbox"


def param_error(ctx: StepContext, message: str, hint: str = "") -> InputError:
    """A parameter AWS would refuse (or moto would wrongly take), found before any call."""
    return InputError(f"step {ctx.step_id}: {message}", hint=hint)


def _translated(ctx: StepContext, service: str, operation: str, resource: str = "") -> Any:
    """botocore and moto failures become `AwsError` with a hint; kprov's own errors pass through."""
    from kensium_provision.aws.errors import translating

    return translating(service, operation, resource, sandbox=_sandbox(ctx))


def aws_call(ctx: StepContext, service: str, operation: str, *, resource: str = "", **params: Any) -> dict[str, Any]:
    """One call through the run's session (walled in plan/check), errors translated."""
    from botocore import xform_name

    with _translated(ctx, service, operation, resource):
        response = dict(getattr(ctx.client(service), xform_name(operation))(**params))
    response.pop("ResponseMetadata", None)
    return response


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def creating(ctx: StepContext, service: str, operation: str, *, find: Callable[[], T | None],
             make: Callable[[Any], T], token: str | None = None, resource: str = "") -> T:
    """Create at most once: `find` first, `make(client)` if nothing is there, re-`find` after a lost answer.

    `make` calls the client directly (raw botocore errors, so `create_once` can tell a timeout from a
    refusal); without `token` the client sends once and never retries by itself.
    """
    from kensium_provision.aws.idempotent import create_client, create_once

    client = create_client(ctx.runtime.aws, service, client_token=token)
    with _translated(ctx, service, operation, resource):
        # act runs right after the engine's probe found nothing (and the run holds the target's lock)
        created = create_once(probe=find, create=lambda: make(client), client_token=token, sleep=ctx.runtime.sleep,
                              probed=True, forget=ctx.forget_reads)
    if created.reconciled:
        ctx.progress(f"{resource or operation}: the answer was lost, but it was made once; carrying on")
    return created.resource


def _tags(items: object) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or ()} if isinstance(items, list) else {}


def _tag_spec(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def _name_filter(name: str, **more: str) -> list[dict[str, Any]]:
    filters = [{"Name": "tag:Name", "Values": [name]}]
    filters += [{"Name": key.replace("_", "-"), "Values": [value]} for key, value in more.items()]
    return filters


def _named_in_vpc(ctx: StepContext, operation: str, key: str, name: str, vpc_id: str) -> list[dict[str, Any]]:
    """Every `key` item of the VPC, then the ones named `name`: one read of the VPC's subnets (or route
    tables) serves all the steps that look for one of them, through the run's read cache."""
    found = aws_call(ctx, "ec2", operation, Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[key]
    return [item for item in found if _tags(item.get("Tags")).get("Name") == name]


def _one(items: Sequence[dict[str, Any]], what: str, name: str, id_key: str) -> dict[str, Any] | None:
    if len(items) > 1:
        ids = ", ".join(sorted(str(i.get(id_key)) for i in items))
        raise StepError(f"{len(items)} {what}s are tagged Name={name} ({ids}); kprov will not guess which one is meant",
                        hint="rename (re-tag) or delete the extra ones, then run again")
    return items[0] if items else None


def _refuse(ctx: StepContext, what: str, differences: Sequence[Difference], fixable: set[str]) -> None:
    """Stop before changing anything when a difference cannot be fixed in place."""
    fixed_by_hand = [d for d in differences if d.field not in fixable]
    if fixed_by_hand:
        raise StepError(
            f"{what}: {'; '.join(map(str, fixed_by_hand))}. AWS cannot change this on an existing resource, and "
            "kprov never replaces one by itself",
            hint="fix it in the AWS console (or delete the resource so the next run creates it), or correct the "
                 "checklist's answers if they are what is wrong")


def _wait_until(ctx: StepContext, what: str, read: Callable[[], object], until: Sequence[object],
                budget: float = 300, interval: float = 5) -> None:
    runtime = ctx.runtime
    start = runtime.monotonic()
    while (state := read()) not in until:
        ctx.forget_reads()  # the next read must ask AWS again
        left = budget - (runtime.monotonic() - start)
        if left <= 0:
            raise StepError(f"{what} is still {state!r} after {budget:.0f} s",
                            hint="it may still finish: run the same command again later to continue")
        ctx.progress(f"waiting for {what}: {state}, {left:.0f} s left")
        runtime.sleep(min(interval, left))


def _text(ctx: StepContext, params: Mapping[str, Any], name: str, *, empty_ok: bool = False) -> str:
    value = params.get(name)
    if not isinstance(value, str) or (not value.strip() and not empty_ok):
        raise param_error(ctx, f"{name} must be text, got {value!r}")
    return value


def aws_id(ctx: StepContext, value: object, prefix: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(rf"{prefix}-(?:[0-9a-f]{{8}}|[0-9a-f]{{17}})", value):
        raise param_error(ctx, f"{what} {value!r} is not a {prefix}- id ({prefix}- and 8 or 17 hexadecimal digits)")
    return value


def aws_ids(ctx: StepContext, value: object, prefix: str, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise param_error(ctx, f"{what} must be a non-empty list of {prefix}- ids, got {value!r}")
    return [aws_id(ctx, v, prefix, what) for v in value]


def _zone(ctx: StepContext, value: object) -> str:
    if not isinstance(value, str) or not _ZONE.fullmatch(value):
        raise param_error(ctx, f"{value!r} is not an availability zone name (like us-east-1a)")
    return value


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


def _check_tags(ctx: StepContext, tags: object) -> dict[str, str]:
    """EC2 tag limits (moto takes a 300-character value; AWS does not)."""
    if not isinstance(tags, dict):
        raise param_error(ctx, f"tags must be a mapping of keys to values, got {tags!r}")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise param_error(ctx, f"tag key {key!r}: 1 to 128 characters")
        if key.lower().startswith("aws:"):
            raise param_error(ctx, f"tag key {key!r}: the aws: prefix is reserved for AWS")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise param_error(ctx, f"tag {key}: the value must be text, got {value!r}")
        text = str(value)
        if len(text) > 256:
            raise param_error(ctx, f"tag {key}: the value has {len(text)} characters; AWS allows 256")
        if any(ord(c) < 32 for c in text):
            raise param_error(ctx, f"tag {key}: the value contains a control character")
        checked[key] = text
    return checked


def _tag_differences(actual: Mapping[str, str], wanted: Mapping[str, str]) -> list[Difference]:
    return [Difference(f"tag {k}", actual.get(k), v) for k, v in wanted.items() if actual.get(k) != v]


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


# --- ec2.vpc ---------------------------------------------------------------------------------------


class Ec2Vpc:
    """The region's POS VPC, found by its Name tag: CIDR, default tenancy, no IPv6, DNS support and hostnames.

    Params: `name` (Name tag, rule vpc-entity-name), `cidr` (rule vpc-cidr, 10.0.0.0/16), `tenancy`
    (default), `dns_support`, `dns_hostnames` (both true: AWS needs both for a publicly accessible RDS
    instance). A DNS setting that drifted is turned back on; a different CIDR, tenancy or an IPv6 block
    is reported, not changed. Outputs: `vpc_id`.

    Example: `type: ec2.vpc`, `params: {name: POS-VPC, cidr: 10.0.0.0/16}`, `outputs: {vpc_id: vpc_id}`.
    """

    name: ClassVar[str] = "ec2.vpc"
    summary: ClassVar[str] = "A VPC found by its Name tag: CIDR, tenancy, no IPv6, DNS support and hostnames on."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The VPC's Name tag, e.g. POS-VPC."),
        Param(name="cidr", required=False, default="10.0.0.0/16", rule="vpc-cidr", doc="IPv4 block (10.0.0.0/16)."),
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
        _text(ctx, p, "name")
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        return _one(aws_call(ctx, "ec2", "DescribeVpcs", Filters=_name_filter(name))["Vpcs"], "VPC", name, "VpcId")

    def _attribute(self, ctx: StepContext, vpc_id: str, attribute: str) -> bool:
        found = aws_call(ctx, "ec2", "DescribeVpcAttribute", VpcId=vpc_id, Attribute=attribute)
        key = attribute[0].upper() + attribute[1:]
        return bool(found[key]["Value"])

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        vpc = self._find(ctx, p["name"])
        if vpc is None:
            return {}, []
        ipv6 = sorted(a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet") or ()
                      if (a.get("Ipv6CidrBlockState") or {}).get("State") in ("associated", "associating"))
        current = {"vpc_id": vpc["VpcId"], "CidrBlock": vpc["CidrBlock"], "InstanceTenancy": vpc["InstanceTenancy"],
                   "Ipv6CidrBlocks": ipv6,
                   "enableDnsSupport": self._attribute(ctx, vpc["VpcId"], "enableDnsSupport"),
                   "enableDnsHostnames": self._attribute(ctx, vpc["VpcId"], "enableDnsHostnames")}
        wanted = self._desired(p)
        return current, [Difference(k, current[k], v) for k, v in wanted.items() if current[k] != v]

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
        _refuse(ctx, f"VPC {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            vpc_id = str(probe.current["vpc_id"])
            support, hostnames = probe.current["enableDnsSupport"], probe.current["enableDnsHostnames"]
        else:
            vpc = creating(ctx, "ec2", "CreateVpc", find=lambda: self._find(ctx, p["name"]), resource=p["name"],
                           make=lambda client: client.create_vpc(
                               CidrBlock=p["cidr"], InstanceTenancy=p["tenancy"],
                               TagSpecifications=_tag_spec("vpc", {"Name": p["name"]}))["Vpc"])
            vpc_id = vpc["VpcId"]
            _wait_until(ctx, f"VPC {vpc_id}", lambda: (self._find(ctx, p["name"]) or {}).get("State"), ["available"])
            support, hostnames = None, None  # set both: a new VPC has hostnames off
        # One attribute per call (an AWS rule); hostnames need support, so support goes on first and off last.
        order = [("EnableDnsSupport", support, p["dns_support"]), ("EnableDnsHostnames", hostnames, p["dns_hostnames"])]
        for attribute, actual, wanted in order if p["dns_support"] else reversed(order):
            if actual != bool(wanted):
                aws_call(ctx, "ec2", "ModifyVpcAttribute", resource=vpc_id, VpcId=vpc_id,
                         **{attribute: {"Value": bool(wanted)}})
        return {"vpc_id": vpc_id}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("VPC", None, p["name"])]


# --- ec2.subnet ------------------------------------------------------------------------------------


class Ec2Subnet:
    """A subnet of a VPC, found by its Name tag in that VPC: CIDR, zone, public or private.

    Params: `name` (rule vpc-entity-name), `vpc_id`, `cidr` (inside the VPC's block, /16 to /28),
    `zone`, `public` (true: instances get a public IPv4 address at launch, MapPublicIpOnLaunch),
    `other_than_zone` (optional: a zone this subnet must not be in, so the secondary zone differs from
    the primary). Outputs: `subnet_id`, `zone`, `cidr`.

    Example: `params: {name: 'POS-public-{{ primary_zone }}', vpc_id: '{{ vpc_id }}', cidr: 10.0.0.0/20,
    zone: '{{ primary_zone }}', public: true}`.
    """

    name: ClassVar[str] = "ec2.subnet"
    summary: ClassVar[str] = "A subnet found by its Name tag in a VPC: CIDR, availability zone, public IP on launch."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The subnet's Name tag."),
        Param(name="vpc_id", doc="The VPC (an earlier step's output)."),
        Param(name="cidr", doc="IPv4 block inside the VPC's, /16 to /28, e.g. 10.0.0.0/20."),
        Param(name="zone", doc="Availability zone, e.g. us-east-1a."),
        Param(name="public", kind="bool", required=False, default=False,
              doc="true: a public subnet (instances get a public IPv4 address at launch)."),
        Param(name="other_than_zone", required=False, default="",
              doc="A zone this subnet must not be in (the primary zone, for a secondary subnet)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("subnet_id", "zone", "cidr")
    _FIXABLE: ClassVar[set[str]] = {"MapPublicIpOnLaunch"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        _text(ctx, p, "name")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        p["cidr"] = _cidr(ctx, p["cidr"], "cidr")
        _zone(ctx, p["zone"])
        if p["other_than_zone"] and p["zone"] == p["other_than_zone"]:
            raise param_error(ctx, f"{p['name']} would be in {p['zone']}, the zone it must differ from: the "
                              "primary and secondary zones must be two different zones",
                              hint="answer a different secondary zone")
        return p

    def _find(self, ctx: StepContext, p: Mapping[str, Any]) -> dict[str, Any] | None:
        named = _named_in_vpc(ctx, "DescribeSubnets", "Subnets", p["name"], p["vpc_id"])
        return _one(named, "subnet", p["name"], "SubnetId")

    def _desired(self, p: Mapping[str, Any]) -> dict[str, object]:
        return {"CidrBlock": p["cidr"], "AvailabilityZone": p["zone"], "MapPublicIpOnLaunch": bool(p["public"])}

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        subnet = self._find(ctx, p)
        if subnet is None:
            return {}, []
        current = {"subnet_id": subnet["SubnetId"], **{k: subnet.get(k) for k in self._desired(p)}}
        return current, [Difference(k, current[k], v) for k, v in self._desired(p).items() if current[k] != v]

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
        _refuse(ctx, f"subnet {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            subnet_id, public = str(probe.current["subnet_id"]), probe.current["MapPublicIpOnLaunch"]
        else:
            subnet = creating(ctx, "ec2", "CreateSubnet", find=lambda: self._find(ctx, p), resource=p["name"],
                              make=lambda client: client.create_subnet(
                                  VpcId=p["vpc_id"], CidrBlock=p["cidr"], AvailabilityZone=p["zone"],
                                  TagSpecifications=_tag_spec("subnet", {"Name": p["name"]}))["Subnet"])
            subnet_id, public = subnet["SubnetId"], subnet.get("MapPublicIpOnLaunch", False)
        if bool(public) != bool(p["public"]):
            aws_call(ctx, "ec2", "ModifySubnetAttribute", resource=subnet_id, SubnetId=subnet_id,
                     MapPublicIpOnLaunch={"Value": bool(p["public"])})
        return {"subnet_id": subnet_id, "zone": p["zone"], "cidr": p["cidr"]}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("subnet", None, p["name"])]


# --- ec2.internet-gateway --------------------------------------------------------------------------


class Ec2InternetGateway:
    """An internet gateway found by its Name tag, attached to the VPC.

    Params: `name` (rule vpc-entity-name), `vpc_id`. A gateway that exists but is detached is attached;
    one attached to another VPC is reported. If the VPC already has another gateway, kprov stops
    (a VPC can have only one) and says which. Outputs: `igw_id`.

    Example: `params: {name: POS-IGW, vpc_id: '{{ vpc_id }}'}`, `outputs: {igw_id: igw_id}`.
    """

    name: ClassVar[str] = "ec2.internet-gateway"
    summary: ClassVar[str] = "An internet gateway found by its Name tag, attached to the VPC."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The gateway's Name tag."),
        Param(name="vpc_id", doc="The VPC it is attached to."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("igw_id",)
    _FIXABLE: ClassVar[set[str]] = {"attached to"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        _text(ctx, p, "name")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = aws_call(ctx, "ec2", "DescribeInternetGateways", Filters=_name_filter(name))
        return _one(found["InternetGateways"], "internet gateway", name, "InternetGatewayId")

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        igw = self._find(ctx, p["name"])
        if igw is None:
            return {}, []
        attached = sorted(a["VpcId"] for a in igw.get("Attachments") or ()
                          if a.get("State") in ("available", "attached", "attaching"))
        current = {"igw_id": igw["InternetGatewayId"], "attached to": attached}
        return current, [] if attached == [p["vpc_id"]] else [Difference("attached to", attached, [p["vpc_id"]])]

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
        others = aws_call(ctx, "ec2", "DescribeInternetGateways",
                          Filters=[{"Name": "attachment.vpc-id", "Values": [p["vpc_id"]]}])["InternetGateways"]
        others = [g for g in others if g["InternetGatewayId"] != probe.current.get("igw_id")]
        if others:
            other = others[0]
            raise StepError(f"{p['vpc_id']} already has internet gateway {other['InternetGatewayId']} "
                            f"(Name={_tags(other.get('Tags')).get('Name', 'none')}); a VPC takes only one",
                            hint=f"tag that gateway Name={p['name']} so kprov adopts it, or detach it")
        if probe.current:
            igw_id = str(probe.current["igw_id"])
        else:
            igw = creating(ctx, "ec2", "CreateInternetGateway", find=lambda: self._find(ctx, p["name"]),
                           resource=p["name"], make=lambda client: client.create_internet_gateway(
                               TagSpecifications=_tag_spec("internet-gateway", {"Name": p["name"]}))["InternetGateway"])
            igw_id = igw["InternetGatewayId"]
        aws_call(ctx, "ec2", "AttachInternetGateway", resource=igw_id, InternetGatewayId=igw_id, VpcId=p["vpc_id"])
        return {"igw_id": igw_id}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("internet gateway", None, p["name"])]


# --- ec2.route-table -------------------------------------------------------------------------------


class Ec2RouteTable:
    """A route table found by its Name tag in the VPC: its subnets, and a default route when public.

    Params: `name` (rule vpc-entity-name), `vpc_id`, `subnet_ids` (explicitly associated; a subnet
    associated with another table is moved to this one), `gateway_id` (an internet gateway: the default
    route 0.0.0.0/0 goes to it; empty: a private table, no default route). Extra subnets or an
    unexpected default route are reported, never removed by kprov. Outputs: `route_table_id`.

    Example: `params: {name: POS-public-routes, vpc_id: '{{ vpc_id }}', subnet_ids: ['{{ public_a }}',
    '{{ public_b }}'], gateway_id: '{{ igw_id }}'}`.
    """

    name: ClassVar[str] = "ec2.route-table"
    summary: ClassVar[str] = "A route table found by its Name tag: associated subnets and the default route."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The route table's Name tag."),
        Param(name="vpc_id", doc="The VPC."),
        Param(name="subnet_ids", kind="list", doc="Subnets associated with this table."),
        Param(name="gateway_id", required=False, default="",
              doc="Internet gateway for the default route 0.0.0.0/0; empty for a private table."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("route_table_id",)
    _FIXABLE: ClassVar[set[str]] = {"missing subnets", "0.0.0.0/0"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        _text(ctx, p, "name")
        aws_id(ctx, p["vpc_id"], "vpc", "vpc_id")
        p["subnet_ids"] = sorted(set(aws_ids(ctx, p["subnet_ids"], "subnet", "subnet_ids")))
        if p["gateway_id"]:
            aws_id(ctx, p["gateway_id"], "igw", "gateway_id")
        return p

    def _find(self, ctx: StepContext, p: Mapping[str, Any]) -> dict[str, Any] | None:
        named = _named_in_vpc(ctx, "DescribeRouteTables", "RouteTables", p["name"], p["vpc_id"])
        return _one(named, "route table", p["name"], "RouteTableId")

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
        return current, differences

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
        _refuse(ctx, f"route table {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            table_id = str(probe.current["route_table_id"])
            subnets = list(probe.current["subnets"])  # type: ignore[call-overload]
            target = probe.current["0.0.0.0/0"]
        else:
            table = creating(ctx, "ec2", "CreateRouteTable", find=lambda: self._find(ctx, p), resource=p["name"],
                             make=lambda client: client.create_route_table(
                                 VpcId=p["vpc_id"],
                                 TagSpecifications=_tag_spec("route-table", {"Name": p["name"]}))["RouteTable"])
            table_id, subnets, target = table["RouteTableId"], [], None
        if p["gateway_id"] and target is None:
            aws_call(ctx, "ec2", "CreateRoute", resource=table_id, RouteTableId=table_id,
                     DestinationCidrBlock="0.0.0.0/0", GatewayId=p["gateway_id"])
        elif p["gateway_id"] and target != p["gateway_id"]:
            aws_call(ctx, "ec2", "ReplaceRoute", resource=table_id, RouteTableId=table_id,
                     DestinationCidrBlock="0.0.0.0/0", GatewayId=p["gateway_id"])
        for subnet_id in (s for s in p["subnet_ids"] if s not in subnets):
            self._associate(ctx, table_id, subnet_id)
        return {"route_table_id": table_id}

    def _associate(self, ctx: StepContext, table_id: str, subnet_id: str) -> None:
        # A subnet has one explicit association: move it if it has one elsewhere (AWS refuses a second).
        found = aws_call(ctx, "ec2", "DescribeRouteTables",
                         Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
        for table in found:
            for assoc in table.get("Associations") or ():
                if assoc.get("SubnetId") == subnet_id and table["RouteTableId"] != table_id:
                    ctx.progress(f"moving {subnet_id} from {table['RouteTableId']} to {table_id}")
                    aws_call(ctx, "ec2", "ReplaceRouteTableAssociation", resource=subnet_id,
                             AssociationId=assoc["RouteTableAssociationId"], RouteTableId=table_id)
                    return
        aws_call(ctx, "ec2", "AssociateRouteTable", resource=subnet_id, RouteTableId=table_id, SubnetId=subnet_id)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("route table", None, p["name"])]


# --- ec2.security-group ----------------------------------------------------------------------------


def _sg_text(ctx: StepContext, value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 255 or not _SG_TEXT.fullmatch(value):
        raise param_error(ctx, f"{what} {value!r}: 1 to 255 of ASCII letters, digits, spaces and "
                               "._-:/()#,@[]+=&;{}!$*")
    return value


class Ec2SecurityGroup:
    """The operator security group SG-POS-OPS in the VPC (names compared ignoring case, as AWS does).

    Params: `name` (rule security-group-ops: SG-POS-OPS), `vpc_id`, `description` (fixed at creation:
    AWS cannot change it, so a different one is reported). Outputs: `group_id`, `vpc_id`.

    Example: `params: {name: SG-POS-OPS, vpc_id: '{{ vpc_id }}', description: Operator access to SQL
    Server}`, `outputs: {group_id: group_id}`.
    """

    name: ClassVar[str] = "ec2.security-group"
    summary: ClassVar[str] = "The operator security group (SG-POS-OPS) in a VPC, found by name."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="security-group-ops", doc="The group name: SG-POS-OPS."),
        Param(name="vpc_id", doc="The VPC."),
        Param(name="description", doc="What the group is for (cannot be changed later)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("group_id", "vpc_id")
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
        groups = aws_call(ctx, "ec2", "DescribeSecurityGroups",
                          Filters=[{"Name": "vpc-id", "Values": [p["vpc_id"]]}])["SecurityGroups"]
        # AWS: names are unique in a VPC ignoring case, so sg-pos-ops would block SG-POS-OPS.
        same = [g for g in groups if g["GroupName"].lower() == p["name"].lower()]
        return same[0] if same else None

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        group = self._find(ctx, p)
        if group is None:
            return {}, []
        current = {"group_id": group["GroupId"], "GroupName": group["GroupName"], "Description": group["Description"],
                   "tag Name": _tags(group.get("Tags")).get("Name")}
        wanted = {"GroupName": p["name"], "Description": p["description"], "tag Name": p["name"]}
        return current, [Difference(k, current[k], v) for k, v in wanted.items() if current[k] != v]

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
        _refuse(ctx, f"security group {p['name']}", probe.differences, self._FIXABLE)
        if probe.current:
            group_id = str(probe.current["group_id"])
            aws_call(ctx, "ec2", "CreateTags", resource=group_id, Resources=[group_id],
                     Tags=[{"Key": "Name", "Value": p["name"]}])
        else:
            def find() -> str | None:
                group = self._find(ctx, p)
                return group["GroupId"] if group else None

            group_id = creating(ctx, "ec2", "CreateSecurityGroup", find=find, resource=p["name"],
                                make=lambda client: client.create_security_group(
                                    GroupName=p["name"], Description=p["description"], VpcId=p["vpc_id"],
                                    TagSpecifications=_tag_spec("security-group", {"Name": p["name"]}))["GroupId"])
        return {"group_id": group_id, "vpc_id": p["vpc_id"]}

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
        Param(name="ip", doc="The operator's public IPv4 address, e.g. 203.0.113.10."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("cidr",)

    def _cidr(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        try:
            return operator_cidr(params.get("ip"), sandbox=_sandbox(ctx))
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


class Ec2IngressRule:
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
    summary: ClassVar[str] = "An operator's IP rule on a TCP port of a security group, found by its description."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="group_id", doc="The security group (SG-POS-OPS)."),
        Param(name="port", kind="int", required=False, default=1433, doc="TCP port (1433: SQL Server)."),
        Param(name="cidr", doc="The operator's public IPv4 address (or its /32)."),
        Param(name="description", rule="sg-rule-description", doc="The operator's name: identifies the rule."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("cidr",)
    _FIXABLE: ClassVar[set[str]] = {"CidrIp", "Description", "old addresses"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        aws_id(ctx, p["group_id"], "sg", "group_id")
        if not isinstance(p["port"], int) or isinstance(p["port"], bool) or not 1 <= p["port"] <= 65535:
            raise param_error(ctx, f"port {p['port']!r} must be a whole number from 1 to 65535")
        try:
            p["cidr"] = operator_cidr(p["cidr"], sandbox=_sandbox(ctx))
        except InputError as exc:
            raise param_error(ctx, str(exc), exc.hint) from None
        _text(ctx, p, "description")
        return p

    def _ranges(self, ctx: StepContext, p: Mapping[str, Any]) -> list[tuple[str, str]]:
        groups = aws_call(ctx, "ec2", "DescribeSecurityGroups", resource=p["group_id"],
                          GroupIds=[p["group_id"]])["SecurityGroups"]
        ranges: list[tuple[str, str]] = []
        for perm in groups[0].get("IpPermissions") or () if groups else ():
            if perm.get("IpProtocol") == "tcp" and perm.get("FromPort") == p["port"] == perm.get("ToPort"):
                ranges += [(r["CidrIp"], r.get("Description") or "") for r in perm.get("IpRanges") or ()]
        return ranges

    def _state(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[bool, dict[str, Any], list[Difference], str]:
        """(done, current rules, differences, note) for the operator's rule."""
        ranges = self._ranges(ctx, p)
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
        present = {c: d for c, d in ranges}
        if p["cidr"] not in present:
            def find() -> bool | None:
                return True if any(c == p["cidr"] for c, _ in self._ranges(ctx, p)) else None

            creating(ctx, "ec2", "AuthorizeSecurityGroupIngress", find=find, resource=p["group_id"],
                     make=lambda client: client.authorize_security_group_ingress(
                         GroupId=p["group_id"], IpPermissions=self._permission(p, p["cidr"], p["description"])))
        elif present[p["cidr"]] == "":
            aws_call(ctx, "ec2", "UpdateSecurityGroupRuleDescriptionsIngress", resource=p["group_id"],
                     GroupId=p["group_id"], IpPermissions=self._permission(p, p["cidr"], p["description"]))
        # Only now, with the new address allowed, revoke the operator's old ones: access never lapses.
        for cidr, description in ranges:
            if description == p["description"] and cidr != p["cidr"]:
                aws_call(ctx, "ec2", "RevokeSecurityGroupIngress", resource=p["group_id"], GroupId=p["group_id"],
                         IpPermissions=self._permission(p, cidr, None))
        return {"cidr": p["cidr"]}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        done, _, differences, _ = self._state(ctx, p)
        if done:
            return ()
        return differences or [Difference("rule", None, f"{p['cidr']} on TCP {p['port']} ({p['description']})")]


# --- ec2.key-pair ----------------------------------------------------------------------------------


def _searchable(vault: object) -> bool:
    """False for the manual password manager: it cannot look anything up, so absence proves nothing."""
    from kensium_provision.vault.backends import ManualVault

    return not isinstance(vault, ManualVault)


def _public_openssh(private_pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def _new_private_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The "BEGIN RSA PRIVATE KEY" form: what the EC2 console's "Decrypt password" takes.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


class Ec2KeyPair:
    """An EC2 key pair whose private key lives only in the password manager (never on disk).

    kprov makes the RSA key itself, stores the private key in the password manager first, and only then
    imports the public key into EC2, so no crash can leave a key pair whose private key is lost. If the
    password manager already holds the key (an earlier run stopped after storing it), its public key is
    imported. A key pair in EC2 whose private key is not in the password manager is reported: AWS never
    shows a private key again (with the manual password manager, which cannot be looked up, an existing
    pair counts as done). Params: `name` (EC2 key pair name), `vault_entry` (password-manager entry,
    `<owner>/<credential>`, default `<name>/key-pair`). Outputs: `key_name`, `key_ref`.

    Example: `params: {name: '{{ host }}-key', vault_entry: '{{ host }}/key-pair'}`, `outputs: {key_name:
    key_name, key_ref: key_ref}`.
    """

    name: ClassVar[str] = "ec2.key-pair"
    summary: ClassVar[str] = "An RSA key pair whose private key is kept in the password manager (imported into EC2)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", doc="The EC2 key pair name, e.g. POS01-key."),
        Param(name="vault_entry", required=False, default="", doc="Password-manager entry for the private key."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("key_name", "key_ref")

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        name = _text(ctx, p, "name")
        if len(name) > 255 or not name.isascii() or any(ord(c) < 32 for c in name) or name != name.strip():
            raise param_error(ctx, f"key pair name {name!r}: up to 255 printable ASCII characters, "
                                   "no surrounding spaces")
        p["vault_entry"] = p["vault_entry"] or f"{name}/key-pair"
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = aws_call(ctx, "ec2", "DescribeKeyPairs", Filters=[{"Name": "key-name", "Values": [name]}])
        return next((k for k in found["KeyPairs"] if k["KeyName"] == name), None)

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        pair, vault = self._find(ctx, p["name"]), ctx.runtime.vault
        if not _searchable(vault):
            # The manual password manager cannot be asked; the key was shown once when the pair was made.
            return pair, f"manual:{p['vault_entry']}" if pair else None
        return pair, vault.find(p["vault_entry"])

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        pair, ref = self._observe(ctx, p)
        desired = {"key pair": p["name"], "private key": f"password manager: {p['vault_entry']}"}
        if pair and ref:
            return Probe(done=True, note=f"{p['name']}; private key in the password manager", desired=desired,
                         current={"key pair": p["name"], "private key": ref},
                         outputs={"key_name": p["name"], "key_ref": ref})
        if pair:
            return Probe(done=False, note=f"{p['name']} exists but its private key is not in the password manager",
                         current={"key pair": p["name"]}, desired=desired,
                         differences=(Difference("private key in the password manager", None, p["vault_entry"]),))
        if ref:
            return Probe(done=False, note=f"the private key is stored; will import {p['name']} into EC2",
                         current={"private key": ref}, desired=desired,
                         differences=(Difference("key pair in EC2", None, p["name"]),))
        return Probe(done=False, note=f"will make {p['name']} and keep its private key in the password manager",
                     desired=desired)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import Secret

        p = self._args(ctx, params)
        pair, ref = self._observe(ctx, p)
        if pair and not ref:
            raise StepError(f"key pair {p['name']} exists in EC2, but its private key is not in the password manager "
                            f"({p['vault_entry']}); AWS never shows a private key again",
                            hint=f"if you have the key, store it as {p['vault_entry']}; otherwise delete key pair "
                                 f"{p['name']} (instances keep running) and run again to make a new one")
        if ref is None:
            private = Secret(_new_private_pem())
            ref = ctx.runtime.vault.store(p["vault_entry"], private,
                                          description=f"Private key of EC2 key pair {p['name']} (decrypts the "
                                                      "Windows Administrator password)",
                                          tags={"kprov:key-pair": p["name"]})
        else:
            private = ctx.runtime.vault.fetch(ref)
        public = _public_openssh(private.reveal())
        creating(ctx, "ec2", "ImportKeyPair", find=lambda: self._find(ctx, p["name"]), resource=p["name"],
                 make=lambda client: client.import_key_pair(
                     KeyName=p["name"], PublicKeyMaterial=public,
                     TagSpecifications=_tag_spec("key-pair", {"Name": p["name"]})))
        return {"key_name": p["name"], "key_ref": ref}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        pair, ref = self._observe(ctx, p)
        problems = [] if pair else [Difference("key pair in EC2", None, p["name"])]
        return problems + ([] if ref else [Difference("private key in the password manager", None, p["vault_entry"])])


# --- ec2.launch-check and ec2.instance -------------------------------------------------------------


def _launch_values(ctx: StepContext, p: Mapping[str, Any]) -> None:
    """Shapes moto accepts and AWS refuses (t9_huge, ami-XYZ), refused before any call."""
    if not isinstance(p.get("instance_type"), str) or not _INSTANCE_TYPE.fullmatch(p["instance_type"]):
        raise param_error(ctx, f"instance type {p.get('instance_type')!r} is not of the form family.size "
                               "(e.g. t3.large)")
    if not isinstance(p.get("image_id"), str) or not _IMAGE_ID.fullmatch(p["image_id"]):
        raise param_error(ctx, f"image id {p.get('image_id')!r} is not an AMI id (ami- and 8 or 17 hexadecimal digits)",
                   hint="find the current Windows Server AMI: aws ssm get-parameter --name "
                        "/aws/service/ami-windows-latest/Windows_Server-2022-English-Full-Base")
    _zone(ctx, p.get("zone"))


class Ec2LaunchCheck:
    """Check an instance's image and type before anything is created (read-only).

    The instance type must be offered in the zone (DescribeInstanceTypeOfferings) and the image must
    exist and be available, and be Windows when `platform` is windows. The sandbox has no images: there
    any well-formed id passes. Params: `image_id`, `instance_type`, `zone`, `platform` (windows or
    linux). Outputs: `image_name`, `platform`.

    Example: `params: {image_id: '{{ image_id }}', instance_type: '{{ instance_type }}', zone: '{{ zone }}'}`.
    """

    name: ClassVar[str] = "ec2.launch-check"
    summary: ClassVar[str] = "Check an AMI and instance type for a zone before launching (read-only)."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="image_id", doc="The AMI id."),
        Param(name="instance_type", doc="The instance type, e.g. t3.large."),
        Param(name="zone", doc="The availability zone."),
        Param(name="platform", required=False, default="windows", choices=("windows", "linux"),
              doc="The operating system the image must have."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("image_name", "platform")

    def _look(self, ctx: StepContext, params: Mapping[str, Any]) -> tuple[list[Difference], dict[str, object], str]:
        p = with_defaults(self.params, params)
        _launch_values(ctx, p)
        offered = aws_call(ctx, "ec2", "DescribeInstanceTypeOfferings", LocationType="availability-zone",
                           Filters=[{"Name": "instance-type", "Values": [p["instance_type"]]},
                                    {"Name": "location", "Values": [p["zone"]]}])["InstanceTypeOfferings"]
        differences = [] if offered else [Difference(f"instance type in {p['zone']}", None, p["instance_type"])]
        try:
            images = ctx.client("ec2").describe_images(ImageIds=[p["image_id"]])["Images"]
        except Exception as exc:
            if _error_code(exc) not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
                with _translated(ctx, "ec2", "DescribeImages", p["image_id"]):
                    raise
            images = []
        outputs: dict[str, object] = {"image_name": "", "platform": p["platform"]}
        if not images:
            if _sandbox(ctx):
                return differences, outputs, "the sandbox has no images: any well-formed id is taken"
            return differences + [Difference("image", None, p["image_id"])], outputs, f"no image {p['image_id']}"
        image = images[0]
        platform = "windows" if (image.get("Platform") or "").lower() == "windows" else "linux"
        outputs = {"image_name": image.get("Name") or "", "platform": platform}
        if image.get("State") != "available":
            differences.append(Difference("image state", image.get("State"), "available"))
        if platform != p["platform"]:
            differences.append(Difference("image platform", platform, p["platform"]))
        return differences, outputs, f"{p['image_id']} ({outputs['image_name']})"

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        differences, outputs, note = self._look(ctx, params)
        return Probe(done=not differences, note=note if not differences else "; ".join(map(str, differences)),
                     current=dict(outputs), differences=tuple(differences), outputs=outputs)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        raise StepError(f"the launch settings will not work: {probe.note}",
                        hint="answer another image or instance type (DescribeInstanceTypeOfferings lists a "
                             "zone's types)")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return self._look(ctx, params)[0]


class Ec2Instance:
    """A POS host: an EC2 instance found by its Name tag among the not-terminated ones.

    Launched once with a deterministic ClientToken (a retried or resumed launch never makes a second
    host), IMDSv2 required. Differences in zone, subnet, type, image or key pair are reported (AWS
    cannot change them in place); security groups and the `tags` are set back. `launch_tags` are
    written at launch only and never compared again: another checklist owns them (PosVersion, set by
    the POS install checklist once POS is on the host). Params: `name` (rule ec2-host, POSNN), `zone`,
    `subnet_id`, `group_ids`, `key_name`, `instance_type`, `image_id`, `tags`, `launch_tags`.
    Outputs: `instance_id`, `zone`, `private_ip`, `public_ip`, `state`.

    Example: `params: {name: '{{ host }}', zone: '{{ zone }}', subnet_id: '{{ subnet_id }}', group_ids:
    ['{{ group_id }}'], key_name: '{{ key_name }}', instance_type: t3.large, image_id: '{{ image_id }}',
    launch_tags: {PosVersion: not-installed}}`.
    """

    name: ClassVar[str] = "ec2.instance"
    summary: ClassVar[str] = "An EC2 instance found by its Name tag, launched once with a ClientToken."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="ec2-host", doc="The host's Name tag (POSNN)."),
        Param(name="zone", doc="Availability zone; must be the subnet's."),
        Param(name="subnet_id", doc="The subnet to launch in."),
        Param(name="group_ids", kind="list", doc="Security groups, e.g. SG-POS-OPS's id."),
        Param(name="key_name", doc="The key pair (its private key decrypts the Administrator password)."),
        Param(name="instance_type", doc="e.g. t3.large."),
        Param(name="image_id", doc="The AMI id (Windows Server)."),
        Param(name="tags", kind="map", required=False, default=None, doc="Tags kept as given (Name is added)."),
        Param(name="launch_tags", kind="map", required=False, default=None,
              doc="Tags written at launch only, never compared afterwards (e.g. PosVersion)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("instance_id", "zone", "private_ip", "public_ip", "state")
    _UNFIXABLE: ClassVar[set[str]] = {"AvailabilityZone", "SubnetId", "InstanceType", "ImageId", "KeyName"}

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        _text(ctx, p, "name")
        _launch_values(ctx, p)
        aws_id(ctx, p["subnet_id"], "subnet", "subnet_id")
        p["group_ids"] = sorted(set(aws_ids(ctx, p["group_ids"], "sg", "group_ids")))
        _text(ctx, p, "key_name")
        p["tags"] = {**_check_tags(ctx, p["tags"] or {}), "Name": p["name"]}
        p["launch_tags"] = _check_tags(ctx, p["launch_tags"] or {})
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = aws_call(ctx, "ec2", "DescribeInstances",
                         Filters=_name_filter(name) + [{"Name": "instance-state-name", "Values": _LIVE_STATES}])
        instances = [i for r in found.get("Reservations") or () for i in r.get("Instances") or ()]
        return _one(instances, "instance", name, "InstanceId")

    @staticmethod
    def _outputs(instance: Mapping[str, Any]) -> dict[str, object]:
        return {"instance_id": instance["InstanceId"], "zone": instance["Placement"]["AvailabilityZone"],
                "private_ip": instance.get("PrivateIpAddress"), "public_ip": instance.get("PublicIpAddress"),
                "state": instance["State"]["Name"]}

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        instance = self._find(ctx, p["name"])
        if instance is None:
            return {}, []
        current = {"instance_id": instance["InstanceId"], "state": instance["State"]["Name"],
                   "AvailabilityZone": instance["Placement"]["AvailabilityZone"], "SubnetId": instance.get("SubnetId"),
                   "InstanceType": instance["InstanceType"], "ImageId": instance["ImageId"],
                   "KeyName": instance.get("KeyName"),
                   "SecurityGroups": sorted(g["GroupId"] for g in instance.get("SecurityGroups") or ())}
        wanted = {"AvailabilityZone": p["zone"], "SubnetId": p["subnet_id"], "InstanceType": p["instance_type"],
                  "ImageId": p["image_id"], "KeyName": p["key_name"], "SecurityGroups": p["group_ids"]}
        differences = [Difference(k, current[k], v) for k, v in wanted.items() if current[k] != v]
        differences += _tag_differences(_tags(instance.get("Tags")), p["tags"])
        return {**current, "outputs": self._outputs(instance)}, differences

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        desired = {"name": p["name"], "zone": p["zone"], "instance_type": p["instance_type"], "image_id": p["image_id"]}
        if not current:
            return Probe(done=False, note=f"no live instance is named {p['name']}: will launch it", desired=desired)
        outputs = current.pop("outputs")
        return Probe(done=not differences, note=f"{current['instance_id']} ({p['name']}, {current['state']})",
                     current=current, desired=desired, differences=tuple(differences), outputs=outputs)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        _refuse(ctx, f"instance {p['name']}", probe.differences,
                {d.field for d in probe.differences if d.field not in self._UNFIXABLE})
        if probe.current:
            instance_id = str(probe.current["instance_id"])
            for d in probe.differences:
                if d.field == "SecurityGroups":
                    aws_call(ctx, "ec2", "ModifyInstanceAttribute", resource=instance_id, InstanceId=instance_id,
                             Groups=p["group_ids"])
            tags = [{"Key": d.field[4:], "Value": d.expected} for d in probe.differences if d.field.startswith("tag ")]
            if tags:
                aws_call(ctx, "ec2", "CreateTags", resource=instance_id, Resources=[instance_id], Tags=tags)
            instance = self._find(ctx, p["name"])
            assert instance is not None
            return self._outputs(instance)
        subnet = aws_call(ctx, "ec2", "DescribeSubnets", resource=p["subnet_id"], SubnetIds=[p["subnet_id"]])["Subnets"]
        if subnet and subnet[0]["AvailabilityZone"] != p["zone"]:
            raise StepError(f"subnet {p['subnet_id']} is in {subnet[0]['AvailabilityZone']}, not {p['zone']}",
                            hint="answer the subnet of the host's zone")
        token = ctx.token("run-instances")
        instance = creating(ctx, "ec2", "RunInstances", find=lambda: self._find(ctx, p["name"]), token=token,
                            resource=p["name"], make=lambda client: client.run_instances(
                                ImageId=p["image_id"], InstanceType=p["instance_type"], KeyName=p["key_name"],
                                MinCount=1, MaxCount=1, ClientToken=token, SubnetId=p["subnet_id"],
                                SecurityGroupIds=p["group_ids"], Placement={"AvailabilityZone": p["zone"]},
                                MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
                                TagSpecifications=_tag_spec("instance", {**p["launch_tags"], **p["tags"]})
                                + _tag_spec("volume", {"Name": p["name"]}))["Instances"][0])
        return self._outputs(instance)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [Difference("instance", None, p["name"])]


# --- ec2.tags --------------------------------------------------------------------------------------


_RESOURCE_ID = re.compile(r"^[a-z]+-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_RESOURCE_TYPES = ("instance", "vpc", "subnet", "security-group", "internet-gateway", "route-table")


class Ec2Tags:
    """Tags on an EC2 resource, given by id (i-..., vpc-...) or by Name tag; differing ones are set.

    Only the tags listed are compared and written; others are left alone. `replace_only` protects a
    tag that records a fact: a missing tag, or one holding a listed value, is set; any other value is
    reported and never overwritten (a host's PosVersion changes only from not-installed). Params:
    `resource` (an id, or a Name tag value), `resource_type` (when `resource` is a name: instance (live
    ones only), vpc, subnet, security-group, internet-gateway, route-table), `tags` (map),
    `replace_only` (map: tag -> values kprov may overwrite). Outputs: `resource_id`.

    Example (record the installed POS version): `params: {resource: '{{ instance_id }}', tags:
    {PosVersion: '{{ pos_version }}'}, replace_only: {PosVersion: [not-installed]}}`.
    """

    name: ClassVar[str] = "ec2.tags"
    summary: ClassVar[str] = "Tags on an EC2 resource (by id or Name tag); only the listed tags are set."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="resource", doc="A resource id (i-..., vpc-...) or a Name tag value."),
        Param(name="resource_type", required=False, default="instance", choices=_RESOURCE_TYPES,
              doc="The kind of resource when `resource` is a Name tag."),
        Param(name="tags", kind="map", doc="The tags to have, e.g. {PosVersion: '3.10.2'}."),
        Param(name="replace_only", kind="map", required=False, default=None,
              doc="Tag -> the values kprov may overwrite; any other existing value is reported, never replaced."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("resource_id",)

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        _text(ctx, p, "resource")
        p["tags"] = _check_tags(ctx, p["tags"])
        if not p["tags"]:
            raise param_error(ctx, "tags must list at least one tag")
        guard = p["replace_only"] or {}
        if not isinstance(guard, dict) or not all(isinstance(v, list) for v in guard.values()):
            raise param_error(ctx, f"replace_only must map tag keys to lists of values, got {guard!r}")
        p["replace_only"] = {k: [str(x) for x in v] for k, v in guard.items()}
        return p

    @staticmethod
    def _protected(p: Mapping[str, Any], actual: Mapping[str, str]) -> list[str]:
        """Tags whose current value `replace_only` forbids overwriting."""
        return [k for k, v in p["tags"].items() if k in p["replace_only"] and k in actual and actual[k] != v
                and actual[k] not in p["replace_only"][k]]

    def _resolve(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        resource = p["resource"]
        if _RESOURCE_ID.fullmatch(resource):
            found = aws_call(ctx, "ec2", "DescribeTags", Filters=[{"Name": "resource-id", "Values": [resource]}])
            if resource.startswith("i-"):
                exists = self._live_instances(ctx, [{"Name": "instance-id", "Values": [resource]}])
                if not exists:
                    return None, {}
            return resource, {t["Key"]: t["Value"] for t in found["Tags"]}
        if p["resource_type"] == "instance":
            instances = self._live_instances(ctx, _name_filter(resource))
            match = _one(instances, "instance", resource, "InstanceId")
            return (match["InstanceId"], _tags(match.get("Tags"))) if match else (None, {})
        found = aws_call(ctx, "ec2", "DescribeTags", Filters=[
            {"Name": "resource-type", "Values": [p["resource_type"]]}, {"Name": "key", "Values": ["Name"]},
            {"Name": "value", "Values": [resource]}])
        ids = sorted({t["ResourceId"] for t in found["Tags"]})
        _one([{"ResourceId": i} for i in ids], p["resource_type"], resource, "ResourceId")
        if not ids:
            return None, {}
        tags = aws_call(ctx, "ec2", "DescribeTags", Filters=[{"Name": "resource-id", "Values": ids}])["Tags"]
        return ids[0], {t["Key"]: t["Value"] for t in tags}

    def _live_instances(self, ctx: StepContext, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = aws_call(ctx, "ec2", "DescribeInstances",
                         Filters=filters + [{"Name": "instance-state-name", "Values": _LIVE_STATES}])
        return [i for r in found.get("Reservations") or () for i in r.get("Instances") or ()]

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        resource_id, actual = self._resolve(ctx, p)
        if resource_id is None:
            return Probe(done=False, note=f"no {p['resource_type']} {p['resource']} to tag", desired=p["tags"])
        differences = _tag_differences(actual, p["tags"])
        shown = {k: actual.get(k) for k in p["tags"]}
        note = f"{resource_id}: " + ("; ".join(map(str, differences)) if differences else "tags as they should be")
        if self._protected(p, actual):
            note += f" (kprov will not overwrite {', '.join(self._protected(p, actual))}: see replace_only)"
        return Probe(done=not differences, note=note, current={"resource_id": resource_id, **shown},
                     desired=p["tags"], differences=tuple(differences), outputs={"resource_id": resource_id})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        resource_id, actual = self._resolve(ctx, p)
        if resource_id is None:
            raise StepError(f"there is no {p['resource_type']} {p['resource']} to tag",
                            hint="create it first (its shared checklist), or check the name")
        protected = self._protected(p, actual)
        if protected:
            shown = ", ".join(f"{k}={actual[k]!r}" for k in protected)
            raise StepError(f"{resource_id} already records {shown}; kprov overwrites "
                            + ", ".join(f"{k} only from {' or '.join(p['replace_only'][k])}" for k in protected),
                            hint="this is a fact about the resource, not a setting: if it is wrong, correct it by "
                                 "hand; if it is right, answer it (e.g. a new host for another POS version)")
        tags = [{"Key": k, "Value": v} for k, v in p["tags"].items() if actual.get(k) != v]
        if tags:
            aws_call(ctx, "ec2", "CreateTags", resource=resource_id, Resources=[resource_id], Tags=tags)
        return {"resource_id": resource_id}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        resource_id, actual = self._resolve(ctx, p)
        if resource_id is None:
            return [Difference(p["resource_type"], None, p["resource"])]
        return _tag_differences(actual, p["tags"])


# --- ec2.windows-password --------------------------------------------------------------------------


class Ec2WindowsPassword:
    """The Windows Administrator password of an instance, decrypted with its key pair, into the password manager.

    Polls GetPasswordData (Windows makes it available a few minutes after the first boot; AWS says it
    can take 15 minutes) within `budget` seconds, decrypts it with the key pair's private key taken from
    the password manager (`key_ref`, from ec2.key-pair), and stores it as `vault_entry`. Done when that
    entry exists. Honest limits: only Windows instances have one (the instance's Platform must be
    windows), and the sandbox (moto) never returns decryptable data, so sandbox checklists record the
    password by hand instead (a manual step). Params: `instance_id`, `key_ref`, `vault_entry`, `budget`,
    `interval`. Outputs: `password_ref`.

    Example: `params: {instance_id: '{{ instance_id }}', key_ref: '{{ key_ref }}', vault_entry:
    '{{ host }}/administrator'}`.
    """

    name: ClassVar[str] = "ec2.windows-password"
    summary: ClassVar[str] = "A Windows instance's Administrator password, decrypted with its key pair, into the vault."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="instance_id", doc="The Windows instance."),
        Param(name="key_ref", doc="Password-manager reference of the key pair's private key (ec2.key-pair)."),
        Param(name="vault_entry", doc="Password-manager entry for the password, e.g. POS01/administrator."),
        Param(name="budget", kind="int", required=False, default=1800, doc="Seconds to wait for the password."),
        Param(name="interval", kind="int", required=False, default=30, doc="Seconds between polls."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("password_ref",)

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        aws_id(ctx, p["instance_id"], "i", "instance_id")
        _text(ctx, p, "key_ref")
        _text(ctx, p, "vault_entry")
        return p

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        vault = ctx.runtime.vault
        desired = {"password manager": p["vault_entry"]}
        if not _searchable(vault) and ctx.runtime.mode is Mode.CHECK:
            return Probe(done=True, note=f"not checkable: the manual password manager cannot look up "
                         f"{p['vault_entry']}", desired=desired, outputs={"password_ref": f"manual:{p['vault_entry']}"})
        ref = vault.find(p["vault_entry"]) if _searchable(vault) else None
        if ref:
            return Probe(done=True, note=f"stored as {p['vault_entry']}", current={"password manager": ref},
                         desired=desired, outputs={"password_ref": ref})
        return Probe(done=False, note=f"will fetch and store it as {p['vault_entry']}", desired=desired)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import Secret

        p = self._args(ctx, params)
        operator = ctx.runtime.operator
        if not _searchable(ctx.runtime.vault) and operator.interactive and operator.confirm(
                f"Does the Kensium Password Manager already hold {p['vault_entry']}? (yes: nothing is fetched)",
                default=False, key=f"vault:{p['vault_entry']}"):
            return {"password_ref": f"manual:{p['vault_entry']}"}
        found = aws_call(ctx, "ec2", "DescribeInstances", resource=p["instance_id"], InstanceIds=[p["instance_id"]])
        instance = found["Reservations"][0]["Instances"][0]
        if (instance.get("Platform") or "").lower() != "windows":
            raise StepError(f"{p['instance_id']} is not a Windows instance: it has no Administrator password to fetch",
                            hint="in the sandbox (moto) there is no Windows: answer admin_password_source: manual")
        runtime = ctx.runtime
        start, data = runtime.monotonic(), ""
        while not (data := str(aws_call(ctx, "ec2", "GetPasswordData", resource=p["instance_id"],
                                        InstanceId=p["instance_id"]).get("PasswordData") or "").strip()):
            left = float(p["budget"]) - (runtime.monotonic() - start)
            if left <= 0:
                raise StepError(f"no password data for {p['instance_id']} after {p['budget']} s",
                                hint="Windows may still be starting: run the same command again later")
            ctx.progress(f"Windows is not ready to give its password yet; {left:.0f} s left")
            runtime.sleep(min(float(p["interval"]), left))
            ctx.forget_reads()
        password = Secret(self._decrypt(p, runtime.vault.fetch(p["key_ref"]).reveal(), data))
        ref = runtime.vault.store(p["vault_entry"], password,
                                  description=f"Windows Administrator password of {p['instance_id']}",
                                  tags={"kprov:instance": p["instance_id"]})
        return {"password_ref": ref}

    @staticmethod
    def _decrypt(p: Mapping[str, Any], private_pem: str, data: str) -> str:
        import base64
        import binascii

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            key = serialization.load_pem_private_key(private_pem.encode(), password=None)
            return key.decrypt(base64.b64decode(data), padding.PKCS1v15()).decode()  # type: ignore[union-attr]
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise StepError(f"the password data of {p['instance_id']} does not decrypt with the stored private key",
                            hint="the instance was launched with another key pair; get the password in the console "
                                 "and store it by hand") from None

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        vault = ctx.runtime.vault
        return [] if not _searchable(vault) or vault.find(p["vault_entry"]) else [
            Difference("password manager entry", None, p["vault_entry"])]


STEP_TYPES = (Ec2Vpc, Ec2Subnet, Ec2InternetGateway, Ec2RouteTable, Ec2SecurityGroup, Ec2OperatorIp, Ec2IngressRule,
              Ec2KeyPair, Ec2LaunchCheck, Ec2Instance, Ec2Tags, Ec2WindowsPassword)
"""Every step type of this module, for the registry."""
