"""The `pass` backend against the real `pass` and gpg: a key made in the test (no passphrase), its own store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kensium_provision.errors import InputError, StepError
from kensium_provision.secret import Secret, generate_password
from kensium_provision.vault.backends import PassVault, make_vault
from tests.password_managers import GpgHome, calls, gpg_home, leaks_in_files, recording, require
from tests.test_vault import Clients, ScriptedOperator

pytestmark = pytest.mark.password_manager
pytest_plugins = ["password_managers"]  # its gpg fixture


def _env(store: Path) -> dict[str, str]:
    return {**os.environ, "PASSWORD_STORE_DIR": str(store)}  # GNUPGHOME: the test's, set by the fixture


def init_store(directory: Path, key_id: str) -> Path:
    subprocess.run([require("pass"), "init", key_id], env=_env(directory), capture_output=True, check=True,
                   timeout=60)
    return directory


@pytest.fixture
def store(gpg: GpgHome, tmp_path: Path) -> Path:
    return init_store(tmp_path / "store", gpg.key_id)


def test_stores_finds_fetches_and_updates_with_the_secret_on_stdin(
        store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "calls.log"
    vault = PassVault(store, program=recording("pass", log))
    secret, rotated = generate_password("rabbitmq-user"), generate_password("rabbitmq-user")
    assert vault.find("acme/rabbitmq-hub") is None
    ref = vault.store("acme/rabbitmq-hub", secret, description="hub user", tags={})
    assert ref == "pass:acme/rabbitmq-hub" == vault.find("acme/rabbitmq-hub")
    assert (store / "kprov" / "acme" / "rabbitmq-hub.gpg").is_file()  # pass's own layout
    assert vault.fetch(ref) == secret
    assert vault.store("acme/rabbitmq-hub", Secret(secret.reveal()), description="", tags={}) == ref
    with pytest.raises(StepError, match="never overwrites"):
        vault.store("acme/rabbitmq-hub", rotated, description="", tags={})
    assert vault.fetch(ref) == secret
    assert vault.update("acme/rabbitmq-hub", rotated) == ref
    assert vault.fetch(ref) == rotated
    shown = subprocess.run([require("pass"), "show", "kprov/acme/rabbitmq-hub"], env=_env(store), capture_output=True,
                           check=True).stdout.decode()
    assert shown == rotated.reveal() + "\n"  # what pass itself shows: the password on the first line
    logged = calls(log)
    assert "argv\0insert\0--multiline\0" in logged
    for value in (secret.reveal(), rotated.reveal()):
        assert value not in logged  # not in any call's argv or environment
        assert leaks_in_files(value, tmp_path) == []  # the .gpg files hold it encrypted only
    out, err = capsys.readouterr()
    assert secret.reveal() not in out + err and rotated.reveal() not in out + err


def test_update_keeps_the_owners_notes(store: Path) -> None:
    subprocess.run([require("pass"), "insert", "--multiline", "kprov/acme/sql-login"], env=_env(store),
                   input=b"Old-Value-123\nlogin: POS_acme_user\n", capture_output=True, check=True)
    vault = PassVault(store)
    assert vault.fetch("pass:acme/sql-login") == Secret("Old-Value-123")  # the first line is the password
    vault.update("acme/sql-login", Secret("New-Value-456"))
    shown = subprocess.run([require("pass"), "show", "kprov/acme/sql-login"], env=_env(store), capture_output=True,
                           check=True).stdout.decode()
    assert shown == "New-Value-456\nlogin: POS_acme_user\n"


def test_a_missing_or_uninitialised_store_says_so(gpg: GpgHome, tmp_path: Path) -> None:
    with pytest.raises(StepError, match="there is no password store") as err:
        PassVault(tmp_path / "none").store("acme/x", Secret("Some-Value-123"), description="", tags={})
    assert "pass init" in err.value.hint
    with pytest.raises(StepError, match="there is no password store"):
        PassVault(tmp_path / "none").fetch("pass:acme/x")
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(StepError, match=r"not initialised \(no \.gpg-id\)"):
        PassVault(bare).store("acme/x", Secret("Some-Value-123"), description="", tags={})
    assert not (bare / "kprov").exists()  # nothing was written


def test_no_gpg_key_to_encrypt_to_is_a_clear_error(gpg: GpgHome, tmp_path: Path) -> None:
    store = tmp_path / "foreign"
    store.mkdir()
    (store / ".gpg-id").write_text("nobody@example.invalid\n")  # a key this GNUPGHOME does not have
    secret = Secret("Never-Stored-789")
    with pytest.raises(StepError, match="exit code") as err:
        PassVault(store).store("acme/x", secret, description="", tags={})
    assert "cannot encrypt" in err.value.hint and secret.reveal() not in str(err.value)


def test_a_locked_key_is_an_error_when_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("pass")
    with gpg_home(tmp_path / "gnupg", passphrase="Key-Passphrase-55") as locked:
        monkeypatch.setenv("GNUPGHOME", str(locked.home))
        store = init_store(tmp_path / "store", locked.key_id)
        subprocess.run([require("pass"), "insert", "--multiline", "kprov/acme/x"], env=_env(store),
                       input=b"Stored-Locked-1\n", capture_output=True, check=True)  # encrypting needs no passphrase
        vault = PassVault(store)
        assert vault.find("acme/x") == "pass:acme/x"
        attempts = (lambda: vault.fetch("pass:acme/x"),  # decrypting does, and no pinentry can ask for it
                    lambda: vault.store("acme/y", Secret("Stored-Locked-2"), description="", tags={}))  # read-back
        for attempt in attempts:
            with pytest.raises(StepError, match="exit code") as err:
                attempt()
            assert "cannot decrypt" in err.value.hint
            assert not any(v in str(err.value) for v in ("Key-Passphrase-55", "Stored-Locked-1", "Stored-Locked-2"))


def test_make_vault_reads_the_store_setting(store: Path) -> None:
    made = make_vault("pass", settings={"backend": "pass", "store": str(store), "timeout": 20},
                      client_factory=Clients(), operator=ScriptedOperator(interactive=False), env_name="qa")
    assert isinstance(made, PassVault) and made.directory == store


def test_a_missing_pass_names_the_packages(tmp_path: Path) -> None:
    entry = tmp_path / "kprov" / "acme" / "x.gpg"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"")  # an entry to read, so that kprov runs the program
    with pytest.raises(InputError, match="not found") as err:
        PassVault(tmp_path, program="/nonexistent/pass").fetch("pass:acme/x")
    assert "apt-get install pass gnupg" in err.value.hint
