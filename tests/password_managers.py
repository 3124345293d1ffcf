"""Real password managers for the vault tests: a KeePassXC database and a pass store made in the test.

Tests using them are marked `password_manager`; `require(program)` skips one (with the reason and the
Debian package) when the program is missing, and fails it under CI=true, where `.ci/system-deps`
installs them (as the `rabbitmq` marker does for rabbitmq-server). Load it as a plugin
(`pytest_plugins = ["password_managers"]`) for its `gpg` fixture. `recording(program, log)` is a
wrapper that logs each call's argv and environment and then execs the real program, so a test can
show no secret reached either; it changes nothing the program does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["GpgHome", "calls", "gpg", "gpg_home", "leaks_in_files", "make_kdbx", "recording", "require"]

PACKAGES = {"keepassxc-cli": "keepassxc", "pass": "pass", "gpg": "gnupg"}


def require(program: str) -> str:
    """The program's path; else skip the test (fail under CI=true) saying what to install."""
    found = shutil.which(program)
    if found:
        return found
    reason = f"{program} is not installed (Debian: apt-get install {PACKAGES.get(program, program)})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}: the password-manager tests must run in CI", pytrace=False)
    pytest.skip(reason)


def recording(program: str, log: Path) -> str:
    """A wrapper script that appends its argv and environment (NUL-separated) to `log`, then runs `program`.

    It is `<log's folder>/bin/<program>`: put that folder first on PATH to record a program kprov finds there.
    """
    real = require(program)
    wrapper = log.parent / "bin" / Path(program).name
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\n{{ printf "argv\\0"; printf "%s\\0" "$@"; printf "env\\0"; env -0; '
                       f'printf "\\n"; }} >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o700)
    return str(wrapper)


def calls(log: Path) -> str:
    """Everything the recording wrapper logged, as text."""
    return log.read_bytes().decode(errors="replace") if log.exists() else ""


def make_kdbx(path: Path, password: str | None = None, *, key_file: Path | None = None) -> Path:
    """A new KeePassXC database at `path` unlocked by `password` (given on stdin, twice, as the CLI asks)
    and/or a new key file."""
    cli = require("keepassxc-cli")
    unlock = (["--set-password"] if password is not None else []) + (
        ["--set-key-file", str(key_file)] if key_file is not None else [])
    stdin = f"{password}\n{password}\n" if password is not None else ""
    subprocess.run([cli, "db-create", *unlock, "--decryption-time", "100", str(path)], input=stdin.encode(),
                   capture_output=True, check=True, timeout=60)
    return path


@dataclass(frozen=True, slots=True)
class GpgHome:
    """A GNUPGHOME of the test's own with one key, and its id for `pass init`."""

    home: Path
    key_id: str


@contextmanager
def gpg_home(directory: Path, *, passphrase: str = "", name: str = "kprov-test") -> Iterator[GpgHome]:
    """A fresh GNUPGHOME with a key (no passphrase unless given) made here; its gpg-agent is stopped after."""
    gpg = require("gpg")
    directory.mkdir(mode=0o700, parents=True)
    # Offline and unattended: no key server or WKD look-up for a missing key, no pinentry (it would wait
    # for a terminal): a key with a passphrase then counts as locked, as for an agent that cannot ask.
    (directory / "gpg.conf").write_text("no-auto-key-locate\nno-auto-key-retrieve\n")
    (directory / "gpg-agent.conf").write_text("pinentry-program /bin/false\n")
    env = {**os.environ, "GNUPGHOME": str(directory)}
    email = f"{name}@example.invalid"
    subprocess.run([gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--quick-gen-key",
                    f"{name} <{email}>", "default", "default", "never"],
                   input=passphrase.encode(), env=env, capture_output=True, check=True, timeout=120)
    try:
        yield GpgHome(directory, email)
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, check=False, timeout=30)


def leaks_in_files(value: str, *roots: Path) -> list[str]:
    """The files under `roots` holding `value` in clear (a database or gpg file holds it encrypted)."""
    needle = value.encode()
    return [str(p) for root in roots for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def gpg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GpgHome]:
    """The test's own GNUPGHOME (in the environment pass and gpg read) with a key without passphrase."""
    require("pass")
    with gpg_home(tmp_path / "gnupg") as made:
        monkeypatch.setenv("GNUPGHOME", str(made.home))
        yield made
