"""Verifying the journal: edited, removed, reordered, foreign or cut records, each named by its seq.

A record's hash covers its canonical JSON (`writer.record_hash`) and holds the previous record's hash;
the head kept apart in `heads/` shows a cut tail; the state dir's ledger (`journal.ledger`) shows a run
deleted or rewritten whole; with the anchor key, its MACs show a ledger rewritten too.

What `verify_run` / `verify_all` detect, and what they cannot (as CloudTrail's log file validation
states its own guarantees):

Detected, with no key:
- a record edited, deleted, inserted, duplicated, reordered or taken from another run (hash and chain);
- a cut tail: the journal ends before its head (`heads/`), or before the ledger's `run.closed`;
- a record appended after `run.finished` (a finished run ends there; the crash tolerance of a head one
  record behind applies only to a run that never finished);
- a run's journal deleted, with or without its head: the ledger says it began;
- a journal put in the state dir behind kprov's back: no ledger entry opened it;
- a journal rewritten whole with recomputed hashes and head: its first or last record no longer
  matches the hash the ledger kept;
- an entry edited or dropped inside the ledger (the ledger is hash-chained itself).

Detected only with the anchor key (HMAC-SHA256 of each `run.closed` entry, the key held in the
password manager, never on this machine's disk):
- the journals and the ledger rewritten together with every hash recomputed: the MACs no longer verify,
  or are missing (a ledger that should be keyed and holds no MAC is itself a finding).

Detected only for runs shipped to CloudWatch Logs (`journal.cloudwatch_log_group`: apply runs; the
operator cannot rewrite what was put there), when `audit verify` is given the shipped copy:
- a record that differs from its copy, or a shipped record the journal no longer holds;
- a run shipped from this host that is not in the state dir (the newest runs deleted with the ledger's
  tail, or the whole state dir): reported with the caveat that another KPROV_STATE_DIR may hold it.

Not detected, by design or by necessity:
- the newest runs removed together with the ledger's tail (journal, head and last ledger entries),
  or the whole state dir deleted, when the runs were not shipped (plans, checks, no log group):
  nothing is left to compare with;
- anything done by someone holding the anchor key (an operator who can read it from the password
  manager can forge the MACs too: keep it where only auditors read it);
- a run whose process was killed before `run.closed` has no MAC: it is reported as unfinished, not as
  tampered (its records are still chained and headed);
- what a record says being true: the journal proves what kprov wrote, not what AWS did.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from kensium_provision.journal.files import RUN_ID, head_path, heads_dir, journal_path, run_ids
from kensium_provision.journal.ledger import LEDGER, entry_mac, ledger_path
from kensium_provision.journal.reader import parse_journal
from kensium_provision.journal.writer import GENESIS, record_hash

__all__ = ["LEDGER_ID", "verify_all", "verify_run"]

LEDGER_ID = LEDGER  # the key of the ledger's own problems in `verify_all` (no run id has that name)


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}–{last} are"


def _read_head(path: Path) -> dict[str, Any] | None:
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(head, dict) or type(head.get("seq")) is not int or not isinstance(head.get("hash"), str):
        return None
    return head


def _chain(parsed: list[tuple[int, dict[str, Any]]], run_id: str | None,
           unhashed: frozenset[str] = frozenset({"hash"})) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Records by seq, and what breaks the chain: edits, strays, duplicates, order, gaps, the start."""
    messages: list[str] = []
    by_seq: dict[int, dict[str, Any]] = {}
    highest = 0
    for _, rec in parsed:
        seq = rec["seq"]
        if rec.get("hash") != record_hash({k: v for k, v in rec.items() if k not in unhashed}):
            messages.append(f"record {seq} was edited: its hash does not match")
        if run_id is not None and rec.get("run_id") != run_id:
            messages.append(f"record {seq} belongs to run {rec.get('run_id')}, not {run_id}")
        if seq in by_seq:
            messages.append(f"record {seq} appears twice")
        elif seq < highest:
            messages.append(f"record {seq} is out of order: it comes after record {highest}")
        by_seq.setdefault(seq, rec)
        highest = max(highest, seq)
    seqs = sorted(by_seq)
    if seqs and seqs[0] > 1:
        messages.append(f"{_span(1, seqs[0] - 1)} missing: the journal starts at record {seqs[0]}")
    elif seqs and by_seq[1].get("prev") != GENESIS:
        messages.append("record 1 does not start the chain: its prev hash is not zero")
    for a, b in pairwise(seqs):
        if b > a + 1:
            messages.append(f"{_span(a + 1, b - 1)} missing: chain broken between {a} and {b}")
        elif by_seq[b].get("prev") != by_seq[a].get("hash"):
            messages.append(f"chain broken between {a} and {b}: record {b} does not point to record {a}'s hash")
    return by_seq, messages


@dataclass(frozen=True, slots=True)
class _Ledger:
    """The ledger as read: each run's opened and closed entries, and what is wrong with the ledger itself."""

    exists: bool
    opened: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    closed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    before: frozenset[str] = frozenset()  # runs already there when the ledger began
    problems: tuple[str, ...] = ()


def _read_ledger(state_dir: Path, key: bytes | None) -> _Ledger:
    path = ledger_path(state_dir)
    if not path.is_file():
        return _Ledger(exists=False, problems=("the ledger ledger.jsonl is missing, so no run can be keyed "
                                               "to it",) if key is not None else ())
    parsed, problems = parse_journal(path)
    by_seq, chain = _chain(parsed, None, frozenset({"hash", "mac"}))
    problems += [m.replace("the journal starts", "the ledger starts") for m in chain]
    opened: dict[str, Mapping[str, Any]] = {}
    closed: dict[str, Mapping[str, Any]] = {}
    before: set[str] = set()
    macs = 0
    for seq, entry in sorted(by_seq.items()):
        event, run_id = entry.get("event"), str(entry.get("run_id", ""))
        if event == "ledger.started" and isinstance(entry.get("runs"), dict):
            before.update(entry["runs"])
        elif event == "run.opened":
            opened[run_id] = entry
        elif event == "run.closed":
            closed[run_id] = entry
            if key is None:
                continue
            if "mac" not in entry:
                problems.append(f"ledger entry {seq} (run {run_id} closed) has no MAC")
            elif not hmac.compare_digest(str(entry["mac"]), entry_mac(key, entry)):
                problems.append(f"ledger entry {seq} (run {run_id} closed) has a MAC the key does not make: "
                                "the ledger was rewritten")
            else:
                macs += 1
    if key is not None and closed and not macs:
        problems.append("no ledger entry carries a valid MAC although the anchor key is given: "
                        "the ledger was rewritten, or never written with the key")
    return _Ledger(exists=True, opened=opened, closed=closed, before=frozenset(before), problems=tuple(problems))


def _against_ledger(run_id: str, by_seq: Mapping[int, Mapping[str, Any]], ledger: _Ledger) -> list[str]:
    """A run's journal against the hashes the ledger kept of its first and last records."""
    if not ledger.exists:
        return []
    opened, closed = ledger.opened.get(run_id), ledger.closed.get(run_id)
    if opened is None:
        return [] if run_id in ledger.before else [
            f"no ledger entry opened run {run_id}: its journal was put in the state dir behind kprov's back"]
    problems = []
    first = by_seq.get(1)
    if first is None or first.get("hash") != opened.get("journal_hash"):
        problems.append("record 1 differs from the one the ledger kept when the run began: the journal was rewritten")
    if closed is not None:
        seq = closed.get("journal_seq")
        last = by_seq.get(seq) if isinstance(seq, int) else None
        if last is None:
            problems.append(f"the ledger says the run ended at record {seq}, which the journal no longer holds")
        elif last.get("hash") != closed.get("journal_hash"):
            problems.append(f"record {seq} differs from the one the ledger kept when the run ended: "
                            "the journal was rewritten")
    return problems


def _after_finish(by_seq: Mapping[int, Mapping[str, Any]]) -> list[str]:
    finished = next((seq for seq, rec in sorted(by_seq.items()) if rec.get("event") == "run.finished"), None)
    later = [seq for seq in by_seq if finished is not None and seq > finished]
    if not later:
        return []
    return [f"{_span(min(later), max(later))} after run.finished (record {finished}): added after the run ended"]


def _against_copy(by_seq: Mapping[int, Mapping[str, Any]], copy: list[dict[str, Any]] | None) -> list[str]:
    """A run's journal against its CloudWatch Logs copy; local records never shipped (shipping failed, a
    plan) are no problem, a shipped one missing or different is."""
    problems = []
    for rec in sorted(copy or (), key=lambda r: int(r["seq"])):
        mine = by_seq.get(rec["seq"])
        if mine is None:
            problems.append(f"record {rec['seq']} is in the CloudWatch Logs copy but not in the journal")
        elif mine.get("hash") != rec.get("hash"):
            problems.append(f"record {rec['seq']} differs from its CloudWatch Logs copy")
    return problems


def verify_run(state_dir: Path, run_id: str, *, key: bytes | None = None,
               shipped: Mapping[str, list[dict[str, Any]]] | None = None, _ledger: _Ledger | None = None) -> list[str]:
    """What is wrong with a run's journal, each problem naming its record; empty when intact.

    `key`: the anchor key, `shipped`: the CloudWatch Logs copy by run id (`shipping.read_shipped`); see the
    module docstring. The ledger's own problems are `verify_all`'s."""
    parsed, messages = parse_journal(journal_path(state_dir, run_id))
    if not parsed and not messages:
        messages.append("the journal is empty")
    by_seq, chain = _chain(parsed, run_id)
    messages += chain
    messages += _after_finish(by_seq)
    messages += _check_head(state_dir, run_id, by_seq)
    ledger = _ledger or _read_ledger(state_dir, key)
    messages += _against_ledger(run_id, by_seq, ledger)
    messages += [p for p in ledger.problems if _names(p, run_id)]  # its ledger entry's MAC
    messages += _against_copy(by_seq, (shipped or {}).get(run_id))
    return messages


def _names(problem: str, run_id: str) -> bool:
    return f"(run {run_id} closed)" in problem


def _check_head(state_dir: Path, run_id: str, by_seq: Mapping[int, Mapping[str, Any]]) -> list[str]:
    name = f"heads/{run_id}.head"
    path = head_path(state_dir, run_id)
    if not path.is_file():
        return [f"the head file {name} is missing: a cut tail would not show"]
    head = _read_head(path)
    if head is None or head.get("run_id") != run_id:
        return [f"the head file {name} is unreadable or belongs to another run"]
    last, head_seq = max(by_seq, default=0), head["seq"]
    if head_seq > last:
        return [f"the journal ends at record {last} but its head says {head_seq}"]
    problems = []
    if head_seq in by_seq and by_seq[head_seq].get("hash") != head["hash"]:
        problems.append(f"record {head_seq} does not match the head: its hash differs from the one kept apart")
    if last > head_seq + 1:  # one behind is a crash between the record and its head
        problems.append(f"{_span(head_seq + 1, last)} past the head (record {head_seq}): added after the run")
    return problems


def verify_all(state_dir: Path, *, key: bytes | None = None, shipped: Mapping[str, list[dict[str, Any]]] | None = None,
               host: str = "") -> dict[str, list[str]]:
    """`verify_run` for every run (an empty list means intact), plus heads whose journal is gone, runs the
    ledger knows whose journal is gone, runs shipped from `host` that the state dir lacks, and the ledger's
    own problems (under `LEDGER_ID`)."""
    ledger = _read_ledger(state_dir, key)
    results = {run_id: verify_run(state_dir, run_id, shipped=shipped, _ledger=ledger) for run_id in run_ids(state_dir)}
    heads = heads_dir(state_dir)
    for path in sorted(heads.glob("*.head")) if heads.is_dir() else ():
        run_id = path.name.removesuffix(".head")
        if run_id not in results and RUN_ID.match(run_id):
            head = _read_head(path)
            seq = f" (its head says record {head['seq']})" if head else ""
            results[run_id] = [f"the journal runs/{run_id}.jsonl is missing{seq}"]
    for run_id, entry in ledger.opened.items():
        if run_id not in results:
            results[run_id] = [f"the journal runs/{run_id}.jsonl and its head are missing: the ledger says the "
                               f"run began at {entry.get('ts')}"]
    for run_id, copy in (shipped or {}).items():
        header = next((r for r in copy if r.get("seq") == 1), {})
        if run_id not in results and host and header.get("host") == host:
            results[run_id] = [f"run {run_id} was shipped to CloudWatch Logs from this host ({host}) but is not in "
                               "the state dir: deleted, or written under another KPROV_STATE_DIR"]
    rest = [p for p in ledger.problems if not any(_names(p, run_id) for run_id in results)]
    if rest:
        results[LEDGER_ID] = rest
    return results
