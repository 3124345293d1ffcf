"""Rotation of the shared resources' credentials (issue 18.2): checklists/shared/rotate-{rds,rabbitmq}.yaml.

The world is the client install's estate (tests/test_client_install.build_estate) under moto in process, with
Secrets Manager as the password manager. The RDS master password is read back from moto's own record of the
instance (this process hosts it), and SQL Server is a fake DB-API connection (no SQL Server runs here) that
takes the master's login only with the password moto's instance holds, as RDS would. The broker admin is
rotated on a real rabbitmq-server (and on the emulator), reached through the management API as a config's
`rabbitmq.base_url` would point kprov at it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from kensium_provision.checklist.answers import Answers, AnswersOperator
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.errors import ExitCode, StepError
from kensium_provision.model import Mode
from kensium_provision.naming.loader import load_rules
from kensium_provision.rabbitmq.management import ManagementClient, RabbitMQError
from kensium_provision.runtime import NullJournal
from kensium_provision.secret import Secret
from kensium_provision.steps import rotation
from tests.rabbitmq_fixtures import Broker
from tests.test_client_install import build_estate, reset_broker
from tests.test_rotate import PasswordSqlServer, RotationWorld

pytest_plugins = ["rabbitmq_fixtures"]

SHARED = CHECKLISTS_DIR / "shared"
ACCOUNT, REGION = "123456789012", "us-east-1"


def master_password(identifier: str = "db-pos-01") -> str:
    """What moto's instance holds as its master password (this process hosts moto)."""
    from moto.rds.models import rds_backends

    return str(rds_backends[ACCOUNT][REGION].databases[identifier]._master_user_password)  # its getter refuses


class MasterSqlServer(PasswordSqlServer):
    """The fake SQL Server, whose master login takes only the password RDS (moto) holds for the instance."""

    def connect(self, *, server: str, port: int, user: str, password: Secret) -> PasswordSqlServer:
        if user == "admin":
            if password.reveal() != master_password():
                raise StepError(f"cannot connect to SQL Server {server}:{port} as {user}: Login failed")
            self.connected_as.append(user)
            return self
        return super().connect(server=server, port=port, user=user, password=password)


class SharedWorld(RotationWorld):
    def rotate_shared(self, which: str, name: str, mode: Mode = Mode.APPLY, *,
                      settings: Mapping[str, object] | None = None, sleep: Any = None) -> RunReport:
        """Run shared/rotate-WHICH for `name`; `settings` replace the world's (None values remove one)."""
        checklist = load_checklist(SHARED / f"rotate-{which}.yaml", rule_ids=load_rules().ids)
        rt = self.runtime(mode, AnswersOperator(Answers(values={}), assume_yes=True))
        self.journal = NullJournal()
        merged = {k: v for k, v in {**rt.settings, **(settings or {})}.items() if v is not None}
        rt = replace(rt, journal=self.journal, settings=merged, **({"sleep": sleep} if sleep else {}))
        values = resolve_inputs(checklist, rt, {"name": name})
        return run(checklist, rt, values, types=self.types())


@pytest.fixture
def estate(emulated_rabbitmq: Broker, aws: None, tmp_path: Any) -> Iterator[SharedWorld]:
    reset_broker(emulated_rabbitmq)
    w = SharedWorld(broker=emulated_rabbitmq, sql=MasterSqlServer())
    w.tmp = str(tmp_path)
    build_estate(w)
    yield w
    reset_broker(emulated_rabbitmq)


def _journal_has_no(world: SharedWorld, *values: str) -> None:
    text = json.dumps(world.journal.records, default=str)
    assert [v for v in values if v in text] == []


# --- the RDS master password -------------------------------------------------------------------------------


def test_the_rds_master_password_is_stored_then_set_then_checked_by_logging_in(estate: SharedWorld) -> None:
    old = estate.secret("db-POS-01/master")
    assert master_password() == old
    report = estate.rotate_shared("rds", "db-POS-01")
    assert report.exit_code is ExitCode.OK, report.error
    new = estate.secret("db-POS-01/master")
    assert new != old and master_password() == new  # RDS holds what the password manager holds
    assert estate.secret("db-POS-01/master", "AWSPREVIOUS") == old
    assert str(report.values["verified_by"]).startswith("a SQL login as the master")
    assert "admin" in estate.sql.connected_as  # type: ignore[attr-defined]
    stored = [r for r in estate.journal.records if r["event"] == "credential.stored"]
    assert [r["entry"] for r in stored] == ["db-POS-01/master"]
    _journal_has_no(estate, old, new)


def test_without_a_sql_connection_rds_itself_says_the_new_master_password_is_applied(
        estate: SharedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    pending: list[bool] = []
    slept: list[float] = []
    real_describe, real_set = rotation.RdsRotateMaster._describe, rotation.RdsRotateMaster._set

    def describe(self: Any, ctx: Any, params: Any) -> Any:
        found = real_describe(self, ctx, params)
        if pending:  # as RDS answers right after the change, before it applies it
            return {**found, "DBInstanceStatus": "resetting-master-credentials",
                    "PendingModifiedValues": {"MasterUserPassword": "****"}}
        return found

    def set_pending(self: Any, *args: Any) -> None:
        pending.append(True)
        real_set(self, *args)

    def sleep(seconds: float) -> None:  # the run's clock: RDS applies it while kprov waits
        slept.append(seconds)
        pending.clear()

    monkeypatch.setattr(rotation.RdsRotateMaster, "_describe", describe)
    monkeypatch.setattr(rotation.RdsRotateMaster, "_set", set_pending)
    report = estate.rotate_shared("rds", "db-POS-01", settings={"sql": None}, sleep=sleep)
    assert report.exit_code is ExitCode.OK, report.error
    assert slept == [15.0]  # it waited for RDS once, then RDS said it is applied
    assert master_password() == estate.secret("db-POS-01/master")
    assert str(report.values["verified_by"]).startswith("RDS: the instance is usable with no pending")
    assert estate.sql.connected_as == []  # type: ignore[attr-defined]  # no SQL connection was configured


def test_an_interrupted_master_rotation_sets_the_stored_value_and_generates_nothing(
        estate: SharedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    old = estate.secret("db-POS-01/master")
    real_set = rotation.RdsRotateMaster._set

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # kill -9 between storing the new value and ModifyDBInstance

    monkeypatch.setattr(rotation.RdsRotateMaster, "_set", killed)
    with pytest.raises(KeyboardInterrupt):
        estate.rotate_shared("rds", "db-POS-01")
    stored = estate.secret("db-POS-01/master")
    assert stored != old and master_password() == old  # not set yet: the old value is the vault's previous
    monkeypatch.setattr(rotation.RdsRotateMaster, "_set", real_set)
    plan = estate.rotate_shared("rds", "db-POS-01", Mode.PLAN)
    assert next(r for r in plan.results if r.step_id == "rotate-master").reason.startswith("resume:")
    again = estate.rotate_shared("rds", "db-POS-01")
    assert again.exit_code is ExitCode.OK, again.error
    assert estate.secret("db-POS-01/master") == stored == master_password()  # nothing new was generated
    assert not [r for r in estate.journal.records if r["event"] == "credential.stored"]


# --- the broker admin ----------------------------------------------------------------------------------------


@pytest.fixture
def broker_admin(broker: Broker, estate: SharedWorld) -> tuple[SharedWorld, Broker]:
    """On `broker` (the real rabbitmq-server, then the emulator): the admin `admin` with the password the
    password manager holds as mq-POS-01/admin (build_estate stored it), as Amazon MQ makes it."""
    broker.client().put_user("admin", estate.secret("mq-POS-01/admin"), tags="administrator")
    return estate, broker


def _logs_in(broker: Broker, password: str) -> bool:
    try:
        ManagementClient(broker.base_url, "admin", password).whoami()
    except RabbitMQError as exc:
        if exc.status != 401:
            raise
        return False
    return True


def _rotate_admin(world: SharedWorld, broker: Broker, mode: Mode = Mode.APPLY) -> RunReport:
    # As a config's rabbitmq.base_url points kprov at a broker: no admin of the settings' own.
    return world.rotate_shared("rabbitmq", "mq-POS-01", mode, settings={"rabbitmq": {"base_url": broker.base_url}})


def test_the_broker_admin_is_rotated_through_the_management_api_the_old_value_kept(
        broker_admin: tuple[SharedWorld, Broker]) -> None:
    world, broker = broker_admin
    old = world.secret("mq-POS-01/admin")
    report = _rotate_admin(world, broker)
    assert report.exit_code is ExitCode.OK, report.error
    new = world.secret("mq-POS-01/admin")
    assert new != old and _logs_in(broker, new) and not _logs_in(broker, old)
    assert world.secret("mq-POS-01/admin-previous") == old  # kept before the entry changed
    user = broker.client().get_user("admin")
    assert user is not None and "administrator" in str(user["tags"])  # still the administrator
    _journal_has_no(world, old, new)


def test_an_interrupted_admin_rotation_logs_in_with_the_kept_value_to_set_the_stored_one(
        broker_admin: tuple[SharedWorld, Broker], monkeypatch: pytest.MonkeyPatch) -> None:
    world, broker = broker_admin
    old = world.secret("mq-POS-01/admin")
    real_set = rotation.RabbitMQRotateAdmin._set

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # kill -9 between storing the new value and setting it on the broker

    monkeypatch.setattr(rotation.RabbitMQRotateAdmin, "_set", killed)
    with pytest.raises(KeyboardInterrupt):
        _rotate_admin(world, broker)
    stored = world.secret("mq-POS-01/admin")
    # The broker still takes only the old value, which the password manager still holds (-previous).
    assert not _logs_in(broker, stored) and _logs_in(broker, old)
    assert world.secret("mq-POS-01/admin-previous") == old
    monkeypatch.setattr(rotation.RabbitMQRotateAdmin, "_set", real_set)
    again = _rotate_admin(world, broker)
    assert again.exit_code is ExitCode.OK, again.error
    assert world.secret("mq-POS-01/admin") == stored and _logs_in(broker, stored) and not _logs_in(broker, old)


def test_a_dry_run_admin_rotation_changes_nothing(broker_admin: tuple[SharedWorld, Broker]) -> None:
    world, broker = broker_admin
    old = world.secret("mq-POS-01/admin")
    plan = _rotate_admin(world, broker, Mode.PLAN)
    assert plan.exit_code is ExitCode.OK, plan.error
    assert world.secret("mq-POS-01/admin") == old and _logs_in(broker, old)
    assert world.client("secretsmanager").list_secrets(
        Filters=[{"Key": "name", "Values": ["kprov/sandbox/mq-POS-01/admin-previous"]}])["SecretList"] == []
