"""`kprov undo` (issue 17.5): an install that failed at step N, undone, leaves the account as before.

The world is test_client_install's (moto in process with the shared estate, the hub vhost on the RabbitMQ
emulator, SQL Server as test_remove_client's fake DB-API connection, which knows DROP), with real journals
(`journal.writer.JournalWriter`) under the test's state dir, so `audit verify` reads them as it reads any.
The undo runs as `kprov undo` runs it, minus the command line: `engine.undo.prepare(...).run(runtime, {})`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.app.config import state_dir
from kensium_provision.aws.session import AwsSession
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.engine.undo import UndoRun, prepare
from kensium_provision.errors import ExitCode, InputError
from kensium_provision.journal.reader import read_run
from kensium_provision.journal.verify import verify_run
from kensium_provision.journal.writer import JournalWriter
from kensium_provision.model import Mode, Status
from kensium_provision.records.clients import get_client
from kensium_provision.runtime import Runtime
from kensium_provision.steps import registry
from tests.faults import inject
from tests.test_client_install import EXAMPLE, World, build_estate, reset_broker
from tests.test_remove_client import RemovingSqlServer

if TYPE_CHECKING:
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]


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
    ec2, rds, mq = world.client("ec2"), world.client("rds"), world.client("mq")
    iam, s3, sm, ssm = world.client("iam"), world.client("s3"), world.client("secretsmanager"), world.client("ssm")
    dynamodb = world.client("dynamodb")
    broker = world.broker.client()
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
        "vhosts": sorted(str(v["name"]) for v in broker.list_vhosts()),
        "rabbitmq_users": sorted(str(u["name"]) for u in broker.list_users()),
        "permissions": sorted(f"{p['user']}@{p['vhost']}" for p in broker.list_permissions()),
        "databases": sorted(world.sql.databases), "logins": sorted(world.sql.logins),
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
    """permissions.declared `Uses.undo` (what `kprov iam policy` grants): each call of a whole install's undo is
    declared there for its step type, and each declared one is made (this undo reaches every undoable type)."""
    from kensium_provision.permissions import declared

    run_id, installed = world.install_journaled()
    assert installed.exit_code is ExitCode.OK, installed.error
    made: set[str] = set()
    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        found = make(self, service, **kwargs)
        found.meta.events.register("before-parameter-build",
                                   lambda model, **_: made.add(f"{service}:{model.name}"), unique_id="undo-recorder")
        return found

    monkeypatch.setattr(AwsSession, "client", client)
    _, report = world.undo(run_id)
    assert report.exit_code is ExitCode.OK, report.error
    changed = {k for k, v in statuses(report).items() if v is Status.CHANGED}
    undone = {str(r["type"]) for r in read_run(state_dir(), run_id).records
              if r["event"] == "step.intent" and f"undo-{r['step']}" in changed}
    said = {op for name in undone for entry in declared.STEPS[name].undo
            for op in (declared.VAULT[entry.removeprefix("vault:")] if entry.startswith("vault:") else (entry,))}
    assert undone >= {"client.org-id", "credential.password", "rabbitmq.vhost", "iam.sandbox-client-user",
                      "s3.sandbox-client-bucket", "sql.database", "sql.login"}
    assert sorted(made - said) == []
    untested = {op for name in undone for op in declared.STEPS[name].untested}
    assert sorted(said - made - untested) == []
