"""The KeePassXC backend against the real `keepassxc-cli` on a `.kdbx` database made in the test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kensium_provision.errors import InputError, StepError
from kensium_provision.secret import Secret, generate_password
from kensium_provision.vault.backends import KeePassXCVault, make_vault
from tests.password_managers import calls, leaks_in_files, make_kdbx, recording, require
from tests.test_vault import Clients, ScriptedOperator

pytestmark = pytest.mark.password_manager

DB_PASSWORD = "Db-Unlock-Canary-7f3a"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return make_kdbx(tmp_path / "team.kdbx", DB_PASSWORD)


def vault_on(database: Path, log: Path | None = None, password: str = DB_PASSWORD) -> KeePassXCVault:
    program = recording("keepassxc-cli", log) if log else require("keepassxc-cli")
    return KeePassXCVault(database, password=lambda: Secret(password), program=program)


def test_stores_finds_fetches_and_updates_with_every_secret_on_stdin(
        database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "calls.log"
    vault = vault_on(database, log)
    secret, rotated = generate_password("sql-login"), generate_password("sql-login")
    assert vault.find("acme/sql-login") is None
    ref = vault.store("acme/sql-login", secret, description="SQL login POS_acme_user", tags={"kprov:policy": "x"})
    assert ref == "keepassxc:acme/sql-login" == vault.find("acme/sql-login")
    assert vault.fetch(ref) == secret
    assert vault.store("acme/sql-login", Secret(secret.reveal()), description="", tags={}) == ref  # idempotent
    with pytest.raises(StepError, match="never overwrites") as err:
        vault.store("acme/sql-login", rotated, description="", tags={})
    assert rotated.reveal() not in str(err.value) and secret.reveal() not in str(err.value)
    assert vault.update("acme/sql-login", rotated) == ref
    assert vault.fetch(ref) == rotated
    assert vault.update("acme/sql-login", rotated) == ref  # a resumed rotation changes nothing
    assert vault.store("globex/sql-login", secret, description="", tags={}) == "keepassxc:globex/sql-login"
    # what the database itself says, read with the real CLI: the old value is in the entry's history
    shown = subprocess.run([require("keepassxc-cli"), "show", "-s", "-a", "Password", "-a", "Notes", str(database),
                            "kprov/acme/sql-login"], input=f"{DB_PASSWORD}\n".encode(), capture_output=True,
                           check=True).stdout.decode()
    assert shown.splitlines()[:2] == [rotated.reveal(), "SQL login POS_acme_user"]
    exported = subprocess.run([require("keepassxc-cli"), "export", "--format", "xml", str(database)],
                              input=f"{DB_PASSWORD}\n".encode(), capture_output=True, check=True).stdout.decode()
    history = exported.partition("<History>")[2].partition("</History>")[0]
    assert f">{secret.reveal()}</Value>" in history  # rotation keeps the old value in the entry's history
    logged = calls(log)
    assert logged.count("argv\0") >= 8 and "kprov/acme/sql-login" in logged
    for value in (secret.reveal(), rotated.reveal(), DB_PASSWORD):  # argv and environment of every call
        assert value not in logged
        assert leaks_in_files(value, tmp_path) == []  # the .kdbx holds them encrypted only
    out, err_text = capsys.readouterr()
    assert not any(v in out + err_text for v in (secret.reveal(), rotated.reveal(), DB_PASSWORD))


def test_a_locked_database_is_an_error_never_a_missing_entry(database: Path) -> None:
    vault_on(database).store("acme/sql-login", Secret("Stored-Value-123"), description="", tags={})
    wrong = vault_on(database, password="Wrong-Password-42")
    for attempt in (lambda: wrong.find("acme/sql-login"), lambda: wrong.fetch("keepassxc:acme/sql-login"),
                    lambda: wrong.store("acme/other", Secret("Another-Value-1"), description="", tags={})):
        with pytest.raises(StepError, match="exit code 1") as err:
            attempt()
        assert "locked" in err.value.hint and "Invalid credentials" in str(err.value)
        assert "Wrong-Password-42" not in str(err.value) + err.value.hint
        assert "Enter password" not in str(err.value)  # the CLI's prompt is not part of the message


def test_a_missing_or_foreign_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="does not exist") as err:
        vault_on(tmp_path / "none.kdbx").find("acme/sql-login")
    assert "db-create" in err.value.hint
    garbage = tmp_path / "garbage.kdbx"
    garbage.write_text("not a database\n")
    with pytest.raises(StepError) as err:
        vault_on(garbage).find("acme/sql-login")
    assert "not a KeePassXC database" in err.value.hint


def test_a_key_file_alone_unlocks_for_unattended_runs(tmp_path: Path) -> None:
    key = tmp_path / "team.keyx"
    database = make_kdbx(tmp_path / "unattended.kdbx", key_file=key)
    made = make_vault("keepassxc", settings={"backend": "keepassxc", "database": str(database), "key_file": str(key),
                                             "password": False},
                      client_factory=Clients(), operator=ScriptedOperator(interactive=False), env_name="qa")
    assert isinstance(made, KeePassXCVault)
    ref = made.store("mq-POS-01/admin", Secret("Broker-Admin-Pw-1"), description="", tags={})
    assert made.fetch(ref) == Secret("Broker-Admin-Pw-1")


def test_the_database_password_is_asked_once_at_a_hidden_prompt(database: Path) -> None:
    operator = ScriptedOperator(answer=Secret(DB_PASSWORD))
    made = make_vault("keepassxc", settings={"database": str(database)}, client_factory=Clients(), operator=operator,
                      env_name="qa")
    ref = made.store("acme/sql-login", Secret("Stored-Value-123"), description="", tags={})
    assert made.fetch(ref) == Secret("Stored-Value-123") and made.find("acme/sql-login") == ref
    assert [spec.type for spec, _ in operator.asked] == ["secret"]
    unattended = make_vault("keepassxc", settings={"database": str(database)}, client_factory=Clients(),
                            operator=ScriptedOperator(interactive=False), env_name="qa")
    with pytest.raises(InputError, match="typed at a terminal") as err:
        unattended.find("acme/sql-login")
    assert "key_file" in err.value.hint


def test_a_missing_keepassxc_cli_names_the_package(database: Path) -> None:
    vault = KeePassXCVault(database, password=lambda: Secret(DB_PASSWORD), program="/nonexistent/keepassxc-cli")
    with pytest.raises(InputError, match="not found") as err:
        vault.find("acme/sql-login")
    assert "apt-get install keepassxc" in err.value.hint


def test_values_a_line_based_prompt_cannot_carry_are_refused_before_running(database: Path, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    vault = vault_on(database, log)
    for bad in ("two\nlines", ""):
        with pytest.raises(InputError, match="one non-empty line"):
            vault.store("acme/x", Secret(bad), description="", tags={})
    for ref in ("pass:acme/x", "keepassxc:acme/../x", "keepassxc:-rf/x"):
        with pytest.raises(InputError):
            vault.fetch(ref)
    assert calls(log) == ""
