"""Credential rotation (issue 18.2): checklists/client/rotate.yaml after the client install, under moto.

The world is the client install's (test_client_install): moto in process, the RabbitMQ emulator, Secrets
Manager as the password manager, and SQL Server as a fake DB-API connection (no SQL Server runs here) that
keeps each login's password, so a login with the wrong one is refused as a driver would refuse it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from kensium_provision.checklist.answers import Answers, AnswersOperator
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.checklist.schema import load_checklist
from kensium_provision.engine.run import RunReport, resolve_inputs, run
from kensium_provision.errors import ExitCode, InputError, StepError
from kensium_provision.model import Mode, Status
from kensium_provision.naming.loader import load_rules
from kensium_provision.records.clients import get_client
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.secret import Secret
from kensium_provision.steps import rotation
from kensium_provision.steps.rotation import password_matches
from tests.test_client_install import build_estate, reset_broker
from tests.test_remove_client import REMOVE_EXAMPLE, RemovalWorld, RemovingSqlServer, with_native_backup

if TYPE_CHECKING:
    from tests.conftest import Kprov
    from tests.rabbitmq_fixtures import Broker

pytest_plugins = ["rabbitmq_fixtures"]

ROTATE = CHECKLISTS_DIR / "client" / "rotate.yaml"
CONFIRM = {"tenant-connection-string": True, "pos-hub-settings": True, "pos-aws-settings": True}


def _unquoted(text: str) -> str:
    return text.replace("''", "'")


class PasswordSqlServer(RemovingSqlServer):
    """The removal's fake, plus each login's password: CREATE/ALTER LOGIN set it, a login with another is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[str, str] = {}
        self.connected_as: list[str] = []

    def connect(self, *, server: str, port: int, user: str, password: Secret) -> PasswordSqlServer:
        if user in self.passwords:
            if self.passwords[user] != password.reveal():  # what sql._open makes of a driver's login failure
                raise StepError(f"cannot connect to SQL Server {server}:{port} as {user}: Login failed")
            self.connected_as.append(user)
            return self
        return super().connect(server=server, port=port, user=user, password=password)  # type: ignore[return-value]

    def execute(self, sql: str) -> None:
        m = re.search(r"(CREATE|ALTER) LOGIN \[([^\]]+)\] WITH PASSWORD = N'((?:[^']|'')*)'", sql)
        if m and (m[1] == "ALTER" or m[2] not in self.passwords):  # a CREATE is guarded by IF NOT EXISTS
            self.passwords[m[2]] = _unquoted(m[3])
        super().execute(sql)


class RotationWorld(RemovalWorld):
    journal: NullJournal

    def rotate(self, credential: str, mode: Mode = Mode.APPLY, org_id: str = "acme", **answers: object) -> RunReport:
        checklist = load_checklist(ROTATE, rule_ids=load_rules().ids)
        rt: Runtime = self.runtime(mode, AnswersOperator(Answers(values={}, confirm=dict(CONFIRM)), assume_yes=True))
        self.journal = NullJournal()
        rt = Runtime(**{**{f: getattr(rt, f) for f in rt.__dataclass_fields__}, "journal": self.journal})
        values = resolve_inputs(checklist, rt, {"org_id": org_id, "credential": credential, **answers})
        return run(checklist, rt, values, types=self.types())

    def access_keys(self, user: str = "rms_acme") -> dict[str, str]:
        """The user's access keys: id -> Active/Inactive."""
        listed = self.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
        return {str(k["AccessKeyId"]): str(k["Status"]) for k in listed}

    def secret(self, name: str, stage: str = "AWSCURRENT") -> str:
        found = self.client("secretsmanager").get_secret_value(SecretId=f"kprov/sandbox/{name}", VersionStage=stage)
        return str(found["SecretString"])

    def rabbit_user(self) -> Mapping[str, object]:
        found = self.broker.client().get_user("rms_acme")
        assert found is not None
        return found


@pytest.fixture
def world(emulated_rabbitmq: Broker, aws: None, tmp_path: Any) -> Iterator[RotationWorld]:
    reset_broker(emulated_rabbitmq)
    w = RotationWorld(broker=emulated_rabbitmq, sql=PasswordSqlServer())
    w.tmp = str(tmp_path)
    build_estate(w)
    installed = w.install()
    assert installed.exit_code is ExitCode.OK, installed.error
    yield w
    reset_broker(emulated_rabbitmq)


def statuses(report: RunReport) -> dict[str, Status]:
    return {r.step_id: r.status for r in report.results}


def _no_value_in_journal(world: RotationWorld, *values: str) -> None:
    text = json.dumps(world.journal.records, default=str)
    for value in values:
        assert value not in text


# --- the hub RabbitMQ user -------------------------------------------------------------------------------


def test_rotating_the_rabbitmq_user_stores_first_then_sets_then_records(world: RotationWorld) -> None:
    old = world.secret("acme/rabbitmq-hub")
    assert password_matches(world.rabbit_user(), old)
    report = world.rotate("rabbitmq-user")
    assert report.exit_code is ExitCode.OK, report.error
    new = world.secret("acme/rabbitmq-hub")
    assert new != old and world.secret("acme/rabbitmq-hub", "AWSPREVIOUS") == old  # the old one is kept
    user = world.rabbit_user()
    assert password_matches(user, new) and not password_matches(user, old)
    record = get_client(world.client("dynamodb"), "acme")
    assert record is not None and record.secrets["rabbitmq_user"] == report.values["rabbitmq_user_ref"]
    assert world.client("secretsmanager").get_secret_value(SecretId=record.secrets["rabbitmq_user"].split("#")[0],
                                                           VersionId=record.secrets["rabbitmq_user"].split("#")[1],
                                                           )["SecretString"] == new
    stored = [r for r in world.journal.records if r["event"] == "credential.stored"]
    assert [r["entry"] for r in stored] == ["acme/rabbitmq-hub"] and str(stored[0]["reference"]).startswith("arn:")
    _no_value_in_journal(world, old, new)
    check = world.check()  # the install's check agrees with the rotated state
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]


def test_an_interrupted_rotation_resumes_with_the_stored_value_and_no_lockout(
        world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    old = world.secret("acme/rabbitmq-hub")
    real_set = rotation.RabbitMQRotateUser._set

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # kill -9 between storing the new value and setting it

    monkeypatch.setattr(rotation.RabbitMQRotateUser, "_set", crash)
    with pytest.raises(KeyboardInterrupt):
        world.rotate("rabbitmq-user")
    stored = world.secret("acme/rabbitmq-hub")
    assert stored != old
    # No lockout: the broker still takes the old value, which the password manager still holds.
    assert password_matches(world.rabbit_user(), old) and world.secret("acme/rabbitmq-hub", "AWSPREVIOUS") == old

    monkeypatch.setattr(rotation.RabbitMQRotateUser, "_set", real_set)
    plan = world.rotate("rabbitmq-user", Mode.PLAN)
    rotating = next(r for r in plan.results if r.step_id == "rotate-rabbitmq-user")
    assert rotating.reason.startswith("resume:")
    again = world.rotate("rabbitmq-user")
    assert again.exit_code is ExitCode.OK, again.error
    assert world.secret("acme/rabbitmq-hub") == stored  # nothing new was generated
    assert password_matches(world.rabbit_user(), stored)
    assert not [r for r in world.journal.records if r["event"] == "credential.stored"]


def test_a_dry_run_rotation_changes_nothing(world: RotationWorld) -> None:
    old, before = world.secret("acme/rabbitmq-hub"), world.rabbit_user()["password_hash"]
    world.acts.clear()
    plan = world.rotate("rabbitmq-user", Mode.PLAN)
    assert plan.exit_code is ExitCode.OK, plan.error
    assert world.acts == [] and world.mutating_calls() == []
    assert world.secret("acme/rabbitmq-hub") == old and world.rabbit_user()["password_hash"] == before
    assert statuses(plan)["rotate-rabbitmq-user"] is Status.CHANGE


# --- the SQL login ---------------------------------------------------------------------------------------


def test_rotating_the_sql_login_checks_the_new_password_by_logging_in(world: RotationWorld) -> None:
    sql: PasswordSqlServer = world.sql  # type: ignore[assignment]
    old = world.secret("acme/sql-login")
    assert sql.passwords["POS_acme_user"] == old
    report = world.rotate("sql-login")
    assert report.exit_code is ExitCode.OK, report.error
    new = world.secret("acme/sql-login")
    assert new != old and sql.passwords["POS_acme_user"] == new
    assert world.secret("acme/sql-login", "AWSPREVIOUS") == old
    assert "POS_acme_user" in sql.connected_as  # checked as the login itself
    record = get_client(world.client("dynamodb"), "acme")
    assert record is not None and record.secrets["sql_login"] == report.values["sql_login_ref"]
    _no_value_in_journal(world, old, new)


def test_a_removed_client_is_not_rotated(world: RotationWorld) -> None:
    with_native_backup(world)
    world.client("s3").create_bucket(Bucket="kensium-pos-backups")
    assert world.remove(answers=REMOVE_EXAMPLE).exit_code is ExitCode.OK
    with pytest.raises(InputError, match="a removed client's credentials are not rotated") as refused:
        world.rotate("sql-login")
    assert refused.value.exit_code is ExitCode.INVALID


# --- the IAM access key ---------------------------------------------------------------------------------


def _stored_key(world: RotationWorld) -> tuple[str, str]:
    key_id, _, secret = world.secret("acme/iam-access-key").partition(":")
    return key_id, secret


def test_rotating_the_access_key_stores_and_checks_the_new_key_before_the_old_one_stops(world: RotationWorld) -> None:
    (old_id, status), = world.access_keys().items()
    old_value = world.secret("acme/iam-access-key")  # the install stores <AccessKeyId>:<SecretAccessKey>
    assert status == "Active" and old_value.startswith(f"{old_id}:")
    old_secret = old_value.partition(":")[2]
    report = world.rotate("iam-access-key")
    assert report.exit_code is ExitCode.OK, report.error
    new_id, new_secret = _stored_key(world)
    assert new_id != old_id and new_secret != old_secret
    assert world.access_keys() == {old_id: "Inactive", new_id: "Active"}  # kept inactive through the grace period
    assert world.secret("acme/iam-access-key-previous") == old_value  # readable until deleted
    import boto3  # the new key signs in as the user (moto answers by the key id)

    signed = boto3.client("sts", region_name="us-east-1", aws_access_key_id=new_id, aws_secret_access_key=new_secret)
    assert signed.get_caller_identity()["Arn"].endswith("/rms_acme")
    assert report.values["iam_key_ref"] == world.client("secretsmanager").describe_secret(
        SecretId="kprov/sandbox/acme/iam-access-key")["ARN"] + "#" + str(report.values["iam_key_ref"]).split("#")[1]
    tags = world.client("iam").list_user_tags(UserName="rms_acme")["Tags"]
    assert not [t for t in tags if t["Key"].startswith("kprov:key-rotation")]  # the rotation is over
    _no_value_in_journal(world, old_secret, new_secret)
    check = world.check()
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]


def test_a_user_with_two_keys_is_rotated_only_after_the_old_one_goes(world: RotationWorld) -> None:
    assert world.rotate("iam-access-key").exit_code is ExitCode.OK
    first_old, = (k for k, s in world.access_keys().items() if s == "Inactive")
    current_id, _ = _stored_key(world)
    # Within the grace period the old key stays: a second rotation has no room and changes nothing.
    with pytest.raises(InputError, match="already has two access keys") as refused:
        world.rotate("iam-access-key")
    assert refused.value.exit_code is ExitCode.INVALID
    assert world.access_keys() == {first_old: "Inactive", current_id: "Active"}
    # Retiring it before its grace is over does nothing, unless asked explicitly.
    kept = world.rotate("iam-old-key")
    assert kept.exit_code is ExitCode.OK and first_old in world.access_keys()
    assert statuses(kept)["retire-old-key"] is Status.DONE
    assert world.rotate("iam-old-key", grace_days=0).exit_code is ExitCode.OK  # its grace is over
    assert world.access_keys() == {current_id: "Active"}
    # Asked explicitly, the old key goes at once and the rotation goes on.
    assert world.rotate("iam-access-key").exit_code is ExitCode.OK
    second_id, _ = _stored_key(world)
    again = world.rotate("iam-access-key", delete_old_key=True)
    assert again.exit_code is ExitCode.OK, again.error
    third_id, _ = _stored_key(world)
    assert world.access_keys() == {second_id: "Inactive", third_id: "Active"}


def test_a_dry_run_access_key_rotation_changes_nothing(world: RotationWorld) -> None:
    before, stored = world.access_keys(), world.secret("acme/iam-access-key")
    world.acts.clear()
    plan = world.rotate("iam-access-key", Mode.PLAN, delete_old_key=True)
    assert plan.exit_code is ExitCode.OK, plan.error
    assert world.acts == [] and world.mutating_calls() == []
    assert world.access_keys() == before and world.secret("acme/iam-access-key") == stored
    assert statuses(plan)["rotate-access-key"] is Status.CHANGE


def test_an_active_key_the_password_manager_does_not_hold_is_never_touched(world: RotationWorld) -> None:
    assert world.rotate("iam-access-key").exit_code is ExitCode.OK  # the entry now names its key
    assert world.rotate("iam-old-key", delete_old_key=True).exit_code is ExitCode.OK
    other = world.client("iam").create_access_key(UserName="rms_acme")["AccessKey"]["AccessKeyId"]  # by hand
    before = world.access_keys()
    assert len(before) == 2
    with pytest.raises(InputError, match=f"another active access key, {other}"):
        world.rotate("iam-access-key", delete_old_key=True)
    assert world.access_keys() == before


def test_a_rotation_killed_before_storing_its_new_key_deletes_that_key_on_resume(
        world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    (old_id, _), = world.access_keys().items()
    old_value = world.secret("acme/iam-access-key")

    def killed(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt  # kill -9 between CreateAccessKey and the vault's update

    real = rotation._update
    calls: list[str] = []

    def update(ctx: Any, entry: str, secret: Any) -> str:
        calls.append(entry)
        if calls.count("acme/iam-access-key") == 1:  # the -previous is kept by its own entry's update
            return killed()
        return real(ctx, entry, secret)

    monkeypatch.setattr(rotation, "_update", update)
    with pytest.raises(KeyboardInterrupt):
        world.rotate("iam-access-key")
    orphan = next(k for k in world.access_keys() if k != old_id)  # made, its secret never stored
    assert world.access_keys() == {old_id: "Active", orphan: "Active"}
    assert world.secret("acme/iam-access-key") == old_value  # still the working key
    monkeypatch.setattr(rotation, "_update", real)
    again = world.rotate("iam-access-key")
    assert again.exit_code is ExitCode.OK, again.error
    new_id, _ = _stored_key(world)
    assert orphan not in world.access_keys() and world.access_keys() == {old_id: "Inactive", new_id: "Active"}


def test_a_rotation_killed_after_storing_finishes_without_a_new_key(
        world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    (old_id, _), = world.access_keys().items()

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # kill -9 after the new key is stored, before the old one is deactivated

    real = rotation.IamRotateAccessKey._deactivate
    monkeypatch.setattr(rotation.IamRotateAccessKey, "_deactivate", killed)
    with pytest.raises(KeyboardInterrupt):
        world.rotate("iam-access-key")
    new_id, _ = _stored_key(world)
    assert world.access_keys() == {old_id: "Active", new_id: "Active"}  # both work: nobody is locked out
    monkeypatch.setattr(rotation.IamRotateAccessKey, "_deactivate", real)
    plan = world.rotate("iam-access-key", Mode.PLAN)
    assert next(r for r in plan.results if r.step_id == "rotate-access-key").reason.startswith("resume:")
    again = world.rotate("iam-access-key")
    assert again.exit_code is ExitCode.OK, again.error
    assert _stored_key(world)[0] == new_id and world.access_keys() == {old_id: "Inactive", new_id: "Active"}


def test_a_rotation_killed_before_its_tag_went_finishes_without_a_new_key(
        world: RotationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    (old_id, _), = world.access_keys().items()
    real = rotation.IamRotateAccessKey._deactivate

    def deactivate_then_killed(self: Any, ctx: Any, user: str, key_id: str) -> None:
        ctx.client("iam").update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
        raise KeyboardInterrupt  # kill -9 after the old key was deactivated, before the rotation tag went

    monkeypatch.setattr(rotation.IamRotateAccessKey, "_deactivate", deactivate_then_killed)
    with pytest.raises(KeyboardInterrupt):
        world.rotate("iam-access-key")
    new_id, _ = _stored_key(world)
    assert world.access_keys() == {old_id: "Inactive", new_id: "Active"}
    monkeypatch.setattr(rotation.IamRotateAccessKey, "_deactivate", real)
    plan = world.rotate("iam-access-key", Mode.PLAN)
    assert next(r for r in plan.results if r.step_id == "rotate-access-key").reason.startswith("resume:")
    again = world.rotate("iam-access-key")
    assert again.exit_code is ExitCode.OK, again.error
    assert _stored_key(world)[0] == new_id and world.access_keys() == {old_id: "Inactive", new_id: "Active"}
    tags = world.client("iam").list_user_tags(UserName="rms_acme")["Tags"]
    assert not [t for t in tags if t["Key"].startswith("kprov:key-rotation")]


# --- the command line ----------------------------------------------------------------------------------


def test_rotate_refuses_what_it_has_no_rotation_for(kprov: Kprov) -> None:
    assert kprov("rotate", "acme", "tenant").code == ExitCode.USAGE
    assert kprov("rotate", "acme", "sql", "--credential", "master").code == ExitCode.USAGE
    assert kprov("rotate", "shared", "ec2").code == ExitCode.USAGE
    wrong = kprov("rotate", "shared", "rds", "--credential", "admin")
    assert wrong.code == ExitCode.USAGE and "master" in wrong.err
    # Which instance is the checklist's input: without a terminal or an answer, refused before anything is done.
    unanswered = kprov("rotate", "shared", "rds")
    assert unanswered.code == ExitCode.INVALID and "missing answer: name" in unanswered.err
