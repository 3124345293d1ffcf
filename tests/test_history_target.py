"""History shows what a run was for and what the operator stated (issue 15): the rendered target, never
`client:{{ org_id }}`, in `runs list`, `audit show` and `runs show`, also for a run stopped at a prompt;
and a manual step's evidence in `runs show`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kensium_provision.journal.reader import list_runs, read_run, run_evidence
from kensium_provision.journal.writer import JournalWriter
from kensium_provision.secret import MASK
from tests.test_terminal import Terminal, example, read_records, shared_estate

HEADER = {"who": "arn:aws:sts::123456789012:user/moto", "account": "123456789012", "region": "us-east-1",
          "environment": "sandbox", "checklist": "shared-ec2", "checklist_sha256": "0" * 64, "mode": "apply",
          "target": "shared:ec2:{{ host }}", "command": "provision shared ec2"}


def _journal(state: Path, run_id: str, **answers: object) -> JournalWriter:
    journal = JournalWriter(state, run_id, header=HEADER)
    for name, value in answers.items():
        journal.record("answer", input=name, value=value, evidence=False)
    return journal


def test_the_target_is_journaled_rendered_as_soon_as_its_answers_are(tmp_path: Path) -> None:
    journal = _journal(tmp_path, "20261203T050000Z-aaaaaa", region="us-east-1", host="POS07", size=3)
    journal.close("interrupted")  # stopped at a later prompt: the target is known all the same
    records = read_records(journal.path)
    # The answer that completes the template carries the target: one record per call (a shipped copy has all).
    assert [(r["event"], r.get("input"), r.get("target")) for r in records] == [
        ("run.started", None, "shared:ec2:{{ host }}"), ("answer", "region", None),
        ("answer", "host", "shared:ec2:POS07"),
        ("answer", "size", None), ("run.finished", None, None)]
    [summary] = list_runs(tmp_path)
    assert summary.target == "shared:ec2:POS07"


def test_a_shipped_copy_holds_every_record_the_target_too(aws: None, tmp_path: Path) -> None:
    """CloudWatch Logs (in-process moto) gets one record per `record` call: the rendered target rides on its
    answer, so the anchor the operator cannot rewrite says what the run was for."""
    import boto3

    from kensium_provision.journal.shipping import ShippingJournal, read_shipped

    logs = boto3.client("logs", region_name="us-east-1")
    run_id = "20261203T050000Z-dddddd"
    journal = ShippingJournal(JournalWriter(tmp_path, run_id, header=HEADER), logs, group="kprov", stream=run_id)
    journal.record("answer", input="host", value="POS07", evidence=False)
    journal.close("ok")
    assert not journal.errors
    local = read_records(journal.inner.path)
    assert sorted(read_shipped(logs, "kprov")[run_id], key=lambda r: int(r["seq"])) == local
    assert [r.get("target") for r in local if r["event"] == "answer"] == ["shared:ec2:POS07"]


def test_a_secret_or_unanswered_placeholder_is_never_rendered_into_the_target(tmp_path: Path) -> None:
    journal = _journal(tmp_path, "20261203T050000Z-bbbbbb", host=MASK)
    journal.close("interrupted")
    assert not [r for r in read_records(journal.path) if "target" in r and r["event"] != "run.started"]
    [summary] = list_runs(tmp_path)
    assert summary.target == "shared:ec2:(host unknown)"  # no template syntax, no masked value in a name
    assert summary.client == ""


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    yield from shared_estate(tmp_path_factory.mktemp("history"))


def _run_of(terminal: Terminal, client: str) -> str:
    return next(rid for rid, recs in terminal.journals().items() if recs and recs[0].get("client") == client)


def _stopped_at_a_prompt(terminal: Terminal, org: str) -> str:
    """`install-client ORG` in a terminal, Ctrl-C at its second question; the run's id."""
    if not any(recs and recs[0].get("client") == org for recs in terminal.journals().values()):
        pane = terminal.pane("install-client", org)
        try:
            pane.wait_for(f"Who at the client signed off the org id {org}?")
            pane.send("C-c")
            code, screen = pane.exit_code(), pane.screen()
        finally:
            pane.close()
        assert code == 130, screen
    return _run_of(terminal, org)


@pytest.mark.terminal
def test_an_install_stopped_at_a_prompt_is_listed_under_its_client(estate: Terminal) -> None:
    run_id = _stopped_at_a_prompt(estate, "beta")
    listed = estate.kprov("runs", "list")
    audit = estate.kprov("audit", "show", "--client", "beta")
    for done in (listed, audit):
        assert done.returncode == 0, done.stderr
        assert "{{" not in done.stderr and "‹" not in done.stderr
    assert any(run_id in line and "client:beta" in line for line in listed.stderr.splitlines()), listed.stderr
    assert run_id in audit.stderr and "client:beta" in audit.stderr


@pytest.mark.terminal
def test_runs_show_of_an_install_stopped_at_a_prompt_names_its_client(estate: Terminal) -> None:
    run_id = _stopped_at_a_prompt(estate, "beta")
    sheet = estate.kprov("runs", "show", run_id, "--markdown")
    shown = estate.kprov("--output", "json", "runs", "show", run_id)
    assert json.loads(shown.stdout)["target"] == "client:beta"
    assert "| target | client:beta |" in sheet.stdout and "{{" not in sheet.stdout


@pytest.mark.terminal
def test_runs_show_has_the_evidence_of_manual_steps(estate: Terminal) -> None:
    done = estate.kprov("install-client", "acme", "--answers", example("client-acme.yaml"), "--yes")
    assert done.returncode == 0, done.stderr
    run_id = _run_of(estate, "acme")
    evidence = {(e.step, e.prompt): e.value for e in run_evidence(read_run(estate.state, run_id))}
    assert evidence == {("create-tenant", "Tenant name as created"): "acme",
                        ("create-tenant", "Host name as entered"): "acme.kensiumpos.example",
                        ("create-tenant", "Recipe as chosen"): "POS_Tenant",
                        ("dns-record", "The address (or name) the record points at"):
                            "POS01's Elastic IP (sandbox: no DNS)"}
    sheet = estate.kprov("runs", "show", run_id, "--markdown")
    assert "## Evidence" in sheet.stdout
    assert "| `create-tenant` | Recipe as chosen | POS\\_Tenant |" in sheet.stdout  # literal, not emphasis
    assert "| `dns-record` | The address (or name) the record points at | POS01's Elastic IP (sandbox: no DNS) |" \
        in sheet.stdout
    text = estate.kprov("runs", "show", run_id)
    assert "Evidence" in text.stderr and "POS_Tenant" in text.stderr and "POS01's Elastic IP" in text.stderr
    document = json.loads(estate.kprov("--output", "json", "runs", "show", run_id).stdout)
    assert {"step": "create-tenant", "id": "tenant_name", "prompt": "Tenant name as created",
            "value": "acme"} in document["evidence"]


def test_evidence_from_the_journal_is_shown_inert(tmp_path: Path) -> None:
    """The journal's text reaches the terminal through the output boundary: an escape sequence typed as evidence
    (or written into the file) is shown as `\\u001b`, in the Markdown on stdout too, never run."""
    terminal = Terminal(tmp_path, tmp_path / "state")
    run_id = "20261203T050000Z-cccccc"
    journal = _journal(terminal.state, run_id, host="POS07")
    hostile = "\x1b]0;pwned\x07POS07\u202e"
    journal.record("step.intent", step="tenant", type="manual", risk="create",
                   params={"instructions": "Create it", "evidence": [{"id": "tenant_name", "prompt": "Tenant name"}]})
    journal.record("step.result", step="tenant", status="changed", reason="", outputs={"tenant_name": hostile})
    journal.close("ok")
    for args in (("runs", "show", run_id, "--markdown"), ("runs", "show", run_id)):
        done = terminal.kprov(*args)
        assert done.returncode == 0, done.stderr
        out = done.stdout + done.stderr
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "\\u001b" in out and "pwned" in out and "POS07\\u202e" in out  # shown, as escapes
