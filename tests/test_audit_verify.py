"""Issue 14 item 13: what `audit verify` detects past one journal's own chain, and what it cannot.

Each test forges the journal as an attacker with write access to the state dir would (recomputing every
hash they can), then asks verify. The limits stated in `journal.verify`'s docstring have tests too.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.errors import ExitCode
from kensium_provision.journal.ledger import entry_mac, ledger_path
from kensium_provision.journal.verify import LEDGER_ID, verify_all, verify_run
from kensium_provision.journal.writer import GENESIS, JournalWriter, record_hash
from tests.test_journal import HEADER, write_run

if TYPE_CHECKING:
    from tests.conftest import Kprov

VPC_ANSWERS = str(Path(__file__).resolve().parents[1] / "examples" / "shared-vpc.yaml")
KEY = b"k" * 32  # stands in for the anchor key the password manager holds


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rechain(records: list[dict[str, Any]], unhashed: tuple[str, ...] = ("hash",)) -> list[dict[str, Any]]:
    """The records with every prev and hash recomputed, as a forger with the format would."""
    prev = GENESIS
    out = []
    for seq, rec in enumerate(records, start=1):
        rec = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
        rec.update(seq=seq, prev=prev)
        rec["hash"] = prev = record_hash({k: v for k, v in rec.items() if k not in unhashed})
        out.append(rec)
    return out


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))


def rewrite_run(state: Path, run_id: str, edit: str, to: str) -> None:
    """The whole journal rewritten with an edit, every hash recomputed, and its head to match."""
    path = state / "runs" / f"{run_id}.jsonl"
    records = rechain([json.loads(json.dumps(r).replace(edit, to)) for r in read(path)])
    write(path, records)
    (state / "heads" / f"{run_id}.head").write_text(json.dumps({"run_id": run_id, "seq": records[-1]["seq"],
                                                                "hash": records[-1]["hash"]}))


def test_a_record_forged_after_run_finished_is_found(state: Path) -> None:
    path = write_run(state)
    records = read(path)
    forged = {"seq": 16, "ts": records[-1]["ts"], "run_id": "run-1", "event": "step.result", "step": "s9",
              "status": "changed", "prev": records[-1]["hash"]}
    forged["hash"] = record_hash(forged)
    with path.open("a") as out:
        out.write(json.dumps(forged, separators=(",", ":")) + "\n")
    # the head one behind is what a crash leaves: but this run had finished
    assert verify_run(state, "run-1") == ["record 16 is after run.finished (record 15): added after the run ended"]


def test_a_run_deleted_with_its_head_is_found(state: Path) -> None:
    write_run(state, "run-1")
    write_run(state, "run-2")
    (state / "runs" / "run-1.jsonl").unlink()
    (state / "heads" / "run-1.head").unlink()
    found = verify_all(state)
    assert found["run-2"] == []
    assert found["run-1"][0].startswith("the journal runs/run-1.jsonl and its head are missing: the ledger says")


def test_a_journal_rewritten_whole_with_its_head_is_found(state: Path) -> None:
    write_run(state)
    rewrite_run(state, "run-1", '"r-3"', '"r-forged"')
    assert verify_run(state, "run-1") == [
        "record 15 differs from the one the ledger kept when the run ended: the journal was rewritten"]
    rewrite_run(state, "run-1", '"staging"', '"production"')  # the header too
    assert "record 1 differs from the one the ledger kept when the run began: the journal was rewritten" in (
        verify_run(state, "run-1"))


def test_a_journal_added_behind_kprovs_back_is_found(state: Path) -> None:
    write_run(state, "run-1")
    write_run(state, "run-2")
    lines = ledger_path(state).read_text().splitlines(keepends=True)
    # drop run-2's entries and recompute the ledger: it now hides nothing but knows nothing of run-2
    entries = [json.loads(line) for line in lines if '"run-2"' not in line]
    write(ledger_path(state), rechain(entries, ("hash", "mac")))
    assert verify_all(state)["run-2"] == [
        "no ledger entry opened run run-2: its journal was put in the state dir behind kprov's back"]


def test_an_entry_dropped_from_the_ledger_breaks_its_chain(state: Path) -> None:
    for run_id in ("run-1", "run-2", "run-3"):
        write_run(state, run_id)
    lines = ledger_path(state).read_text().splitlines(keepends=True)
    ledger_path(state).write_text("".join(lines[:3] + lines[4:]))  # run-2 opened, gone
    assert verify_all(state)[LEDGER_ID] == ["record 4 is missing: chain broken between 3 and 5"]


def test_runs_from_before_the_ledger_are_not_called_added(state: Path) -> None:
    write_run(state, "old")
    ledger_path(state).unlink()  # as a state dir of a kprov without a ledger
    write_run(state, "new")
    assert verify_all(state) == {"old": [], "new": []}


def test_parallel_runs_keep_one_ledger_chain(state: Path) -> None:
    def runs(prefix: str) -> None:
        for n in range(15):
            write_run(state, f"{prefix}-{n}", steps=1)

    threads = [threading.Thread(target=runs, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = verify_all(state)
    assert len(found) == 30 and all(v == [] for v in found.values()), found
    assert len(read(ledger_path(state))) == 1 + 60


def test_journals_and_ledger_rewritten_together_pass_without_the_key_and_fail_with_it(state: Path) -> None:
    """The stated limit: with write access to the state dir and no key, a complete rewrite is consistent."""
    journal = JournalWriter(state, "run-1", header=HEADER, anchor_key=KEY)
    journal.record("step.result", step="s1", status="changed", outputs={"id": "r-1"})
    journal.close("ok")
    assert "mac" in read(ledger_path(state))[-1]
    assert verify_all(state, key=KEY) == {"run-1": []}
    rewrite_run(state, "run-1", '"r-1"', '"r-forged"')
    entries = read(ledger_path(state))
    final = read(state / "runs" / "run-1.jsonl")
    entries[-1].update(journal_seq=final[-1]["seq"], journal_hash=final[-1]["hash"])
    forged = rechain(entries, ("hash", "mac"))
    write(ledger_path(state), forged)
    assert verify_all(state) == {"run-1": []}  # not detected without the key: said so in the docstring
    assert verify_all(state, key=KEY) == {
        "run-1": ["ledger entry 3 (run run-1 closed) has no MAC"],
        LEDGER_ID: ["no ledger entry carries a valid MAC although the anchor key is given: the ledger was "
                    "rewritten, or never written with the key"]}
    forged[-1]["mac"] = entry_mac(b"a guessed key", forged[-1])
    write(ledger_path(state), forged)
    assert verify_run(state, "run-1", key=KEY) == [
        "ledger entry 3 (run run-1 closed) has a MAC the key does not make: the ledger was rewritten"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_the_anchor_key_comes_from_the_password_manager_and_audit_verify_checks_it(
        aws: None, kprov: Kprov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: a plan run writes a MAC with the key the password manager (Secrets Manager, moto) holds;
    a state dir rewritten whole (journal, head and ledger) passes without the key and fails with it."""
    import boto3

    from kensium_provision.app.config import state_dir

    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="kprov/sandbox/audit/journal-anchor", SecretString="an-auditors-key-0123456789abcdef")
    config = tmp_path / "config.yaml"
    config.write_text("journal: {anchor_key: audit/journal-anchor}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    planned = kprov("provision", "shared", "vpc", "--dry-run", "--answers", VPC_ANSWERS)
    assert planned.code == ExitCode.OK, planned.err
    assert "mac" in read(ledger_path(state_dir()))[-1]
    assert kprov("audit", "verify").code == ExitCode.OK
    (run_id,) = [p.stem for p in (state_dir() / "runs").glob("*.jsonl")]
    rewrite_run(state_dir(), run_id, '"POS-VPC"', '"POS-VPC-forged"')
    entries = read(ledger_path(state_dir()))
    final = read(state_dir() / "runs" / f"{run_id}.jsonl")
    entries[-1].update(journal_seq=final[-1]["seq"], journal_hash=final[-1]["hash"])
    write(ledger_path(state_dir()), rechain(entries, ("hash", "mac")))
    done = kprov("audit", "verify")
    assert done.code == ExitCode.FAILED
    assert "has no MAC" in done.err and "ledger.jsonl" in done.err
    resumed = kprov("resume", run_id, "--answers", VPC_ANSWERS, "--yes")  # a plan, but verified first
    assert resumed.code == ExitCode.INVALID and "has no MAC" in resumed.err
    monkeypatch.delenv("KPROV_CONFIG")
    assert kprov("audit", "verify").code == ExitCode.OK  # the stated limit without the key


def test_the_cloudwatch_copy_finds_a_rewrite_and_a_deleted_run(aws: None, kprov: Kprov, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Shipping configured: audit verify compares with the copy the operator cannot rewrite (moto's logs)."""
    from kensium_provision.app.config import state_dir

    config = tmp_path / "config.yaml"
    config.write_text("journal: {cloudwatch_log_group: /kprov/audit}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))
    applied = kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    assert applied.code == ExitCode.OK, applied.err
    assert kprov("audit", "verify").code == ExitCode.OK
    (run_id,) = [p.stem for p in (state_dir() / "runs").glob("*.jsonl")]

    rewrite_run(state_dir(), run_id, '"203.0.113.10"', '"0.0.0.0"')  # and the ledger to match
    entries = read(ledger_path(state_dir()))
    final = read(state_dir() / "runs" / f"{run_id}.jsonl")
    entries[-1].update(journal_seq=final[-1]["seq"], journal_hash=final[-1]["hash"])
    entries[-2].update(journal_hash=final[0]["hash"])
    write(ledger_path(state_dir()), rechain(entries, ("hash", "mac")))
    done = kprov("audit", "verify")
    assert done.code == ExitCode.FAILED
    assert "differs from its CloudWatch Logs copy" in done.err

    for path in (state_dir() / "runs" / f"{run_id}.jsonl", state_dir() / "heads" / f"{run_id}.head",
                 ledger_path(state_dir())):
        path.unlink()  # the newest run and the ledger's tail (here: all of it) gone
    done = kprov("audit", "verify")
    assert done.code == ExitCode.FAILED
    assert f"run {run_id} was shipped to CloudWatch Logs from this host" in " ".join(done.err.split())
