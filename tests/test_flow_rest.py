"""The rest of the operator's flow (issue 15): a hung sandbox, surprising defaults, references that are not
secrets, and validate's and the profile's exit codes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kensium_provision.sandbox.server import ensure_running, stop
from tests.test_terminal import Terminal


def servers_of(state: Path) -> list[int]:
    """The pids running a sandbox serve command for `state` (from /proc: the real processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kensium_provision.sandbox.server" in argv and b"serve" in argv and str(state.resolve()).encode() in argv:
            found.append(int(entry.name))
    return found


def test_a_hung_sandbox_is_reported_never_replaced_by_an_empty_one(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, tmp_path / "state")
    info = ensure_running(terminal.state)
    os.kill(info.pid, signal.SIGSTOP)
    try:
        done = terminal.kprov("check", "shared", "rds")
        after = servers_of(terminal.state)
    finally:
        os.kill(info.pid, signal.SIGCONT)
        stop(terminal.state)
        for pid in servers_of(terminal.state):  # a second server, if the fix regressed: never leave it behind
            os.kill(pid, signal.SIGKILL)
    assert done.returncode != 0, done.stderr
    assert f"the sandbox server (pid {info.pid}" in done.stderr and "it is stopped (SIGSTOP" in done.stderr
    assert "kprov sandbox stop" in done.stderr and f"kill -CONT {info.pid}" in done.stderr
    assert after == [info.pid]  # one server for one state dir


def test_sandbox_stop_ends_a_stopped_server_by_its_sigterm(tmp_path: Path) -> None:
    """The recovery the error names: a stopped server is continued so it handles SIGTERM (it was left to the
    SIGKILL at the deadline)."""
    info = ensure_running(tmp_path)
    os.kill(info.pid, signal.SIGSTOP)
    started = time.monotonic()
    assert stop(tmp_path, timeout=10) is True
    assert time.monotonic() - started < 8
    assert servers_of(tmp_path) == []
