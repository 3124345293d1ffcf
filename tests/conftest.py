"""Test-wide guards: no real AWS, no real home directory, no real config, fast moto; the one `aws` fixture;
the one in-process runner of the command line (`kprov`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

# At import, not in the fixture: moto hooks into botocore when it is imported, and a boto3 session made
# before that (a cached one, say) would reach the real endpoints under mock_aws().
from moto import mock_aws


@pytest.fixture(autouse=True)
def _isolated_world(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets fake AWS credentials, empty AWS config files and its own kprov dirs."""
    home = tmp_path_factory.mktemp("home")
    empty = home / "empty-aws-file"
    empty.write_text("")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_ENDPOINT_URL", "KPROV_CONFIG", "KPROV_CHECKLISTS", "NO_COLOR", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("KPROV_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setenv("PROMPT_TOOLKIT_NO_CPR", "1")
    return home


@pytest.fixture(autouse=True)
def _own_secrets() -> Iterator[None]:
    """The values a test registers with the process-wide REDACTOR are masks for that test only. Registered
    for good, a short test value (or one of its base64 fragments) masked text in every later test, and an
    install whose client record happened to hold it was refused as "would contain a credential's value"
    (CI, random order). What session and module fixtures register is set up before this, so it stays."""
    from kensium_provision.secret import REDACTOR

    with REDACTOR._lock:
        forms, ordered = set(REDACTOR._forms), REDACTOR._ordered
    yield
    with REDACTOR._lock:
        REDACTOR._forms, REDACTOR._ordered = forms, ordered


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto (`mock_aws`) for the whole test, with fake credentials and region us-east-1.

    The one AWS fixture of the suite: request `aws: None` instead of writing `with mock_aws():`.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    from kensium_provision.sandbox import lessons

    lessons.teach()  # as the sandbox server does: the preflight's simulation, the RDS and MQ offerings
    with mock_aws():
        yield


# --- the command line, in this process -------------------------------------------------------------------

_DEBUG_LOGGERS = ("kensium_provision", "botocore", "boto3", "urllib3")  # what `-v -v` configures


@dataclass(frozen=True, slots=True)
class CliResult:
    """One kprov command run in this process: its exit code and what it wrote."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)  # exactly one document: json.loads refuses trailing text


class Kprov(Protocol):
    def __call__(self, *args: str) -> CliResult: ...


@pytest.fixture
def kprov(request: pytest.FixtureRequest) -> Iterator[Kprov]:
    """`kprov("--output", "json", "list")`: the real `cli.main(argv)` in this process, as a fresh process runs it.

    Output is read through the test's capture (capfd when the test asks for it, else capsys), and only what
    the command wrote. With the `aws` fixture the sandbox is that in-process moto (no endpoint); without it
    kprov reaches, or starts, the real sandbox. Handlers a command adds to the debug loggers (`-v -v`) are
    removed after it, as a process exit would.
    """
    from kensium_provision.app.context import Context, in_process_sandbox, start_sandbox
    from kensium_provision.cli import main
    from kensium_provision.sandbox import server

    capture = request.getfixturevalue("capfd" if "capfd" in request.fixturenames else "capsys")
    started: set[Path] = set()

    def starting(state: Path, region: str) -> str:
        started.add(state)
        return start_sandbox(state, region)

    def run(*args: str) -> CliResult:
        # Asked at each command: a test may have requested `aws` after this fixture (getfixturevalue).
        context = Context(sandbox=in_process_sandbox if "aws" in request.fixturenames else starting)
        capture.readouterr()
        saved = [(logger, list(logger.handlers)) for logger in map(logging.getLogger, _DEBUG_LOGGERS)]
        try:
            code = main(list(args), context)
        finally:
            for logger, handlers in saved:
                logger.handlers[:] = handlers
        out, err = capture.readouterr()
        return CliResult(code, out, err)

    yield run
    for state in started:  # a sandbox a command started stops with the test (it outlived the suite before)
        server.stop(state)
