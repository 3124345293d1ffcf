"""Issue 14 item 11: one canonical password-manager reference.

A `command` password manager whose store command prints an entry id made the record hold
`command:acme/sql-login#id-1` while the next run's `find` gave `command:acme/sql-login`: `check client`
then reported the client record's references as wrong. The install runs here as in
tests/test_client_install.py (in-process moto, the RabbitMQ emulator, the fake SQL server), with the
vault the fake password-manager program of tests/fake_password_manager.py (a program, run as kprov runs
any password manager: no component of a real one is faked).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode
from kensium_provision.records.clients import get_client, put_record
from kensium_provision.runtime import Runtime
from kensium_provision.secret import Secret
from kensium_provision.vault.backends import CommandVault
from tests.test_client_install import World, build_estate, reset_broker

if TYPE_CHECKING:
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]

FAKE_PM = Path(__file__).with_name("fake_password_manager.py")


def printing_id_vault(directory: Path) -> CommandVault:
    """A password manager whose store prints the new entry's id (as `op item create` or `bw create` do)."""
    manager = [sys.executable, str(FAKE_PM), "--dir", str(directory)]
    return CommandVault([*manager, "--print-id", "store", "{name}"], [*manager, "fetch", "{name}"])


@dataclass
class CommandWorld(World):
    """The client-install world with the `command` password manager instead of Secrets Manager."""

    vault: Any = None

    def runtime(self, mode: Mode, operator: Any) -> Runtime:
        made = super().runtime(mode, operator)
        rabbitmq = {**dict(made.settings["rabbitmq"]),  # type: ignore[call-overload]
                    "admin_secret": self.vault.find("rabbitmq-local/admin")}
        return replace(made, vault=self.vault, settings={**made.settings, "rabbitmq": rabbitmq})


@pytest.fixture
def command_world(emulated_rabbitmq: Broker, aws: None, tmp_path: Path) -> Iterator[CommandWorld]:
    reset_broker(emulated_rabbitmq)
    world = CommandWorld(broker=emulated_rabbitmq, vault=printing_id_vault(tmp_path))
    build_estate(world)
    for name, value in (("mq-POS-01/admin", "sandbox-admin-password"), ("db-POS-01/master", "Sandbox-Master-1"),
                        ("rabbitmq-local/admin", emulated_rabbitmq.admin_password)):
        world.vault.store(name, Secret(value), description="", tags={})  # the shared estate's, as in Secrets Manager
    yield world
    reset_broker(emulated_rabbitmq)


def test_check_client_passes_after_an_install_with_a_store_that_prints_ids(command_world: CommandWorld) -> None:
    first = command_world.install()
    assert first.exit_code is ExitCode.OK, first.error or [f.message for f in first.findings]
    record = get_client(command_world.client("dynamodb"), "acme")
    assert record is not None
    assert record.secrets == {"sql_login": "command:acme/sql-login", "rabbitmq_user": "command:acme/rabbitmq-hub"}
    assert all(command_world.vault.find(ref.removeprefix("command:")) == ref for ref in record.secrets.values())
    check = command_world.check()
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]


def test_store_and_find_give_one_reference_and_old_id_references_still_read(tmp_path: Path) -> None:
    vault = printing_id_vault(tmp_path)
    secret = Secret("Canonical-Ref-1")
    stored = vault.store("acme/sql-login", secret, description="", tags={})
    assert stored == vault.find("acme/sql-login") == "command:acme/sql-login"
    legacy = "command:acme/sql-login#id-1"  # what kprov recorded before this fix
    assert vault.fetch(legacy) == secret
    assert vault.canonical(legacy) == vault.canonical(stored) == stored


def test_a_record_written_before_the_fix_passes_check_too(command_world: CommandWorld) -> None:
    first = command_world.install()
    assert first.exit_code is ExitCode.OK, first.error or [f.message for f in first.findings]
    dynamodb = command_world.client("dynamodb")
    record = get_client(dynamodb, "acme")
    assert record is not None
    legacy = {key: f"{ref}#id-{n}" for n, (key, ref) in enumerate(sorted(record.secrets.items()), start=4)}
    put_record(dynamodb, replace(record, secrets=legacy))  # as kprov wrote it with a store that printed ids
    check = command_world.check()
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]


def test_the_fleet_checks_snapshot_vault_compares_through_the_run_vault() -> None:
    """`check client --all` wraps the run's vault (fleet.facts.SnapshotVault): references compare as it says."""
    from typing import cast

    from kensium_provision.fleet.facts import SnapshotVault
    from kensium_provision.fleet.snapshot import Snapshot
    from kensium_provision.vault.backends import canonical_reference

    inner = CommandVault(["true", "{name}"], ["true", "{name}"])
    wrapped = SnapshotVault(inner, cast(Snapshot, None), "qa")  # canonical never reads the snapshot
    assert canonical_reference(wrapped, "command:acme/sql-login#id-4") == "command:acme/sql-login"
