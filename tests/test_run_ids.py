"""Run ids sort as the runs started, also two runs of one second: `kprov runs` lists by id, and undo reads
"what ran after this run" from that order. (The failed CI of stop 24: two runs of one second, listed in
the order of their random parts.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kensium_provision.app import bootstrap
from kensium_provision.journal.files import RUN_ID, run_ids, runs_dir


def test_two_runs_of_one_second_sort_as_they_started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clock = iter([datetime(2026, 12, 3, 7, 15, 2, 417_000, tzinfo=UTC),
                  datetime(2026, 12, 3, 7, 15, 2, 903_000, tzinfo=UTC)])
    suffixes = iter(["ffffff", "000000"])  # the later run draws the smaller random part

    class Clock:
        @staticmethod
        def now(tz: Any) -> datetime:
            return next(clock)

    class Uuid:
        def __init__(self) -> None:
            self.hex = next(suffixes) + "0" * 26

    monkeypatch.setattr(bootstrap, "datetime", Clock)
    monkeypatch.setattr("uuid.uuid4", Uuid)
    first, second = bootstrap.new_run_id(), bootstrap.new_run_id()
    assert first == "20261203T071502.417Z-ffffff" and RUN_ID.match(first) and RUN_ID.match(second)
    runs_dir(tmp_path).mkdir(parents=True)
    for run_id in (second, first):
        (runs_dir(tmp_path) / f"{run_id}.jsonl").write_text("")
    assert run_ids(tmp_path) == [first, second]


def test_run_ids_are_unique_across_many_made_at_once() -> None:
    assert len({bootstrap.new_run_id() for _ in range(2000)}) == 2000
