"""Issue 18.3's leak canary: a sandbox run at `-v -v` whose vault is the real KeePassXC or pass.

As tests/test_canary.py does for the `command` backend: the CLI runs in this process with known canary
passwords (the RDS master password of `provision shared rds`), the config chooses the backend, and the
program kprov runs is found on PATH behind a recording wrapper (tests/password_managers.py) that logs
its argv and environment and then runs the real one. Afterwards the canaries are in the password manager,
read back with its own CLI, and in no argv, environment, file (the .kdbx and .gpg files hold them
encrypted), stdout or stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kensium_provision.errors import ExitCode
from tests.e2e import example
from tests.password_managers import GpgHome, calls, make_kdbx, recording, require
from tests.test_canary import Canaries, canaries, debug_loggers, failure, files_under, leaks  # noqa: F401 - fixtures
from tests.test_vault_pass import init_store

if TYPE_CHECKING:
    from tests.conftest import Kprov

pytest_plugins = ["password_managers"]  # its gpg fixture


def _keepassxc(tmp_path: Path) -> tuple[dict[str, object], list[str]]:
    key = tmp_path / "team.keyx"
    database = make_kdbx(tmp_path / "team.kdbx", key_file=key)
    show = [require("keepassxc-cli"), "show", "--no-password", "--key-file", str(key), "-s", "-a", "Password",
            str(database), "kprov/db-POS-01/master"]
    return {"backend": "keepassxc", "database": str(database), "key_file": str(key), "password": False}, show


def _pass(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[dict[str, object], list[str]]:
    gpg: GpgHome = request.getfixturevalue("gpg")
    store = init_store(tmp_path / "store", gpg.key_id)
    return {"backend": "pass", "store": str(store)}, [require("pass"), "show", "kprov/db-POS-01/master"]


@pytest.mark.slow
@pytest.mark.password_manager
@pytest.mark.usefixtures("debug_loggers")
@pytest.mark.parametrize("backend", ["keepassxc", "pass"])
def test_a_sandbox_run_with_a_real_password_manager_leaves_no_secret_anywhere(
        backend: str, kprov: Kprov, request: pytest.FixtureRequest, tmp_path: Path, _isolated_world: Path,  # noqa: PT019
        capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from kensium_provision.app.config import state_dir
    from kensium_provision.sandbox import server as sandbox

    issued: Canaries = request.getfixturevalue("canaries")
    vault, show = _keepassxc(tmp_path) if backend == "keepassxc" else _pass(tmp_path, request)
    program = "keepassxc-cli" if backend == "keepassxc" else "pass"
    log = tmp_path / "calls.log"
    wrapper = recording(program, log)
    monkeypatch.setenv("PATH", f"{Path(wrapper).parent}{os.pathsep}{os.environ['PATH']}")
    config = _isolated_world / ".config" / "kprov" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"vault": vault}))
    out, err = [], []
    try:
        for resource in ("vpc", "rds"):
            done = kprov("-v", "-v", "provision", "shared", resource, "--answers", example(f"shared-{resource}.yaml"),
                         "--yes")
            out.append(done.out)
            err.append(done.err)
            assert done.code == ExitCode.OK, f"{resource}: {failure(done.err)}"
    finally:
        sandbox.stop(state_dir())
    assert issued.issued, "the RDS master password was generated"
    stored = subprocess.run(show, capture_output=True, check=True, timeout=60, env={**os.environ, **(
        {"PASSWORD_STORE_DIR": str(vault["store"])} if backend == "pass" else {})}).stdout.decode().strip()
    assert stored in issued.issued  # the password manager holds the generated master password
    assert f"argv\0{'show' if backend == 'keepassxc' else 'insert'}\0" in calls(log)  # kprov ran it
    places = {"calls (argv, environment)": calls(log).encode(), **files_under(_isolated_world, tmp_path),
              "stderr": "".join(err).encode(), "stdout": "".join(out).encode()}
    found = leaks({f"canary {c}": c for c in issued.issued}, places)
    assert found == [], "\n".join(found)
