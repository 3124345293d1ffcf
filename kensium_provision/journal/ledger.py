"""The state dir's ledger (`ledger.jsonl`): one hash-chained entry when a run's journal opens, one when it closes.

A run's journal proves its own records; the ledger proves which runs there were and how each ended, so
a journal deleted with its head, or rewritten whole with recomputed hashes and head, no longer matches
it. Every entry holds the previous entry's hash (`prev`), so an entry cannot be dropped from the middle
either. With an anchor key (HMAC-SHA256, from the password manager) each `run.closed` entry also holds
`mac`, which only a holder of the key can compute: see `journal.verify` for what is and is not detected.

Entries: `ledger.started` (the runs already in the state dir when the ledger began, with their heads),
`run.opened` (run_id, journal_seq 1, journal_hash of its header), `run.closed` (journal_seq and
journal_hash of its `run.finished`, and `mac` when keyed). Writers hold an flock while appending, so
runs in parallel keep one chain.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path

from kensium_provision.journal.files import heads_dir

__all__ = ["LEDGER", "append", "entry_mac", "ledger_path"]

LEDGER = "ledger.jsonl"


def ledger_path(state_dir: Path) -> Path:
    return state_dir / LEDGER


def entry_mac(key: bytes, entry: Mapping[str, object]) -> str:
    """HMAC-SHA256 of the entry's canonical JSON without its `mac` (its hash and prev included)."""
    from kensium_provision.journal.writer import canonical

    return hmac.new(key, canonical({k: v for k, v in entry.items() if k != "mac"}), hashlib.sha256).hexdigest()


def _last(data: bytes) -> tuple[int, str]:
    """(seq, hash) of the last whole entry, or (0, GENESIS) for an empty ledger."""
    from kensium_provision.journal.writer import GENESIS

    for raw in reversed(data.split(b"\n")):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # a torn line (a crash mid-write): verify reports it
        if isinstance(entry, dict) and type(entry.get("seq")) is int and isinstance(entry.get("hash"), str):
            return entry["seq"], entry["hash"]
    return 0, GENESIS


def _existing_runs(state_dir: Path, opening: str) -> dict[str, object]:
    """The heads of the runs already in the state dir when the ledger begins (kept, so they are not 'added')."""
    found: dict[str, object] = {}
    for path in sorted(heads_dir(state_dir).glob("*.head")):
        run_id = path.name.removesuffix(".head")
        if run_id == opening:
            continue
        try:
            head = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            head = None
        found[run_id] = head.get("hash") if isinstance(head, dict) else None
    return found


def append(state_dir: Path, event: str, *, run_id: str, journal_seq: int, journal_hash: str, ts: str,
           key: bytes | None = None) -> None:
    """Append one entry (whole or not at all: a failed write is cut back); OSError when the disk refuses."""
    from kensium_provision.journal.writer import append_line, record_hash

    path = ledger_path(state_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one chain, whatever runs in parallel
        size = os.fstat(fd).st_size
        seq, prev = _last(os.pread(fd, size, 0)) if size else _last(b"")
        lines: list[dict[str, object]] = []
        if seq == 0:
            lines.append({"seq": 1, "ts": ts, "event": "ledger.started", "runs": _existing_runs(state_dir, run_id)})
        lines.append({"seq": seq + len(lines) + 1, "ts": ts, "event": event, "run_id": run_id,
                      "journal_seq": journal_seq, "journal_hash": journal_hash})
        data = b""
        for entry in lines:
            entry["prev"] = prev
            entry["hash"] = prev = record_hash(entry)
            if key is not None and event == "run.closed" and entry["event"] == event:
                entry["mac"] = entry_mac(key, entry)
            data += json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        append_line(fd, data)
    finally:
        os.close(fd)  # closing releases the flock
