"""kprov installed as users install it: a wheel built from a clean copy, in a fresh venv, run from elsewhere.

Issue 13's must-show. The tracked files of this work tree (what a clean clone of it would hold, with
any uncommitted edits to them, so a change to the packaging is tested before it is committed; an
untracked file is left out, as a clone would) are copied to a scratch dir; `pip wheel --no-deps`
builds the wheel there; a venv with no access to this checkout or to the test venv installs it,
its dependencies resolved by pip as configured on this machine (its indexes and cache), as
`pip install .` would. From a directory outside the copy, with a scratch state dir:

- `kprov --output json list` shows the nine checklists, every one read from the installed package;
- `kprov show` accepts every id and every ref that `list` prints;
- the sandbox job, the very commands of the Makefile's `demo` target (its `examples/` answers files
  taken from the copy by absolute path), runs to `kprov check client acme` and the rest with exit 0;
- `kprov sandbox stop` ends the sandbox it started (also when a step fails).

A wheel without the checklists (package-data), without a module (an untracked new file) or with an
undeclared dependency fails here, not in an operator's hands.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHECKLISTS = 11  # six shared resources, two shared rotations; the client's install, removal and rotation
INSTALL_BUDGET = 900.0  # seconds: pip resolves and unpacks some forty distributions on a loaded 2-core machine
COMMAND_BUDGET = 300.0


def tracked_files(root: Path) -> list[str]:
    """The paths `git ls-files` lists that exist in the work tree (a deleted one is not in a clone)."""
    done = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached"], capture_output=True, check=False,
                          timeout=60)
    if done.returncode != 0:
        pytest.skip(f"{root} is not a git work tree: there is no clean clone to build from")
    return [name for name in done.stdout.decode().split("\0") if name and (root / name).is_file()]


def clean_copy(root: Path, into: Path) -> Path:
    for name in tracked_files(root):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return into


def run(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=dict(env), text=True, capture_output=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def must(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{shlex.join(done.args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def demo_commands(makefile: Path, examples: Path) -> list[list[str]]:
    """The kprov command lines of the Makefile's `demo` target, `examples/...` made absolute."""
    lines = makefile.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"demo\s*:", line))
    commands = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        if line.startswith("\t$(KPROV) "):
            argv = shlex.split(line.removeprefix("\t$(KPROV) "))
            commands.append([str(examples / a.removeprefix("examples/")) if a.startswith("examples/") else a
                             for a in argv])
    return commands


@dataclass(frozen=True)
class Installed:
    """A fresh venv holding the wheel, and where kprov runs from (outside the copy)."""

    venv: Path
    copy: Path
    elsewhere: Path
    env: dict[str, str]

    @property
    def kprov(self) -> str:
        return str(self.venv / "bin" / "kprov")

    def __call__(self, *args: str, timeout: float = COMMAND_BUDGET) -> subprocess.CompletedProcess[str]:
        return run([self.kprov, *args], cwd=self.elsewhere, env=self.env, timeout=timeout)


def builder_env() -> dict[str, str]:
    """The developer's own environment for pip (their pip config and cache), less anything naming a Python path.

    The conftest gives each test a scratch HOME; pip gets the real one back, where its user config
    (indexes) and cache are.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_USER")}
    env["HOME"] = pwd.getpwuid(os.getuid()).pw_dir
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)
    return env


def operator_env(home: Path) -> dict[str, str]:
    """An operator's shell: own HOME and state dir; no PYTHONPATH, no AWS profile, no proxy for loopback."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "KPROV_STATE_DIR": str(home / "kprov-state"),
        "NO_PROXY": "127.0.0.1,localhost",
        "COLUMNS": "200",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    scratch = tmp_path_factory.mktemp("wheel")
    copy = clean_copy(ROOT, scratch / "clone")
    env = builder_env()
    dist = scratch / "dist"
    must(run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(copy)],
             cwd=scratch, env=env, timeout=INSTALL_BUDGET))
    [wheel] = dist.glob("kensium_provision-*.whl")
    venv = scratch / "venv"
    base = getattr(sys, "_base_executable", sys.executable)  # not this venv's python: nothing of it is inherited
    must(run([base, "-m", "venv", str(venv)], cwd=scratch, env=env, timeout=INSTALL_BUDGET))
    must(run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=scratch, env=env,
             timeout=INSTALL_BUDGET))
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir()
    world = Installed(venv=venv, copy=copy, elsewhere=elsewhere, env=operator_env(scratch / "home"))
    try:
        yield world
    finally:
        world("sandbox", "stop")  # never leave a sandbox server behind (exit 1 when none was running)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    where = must(run([str(installed.venv / "bin" / "python"), "-c",
                      "import kensium_provision, sys; print(kensium_provision.__file__); print(sys.path)"],
                     cwd=installed.elsewhere, env=installed.env, timeout=COMMAND_BUDGET)).stdout
    module = Path(where.splitlines()[0])
    assert module.is_relative_to(installed.venv), where
    assert str(ROOT) not in where and str(installed.copy) not in where, where


def test_list_shows_every_checklist_and_show_takes_every_id_and_ref(installed: Installed) -> None:
    document = json.loads(must(installed("--output", "json", "list")).stdout)
    checklists = document["checklists"]
    assert len(checklists) == CHECKLISTS, [c["id"] for c in checklists]
    for checklist in checklists:  # read from the installed package, never from a checkout
        assert Path(checklist["path"]).is_relative_to(installed.venv), checklist["path"]
    names = [c["id"] for c in checklists] + [c["ref"] for c in checklists]
    assert len(set(names)) == 2 * CHECKLISTS
    for name in names:
        shown = must(installed("show", name))
        assert shown.stdout.strip() or shown.stderr.strip(), f"kprov show {name} printed nothing"
    listed = must(installed("list"))
    for name in names:
        assert name in listed.stdout + listed.stderr, name


def test_the_demo_job_runs_to_a_clean_check_of_client_acme(installed: Installed) -> None:
    commands = demo_commands(installed.copy / "Makefile", installed.copy / "examples")
    assert ["check", "client", "acme"] in commands, commands  # the job this must show
    assert commands[0] == ["sandbox", "reset"]
    for argv in commands:
        for arg in argv:
            if arg.endswith(".yaml"):
                assert Path(arg).is_file(), f"the demo's answers file {arg} is not in a clean clone"
        done = installed(*argv)
        assert done.returncode == 0, f"kprov {shlex.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    stopped = installed("sandbox", "stop")
    assert stopped.returncode == 0, stopped.stderr  # the demo's sandbox was running until now
