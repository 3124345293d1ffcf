"""A real terminal for tests: kprov runs in a tmux pane; tests type keys and read the screen."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest


def require_tmux() -> str:
    found = shutil.which("tmux")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is missing in CI (.ci/run installs it)")
        pytest.skip("tmux is not installed")
    return found


class Pane:
    """One tmux session on a private server socket, running one command."""

    def __init__(self, command: list[str], *, env: Mapping[str, str], cwd: Path, width: int = 140,
                 height: int = 50) -> None:
        self.tmux = require_tmux()
        self.socket = f"kprov-test-{uuid.uuid4().hex[:10]}"
        self.exit_file = cwd / f".exit-{self.socket}"
        inner = " ".join(shlex.quote(c) for c in command)
        script = f"{inner}; echo $? > {shlex.quote(str(self.exit_file))}; sleep 600"
        full_env = {"TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1", **env}
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in full_env.items())
        self._run("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                  f"cd {shlex.quote(str(cwd))} && env {envs} bash -c {shlex.quote(script)}")

    def _run(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True,
                              check=True).stdout

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-J", "-S", "-2000", "-t", "t")

    def send(self, *keys: str) -> None:
        self._run("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self._run("send-keys", "-t", "t", "-l", "--", text)  # `--`: a text such as "-1" is no option

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            if self.exit_file.exists() and text not in screen:
                time.sleep(0.3)
                screen = self.screen()
                if text in screen:
                    return screen
                raise AssertionError(f"kprov exited before {text!r} appeared:\n{screen}")
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear within {timeout} s:\n{self.screen()}")

    def exit_code(self, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exit_file.exists() and self.exit_file.read_text().strip():
                return int(self.exit_file.read_text().strip())
            time.sleep(0.1)
        raise AssertionError(f"kprov did not exit within {timeout} s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", self.socket, "kill-server"], capture_output=True, check=False)
        self.exit_file.unlink(missing_ok=True)
