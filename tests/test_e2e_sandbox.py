"""Issue 3 (and issue 7's lock and history items) end to end: the real `kprov` in separate processes.

Part one uses the embedded sandbox, started on demand by the first kprov command and kept by the
module's tests (the one that needs an empty account has a sandbox of its own, so any order works): an
apply in one process is seen by a check in another; the whole shared estate and client acme; `runs
show` as an operator reads it; a second process on a locked client is refused.

Part two uses a moto server kprov did not start (this process hosts it), reached only through
AWS_ENDPOINT_URL with environments of moto's account: a dry run leaves the server's state as it was,
and the guards refuse, before any change, a qa install in production and a protected run whose
typed confirmation is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.errors import ExitCode
from tests.e2e import (
    SHARED_ESTATE,
    MotoServer,
    World,
    events,
    example,
    moto_server,
)

if TYPE_CHECKING:
    from tests.conftest import Kprov

pytestmark = pytest.mark.slow

READ_ONLY = ("Describe", "List", "Get", "Head", "GET ")
QA_CONFIG = 'environments:\n  qa: {account_id: "123456789012", region: us-east-1, purposes: [qa, development, demo]}\n'
PRODUCTION_CONFIG = ('environments:\n  production: {account_id: "123456789012", region: us-east-1, '
                     "purposes: [production, staging], protected: true}\n")


def one_line(text: str) -> str:
    return " ".join(text.split())


# ---- part one: the embedded sandbox -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = World(tmp_path_factory.mktemp("e2e-sandbox"))
    yield world
    world.kprov("sandbox", "stop")  # never leave the server behind


@pytest.fixture
def empty_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A sandbox of the test's own, empty whatever ran before (the module's tests run in any order)."""
    world = World(tmp_path_factory.mktemp("e2e-empty"))
    yield world
    world.kprov("sandbox", "stop")


@pytest.fixture(scope="module")
def estate(sandbox_world: World) -> dict[str, str]:
    """The whole shared estate and client acme, one kprov process each; the run id of every apply."""
    runs = {}
    for resource in SHARED_ESTATE:
        before = sandbox_world.run_ids()
        done = sandbox_world.kprov("provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"),
                                   "--yes")
        assert done.returncode == ExitCode.OK, f"{resource}: {done.stderr}"
        runs[resource] = sandbox_world.new_run(before)
    before = sandbox_world.run_ids()
    done = sandbox_world.kprov("install-client", "acme", "--answers", example("client-acme.yaml"), "--yes")
    assert done.returncode == ExitCode.OK, done.stderr
    runs["acme"] = sandbox_world.new_run(before)
    return runs


def test_an_apply_in_one_process_is_seen_by_a_check_in_another(empty_sandbox: World) -> None:
    answers = example("shared-vpc.yaml")
    before = empty_sandbox.kprov("--output", "json", "check", "shared", "vpc", "--answers", answers)
    assert before.returncode == ExitCode.FAILED, before.stderr  # nothing there yet: findings
    assert json.loads(before.stdout)["ok"] is False

    applied = empty_sandbox.kprov("provision", "shared", "vpc", "--answers", answers, "--yes")
    assert applied.returncode == ExitCode.OK, applied.stderr
    status = json.loads(empty_sandbox.kprov("--output", "json", "sandbox", "status").stdout)
    assert status["running"] and status["endpoint"].startswith("http://127.0.0.1:")

    checked = empty_sandbox.kprov("--output", "json", "check", "shared", "vpc", "--answers", answers)
    assert checked.returncode == ExitCode.OK, checked.stderr
    document = json.loads(checked.stdout)
    assert document["kind"] == "check-shared" and document["ok"] is True and len(document["runs"]) == 1
    report = document["runs"][0]
    assert report["ok"] is True and all(not s["findings"] for s in report["steps"])
    statuses = {s["id"]: s["status"] for s in report["steps"]}
    assert statuses["vpc"] == statuses["security-group"] == statuses["db-subnet-group"] == "done"
    # ... and without the answers file: the apply recorded them where every operator can read them.
    assert empty_sandbox.kprov("check", "shared", "vpc").returncode == ExitCode.OK


def test_the_estate_and_a_client_install_check_clean_and_verify(sandbox_world: World, estate: dict[str, str]) -> None:
    checked = sandbox_world.kprov("check", "client", "acme")
    assert checked.returncode == ExitCode.OK, checked.stderr
    shared = sandbox_world.kprov("check", "shared")
    assert shared.returncode == ExitCode.OK, shared.stderr
    verified = sandbox_world.kprov("audit", "verify")
    assert verified.returncode == ExitCode.OK, verified.stderr


def test_runs_show_of_the_install_reads_as_a_runsheet(sandbox_world: World, estate: dict[str, str]) -> None:
    run_id = estate["acme"]
    listed = sandbox_world.kprov("runs", "list")
    assert listed.returncode == ExitCode.OK and run_id in listed.stderr + listed.stdout
    assert "client:acme" in listed.stderr + listed.stdout

    shown = sandbox_world.kprov("runs", "show", run_id)
    assert shown.returncode == ExitCode.OK, shown.stderr
    text = shown.stdout + shown.stderr
    for expected in (f"kprov run {run_id}", "install-client", "client:acme", "sandbox (account 123456789012",
                     "org_id: acme", "purpose: qa", "hub-vhost", "client-record", "POS_acme_user"):
        assert expected in text, expected
    assert re.search(r"outcome\s+ok\b", text) and "operator" in text
    # Notes are shown as written: ".*" in a note is not Markdown emphasis.
    assert "configure=.*, write=.*, read=.*" in one_line(text)
    assert "{{" not in text

    markdown = sandbox_world.kprov("runs", "show", run_id, "--markdown")
    assert markdown.returncode == ExitCode.OK
    assert markdown.stdout.startswith(f"# kprov run {run_id}")
    assert "| outcome | **ok** |" in markdown.stdout and "| `hub-vhost` | changed |" in markdown.stdout

    data = json.loads(sandbox_world.kprov("--output", "json", "runs", "show", run_id).stdout)
    assert data["outcome"] == "ok" and data["target"] == "client:acme" and data["answers"]["purpose"] == "qa"
    assert {s["id"] for s in data["steps"]} >= {"sql-password", "hub-vhost", "client-record"}


def test_a_second_process_on_a_locked_client_is_refused_and_told_who_holds_it(
        sandbox_world: World, estate: dict[str, str]) -> None:
    import os

    from kensium_provision.records.locks import LocalLocks

    locks = LocalLocks(sandbox_world.state / "locks")
    held = locks.acquire("client:acme", owner="arn:aws:sts::123456789012:assumed-role/kprov-ops/alice",
                         run_id="20261128T000000Z-a11ce0", ttl_seconds=900)
    assert held.pid == os.getpid()  # a live holder on this host
    before = sandbox_world.run_ids()
    try:
        refused = sandbox_world.kprov("install-client", "acme", "--answers", example("client-acme.yaml"), "--yes")
        listed = json.loads(sandbox_world.kprov("--output", "json", "lock", "list").stdout)["locks"]
    finally:
        locks.release(held)
    assert refused.returncode == ExitCode.FAILED, refused.stderr
    message = one_line(refused.stderr)
    assert "client:acme is locked by arn:aws:sts::123456789012:assumed-role/kprov-ops/alice" in message, message
    assert "run 20261128T000000Z-a11ce0" in message and f"kprov lock break {held.lock_id}" in message, message
    assert [lock["run_id"] for lock in listed] == ["20261128T000000Z-a11ce0"]
    records = sandbox_world.records(sandbox_world.new_run(before))
    assert not events(records, "step.intent") and not events(records, "lock.acquired")
    assert events(records, "run.finished")[0]["outcome"] == "failed"


# ---- part two: a moto server kprov did not start -------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    yield from moto_server()


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory, server: MotoServer) -> World:
    """A world whose kprov reaches `server` only through AWS_ENDPOINT_URL; the server starts empty."""
    server.reset()
    return World(tmp_path_factory.mktemp("outside"), extra_env={"AWS_ENDPOINT_URL": server.endpoint})


def vpc_answers(world: World, extra: str = "") -> str:
    # Outside the sandbox kprov refuses the documentation address of the example: a public one instead.
    text = (example_text("shared-vpc.yaml")).replace("203.0.113.10", "52.94.76.10")
    return str(world.answers("vpc-answers.yaml", text + extra))


def example_text(name: str) -> str:
    with open(example(name), encoding="utf-8") as file:
        return file.read()


def mutating(calls: list[str]) -> list[str]:
    # SimulatePrincipalPolicy: the apply's permission preflight, a read (aws.wall.READ_OPERATIONS)
    reads = ("GetCallerIdentity", "SimulatePrincipalPolicy")
    return [c for c in calls if not c.startswith(READ_ONLY) and c not in reads]


def test_a_dry_run_leaves_a_foreign_servers_state_unchanged(outside: World, server: MotoServer) -> None:
    config = outside.write_config(QA_CONFIG)
    answers = vpc_answers(outside)
    before, calls = server.snapshot(), len(server.calls)
    plan = outside.kprov("--env", "qa", "--output", "json", "provision", "shared", "vpc", "--dry-run",
                         "--answers", answers)
    assert plan.returncode == ExitCode.OK, plan.stderr
    assert server.snapshot() == before
    assert mutating(server.calls[calls:]) == []
    assert {s["status"] for s in json.loads(plan.stdout)["steps"]} >= {"will change"}

    applied = outside.kprov("--env", "qa", "provision", "shared", "vpc", "--answers", answers, "--yes")
    assert applied.returncode == ExitCode.OK, applied.stderr
    assert server.named("vpc", "POS-VPC")

    # A plan that has something done and something to do: still nothing changes.
    before, calls = server.snapshot(), len(server.calls)
    plan = outside.kprov("--env", "qa", "provision", "shared", "rds", "--dry-run", "--answers",
                         example("shared-rds.yaml"))
    assert plan.returncode == ExitCode.OK, plan.stderr
    assert server.snapshot() == before and before["db_instances"] == [] and before["secrets"] == []
    assert mutating(server.calls[calls:]) == []

    # kprov used the server it was given: it started no sandbox of its own.
    assert not (outside.state / "sandbox" / "server.json").exists()
    assert config.is_file()  # the user's config (~/.config/kprov), found without --config


def test_production_refuses_a_qa_install_before_any_change(outside: World, server: MotoServer) -> None:
    outside.write_config(PRODUCTION_CONFIG)
    before, calls = server.snapshot(), len(server.calls)
    runs = outside.run_ids()
    refused = outside.kprov("--env", "production", "install-client", "acme", "--answers",
                            example("client-acme.yaml"), "--yes")
    assert refused.returncode == ExitCode.GUARD, refused.stderr
    assert "Refusing a qa install in environment 'production'" in one_line(refused.stderr)
    assert server.snapshot() == before and mutating(server.calls[calls:]) == []
    records = outside.records(outside.new_run(runs))
    guard = events(records, "guard")[-1]
    assert guard["guard"] == "purpose" and guard["outcome"] == "refused"
    assert not events(records, "step.intent") and not events(records, "lock.acquired")


def test_a_wrong_typed_confirmation_in_a_protected_environment_changes_nothing(
        outside: World, server: MotoServer) -> None:
    outside.write_config(PRODUCTION_CONFIG)
    before, calls = server.snapshot(), len(server.calls)
    runs = outside.run_ids()
    refused = outside.kprov("--env", "production", "provision", "shared", "vpc", "--yes",
                            "--answers", vpc_answers(outside, "confirm_target: POS-VPN\n"))
    assert refused.returncode == ExitCode.ABORTED, refused.stderr
    message = one_line(refused.stderr)
    assert "PROTECTED ENVIRONMENT" in refused.stderr and "did not match 'POS-VPC'" in message, message
    assert "nothing was changed" in message
    assert server.snapshot() == before and mutating(server.calls[calls:]) == []
    records = outside.records(outside.new_run(runs))
    assert events(records, "guard")[-1] == {**events(records, "guard")[-1], "guard": "typed-confirmation",
                                            "outcome": "refused"}
    assert [r["step"] for r in events(records, "step.intent") if r["risk"] != "read"] == []

    # Typed right, the same run goes ahead (--yes never stood in for it).
    done = outside.kprov("--env", "production", "provision", "shared", "vpc", "--yes",
                         "--answers", vpc_answers(outside, "confirm_target: POS-VPC\n"))
    assert done.returncode == ExitCode.OK, done.stderr
    assert len(server.named("vpc", "POS-VPC")) == 1


def test_the_journal_is_also_shipped_to_cloudwatch_logs_when_configured(
        aws: None, tmp_path: Path, kprov: Kprov) -> None:
    """A team's journal lives in the account too (issue 7, item 7): every record of an apply, in order.

    A plan's journal stays on this machine: a plan sends no write (issue 14; tests/test_cli.py checks it)."""
    import boto3

    config = tmp_path / "config.yaml"
    config.write_text("journal: {cloudwatch_log_group: kprov-journal}\n")
    done = kprov("--config", str(config), "--non-interactive", "provision", "shared", "vpc", "--yes",
                 "--answers", example("shared-vpc.yaml"))
    assert done.code == 0, done.err
    logs = boto3.client("logs", region_name="us-east-1")
    [stream] = logs.describe_log_streams(logGroupName="kprov-journal")["logStreams"]
    events = logs.get_log_events(logGroupName="kprov-journal", logStreamName=stream["logStreamName"])["events"]
    records = [json.loads(e["message"]) for e in events]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[0]["event"] == "run.started" and records[-1]["event"] == "run.finished"


def test_install_client_on_a_full_instance_is_refused_before_any_change(sandbox_world: World,
                                                                        estate: dict[str, str]) -> None:
    # Issue 16.8 through the whole command: the estate's one shared instance filled to its class's limit with
    # client records, `install-client beta` names it full and suggests a new one, exit 3, nothing made.
    import boto3

    from kensium_provision.aws.session import SANDBOX_CREDENTIALS
    from kensium_provision.records.clients import DEFAULT_TABLE, RETIRED, ClientRecord, list_clients, put_record
    from kensium_provision.steps.capacity import database_limit

    endpoint = json.loads(sandbox_world.kprov("--output", "json", "sandbox", "status").stdout)["endpoint"]
    key, secret = SANDBOX_CREDENTIALS

    def client(service: str) -> Any:
        make: Any = boto3.client
        return make(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                    aws_secret_access_key=secret)

    dynamodb, rds = client("dynamodb"), client("rds")
    [db] = [d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"] == "db-pos-01"]
    limit = database_limit(db["DBInstanceClass"])
    taken = sum(1 for r in list_clients(dynamodb) if r.rds_instance == "db-POS-01" and r.status not in RETIRED)
    fillers = [f"fill{n}" for n in range(limit - taken)]

    def inventory() -> dict[str, Any]:
        return {"records": sorted(r.org_id for r in list_clients(dynamodb)),
                "users": sorted(u["UserName"] for u in client("iam").list_users()["Users"]),
                "buckets": sorted(b["Name"] for b in client("s3").list_buckets()["Buckets"]),
                "secrets": sorted(s["Name"] for s in client("secretsmanager").list_secrets()["SecretList"])}

    try:
        for org in fillers:
            put_record(dynamodb, ClientRecord(org_id=org, client_name=org, status="installed",
                                              rds_instance="db-POS-01"))
        before = inventory()
        answers = sandbox_world.answers("beta.yaml", Path(example("client-acme.yaml")).read_text()
                                        .replace("acme", "beta").replace("Acme", "Beta"))
        refused = sandbox_world.kprov("install-client", "beta", "--answers", str(answers), "--yes")
        assert refused.returncode == ExitCode.INVALID, refused.stderr
        said = one_line(refused.stderr)
        assert f"every shared RDS instance of this kind is full: db-POS-01 ({limit} of {limit} databases" in said
        assert "Shared (New)" in said
        assert inventory() == before
    finally:
        for org in fillers:
            dynamodb.delete_item(TableName=DEFAULT_TABLE, Key={"OrgId": {"S": org}})
