"""Hostile inputs for kprov's YAML readers: deep nesting, FIFOs, endless devices; and a bounded kprov run.

A reader that is not hardened hangs on a FIFO and reads `/dev/zero` until memory runs out, so those
cases run kprov in a child process with a time limit and an address-space limit: before the fix
such a test fails (a timeout or an internal error), it never takes the machine down.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["DEV_ZERO", "deep_block", "deep_flow", "fifo", "kprov"]

DEV_ZERO = Path("/dev/zero")
_MEMORY = 1 << 30  # bytes of address space for the child: plenty for kprov, little for /dev/zero
_SECONDS = 60.0


def deep_flow(levels: int, *, closed: bool = True) -> str:
    """`[[[...]]]`: `levels` flow sequences inside each other (unclosed: only the opening brackets)."""
    return "[" * levels + ("]" * levels if closed else "") + "\n"


def deep_block(levels: int, *, key: str = "a") -> str:
    """Block mappings `levels` deep: `a:\\n  a:\\n    a: ...`, each one column further in."""
    return "".join(f"{' ' * i}{key}:\n" for i in range(levels)) + f"{' ' * levels}x\n"


def fifo(folder: Path, name: str = "answers.yaml") -> Path:
    """A named pipe nobody writes to: opening it for reading blocks unless the reader refuses it."""
    path = folder / name
    os.mkfifo(path)
    return path


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY, _MEMORY))


def kprov(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m kensium_provision ARGS` with a time and a memory limit (the test's environment)."""
    return subprocess.run([sys.executable, "-m", "kensium_provision", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=_SECONDS, preexec_fn=_limit_memory, check=False,
                          stdin=subprocess.DEVNULL)
