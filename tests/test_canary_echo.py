"""Issue 14 must-show: AWS errors that ECHO THE REQUEST, at every create, leak no secret anywhere.

A loopback proxy of this test (bench/latency_proxy.py's, no delay) sits in front of the embedded sandbox's
moto server (the sandbox's server.json names it, so kprov reaches AWS only through it) and answers the first
attempt of each create-like operation of a command with a 400 whose message quotes the request body, raw and
URL-decoded, as AWS validation errors and proxies do. It is a stand-in for AWS's error path only (moto never
echoes a request); every other request reaches moto. Each command is then run again until it succeeds (each
retry meets the next create's echo), so the full estate (shared vpc, rds, rabbitmq, ec2, pos, tenant-manager)
and a client install end applied, every secret generated.

Afterwards every secret the password manager holds (the sandbox's Secrets Manager, read directly), plain,
base64 or URL-encoded (tests/test_canary.forms), is looked for in every stdout (`--output json`: the JSON
documents) and stderr, and every file under HOME and TMPDIR (state dir: journals, locks, crash reports).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

import pytest

from bench.latency_proxy import LatencyProxy, operation_of
from kensium_provision.aws.wall import is_read
from kensium_provision.errors import ExitCode
from tests.e2e import SHARED_ESTATE, World, example
from tests.test_canary import _secrets_manager, files_under, leaks

pytestmark = pytest.mark.slow

_CREDENTIAL = re.compile(r"password|secret|token|privatekey", re.IGNORECASE)
_REMOVALS = ("Delete", "Release", "Terminate", "Revoke", "Detach", "Disassociate", "Deregister", "Remove")
RETRIES = 60  # runs of one command at most: each meets at most one echo per create operation


class _Answer:
    """An HTTP answer the proxy relays (what LatencyProxy reads of an http.client.HTTPResponse)."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.status, self.reason, self._body, self._headers = status, "Bad Request", body, headers

    def read(self) -> bytes:
        return self._body

    def getheaders(self) -> list[tuple[str, str]]:
        return self._headers


class EchoProxy(LatencyProxy):
    """Answers the first attempt of each create-like operation (since `fresh()`) with an error quoting the
    request; `echoed` lists them."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, delay=0)
        self._seen: set[str] = set()
        self.echoed: list[str] = []

    def fresh(self) -> None:
        with self._lock:
            self._seen = set()

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> http.client.HTTPResponse:
        service, operation = operation_of(method, path, headers, body)
        key = f"{service}:{operation}"
        create = service != "?" and not is_read(service, operation) and not operation.startswith(_REMOVALS)
        with self._lock:
            echo = create and key not in self._seen
            self._seen.add(key)
            if echo:
                self.echoed.append(key)
        if not echo:
            return super()._forward(method, path, headers, body)
        return cast("http.client.HTTPResponse", _echo(service, headers, path, body))


def _fields(body: bytes, headers: dict[str, str]) -> list[tuple[str, str]]:
    """The request's parameters as (name, value), nested JSON flattened (Users.0.Password)."""
    text = body.decode("utf-8", "replace")
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
        return parse_qsl(text)
    found: list[tuple[str, str]] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk(f"{prefix}.{n}", item)
        else:
            found.append((prefix, str(value)))

    try:
        walk("", json.loads(text))
    except ValueError:
        return []
    return found


def _echo(service: str, headers: dict[str, str], path: str, body: bytes) -> _Answer:
    """A 400 of the service's protocol (botocore parses it into Error.Message) quoting the request as AWS's
    validation errors do ("Value '...' at '...' failed to satisfy constraint"): the credential-like parameter
    when there is one (else the first), also base64- and URL-encoded, and the start of the raw body. Under the
    500 characters aws/errors.py keeps whole (a longer message is cut to 120)."""
    fields = _fields(body, headers)
    name, value = next(((k, v) for k, v in fields if _CREDENTIAL.search(k)), fields[0] if fields else ("", ""))
    raw = body.decode("utf-8", "replace") or path
    message = (f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint "
               f"(base64 {base64.b64encode(value.encode()).decode()}, url {quote(value, safe='')}); request: ")
    message += raw[:max(0, 480 - len(message))]
    if headers.get("X-Amz-Target"):  # JSON protocols
        return _Answer(400, json.dumps({"__type": "ValidationException", "message": message}).encode(),
                       [("Content-Type", "application/x-amz-json-1.1")])
    if "x-www-form-urlencoded" in headers.get("Content-Type", ""):  # query protocols
        if service == "ec2":
            xml = (f"<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>{escape(message)}"
                   "</Message></Error></Errors><RequestID>echo</RequestID></Response>")
        else:
            xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>"
                   f"{escape(message)}</Message></Error><RequestId>echo</RequestId></ErrorResponse>")
        return _Answer(400, xml.encode(), [("Content-Type", "text/xml")])
    if service == "s3":
        xml = f"<Error><Code>InvalidArgument</Code><Message>{escape(message)}</Message></Error>"
        return _Answer(400, xml.encode(), [("Content-Type", "application/xml")])
    return _Answer(400, json.dumps({"message": message}).encode(),  # REST-JSON (Amazon MQ)
                   [("Content-Type", "application/json"), ("x-amzn-ErrorType", "BadRequestException")])


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("canary-echo"))
    try:
        yield made
    finally:
        made.kprov("sandbox", "stop")


@dataclass
class Echoed:
    """What one echoed estate gave: every stream, the creates echoed, the runs that failed or crashed, and the
    secrets the password manager (the sandbox's Secrets Manager) holds afterwards."""

    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)
    failed_runs: int = 0
    crashes: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)

    def leaks(self, world: World) -> list[str]:
        places: dict[str, bytes] = {"stdout": "".join(self.out).encode(), "stderr": "".join(self.err).encode(),
                                    **files_under(world.home, world.root / "tmp")}
        assert b"validation error detected" in places["stderr"] + places["stdout"]  # the echoes reached kprov
        return leaks({f"stored {name}": value for name, value in self.held.items()}, places)


def echoed_estate(world: World, commands: list[tuple[str, ...]], *, then: tuple[tuple[str, ...], ...] = ()) -> Echoed:
    """Run each command through the echoing proxy until it succeeds, then `then` once each."""
    from kensium_provision.sandbox.server import SERVER_FILE, sandbox_dir

    assert world.kprov("sandbox", "start").returncode == ExitCode.OK
    server_file = sandbox_dir(world.state) / SERVER_FILE
    info = json.loads(server_file.read_text())
    seen = Echoed()
    proxy = EchoProxy(info["endpoint"])
    with proxy:
        server_file.write_text(json.dumps({**info, "endpoint": proxy.url}))
        try:
            for args in commands:
                proxy.fresh()
                for _ in range(RETRIES):
                    done = world.kprov("--output", "json", *args, "--yes")
                    seen.out.append(done.stdout)
                    seen.err.append(done.stderr)
                    if done.returncode == ExitCode.OK:
                        break
                    if done.returncode == ExitCode.INTERNAL:  # an AWS error kprov did not translate: a crash
                        report = _crash(world)
                        operations = ",".join(re.findall(r"when calling the (\w+) operation", report)) or "?"
                        seen.crashes.append(f"{' '.join(args[:3])}: {operations}: {report[-600:]}")
                    seen.failed_runs += 1
                else:
                    raise AssertionError(f"{args} never succeeded: {done.stderr[-3000:]}")
            for args in then:
                done = world.kprov("--output", "json", *args)
                seen.out.append(done.stdout)
                seen.err.append(done.stderr)
        finally:
            server_file.write_text(json.dumps(info))
        seen.echoed = list(proxy.echoed)
    manager = _secrets_manager(info["endpoint"])
    seen.held = {e["Name"]: manager.get_secret_value(SecretId=e["ARN"])["SecretString"]
                 for e in manager.list_secrets()["SecretList"]}
    return seen


ESTATE: list[tuple[str, ...]] = [("provision", "shared", r, "--answers", example(f"shared-{r}.yaml"))
                                 for r in SHARED_ESTATE]


def test_aws_errors_echoing_every_create_request_leak_no_secret_anywhere(world: World) -> None:
    seen = echoed_estate(world, [*ESTATE, ("install-client", "acme", "--answers", example("client-acme.yaml"))],
                         then=(("check", "client", "acme"), ("check", "shared"), ("runs", "list"),
                               ("audit", "verify")))
    # The echoes really were met and really quoted secrets: the creates that carry one were among them.
    assert {"rds:CreateDBInstance", "secretsmanager:CreateSecret", "mq:CreateBroker"} <= set(seen.echoed), seen.echoed
    assert seen.failed_runs >= len(set(seen.echoed)) // 2
    assert any("master" in name for name in seen.held) and len(seen.held) >= 6, sorted(seen.held)
    found = seen.leaks(world)
    assert found == [], "\n".join(found)
    # None held a secret (above), but an echo must be no crash either: every AWS error is a translated one.
    assert not seen.crashes, "\n\n".join(seen.crashes)


def test_the_canary_sees_the_echo_when_aws_errors_are_not_redacted(world: World, tmp_path: Path) -> None:
    """The control: with the run's redactor (secret.Redactor, which aws/errors.translate and every output use)
    switched off in the kprov processes (a sitecustomize on their PYTHONPATH; the tree is untouched), the same
    echoes put the RDS master password in the output."""
    (tmp_path / "sitecustomize.py").write_text(
        "from kensium_provision.secret import Redactor\n\n"
        "Redactor.redact = lambda self, text: text\n"
        "Redactor.redact_obj = lambda self, obj: obj\n")
    world.extra_env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(tmp_path), os.environ.get("PYTHONPATH"))))
    seen = echoed_estate(world, ESTATE[:2])  # vpc, rds: CreateDBInstance carries MasterUserPassword
    found = seen.leaks(world)
    assert any("master" in leak for leak in found), found


def _crash(world: World) -> str:
    """The newest crash report's end (kprov writes no secret there; the test looks for leaks in it anyway)."""
    reports = sorted((world.state / "crash").glob("crash-*.txt"), key=lambda p: p.stat().st_mtime)
    return reports[-1].read_text()[-3000:] if reports else "(no crash report)"
