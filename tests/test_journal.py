"""The write-ahead journal: record format, tamper detection with exact messages, crash survival, resume."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kensium_provision.errors import InputError
from kensium_provision.journal.reader import RunSummary, filter_runs, list_runs, read_run
from kensium_provision.journal.resume import resume_point
from kensium_provision.journal.shipping import ShippingJournal
from kensium_provision.journal.verify import verify_all, verify_run
from kensium_provision.journal.writer import GENESIS, JournalWriter, record_hash
from kensium_provision.model import Risk, Status
from kensium_provision.secret import MASK

HEADER = {
    "who": "arn:aws:iam::123456789012:user/alice",
    "account": "123456789012",
    "region": "us-east-1",
    "environment": "staging",
    "checklist": "client-onboarding",
    "checklist_sha256": "ab" * 32,
    "mode": "apply",
    "target": "client:acme",
    "command": "apply client-onboarding for client:acme",
}


class FakeSecret:
    """Stands in for `secret.Secret`: anything with `reveal` must never reach the file."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return self._value  # a leaky repr: the journal must not call it

    __str__ = __repr__


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def write_run(state: Path, run_id: str = "run-1", *, steps: int = 6, header: dict[str, object] | None = None) -> Path:
    """A finished run of 3 + 2*steps records (15 for 6 steps)."""
    journal = JournalWriter(state, run_id, header=header or HEADER)
    journal.record("guard", name="account", outcome="ok")
    for n in range(1, steps + 1):
        journal.record("step.intent", step=f"s{n}", phase="act", risk=Risk.CREATE, params={"n": n})
        journal.record("step.result", step=f"s{n}", status=Status.CHANGED, outputs={"id": f"r-{n}"})
    journal.close("done")
    return journal.path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_records_are_hash_chained_json_lines(state: Path) -> None:
    path = write_run(state)
    records = [json.loads(line) for line in lines(path)]
    assert [r["seq"] for r in records] == list(range(1, 16))
    first = records[0]
    assert first["event"] == "run.started" and first["prev"] == GENESIS
    assert {k: first[k] for k in HEADER} == HEADER
    assert first["kprov_version"] and "@" in first["os_user"]
    for before, rec in itertools.pairwise(records):
        assert rec["prev"] == before["hash"]
    for rec in records:
        body = {k: v for k, v in rec.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert rec["hash"] == hashlib.sha256(canonical).hexdigest() == record_hash(rec)
        assert rec["run_id"] == "run-1"
        assert datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert len(rec["ts"]) == len("2026-11-28T07:12:00.123Z")
    assert records[2]["risk"] == "create" and records[3]["status"] == "changed"
    assert records[-1]["event"] == "run.finished" and records[-1]["outcome"] == "done"
    head = json.loads((state / "heads" / "run-1.head").read_text())
    assert head == {"run_id": "run-1", "seq": 15, "hash": records[-1]["hash"]}


def test_files_are_private(state: Path) -> None:
    path = write_run(state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "heads" / "run-1.head").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "runs").stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "heads").stat().st_mode) == 0o700


def test_an_intact_journal_verifies(state: Path) -> None:
    write_run(state)
    assert verify_run(state, "run-1") == []


def test_an_edited_field_is_found(state: Path) -> None:
    path = write_run(state)
    text = lines(path)
    rec = json.loads(text[4])
    rec["outputs"] = {"id": "r-forged"}
    text[4] = json.dumps(rec, separators=(",", ":")) + "\n"
    path.write_text("".join(text))
    assert verify_run(state, "run-1") == ["record 5 was edited: its hash does not match"]


def test_an_edited_record_with_a_recomputed_hash_breaks_the_chain(state: Path) -> None:
    path = write_run(state)
    text = lines(path)
    rec = json.loads(text[4])
    rec["outputs"] = {"id": "r-forged"}
    rec["hash"] = record_hash(rec)
    text[4] = json.dumps(rec, separators=(",", ":")) + "\n"
    path.write_text("".join(text))
    assert verify_run(state, "run-1") == ["chain broken between 5 and 6: record 6 does not point to record 5's hash"]


def test_a_deleted_line_is_found(state: Path) -> None:
    path = write_run(state)
    text = lines(path)
    del text[5]
    path.write_text("".join(text))
    assert verify_run(state, "run-1") == ["record 6 is missing: chain broken between 5 and 7"]


def test_deleted_lines_are_named_together(state: Path) -> None:
    path = write_run(state)
    text = lines(path)
    del text[5:8]
    path.write_text("".join(text))
    assert verify_run(state, "run-1") == ["records 6–8 are missing: chain broken between 5 and 9"]


def test_swapped_lines_are_found(state: Path) -> None:
    path = write_run(state)
    text = lines(path)
    text[4], text[5] = text[5], text[4]
    path.write_text("".join(text))
    assert verify_run(state, "run-1") == ["record 5 is out of order: it comes after record 6"]


def test_a_cut_tail_is_found_through_the_head(state: Path) -> None:
    path = write_run(state)
    path.write_text("".join(lines(path)[:12]))
    assert verify_run(state, "run-1") == [
        "the journal ends at record 12 but its head says 15",
        "the ledger says the run ended at record 15, which the journal no longer holds"]


def test_a_torn_last_line_is_reported_not_raised(state: Path) -> None:
    path = write_run(state)
    with path.open("a") as f:
        f.write('{"seq":16,"ts":"2026-11-28T07:1')  # a crash mid-write: no newline, head not yet moved
    assert verify_run(state, "run-1") == ["record 16 is torn: line 16 is incomplete (the writer stopped mid-write)"]
    log = read_run(state, "run-1")
    assert len(log.records) == 15
    assert log.problems == ("record 16 is torn: line 16 is incomplete (the writer stopped mid-write)",)


def test_a_deleted_head_file_is_found(state: Path) -> None:
    write_run(state)
    (state / "heads" / "run-1.head").unlink()
    assert verify_run(state, "run-1") == ["the head file heads/run-1.head is missing: a cut tail would not show"]


def test_records_added_after_the_head_are_found(state: Path) -> None:
    path = write_run(state)
    head = state / "heads" / "run-1.head"
    records = [json.loads(line) for line in lines(path)]
    head.write_text(json.dumps({"run_id": "run-1", "seq": 12, "hash": records[11]["hash"]}))
    assert verify_run(state, "run-1") == ["records 13–15 are past the head (record 12): added after the run"]
    # one behind is what a crash between the record and its head leaves
    head.write_text(json.dumps({"run_id": "run-1", "seq": 14, "hash": records[13]["hash"]}))
    assert verify_run(state, "run-1") == []
    head.write_text(json.dumps({"run_id": "run-1", "seq": 14, "hash": "f" * 64}))
    assert verify_run(state, "run-1") == [
        "record 14 does not match the head: its hash differs from the one kept apart"
    ]


def test_a_garbled_line_in_the_middle_is_named(state: Path) -> None:
    path = write_run(state)
    text = lines(path)
    text[6] = "not json\n"
    path.write_text("".join(text))
    assert verify_run(state, "run-1") == [
        "line 7 is not a valid record (after record 6)",
        "record 7 is missing: chain broken between 6 and 8",
    ]


def test_verify_all_covers_every_run_and_orphan_heads(state: Path) -> None:
    write_run(state, "run-1")
    write_run(state, "run-2")
    write_run(state, "run-3")
    path2 = state / "runs" / "run-2.jsonl"
    path2.write_text("".join(lines(path2)[:10]))
    (state / "runs" / "run-3.jsonl").unlink()
    assert verify_all(state) == {
        "run-1": [],
        "run-2": ["the journal ends at record 10 but its head says 15",
                  "the ledger says the run ended at record 15, which the journal no longer holds"],
        "run-3": ["the journal runs/run-3.jsonl is missing (its head says record 15)"],
    }


def test_unknown_or_unsafe_run_ids_are_refused(state: Path) -> None:
    write_run(state)
    with pytest.raises(InputError, match="no journal for run nope"):
        read_run(state, "nope")
    for bad in ("../etc/passwd", ".hidden", "a/b", ""):
        with pytest.raises(InputError, match="is not a run id"):
            verify_run(state, bad)
    with pytest.raises(InputError, match="is not a run id"):
        JournalWriter(state, "../x", header=HEADER)


def test_a_run_id_is_never_reused(state: Path) -> None:
    write_run(state)
    with pytest.raises(FileExistsError):
        JournalWriter(state, "run-1", header=HEADER)


def test_the_header_must_be_complete_and_chain_fields_are_reserved(state: Path) -> None:
    with pytest.raises(ValueError, match="lacks account, region"):
        JournalWriter(state, "r", header={k: v for k, v in HEADER.items() if k not in ("account", "region")})
    with pytest.raises(ValueError, match="ts are written by the journal itself"):
        JournalWriter(state, "r1", header={**HEADER, "ts": "yesterday"})
    assert not (state / "runs" / "r1.jsonl").exists()
    journal = JournalWriter(state, "r2", header=HEADER)
    with pytest.raises(ValueError, match="hash, seq are written by the journal itself"):
        journal.record("finding", seq=3, hash="x")
    with pytest.raises(ValueError, match="is not an event name"):
        journal.record("Step Result")
    journal.close("done")
    journal.close("done")  # a second close does nothing
    with pytest.raises(ValueError, match="is closed"):
        journal.record("finding")
    assert len(read_run(state, "r2").records) == 2


def test_secrets_are_never_serialized(state: Path) -> None:
    registered = "registered-canary-9q2"

    def redact(value: object) -> object:
        return MASK if value == registered else value

    journal = JournalWriter(state, "s", header=HEADER, redact=redact)
    journal.record(
        "step.intent",
        step="db",
        params={
            "MasterUserPassword": FakeSecret("Sup3r-Secret-Pw-4242"),
            "nested": [{"token": FakeSecret("nested-canary-77")}, ("a", FakeSecret("tuple-canary-55"))],
            "echo": f"{registered}",
            "other": object(),
            "when": datetime(2026, 11, 28, 7, 12, tzinfo=UTC),
            "path": Path("/tmp/x"),
            "nan": float("nan"),
        },
        secret=FakeSecret("top-canary-31"),
    )
    journal.close("done")
    raw = journal.path.read_bytes()
    for canary in (b"Sup3r-Secret", b"nested-canary", b"tuple-canary", b"top-canary", registered.encode(),
                   b"object at"):
        assert canary not in raw
    rec = read_run(state, "s").records[1]
    assert rec["secret"] == MASK
    assert rec["params"] == {
        "MasterUserPassword": MASK,
        "nested": [{"token": MASK}, ["a", MASK]],
        "echo": MASK,
        "other": "<unrecordable object>",
        "when": "2026-11-28T07:12:00.000Z",
        "path": "/tmp/x",
        "nan": "nan",
    }
    assert verify_run(state, "s") == []


def test_a_redact_that_lets_a_secret_through_is_still_masked(state: Path) -> None:
    journal = JournalWriter(state, "s", header=HEADER, redact=lambda value: value)
    journal.record("answer", input="db_password", value=FakeSecret("leak-canary-12"))
    assert b"leak-canary" not in journal.path.read_bytes()


# ---- crashes ----------------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from kensium_provision.journal.writer import JournalWriter
    state, header, torn = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == "torn"
    journal = JournalWriter(state, "crash", header=header)
    n = 0
    while True:
        n += 1
        journal.record("step.intent", step=f"s{n}", params={"n": n})
        if torn and n == 20:
            # what a power cut mid-write leaves: half a line, no newline, the head not yet moved
            with open(journal.path, "ab") as f:
                f.write(b'{"seq":22,"ts":"2026')
                f.flush()
                os.fsync(f.fileno())
            print("ready", flush=True)
            sys.stdin.read()
        elif n == 20:
            print("ready", flush=True)
    """
)


def run_writer_and_kill(state: Path, mode: str) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state), json.dumps(HEADER), mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            if mode == "loop":
                time.sleep(0.05)  # let it run on, then kill it wherever it is
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()


def test_records_survive_a_sigkill_mid_run(state: Path) -> None:
    run_writer_and_kill(state, "loop")
    log = read_run(state, "crash")
    assert len(log.records) >= 21
    assert [r["seq"] for r in log.records] == list(range(1, len(log.records) + 1))
    assert verify_run(state, "crash") == []  # a head one behind (killed between the writes) is accepted
    [summary] = list_runs(state)
    assert summary.outcome == "unfinished" and summary.finished is None


def test_a_torn_tail_after_a_kill_is_reported(state: Path) -> None:
    run_writer_and_kill(state, "torn")
    log = read_run(state, "crash")
    assert [r["seq"] for r in log.records] == list(range(1, 22))
    assert verify_run(state, "crash") == ["record 22 is torn: line 22 is incomplete (the writer stopped mid-write)"]


# ---- history and resume -------------------------------------------------------------------------------------


def test_list_runs_newest_first_and_filters(state: Path) -> None:
    times = iter(datetime(2026, 11, day, 7, 0, tzinfo=UTC) for day in range(1, 30))

    def clock() -> datetime:
        return next(times)

    for run_id, who, env, target, outcome in (
        ("r-a", "arn:aws:iam::123456789012:user/alice", "staging", "client:acme", "done"),
        ("r-b", "arn:aws:sts::123456789012:assumed-role/kprov-ops/bob", "prod", "client:globex", "failed"),
        ("r-c", "arn:aws:iam::123456789012:user/alice", "prod", "shared:rds:db-POS-01", None),
    ):
        journal = JournalWriter(state, run_id, header={**HEADER, "who": who, "environment": env, "target": target},
                                clock=clock)
        if outcome:
            journal.close(outcome)
        else:
            journal.record("interrupted", step="s1")
    runs = list_runs(state)
    assert [(r.run_id, r.outcome, r.client, r.env) for r in runs] == [
        ("r-c", "interrupted", "", "prod"),
        ("r-b", "failed", "globex", "prod"),
        ("r-a", "done", "acme", "staging"),
    ]
    assert runs[2].started == "2026-11-01T07:00:00.000Z" and runs[2].finished == "2026-11-02T07:00:00.000Z"
    assert runs[2].checklist == "client-onboarding" and runs[2].mode == "apply"

    def ids(found: list[RunSummary]) -> list[str]:
        return [r.run_id for r in found]

    assert ids(filter_runs(runs, client="acme")) == ["r-a"]
    assert ids(filter_runs(runs, env="prod")) == ["r-c", "r-b"]
    assert ids(filter_runs(runs, operator="alice")) == ["r-c", "r-a"]
    assert ids(filter_runs(runs, operator="arn:aws:sts::123456789012:assumed-role/kprov-ops/bob")) == ["r-b"]
    assert ids(filter_runs(runs, since=datetime(2026, 11, 3), until=datetime(2026, 11, 4, tzinfo=UTC))) == ["r-b"]
    assert ids(filter_runs(runs, env="prod", operator="bob")) == ["r-b"]


def test_list_runs_tolerates_a_torn_journal(state: Path) -> None:
    path = write_run(state)
    path.write_text("".join(lines(path)[:5]) + '{"seq":6,')
    [summary] = list_runs(state)
    assert summary.outcome == "unfinished"
    assert summary.problems == ("record 6 is torn: line 6 is incomplete (the writer stopped mid-write)",)


def test_resume_point_from_a_synthetic_journal(state: Path) -> None:
    journal = JournalWriter(state, "r", header=HEADER)
    journal.record("guard", name="account", outcome="ok")
    journal.record("answer", input="client", value="acme")
    journal.record("answer", input="db_password", secret=True, reference="op://kprov/acme-db")
    journal.record("answer", input="api_key", value=FakeSecret("k"))  # masked: must be asked again
    journal.record("answer", input="size", value="small")
    journal.record("answer", input="size", value="large")  # asked again: the later answer wins
    journal.record("step.intent", step="vpc", risk="create")
    journal.record("step.result", step="vpc", status="changed", outputs={"vpc_id": "vpc-1", "token": FakeSecret("t")})
    journal.record("step.intent", step="sg", risk="create")
    journal.record("step.result", step="sg", status="done", outputs={"sg_id": "sg-1"})
    journal.record("step.skipped", step="dns", reason="when: dns is false")
    journal.record("step.intent", step="mq", risk="create")
    journal.record("step.result", step="mq", status="failed", error="boom")
    journal.record("step.intent", step="db", risk="create")
    journal.record("interrupted", step="db")
    state_ = resume_point(read_run(state, "r"))
    assert state_.run_id == "r"
    assert state_.checklist == "client-onboarding" and state_.checklist_sha256 == "ab" * 32
    assert state_.target == "client:acme"
    assert state_.answers == {"client": "acme", "size": "large"}
    assert state_.secret_refs == {"db_password": "op://kprov/acme-db"}
    assert state_.completed == frozenset({"vpc", "sg"})
    assert state_.outputs == {"vpc": {"vpc_id": "vpc-1"}, "sg": {"sg_id": "sg-1"}}
    assert state_.failed == frozenset({"mq"})
    assert state_.in_flight == "db"


def test_resume_point_of_a_clean_run_has_nothing_in_flight(state: Path) -> None:
    write_run(state, steps=3)
    point = resume_point(read_run(state, "run-1"))
    assert point.completed == {"s1", "s2", "s3"} and point.in_flight is None


# ---- shipping to CloudWatch Logs ----------------------------------------------------------------------------


def test_shipping_journal_sends_every_record_to_cloudwatch_logs(state: Path) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        logs = boto3.client("logs", region_name="us-east-1")
        journal = ShippingJournal(JournalWriter(state, "ship", header=HEADER), logs, group="/kprov/audit",
                                  stream="ship")
        journal.record("step.intent", step="vpc", params={"pw": FakeSecret("ship-canary")})
        journal.close("done")
        journal.close("done")
        events = logs.get_log_events(logGroupName="/kprov/audit", logStreamName="ship", startFromHead=True)["events"]
        # a second journal on the same group: "already exists" is not an error
        again = ShippingJournal(JournalWriter(state, "ship2", header=HEADER), logs, group="/kprov/audit",
                                stream="ship2")
    assert journal.errors == [] and again.errors == []
    assert [json.loads(e["message"]) for e in events] == [dict(r) for r in read_run(state, "ship").records]
    assert all("ship-canary" not in e["message"] for e in events)


def test_shipping_failures_do_not_stop_the_run(state: Path) -> None:
    """A real CloudWatch Logs client whose endpoint does not answer (nothing listens on port 9)."""
    import boto3
    from botocore.config import Config

    logs = boto3.client("logs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    journal = ShippingJournal(JournalWriter(state, "ship", header=HEADER), logs, group="g", stream="s")
    journal.record("finding", step="vpc", message="x")
    assert [e.split(" failed with ")[0] for e in journal.errors] == [
        "logs:CreateLogGroup", "logs:CreateLogStream", "record 1: logs:PutLogEvents", "record 2: logs:PutLogEvents"]
    assert all("127.0.0.1:9" in e or "connect" in e.lower() for e in journal.errors), journal.errors
    assert verify_run(state, "ship") == []
