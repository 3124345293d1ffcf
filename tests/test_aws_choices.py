"""The parameters AWS would refuse, refused by kprov before its first change (issue 16.7, validate first).

Two layers: each step type's declared checks (`Param` kinds and bounds, `check_params`), and an engine run
over in-process moto in which a later step's bad value stops the run before an earlier create (exit 3, the
session's counter sees no write).
"""

from __future__ import annotations

from typing import Any

import pytest

from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.engine.run import run
from kensium_provision.errors import ExitCode, InputError
from kensium_provision.model import Mode
from kensium_provision.steps import registry
from kensium_provision.steps.base import CheckContext, param_problems
from tests.checklist_harness import moto_runtime, mutating_calls, names, raw_client
from tests.fakes import MemoryVault
from tests.test_shared_data import MQ, RDS, network, pos_vpc, run_with, vault

__all__ = ["pos_vpc", "vault"]  # the fixtures, shared with test_shared_data

_RDS = {"identifier": "db-POS-01", "edition": "Web", "engine_version": "15.00.4415.2.v1",
        "instance_class": "db.t3.small", "allocated_storage": 20, "zone": "us-east-1a",
        "db_subnet_group": "pos-db-subnets", "security_group_ids": ["sg-0123456789abcdef0"],
        "master_username": "posadmin", "master_password_ref": "vault:x"}
_MQ = {"name": "mq-POS-01", "engine_version": "3.13", "admin_password_ref": "vault:x",
       "subnet_ids": ["subnet-0123456789abcdef0"]}
_SUBNET = {"name": "POS-public-b", "vpc_id": "vpc-0123456789abcdef0", "cidr": "10.0.16.0/20", "zone": "us-east-1b"}


def _problems(step_type: str, params: dict[str, Any], *, sandbox: bool = False) -> list[str]:
    context = CheckContext(names(), {}, settings={"sandbox": sandbox}, env_name="sandbox" if sandbox else "qa")
    return param_problems(registry()[step_type], params, context)


@pytest.mark.parametrize(("step_type", "params", "says"), [
    ("rds.db-instance", {**_RDS, "allocated_storage": 19}, "allocated_storage 19 must be a number from 20 to 16384"),
    ("rds.db-instance", {**_RDS, "allocated_storage": 16385}, "allocated_storage 16385 must be a number from 20"),
    ("rds.db-instance", {**_RDS, "engine_version": "latest"}, "engine_version \"latest\" must be a version"),
    ("ec2.subnet", {**_SUBNET, "other_than_zone": "us-east-1b"}, "must differ from (other_than_zone)"),
    ("ec2.subnet", {**_SUBNET, "cidr": "10.0.16.1/20"}, "cidr \"10.0.16.1/20\" must be an IPv4 CIDR block"),
    ("ec2.vpc", {"name": "POS-VPC", "cidr": "10.0.0.0/33"}, "cidr \"10.0.0.0/33\" must be an IPv4 CIDR block"),
    ("ec2.operator-ip", {"ip": "999.1.1.1"}, "ip \"999.1.1.1\" must be an IPv4 address"),
    ("mq.broker", {**_MQ, "engine_version": "3.x"}, "engine_version \"3.x\" must be a version"),
    ("mq.broker", {**_MQ, "subnet_ids": []}, "SINGLE_INSTANCE broker takes exactly one subnet"),
    ("mq.broker", {**_MQ, "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
     "not 2"),
    ("mq.broker", {**_MQ, "deployment_mode": "CLUSTER_MULTI_AZ", "host_instance_type": "mq.m5.large",
                   "publicly_accessible": False, "subnet_ids": []}, "private CLUSTER_MULTI_AZ broker needs"),
])
def test_a_value_aws_refuses_is_a_declared_parameter_problem(step_type: str, params: dict[str, Any],
                                                             says: str) -> None:
    problems = _problems(step_type, params)
    assert any(says in p for p in problems), problems


@pytest.mark.parametrize(("step_type", "params"), [
    ("rds.db-instance", _RDS), ("rds.db-instance", {**_RDS, "engine_version": "15.00"}),
    ("ec2.subnet", {**_SUBNET, "other_than_zone": "us-east-1a"}), ("ec2.operator-ip", {"ip": "203.0.113.10"}),
    ("mq.broker", _MQ), ("mq.broker", {**_MQ, "deployment_mode": "CLUSTER_MULTI_AZ", "subnet_ids": []}),
])
def test_a_value_aws_accepts_has_no_problem(step_type: str, params: dict[str, Any]) -> None:
    assert _problems(step_type, params) == []


def test_windows_password_decrypt_is_refused_in_the_sandbox_only() -> None:
    params = {"instance_id": "i-0123456789abcdef0", "key_ref": "vault:k", "vault_entry": "POS01/administrator"}
    assert any("decrypt needs Windows; answer manual" in p
               for p in _problems("ec2.windows-password", params, sandbox=True))
    assert _problems("ec2.windows-password", params, sandbox=False) == []


RUN = """
schema: 1
id: bad-later
title: Bad later
scope: shared
inputs:
  - {id: storage, type: int, prompt: "Storage?"}
steps:
  - {id: vpc, title: VPC, type: ec2.vpc, risk: create, params: {name: POS-VPC}, outputs: {vpc_id: vpc_id}}
  - id: db
    title: DB
    type: rds.db-instance
    risk: create
    params: {identifier: db-POS-01, edition: Web, engine_version: 15.00.4415.2.v1, instance_class: db.t3.small,
             allocated_storage: "{{ storage }}", zone: us-east-1a, db_subnet_group: pos-db-subnets,
             security_group_ids: [sg-0123456789abcdef0], master_username: posadmin, master_password_ref: "vault:x"}
"""


@pytest.mark.parametrize("mode", [Mode.APPLY, Mode.PLAN])
def test_storage_19_stops_the_run_before_the_vpc_is_created(aws: None, mode: Mode) -> None:
    types = registry()
    checklist = load_checklist_text(RUN, "bad-later.yaml", types=types)
    runtime = moto_runtime(mode)
    with pytest.raises(InputError, match=r"step db \(DB\): allocated_storage 19 must be a number from 20") as caught:
        run(checklist, runtime, {"storage": 19}, types=types)
    assert caught.value.exit_code is ExitCode.INVALID
    assert mutating_calls(runtime) == []  # before: ec2:CreateVpc, then the create refused at the db step's turn


# --- versions and sizes from AWS's own answers (issue 16.7) --------------------------------------------------
# The sandbox answers DescribeDBEngineVersions, DescribeOrderableDBInstanceOptions, DescribeBrokerEngineTypes and
# DescribeBrokerInstanceOptions from sandbox.aws_data (moto implements none of them for SQL Server or RabbitMQ).


def test_an_instance_class_express_does_not_offer_is_refused_with_the_offered_classes(
        aws: None, vault: MemoryVault) -> None:
    network()
    with pytest.raises(InputError, match=r"instance_class: 'db.m5.large' must be one of: .*db.t3.micro") as caught:
        run_with("shared/rds", Mode.PLAN, {**RDS, "instance_class": "db.m5.large"}, vault)  # Web has it, Express not
    assert caught.value.exit_code is ExitCode.INVALID
    assert raw_client("rds").describe_db_instances()["DBInstances"] == [] and vault.items == {}


def test_an_engine_version_aws_does_not_list_is_refused_with_the_listed_versions(aws: None, vault: MemoryVault) -> None:
    network()
    with pytest.raises(InputError, match=r"15.00.9999.1.v1 is not an engine version AWS offers.*15.00.4420.2.v1"):
        run_with("shared/rds", Mode.PLAN, {**RDS, "engine_version": "15.00.9999.1.v1"}, vault)
    assert vault.items == {}


def test_the_major_alone_creates_the_latest_version_aws_lists(aws: None, vault: MemoryVault) -> None:
    from kensium_provision.sandbox.aws_data import SQLSERVER_VERSIONS

    network()
    report, _ = run_with("shared/rds", Mode.APPLY, {**RDS, "engine_version": "15.00"}, vault)
    assert report.exit_code is ExitCode.OK, report.error
    created = raw_client("rds").describe_db_instances()["DBInstances"]
    assert [d["EngineVersion"] for d in created] == [SQLSERVER_VERSIONS[-1]]  # before: "15.00" sent as it was


def test_rabbitmq_4_on_mq_m5_is_refused_with_the_m7g_types(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    with pytest.raises(InputError, match=r"host_instance_type: 'mq.m5.large' must be one of: .*mq.m7g.large") as caught:
        run_with("shared/rabbitmq", Mode.PLAN, {**MQ, "engine_version": "4.2", "host_instance_type": "mq.m5.large"},
                 vault)
    assert "mq.m5" not in str(caught.value).split("must be one of:")[1]
    assert raw_client("mq").list_brokers()["BrokerSummaries"] == []


def test_rabbitmq_4_on_mq_m7g_is_created(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    report, _ = run_with("shared/rabbitmq", Mode.APPLY,
                         {**MQ, "engine_version": "4.2", "host_instance_type": "mq.m7g.large"}, vault)
    assert report.exit_code is ExitCode.OK, report.error
    broker = raw_client("mq").list_brokers()["BrokerSummaries"][0]
    assert broker["HostInstanceType"] == "mq.m7g.large"


LITERAL = """
schema: 1
id: literal
title: Literal
scope: shared
steps:
  - id: db
    title: DB
    type: rds.db-instance
    risk: create
    params: {identifier: db-POS-01, edition: Express, engine_version: "15.00", instance_class: db.m5.large,
             allocated_storage: 20, zone: us-east-1a, db_subnet_group: pos-db-subnets,
             security_group_ids: [sg-0123456789abcdef0], master_username: posadmin, master_password_ref: "vault:x"}
"""


def test_the_step_itself_checks_the_pair_with_aws_in_the_plan(aws: None) -> None:
    # A checklist that does not offer choices (a literal class) meets the same answer in the step's probe.
    types = registry()
    checklist = load_checklist_text(LITERAL, "literal.yaml", types=types)
    runtime = moto_runtime(Mode.PLAN)
    with pytest.raises(InputError, match=r"db.m5.large is not offered for Express \(sqlserver-ex\) 15.00.4420.2.v1 "
                                         r"\(licence included\); AWS offers: db.t3.large, db.t3.medium, db.t3.micro"):
        run(checklist, runtime, {}, types=types)
    assert mutating_calls(runtime) == []


def test_the_sandbox_refuses_the_pairs_aws_refuses(aws: None) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="InvalidParameterCombination"):
        raw_client("rds").create_db_instance(
            DBInstanceIdentifier="db-pos-09", Engine="sqlserver-ex", EngineVersion="15.00.4415.2.v1",
            DBInstanceClass="db.m5.large", AllocatedStorage=20, MasterUsername="posadmin",
            MasterUserPassword="Passw0rd-long-1", LicenseModel="license-included")
    with pytest.raises(ClientError, match=r"Engine version \[4.2\] is not supported on broker instance type"):
        raw_client("mq").create_broker(
            BrokerName="mq-POS-09", EngineType="RABBITMQ", EngineVersion="4.2", DeploymentMode="SINGLE_INSTANCE",
            HostInstanceType="mq.m5.large", PubliclyAccessible=True, AutoMinorVersionUpgrade=True,
            Users=[{"Username": "admin", "Password": "Adm1n-Passw0rd-x"}])
