"""The command line: one test per exit code, start-up imports, validate output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kensium_provision import cli
from kensium_provision.errors import ExitCode

DATA = Path(__file__).parent / "data"


def invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["kprov", *args])
    monkeypatch.setattr(cli, "OPTIONS", cli.Options())
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code)


def test_exit_0_validate_shipped_checklists(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(monkeypatch, "validate") == ExitCode.OK
    assert "valid" in capsys.readouterr().err


def test_exit_2_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(monkeypatch, "no-such-command") == ExitCode.USAGE
    assert invoke(monkeypatch, "provision", "shared", "teleporter", "--dry-run") == ExitCode.USAGE


def test_exit_3_validate_five_mistakes_prints_five_positions(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(DATA)
    assert invoke(monkeypatch, "validate", "five-mistakes.yaml") == ExitCode.INVALID
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("five-mistakes.yaml:")]
    assert [line.split(": ", 1)[0] for line in lines] == [
        "five-mistakes.yaml:9:14", "five-mistakes.yaml:17:5", "five-mistakes.yaml:19:11",
        "five-mistakes.yaml:25:28", "five-mistakes.yaml:26:5"]


def test_exit_3_names_check_shows_rule_and_example(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(monkeypatch, "names", "check", "rds-instance", "DB_POS_1") == ExitCode.INVALID
    err = capsys.readouterr().err
    assert "rds-instance" in err and "db-POS-01" in err
    assert invoke(monkeypatch, "names", "check", "rds-instance", "db-POS-01") == ExitCode.OK


def test_exit_1_audit_verify_finds_tampering(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.chain import JournalWriter

    writer = JournalWriter(state_dir(), "run-a", header={
        "who": "arn:aws:iam::123456789012:user/alice", "account": "123456789012", "region": "us-east-1",
        "environment": "sandbox", "checklist": "c", "checklist_sha256": "0", "mode": "apply", "target": "t",
        "command": "x"})
    writer.record("answer", input="org_id", value="acme")
    writer.close("ok")
    assert invoke(monkeypatch, "audit", "verify") == ExitCode.OK
    path = state_dir() / "runs" / "run-a.jsonl"
    path.write_text(path.read_text().replace('"acme"', '"evil"'))
    assert invoke(monkeypatch, "audit", "verify") == ExitCode.FAILED


def test_exit_5_lock_break_without_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.app.config import state_dir
    from kensium_provision.records.locks import LocalLocks

    held = LocalLocks(state_dir() / "locks").acquire("client:acme", owner="arn:aws:iam::1:user/bob", run_id="r1",
                                                     ttl_seconds=600)
    assert invoke(monkeypatch, "--non-interactive", "lock", "break", held.lock_id) == ExitCode.ABORTED


def test_exit_70_crash_report_without_secrets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from kensium_provision.checklist import validate as validation
    from kensium_provision.secret import Secret

    canary = Secret("CanaryPassw0rd-7Qz")

    def boom(paths: object) -> object:
        password = canary.reveal()  # a local holding the secret, as a buggy step might
        raise RuntimeError(f"bug while holding {password}")

    monkeypatch.setattr(validation, "validate_paths", boom)
    assert invoke(monkeypatch, "validate") == ExitCode.INTERNAL
    err = capsys.readouterr().err
    report = Path(err.split("written to ", 1)[1].split(";", 1)[0].split()[0])
    text = report.read_text()
    assert "RuntimeError" in text and "CanaryPassw0rd-7Qz" not in text and "CanaryPassw0rd-7Qz" not in err


def test_exit_130_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.checklist import validate as validation

    def interrupted(paths: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(validation, "validate_paths", interrupted)
    assert invoke(monkeypatch, "validate") == ExitCode.INTERRUPTED


def test_exit_4_wrong_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from moto import mock_aws

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
    with mock_aws():
        code = invoke(monkeypatch, "--config", str(config), "--env", "qa", "provision", "shared", "vpc",
                      "--dry-run", "--answers", str(answers))
    assert code == ExitCode.GUARD
    assert "account 123456789012" in capsys.readouterr().err


def test_every_exit_code_has_a_test() -> None:
    tested = {0, 1, 2, 3, 4, 5, 70, 130}
    assert {int(c) for c in ExitCode} == tested


def test_json_error_output(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(DATA)
    assert invoke(monkeypatch, "--output", "json", "validate", "five-mistakes.yaml") == ExitCode.INVALID
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "validate" and len(data["issues"]) == 5


@pytest.mark.parametrize("args", [["--help"], ["validate"], ["names", "check", "org-id", "acme"]])
def test_startup_never_imports_boto3(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from kensium_provision import cli\n"
        f"sys.argv = ['kprov', *{args!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 'moto', 'questionary') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_answers_breaking_naming_rules_are_refused_before_any_aws_call(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kensium_provision.app.config import state_dir

    answers = tmp_path / "answers.yaml"
    answers.write_text("vpc_name: POS VPC/../x\nregion: us-east-1\nprimary_zone: us-east-1a\n"
                       "secondary_zone: us-east-1b\noperator_name: 'Jane [bold]Doe'\noperator_ip: 203.0.113.10\n")
    assert invoke(monkeypatch, "provision", "shared", "vpc", "--dry-run", "--answers", str(answers)) == ExitCode.INVALID
    err = capsys.readouterr().err
    assert f"{answers}:1:11: vpc_name: vpc-entity-name: contains a path separator" in err
    assert f"{answers}:5:16: operator_name: sg-rule-description: contains a square bracket" in err
    assert not state_dir().exists()  # no sandbox started, no journal: nothing was attempted


def test_audit_show_filters_by_date(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.chain import JournalWriter

    header = {"who": "arn:aws:iam::123456789012:user/alice", "account": "123456789012", "region": "us-east-1",
              "environment": "sandbox", "checklist": "c", "checklist_sha256": "0", "mode": "check", "target": "t",
              "command": "x"}
    for run_id, day in (("run-old", 27), ("run-new", 28)):
        moment = datetime(2026, 11, day, 9, 0, tzinfo=UTC)
        JournalWriter(state_dir(), run_id, header=header, clock=lambda moment=moment: moment).close("ok")
    assert invoke(monkeypatch, "--output", "json", "audit", "show", "--since", "2026-11-28") == ExitCode.OK
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["run-new"]
    assert invoke(monkeypatch, "--output", "json", "audit", "show", "--until", "2026-11-27") == ExitCode.OK
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["run-old"]
    assert invoke(monkeypatch, "audit", "show", "--since", "last tuesday") == ExitCode.USAGE
