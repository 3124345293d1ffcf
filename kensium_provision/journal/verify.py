"""Verifying the journal: edited, removed, reordered, foreign or cut records, each named by its seq.

A record's hash covers its canonical JSON (`writer.record_hash`) and holds the previous record's
hash; the head kept apart in `heads/` shows a cut tail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

from kensium_provision.journal.files import RUN_ID, head_path, heads_dir, journal_path, run_ids
from kensium_provision.journal.reader import parse_journal
from kensium_provision.journal.writer import GENESIS, record_hash

__all__ = ["verify_all", "verify_run"]


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


def verify_run(state_dir: Path, run_id: str) -> list[str]:
    """What is wrong with a run's journal, each problem naming its record; empty when intact."""
    parsed, messages = parse_journal(journal_path(state_dir, run_id))
    if not parsed and not messages:
        messages.append("the journal is empty")
    by_seq: dict[int, dict[str, Any]] = {}
    highest = 0
    for _, rec in parsed:
        seq = rec["seq"]
        if rec.get("hash") != record_hash(rec):
            messages.append(f"record {seq} was edited: its hash does not match")
        if rec.get("run_id") != run_id:
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
    messages.extend(_check_head(state_dir, run_id, by_seq))
    return messages


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


def verify_all(state_dir: Path) -> dict[str, list[str]]:
    """`verify_run` for every run (an empty list means intact), plus heads whose journal is gone."""
    results = {run_id: verify_run(state_dir, run_id) for run_id in run_ids(state_dir)}
    heads = heads_dir(state_dir)
    for path in sorted(heads.glob("*.head")) if heads.is_dir() else ():
        run_id = path.name.removesuffix(".head")
        if run_id not in results and RUN_ID.match(run_id):
            head = _read_head(path)
            seq = f" (its head says record {head['seq']})" if head else ""
            results[run_id] = [f"the journal runs/{run_id}.jsonl is missing{seq}"]
    return results

