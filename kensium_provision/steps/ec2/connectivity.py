"""The `ec2.connectivity` step type: who reaches what in the built estate, judged from what AWS describes.

Reads the POS host (by Name tag), the RDS instance, the VPC's security groups and route tables, and asks
`reachability.judge` whether the host reaches the database on SQL Server's port, every operator with a
/32 rule in SG-POS-OPS reaches the host by RDP and the database's SQL Server, and the world reaches the
host on HTTPS and nothing else (the database not at all). Read-only: a finding names the path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.steps.aws_helpers import name_filter, one_named, step_call, text_param, with_defaults
from kensium_provision.steps.base import Difference, Param, Probe, StepContext
from kensium_provision.steps.ec2.reachability import Endpoint, Estate, ingress_rules, judge

__all__ = ["STEP_TYPES", "Ec2Connectivity"]


class Ec2Connectivity:
    """The estate's paths as POS needs them and nothing more (read-only; the judgement is `reachability`).

    Params: `host` (the host's Name tag), `db_instance` (the RDS identifier), `operators_group` (the group
    holding the operators' /32 rules, SG-POS-OPS). Outputs: none.

    Example: `params: {host: '{{ host }}', db_instance: '{{ rds_instance }}', operators_group: SG-POS-OPS}`.
    """

    name: ClassVar[str] = "ec2.connectivity"
    summary: ClassVar[str] = "Host to database, operators to RDP, the world to HTTPS only: judged from the rules."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="host", rule="ec2-host", doc="The POS host's Name tag."),
        Param(name="db_instance", doc="The RDS instance its tenant manager uses."),
        Param(name="operators_group", required=False, default="SG-POS-OPS", doc="The operators' group."),
    )
    outputs: ClassVar[tuple[str, ...]] = ()

    def _problems(self, ctx: StepContext, params: Mapping[str, Any]) -> list[str]:
        p = with_defaults(self.params, params)
        host_name, db_name = text_param(ctx, p, "host"), text_param(ctx, p, "db_instance").lower()
        found = step_call(ctx, "ec2", "DescribeInstances", Filters=[
            *name_filter(host_name), {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        instance = one_named([i for r in found.get("Reservations") or () for i in r.get("Instances") or ()],
                             "instance", host_name, "InstanceId")
        dbs = step_call(ctx, "rds", "DescribeDBInstances", resource=db_name, DBInstanceIdentifier=db_name,
                        missing=("DBInstanceNotFound", "DBInstanceNotFoundFault"))
        if instance is None or not (dbs or {}).get("DBInstances"):
            return [f"{host_name if instance is None else db_name} does not exist: nothing to judge"]
        db = dbs["DBInstances"][0]  # type: ignore[index]
        vpc = {"Name": "vpc-id", "Values": [instance["VpcId"]]}
        groups = step_call(ctx, "ec2", "DescribeSecurityGroups", Filters=[vpc])["SecurityGroups"]
        tables = step_call(ctx, "ec2", "DescribeRouteTables", Filters=[vpc])["RouteTables"]
        subnets = step_call(ctx, "ec2", "DescribeSubnets", Filters=[vpc])["Subnets"]
        zone_subnets = [s["SubnetIdentifier"] for s in (db.get("DBSubnetGroup") or {}).get("Subnets") or ()
                        if (s.get("SubnetAvailabilityZone") or {}).get("Name") == db.get("AvailabilityZone")]
        cidr = next((s["CidrBlock"] for s in subnets if zone_subnets and s["SubnetId"] == zone_subnets[0]), "")
        if not cidr:
            raise StepError(f"{db_name}: no subnet of its DB subnet group in {db.get('AvailabilityZone')}")
        host = Endpoint(name=host_name, group_ids=tuple(g["GroupId"] for g in instance.get("SecurityGroups") or ()),
                        subnet_id=str(instance.get("SubnetId")), private_ip=str(instance.get("PrivateIpAddress")),
                        public_ip=str(instance.get("PublicIpAddress") or ""))
        # RDS gives no address of its own: any address of its subnet stands for it (its rules are by group).
        database = Endpoint(name=db_name, group_ids=tuple(g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]),
                            subnet_id=zone_subnets[0], private_ip=str(next(ipaddress.ip_network(cidr).hosts())),
                            public_ip=str((db.get("Endpoint") or {}).get("Address") or "")
                            if db.get("PubliclyAccessible") else "")
        operators = [r.source for g in groups if g["GroupName"].lower() == p["operators_group"].lower()
                     for r in ingress_rules(g) if not r.from_group and r.source.endswith("/32")]
        return judge(Estate.from_described(groups, tables), host=host, database=database,
                     operator_cidrs=sorted(set(operators)))

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        problems = self._problems(ctx, params)
        return Probe(done=not problems, note="; ".join(problems) or "the paths are as POS needs them, nothing wider",
                     differences=tuple(Difference("path", p, None) for p in problems))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        raise StepError(f"the estate's paths are not as POS needs them: {probe.note}",
                        hint="run `kprov provision shared vpc` (it puts the groups' rules right), and give the host "
                             "SG-POS-OPS and SG-POS-HOST, the database SG-POS-OPS and SG-POS-DB")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        return [Difference("path", p, None) for p in self._problems(ctx, params)]


STEP_TYPES = (Ec2Connectivity,)
"""Every step type of this module, for the registry."""
