"""The shared data checklists under moto: rds, rabbitmq and tenant-manager, end to end.

For each: a plan on an empty account changes nothing; apply succeeds; a second plan finds every
step done; check exits 0; drift is a check finding naming the step and what differs; and values
moto accepts but AWS refuses are refused by kprov before any create call. The waits are shown
polling against moto state flipped behind kprov's back (moto has no provisioning latency).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kensium_provision.engine.run import RunReport
from kensium_provision.errors import ExitCode, InputError
from kensium_provision.model import Mode, Status, StepResult
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.secret import Redactor, Secret
from kensium_provision.steps.amazonmq import MqBroker
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.rds import RdsDbInstance
from tests.checklist_harness import (
    EXAMPLES,
    FakeClock,
    answers_operator,
    load,
    moto_runtime,
    mutating_calls,
    names,
    raw_client,
    run_checklist,
)
from tests.fakes import MemoryVault, NoAws, ScriptedOperator
from tests.test_sql import FakeSqlServer

ACCOUNT = "123456789012"
REGION = "us-east-1"
SUBNET_GROUP = "pos-db-subnets"


@pytest.fixture
def vault() -> MemoryVault:
    return MemoryVault()


def network() -> dict[str, str]:
    """What the VPC checklist leaves: a VPC, public subnets in two zones, a DB subnet group, SG-POS-OPS, and
    SG-POS-HOST and SG-POS-DB with their rules."""
    ec2, rds = raw_client("ec2"), raw_client("rds")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for i, zone in ((1, "a"), (2, "b"))]
    rds.create_db_subnet_group(DBSubnetGroupName=SUBNET_GROUP, DBSubnetGroupDescription="POS databases",
                               SubnetIds=subnets)
    group = ec2.create_security_group(GroupName="SG-POS-OPS", Description="Operator access", VpcId=vpc)["GroupId"]
    db_group = ec2.create_security_group(GroupName="SG-POS-DB", Description="POS databases", VpcId=vpc)["GroupId"]
    host_group = ec2.create_security_group(GroupName="SG-POS-HOST", Description="POS hosts", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=host_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_ingress(GroupId=db_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1433, "ToPort": 1433, "UserIdGroupPairs": [{"GroupId": host_group}]}])
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    for subnet in subnets:  # public subnets, as the VPC checklist makes them
        ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
    return {"vpc": vpc, "subnet_a": subnets[0], "subnet_b": subnets[1], "sg": group, "db_sg": db_group,
            "host_sg": host_group}


def by_id(report: RunReport) -> dict[str, StepResult]:
    return {r.step_id: r for r in report.results}


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.step_id: r.status for r in report.results}


def db_instances() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = raw_client("rds").describe_db_instances()["DBInstances"]
    return found


def brokers() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = raw_client("mq").list_brokers()["BrokerSummaries"]
    return found


def offline_ctx(step_id: str) -> StepContext:
    """A step context whose every AWS call fails the test: for checks that must come before any call."""
    runtime = Runtime(mode=Mode.APPLY, run_id="run-offline", aws=NoAws(), operator=ScriptedOperator(),
                      vault=MemoryVault(), names=names())
    return StepContext(runtime, step_id, {})


def run_with(path: str, mode: Mode, answers: Mapping[str, object] | Path, vault: MemoryVault,
             **kwargs: Any) -> tuple[RunReport, Any]:
    """A run with its runtime kept (for the call counter): kwargs go to `moto_runtime`."""
    checklist = load(path)
    runtime = moto_runtime(mode, vault=vault, operator=answers_operator(checklist, answers), **kwargs)
    return run_checklist(path, mode, runtime=runtime), runtime


def creates(runtime: Any) -> list[str]:
    return [call for call in mutating_calls(runtime) if call.split(":")[1].startswith("Create")]


# --- credential.password ---------------------------------------------------------------------------


def test_credential_is_generated_into_the_vault_and_known_only_by_reference(aws: None, vault: MemoryVault) -> None:
    from kensium_provision.steps.credential import CredentialPassword

    step, params = CredentialPassword(), {"name": "mq-POS-01/admin", "policy": "amazon-mq"}
    ctx = StepContext(moto_runtime(Mode.APPLY, vault=vault), "admin-password", {})
    probe = step.probe(ctx, params)
    assert not probe.done and "will be generated (amazon-mq)" in probe.note
    outputs = step.act(ctx, params, probe)
    secret = vault.items["mq-POS-01/admin"]
    assert outputs == {"ref": "memory:mq-POS-01/admin", "name": "mq-POS-01/admin"}
    assert isinstance(secret, Secret) and len(secret.reveal()) >= 12 and not set(",:=") & set(secret.reveal())
    assert secret.reveal() not in repr(probe) + repr(outputs)
    assert step.probe(ctx, params).done and step.verify(ctx, params) == ()
    for bad, message in [({"name": "no-slash"}, "<owner>/<credential>"), ({"name": "-rf/x"}, "invalid owner"),
                         ({"policy": "strong"}, "unknown password policy")]:
        with pytest.raises(InputError, match=message):
            step.probe(ctx, {**params, **bad})


def test_credential_of_an_existing_resource_is_never_regenerated(aws: None, vault: MemoryVault) -> None:
    net = network()
    raw_client("rds").create_db_instance(
        DBInstanceIdentifier="db-POS-01", Engine="sqlserver-ex", EngineVersion="15.00.4415.2.v1",
        DBInstanceClass="db.t3.small", AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="Made-by-hand-1",
        DBSubnetGroupName=SUBNET_GROUP, AvailabilityZone=f"{REGION}a", PubliclyAccessible=True,
        VpcSecurityGroupIds=[net["sg"], net["db_sg"]])
    report, runtime = run_with("shared/rds", Mode.APPLY, dict(RDS), vault)
    assert report.exit_code is ExitCode.OK, report.error
    assert by_id(report)["master-password"].status is Status.DONE and vault.items == {}
    assert "so db-POS-01/master was made with it (not found in the password manager)" in \
        by_id(report)["master-password"].reason
    assert mutating_calls(runtime) == []
    check, _ = run_with("shared/rds", Mode.CHECK, dict(RDS), vault)
    [finding] = check.findings
    assert (finding.step_id, finding.message) == (
        "master-password", "Generate the master password into the password manager: password manager entry: "
                           "none, should be db-POS-01/master")


def test_credential_with_the_manual_password_manager(aws: None) -> None:
    from kensium_provision.steps.credential import CredentialPassword
    from kensium_provision.vault.backends import ManualVault

    class Terminal(ScriptedOperator):
        interactive = True

        def __init__(self, holds: bool) -> None:
            super().__init__()
            self.holds = holds
            self.shown: list[str] = []

        def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
            return self.holds if message.startswith("Does the Kensium Password Manager") else True

        def show_secret_once(self, label: str, secret: Any) -> None:
            self.shown.append(label)

    step, params = CredentialPassword(), {"name": "POS01/tm-administrator", "policy": "tenant-admin"}
    shown_once = ["POS01/tm-administrator: tenant-admin credential, generated by kprov"]
    for holds, expected in ((True, []), (False, shown_once)):
        operator = Terminal(holds)
        ctx = StepContext(moto_runtime(Mode.APPLY, vault=ManualVault(operator), operator=operator), "x", {})
        assert not step.probe(ctx, params).done
        assert step.act(ctx, params, step.probe(ctx, params)) == {"ref": "manual:POS01/tm-administrator",
                                                                   "name": "POS01/tm-administrator"}
        assert operator.shown == expected and step.verify(ctx, params) == ()
    check = StepContext(moto_runtime(Mode.CHECK, vault=ManualVault(Terminal(False))), "x", {})
    assert step.probe(check, params).note.startswith("not checkable")


# --- shared rds -------------------------------------------------------------------------------------

RDS = {"name": "db-POS-01", "edition": "Express", "engine_version": "15.00.4415.2.v1", "instance_class": "db.t3.small",
       "allocated_storage": 20, "db_subnet_group": SUBNET_GROUP, "zone": f"{REGION}a", "hosting": "Shared"}


def test_rds_plan_on_an_empty_account_changes_nothing(aws: None, vault: MemoryVault) -> None:
    network()
    report, runtime = run_with("shared/rds", Mode.PLAN, dict(RDS), vault)
    assert statuses(report) == {
        "find-subnet-group": Status.DONE, "subnet-group-covers-zone": Status.DONE,
        "find-ops-security-group": Status.DONE, "find-db-security-group": Status.DONE,
        "master-password": Status.CHANGE,
        "create-instance": Status.DEPENDS, "wait-available": Status.DEPENDS}
    assert report.exit_code is ExitCode.OK
    assert mutating_calls(runtime) == [] and db_instances() == [] and vault.items == {}


def test_rds_apply_then_plan_and_check_find_everything_done(aws: None, vault: MemoryVault) -> None:
    net = network()
    journal = NullJournal()
    report, runtime = run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault, journal=journal)
    assert report.exit_code is ExitCode.OK, report.error
    assert statuses(report) == {
        "find-subnet-group": Status.DONE, "subnet-group-covers-zone": Status.DONE,
        "find-ops-security-group": Status.DONE, "find-db-security-group": Status.DONE,
        "master-password": Status.CHANGED,
        "create-instance": Status.CHANGED, "wait-available": Status.DONE}
    assert creates(runtime) == ["rds:CreateDBInstance"]
    [db] = db_instances()
    assert (db["DBInstanceIdentifier"], db["Engine"], db["AvailabilityZone"], db["PubliclyAccessible"]) == (
        "db-pos-01", "sqlserver-web", f"{REGION}a", True)
    assert db["LicenseModel"] == "license-included"
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [net["sg"], net["db_sg"]]
    tags = {t["Key"]: t["Value"] for t in db["TagList"]}
    assert (tags["kprov:name"], tags["kprov:hosting"]) == ("db-POS-01", "Shared")
    # The generated password went to the vault and to RDS, and nowhere else.
    secret = vault.items["db-POS-01/master"]
    from moto.rds.models import rds_backends

    [stored] = rds_backends[ACCOUNT][REGION].databases.values()
    assert stored._master_user_password == secret.reveal()
    assert secret.reveal() not in repr(journal.records) and secret.reveal() not in repr(report)
    assert report.values["endpoint"] == db["Endpoint"]["Address"]

    again, runtime = run_with("shared/rds", Mode.PLAN, EXAMPLES / "shared-rds.yaml", vault)
    assert set(statuses(again).values()) == {Status.DONE}
    assert mutating_calls(runtime) == []
    check, _ = run_with("shared/rds", Mode.CHECK, EXAMPLES / "shared-rds.yaml", vault)
    assert check.exit_code is ExitCode.OK and check.findings == ()
    assert set(statuses(check).values()) == {Status.DONE}


def test_rds_instance_of_the_wrong_edition_is_a_finding_and_never_changed(aws: None, vault: MemoryVault) -> None:
    network()
    run_with("shared/rds", Mode.APPLY, {**RDS, "edition": "Web"}, vault)  # someone made a Web instance
    check, _ = run_with("shared/rds", Mode.CHECK, dict(RDS), vault)  # the answers say Express
    assert check.exit_code is ExitCode.FAILED
    [finding] = check.findings
    assert finding.step_id == "create-instance"
    assert finding.message == ("Create the RDS instance: edition: Web (sqlserver-web), should be "
                               "Express (sqlserver-ex)")
    assert statuses(check)["wait-available"] is Status.DEPENDS
    apply, runtime = run_with("shared/rds", Mode.APPLY, dict(RDS), vault)
    assert apply.exit_code is ExitCode.FAILED and "exists but differs" in apply.error
    assert mutating_calls(runtime) == []
    assert [d["Engine"] for d in db_instances()] == ["sqlserver-web"]


@pytest.mark.parametrize(("answers", "message"), [
    # The checklist's typed inputs refuse these before the step type sees them (answers file, exit 3).
    ({"allocated_storage": 5}, "allocated_storage: 5 must be a number from 20 to 16384"),
    ({"allocated_storage": 20000}, "allocated_storage: 20000 must be a number from 20 to 16384"),
    ({"engine_version": "2019"}, "must be a version made of numbers and dots"),
    ({"instance_class": "db.bogus"}, "must be one of: .*db.t3.small"),  # the classes AWS offers (issue 16.7)
])
def test_rds_values_moto_accepts_are_refused_before_any_create(aws: None, vault: MemoryVault,
                                                               answers: dict[str, object], message: str) -> None:
    network()
    with pytest.raises(InputError, match=message):
        run_with("shared/rds", Mode.APPLY, {**RDS, **answers}, vault)
    assert db_instances() == []
    # Once the master password exists, a plan probes the create step too, and refuses the same way.
    with pytest.raises(InputError, match=message):
        run_with("shared/rds", Mode.PLAN, {**RDS, **answers}, vault)


@pytest.mark.parametrize("password", ["bad@pass/word1", "short", 'with"quote1', "with space 12"])
def test_rds_master_password_is_checked_before_it_is_sent(aws: None, vault: MemoryVault, password: str) -> None:
    network()
    vault.store("db-POS-01/master", Secret(password), description="", tags={})
    with pytest.raises(InputError, match="would be refused by RDS") as caught:
        run_with("shared/rds", Mode.APPLY, dict(RDS), vault)
    assert password not in str(caught.value)
    assert db_instances() == []


def test_rds_step_checks_its_parameters_before_any_call() -> None:
    ctx = offline_ctx("create-instance")
    good = {"identifier": "db-POS-01", "edition": "Express", "engine_version": "15.00.4415.2.v1",
            "instance_class": "db.t3.small", "allocated_storage": 20, "zone": "us-east-1a",
            "db_subnet_group": SUBNET_GROUP, "security_group_ids": ["sg-0123456789abcdef0"],
            "master_username": "admin", "master_password_ref": "memory:db-POS-01/master"}
    cases: list[tuple[dict[str, object], str]] = [
        ({"allocated_storage": 5}, "outside 20-16384"), ({"edition": "Custom"}, "not Express or Web"),
        ({"master_username": "sa"}, "reserved"), ({"security_group_ids": ["SG-POS-OPS"]}, "sg-"),
        ({"zone": "us-east-1"}, "not an availability zone"), ({"hosting": "Cloud"}, "Shared or Dedicated"),
        # botocore's model: 1 to 16 letters, numbers or underscores (moto takes 17 and more)
        ({"master_username": "a" * 17}, "1 to 16 characters"), ({"master_username": "1admin"}, "a letter")]
    for bad, message in cases:
        with pytest.raises(InputError, match=message):
            RdsDbInstance().probe(ctx, {**good, **bad})
    with pytest.raises(AssertionError, match="no AWS in this test"):
        RdsDbInstance().probe(ctx, good)  # valid: only now is AWS asked


def test_rds_wait_polls_until_a_flip_behind_kprovs_back(aws: None, vault: MemoryVault) -> None:
    network()
    run_with("shared/rds", Mode.APPLY, dict(RDS), vault)
    from moto.rds.models import rds_backends

    [db] = rds_backends[ACCOUNT][REGION].databases.values()
    db.status = "creating"
    plan, _ = run_with("shared/rds", Mode.PLAN, dict(RDS), vault)
    assert statuses(plan)["wait-available"] is Status.CHANGE
    check, _ = run_with("shared/rds", Mode.CHECK, dict(RDS), vault)
    assert {f.step_id for f in check.findings} == {"create-instance", "wait-available"}  # check wants available
    # research/reliability-notes.md 1.3: a timer flips the status while kprov polls (really sleeping, briefly);
    # it starts at the first poll, so the flip always happens mid-wait.
    timer = threading.Timer(0.1, lambda: setattr(db, "status", "available"))
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        if not polls:
            timer.start()
        polls.append(seconds)
        time.sleep(0.02)

    checklist = load("shared/rds")
    runtime = replace(moto_runtime(Mode.APPLY, vault=vault, operator=answers_operator(checklist, dict(RDS))),
                      sleep=sleep, monotonic=time.monotonic)
    try:
        report = run_checklist("shared/rds", Mode.APPLY, runtime=runtime)
    finally:
        timer.cancel()
    assert report.exit_code is ExitCode.OK, report.error
    assert statuses(report)["wait-available"] is Status.CHANGED
    assert len(polls) >= 2 and set(polls) == {30.0}  # the checklist's interval, asked of the injected sleep


def test_rds_wait_gives_up_at_its_budget_and_stops_on_a_failure_state(aws: None, vault: MemoryVault) -> None:
    network()
    run_with("shared/rds", Mode.APPLY, dict(RDS), vault)
    from moto.rds.models import rds_backends

    [db] = rds_backends[ACCOUNT][REGION].databases.values()
    db.status = "creating"
    clock = FakeClock()
    report, _ = run_with("shared/rds", Mode.APPLY, dict(RDS), vault, clock=clock)
    assert report.exit_code is ExitCode.FAILED
    assert "db-pos-01 is creating: still so after 3600 s" in report.error
    assert sum(clock.slept) == 3600
    db.status = "incompatible-parameters"
    report, _ = run_with("shared/rds", Mode.APPLY, dict(RDS), vault)
    assert "db-pos-01 is incompatible-parameters: a state it does not leave by itself" in report.error


# --- shared rabbitmq ----------------------------------------------------------------------------------

MQ = {"name": "mq-POS-01", "engine_version": "3.13", "host_instance_type": "mq.t3.micro", "zone": f"{REGION}a"}


@pytest.fixture
def pos_vpc(aws: None) -> dict[str, str]:
    """The VPC checklist's POS-VPC with its public subnet POS-public-us-east-1a, where the broker goes."""
    ec2 = raw_client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "POS-VPC"}]}])["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20", AvailabilityZone=f"{REGION}a", TagSpecifications=[
        {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": f"POS-public-{REGION}a"}]}])["Subnet"]["SubnetId"]
    return {"vpc": vpc, "subnet": subnet}


def test_rabbitmq_plan_on_an_empty_account_changes_nothing(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    report, runtime = run_with("shared/rabbitmq", Mode.PLAN, dict(MQ), vault)
    assert statuses(report) == {"find-vpc": Status.DONE, "find-subnet": Status.DONE, "admin-password": Status.CHANGE,
                                "create-broker": Status.DEPENDS, "wait-running": Status.DEPENDS}
    assert mutating_calls(runtime) == [] and brokers() == [] and vault.items == {}


def test_rabbitmq_apply_then_plan_and_check_find_everything_done(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    checklist = load("shared/rabbitmq")
    runtime = moto_runtime(Mode.APPLY, vault=vault,
                           operator=answers_operator(checklist, EXAMPLES / "shared-rabbitmq.yaml"))
    sent: list[dict[str, Any]] = []  # moto keeps no MQ passwords: see what the create sent
    runtime.aws.client("mq").meta.events.register(
        "before-parameter-build.mq.CreateBroker", lambda params, **_: sent.append(dict(params)))
    report = run_checklist("shared/rabbitmq", Mode.APPLY, runtime=runtime)
    assert report.exit_code is ExitCode.OK, report.error
    assert statuses(report) == {"find-vpc": Status.DONE, "find-subnet": Status.DONE,
                                "admin-password": Status.CHANGED, "create-broker": Status.CHANGED,
                                "wait-running": Status.DONE}
    assert creates(runtime) == ["mq:CreateBroker"]
    [summary] = brokers()
    broker = raw_client("mq").describe_broker(BrokerId=summary["BrokerId"])
    assert (broker["BrokerName"], broker["EngineType"], broker["DeploymentMode"], broker["HostInstanceType"],
            broker["PubliclyAccessible"]) == ("mq-POS-01", "RABBITMQ", "SINGLE_INSTANCE", "mq.t3.micro", True)
    assert [u["Username"] for u in broker["Users"]] == ["admin"]
    assert broker["SubnetIds"] == [pos_vpc["subnet"]]  # in the POS VPC, never the default one
    [create] = sent
    assert create["Users"] == [{"Username": "admin", "Password": vault.items["mq-POS-01/admin"].reveal()}]
    assert create["CreatorRequestId"] == runtime.idempotency_token("create-broker", "create")
    assert report.values["broker_id"] == summary["BrokerId"] and str(report.values["console_url"]).startswith("https://")

    again, runtime = run_with("shared/rabbitmq", Mode.PLAN, EXAMPLES / "shared-rabbitmq.yaml", vault)
    assert set(statuses(again).values()) == {Status.DONE} and mutating_calls(runtime) == []
    check, _ = run_with("shared/rabbitmq", Mode.CHECK, EXAMPLES / "shared-rabbitmq.yaml", vault)
    assert check.exit_code is ExitCode.OK and set(statuses(check).values()) == {Status.DONE}
    rerun, runtime = run_with("shared/rabbitmq", Mode.APPLY, EXAMPLES / "shared-rabbitmq.yaml", vault)
    assert set(statuses(rerun).values()) == {Status.DONE} and mutating_calls(runtime) == [] and len(brokers()) == 1


@pytest.mark.parametrize(("purpose", "expected"), [("production", "mq.m5.large"), ("staging", "mq.t3.micro"),
                                                   ("qa", "mq.t3.micro")])
def test_rabbitmq_instance_type_by_purpose(pos_vpc: dict[str, str], vault: MemoryVault, purpose: str,
                                           expected: str) -> None:
    answers = {**MQ, "host_instance_type": "by-purpose"}
    plan, _ = run_with("shared/rabbitmq", Mode.PLAN, answers, vault, purpose=purpose)
    vault.store("mq-POS-01/admin", Secret("Adm1n-Passw0rd-x"), description="", tags={})
    plan, _ = run_with("shared/rabbitmq", Mode.PLAN, answers, vault, purpose=purpose)
    assert by_id(plan)["create-broker"].status is Status.CHANGE
    report, _ = run_with("shared/rabbitmq", Mode.APPLY, answers, vault, purpose=purpose)
    assert report.exit_code is ExitCode.OK, report.error
    assert [b["HostInstanceType"] for b in brokers()] == [expected]


def test_rabbitmq_by_purpose_without_a_purpose_asks_for_a_choice(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    vault.store("mq-POS-01/admin", Secret("Adm1n-Passw0rd-x"), description="", tags={})
    with pytest.raises(InputError, match=r"choose the instance type explicitly|needs the environment's purpose"):
        run_with("shared/rabbitmq", Mode.PLAN, {**MQ, "host_instance_type": "by-purpose"}, vault)


def test_rabbitmq_broker_of_another_instance_type_is_a_finding(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    run_with("shared/rabbitmq", Mode.APPLY, {**MQ, "host_instance_type": "mq.m5.large"}, vault)
    check, _ = run_with("shared/rabbitmq", Mode.CHECK, dict(MQ), vault)
    assert check.exit_code is ExitCode.FAILED
    [finding] = check.findings
    assert finding.step_id == "create-broker"
    assert finding.message == ("Create the RabbitMQ broker: host instance type: mq.m5.large, should be "
                               "mq.t3.micro")
    apply, runtime = run_with("shared/rabbitmq", Mode.APPLY, dict(MQ), vault)
    assert "exists but differs" in apply.error and mutating_calls(runtime) == []


def test_rabbitmq_weak_admin_password_is_refused_before_the_create(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    vault.store("mq-POS-01/admin", Secret("abcd", redactor=Redactor()), description="", tags={})
    with pytest.raises(InputError, match="would be refused by Amazon MQ") as caught:
        run_with("shared/rabbitmq", Mode.APPLY, dict(MQ), vault)
    assert "abcd" not in str(caught.value)
    assert brokers() == []


@pytest.mark.parametrize("name", ["mq POS-01", "mq-POS-01 ", "mq-pos-01"])
def test_rabbitmq_bad_broker_names_are_refused_before_any_call(pos_vpc: dict[str, str], vault: MemoryVault,
                                                              name: str) -> None:
    with pytest.raises(InputError, match="mq-broker: "):
        run_with("shared/rabbitmq", Mode.APPLY, {**MQ, "name": name}, vault)
    assert brokers() == []


@pytest.mark.parametrize(("bad", "message"), [
    ({"name": "mq POS-01"}, "1-50 letters, digits"),
    ({"name": "m" * 51}, "1-50 letters, digits"),
    ({"deployment_mode": "ACTIVE_STANDBY_MULTI_AZ"}, "ActiveMQ mode"),
    ({"subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
     "takes one subnet of the POS VPC, not 2"),
    ({"subnet_ids": []}, "takes one subnet of the POS VPC, not 0"),  # AWS would use the default VPC
    ({"host_instance_type": "mq.bogus"}, "not an Amazon MQ RabbitMQ type"),
    ({"deployment_mode": "CLUSTER_MULTI_AZ"}, "mq.t3.micro brokers are single-instance only"),
    ({"admin_user": "guest"}, "not guest"),
    ({"admin_user": "a"}, "2-100 letters"),
    ({"admin_user": "ad~min"}, "2-100 letters"),
    ({"engine": "ACTIVEMQ"}, "Kensium brokers are RABBITMQ"),
    ({"engine_version": "3.13.x"}, "not a RabbitMQ version"),
    ({"security_groups": ["sg-0123456789abcdef0"]}, "public RabbitMQ broker takes no security groups"),
])
def test_mq_step_refuses_what_moto_accepts_before_any_call(bad: dict[str, object], message: str) -> None:
    ctx = offline_ctx("create-broker")
    good = {"name": "mq-POS-01", "engine_version": "3.13", "host_instance_type": "mq.t3.micro",
            "admin_password_ref": "memory:mq-POS-01/admin", "subnet_ids": ["subnet-0123456789abcdef0"]}
    with pytest.raises(InputError, match=message):
        MqBroker().probe(ctx, {**good, **bad})


def test_rabbitmq_wait_polls_until_running_and_stops_on_creation_failed(pos_vpc: dict[str, str],
                                                                       vault: MemoryVault) -> None:
    run_with("shared/rabbitmq", Mode.APPLY, dict(MQ), vault)
    from moto.mq.models import mq_backends

    [broker] = mq_backends[ACCOUNT][REGION].brokers.values()
    broker.state = "CREATION_IN_PROGRESS"
    plan, _ = run_with("shared/rabbitmq", Mode.PLAN, dict(MQ), vault)
    assert statuses(plan) == {"find-vpc": Status.DONE, "find-subnet": Status.DONE, "admin-password": Status.DONE,
                              "create-broker": Status.DONE, "wait-running": Status.CHANGE}

    class FlippingClock(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if len(self.slept) == 3:  # after three polls, AWS finishes
                broker.state = "RUNNING"

    clock = FlippingClock()
    report, _ = run_with("shared/rabbitmq", Mode.APPLY, dict(MQ), vault, clock=clock)
    assert report.exit_code is ExitCode.OK, report.error
    assert statuses(report)["wait-running"] is Status.CHANGED and clock.slept == [30, 30, 30]
    broker.state = "CREATION_FAILED"
    report, _ = run_with("shared/rabbitmq", Mode.APPLY, dict(MQ), vault)
    assert "BrokerState is 'CREATION_FAILED', a failure state" in report.error
    check, _ = run_with("shared/rabbitmq", Mode.CHECK, dict(MQ), vault)
    assert {f.step_id for f in check.findings} == {"create-broker", "wait-running"}
    broker.state = "CRITICAL_ACTION_REQUIRED"
    report, _ = run_with("shared/rabbitmq", Mode.APPLY, dict(MQ), vault)
    assert "BrokerState is 'CRITICAL_ACTION_REQUIRED', a failure state" in report.error


def test_the_failure_states_are_amazon_mqs_own(pos_vpc: dict[str, str]) -> None:
    from kensium_provision.steps.amazonmq import FAILED_STATES

    states = raw_client("mq").meta.service_model.shape_for("BrokerState").enum  # botocore's published model
    assert set(states) >= FAILED_STATES and "CRITICAL_ACTION_REQUIRED" in FAILED_STATES


def test_the_broker_is_described_by_the_id_its_create_returned(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    checklist = load("shared/rabbitmq")
    runtime = moto_runtime(Mode.APPLY, vault=vault, operator=answers_operator(checklist, dict(MQ)))
    calls: list[tuple[str, str]] = []
    for attempts in (1, 4):  # the create's single-attempt client and the reading one
        runtime.aws.client("mq", attempts=attempts).meta.events.register(  # type: ignore[call-arg]
            "provide-client-params.mq", lambda params, model, **_: calls.append((model.name, str(params))))
    report = run_checklist("shared/rabbitmq", Mode.APPLY, runtime=runtime)
    assert report.exit_code is ExitCode.OK, report.error
    create = [name for name, _ in calls].index("CreateBroker")
    [summary] = brokers()
    assert calls[create + 1] == ("DescribeBroker", str({"BrokerId": summary["BrokerId"]})), calls


def test_a_broker_outside_the_pos_vpc_is_a_finding(pos_vpc: dict[str, str], vault: MemoryVault) -> None:
    raw_client("mq").create_broker(
        BrokerName="mq-POS-01", EngineType="RABBITMQ", EngineVersion="3.13", DeploymentMode="SINGLE_INSTANCE",
        HostInstanceType="mq.t3.micro", PubliclyAccessible=True, AutoMinorVersionUpgrade=True,
        SubnetIds=["subnet-0123456789abcdef0"], Users=[{"Username": "admin", "Password": "Adm1n-Passw0rd-x"}])
    vault.store("mq-POS-01/admin", Secret("Adm1n-Passw0rd-x"), description="", tags={})
    check, _ = run_with("shared/rabbitmq", Mode.CHECK, dict(MQ), vault)
    assert check.exit_code is ExitCode.FAILED
    message = check.findings[0].message
    assert "subnets" in message and "subnet-0123456789abcdef0" in message and pos_vpc["subnet"] in message


# --- shared tenant-manager ------------------------------------------------------------------------------

TM = {"host": "POS01", "rds_instance": "db-POS-01", "zone": f"{REGION}a", "operator_access": False,
      "support_email": "support@fusionpos.com", "tenant_manager_name": "POS01 Default", "time_zone": "America/Chicago",
      "confirm": {"create-database": True, "create-login": True, "complete-setup": True}}


def host(net: dict[str, str], zone: str = "a", name: str = "POS01") -> str:
    ec2 = raw_client("ec2")
    subnet = net["subnet_a"] if zone == "a" else net["subnet_b"]
    instance_id: str = ec2.run_instances(
        ImageId="ami-0123456789abcdef0", InstanceType="t3.large", MinCount=1, MaxCount=1, SubnetId=subnet,
        SecurityGroupIds=[net["sg"], net["host_sg"]],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )["Instances"][0]["InstanceId"]
    return instance_id


@pytest.fixture
def estate(aws: None, vault: MemoryVault) -> dict[str, str]:
    """A host POS01 and db-POS-01, both in zone a, made by the rds checklist itself."""
    net = network()
    host(net)
    report, _ = run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault)
    assert report.exit_code is ExitCode.OK, report.error
    return net


def sql_settings(server: FakeSqlServer) -> dict[str, object]:
    return {"sql": {"driver": "", "encrypt": True, "connect": server.connect}}


def test_tenant_manager_plan_apply_plan_check_with_a_sql_connection(estate: dict[str, str], vault: MemoryVault) -> None:
    server = FakeSqlServer()
    plan, runtime = run_with("shared/tenant-manager", Mode.PLAN, dict(TM), vault, settings=sql_settings(server))
    assert statuses(plan) == {
        "find-host": Status.DONE, "host-zone": Status.DONE, "rds-edition": Status.DONE, "rds-version": Status.DONE,
        "rds-zone": Status.DONE, "rds-available": Status.DONE, "connectivity": Status.DONE,
        "find-ops-security-group": Status.SKIPPED,
        "operator-ip": Status.SKIPPED, "operator-rule": Status.SKIPPED, "rds-master-password": Status.DONE,
        "create-database": Status.CHANGE, "login-password": Status.CHANGE, "create-login": Status.DEPENDS,
        "administrator-password": Status.CHANGE, "fill-setup-page": Status.DEPENDS, "complete-setup": Status.DEPENDS}
    assert mutating_calls(runtime) == [] and server.batches == []
    assert by_id(plan)["create-database"].reason == "database POS_POS01 does not exist: it will be created"

    report, _ = run_with("shared/tenant-manager", Mode.APPLY, EXAMPLES / "shared-tenant-manager.yaml", vault,
                         settings=sql_settings(server))
    assert report.exit_code is ExitCode.OK, report.error
    assert server.databases == {"pos_pos01": "POS_POS01"}
    login = server.logins["pos_pos01_user"]
    assert (login.name, login.default_db, login.expiration, login.policy) == (
        "POS_POS01_user", "POS_POS01", False, True)
    assert login.password == vault.items["POS01/tm-sql-login"].reveal()
    assert server.owners == {("pos_pos01", "pos_pos01_user")}
    assert {s["user"] for s in server.sessions} == {"admin"}
    assert {s["password"] for s in server.sessions} == {vault.items["db-POS-01/master"].reveal()}
    assert "POS01/tm-administrator" in vault.items
    assert report.values["tenant_manager_name"] == "POS01 Default"

    again, runtime = run_with("shared/tenant-manager", Mode.PLAN, EXAMPLES / "shared-tenant-manager.yaml", vault,
                              settings=sql_settings(server))
    left = {k: v for k, v in statuses(again).items() if v is not Status.DONE}
    # Only what has no probe: the operator-access steps (not asked for) and the Setup page by hand.
    assert left == {"find-ops-security-group": Status.SKIPPED, "operator-ip": Status.SKIPPED,
                    "operator-rule": Status.SKIPPED, "fill-setup-page": Status.CHANGE, "complete-setup": Status.CHANGE}
    assert mutating_calls(runtime) == []
    check, _ = run_with("shared/tenant-manager", Mode.CHECK, EXAMPLES / "shared-tenant-manager.yaml", vault,
                        settings=sql_settings(server))
    assert check.exit_code is ExitCode.OK and check.findings == ()
    assert by_id(check)["fill-setup-page"].reason == "manual step without a probe: not checkable"
    # Drift inside SQL Server is a finding too.
    server.owners.clear()
    drift, _ = run_with("shared/tenant-manager", Mode.CHECK, dict(TM), vault, settings=sql_settings(server))
    [finding] = drift.findings
    assert (finding.step_id, finding.message) == (
        "create-login", "Create the tenant-manager SQL login (db_owner of its database only): "
                        "db_owner in POS_POS01: no, should be yes")


def test_tenant_manager_az_mismatch_is_a_finding(aws: None, vault: MemoryVault) -> None:
    net = network()
    host(net, zone="b")  # the host is in zone b, the RDS instance in zone a
    run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault)
    check, _ = run_with("shared/tenant-manager", Mode.CHECK, dict(TM), vault)
    assert check.exit_code is ExitCode.FAILED
    [finding] = [f for f in check.findings if f.step_id == "host-zone"]
    assert finding.message == ("The EC2 host is in the chosen availability zone: "
                               "availability zone: us-east-1b, should be us-east-1a")
    apply, runtime = run_with("shared/tenant-manager", Mode.APPLY, dict(TM), vault)
    assert apply.exit_code is ExitCode.FAILED and by_id(apply)["host-zone"].status is Status.FAILED
    assert mutating_calls(runtime) == []  # stopped before any change
    zone_b, _ = run_with("shared/tenant-manager", Mode.CHECK, {**TM, "zone": f"{REGION}b"}, vault)
    assert [f.step_id for f in zone_b.findings if f.step_id.startswith(("host", "rds"))] == ["rds-zone"]


def test_tenant_manager_without_a_sql_connection_shows_scripts_never_secrets(estate: dict[str, str],
                                                                             vault: MemoryVault) -> None:
    class Operator(ScriptedOperator):
        def __init__(self) -> None:
            super().__init__({k: v for k, v in TM.items() if k != "confirm"})
            self.shown: list[tuple[str, str]] = []
            self.keys: list[str] = []

        def ask(self, spec: Any, *, default: object, choices: Any, validate: Any) -> object:
            value = super().ask(spec, default=default, choices=choices, validate=validate)
            assert validate(value) is None
            return value

        def instruct(self, title: str, text: str) -> None:
            self.shown.append((title, text))

        def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
            self.keys.append(key)
            return True

    operator = Operator()
    checklist = load("shared/tenant-manager")
    runtime = moto_runtime(Mode.APPLY, vault=vault, operator=operator)
    report = run_checklist("shared/tenant-manager", Mode.APPLY, runtime=runtime)
    assert checklist.id == "shared-tenant-manager"
    assert report.exit_code is ExitCode.OK, report.error
    shown = dict(operator.shown)
    assert "CREATE DATABASE [POS_POS01];" in shown["create-database"]
    assert "WITH PASSWORD = N'<from the password manager: memory:POS01/tm-sql-login>'" in shown["create-login"]
    assert "Password=<from the password manager: memory:POS01/tm-sql-login>" in shown["fill-setup-page"]
    secrets = [s.reveal() for s in vault.items.values()]
    assert not [s for s in secrets for text in shown.values() if s in text]
    assert {"create-database", "create-login", "complete-setup"} <= set(operator.keys)
    check, _ = run_with("shared/tenant-manager", Mode.CHECK, dict(TM), vault)
    assert check.exit_code is ExitCode.OK
    assert by_id(check)["create-login"].reason.startswith("not checkable: no SQL connection")


def test_tenant_manager_adds_the_operators_ip_rule(estate: dict[str, str], vault: MemoryVault) -> None:
    answers = {**TM, "operator_access": True, "operator_name": "Jane Doe", "operator_ip": "203.0.113.10"}
    report, _ = run_with("shared/tenant-manager", Mode.APPLY, answers, vault)
    assert report.exit_code is ExitCode.OK, report.error
    assert by_id(report)["operator-rule"].status is Status.CHANGED
    [group] = raw_client("ec2").describe_security_groups(GroupIds=[estate["sg"]])["SecurityGroups"]
    assert [(p["FromPort"], r["CidrIp"], r["Description"]) for p in group["IpPermissions"] for r in p["IpRanges"]] == [
        (1433, "203.0.113.10/32", "Jane Doe")]
    again, _ = run_with("shared/tenant-manager", Mode.PLAN, answers, vault)
    assert by_id(again)["operator-rule"].status is Status.DONE


def test_example_answers_files_fit_their_checklists() -> None:
    from kensium_provision.checklist.answers import load_answers

    for name in ("rds", "rabbitmq", "tenant-manager"):
        checklist = load(f"shared/{name}")
        answers = load_answers(EXAMPLES / f"shared-{name}.yaml", checklist)
        assert set(answers.values) >= {i.id for i in checklist.inputs if i.when is None and i.default is None}


def test_an_instance_without_sg_pos_db_is_a_finding_and_apply_gives_it(aws: None, vault: MemoryVault) -> None:
    net = network()
    assert run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault)[0].exit_code is ExitCode.OK
    # As an instance made before SG-POS-DB existed: the POS hosts cannot reach it.
    raw_client("rds").modify_db_instance(DBInstanceIdentifier="db-pos-01", VpcSecurityGroupIds=[net["sg"]],
                                         ApplyImmediately=True)
    check, _ = run_with("shared/rds", Mode.CHECK, EXAMPLES / "shared-rds.yaml", vault)
    assert [f.step_id for f in check.findings] == ["create-instance"]
    assert "security groups" in check.findings[0].message and net["db_sg"] in check.findings[0].message
    fixed, runtime = run_with("shared/rds", Mode.APPLY, EXAMPLES / "shared-rds.yaml", vault)
    assert fixed.exit_code is ExitCode.OK, fixed.error
    assert mutating_calls(runtime) == ["rds:ModifyDBInstance"]
    [db] = db_instances()
    assert sorted(g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]) == sorted([net["sg"], net["db_sg"]])
