"""Issue 14 item 15: a full disk or an unwritable state dir while journaling.

A clear error (exit 3 before the run began, exit 1 once it has), never a traceback, and never a
half-written record. ENOSPC is injected at the journal's one write function (no real disk can be
filled here); the unwritable state dir is real.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kensium_provision.errors import ExitCode
from kensium_provision.journal import writer as journal_writer
from kensium_provision.journal.reader import parse_journal
from kensium_provision.journal.verify import verify_run
from kensium_provision.journal.writer import JournalWriteError, JournalWriter, check_writable
from tests.test_journal import HEADER

if TYPE_CHECKING:
    from tests.conftest import Kprov

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def disk_full_at(monkeypatch: pytest.MonkeyPatch, nth: int) -> list[int]:
    """From the nth write of the journal on, half the bytes land and then the disk is full (ENOSPC)."""
    real: Callable[[int, bytes], None] = journal_writer._write_all
    calls: list[int] = []

    def write_all(fd: int, data: bytes) -> None:
        calls.append(len(data))
        if len(calls) < nth:
            real(fd, data)
            return
        os.write(fd, data[: len(data) // 2])  # a short write, as a filling disk gives
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(journal_writer, "_write_all", write_all)
    return calls


def test_disk_full_mid_run_is_a_clear_error_and_leaves_whole_records(state: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    journal = JournalWriter(state, "full", header=HEADER)
    journal.record("guard", name="account", outcome="ok")
    disk_full_at(monkeypatch, 1)
    with pytest.raises(JournalWriteError) as caught:
        journal.record("step.intent", step="s1", params={"n": 1})
    assert caught.value.exit_code == ExitCode.FAILED
    assert "No space left on device [ENOSPC]" in str(caught.value) and "resume" in caught.value.hint
    with pytest.raises(JournalWriteError):  # the journal stays stopped: no record after a gap
        journal.record("step.result", step="s1", status="failed")
    journal.close("failed")  # the error is already on its way: close adds no second one
    assert journal.closed
    records, problems = parse_journal(journal.path)
    assert problems == [] and [r["event"] for _, r in records] == ["run.started", "guard"]
    assert journal.path.read_bytes().endswith(b"\n")
    assert verify_run(state, "full") == []  # an unfinished run, as after a crash; not tampering


def test_disk_full_on_the_first_record_is_exit_3_and_leaves_no_journal(state: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    disk_full_at(monkeypatch, 1)
    with pytest.raises(JournalWriteError) as caught:
        JournalWriter(state, "never", header=HEADER)
    assert caught.value.exit_code == ExitCode.INVALID and "nothing was changed" in str(caught.value)
    assert not (state / "runs" / "never.jsonl").exists() and not (state / "heads" / "never.head").exists()


def test_disk_full_on_the_head_stops_the_run_with_the_record_whole(state: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    journal = JournalWriter(state, "head", header=HEADER)
    disk_full_at(monkeypatch, 2)  # the record's line goes through, its head does not
    with pytest.raises(JournalWriteError):
        journal.record("guard", name="account", outcome="ok")
    assert not list((state / "heads").glob(".*.tmp"))
    assert verify_run(state, "head") == []  # the head one behind, as a crash between the two leaves it


def test_a_state_dir_that_cannot_be_made_is_exit_3(tmp_path: Path) -> None:
    """Works as root too: a file where the state dir should be stops root as well as anyone."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(JournalWriteError) as caught:
        check_writable(blocker)
    assert caught.value.exit_code == ExitCode.INVALID
    with pytest.raises(JournalWriteError):
        JournalWriter(blocker, "r", header=HEADER)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode; the test above covers root")
def test_a_read_only_state_dir_is_exit_3(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    try:
        with pytest.raises(JournalWriteError) as caught:
            check_writable(state)
    finally:
        state.chmod(0o700)
    assert caught.value.exit_code == ExitCode.INVALID and "Permission denied" in str(caught.value)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_disk_full_during_an_apply_exits_1_without_a_traceback(aws: None, kprov: Kprov,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.app.config import state_dir

    calls = disk_full_at(monkeypatch, 12)  # past the header, the identity guard and the answers
    done = kprov("provision", "shared", "vpc", "--answers", str(EXAMPLES / "shared-vpc.yaml"), "--yes")
    assert len(calls) >= 12
    assert done.code == ExitCode.FAILED, done.err
    assert "No space left on device" in done.err and "Traceback" not in done.err + done.out
    assert "crash report" not in done.err
    (journal,) = (state_dir() / "runs").glob("*.jsonl")
    _, problems = parse_journal(journal)
    assert problems == [] and journal.read_bytes().endswith(b"\n")


def test_a_state_dir_that_cannot_be_written_refuses_the_run_with_exit_3(aws: None, kprov: Kprov,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from kensium_provision.app.config import state_dir

    state_dir().parent.mkdir(parents=True, exist_ok=True)
    state_dir().write_text("a file where the state dir should be")  # stops root too
    done = kprov("provision", "shared", "vpc", "--answers", str(EXAMPLES / "shared-vpc.yaml"), "--yes")
    assert done.code == ExitCode.INVALID, done.err
    assert "cannot write the journal" in done.err and "nothing was changed" in done.err
    assert "Traceback" not in done.err


def test_a_crash_report_that_cannot_be_written_is_said_plainly(kprov: Kprov, monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.app import outcome
    from kensium_provision.checklist import validate as validation

    def boom(paths: object) -> object:
        raise RuntimeError("a bug")

    def disk_full(exc: BaseException, context: object) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(validation, "validate_paths", boom)
    monkeypatch.setattr(outcome, "crash_report", disk_full)
    done = kprov("validate")
    assert done.code == ExitCode.INTERNAL
    assert "no crash report could be written: No space left on device" in done.err
    assert "Traceback" not in done.err
