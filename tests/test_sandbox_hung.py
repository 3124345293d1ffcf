"""`kprov sandbox status` of a hung sandbox (issue 15): a real server process stopped with SIGSTOP is reported as
running but not answering, with its pid and the way out, exit 1; never "not running" (which invites a second,
empty server for the same state dir)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from kensium_provision.errors import ExitCode
from kensium_provision.sandbox.server import ensure_running, hung, status, stop
from tests.test_flow_rest import servers_of
from tests.test_terminal import Terminal


def test_sandbox_status_reports_a_stopped_server_as_running_but_not_answering(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, tmp_path / "state")
    info = ensure_running(terminal.state)
    assert terminal.kprov("sandbox", "status").returncode == 0
    os.kill(info.pid, signal.SIGSTOP)
    try:
        done = terminal.kprov("sandbox", "status")
        document = json.loads(terminal.kprov("--output", "json", "sandbox", "status").stdout)
        found = hung(terminal.state)
    finally:
        os.kill(info.pid, signal.SIGCONT)
    try:
        assert status(terminal.state) == info  # continued: the same server, with its state, answers again
    finally:
        stop(terminal.state)
    assert done.returncode == ExitCode.FAILED, done.stderr
    assert "not running" not in done.stderr
    assert f"sandbox running but not answering: its server (pid {info.pid}, {info.endpoint}) is stopped" in done.stderr
    assert "kprov sandbox stop" in done.stderr and f"kill -CONT {info.pid}" in done.stderr
    assert found is not None and found.info == info and "stopped" in found.why
    assert (document["running"], document["answering"], document["pid"]) == (True, False, info.pid)
    assert servers_of(terminal.state) == []


def test_sandbox_status_of_no_server_says_it_starts_on_demand(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, tmp_path / "state")
    done = terminal.kprov("sandbox", "status")
    assert done.returncode == ExitCode.FAILED
    assert "sandbox not running (it starts on demand)" in done.stderr
    assert hung(terminal.state) is None
