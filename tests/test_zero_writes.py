"""Issue 14: plan and check send no write; the one named exception of the read-only wall is said aloud.

`check client --all` may send iam:GenerateCredentialReport (aws/wall.py EXCEPTIONS: it replaces IAM's
cached report when none younger than four hours exists). Item 14.16: its JSON document names that
exception, with the reason, when and only when the check really sent it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from bench.latency_proxy import Call, LatencyProxy
from kensium_provision.errors import ExitCode
from kensium_provision.sandbox.server import SERVER_FILE, sandbox_dir
from tests.e2e import SHARED_ESTATE, World, example
from tests.test_canary import FAKE_PASSWORD_MANAGER, _secrets_manager
from tests.test_json_output import kprov_json

if TYPE_CHECKING:
    from tests.conftest import Kprov


def _moto_reports_when_it_generated(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto gap: GetCredentialReport always says GeneratedTime 2015-02-02, so a report is never fresh there.
    This answers with the time of the GetCredentialReport instead (a report generated moments ago)."""
    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def fresh(self: Any) -> ActionResult:
        return ActionResult({"Content": self.backend.get_credential_report(), "ReportFormat": "text/csv",
                             "GeneratedTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")})

    monkeypatch.setattr(IamResponse, "get_credential_report", fresh)


def test_the_fleet_check_names_the_wall_exception_in_its_json_only_when_it_used_it(
        aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.aws.wall import EXCEPTIONS

    # moto in-process: a fresh account has no credential report, so the first check must ask IAM for one.
    code, first, _ = kprov_json(kprov, "check", "client", "--all")  # validated against the schema
    assert (code, first["kind"]) == (0, "fleet")
    assert first["api_calls"]["by_operation"]["iam:GenerateCredentialReport"]["calls"] >= 1
    assert first["wall_exceptions"] == [{
        "operation": "iam:GenerateCredentialReport", "reason": EXCEPTIONS["iam:GenerateCredentialReport"],
        "calls": first["api_calls"]["by_operation"]["iam:GenerateCredentialReport"]["calls"]}]

    _moto_reports_when_it_generated(monkeypatch)
    # The report is now seconds old: the next check reuses it, sends no write, and names no exception.
    code, second, _ = kprov_json(kprov, "check", "client", "--all")
    assert code == 0
    assert "iam:GenerateCredentialReport" not in second["api_calls"]["by_operation"]
    assert "wall_exceptions" not in second


# ---- plan and check: a spy in front of AWS and the RabbitMQ management API -------------------------------

FEATURES = """\
journal: {cloudwatch_log_group: /kprov/journal}
locks: {backend: dynamodb, table: kprov-locks}
clients: {table: kprov-clients}
"""
READ_ONLY_COMMANDS = (
    ("provision", "shared", "vpc", "--dry-run", "--answers", example("shared-vpc.yaml")),
    ("provision", "shared", "rds", "--dry-run", "--answers", example("shared-rds.yaml")),
    ("install-client", "acme", "--dry-run", "--answers", example("client-acme.yaml")),
    # the permission preflight on request: iam:SimulatePrincipalPolicy evaluates, it changes nothing
    ("install-client", "acme", "--dry-run", "--preflight", "--answers", example("client-acme.yaml")),
    ("check", "shared"),
    ("check", "client", "acme"),
    ("check", "client", "--all"),
)
RABBITMQ_WRITES = ("PUT ", "POST ", "DELETE ", "PATCH ")


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The full shared estate and acme, applied in the embedded sandbox with every optional feature on: journal
    shipping to CloudWatch Logs, DynamoDB locks, client records (DynamoDB) and a `command` password manager."""
    world = World(tmp_path_factory.mktemp("zero-writes"))
    store = world.root / "password-manager"
    store.mkdir()
    manager = [sys.executable, str(FAKE_PASSWORD_MANAGER), "--dir", str(store)]
    world.write_config(FEATURES + "vault: " + json.dumps({
        "backend": "command", "command": [*manager, "store", "{name}"],
        "fetch_command": [*manager, "fetch", "{name}"]}) + "\n")
    try:
        for resource in SHARED_ESTATE:
            done = world.kprov("provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"),
                               "--yes")
            assert done.returncode == ExitCode.OK, f"{resource}: {done.stderr[-3000:]}"
        # The sandbox keeps its RabbitMQ emulator's admin password in its own Secrets Manager; with a `command`
        # password manager the operator copies it there (kprov looks the entry up in the run's vault).
        info = json.loads((sandbox_dir(world.state) / SERVER_FILE).read_text())
        secret = _secrets_manager(info["endpoint"]).get_secret_value(SecretId=info["rabbitmq_secret"])
        entry = info["rabbitmq_secret"].removeprefix("kprov/sandbox/")
        (store / "entries" / entry.replace("/", "__")).write_text(secret["SecretString"])
        done = world.kprov("install-client", "acme", "--answers", example("client-acme.yaml"), "--yes")
        assert done.returncode == ExitCode.OK, done.stderr[-3000:]
        yield world
    finally:
        world.kprov("sandbox", "stop")


@contextmanager
def spied(world: World) -> Iterator[tuple[LatencyProxy, LatencyProxy]]:
    """Loopback proxies (bench/latency_proxy.py, no delay) in front of the sandbox's moto server and RabbitMQ
    emulator: the sandbox's server.json, which kprov reads to reach them, names the proxies meanwhile."""
    path = sandbox_dir(world.state) / SERVER_FILE
    original = path.read_text()
    info = json.loads(original)
    with LatencyProxy(info["endpoint"], delay=0) as aws, LatencyProxy(info["rabbitmq_url"], delay=0) as rabbitmq:
        path.write_text(json.dumps({**info, "endpoint": aws.url, "rabbitmq_url": rabbitmq.url}))
        try:
            yield aws, rabbitmq
        finally:
            path.write_text(original)


def aws_writes(calls: list[Call]) -> list[str]:
    """Every request to an AWS API that kprov's own wall would not call a read (the sandbox's health check,
    `GET /moto-api/...`, is no AWS API: it has no SigV4 service)."""
    return [c.key for c in calls if c.service != "?" and not c.read]


@pytest.mark.slow
def test_plans_and_checks_send_no_write_to_aws_or_rabbitmq_with_every_feature_on(estate: World) -> None:
    seen: dict[str, tuple[list[str], list[str], int, int]] = {}
    with spied(estate) as (aws, rabbitmq):
        for args in READ_ONLY_COMMANDS:
            done = estate.kprov(*args)
            assert done.returncode == ExitCode.OK, f"{args}: {done.stderr[-3000:]}"
            sent, managed = aws.take(), rabbitmq.take()
            assert not [c for c in sent if c.service == "?" and c.operation.split(" ")[0] != "GET"]
            command = " ".join(a for a in args if not a.startswith("/"))
            rabbit_writes = [c.operation for c in managed if c.operation.startswith(RABBITMQ_WRITES)]
            seen[command] = (aws_writes(sent), rabbit_writes, sum(c.service != "?" for c in sent), len(managed))
        # The control: the spy does see writes. An apply with nothing to change still locks (DynamoDB) and ships
        # its journal (CloudWatch Logs): what a plan would send if its journal or lock were not read-only.
        done = estate.kprov("provision", "shared", "vpc", "--answers", example("shared-vpc.yaml"), "--yes")
        assert done.returncode == ExitCode.OK, done.stderr[-3000:]
        control = set(aws_writes(aws.take()))
        assert {"logs:PutLogEvents", "dynamodb:PutItem"} <= control, control
    for command, (writes, rabbit_writes, aws_requests, _rabbit_requests) in seen.items():
        assert aws_requests > 0, f"{command}: the spy saw no AWS request at all"
        assert rabbit_writes == [], f"{command}: RabbitMQ writes {rabbit_writes}"
        if command == "check client --all":
            # aws/wall.py EXCEPTIONS: the one documented exception, counted apart (moto's report is never fresh).
            assert set(writes) <= {"iam:GenerateCredentialReport"}, f"{command}: writes {writes}"
        else:
            assert writes == [], f"{command}: writes {writes}"
    assert seen["check client acme"][3] > 0, "the client check read the RabbitMQ management API"
    assert len(seen) == len(READ_ONLY_COMMANDS)
