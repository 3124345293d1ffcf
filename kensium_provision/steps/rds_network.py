"""The RDS side of the region's network: the DB subnet group the shared SQL Server instances launch into.

Kept apart from `steps/rds.py` (the instances themselves): it belongs to the VPC checklist, and its
inputs are the VPC's subnets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.steps.aws_helpers import aws_id, aws_ids, creating, param_error, step_call, with_defaults
from kensium_provision.steps.base import Created, Difference, Param, Probe, StepContext, UndoCheck, record_created

__all__ = ["STEP_TYPES", "RdsDbSubnetGroup"]

# RDS: up to 255 letters, digits, periods, underscores, spaces or hyphens; stored in lower case.
_GROUP_NAME = re.compile(r"^[A-Za-z0-9._ -]{1,255}$")


class RdsDbSubnetGroup:
    """An RDS DB subnet group over the VPC's subnets, spanning at least two availability zones.

    AWS refuses a group in one zone (moto accepts it), so kprov checks the zones before creating.
    RDS stores the name in lower case; kprov uses it in lower case throughout. Subnets and the
    description are set back if they drift. Params: `name`, `subnet_ids` (two or more, in two or more
    zones), `description`. Outputs: `db_subnet_group`, `vpc_id`.

    Example: `params: {name: pos-db-subnets, subnet_ids: ['{{ public_a }}', '{{ public_b }}'], description:
    POS databases}`, `outputs: {db_subnet_group: db_subnet_group}`.
    """

    name: ClassVar[str] = "rds.db-subnet-group"
    summary: ClassVar[str] = "An RDS DB subnet group over subnets in at least two availability zones."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", rule="vpc-entity-name", doc="The group name (RDS keeps it in lower case)."),
        Param(name="subnet_ids", kind="list", doc="Subnets in two or more availability zones."),
        Param(name="description", doc="What the group is for."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("db_subnet_group", "vpc_id")

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Its group, by name as RDS keeps it (lower case) (`steps.base.Touches`)."""
        return frozenset({f"db-subnet-group:{str(params.get('name', '')).lower()}"})

    def _args(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        p = with_defaults(self.params, params)
        name = p.get("name")
        if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name) or name.lower() == "default":
            raise param_error(ctx, f"DB subnet group name {name!r}: up to 255 letters, digits, '.', '_', ' ' or '-', "
                       "and not 'default'")
        p["name"] = name.lower()
        p["subnet_ids"] = sorted(set(aws_ids(ctx, p["subnet_ids"], "subnet", "subnet_ids")))
        if len(p["subnet_ids"]) < 2:
            raise param_error(ctx, "a DB subnet group needs subnets in at least two availability zones; "
                                   "one subnet was given")
        description = p.get("description")
        if not isinstance(description, str) or not description.strip() or len(description) > 255:
            raise param_error(ctx, "description must be 1 to 255 characters")
        return p

    def _find(self, ctx: StepContext, name: str) -> dict[str, Any] | None:
        found = step_call(ctx, "rds", "DescribeDBSubnetGroups", resource=name, DBSubnetGroupName=name,
                          missing=("DBSubnetGroupNotFoundFault",))
        return dict(found["DBSubnetGroups"][0]) if found else None

    def _zones(self, ctx: StepContext, subnet_ids: Sequence[str]) -> dict[str, str]:
        subnets = step_call(ctx, "ec2", "DescribeSubnets", SubnetIds=list(subnet_ids))["Subnets"]
        return {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}

    def _observe(self, ctx: StepContext, p: Mapping[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
        group = self._find(ctx, p["name"])
        subnets = sorted(s["SubnetIdentifier"] for s in (group or {}).get("Subnets") or ())
        if group is not None and subnets == p["subnet_ids"]:
            # The group already lists each subnet's zone: no DescribeSubnets on a re-run.
            zones = {s["SubnetIdentifier"]: (s.get("SubnetAvailabilityZone") or {}).get("Name", "")
                     for s in group.get("Subnets") or ()}
        else:
            zones = self._zones(ctx, p["subnet_ids"])
        wanted_zones = sorted(set(zones.values()))
        differences = [] if len(wanted_zones) >= 2 else [
            Difference("zones of the subnets", wanted_zones, "two or more")]
        if group is None:
            return {}, differences
        current = {"db_subnet_group": group["DBSubnetGroupName"], "vpc_id": group.get("VpcId"), "SubnetIds": subnets,
                   "Description": group.get("DBSubnetGroupDescription")}
        if subnets != p["subnet_ids"]:
            differences.append(Difference("SubnetIds", subnets, p["subnet_ids"]))
        if current["Description"] != p["description"]:
            differences.append(Difference("Description", current["Description"], p["description"]))
        return current, differences

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        desired = {"SubnetIds": p["subnet_ids"], "Description": p["description"]}
        if not current:
            note = f"no DB subnet group {p['name']}: will create it"
            if differences:
                note = f"{p['name']} cannot be created: " + "; ".join(map(str, differences))
            return Probe(done=False, note=note, desired=desired, differences=tuple(differences))
        return Probe(done=not differences, note=f"{p['name']} in {current['vpc_id']}", current=current,
                     desired=desired, differences=tuple(differences),
                     outputs={"db_subnet_group": current["db_subnet_group"], "vpc_id": current["vpc_id"]})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        p = self._args(ctx, params)
        zones = self._zones(ctx, p["subnet_ids"])
        if len(set(zones.values())) < 2:  # moto takes a one-zone group; AWS does not
            raise StepError(f"the subnets of {p['name']} are all in {', '.join(sorted(set(zones.values())))}; "
                            "RDS needs two or more availability zones",
                            hint="give a subnet of the secondary zone too")
        for subnet_id in p["subnet_ids"]:
            aws_id(ctx, subnet_id, "subnet", "subnet_ids")
        if probe.current:
            step_call(ctx, "rds", "ModifyDBSubnetGroup", resource=p["name"], DBSubnetGroupName=p["name"],
                     DBSubnetGroupDescription=p["description"], SubnetIds=p["subnet_ids"])
        else:
            group = creating(ctx, "rds", "CreateDBSubnetGroup", find=lambda: self._find(ctx, p["name"]),
                             resource=p["name"], make=lambda client: client.create_db_subnet_group(
                                 DBSubnetGroupName=p["name"], DBSubnetGroupDescription=p["description"],
                                 SubnetIds=p["subnet_ids"],
                                 Tags=[{"Key": "Name", "Value": p["name"]}])["DBSubnetGroup"])
            record_created(ctx, "DB subnet group", p["name"])
            return {"db_subnet_group": p["name"], "vpc_id": group.get("VpcId")}
        group = self._find(ctx, p["name"])
        return {"db_subnet_group": p["name"], "vpc_id": (group or {}).get("VpcId")}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        p = self._args(ctx, params)
        current, differences = self._observe(ctx, p)
        return differences if current else [*differences, Difference("DB subnet group", None, p["name"])]

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        """The group the run created; refused while an RDS instance is in it."""
        present: list[Created] = []
        changed: list[str] = []
        for made in created:
            if self._find(ctx, made.id) is None:
                continue
            present.append(made)
            users = [d["DBInstanceIdentifier"] for d in step_call(ctx, "rds", "DescribeDBInstances")["DBInstances"]
                     if (d.get("DBSubnetGroup") or {}).get("DBSubnetGroupName") == made.id]
            if users:
                changed.append(f"DB subnet group {made.id} holds RDS instances since the run: {', '.join(users)}")
        return UndoCheck(present=tuple(present), changed=tuple(changed))

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        for made in created:
            ctx.progress(f"deleting DB subnet group {made.id}")
            step_call(ctx, "rds", "DeleteDBSubnetGroup", resource=made.id, DBSubnetGroupName=made.id)


STEP_TYPES = (RdsDbSubnetGroup,)
"""Every step type of this module, for the registry."""
