"""The POS estate's security groups as POS needs them, and who reaches what, judged from the described rules.

`ec2.group-rules` finds a missing or widened rule and fixes it; `reachability.judge` is a pure function
over the groups and routes AWS describes, tested first on hand-made data (each way the estate can be
wrong), then on the estate the shared checklists build in the sandbox (moto, in-process).
"""

from __future__ import annotations

from typing import Any

import pytest

from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode
from kensium_provision.steps.ec2.reachability import Endpoint, Estate, judge
from tests.checklist_harness import EXAMPLES, raw_client, run_checklist
from tests.fakes import MemoryVault
from tests.test_shared_network import VPC, finding, group_named

OPERATOR = "203.0.113.10/32"


def _group(group_id: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {"GroupId": group_id, "IpPermissions": list(rules),
            "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}


def _tcp(port: int, *, cidr: str = "", group: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
    if cidr:
        rule["IpRanges"] = [{"CidrIp": cidr}]
    if group:
        rule["UserIdGroupPairs"] = [{"GroupId": group}]
    return rule


HOST = Endpoint(name="POS01", group_ids=("sg-ops", "sg-host"), subnet_id="subnet-a", private_ip="10.0.0.10",
                public_ip="198.51.100.20")
DB = Endpoint(name="db-pos-01", group_ids=("sg-ops", "sg-db"), subnet_id="subnet-a", private_ip="10.0.0.20",
              public_ip="198.51.100.21")
ROUTES = [{"Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"},
                      {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}],
           "Associations": [{"SubnetId": "subnet-a"}]}]


def _designed(**replace: dict[str, Any]) -> list[dict[str, Any]]:
    groups = {"sg-ops": _group("sg-ops", _tcp(1433, cidr=OPERATOR), _tcp(3389, cidr=OPERATOR)),
              "sg-host": _group("sg-host", _tcp(443, cidr="0.0.0.0/0")),
              "sg-db": _group("sg-db", _tcp(1433, group="sg-host"))}
    groups.update(replace)
    return list(groups.values())


def test_the_designed_estate_reaches_what_pos_needs_and_nothing_more() -> None:
    assert judge(Estate.from_described(_designed(), ROUTES), host=HOST, database=DB, operator_cidrs=[OPERATOR]) == []


@pytest.mark.parametrize(("groups", "routes", "says"), [
    # The old design: SG-POS-OPS alone, its only rule SQL from the operator: members cannot reach each other.
    ([_group("sg-ops", _tcp(1433, cidr=OPERATOR))], ROUTES, "POS01 cannot reach db-pos-01 on TCP 1433"),
    (_designed(**{"sg-ops": _group("sg-ops", _tcp(1433, cidr=OPERATOR))}), ROUTES, "cannot reach POS01 by RDP"),
    (_designed(**{"sg-host": _group("sg-host")}), ROUTES, "the internet cannot reach POS01 on HTTPS"),
    (_designed(**{"sg-host": _group("sg-host", _tcp(443, cidr="0.0.0.0/0"), _tcp(3389, cidr="0.0.0.0/0"))}),
     ROUTES, "the internet reaches POS01: tcp 3389 from 0.0.0.0/0"),
    (_designed(**{"sg-db": _group("sg-db", _tcp(1433, group="sg-host"), _tcp(1433, cidr="0.0.0.0/1"))}),
     ROUTES, "the internet reaches db-pos-01: tcp 1433 from 0.0.0.0/1"),
    (_designed(**{"sg-db": _group("sg-db", {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                                  _tcp(1433, group="sg-host"))}),
     ROUTES, "the internet reaches db-pos-01: all traffic from 0.0.0.0/0"),
    (_designed(), [{**ROUTES[0], "Routes": ROUTES[0]["Routes"][:1]}], "the internet cannot reach POS01 on HTTPS"),
])
def test_each_way_the_estate_can_be_wrong_is_found(groups: list[dict[str, Any]], routes: list[dict[str, Any]],
                                                   says: str) -> None:
    problems = judge(Estate.from_described(groups, routes), host=HOST, database=DB, operator_cidrs=[OPERATOR])
    assert any(says in p for p in problems), problems


def test_a_host_egress_that_forbids_sql_server_cuts_the_path() -> None:
    only_https = [_tcp(443, cidr="0.0.0.0/0")]
    host = Endpoint(name="POS01", group_ids=("sg-host",), subnet_id="subnet-a", private_ip="10.0.0.10",
                    public_ip="198.51.100.20")
    groups = _designed(**{"sg-host": {**_group("sg-host", _tcp(443, cidr="0.0.0.0/0"), _tcp(3389, cidr=OPERATOR)),
                                      "IpPermissionsEgress": only_https}})
    problems = judge(Estate.from_described(groups, ROUTES), host=host, database=DB, operator_cidrs=[OPERATOR])
    assert problems == ["POS01 cannot reach db-pos-01 on TCP 1433"]


# --- on the built estate ----------------------------------------------------------------------------


def test_a_missing_or_widened_rule_is_a_finding_and_apply_puts_it_right(aws: None) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    ec2 = raw_client("ec2")
    ops, web = group_named("SG-POS-OPS"), group_named("SG-POS-HOST")
    ec2.authorize_security_group_ingress(GroupId=ops["GroupId"], IpPermissions=[_tcp(3389, cidr="0.0.0.0/0")])
    ec2.revoke_security_group_ingress(GroupId=web["GroupId"], IpPermissions=[_tcp(443, cidr="0.0.0.0/0")])

    check = run_checklist("shared/vpc", Mode.CHECK, VPC)
    assert check.exit_code is ExitCode.FAILED
    assert "rule wider than allowed" in finding(check, "ops-group-rules")
    assert "tcp 3389 from 0.0.0.0/0" in finding(check, "ops-group-rules")
    assert "missing rule" in finding(check, "host-group-rules") and "tcp 443 from 0.0.0.0/0" in finding(
        check, "host-group-rules")
    assert run_checklist("shared/vpc", Mode.APPLY, VPC).exit_code is ExitCode.OK
    assert run_checklist("shared/vpc", Mode.CHECK, VPC).exit_code is ExitCode.OK
    assert [r["IpRanges"] for r in group_named("SG-POS-OPS")["IpPermissions"] if r["FromPort"] == 3389] == [
        [{"CidrIp": OPERATOR, "Description": "Demo Operator"}]]


def described_estate() -> tuple[Estate, Endpoint, Endpoint]:
    """The estate as AWS describes it: the host (POS01), the RDS instance (db-pos-01), groups and routes."""
    ec2, rds = raw_client("ec2"), raw_client("rds")
    [instance] = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["POS01"]}])[
        "Reservations"] for i in r["Instances"]]
    [db] = rds.describe_db_instances(DBInstanceIdentifier="db-pos-01")["DBInstances"]
    vpc = instance["VpcId"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    [db_subnet] = [s for s in db["DBSubnetGroup"]["Subnets"]
                   if s["SubnetAvailabilityZone"]["Name"] == db["AvailabilityZone"]]
    host = Endpoint(name="POS01", group_ids=tuple(g["GroupId"] for g in instance["SecurityGroups"]),
                    subnet_id=instance["SubnetId"], private_ip=instance["PrivateIpAddress"],
                    public_ip=instance.get("PublicIpAddress", ""))
    # RDS gives no address of its own; any address of its subnet stands for it (rules here are by group).
    [subnet] = ec2.describe_subnets(SubnetIds=[db_subnet["SubnetIdentifier"]])["Subnets"]
    database = Endpoint(name="db-pos-01", group_ids=tuple(g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]),
                        subnet_id=subnet["SubnetId"], private_ip=subnet["CidrBlock"].split("/")[0][:-1] + "9",
                        public_ip=db["Endpoint"]["Address"] if db["PubliclyAccessible"] else "")
    return Estate.from_described(groups, tables), host, database


def test_the_estate_the_shared_checklists_build_reaches_what_pos_needs(aws: None) -> None:
    vault = MemoryVault()
    for name in ("vpc", "ec2", "rds"):
        report = run_checklist(f"shared/{name}", Mode.APPLY, EXAMPLES / f"shared-{name}.yaml", vault=vault)
        assert report.exit_code is ExitCode.OK, (name, report.error)
    estate, host, database = described_estate()
    assert judge(estate, host=host, database=database, operator_cidrs=[OPERATOR]) == []
    # And the same judgement sees it once the database admits the world.
    [db] = raw_client("rds").describe_db_instances(DBInstanceIdentifier="db-pos-01")["DBInstances"]
    db_group = [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]][-1]
    raw_client("ec2").authorize_security_group_ingress(GroupId=db_group, IpPermissions=[_tcp(1433, cidr="0.0.0.0/0")])
    estate, host, database = described_estate()
    assert judge(estate, host=host, database=database, operator_cidrs=[OPERATOR]) == [
        "the internet reaches db-pos-01: tcp 1433 from 0.0.0.0/0"]


def test_the_connectivity_step_judges_the_estate_it_reads(aws: None) -> None:
    from kensium_provision.steps.base import StepContext
    from kensium_provision.steps.ec2.connectivity import Ec2Connectivity
    from tests.checklist_harness import moto_runtime

    vault = MemoryVault()
    for name in ("vpc", "ec2", "rds"):
        assert run_checklist(f"shared/{name}", Mode.APPLY, EXAMPLES / f"shared-{name}.yaml", vault=vault).exit_code \
            is ExitCode.OK, name
    params = {"host": "POS01", "db_instance": "db-POS-01"}
    step = Ec2Connectivity()
    probe = step.probe(StepContext(moto_runtime(Mode.CHECK), "connectivity", {}), params)
    assert probe.done, probe.note
    # The host leaves SG-POS-HOST: the world no longer reaches HTTPS, and the database no longer admits it.
    [instance] = [i for r in raw_client("ec2").describe_instances(Filters=[{"Name": "tag:Name", "Values": ["POS01"]}])[
        "Reservations"] for i in r["Instances"]]
    raw_client("ec2").modify_instance_attribute(InstanceId=instance["InstanceId"],
                                                Groups=[group_named("SG-POS-OPS")["GroupId"]])
    problems = step.verify(StepContext(moto_runtime(Mode.CHECK), "connectivity", {}), params)
    shown = [str(d.actual) for d in problems]
    assert "POS01 cannot reach db-pos-01 on TCP 1433" in shown and any("HTTPS" in p for p in shown), shown
