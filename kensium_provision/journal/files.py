"""Where a run's journal lives under the state dir, and which names may be run ids.

`runs/<run_id>.jsonl` holds the records, `heads/<run_id>.head` the last seq and hash, kept apart so
a cut tail shows. A run id names files, so it is checked before any path is made from it.
"""

from __future__ import annotations

import re
from pathlib import Path

from kensium_provision.errors import InputError

__all__ = ["RUN_ID", "check_run_id", "head_path", "heads_dir", "journal_path", "run_ids", "runs_dir"]

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # it names files: no separators, no leading dot


def check_run_id(run_id: str) -> str:
    """The run id itself, or `InputError` when it could not name a file safely."""
    if not RUN_ID.match(run_id):
        raise InputError(f"{run_id!r} is not a run id (letters, digits, '.', '_' and '-' only)")
    return run_id


def runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def heads_dir(state_dir: Path) -> Path:
    return state_dir / "heads"


def head_path(state_dir: Path, run_id: str) -> Path:
    return heads_dir(state_dir) / f"{check_run_id(run_id)}.head"


def journal_path(state_dir: Path, run_id: str) -> Path:
    """The journal file of an existing run; `InputError` when there is none."""
    path = runs_dir(state_dir) / f"{check_run_id(run_id)}.jsonl"
    if not path.is_file():
        raise InputError(f"no journal for run {run_id} in {runs_dir(state_dir)}")
    return path


def run_ids(state_dir: Path) -> list[str]:
    """The ids of every run with a journal in the state dir, sorted."""
    runs = runs_dir(state_dir)
    if not runs.is_dir():
        return []
    return sorted(p.name.removesuffix(".jsonl") for p in runs.glob("*.jsonl") if RUN_ID.match(p.stem))
