"""Live, read-only lookups for input choices and defaults (`choices_from:` / `default_from:`).

Named lookups encode Kensium's compatibility rules (an RDS instance of the right edition, an EC2
host running the client's POS version, never a Dedicated one); the generic form is one read call
plus a JMESPath query. Every call goes through the run's walled, counted session. The RDS instances,
EC2 instances and brokers are read through the run's facts source (`steps.facts`): live,
`read_db_instances`, `read_ec2_instances` and `rabbitmq_vhost.read_brokers`; in the fleet check, its
listings, read once for every client.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from kensium_provision.aws.call import pages
from kensium_provision.errors import InputError
from kensium_provision.model import Lookup
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.facts import facts
from kensium_provision.steps.generic import call_read, search
from kensium_provision.template import render_value

__all__ = ["LOOKUPS", "databases_by_instance", "placed", "read_db_instances", "read_ec2_instances", "run_lookup"]


def _tags(items: object) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or ()} if isinstance(items, list) else {}


def _conforming(ctx: StepContext, rule: str, names: list[str]) -> list[str]:
    if not rule:
        return sorted(names)
    return sorted(n for n in names if not ctx.runtime.names.check(rule, n, {}))


def region(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """The run's region (from the environment), offered for confirmation; no API call."""
    return [str(ctx.client("ec2").meta.region_name)]


def availability_zones(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    # Only real availability zones: DescribeAvailabilityZones also lists the Local and Wavelength zones a
    # region has opted into (ZoneType local-zone, wavelength-zone), where RDS and Amazon MQ do not run.
    # https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAvailabilityZones.html
    found = call_read(ctx, "ec2", "DescribeAvailabilityZones",
                      {"Filters": [{"Name": "state", "Values": ["available"]},
                                   {"Name": "zone-type", "Values": ["availability-zone"]}]})
    return sorted(z["ZoneName"] for z in found.get("AvailabilityZones", [])
                  if z.get("ZoneType", "availability-zone") == "availability-zone")


def read_db_instances(ctx: StepContext) -> list[Any]:
    """The live `db_instances` fact: every RDS DB instance (`rds:DescribeDBInstances`, all pages)."""
    return list(pages(ctx.client("rds"), "DescribeDBInstances", "DBInstances", resource=f"step {ctx.step_id}"))


def read_ec2_instances(ctx: StepContext, *, states: Collection[str], tags: Mapping[str, str],
                       zone: str = "") -> list[Any]:
    """The live `ec2_instances` fact: the reservations of `ec2:DescribeInstances` filtered by state, tags, zone."""
    filters: list[dict[str, Any]] = [{"Name": "instance-state-name", "Values": list(states)}]
    filters += [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
    if zone:
        filters.append({"Name": "availability-zone", "Values": [zone]})
    return list(pages(ctx.client("ec2"), "DescribeInstances", "Reservations", resource=f"step {ctx.step_id}",
                      Filters=filters))


def brokers(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """Brokers with conforming names; to place a client's hub vhost (`room: true`, never in check mode), only
    those under their `vhost_max` (steps.capacity; counted from the client records), so a full one is refused
    with those that have room; when every one is full, an InputError that says so and suggests a new broker."""
    from kensium_provision.model import Mode
    from kensium_provision.steps.capacity import broker_vhost_limit

    found = facts(ctx).brokers(ctx)
    room = params.get("room") is True and ctx.runtime.mode is not Mode.CHECK
    used = placed(ctx, "broker") if room else {}
    mq = ctx.client("mq")
    return _with_room(ctx, params.get("rule", ""), (
        (str(b["BrokerName"]), broker_vhost_limit(mq, b) if room else None, used.get(str(b["BrokerName"]).lower(), 0),
         f"vhosts, {b.get('HostInstanceType')}") for b in found),
        full="every shared broker is full", hint="make a new shared broker first (kprov provision shared rabbitmq)")


def _with_room(ctx: StepContext, rule: str, candidates: Iterable[tuple[str, int | None, int, str]], *, full: str,
               hint: str) -> list[str]:
    """The conforming names of (name, limit or None for none, count, what is counted) under their limit; when
    there are candidates but every one is full, an InputError naming each with its use."""
    names, refused = [], []
    for name, limit, count, what in candidates:
        if limit is not None and count >= limit:
            refused.append(f"{name} ({count} of {limit} {what})")
        else:
            names.append(name)
    conforming = _conforming(ctx, rule, names)
    if refused and not conforming:
        raise InputError(f"{full}: {', '.join(refused)}", hint=hint)
    return conforming


def placed(ctx: StepContext, resource: str) -> dict[str, int]:
    """How many installed clients' records name each shared resource (`rds_instance`, `broker`; lower-case):
    what kprov placed there. A removed client's database and vhost are gone."""
    from kensium_provision.records.clients import RETIRED, list_clients, table_of

    counts: dict[str, int] = {}
    for record in list_clients(ctx.client("dynamodb"), table_of(ctx.runtime.settings)):
        name = str(getattr(record, resource) or "").lower()
        if name and record.status not in RETIRED:
            counts[name] = counts.get(name, 0) + 1
    return counts


def databases_by_instance(ctx: StepContext) -> dict[str, int]:
    """How many client records name each RDS instance (lower-case): the databases kprov put there."""
    return placed(ctx, "rds_instance")


def rds_instances(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """Shared RDS instances: conforming names, the wanted engine/zone, never tagged Dedicated; and, to place a
    client (`room`, default: outside check mode when shared only), only those under RDS's databases-per-instance
    limit of their class (counted from the client records), so a full one is refused with those that have room;
    when every one is full, an InputError that says so and suggests a new instance."""
    from kensium_provision.model import Mode
    from kensium_provision.steps.capacity import database_limit

    room = params.get("room", ctx.runtime.mode is not Mode.CHECK and params.get("shared_only", True) is True)
    used = databases_by_instance(ctx) if room is True else {}
    candidates = []
    for db in facts(ctx).db_instances(ctx):
        tags = _tags(db.get("TagList"))
        if params.get("shared_only", True) and tags.get("kprov:hosting") == "Dedicated":
            continue
        if params.get("engine") and db.get("Engine") != params["engine"]:
            continue
        if params.get("zone") and db.get("AvailabilityZone") != params["zone"]:
            continue
        name = tags.get("kprov:name", db["DBInstanceIdentifier"])
        count = used.get(name.lower(), 0) + (used.get(str(db["DBInstanceIdentifier"]).lower(), 0)
                                             if name.lower() != str(db["DBInstanceIdentifier"]).lower() else 0)
        candidates.append((name, database_limit(str(db.get("DBInstanceClass", ""))), count,
                           f"databases, {db.get('DBInstanceClass')}"))
    return _with_room(ctx, params.get("rule", ""), candidates, full="every shared RDS instance of this kind is full",
                      hint="answer Shared (New) for a new shared instance (kprov provision shared rds)")


def ec2_hosts(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """Shared POS hosts: running, conforming Name tag, the client's POS version, not Dedicated; to place a
    client's tenant (`room: true`, never in check mode), only those under `capacity.tenants_per_host` (an
    [INFER] setting, steps.capacity; counted from the client records), as `brokers` does."""
    from kensium_provision.model import Mode
    from kensium_provision.steps.capacity import tenants_per_host

    version = str(params.get("pos_version") or "")
    found = facts(ctx).ec2_instances(ctx, states=("pending", "running"),
                                     tags={"PosVersion": version} if version else {},
                                     zone=str(params.get("zone") or ""))
    room = params.get("room") is True and ctx.runtime.mode is not Mode.CHECK
    used, limit = (placed(ctx, "ec2_host"), tenants_per_host(ctx.runtime.settings)) if room else ({}, None)
    candidates = []
    for reservation in found:
        for instance in reservation.get("Instances", []):
            tags = _tags(instance.get("Tags"))
            if params.get("shared_only", True) and tags.get("kprov:hosting") == "Dedicated":
                continue
            if "Name" in tags:
                candidates.append((tags["Name"], limit, used.get(tags["Name"].lower(), 0),
                                   "tenants, capacity.tenants_per_host"))
    return _with_room(ctx, params.get("rule", ""), candidates, full="every shared POS host of this version is full",
                      hint="answer Shared (New) for a new shared host, or raise capacity.tenants_per_host in the "
                           "config if Kensium confirms a host serves more")


def vpcs(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    found = call_read(ctx, "ec2", "DescribeVpcs", {})
    return sorted(_tags(v.get("Tags")).get("Name", v["VpcId"]) for v in found.get("Vpcs", []))


def subnets(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    filters = [{"Name": "vpc-id", "Values": [str(params["vpc_id"])]}] if params.get("vpc_id") else []
    if params.get("zone"):
        filters.append({"Name": "availability-zone", "Values": [str(params["zone"])]})
    found = call_read(ctx, "ec2", "DescribeSubnets", {"Filters": filters})
    return sorted(_tags(s.get("Tags")).get("Name", s["SubnetId"]) for s in found.get("Subnets", []))


def vpc_zones(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """The zones the VPC named `vpc_name` covers with a subnet whose Name starts with `subnet_prefix`
    (default POS-public-): a host or broker can only be placed where its subnet is."""
    named = [{"Name": "tag:Name", "Values": [str(params["vpc_name"])]}]
    vpc = call_read(ctx, "ec2", "DescribeVpcs", {"Filters": named})
    ids = [v["VpcId"] for v in vpc.get("Vpcs", [])]
    if not ids:
        return []
    prefix = str(params.get("subnet_prefix", "POS-public-"))
    found = call_read(ctx, "ec2", "DescribeSubnets", {"Filters": [{"Name": "vpc-id", "Values": ids}]})
    return sorted({s["AvailabilityZone"] for s in found.get("Subnets", [])
                   if _tags(s.get("Tags")).get("Name", "").startswith(prefix)})


def rds_instance_classes(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """The DB instance classes AWS offers for an edition (Express, Web) and engine version (a major alone, 15.00,
    is its latest listed version); an unoffered version is refused with the versions AWS lists."""
    from kensium_provision.steps.rds import EDITIONS, offered_version, orderable_classes

    engine = EDITIONS.get(str(params.get("edition", "")).lower(), str(params.get("edition", "")))
    return orderable_classes(ctx, engine, offered_version(ctx, engine, str(params.get("engine_version", ""))))


def broker_instance_types(ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
    """The RabbitMQ host instance types Amazon MQ runs `engine_version` on in `deployment_mode` (default
    SINGLE_INSTANCE), `by-purpose` first when the purpose's size is one of them; an unoffered version is refused
    with the versions Amazon MQ lists."""
    from kensium_provision.steps.amazonmq import BY_PURPOSE, by_purpose_type, fitting_types

    fitting = fitting_types(ctx, str(params.get("engine_version", "")),
                            str(params.get("deployment_mode") or "SINGLE_INSTANCE"))
    try:
        sized = by_purpose_type(ctx)
    except InputError:  # no purpose: offered, so that the broker step says why it needs an explicit type
        return [BY_PURPOSE, *fitting]
    return [BY_PURPOSE, *fitting] if sized in fitting else fitting


def next_free_name(ctx: StepContext, params: Mapping[str, Any]) -> str:
    """The next free numbered name (`mq-POS-03` when 01 and 02 exist), from live AWS; with `unfinished_of`
    (a shared checklist's id), the name of one that exists but whose run never finished, first."""
    rule = str(params.get("rule", ""))
    source = str(params.get("source", ""))
    existing_by: dict[str, Callable[[StepContext, Mapping[str, Any]], list[str]]] = {
        "brokers": brokers, "rds-instances": rds_instances, "ec2-hosts": ec2_hosts}
    if source not in existing_by:
        raise InputError(f"next-free-name needs source: one of {', '.join(existing_by)}")
    existing = existing_by[source](ctx, {"shared_only": False})
    unfinished = _unfinished(ctx, str(params.get("unfinished_of", "")), existing)
    if unfinished:  # a failed run's resource: finishing it, not a second one, is what Enter should do
        return unfinished[0]
    return str(ctx.runtime.names.next_free(rule, existing))


def _unfinished(ctx: StepContext, checklist_id: str, existing: list[str]) -> list[str]:
    """`existing` names that `checklist_id` never recorded as done (records.shared: written only after a
    successful apply), e.g. the host a failed shared-ec2 run launched."""
    if not checklist_id:
        return []
    from kensium_provision.records.shared import list_shared_records

    done = {record.name for record in list_shared_records(ctx.client("ssm"), checklist_id)}
    return sorted(name for name in existing if name not in done)


LOOKUPS: Mapping[str, Callable[[StepContext, Mapping[str, Any]], object]] = {
    "region": region,
    "availability-zones": availability_zones,
    "next-free-name": next_free_name,
    "rds-instances": rds_instances,
    "ec2-hosts": ec2_hosts,
    "brokers": brokers,
    "vpcs": vpcs,
    "subnets": subnets,
    "vpc-zones": vpc_zones,
    "rds-instance-classes": rds_instance_classes,
    "broker-instance-types": broker_instance_types,
}


def run_lookup(ctx: StepContext, lookup: Lookup, values: Mapping[str, object]) -> object:
    params = render_value(dict(lookup.params), values)
    if not isinstance(params, dict):  # a mapping renders to a mapping
        raise InputError(f"lookup params rendered to {type(params).__name__}, not a mapping")
    if lookup.name:
        return LOOKUPS[lookup.name](ctx, params)
    return search(lookup.query, call_read(ctx, lookup.service, lookup.operation, params))
