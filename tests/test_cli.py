"""The command line: a real scenario per exit code, global options, lock commands behind the guards,
no write from a plan or a check, start-up imports, validate output.

Every command runs in this process through the `kprov` fixture (tests/conftest.py): `cli.main(argv)`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.errors import ExitCode
from tests.faults import ROOT_IDENTITY

if TYPE_CHECKING:
    from tests.conftest import CliResult, Kprov

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VPC_ANSWERS = str(EXAMPLES / "shared-vpc.yaml")
MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"
LOCKS_TABLE = "kprov-locks"


def write_journal(run_id: str = "run-a") -> Path:
    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.writer import JournalWriter

    writer = JournalWriter(state_dir(), run_id, header={
        "who": "arn:aws:iam::123456789012:user/alice", "account": "123456789012", "region": "us-east-1",
        "environment": "sandbox", "checklist": "c", "checklist_sha256": "0", "mode": "apply", "target": "t",
        "command": "x"})
    writer.record("answer", input="org_id", value="acme")
    writer.close("ok")
    return state_dir() / "runs" / f"{run_id}.jsonl"


def root_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every session kprov makes is told by STS that the caller is the account's root user."""
    from kensium_provision.aws.session import AwsSession
    from tests.faults import respond

    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        made = make(self, service, **kwargs)
        if service == "sts":
            respond(made, "sts.GetCallerIdentity", ROOT_IDENTITY, times=100)
        return made

    monkeypatch.setattr(AwsSession, "client", client)


def dynamodb_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A config whose locks live in DynamoDB (moto), and bob's lock on client:acme in that table."""
    import boto3

    from kensium_provision.records.locks import DynamoLocks

    config = tmp_path / "config.yaml"
    config.write_text(f"locks: {{backend: dynamodb, table: {LOCKS_TABLE}}}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    locks = DynamoLocks(boto3.client("dynamodb", region_name="us-east-1"), LOCKS_TABLE)
    locks.ensure_table()
    return locks.acquire("client:acme", owner="arn:aws:iam::123456789012:user/bob", run_id="r1", ttl_seconds=600)


def at_a_terminal(monkeypatch: pytest.MonkeyPatch, typed: bool = True) -> list[str]:
    """stdin is a terminal, and the operator types what the typed confirmation asks for (or not)."""
    from kensium_provision.ui.console import ConsoleOperator

    asked: list[str] = []

    class Terminal:
        def isatty(self) -> bool:
            return True

    def type_to_confirm(self: ConsoleOperator, message: str, expected: str) -> bool:
        asked.append(f"{message} Type {expected} to go on:")
        return typed

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(ConsoleOperator, "type_to_confirm", type_to_confirm)
    return asked


# --- a real scenario per exit code ------------------------------------------------------------------------

Scenario = Callable[[pytest.FixtureRequest, "Kprov", Path], "CliResult"]


def ok_validate_the_shipped_checklists(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    done = kprov("validate")
    assert "valid" in done.err
    return done


def failed_audit_verify_finds_tampering(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    path = write_journal()
    assert kprov("audit", "verify").code == ExitCode.OK
    path.write_text(path.read_text().replace('"acme"', '"evil"'))
    done = kprov("audit", "verify")
    assert "1 of 1 journal(s) failed verification" in done.err
    return done


def usage_an_unknown_command_or_resource(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    assert kprov("no-such-command").code == ExitCode.USAGE
    done = kprov("provision", "shared", "teleporter", "--dry-run")
    assert "'teleporter' is not one of: vpc, rds" in done.err and "Usage: kprov provision shared" in done.err
    return done


def invalid_validate_five_mistakes(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    request.getfixturevalue("monkeypatch").chdir(DATA)  # positions are shown relative to the working directory
    done = kprov("validate", "five-mistakes.yaml")
    lines = [line for line in done.err.splitlines() if line.startswith("five-mistakes.yaml:")]
    assert [line.split(": ", 1)[0] for line in lines] == [
        "five-mistakes.yaml:9:14", "five-mistakes.yaml:17:5", "five-mistakes.yaml:19:11",
        "five-mistakes.yaml:25:28", "five-mistakes.yaml:26:5"]
    return done


def guard_root_credentials_break_no_lock(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    """`lock break` runs the guards before it reads or deletes anything: a root caller exits 4, the lock stays."""
    request.getfixturevalue("aws")
    monkeypatch = request.getfixturevalue("monkeypatch")
    held = dynamodb_locks(tmp_path, monkeypatch)
    at_a_terminal(monkeypatch)  # even an operator who would type the target is refused first
    root_credentials(monkeypatch)
    done = kprov("lock", "break", held.lock_id)
    assert "root user of AWS account 123456789012" in done.err
    import boto3

    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=LOCKS_TABLE)["Items"]
    assert [i["LockId"]["S"] for i in items] == [held.lock_id]  # nothing deleted
    return done


def aborted_lock_break_without_a_terminal(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    from kensium_provision.app.config import state_dir
    from kensium_provision.records.locks import LocalLocks

    locks = LocalLocks(state_dir() / "locks")
    held = locks.acquire("client:acme", owner="arn:aws:iam::1:user/bob", run_id="r1", ttl_seconds=600)
    done = kprov("--non-interactive", "lock", "break", held.lock_id)
    assert "breaking a lock needs a terminal" in done.err and [i.lock_id for i in locks.list()] == [held.lock_id]
    return done


def internal_crash_report_without_secrets(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    from kensium_provision.checklist import validate as validation
    from kensium_provision.secret import Secret

    canary = Secret("CanaryPassw0rd-7Qz")

    def boom(paths: object) -> object:
        password = canary.reveal()  # a local holding the secret, as a buggy step might
        raise RuntimeError(f"bug while holding {password}")

    request.getfixturevalue("monkeypatch").setattr(validation, "validate_paths", boom)
    done = kprov("validate")
    report = Path(done.err.split("written to ", 1)[1].split(";", 1)[0].split()[0])
    text = report.read_text()
    assert "RuntimeError" in text and "command: kprov validate" in text
    assert "CanaryPassw0rd-7Qz" not in text and "CanaryPassw0rd-7Qz" not in done.err + done.out
    return done


def interrupted_by_sigint(request: pytest.FixtureRequest, kprov: Kprov, tmp_path: Path) -> CliResult:
    """The process gets SIGINT (what Ctrl-C sends) while the command works."""
    from kensium_provision.checklist import validate as validation

    def interrupted(paths: object) -> object:
        signal.raise_signal(signal.SIGINT)
        raise AssertionError("SIGINT did not interrupt")

    request.getfixturevalue("monkeypatch").setattr(validation, "validate_paths", interrupted)
    done = kprov("validate")
    assert "kprov: error: interrupted" in done.err
    return done


SCENARIOS: dict[ExitCode, Scenario] = {
    ExitCode.OK: ok_validate_the_shipped_checklists,
    ExitCode.FAILED: failed_audit_verify_finds_tampering,
    ExitCode.USAGE: usage_an_unknown_command_or_resource,
    ExitCode.INVALID: invalid_validate_five_mistakes,
    ExitCode.GUARD: guard_root_credentials_break_no_lock,
    ExitCode.ABORTED: aborted_lock_break_without_a_terminal,
    ExitCode.INTERNAL: internal_crash_report_without_secrets,
    ExitCode.INTERRUPTED: interrupted_by_sigint,
}


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda code: f"{int(code)}-{code.name.lower()}")
def test_each_exit_code_has_a_real_scenario(code: ExitCode, request: pytest.FixtureRequest, kprov: Kprov,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new exit code fails here until it has a scenario: a command line that ends with it."""
    scenario = SCENARIOS[code]
    assert scenario(request, kprov, tmp_path).code == code


# --- more of each --------------------------------------------------------------------------------------------


def test_exit_3_names_check_shows_rule_and_example(kprov: Kprov) -> None:
    done = kprov("names", "check", "rds-instance", "DB_POS_1")
    assert done.code == ExitCode.INVALID
    assert "rds-instance" in done.err and "db-POS-01" in done.err
    assert kprov("names", "check", "rds-instance", "db-POS-01").code == ExitCode.OK


def test_exit_4_wrong_account(aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kensium_provision.checklist.catalog import CHECKLISTS_DIR

    catalog = tmp_path / "checklists"
    (catalog / "shared").mkdir(parents=True)
    (catalog / "naming.yaml").write_text((CHECKLISTS_DIR / "naming.yaml").read_text())
    (catalog / "shared" / "vpc.yaml").write_text((DATA / "valid-demo.yaml").read_text())
    monkeypatch.setenv("KPROV_CHECKLISTS", str(catalog))
    answers = tmp_path / "answers.yaml"
    answers.write_text("zone: us-east-1a\n")
    config = tmp_path / "config.yaml"
    config.write_text('environments:\n  qa: {account_id: "111111111111", region: us-east-1, purposes: [qa]}\n')
    done = kprov("--config", str(config), "--env", "qa", "provision", "shared", "vpc", "--dry-run",
                 "--answers", str(answers))
    assert done.code == ExitCode.GUARD
    assert "account 123456789012" in done.err


def test_json_error_output(kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    done = kprov("--output", "json", "validate", "five-mistakes.yaml")
    assert done.code == ExitCode.INVALID
    data = done.json()
    assert data["kind"] == "validate" and len(data["issues"]) == 5


def test_answers_breaking_naming_rules_are_refused_before_any_aws_call(kprov: Kprov, tmp_path: Path) -> None:
    from kensium_provision.app.config import state_dir

    answers = tmp_path / "answers.yaml"
    answers.write_text("vpc_name: POS VPC/../x\nregion: us-east-1\nprimary_zone: us-east-1a\n"
                       "secondary_zone: us-east-1b\noperator_name: 'Jane [bold]Doe'\noperator_ip: 203.0.113.10\n")
    done = kprov("provision", "shared", "vpc", "--dry-run", "--answers", str(answers))
    assert done.code == ExitCode.INVALID
    assert (f'{answers}:1:11: vpc_name: "POS VPC/../x" breaks naming rule vpc-entity-name: contains a path separator'
            in done.err)
    assert (f'{answers}:5:16: operator_name: "Jane [bold]Doe" breaks naming rule sg-rule-description: contains a '
            "square bracket") in done.err
    assert not state_dir().exists()  # no sandbox started, no journal: nothing was attempted


def test_audit_show_filters_by_date(kprov: Kprov) -> None:
    from datetime import UTC, datetime

    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.writer import JournalWriter

    header = {"who": "arn:aws:iam::123456789012:user/alice", "account": "123456789012", "region": "us-east-1",
              "environment": "sandbox", "checklist": "c", "checklist_sha256": "0", "mode": "check", "target": "t",
              "command": "x"}
    def at(moment: datetime) -> Callable[[], datetime]:
        return lambda: moment

    for run_id, day in (("run-old", 27), ("run-new", 28)):
        clock = at(datetime(2026, 11, day, 9, 0, tzinfo=UTC))
        JournalWriter(state_dir(), run_id, header=header, clock=clock).close("ok")
    done = kprov("--output", "json", "audit", "show", "--since", "2026-11-28")
    assert done.code == ExitCode.OK and [r["run_id"] for r in done.json()["runs"]] == ["run-new"]
    done = kprov("--output", "json", "audit", "show", "--until", "2026-11-27")
    assert done.code == ExitCode.OK and [r["run_id"] for r in done.json()["runs"]] == ["run-old"]
    assert kprov("audit", "show", "--since", "last tuesday").code == ExitCode.USAGE


# --- global options ------------------------------------------------------------------------------------------


def test_version(kprov: Kprov) -> None:
    from kensium_provision import __version__

    done = kprov("--version")
    assert (done.code, done.out) == (ExitCode.OK, f"kprov {__version__}\n")


@pytest.mark.parametrize("args", [
    ("validate", "--output", "json"),
    ("validate", "--output=json", "--non-interactive", "-v"),
    ("--non-interactive", "validate", "--output", "json", "-vv"),
])
def test_global_options_after_the_command(kprov: Kprov, args: tuple[str, ...]) -> None:
    done = kprov(*args)
    assert done.code == ExitCode.OK, done.err
    assert done.json()["kind"] == "validate"


def test_global_options_after_a_command_with_options_of_its_own(aws: None, kprov: Kprov) -> None:
    done = kprov("provision", "shared", "vpc", "--dry-run", "--env", "sandbox", "--answers", VPC_ANSWERS,
                 "--output", "json", "--non-interactive")
    assert done.code == ExitCode.OK, done.err
    assert (done.json()["kind"], done.json()["environment"]) == ("plan", "sandbox")


@pytest.mark.parametrize(("args", "hoisted"), [
    (["install-client", "acme", "--non-interactive"], ["--non-interactive", "install-client", "acme"]),
    (["--env", "qa", "check", "client", "acme", "--output", "json", "-vv"],
     ["--env", "qa", "--output", "json", "-vv", "check", "client", "acme"]),
    (["audit", "show", "--environment", "qa", "--env=qa"], ["--env=qa", "audit", "show", "--environment", "qa"]),
    (["runs", "list", "--limit", "3"], ["runs", "list", "--limit", "3"]),
    (["show", "--", "--env"], ["show", "--", "--env"]),  # after --, nothing is an option
    (["--env", "show", "show", "rds"], ["--env", "show", "show", "rds"]),  # an option's value is not a command
])
def test_where_global_options_go(args: list[str], hoisted: list[str]) -> None:
    import typer

    from kensium_provision import cli

    assert cli._hoisted(typer.main.get_command(cli.app), args) == hoisted


def test_the_kprov_script_and_python_m_end_with_main_s_exit_code() -> None:
    """The `kprov` script is `__main__.run` (main, then an exit without the final garbage collection)."""
    import subprocess
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="kprov")
    assert script.value == "kensium_provision.__main__:run"
    for name, code in (("acme", ExitCode.OK), ("ACME!", ExitCode.INVALID)):
        done = subprocess.run([sys.executable, "-m", "kensium_provision", "names", "check", "org-id", name],
                              capture_output=True, text=True, check=False)
        assert done.returncode == code, done.stderr


def test_main_takes_argv_and_returns_the_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`kensium_provision.cli:main` is what the console script runs: argv from the process unless given."""
    from kensium_provision.cli import main

    monkeypatch.setattr(sys, "argv", ["kprov", "names", "check", "org-id", "acme"])
    assert main() == ExitCode.OK
    assert main(["names", "check", "org-id", "ACME!"]) == ExitCode.INVALID
    assert capsys.readouterr().err.splitlines()[:2] == [
        "✓ acme meets org-id", "✗ org-id: must be lower-case letters and digits, starting with a letter"]


@pytest.mark.parametrize("args", [["--help"], ["validate"], ["names", "check", "org-id", "acme"]])
def test_startup_never_imports_boto3(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from kensium_provision import cli\n"
        f"cli.main({args!r})\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 'moto', 'questionary') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\n"
        "from kensium_provision import cli\n"
        "cli.main(['--help'])\n"
        "print('LOADED=' + ','.join(sorted(m for m in sys.modules if m.startswith('kensium_provision.app.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "LOADED=kensium_provision.app.commands,kensium_provision.app.context"


def test_every_command_of_the_table_is_declared_and_takes_what_the_command_line_passes() -> None:
    import inspect

    import typer

    from kensium_provision import cli
    from kensium_provision.app import commands

    declared: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):
                walk(sub, f"{prefix}{name} ")
            else:
                declared[f"{prefix}{name}"] = sub

    walk(typer.main.get_command(cli.app), "")
    assert set(declared) == set(commands.COMMANDS)
    for name, command in declared.items():
        given = {p.name for p in command.params}
        takes = set(inspect.signature(commands.command(name)).parameters) - {"context"}
        assert takes == given, name


# --- the lock commands go through the bootstrap --------------------------------------------------------------


def test_lock_commands_on_dynamodb_run_the_guards_and_journal_the_caller(
        aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kensium_provision.app.config import state_dir

    held = dynamodb_locks(tmp_path, monkeypatch)
    listed = kprov("--output", "json", "lock", "list")
    assert listed.code == ExitCode.OK and [lock["lock_id"] for lock in listed.json()["locks"]] == [held.lock_id]
    asked = at_a_terminal(monkeypatch)
    done = kprov("lock", "break", held.lock_id)
    assert done.code == ExitCode.OK, done.err
    assert asked == ["Breaking the lock lets another run change client:acme. Type client:acme to go on:"]
    assert "lock on client:acme broken (journaled)" in done.err
    assert kprov("--output", "json", "lock", "list").json()["locks"] == []
    [journal] = (state_dir() / "runs").glob("*.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    header = records[0]
    assert (header["who"], header["account"], header["environment"], header["mode"], header["target"]) == (
        MOTO_CALLER, "123456789012", "sandbox", "lock-break", "client:acme")
    assert [r["event"] for r in records] == ["run.started", "guard", "lock.broken", "run.finished"]
    assert records[1]["caller"] == MOTO_CALLER and records[2]["environment"] == "sandbox"
    assert records[2]["holder"] == "arn:aws:iam::123456789012:user/bob" and records[-1]["outcome"] == "ok"


def test_lock_list_on_dynamodb_refuses_root_and_the_wrong_account(
        aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dynamodb_locks(tmp_path, monkeypatch)
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "111122223333")
    done = kprov("lock", "list")
    assert done.code == ExitCode.GUARD and "signed in to AWS account 111122223333" in done.err
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    root_credentials(monkeypatch)
    done = kprov("--output", "json", "lock", "list")
    assert done.code == ExitCode.GUARD and done.json()["error"] == "GuardError"


# --- plan and check never write (issue 14) ---------------------------------------------------------------------


def spy_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every operation that is not a read, as any session of the run is about to send it (before the wall)."""
    from kensium_provision.aws.session import AwsSession
    from kensium_provision.aws.wall import EXCEPTIONS, is_read

    sent: list[str] = []
    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        made = make(self, service, **kwargs)

        def spy(model: Any, **_: Any) -> None:
            name = f"{service}:{model.name}"
            if not is_read(service, model.name) and name not in EXCEPTIONS:  # the wall's one named exception
                sent.append(name)

        made.meta.events.register_first("before-call", spy, unique_id="test-write-spy")
        return made

    monkeypatch.setattr(AwsSession, "client", client)
    return sent


def test_plan_and_check_send_no_write_even_with_the_journal_in_cloudwatch_logs(
        aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import boto3

    config = tmp_path / "config.yaml"
    config.write_text("journal: {cloudwatch_log_group: kprov-journal}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    logs = boto3.client("logs", region_name="us-east-1")
    sent = spy_writes(monkeypatch)

    assert kprov("provision", "shared", "vpc", "--dry-run", "--answers", VPC_ANSWERS).code == ExitCode.OK
    assert sent == [] and logs.describe_log_groups()["logGroups"] == []

    assert kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes").code == ExitCode.OK
    assert {"logs:CreateLogGroup", "logs:PutLogEvents", "ec2:CreateVpc"} <= set(sent)  # an apply ships it
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["kprov-journal"]

    sent.clear()
    assert kprov("check", "shared", "vpc", "--answers", VPC_ANSWERS).code == ExitCode.OK
    assert kprov("check", "shared", "vpc").code == ExitCode.OK  # from the record the apply kept
    assert kprov("check", "client", "--all").code == ExitCode.OK
    assert kprov("lock", "list").code == ExitCode.OK
    assert sent == []
    assert len(logs.describe_log_streams(logGroupName="kprov-journal")["logStreams"]) == 1  # the apply's


def test_a_configured_vault_timeout_reaches_the_password_manager(tmp_path: Path) -> None:
    from typing import cast

    from kensium_provision.app.bootstrap import Connection, open_vault
    from kensium_provision.app.config import load_config
    from kensium_provision.checklist.answers import Answers, AnswersOperator
    from kensium_provision.guards import Identity

    config = tmp_path / "config.yaml"
    config.write_text('vault: {backend: command, command: [pm, store, "{name}"], timeout: 7}\n')
    loaded = load_config(config)
    connection = Connection(config=loaded, env=loaded.environment(), state=tmp_path, session=cast(Any, None),
                            identity=Identity(arn=MOTO_CALLER, account="123456789012", user_id="AIDA"))
    vault = open_vault(connection, AnswersOperator(Answers()))
    assert getattr(vault, "timeout", None) == 7
