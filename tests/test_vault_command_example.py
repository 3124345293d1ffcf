"""docs/password-managers.md and examples/vault/: the doc shows the example files as they are, each loads as a
kprov config, and the `command` example (pointed at the real `pass`, with gpg) stores, finds, fetches and
rotates as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kensium_provision.app.config import load_config
from kensium_provision.secret import Secret
from kensium_provision.vault.backends import CommandVault, make_vault
from tests.password_managers import GpgHome
from tests.test_vault import Clients, ScriptedOperator
from tests.test_vault_pass import init_store

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "password-managers.md"
EXAMPLES = sorted((ROOT / "examples" / "vault").glob("*.yaml"))
pytest_plugins = ["password_managers"]  # its gpg fixture
_BLOCK = re.compile(r"```yaml\n# (examples/vault/[\w.-]+)\n(.*?)```", re.DOTALL)


def test_the_doc_shows_every_example_file_as_it_is() -> None:
    shown = dict(_BLOCK.findall(DOC.read_text()))
    assert sorted(shown) == [str(p.relative_to(ROOT)) for p in EXAMPLES]
    for path in EXAMPLES:  # the file's vault section, below its leading comment lines
        body = path.read_text().partition("\nvault:")[2]
        assert shown[str(path.relative_to(ROOT))] == "vault:" + body


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_valid_vault_config(path: Path) -> None:
    settings = load_config(path).vault.settings()
    assert settings["backend"] == path.stem.partition("-")[0]


@pytest.mark.password_manager
def test_the_command_example_drives_pass(gpg: GpgHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = init_store(tmp_path / "store", gpg.key_id)
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(store))  # where the operator's own pass keeps its store
    settings = load_config(ROOT / "examples" / "vault" / "command-pass.yaml").vault.settings()
    vault = make_vault("command", settings=settings, client_factory=Clients(), operator=ScriptedOperator(),
                       env_name="qa")
    assert isinstance(vault, CommandVault)
    assert vault.find("acme/sql-login") is None  # pass show exits non-zero: no such entry
    secret, rotated = Secret("Example-Secret-1"), Secret("Example-Rotated-2")
    ref = vault.store("acme/sql-login", secret, description="", tags={})
    assert ref == "command:acme/sql-login" == vault.find("acme/sql-login")
    assert (store / "team" / "acme" / "sql-login.gpg").is_file()
    assert vault.fetch(ref) == secret
    assert vault.update("acme/sql-login", rotated) == ref
    assert vault.fetch(ref) == rotated
