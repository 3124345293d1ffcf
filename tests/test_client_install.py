"""The client install: checklists/client/install.yaml with examples/client-acme.yaml, under moto.

The shared estate (db-POS-01, POS01, mq-POS-01) is made with boto3 as the shared checklists leave it
(their tags included); the hub vhost goes to the RabbitMQ emulator, and once to a real rabbitmq-server;
SQL Server is a small fake DB-API connection through the `sql.connect` setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from kensium_provision.aws.session import AwsSession
from kensium_provision.checklist.answers import Answers, AnswersOperator, load_answers
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.errors import ExitCode, InputError, StepError
from kensium_provision.guards import Environment
from kensium_provision.model import Checklist, Mode, Status
from kensium_provision.naming.loader import load_rules
from kensium_provision.records.clients import (
    CLAIMED,
    DEFAULT_TABLE,
    ClientRecord,
    RecordTaken,
    existing_org_ids,
    get_client,
    list_clients,
    org_id_owner,
    put_record,
)
from kensium_provision.runtime import Runtime
from kensium_provision.secret import Secret
from kensium_provision.steps import registry
from kensium_provision.steps.base import StepContext, StepType
from kensium_provision.steps.lookups import ec2_hosts, rds_instances
from kensium_provision.steps.s3 import bucket_policy, policy_problems
from kensium_provision.vault.backends import SecretsManagerVault
from tests.checklist_harness import raw_client

if TYPE_CHECKING:
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
CHECKLIST = CHECKLISTS_DIR / "client" / "install.yaml"
EXAMPLE = ROOT / "examples" / "client-acme.yaml"
REGION, ZONE, OTHER_ZONE = "us-east-1", "us-east-1a", "us-east-1b"
POS_VERSION = "3.10.2"
MUTATING = re.compile(r"^(Create|Put|Delete|Add|Remove|Update|Modify|Tag|Untag|Attach|Detach|Run|Start|Stop)")


# --- step types: the registry, plus the client install's own until the lead registers them -------------


def _step_types() -> dict[str, StepType]:
    from kensium_provision.steps import client_record, credential, flow, iam, s3, sql

    mine: list[StepType] = [
        credential.CredentialPassword(), sql.SqlDatabase(), sql.SqlLogin(),
        iam.IamClientUser(), iam.IamSandboxClientUser(), s3.S3ClientBucket(), s3.S3SandboxClientBucket(),
        client_record.ClientOrgId(), client_record.ClientRecordStep(),
        flow.FlowStop(), flow.FlowRequire(), flow.FlowSelect(),
    ]
    return {**{t.name: t for t in mine}, **registry()}


class Spy:
    """A step type that records every `act` (a second run must make none)."""

    def __init__(self, inner: StepType, acts: list[str]) -> None:
        self.inner, self.acts = inner, acts
        self.name, self.summary, self.params, self.outputs = inner.name, inner.summary, inner.params, inner.outputs

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        return self.inner.probe(ctx, params)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Any) -> Any:
        self.acts.append(ctx.step_id)
        return self.inner.act(ctx, params, probe)

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Any:
        return self.inner.verify(ctx, params)

    def __getattr__(self, name: str) -> Any:  # the wrapped type's optional capabilities (steps.base)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


# --- a fake SQL Server behind the `sql.connect` setting ------------------------------------------------


class FakeSqlServer:
    """Understands exactly the T-SQL the sql.* step types send: guarded creates and their catalog probes."""

    def __init__(self) -> None:
        self.databases: set[str] = set()
        self.logins: dict[str, str] = {}  # login -> default database
        self.users: dict[str, set[str]] = {}  # database -> db_owner users
        self.batches = 0

    def connect(self, *, server: str, port: int, user: str, password: Secret) -> FakeSqlServer:
        assert (port, user, password.reveal()) == (1433, "admin", "Sandbox-Master-1"), "not the RDS master login"
        self.server = server
        return self

    def cursor(self) -> FakeSqlServer:
        return self

    def close(self) -> None:
        return None

    def commit(self) -> None:
        return None

    def execute(self, sql: str) -> None:
        self.rows: list[tuple[object, ...]] = []
        if sql.startswith("SELECT"):
            if m := re.search(r"FROM sys\.databases WHERE name = N'([^']+)'", sql):
                self.rows = [(m[1],)] if m[1] in self.databases else []
            elif m := re.search(r"FROM sys\.sql_logins WHERE name = N'([^']+)'", sql):
                self.rows = [(m[1], self.logins[m[1]], 0, 1)] if m[1] in self.logins else []
            elif m := re.search(r"FROM \[([^\]]+)\]\.sys\.database_principals AS m WHERE m\.name = N'([^']+)'", sql):
                self.rows = [(m[2], 1, 1)] if m[2] in self.users.get(m[1], set()) else []
            return
        self.batches += 1
        if m := re.search(r"CREATE DATABASE \[([^\]]+)\]", sql):
            self.databases.add(m[1])
        if m := re.search(r"CREATE LOGIN \[([^\]]+)\] WITH PASSWORD = N'[^']*', DEFAULT_DATABASE = \[([^\]]+)\]", sql):
            self.logins.setdefault(m[1], m[2])
        if (db := re.search(r"USE \[([^\]]+)\];", sql)) and (user := re.search(r"CREATE USER \[([^\]]+)\]", sql)):
            self.users.setdefault(db[1], set()).add(user[1])

    def fetchall(self) -> list[tuple[object, ...]]:
        return self.rows


# --- the world: moto, the shared estate, a broker ----------------------------------------------------


@dataclass
class World:
    """One sandbox account with the shared estate, and how to run the install checklist in it."""

    broker: Broker
    sql: FakeSqlServer = field(default_factory=FakeSqlServer)
    acts: list[str] = field(default_factory=list)
    runs: int = 0
    sandbox: bool = True
    counters: list[Any] = field(default_factory=list)

    @property
    def checklist(self) -> Checklist:
        return load_checklist(CHECKLIST, types=_step_types(), rule_ids=load_rules().ids)

    def types(self) -> dict[str, Any]:
        return {name: Spy(t, self.acts) for name, t in _step_types().items()}

    def client(self, service: str) -> Any:
        return raw_client(service)

    def runtime(self, mode: Mode, operator: Any) -> Runtime:
        env = Environment(name="sandbox", account_id="123456789012", region=REGION, sandbox=True)
        session = AwsSession(env, mode=mode, in_process=True)
        self.counters.append(session.counter)
        self.runs += 1
        vault = SecretsManagerVault(session.client("secretsmanager"), "sandbox")
        admin_ref = SecretsManagerVault(self.client("secretsmanager"), "sandbox").find("rabbitmq-local/admin")
        settings = {"rabbitmq": {"base_url": self.broker.base_url, "admin_user": self.broker.admin_user,
                                 "admin_secret": admin_ref},
                    "sql": {"connect": self.sql.connect}}
        if self.sandbox:
            settings["sandbox"] = True
        return Runtime(mode=mode, run_id=f"run-{self.runs}", aws=session, operator=operator, vault=vault,
                       names=load_rules(), env_name="sandbox", purpose="qa", assume_yes=True, settings=settings)

    def operator(self, answers: Path = EXAMPLE) -> AnswersOperator:
        vault = SecretsManagerVault(self.client("secretsmanager"), "sandbox")
        return AnswersOperator(load_answers(answers, self.checklist), assume_yes=True, fetch_secret=vault.fetch)

    def install(self, mode: Mode = Mode.APPLY, answers: Path = EXAMPLE, org_id: str = "acme") -> RunReport:
        checklist = self.checklist
        rt = self.runtime(mode, self.operator(answers))
        values = resolve_inputs(checklist, rt, {"org_id": org_id})
        return run(checklist, rt, values, types=self.types())

    def check(self, org_id: str = "acme") -> RunReport:
        """As `kprov check client`: the answers come from the client record."""
        record = get_client(self.client("dynamodb"), org_id)
        assert record is not None
        checklist = self.checklist
        rt = self.runtime(Mode.CHECK, AnswersOperator(Answers(), assume_yes=False))
        values = resolve_inputs(checklist, rt, dict(record.answers))
        return run(checklist, rt, values, types=self.types())

    def mutating_calls(self) -> list[str]:
        last = self.counters[-1].as_dict()["by_operation"]
        assert last, "no AWS call was counted"
        return sorted(k for k in last if MUTATING.match(k.split(":", 1)[1]))


def build_estate(world: World) -> None:
    """db-POS-01 (Web, us-east-1a), POS01 (POS 3.10.2, us-east-1a), mq-POS-01, as the shared checklists tag them."""
    create_instance(world, "db-POS-01")
    launch_host(world, "POS01", POS_VERSION, ZONE)
    world.client("mq").create_broker(
        BrokerName="mq-POS-01", EngineType="RABBITMQ", EngineVersion="3.13", DeploymentMode="SINGLE_INSTANCE",
        HostInstanceType="mq.t3.micro", PubliclyAccessible=True, AutoMinorVersionUpgrade=True,
        Users=[{"Username": "admin", "Password": "sandbox-admin-password"}], Tags={"kprov:name": "mq-POS-01"})
    vault = SecretsManagerVault(world.client("secretsmanager"), "sandbox")
    # The shared rabbitmq checklist stores the broker admin; the local broker's own admin is a second entry.
    vault.store("mq-POS-01/admin", Secret("sandbox-admin-password"), description="Amazon MQ admin", tags={})
    vault.store("rabbitmq-local/admin", Secret(world.broker.admin_password), description="local admin", tags={})


def create_instance(world: World, name: str, *, engine: str = "sqlserver-web", hosting: str = "Shared") -> None:
    """An RDS instance as the shared rds checklist leaves it, its master password in the password manager."""
    world.client("rds").create_db_instance(
        DBInstanceIdentifier=name, Engine=engine, DBInstanceClass="db.t3.small", MasterUsername="admin",
        MasterUserPassword="Sandbox-Master-1", AllocatedStorage=20, AvailabilityZone=ZONE,
        Tags=[{"Key": "Name", "Value": name}, {"Key": "kprov:name", "Value": name},
              {"Key": "kprov:hosting", "Value": hosting}])
    SecretsManagerVault(world.client("secretsmanager"), "sandbox").store(
        f"{name}/master", Secret("Sandbox-Master-1"), description=f"RDS master of {name}", tags={})


def launch_host(world: World, name: str, version: str, zone: str, hosting: str = "Shared") -> None:
    world.client("ec2").run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.large", Placement={"AvailabilityZone": zone},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "Name", "Value": name}, {"Key": "PosVersion", "Value": version},
            {"Key": "kprov:hosting", "Value": hosting}]}])


def reset_broker(broker: Broker) -> None:
    client = broker.client()
    for vhost in client.list_vhosts():
        if vhost["name"] != "/":
            client.delete_vhost(str(vhost["name"]))
    for user in client.list_users():
        if user["name"] != broker.admin_user:
            client.delete_user(str(user["name"]))


@pytest.fixture
def world(emulated_rabbitmq: Broker, aws: None) -> Iterator[World]:
    reset_broker(emulated_rabbitmq)
    w = World(broker=emulated_rabbitmq)
    build_estate(w)
    yield w
    reset_broker(emulated_rabbitmq)


def answers(tmp_path: Path, **changes: object) -> Path:
    """The example answers with some changed (None removes one)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.step_id: r.status for r in report.results}


# --- the whole install -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("real", marks=pytest.mark.rabbitmq), "emulator"])
def test_install_acme_then_rerun_changes_nothing_and_check_passes(backend: str, request: pytest.FixtureRequest,
                                                                  aws: None) -> None:
    broker: Broker = request.getfixturevalue("real_rabbitmq" if backend == "real" else "emulated_rabbitmq")
    reset_broker(broker)
    try:
        world = World(broker=broker)
        build_estate(world)
        first = world.install()
        assert first.exit_code is ExitCode.OK, first.error or [f.message for f in first.findings]
        done = statuses(first)
        assert not [s for s, st in done.items() if st in (Status.FAILED, Status.PENDING)]
        skipped = {s for s, st in done.items() if st is Status.SKIPPED}
        assert skipped == {"express-client-hosted", "express-under-10gb", "db-shared-new", "db-dedicated",
                           "tenant-shared-new", "tenant-dedicated", "tenant-host-address", "dns-record-route53"}
        record = get_client(world.client("dynamodb"), "acme")
        assert record is not None and record.status == "installed"
        assert (record.rds_instance, record.ec2_host, record.broker, record.vhost) == \
            ("db-POS-01", "POS01", "mq-POS-01", "acme")
        assert (record.database, record.login, record.iam_user, record.s3_bucket) == \
            ("POS_acme", "POS_acme_user", "rms_acme", "fusion-rms-acme")
        assert set(record.secrets) == {"sql_login", "rabbitmq_user"}
        assert all(ref.startswith("arn:aws:secretsmanager:") for ref in record.secrets.values())
        assert record.evidence["tenant_name"] == "acme" and record.answers["purpose"] == "qa"
        assert broker.client().get_vhost("acme") is not None
        assert world.sql.databases == {"POS_acme"} and "POS_acme_user" in world.sql.logins

        world.acts.clear()
        batches = world.sql.batches
        second = world.install()
        assert world.acts == []
        assert world.mutating_calls() == []
        assert world.sql.batches == batches
        assert set(statuses(second).values()) <= {Status.DONE, Status.SKIPPED}
        assert get_client(world.client("dynamodb"), "acme").created == record.created  # type: ignore[union-attr]

        check = world.check()
        assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]
        assert world.mutating_calls() == []
    finally:
        reset_broker(broker)


def test_plan_of_a_first_install_changes_nothing(world: World) -> None:
    plan = world.install(Mode.PLAN)
    assert plan.exit_code is ExitCode.OK
    assert world.acts == [] and world.mutating_calls() == []
    st = statuses(plan)
    assert st["org-id"] is Status.CHANGE and st["db-instance-ready"] is Status.DONE and st["same-zone"] is Status.DONE
    assert st["client-login"] is Status.DEPENDS  # the password is made first
    assert get_client(world.client("dynamodb"), "acme") is None


def test_check_finds_a_deleted_vhost_and_a_removed_bucket_tag(world: World) -> None:
    assert world.install().exit_code is ExitCode.OK
    world.broker.client().delete_vhost("acme")
    world.client("s3").delete_bucket_tagging(Bucket="fusion-rms-acme")
    report = world.check()
    assert report.exit_code is ExitCode.FAILED
    by_step: dict[str, list[str]] = {}
    for f in report.findings:
        by_step.setdefault(f.step_id, []).append(f.message)
    assert set(by_step) == {"hub-vhost", "s3-bucket"}
    assert "The hub vhost acme with its own RabbitMQ user: vhost: none, should be acme" in by_step["hub-vhost"]
    assert by_step["s3-bucket"] == [
        "The S3 bucket is as POS provisions it: billing tag OrgId (or OrgID): none, should be acme"]


def test_check_finds_console_login_and_a_public_bucket(world: World) -> None:
    assert world.install().exit_code is ExitCode.OK
    world.client("iam").create_login_profile(UserName="rms_acme", Password="Some-Console-Pass-1")
    world.client("s3").put_bucket_policy(Bucket="fusion-rms-acme", Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Everything", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::fusion-rms-acme/*"}]}))
    findings = [f.message for f in world.check().findings]
    assert any("console login: enabled" in m for m in findings)
    assert any("public access beyond pub/*" in m and "Everything" in m for m in findings)
    assert any("rms_acme's access" in m for m in findings)


# --- choices offered --------------------------------------------------------------------------------


def test_hosts_with_another_pos_version_or_dedicated_are_never_offered(world: World) -> None:
    launch_host(world, "POS02", "3.9.0", ZONE)
    launch_host(world, "POS03", POS_VERSION, ZONE, hosting="Dedicated")
    launch_host(world, "POS04", POS_VERSION, OTHER_ZONE)
    ctx = StepContext(world.runtime(Mode.PLAN, world.operator()), "inputs", {})
    assert ec2_hosts(ctx, {"pos_version": POS_VERSION, "rule": "ec2-host"}) == ["POS01", "POS04"]
    assert ec2_hosts(ctx, {"pos_version": "3.9.0", "rule": "ec2-host"}) == ["POS02"]
    create_instance(world, "db-POS-02", engine="sqlserver-ex")
    create_instance(world, "db-POS-03", hosting="Dedicated")
    assert rds_instances(ctx, {"engine": "sqlserver-web", "rule": "rds-instance"}) == ["db-POS-01"]


def test_a_host_of_another_pos_version_is_refused_as_an_answer(world: World, tmp_path: Path) -> None:
    launch_host(world, "POS02", "3.9.0", ZONE)
    with pytest.raises(InputError, match=r"ec2_host: 'POS02' must be one of: POS01") as caught:
        world.install(answers=answers(tmp_path, ec2_host="POS02"))
    assert caught.value.exit_code is ExitCode.INVALID


def test_tenant_host_in_another_zone_than_the_database_fails(world: World, tmp_path: Path) -> None:
    launch_host(world, "POS05", POS_VERSION, OTHER_ZONE)
    report = world.install(answers=answers(tmp_path, ec2_host="POS05"))
    assert report.exit_code is ExitCode.FAILED
    assert statuses(report)["same-zone"] is Status.FAILED
    assert "should equal us-east-1a" in report.error
    assert statuses(report)["sql-password"] is Status.PENDING  # nothing after it ran


# --- hosting types: Dedicated and Shared (New) ----------------------------------------------------


def test_dedicated_without_a_recorded_approval_is_refused_before_anything(world: World, tmp_path: Path) -> None:
    # Exit 3 (invalid input, nothing attempted), not 5 (the operator declined): the approval is an
    # input, and a run without one never starts.
    path = answers(tmp_path, db_hosting="Dedicated", rds_dedicated_instance="db-POS-09")
    with pytest.raises(InputError, match="missing answer for 'db_dedicated_requested_by'") as caught:
        world.install(answers=path)
    assert caught.value.exit_code is ExitCode.INVALID
    assert get_client(world.client("dynamodb"), "acme") is None


def test_dedicated_with_approval_stops_until_its_instance_exists(world: World, tmp_path: Path) -> None:
    path = answers(tmp_path, db_hosting="Dedicated", rds_dedicated_instance="db-POS-09",
                   db_dedicated_requested_by="Sam Services (services manager)", db_dedicated_requested_on="2026-11-20")
    stopped = world.install(answers=path)
    assert stopped.exit_code is ExitCode.FAILED
    assert statuses(stopped)["db-dedicated"] is Status.FAILED
    assert "run `kprov provision shared rds` first" in stopped.error
    assert "kprov:hosting=Dedicated" in stopped.error and "kprov resume run-" in stopped.error
    create_instance(world, "db-POS-09", hosting="Dedicated")
    again = world.install(answers=path)
    assert again.exit_code is ExitCode.OK, again.error
    record = get_client(world.client("dynamodb"), "acme")
    assert record is not None and record.rds_instance == "db-POS-09"
    assert record.answers["db_dedicated_requested_by"] == "Sam Services (services manager)"


def test_shared_new_stops_with_the_exact_command_then_continues(world: World, tmp_path: Path) -> None:
    path = answers(tmp_path, db_hosting="Shared (New)", rds_instance=None, rds_new_instance="db-POS-02")
    stopped = world.install(answers=path)
    assert statuses(stopped)["db-shared-new"] is Status.FAILED
    assert stopped.error.startswith("acme's database goes on a new shared RDS instance, db-POS-02")
    assert "run `kprov provision shared rds` first (hint: then continue this run with `kprov resume run-" \
        in stopped.error
    assert world.acts == ["org-id", "db-shared-new"]  # the org id is reserved, nothing else was done
    create_instance(world, "db-POS-02")
    again = world.install(answers=path)
    assert again.exit_code is ExitCode.OK, again.error
    assert statuses(again)["db-shared-new"] is Status.DONE
    assert get_client(world.client("dynamodb"), "acme").rds_instance == "db-POS-02"  # type: ignore[union-attr]


def test_express_for_a_kensium_hosted_client_is_refused(world: World, tmp_path: Path) -> None:
    create_instance(world, "db-POS-03", engine="sqlserver-ex")
    path = answers(tmp_path, db_engine="sqlserver-ex", db_size_gb=4, rds_instance="db-POS-03")
    with pytest.raises(InputError, match="Express is only for small Client Hosted clients") as caught:
        world.install(answers=path)
    assert caught.value.exit_code is ExitCode.INVALID
    big = answers(tmp_path, db_engine="sqlserver-ex", db_size_gb=12, deployment_type="Client Hosted",
                  rds_instance="db-POS-03")
    with pytest.raises(InputError, match="every database stays under 10 GB"):
        world.install(answers=big)
    assert get_client(world.client("dynamodb"), "acme") is None


# --- org id uniqueness ------------------------------------------------------------------------------


def _put_record(world: World, record: ClientRecord) -> None:
    put_record(world.client("dynamodb"), record)


def test_org_id_taken_ignoring_case_is_refused(world: World) -> None:
    _put_record(world, ClientRecord(org_id="ACME", client_name="Acme Industries", status="installed"))
    with pytest.raises(InputError, match=r"org-id: 'acme' is already taken \(as 'ACME'\).*client record "
                                         r"kprov-clients/ACME") as caught:
        world.install()
    assert caught.value.exit_code is ExitCode.INVALID
    assert world.acts == [] and get_client(world.client("dynamodb"), "acme") is None


def test_org_id_of_another_client_is_refused(world: World) -> None:
    _put_record(world, ClientRecord(org_id="acme", client_name="Acme Industries", status="installed", run_id="run-0"))
    with pytest.raises(InputError, match="org id 'acme' belongs to client 'Acme Industries'"):
        world.install()


def test_an_iam_user_no_record_claims_takes_the_org_id(world: World) -> None:
    world.client("iam").create_user(UserName="rms_ACME")
    with pytest.raises(InputError, match=r"already taken \(as 'ACME'\); org ids are unique ignoring case: "
                                         r"IAM user rms_ACME "
                                         r"\(no client record claims it\)"):
        world.install()


def test_this_clients_own_record_and_resources_are_no_collision(world: World) -> None:
    world.install()
    dynamodb = world.client("dynamodb")
    ctx = StepContext(world.runtime(Mode.CHECK, world.operator()), "org-id", {})
    assert existing_org_ids(ctx) == {"acme"}  # record, rms_acme and fusion-rms-acme: one org id
    assert org_id_owner(ctx, "acme", "  ACME corporation ") is not None  # same client, spelled loosely
    assert [r.org_id for r in list_clients(dynamodb)] == ["acme"]


# --- the client record and fleet reads ---------------------------------------------------------


def test_names_the_loader_cannot_check_are_inputs(world: World) -> None:
    """`flow.select` cases and the record's `answers` name values without braces: keep them honest."""
    checklist = world.checklist
    inputs = [i.id for i in checklist.inputs]
    steps = {s.id: s for s in checklist.steps}
    assert steps["client-record"].params["answers"] == inputs  # every input, in order
    for step_id in ("db-instance", "tenant-host"):
        cases = steps[step_id].params["cases"]
        assert isinstance(cases, dict) and set(cases) == {"Shared", "Shared (New)", "Dedicated"}
        assert set(cases.values()) <= set(inputs)
    evidence = [e["id"] for s in checklist.steps if s.type == "manual"
                for e in s.params.get("evidence") or ()]  # type: ignore[attr-defined]
    assert sorted(steps["client-record"].params["evidence"]) == sorted(evidence)  # type: ignore[call-overload]


def test_list_clients_is_one_paginated_call(world: World) -> None:
    for org in ("alpha", "beta", "gamma"):
        _put_record(world, ClientRecord(org_id=org, client_name=org.title(), status=CLAIMED))
    world.client("dynamodb").put_item(TableName=DEFAULT_TABLE,
                                      Item={"OrgId": {"S": "broken"}, "Record": {"S": "{not json"}})
    rt = world.runtime(Mode.CHECK, world.operator())
    records = list_clients(rt.aws.client("dynamodb"))
    assert [(r.org_id, r.status) for r in records] == [("alpha", "claimed"), ("beta", "claimed"),
                                                         ("broken", "unreadable"), ("gamma", "claimed")]
    assert world.counters[-1].as_dict()["by_operation"] == {"dynamodb:Scan": {"calls": 1, "attempts": 1, "errors": 0}}


def test_no_table_yet_is_no_records_and_plan_never_makes_it(world: World) -> None:
    dynamodb = world.client("dynamodb")
    rt = world.runtime(Mode.CHECK, world.operator())
    assert list_clients(rt.aws.client("dynamodb")) == [] and get_client(rt.aws.client("dynamodb"), "acme") is None
    assert world.install(Mode.PLAN).exit_code is ExitCode.OK  # the org-id and record steps read: no table
    assert dynamodb.list_tables()["TableNames"] == []


def test_the_reservation_is_a_conditional_write(world: World) -> None:
    dynamodb = world.client("dynamodb")
    put_record(dynamodb, ClientRecord(org_id="acme", client_name="Acme Corporation", status=CLAIMED), claim=True)
    assert dynamodb.describe_table(TableName=DEFAULT_TABLE)["Table"]["BillingModeSummary"]["BillingMode"] == \
        "PAY_PER_REQUEST"  # made by the first write
    put_record(dynamodb, ClientRecord(org_id="acme", client_name=" acme  CORPORATION", status=CLAIMED), claim=True)
    for other in (ClientRecord(org_id="acme", client_name="Acme Industries", status=CLAIMED),
                  ClientRecord(org_id="ACME", client_name="Acme Corporation", status=CLAIMED)):
        with pytest.raises(RecordTaken):
            put_record(dynamodb, other, claim=True)
        with pytest.raises(RecordTaken):
            put_record(dynamodb, replace(other, status="installed"))
    put_record(dynamodb, ClientRecord(org_id="acme", client_name="Acme Corporation", status="installed"))
    with pytest.raises(RecordTaken):  # a claim never overwrites a finished record, even this client's
        put_record(dynamodb, ClientRecord(org_id="acme", client_name="Acme Corporation", status=CLAIMED), claim=True)
    assert [(r.org_id, r.status) for r in list_clients(dynamodb)] == [("acme", "installed")]


def test_a_reservation_lost_between_probe_and_act_names_the_winner(world: World) -> None:
    from kensium_provision.steps.client_record import ClientOrgId

    ctx = StepContext(world.runtime(Mode.APPLY, world.operator()), "org-id", {})
    params = {"org_id": "acme", "client_name": "Acme Corporation", "purpose": "qa"}
    probe = ClientOrgId().probe(ctx, params)
    assert not probe.done
    _put_record(world, ClientRecord(org_id="ACME", client_name="Acme Industries", status=CLAIMED, run_id="run-7"))
    with pytest.raises(InputError, match=r"already taken \(as 'ACME'\)"):
        ClientOrgId().act(ctx, params, probe)
    assert [r.org_id for r in list_clients(world.client("dynamodb"))] == ["ACME"]


def test_the_record_refuses_a_credential_value(world: World) -> None:
    from kensium_provision.steps.client_record import ClientRecordStep

    rt = world.runtime(Mode.APPLY, world.operator())
    secret = Secret("a-password-that-must-not-leak")
    ctx = StepContext(rt, "client-record", {"purpose": secret})
    with pytest.raises(StepError, match=r"answers\.purpose is a secret"):
        ClientRecordStep().probe(ctx, {"org_id": "acme", "client_name": "Acme", "answers": ["purpose"]})
    with pytest.raises(StepError, match=r"secrets\.sql_login must be a password-manager reference"):
        ClientRecordStep().probe(ctx, {"org_id": "acme", "client_name": "Acme", "secrets": {"sql_login": secret}})
    with pytest.raises(StepError, match="would contain a credential's value"):
        ClientRecordStep().probe(ctx, {"org_id": "acme", "client_name": "a-password-that-must-not-leak"})


def test_sandbox_stand_ins_are_refused_outside_the_sandbox(world: World) -> None:
    world.sandbox = False
    with pytest.raises(InputError, match="runs only in the sandbox") as caught:
        world.install()
    assert caught.value.exit_code is ExitCode.INVALID


# --- bucket policy analysis ------------------------------------------------------------------------


USER = "arn:aws:iam::123456789012:user/rms_acme"


def _policy(*statements: Mapping[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _fields(problems: Sequence[Any]) -> list[str]:
    return [p.field for p in problems]


def test_the_documented_policy_passes() -> None:
    assert policy_problems(bucket_policy("fusion-rms-acme", USER), "fusion-rms-acme", USER) == []


def test_wildcard_user_actions_count_as_granted() -> None:
    policy = _policy(
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/pub/*"},
        {"Effect": "Allow", "Principal": {"AWS": [USER]}, "Action": "s3:*",
         "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]})
    assert policy_problems(policy, "b", USER) == []


@pytest.mark.parametrize("extra", [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/pub/*"},
    {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/pub/*"},
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"},
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/sync/*"},
    {"Effect": "Allow", "Principal": "*", "NotAction": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/pub/*"},
    {"Effect": "Allow", "NotPrincipal": {"AWS": USER}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
])
def test_anything_public_beyond_pub_is_found(extra: Mapping[str, object]) -> None:
    policy = bucket_policy("b", USER)
    policy["Statement"] = [*policy["Statement"], extra]  # type: ignore[misc]
    assert _fields(policy_problems(policy, "b", USER)) == ["public access beyond pub/*"]


def test_missing_public_read_and_user_access_are_found() -> None:
    policy = _policy({"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "s3:GetObject",
                      "Resource": "arn:aws:s3:::b/*"})
    problems = policy_problems(policy, "b", USER)
    assert _fields(problems) == ["public read of pub/*", "rms_acme's access"]
    assert problems[1].actual == "missing s3:PutObject, s3:DeleteObject, s3:ListBucket"
    assert _fields(policy_problems(None, "b", USER)) == ["bucket policy"]


def test_a_deny_never_counts_as_public() -> None:
    policy = bucket_policy("b", USER)
    policy["Statement"] = [*policy["Statement"],  # type: ignore[misc]
                           {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                            "Resource": "arn:aws:s3:::b/secret/*"}]
    assert policy_problems(policy, "b", USER) == []
