"""Issue 8: canaries. Known secrets go through a whole sandbox run at `-v -v` and are found nowhere.

The CLI runs in this process (`cli.main(argv)`, the `kprov` fixture), so the password generator can
hand out known canaries; the sandbox is the real one kprov starts on demand (a moto server and the
RabbitMQ emulator in a child process). Secrets legitimately live in the sandbox's memory (its Secrets Manager is the
password manager); afterwards every secret it holds, the canaries and the values kprov never
generated (the IAM access key moto made, the EC2 key pair's private key, the emulator's admin
password) is looked for in stdout, stderr, every file under HOME (state, config, journal, locks,
the sandbox's log), crash reports, and the argv and environment of the sandbox process kprov
started. A second test does the same for the `command` password manager: the secret reaches its
stdin only, never its argv or environment.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import pytest

from kensium_provision.errors import ExitCode
from tests.e2e import SHARED_ESTATE, example

if TYPE_CHECKING:
    from tests.conftest import Kprov

FAKE_PASSWORD_MANAGER = Path(__file__).with_name("fake_password_manager.py")
_DEBUG_LOGGERS = ("kensium_provision", "botocore", "boto3", "urllib3")


class Canaries:
    """A stand-in for `secret.generate_password`: valid passwords of the policy, each one known."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self, policy: object, *, length: int | None = None) -> object:
        from kensium_provision.secret import Secret, check_password

        value = f"Cnry{len(self.issued):02d}-{uuid.uuid4().hex[:14]}-Zq"
        assert check_password(policy, value) == [], (policy, value)  # type: ignore[arg-type]
        self.issued.append(value)
        return Secret(value)


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> Canaries:
    from kensium_provision import secret

    made = Canaries()
    monkeypatch.setattr(secret, "generate_password", made)
    return made


@pytest.fixture
def debug_loggers() -> Iterator[None]:
    """`-v -v` configures process-wide loggers: put them back as they were."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level, list(logging.getLogger(n).handlers),
              logging.getLogger(n).propagate) for n in _DEBUG_LOGGERS]
    yield
    for logger, level, handlers, propagate in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def failure(err: str) -> str:
    """What went wrong, without the debug log around it."""
    return "\n".join(line for line in err.splitlines() if " DEBUG " not in line)[-3000:]


def forms(secret: str) -> set[str]:
    """The secret and the encodings a leak would show it in."""
    raw = secret.encode()
    found = {secret, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(), quote(secret, safe=""),
             quote_plus(secret), json.dumps(secret)[1:-1]}
    if "PRIVATE KEY" in secret:  # a PEM: any one of its base64 lines gives part of the key away
        found |= {line for line in secret.splitlines() if len(line) >= 40 and "PRIVATE KEY" not in line}
    return {f for f in found if len(f) >= 8}


def leaks(secrets: dict[str, str], places: dict[str, bytes]) -> list[str]:
    """Each secret found, where, and the text before it (the secret itself replaced)."""
    found = set()
    for label, value in secrets.items():
        for form in forms(value):
            for place, data in places.items():
                at = data.find(form.encode())
                if at >= 0:
                    before = data[max(0, at - 160):at].decode("utf-8", "replace").replace("\n", " ")
                    found.add(f"{label} in {place}, after: ...{before}<SECRET>")
    return sorted(found)


def files_under(*roots: Path) -> dict[str, bytes]:
    found = {}
    for root in roots:
        for path in root.rglob("*") if root.is_dir() else ():
            if path.is_file() and not path.is_symlink():
                found[str(path)] = path.read_bytes()
    return found


def crash_reports(since: float) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in Path(tempfile.gettempdir()).glob("crash-*.txt")
            if p.stat().st_mtime >= since}


@pytest.mark.slow
def test_a_full_sandbox_run_at_debug_level_leaves_no_secret_anywhere(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], kprov: Kprov, canaries: Canaries,
        debug_loggers: None, _isolated_world: Path) -> None:  # noqa: PT019 - its value: the isolated home
    from kensium_provision.app.config import state_dir
    from kensium_provision.sandbox import server as sandbox

    # The operator's own AWS credentials are secrets too (moto takes any): never in a log, a file or a child.
    operator_keys = {"AWS_SECRET_ACCESS_KEY": f"OperatorSecretKey-{uuid.uuid4().hex}",
                     "AWS_SESSION_TOKEN": f"OperatorSessionToken-{uuid.uuid4().hex}"}
    for name, value in operator_keys.items():
        monkeypatch.setenv(name, value)
    home, state, started = _isolated_world, state_dir(), time.time()
    out, err = [], []
    try:
        for resource in SHARED_ESTATE:
            done = kprov("-v", "-v", "provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"),
                         "--yes")
            out.append(done.out)
            err.append(done.err)
            assert done.code == ExitCode.OK, f"{resource}: {failure(done.err)}"
        for args in (("install-client", "acme", "--answers", example("client-acme.yaml"), "--yes"),
                     ("check", "client", "acme"), ("check", "shared"), ("runs", "list"), ("audit", "verify")):
            done = kprov("-v", "-v", *args)
            out.append(done.out)
            err.append(done.err)
            assert done.code == ExitCode.OK, f"{args}: {failure(done.err)}"
        install = next(p.stem for p in sorted((state / "runs").glob("*.jsonl"))
                       if '"command":"install-client acme"' in p.read_text())
        done = kprov("--output", "json", "runs", "show", install)
        assert done.code == ExitCode.OK
        out.append(done.out)
        err.append(done.err)

        info = sandbox.status(state)
        assert info is not None
        child = {f"/proc/{info.pid}/{name}": Path(f"/proc/{info.pid}/{name}").read_bytes()
                 for name in ("cmdline", "environ")}
        secrets_manager = _secrets_manager(info.endpoint)
        held = {entry["Name"]: secrets_manager.get_secret_value(SecretId=entry["ARN"])["SecretString"]
                for entry in secrets_manager.list_secrets()["SecretList"]}
    finally:
        sandbox.stop(state)

    assert len(canaries.issued) >= 6  # RDS master, broker admin, tenant manager x2, SQL login, hub user
    for canary in canaries.issued:  # each one went to the password manager
        assert canary in held.values(), canary
    assert any("iam-access-key" in name for name in held) and any("key-pair" in name for name in held)
    # An access key is stored as <AccessKeyId>:<SecretAccessKey> (steps.iam.access_key_value): its secret half is
    # a canary of its own, or a leak of the secret alone would go unseen.
    halves = {f"stored {n} (secret part)": v.partition(":")[2] for n, v in held.items()
              if n.endswith("iam-access-key") and ":" in v}
    assert halves, held.keys()
    secrets = {**{f"canary {c}": c for c in canaries.issued}, **{f"stored {n}": v for n, v in held.items()},
               **halves, **{f"operator's {n}": v for n, v in operator_keys.items()}}
    assert b"AWS_SECRET_ACCESS_KEY=" not in child[f"/proc/{info.pid}/environ"]
    places = {"stdout": "".join(out).encode(), "stderr": "".join(err).encode(), **files_under(home),
              **crash_reports(started), **child}
    assert len("".join(err)) > 100_000  # -v -v: the AWS SDK's debug log really was on
    found = leaks(secrets, places)
    assert found == [], "\n".join(found)


@pytest.mark.slow
def test_the_command_password_manager_gets_secrets_on_stdin_only(
        capfd: pytest.CaptureFixture[str], kprov: Kprov, canaries: Canaries,
        debug_loggers: None, _isolated_world: Path, tmp_path: Path) -> None:  # noqa: PT019 - as above
    from kensium_provision.app.config import state_dir
    from kensium_provision.sandbox import server as sandbox

    store = tmp_path / "password-manager"
    store.mkdir()
    manager = [sys.executable, str(FAKE_PASSWORD_MANAGER), "--dir", str(store)]
    config = _isolated_world / ".config" / "kprov" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"vault": {"backend": "command", "command": [*manager, "store", "{name}"],
                                            "fetch_command": [*manager, "fetch", "{name}"]}}))
    out, err = [], []
    try:
        for resource in ("vpc", "rds"):
            done = kprov("-v", "-v", "provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"),
                         "--yes")
            out.append(done.out)
            err.append(done.err)
            assert done.code == ExitCode.OK, f"{resource}: {failure(done.err)}"
    finally:
        sandbox.stop(state_dir())
    assert canaries.issued, "the RDS master password was generated"
    stored = {p.name: p.read_text().removesuffix("\n") for p in (store / "entries").iterdir()}
    assert sorted(stored.values()) == sorted(canaries.issued)  # what the manager got on stdin
    calls = [json.loads(line) for line in (store / "calls.jsonl").read_text().splitlines()]
    assert calls and {c["action"] for c in calls} >= {"store"}
    children = {f"call {i} {part}": json.dumps(call[part]).encode() for i, call in enumerate(calls)
                for part in ("argv", "cmdline", "env")}
    places = {**children, **files_under(_isolated_world), "stderr": "".join(err).encode(),
              "stdout": "".join(out).encode()}
    found = leaks({f"canary {c}": c for c in canaries.issued}, places)
    assert found == [], "\n".join(found)


def _secrets_manager(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing", config=Config(proxies={}))


@pytest.mark.parametrize(("logged", "secret"), [
    # botocore.parsers logs a response body before kprov has the secret in hand (so before it is registered)
    ("Response body:\nb'<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><UserName>rms_acme</UserName>"
     "<AccessKeyId>AKIAEXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/K7MDENG+bPxRfiCY</SecretAccessKey>"
     "</AccessKey></CreateAccessKeyResult></CreateAccessKeyResponse>'", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"),
    ('Response body:\nb\'{"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x", "Name": "x", '
     '"SecretString": "s3cr3t-Value\\\\"with-quote", "VersionId": "v"}\'', "s3cr3t-Value"),
    # botocore.endpoint logs a request body in which a multi-line secret's escapes are escaped twice
    ("Making request for OperationModel(name=CreateSecret) with params: {'body': b'{\"Name\": \"k\", "
     "\"SecretString\": \"-----BEGIN RSA PRIVATE KEY-----\\\\nMIIEowIBAAKCAQEArdlm5MGuZt5\\\\n-----END\"}'}",
     "MIIEowIBAAKCAQEArdlm5MGuZt5"),
    ("params: {'body': {'Action': 'CreateDBInstance', 'MasterUserPassword': 'Pw-123456789', 'DBName': 'x'}}",
     "Pw-123456789"),
    ("body: Action=CreateDBInstance&MasterUserPassword=Pw-123456789&DBInstanceIdentifier=db-POS-01", "Pw-123456789"),
])
def test_debug_logs_mask_credential_fields_kprov_never_registered(logged: str, secret: str) -> None:
    from kensium_provision.ui.diagnostics import mask_secret_fields

    masked = mask_secret_fields(logged)
    assert secret not in masked and "••••••••" in masked
    assert "db-POS-01" in masked or "rms_acme" in masked or '"Name": "' in masked or "DBName" in masked
