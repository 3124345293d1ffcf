"""Issue 14 item 7 and issue 15 item 3: a resume that helps, and that never trusts an edited journal.

Real runs of `provision shared vpc` in this process against in-process moto (the `aws` and `kprov`
fixtures); a fault is injected at one EC2 call (tests/faults) to stop a run mid-way, as AWS would.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.errors import ExitCode
from tests.faults import inject

if TYPE_CHECKING:
    from tests.conftest import CliResult, Kprov

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VPC_ANSWERS = str(EXAMPLES / "shared-vpc.yaml")


def runs() -> dict[str, list[dict[str, Any]]]:
    from kensium_provision.app.config import state_dir

    folder = state_dir() / "runs"
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in sorted(folder.glob("*.jsonl"))}


def new_run(before: Mapping[str, object]) -> list[dict[str, Any]]:
    (fresh,) = [records for run_id, records in runs().items() if run_id not in before]
    return fresh


def events(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == event]


def ec2_calls_fail(monkeypatch: pytest.MonkeyPatch, operation: str, *,
                   fault: Callable[..., object] | None = None) -> list[bool]:
    """While armed (the list holds True), every EC2 client kprov makes fails `operation` once."""
    from kensium_provision.aws.session import AwsSession

    armed = [True]
    make = AwsSession.client

    def client(self: AwsSession, service: str, **kwargs: Any) -> Any:
        made = make(self, service, **kwargs)
        if service == "ec2" and armed[0]:
            if fault is None:
                inject(made, f"ec2.{operation}", status=400, code="InvalidParameterValue", message="injected")
            else:
                made.meta.events.register_first(f"before-send.ec2.{operation}", fault)
        return made

    monkeypatch.setattr(AwsSession, "client", client)
    return armed


def operator_rules() -> list[str]:
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["SG-POS-OPS"]}])
    return sorted({r["CidrIp"] for g in groups["SecurityGroups"] for p in g["IpPermissions"] for r in p["IpRanges"]})


def vpcs() -> list[str]:
    import boto3

    found = boto3.client("ec2", region_name="us-east-1").describe_vpcs()["Vpcs"]
    return [t["Value"] for v in found for t in v.get("Tags", []) if t["Key"] == "Name"]


def failed_vpc_run(kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> tuple[str, CliResult]:
    armed = ec2_calls_fail(monkeypatch, "CreateInternetGateway")
    before = runs()
    done = kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    armed[0] = False
    assert done.code == ExitCode.FAILED, done.err
    return new_run(before)[0]["run_id"], done


def test_a_failed_apply_prints_its_run_id_and_the_exact_resume_command(aws: None, kprov: Kprov,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, done = failed_vpc_run(kprov, monkeypatch)
    said = " ".join(done.err.split())
    assert "RUN_ID" not in said
    assert f"kprov resume {run_id} --answers {VPC_ANSWERS} --yes" in said, said


def test_a_corrected_answer_in_the_answers_file_takes_effect_and_is_journaled(aws: None, kprov: Kprov,
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    run_id, _ = failed_vpc_run(kprov, monkeypatch)
    fix = tmp_path / "fix.yaml"
    fix.write_text("operator_ip: 198.51.100.7\n")  # no `confirm:`: the journaled read-docs confirmation stands
    before = runs()
    resumed = kprov("resume", run_id, "--answers", str(fix), "--yes")
    assert resumed.code == ExitCode.OK, resumed.err
    assert operator_rules() == ["198.51.100.7/32"]  # the correction, not the journaled answer, was applied
    said = " ".join(resumed.err.split())
    assert f"operator_ip: 198.51.100.7 from the answers file {fix} (the journal had 203.0.113.10)" in said, said
    records = new_run(before)
    (correction,) = events(records, "answer.corrected")
    assert correction["input"] == "operator_ip" and correction["journaled"] == "203.0.113.10"
    assert correction["source"] == "answers file" and correction["resumes"] == run_id
    assert correction["value"] == "198.51.100.7" and correction["file"] == str(fix)
    answered = {r["input"]: r["value"] for r in events(records, "answer")}
    assert answered["operator_ip"] == "198.51.100.7" and answered["vpc_name"] == "POS-VPC"
    manual = [r for r in events(records, "step.result") if r["step"] == "read-docs"]
    assert manual and manual[0]["status"] == "done"  # honoured from the journal, not asked again


def test_a_wrong_correction_is_refused_at_its_line_and_nothing_changes(aws: None, kprov: Kprov,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    run_id, _ = failed_vpc_run(kprov, monkeypatch)
    fix = tmp_path / "fix.yaml"
    fix.write_text("vpc_name: POS-VPC\noperator_ip: 999.1.1.1\n")
    before = runs()
    resumed = kprov("resume", run_id, "--answers", str(fix), "--yes")
    assert resumed.code == ExitCode.INVALID, resumed.err
    assert f"{fix}:2:" in resumed.err and "999.1.1.1" in resumed.err
    assert set(runs()) == set(before) and operator_rules() == []


def test_a_tampered_journal_is_not_resumed(aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.app.config import state_dir

    run_id, _ = failed_vpc_run(kprov, monkeypatch)
    journal = state_dir() / "runs" / f"{run_id}.jsonl"
    journal.write_text(journal.read_text().replace('"203.0.113.10"', '"0.0.0.0"'))  # open SQL Server to all
    before = runs()
    resumed = kprov("resume", run_id, "--yes")
    assert resumed.code == ExitCode.INVALID, resumed.err
    said = " ".join(resumed.err.split())
    assert "fails verification" in said and "was edited" in said and f"kprov audit verify {run_id}" in said
    assert set(runs()) == set(before) and operator_rules() == []


def test_the_resume_of_a_dry_run_is_refused_and_applies_nothing(aws: None, kprov: Kprov) -> None:
    before = runs()
    planned = kprov("provision", "shared", "vpc", "--dry-run", "--answers", VPC_ANSWERS)
    assert planned.code == ExitCode.OK, planned.err
    run_id = new_run(before)[0]["run_id"]
    before = runs()
    resumed = kprov("resume", run_id, "--answers", VPC_ANSWERS, "--yes")
    assert resumed.code == ExitCode.INVALID, resumed.err
    assert "was a plan run" in resumed.err and "provision shared vpc" in resumed.err
    assert vpcs() == [] and set(runs()) == set(before)


def test_ctrl_c_prints_the_resume_command_and_it_works(aws: None, kprov: Kprov,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def ctrl_c(**_: object) -> None:
        raise KeyboardInterrupt

    armed = ec2_calls_fail(monkeypatch, "CreateInternetGateway", fault=ctrl_c)
    before = runs()
    stopped = kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    armed[0] = False
    assert stopped.code == ExitCode.INTERRUPTED, stopped.err
    run_id = new_run(before)[0]["run_id"]
    said = " ".join(stopped.err.split())
    assert f"interrupted: run {run_id} stopped" in said, said
    command = said.split("resume it with `", 1)[1].split("`", 1)[0]
    assert command == f"kprov resume {run_id} --answers {VPC_ANSWERS} --yes"
    resumed = kprov(*shlex.split(command)[1:])
    assert resumed.code == ExitCode.OK, resumed.err
    assert vpcs() == ["POS-VPC"]


def test_a_correction_given_with_change_takes_effect_and_beats_the_answers_file(aws: None, kprov: Kprov,
                                                                               monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Path) -> None:
    run_id, _ = failed_vpc_run(kprov, monkeypatch)
    fix = tmp_path / "fix.yaml"
    fix.write_text("operator_ip: 198.51.100.7\n")
    before = runs()
    resumed = kprov("resume", run_id, "--answers", str(fix), "--change", "operator_ip=198.51.100.9", "--yes")
    assert resumed.code == ExitCode.OK, resumed.err
    assert operator_rules() == ["198.51.100.9/32"]
    assert "operator_ip: 198.51.100.9 from --change (the journal had 203.0.113.10)" in " ".join(resumed.err.split())
    (correction,) = events(new_run(before), "answer.corrected")
    assert correction["source"] == "--change" and correction["value"] == "198.51.100.9"


@pytest.mark.parametrize(("change", "said"), [
    ("operator_ip=999.1.1.1", "999.1.1.1"),
    ("no_such_input=1", "has no input 'no_such_input'"),
    ("operator_ip", "is not INPUT=VALUE"),
])
def test_a_wrong_change_is_refused_and_nothing_changes(aws: None, kprov: Kprov, monkeypatch: pytest.MonkeyPatch,
                                                      change: str, said: str) -> None:
    run_id, _ = failed_vpc_run(kprov, monkeypatch)
    before = runs()
    resumed = kprov("resume", run_id, "--change", change, "--yes")
    assert resumed.code == ExitCode.INVALID, resumed.err
    assert said in resumed.err
    assert set(runs()) == set(before) and operator_rules() == []


SQL_BY_HAND = """
schema: 1
id: sql-by-hand
title: SQL by hand
scope: shared
inputs: []
steps:
  - id: create-database
    title: Create the database
    type: sql.database
    risk: create
    params: {name: POS_POS01, rule: tm-database}
"""


def test_a_sql_script_confirmed_by_hand_is_not_asked_again_on_resume() -> None:
    """No SQL connection here (none is configured), so the step is the operator's: run by hand, confirmed."""
    from kensium_provision.checklist.schema import load_checklist_text
    from kensium_provision.engine.run import run
    from kensium_provision.model import Mode, Status
    from tests.fakes import ScriptedOperator, make_runtime

    checklist = load_checklist_text(SQL_BY_HAND, "sql-by-hand.yaml")
    operator = ScriptedOperator()
    journaled = {"create-database": {"database": "POS_POS01", "script": "CREATE DATABASE ..."}}
    report = run(checklist, make_runtime(Mode.APPLY, operator), {}, recorded=journaled)
    assert operator.confirmed == []  # before: "Did the script run without errors ...?" asked again
    assert report.results[0].status is Status.DONE
    assert report.results[0].reason == "done earlier in this run (journaled evidence)"
    fresh = ScriptedOperator()
    run(checklist, make_runtime(Mode.APPLY, fresh), {})
    assert fresh.confirmed == ["Did the script run without errors on the SQL Server instance?"]


def test_the_resume_of_a_check_run_is_refused(kprov: Kprov) -> None:
    """A check journal as `kprov check shared vpc` writes it (intact: the refusal is for its mode)."""
    from kensium_provision.app.config import state_dir
    from kensium_provision.journal.writer import JournalWriter

    writer = JournalWriter(state_dir(), "20261202T000000Z-check1", header={
        "who": "arn:aws:sts::123456789012:user/moto", "account": "123456789012", "region": "us-east-1",
        "environment": "sandbox", "checklist": "shared-vpc", "checklist_sha256": "0", "mode": "check",
        "target": "shared:vpc", "command": "check shared vpc"})
    writer.close("failed")
    before = runs()
    resumed = kprov("resume", "20261202T000000Z-check1", "--yes")
    assert resumed.code == ExitCode.INVALID, resumed.err
    assert "was a check run, which changes nothing" in resumed.err and "kprov check shared vpc" in resumed.err
    assert set(runs()) == set(before)
