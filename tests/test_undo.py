"""`kprov undo` (issue 17.5): an install that failed at step N, undone, leaves the account as before.

The world is test_client_install's (moto in process with the shared estate, the hub vhost on the RabbitMQ
emulator, SQL Server as test_remove_client's fake DB-API connection, which knows DROP), with real journals
(`journal.writer.JournalWriter`) under the test's state dir, so `audit verify` reads them as it reads any.
The undo runs as `kprov undo` runs it, minus the command line: `engine.undo.prepare(...).run(runtime, {})`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.app.config import state_dir
from kensium_provision.aws.session import AwsSession
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.engine.undo import UndoRun, created_of, prepare
from kensium_provision.errors import ExitCode, InputError
from kensium_provision.journal.reader import read_run
from kensium_provision.journal.verify import verify_run
from kensium_provision.journal.writer import JournalWriter
from kensium_provision.model import Mode, Status
from kensium_provision.records.clients import get_client
from kensium_provision.runtime import Runtime
from kensium_provision.steps import registry
from tests.checklist_harness import raw_client
from tests.faults import inject
from tests.test_client_install import EXAMPLE, World, build_estate, reset_broker
from tests.test_json_output import VALIDATOR
from tests.test_remove_client import RemovingSqlServer

if TYPE_CHECKING:
    from tests.conftest import Kprov
    from tests.password_managers import GpgHome
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures", "password_managers"]  # their emulated_rabbitmq and gpg fixtures


class UndoWorld(World):
    """The install's world, its runs journaled to the state dir, and their undo."""

    ids: int = 0

    def journaled(self, rt: Runtime, command: str) -> Runtime:
        UndoWorld.ids += 1
        run_id = f"20261203T060000Z-{UndoWorld.ids:06d}"
        writer = JournalWriter(state_dir(), run_id, header={
            "who": "arn:aws:iam::123456789012:user/tester", "account": "123456789012", "region": "us-east-1",
            "environment": "sandbox", "checklist": "undo" if command.startswith("undo") else "client-install",
            "checklist_sha256": "0" * 64, "mode": rt.mode.value, "target": "client:acme", "command": command})
        return replace(rt, run_id=run_id, journal=writer)

    def install_journaled(self) -> tuple[str, RunReport]:
        checklist = self.checklist
        rt = self.journaled(self.runtime(Mode.APPLY, self.operator(EXAMPLE)), "install-client acme")
        values = resolve_inputs(checklist, rt, {"org_id": "acme"})
        rt.journal.record("target", target="client:acme")
        try:
            report = run(checklist, rt, values, types=self.types())
        finally:
            rt.journal.close("failed")  # type: ignore[attr-defined]
        return rt.run_id, report

    def prepared(self, run_id: str) -> UndoRun:
        return prepare(run_id, [read_run(state_dir(), run_id)], registry())

    def undo(self, run_id: str, mode: Mode = Mode.APPLY) -> tuple[str, RunReport]:
        rt = self.journaled(self.runtime(mode, self.operator(EXAMPLE)), f"undo {run_id}")
        try:
            report = self.prepared(run_id).run(rt, {})
        finally:
            rt.journal.close("ok")  # type: ignore[attr-defined]
        return rt.run_id, report


def fail_on(monkeypatch: pytest.MonkeyPatch, service: str, operation: str) -> list[bool]:
    """While armed, every `service` client kprov makes answers its first `operation` with AccessDenied."""
    armed = [True]
    make = AwsSession.client

    def client(self: AwsSession, name: str, **kwargs: Any) -> Any:
        made = make(self, name, **kwargs)
        if name == service and armed[0]:
            inject(made, f"{service}.{operation}", status=403, code="AccessDenied", message="injected")
        return made

    monkeypatch.setattr(AwsSession, "client", client)
    return armed


@pytest.fixture
def world(emulated_rabbitmq: Broker, aws: None) -> Iterator[UndoWorld]:
    reset_broker(emulated_rabbitmq)
    w = UndoWorld(broker=emulated_rabbitmq, sql=RemovingSqlServer())
    build_estate(w)
    yield w
    reset_broker(emulated_rabbitmq)


def inventory(world: World) -> dict[str, Any]:
    """Every resource type kprov touches, as a plain value compared before and after."""
    broker = world.broker.client()
    return {**aws_inventory(),
            "vhosts": sorted(str(v["name"]) for v in broker.list_vhosts()),
            "rabbitmq_users": sorted(str(u["name"]) for u in broker.list_users()),
            "permissions": sorted(f"{p['user']}@{p['vhost']}" for p in broker.list_permissions()),
            "databases": sorted(world.sql.databases), "logins": sorted(world.sql.logins)}


def aws_inventory() -> dict[str, Any]:
    """Every AWS resource type kprov touches (in-process moto), as a plain value."""
    ec2, rds, mq = raw_client("ec2"), raw_client("rds"), raw_client("mq")
    iam, s3, sm, ssm = raw_client("iam"), raw_client("s3"), raw_client("secretsmanager"), raw_client("ssm")
    dynamodb = raw_client("dynamodb")
    records: list[str] = []
    for table in dynamodb.list_tables()["TableNames"]:  # kprov's tables themselves are its bookkeeping
        records += [f"{table}/{i['OrgId']['S']}" for i in dynamodb.scan(TableName=table)["Items"]]
    users = [u["UserName"] for u in iam.list_users()["Users"]]
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    return {
        "records": sorted(records),
        "secrets": sorted(s["Name"] for s in sm.list_secrets()["SecretList"]),
        "iam_users": sorted(users),
        "access_keys": sorted(k["AccessKeyId"] for u in users
                              for k in iam.list_access_keys(UserName=u)["AccessKeyMetadata"]),
        "buckets": {b: sorted(o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])) for b in buckets},
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
        "gateways": sorted(g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]),
        "route_tables": sorted(t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]),
        "security_groups": sorted((g["GroupId"], str(g["IpPermissions"]))
                                  for g in ec2.describe_security_groups()["SecurityGroups"]),
        "instances": sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]),
        "addresses": sorted(a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]),
        "key_pairs": sorted(k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]),
        "db_instances": sorted(d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]),
        "db_subnet_groups": sorted(g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]),
        "brokers": sorted(b["BrokerName"] for b in mq.list_brokers()["BrokerSummaries"]),
        "parameters": sorted(p["Name"] for p in ssm.describe_parameters()["Parameters"]),
    }


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.step_id: r.status for r in report.results}


def failed_install(world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> str:
    """acme's install, failing at the sandbox bucket (step sandbox-pos-bucket): everything before it is made."""
    armed = fail_on(monkeypatch, "s3", "CreateBucket")
    run_id, report = world.install_journaled()
    armed[0] = False
    done = statuses(report)
    assert done["sandbox-pos-bucket"] is Status.FAILED, report.error
    assert done["hub-vhost"] is Status.CHANGED and done["sandbox-pos-iam-user"] is Status.CHANGED
    return run_id


# --- the must-show ------------------------------------------------------------------------------------------


def test_undo_of_an_install_failed_at_step_n_leaves_the_account_as_before(
        world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    before = inventory(world)
    run_id = failed_install(world, monkeypatch)
    made = inventory(world)
    assert made != before
    assert made["vhosts"] != before["vhosts"] and "rms_acme" in made["iam_users"]
    assert "POS_acme" in made["databases"] and made["records"] == ["kprov-clients/acme"]

    undo_id, report = world.undo(run_id)
    assert report.exit_code is ExitCode.OK, report.error or [r.reason for r in report.results]
    assert inventory(world) == before
    done = statuses(report)
    assert done["undo-hub-vhost"] is Status.CHANGED and done["undo-org-id"] is Status.CHANGED
    assert done["undo-create-tenant"] is Status.SKIPPED  # a person's work: said, not done
    assert "undo it by hand" in next(r.reason for r in report.results if r.step_id == "undo-create-tenant")
    order = [r.step_id for r in report.results if r.status is Status.CHANGED]
    assert order.index("undo-sandbox-pos-iam-user") < order.index("undo-hub-vhost") < order.index("undo-org-id")
    assert verify_run(state_dir(), run_id) == [] and verify_run(state_dir(), undo_id) == []
    undo_log = read_run(state_dir(), undo_id)
    assert [r["undoes"] for r in undo_log.records if r["event"] == "undo"] == [run_id]

    _, again = world.undo(run_id)  # nothing left: every step re-probed as removed, nothing written
    assert again.exit_code is ExitCode.OK and world.mutating_calls() == []
    assert {r.status for r in again.results if r.step_id != "undo-create-tenant"} <= {Status.DONE, Status.SKIPPED}


def test_a_resource_changed_since_the_run_refuses_the_whole_undo_naming_the_step(
        world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = failed_install(world, monkeypatch)
    world.client("iam").tag_user(UserName="rms_acme", Tags=[{"Key": "owner", "Value": "someone"}])
    made = inventory(world)
    with pytest.raises(InputError, match=r"step sandbox-pos-iam-user \(iam.sandbox-client-user\): IAM user rms_acme "
                                         r"has tags") as caught:
        world.undo(run_id)
    assert caught.value.exit_code is ExitCode.INVALID
    assert inventory(world) == made  # nothing was removed, not even what did not change
    assert world.mutating_calls() == []


def test_undo_never_touches_what_existed_before_the_run(world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world.broker.client().put_vhost("acme", description="there before the run")
    before = inventory(world)
    run_id = failed_install(world, monkeypatch)
    log = read_run(state_dir(), run_id)
    assert [r["kind"] for r in log.records if r["event"] == "step.created" and r["step"] == "hub-vhost"] == \
        ["password-entry", "user"]  # the vhost was there: the run made its user only
    _, report = world.undo(run_id)
    assert report.exit_code is ExitCode.OK, report.error
    assert inventory(world) == before
    assert world.broker.client().get_vhost("acme") is not None


def test_undo_dry_run_shows_the_plan_and_makes_zero_writes(world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = failed_install(world, monkeypatch)
    made, batches = inventory(world), world.sql.batches
    _, plan = world.undo(run_id, Mode.PLAN)
    assert plan.exit_code is ExitCode.OK, plan.error
    assert world.mutating_calls() == [] and world.sql.batches == batches
    assert inventory(world) == made
    change = {r.step_id: r.reason for r in plan.results if r.status is Status.CHANGE}
    assert "user rms_acme" in change["undo-hub-vhost"] and "vhost acme" in change["undo-hub-vhost"]
    assert "client record acme" in change["undo-org-id"]


def test_an_interrupted_undo_is_continued_by_running_it_again(
        world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    before = inventory(world)
    run_id = failed_install(world, monkeypatch)
    armed = fail_on(monkeypatch, "iam", "DeleteUser")
    first_id, first = world.undo(run_id)
    armed[0] = False
    assert first.exit_code is ExitCode.FAILED and statuses(first)["undo-sandbox-pos-iam-user"] is Status.FAILED
    assert "rms_acme" in inventory(world)["iam_users"]
    second_id, second = world.undo(run_id)
    assert second.exit_code is ExitCode.OK, second.error
    assert inventory(world) == before
    for undo_id in (run_id, first_id, second_id):
        assert verify_run(state_dir(), undo_id) == []


def test_a_plan_or_an_undo_is_not_undone(world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = failed_install(world, monkeypatch)
    undo_id, _ = world.undo(run_id)
    with pytest.raises(InputError, match="is itself an undo"):
        world.prepared(undo_id)
    plan_id, _ = world.undo(run_id, Mode.PLAN)
    with pytest.raises(InputError, match="was a plan run, which changes nothing"):
        world.prepared(plan_id)
    assert get_client(world.client("dynamodb"), "acme") is None


def test_every_undo_step_destroys_so_the_typed_confirmation_is_asked_everywhere(
        world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.guards import Environment, needs_typed_confirmation
    from kensium_provision.model import Risk

    run_id = failed_install(world, monkeypatch)
    checklist = world.prepared(run_id).checklist
    assert checklist.steps and {s.risk for s in checklist.steps} == {Risk.DESTROY}
    assert checklist.target == "client:acme" and checklist.scope == "undo"
    protected = Environment(name="production", account_id="222222222222", region="us-east-1", protected=True)
    assert needs_typed_confirmation(protected, destroys=True)


def test_every_call_an_undo_makes_is_declared_as_its_step_types_undo(
        world: UndoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """permissions.declared `Uses.undo`: each call of a whole install's undo is declared there for its step type,
    and each declared one is made (this undo reaches every undoable type of the install)."""
    run_id, installed = world.install_journaled()
    assert installed.exit_code is ExitCode.OK, installed.error
    made = recording(monkeypatch)
    _, report = world.undo(run_id)
    assert report.exit_code is ExitCode.OK, report.error
    undone = undone_types(run_id, report.results)
    assert undone >= {"client.org-id", "credential.password", "rabbitmq.vhost", "iam.sandbox-client-user",
                      "s3.sandbox-client-bucket", "sql.database", "sql.login"}
    said, untested = declared_undo(undone)
    assert sorted(made - said) == []
    assert sorted(said - made - untested) == []


def recording(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every AWS operation kprov's sessions call from now on, as `service:Operation`."""
    made: set[str] = set()
    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        found = make(self, service, **kwargs)
        found.meta.events.register("before-parameter-build",
                                   lambda model, **_: made.add(f"{service}:{model.name}"), unique_id="undo-recorder")
        return found

    monkeypatch.setattr(AwsSession, "client", client)
    return made


def undone_types(run_id: str, results: Any) -> set[str]:
    """The step types of the run whose undo step changed something."""
    changed = {r.step_id for r in results if r.status is Status.CHANGED}
    return {str(r["type"]) for r in read_run(state_dir(), run_id).records
            if r["event"] == "step.intent" and f"undo-{r['step']}" in changed}


def declared_undo(types: set[str]) -> tuple[set[str], set[str]]:
    """(the operations permissions.declared says these step types' undo calls, those a sandbox run may not reach)."""
    from kensium_provision.permissions import declared

    said = {op for name in types for entry in declared.STEPS[name].undo
            for op in (declared.VAULT[entry.removeprefix("vault:")] if entry.startswith("vault:") else (entry,))}
    return said, {op for name in types for op in declared.STEPS[name].untested}


# --- a shared checklist, on the command line: kprov undo RUN_ID ---------------------------------------------

VPC_ANSWERS = str(Path(__file__).resolve().parents[1] / "examples" / "shared-vpc.yaml")


def newest_run(before: set[str]) -> str:
    (fresh,) = {p.stem for p in (state_dir() / "runs").glob("*.jsonl")} - before
    return fresh


def run_ids() -> set[str]:
    return {p.stem for p in (state_dir() / "runs").glob("*.jsonl")} if (state_dir() / "runs").is_dir() else set()


def provisioned_vpc(kprov: Kprov) -> str:
    before = run_ids()
    done = kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    assert done.code == ExitCode.OK, done.err
    return newest_run(before)


def confirmation(tmp_path: Path, target: str) -> str:
    path = tmp_path / "confirm.yaml"
    path.write_text(f"confirm_target: {target}\n")
    return str(path)


def test_undo_of_a_shared_vpc_on_the_command_line_with_json(aws: None, kprov: Kprov,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = aws_inventory()
    run_id = provisioned_vpc(kprov)
    made = aws_inventory()
    assert len(made["subnets"]) == len(before["subnets"]) + 4 and made["parameters"] != before["parameters"]
    runs = run_ids()
    calls = recording(monkeypatch)
    done = kprov("--output", "json", "undo", run_id, "--yes", "--answers", confirmation(tmp_path, "POS-VPC"))
    assert done.code == ExitCode.OK, done.err
    document = done.json()
    assert document["undoes"] == run_id and document["undone_runs"] == [run_id]
    assert sorted(VALIDATOR.iter_errors(document), key=str) == []  # docs/json-output.schema.json
    steps = {s["id"]: s["status"] for s in document["steps"]}
    assert steps["undo-vpc"] == "changed" and steps["undo-operator-ip-rule"] == "changed"
    assert steps["undo-shared-record"] == "changed"  # the record of the VPC goes with it
    assert list(steps).index("undo-db-group-rules") < list(steps).index("undo-security-group") \
        < list(steps).index("undo-vpc")
    assert aws_inventory() == before
    undo_id = newest_run(runs)
    assert document["run_id"] == undo_id
    undone = {str(r["type"]) for r in read_run(state_dir(), run_id).records if r["event"] == "step.intent"
              and steps.get(f"undo-{r['step']}") == "changed"}
    said, untested = declared_undo(undone)
    own = {"sts:GetCallerIdentity", "ssm:GetParameter", "ssm:DeleteParameter",  # kprov's: guards, shared record,
           "iam:SimulatePrincipalPolicy"}  # and its permission preflight
    assert sorted(calls - said - own) == [] and sorted(said - calls - untested) == []
    for checked in (run_id, undo_id):
        verified = kprov("audit", "verify", checked)
        assert verified.code == ExitCode.OK, verified.err


def test_yes_never_gives_the_typed_confirmation_of_an_undo(aws: None, kprov: Kprov) -> None:
    run_id = provisioned_vpc(kprov)
    made = aws_inventory()
    done = kprov("--non-interactive", "undo", run_id, "--yes")
    assert done.code == ExitCode.INVALID, done.err  # the typed target is a missing answer: nothing attempted
    said = " ".join(done.err.split())
    assert "THIS RUN DESTROYS RESOURCES in sandbox" in said and "confirm_target: POS-VPC" in said
    assert aws_inventory() == made


def test_undo_on_a_protected_environment_asks_the_typed_confirmation(
        aws: None, kprov: Kprov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = provisioned_vpc(kprov)
    made = aws_inventory()
    config = tmp_path / "config.yaml"
    config.write_text("environments:\n  sandbox: {sandbox: true, region: us-east-1, protected: true}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    wrong = kprov("undo", run_id, "--yes", "--answers", confirmation(tmp_path, "acme"))
    assert wrong.code == ExitCode.ABORTED, wrong.err
    assert "PROTECTED ENVIRONMENT: sandbox" in wrong.err and "did not match 'POS-VPC'" in wrong.err
    assert aws_inventory() == made
    right = kprov("undo", run_id, "--yes", "--answers", confirmation(tmp_path, "POS-VPC"))
    assert right.code == ExitCode.OK, right.err
    assert made["vpcs"] != aws_inventory()["vpcs"]


def test_undo_dry_run_on_the_command_line_writes_nothing(aws: None, kprov: Kprov) -> None:
    run_id = provisioned_vpc(kprov)
    made = aws_inventory()
    runs = run_ids()
    plan = kprov("--output", "json", "undo", run_id, "--dry-run")
    assert plan.code == ExitCode.OK, plan.err
    steps = {s["id"]: s["status"] for s in plan.json()["steps"]}
    assert steps["undo-vpc"] == "will change" and steps["undo-shared-record"] == "will change", steps
    assert plan.json()["kind"] == "plan" and sorted(VALIDATOR.iter_errors(plan.json()), key=str) == []
    assert aws_inventory() == made
    undo_id = newest_run(runs)
    calls = read_run(state_dir(), undo_id).records[-1]["api_calls"]
    assert isinstance(calls, dict) and calls["by_operation"]
    assert [op for op in calls["by_operation"] if not op.split(":", 1)[1].startswith(("Describe", "Get", "List"))] == []


def test_a_changed_rule_refuses_the_undo_naming_the_step_exit_3(aws: None, kprov: Kprov,
                                                               tmp_path: Path) -> None:
    run_id = provisioned_vpc(kprov)
    ec2 = raw_client("ec2")
    (group,) = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["SG-POS-DB"]}])["SecurityGroups"]
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "192.0.2.9/32"}]}])
    made = aws_inventory()
    done = kprov("--output", "json", "undo", run_id, "--yes", "--answers", confirmation(tmp_path, "POS-VPC"))
    assert done.code == ExitCode.INVALID, done.err
    assert done.json()["kind"] == "error" and "step db-security-group" in done.json()["message"]
    said = " ".join(done.err.split())
    assert "step db-security-group (ec2.security-group)" in said and "192.0.2.9/32" in said, said
    assert aws_inventory() == made


def test_what_a_journal_does_not_say_was_created_is_never_removed(aws: None) -> None:
    """A create journaled without `step.created` (an older kprov), a change to what existed, a person's step:
    the plan names each and why it is not undone; nothing is removed."""
    from kensium_provision.engine.undo import plan_undo
    from kensium_provision.journal.reader import RunLog
    from tests.checklist_harness import moto_runtime

    def acted(step: str, kind: str, diff: list[list[object]], **params: object) -> list[dict[str, object]]:
        return [{"event": "step.intent", "step": step, "type": kind, "risk": "create", "params": params, "diff": diff},
                {"event": "step.result", "step": step, "status": "changed"}]

    records: list[dict[str, object]] = [*acted("vpc", "ec2.vpc", [], name="POS-VPC"),
               *acted("subnet", "ec2.subnet", [["MapPublicIpOnLaunch", False, True]], name="POS-public-a"),
               *acted("read-docs", "manual", [], instructions="Read the VPC page\nthen go on"),
               {"event": "step.result", "step": "igw", "status": "done"}]
    log = RunLog(run_id="20261203T060000Z-aaaaaa", path=Path("x"), header={"mode": "apply"}, records=tuple(records))
    plan = plan_undo(log.run_id, [log], moto_runtime(Mode.PLAN), registry())
    reasons = {i.step.step_id: (i.action, i.reason) for i in plan.items}
    assert reasons["vpc"][0] == "not-undoable" and "does not say what it created" in reasons["vpc"][1]
    assert "changed what existed before the run (MapPublicIpOnLaunch: no, should be yes)" in reasons["subnet"][1]
    assert "a person did this step" in reasons["read-docs"][1] and "Read the VPC page" in reasons["read-docs"][1]
    assert [i.step.step_id for i in plan.items] == ["read-docs", "subnet", "vpc"]  # newest first
    assert plan.kept == ("igw",)  # found done by its probe: it existed before the run


# --- the install on the command line: kprov install-client acme, failed at step N, then kprov undo -----------


@pytest.fixture
def cli_world(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The estate, and a RabbitMQ emulator whose admin is the broker's (`admin`, mq-POS-01/admin in the password
    manager), reached through the config's rabbitmq.base_url as on a real account. No SQL connection: the SQL
    steps are a person's (the example's `confirm:`)."""
    from kensium_provision.sandbox.rabbitmq import start_emulator
    from tests.rabbitmq_fixtures import Broker

    password = "sandbox-admin-password"  # build_estate's mq-POS-01/admin
    emulator = start_emulator(admin_user="admin", admin_password=password)
    try:
        world = World(broker=Broker(kind="emulator", base_url=emulator.base_url, admin_user="admin",
                                    admin_password=password))
        build_estate(world)
        config = tmp_path / "config.yaml"
        config.write_text("environments:\n  sandbox: {sandbox: true, region: us-east-1}\n"
                          f"rabbitmq: {{base_url: \"{emulator.base_url}\"}}\n")
        monkeypatch.setenv("KPROV_CONFIG", str(config))
        yield world
    finally:
        emulator.stop()


def test_install_client_failed_at_step_n_then_undo_on_the_command_line(
        cli_world: World, kprov: Kprov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = inventory(cli_world)
    armed = fail_on(monkeypatch, "s3", "CreateBucket")
    runs = run_ids()
    failed = kprov("install-client", "acme", "--answers", str(EXAMPLE), "--yes")
    armed[0] = False
    assert failed.code == ExitCode.FAILED, failed.err
    run_id = newest_run(runs)
    made = inventory(cli_world)
    assert "acme" in made["vhosts"] and "rms_acme" in made["iam_users"] and made["records"] == ["kprov-clients/acme"]

    plan = kprov("--output", "json", "undo", run_id, "--dry-run")
    assert plan.code == ExitCode.OK, plan.err
    reasons = {s["id"]: (s["status"], s["reason"]) for s in plan.json()["steps"]}
    assert reasons["undo-hub-vhost"][0] == "will change" and reasons["undo-org-id"][0] == "will change"
    assert reasons["undo-client-database"][0] == "skipped"  # no SQL connection: the script a person runs
    assert "DROP DATABASE [POS_acme]" in reasons["undo-client-database"][1]
    assert inventory(cli_world) == made

    runs = run_ids()
    done = kprov("--output", "json", "undo", run_id, "--yes", "--answers", confirmation(tmp_path, "acme"))
    assert done.code == ExitCode.OK, done.err
    assert sorted(VALIDATOR.iter_errors(done.json()), key=str) == []
    assert "THIS RUN DESTROYS RESOURCES in sandbox" in done.err  # the typed confirmation, from the answers file
    assert inventory(cli_world) == before
    for checked in (run_id, newest_run(runs)):
        verified = kprov("audit", "verify", checked)
        assert verified.code == ExitCode.OK, verified.err


def test_an_undo_stopped_midway_on_the_command_line_says_how_to_continue_it(
        aws: None, kprov: Kprov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = aws_inventory()
    run_id = provisioned_vpc(kprov)
    answers = confirmation(tmp_path, "POS-VPC")
    armed = fail_on(monkeypatch, "ec2", "DeleteInternetGateway")
    stopped = kprov("undo", run_id, "--yes", "--answers", answers)
    armed[0] = False
    assert stopped.code == ExitCode.FAILED, stopped.err
    said = " ".join(stopped.err.split())
    assert f"Next: fix the cause, then `kprov undo {run_id} --answers {answers} --yes`" in said, said
    assert aws_inventory()["vpcs"] != before["vpcs"]  # the subnets and the VPC are still there
    undo_run = newest_run({run_id})
    resumed = kprov("resume", undo_run, "--yes", "--answers", answers)  # an undo is no checklist to resume
    assert resumed.code == ExitCode.INVALID, resumed.err
    assert f"run {undo_run} is an undo of run {run_id}: continue it with `kprov undo {run_id}`" in resumed.err
    again = kprov("undo", run_id, "--yes", "--answers", answers)
    assert again.code == ExitCode.OK, again.err
    assert aws_inventory() == before


def test_an_undo_runs_only_where_its_run_ran(aws: None, kprov: Kprov, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = provisioned_vpc(kprov)
    made = aws_inventory()
    config = tmp_path / "config.yaml"
    config.write_text("environments:\n  sandbox: {sandbox: true, region: us-east-1}\n"
                      "  qa: {account_id: \"123456789012\", region: us-east-1, purposes: [qa]}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    done = kprov("--env", "qa", "undo", run_id, "--yes", "--answers", confirmation(tmp_path, "POS-VPC"))
    assert done.code == ExitCode.INVALID, done.err
    assert f"run {run_id} ran in environment sandbox, not qa" in " ".join(done.err.split())
    assert aws_inventory() == made


@pytest.mark.password_manager
def test_a_password_in_another_password_manager_is_named_for_a_person_to_delete(
        aws: None, tmp_path: Path, gpg: GpgHome) -> None:
    """A real pass store: kprov generates the entry there, and its undo says who deletes it and which."""
    from kensium_provision.runtime import NullJournal
    from kensium_provision.steps.base import StepContext
    from kensium_provision.steps.credential import CredentialPassword
    from kensium_provision.vault.backends import PassVault
    from tests.checklist_harness import moto_runtime
    from tests.test_vault_pass import init_store

    vault = PassVault(init_store(tmp_path / "store", gpg.key_id))
    journal = NullJournal()
    step, params = CredentialPassword(), {"name": "acme/sql-login", "policy": "sql-login"}
    ctx = StepContext(moto_runtime(Mode.APPLY, vault=vault, journal=journal), "sql-password", {})
    step.act(ctx, params, step.probe(ctx, params))
    made = [r for r in journal.records if r["event"] == "step.created"]
    assert [(r["kind"], r["id"]) for r in made] == [("password-entry", "pass:acme/sql-login")]
    check = step.undo_check(ctx, params, [created_of(r) for r in made])
    assert check.present == () and check.changed == ()
    assert "delete acme/sql-login by hand" in check.by_hand
    assert vault.find("acme/sql-login") == "pass:acme/sql-login"  # kprov deleted nothing


class TenantSqlServer(RemovingSqlServer):
    """RemovingSqlServer whose databases may hold tables (what a tenant writes), listed from sys.tables."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[str]] = {}

    def execute(self, sql: str) -> None:
        if m := re.search(r"FROM \[([^\]]+)\]\.sys\.tables WHERE is_ms_shipped = 0", sql):
            self.rows = [(t,) for t in self.tables.get(m[1], [])]
            return
        super().execute(sql)


def test_a_database_holding_data_since_the_run_is_never_dropped(
        emulated_rabbitmq: Broker, aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    reset_broker(emulated_rabbitmq)
    world = UndoWorld(broker=emulated_rabbitmq, sql=TenantSqlServer())
    build_estate(world)
    run_id = failed_install(world, monkeypatch)
    world.sql.tables["POS_acme"] = ["Orchard_Users", "Orders"]  # type: ignore[attr-defined]
    made = inventory(world)
    with pytest.raises(InputError, match=r"step client-database \(sql.database\): database POS_acme holds tables "
                                         r"since the run: Orchard_Users, Orders"):
        world.undo(run_id)
    assert inventory(world) == made
    reset_broker(emulated_rabbitmq)
