"""Step types of credential rotation (`kprov rotate`, checklists/client/rotate.yaml; issue 18.2).

The order never locks anyone out: a new value is generated, then stored as the entry's new current version in
the password manager (the vault's `update`: Secrets Manager keeps the old one as AWSPREVIOUS), and only then
set on the service, which is when the old value stops working; then kprov checks the new value works there.
An interrupted rotation resumes from what it finds: when the password manager's current value does not work
on the service, an earlier run stored it and stopped before setting it, so it is set now and nothing new is
generated. The journal holds references only; the values never leave the Secret wrapper.

- `rabbitmq.rotate-user`: the hub user's password (set with the management API as the broker admin, checked
  against the user's password hash as the broker stores it);
- `sql.rotate-login`: the SQL login's password (ALTER LOGIN over the configured SQL connection, checked by
  logging in as the login; without a connection, a script the operator runs);
- `client.record-secret`: the client record's reference to the entry, and when it was rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from kensium_provision.errors import StepError
from kensium_provision.records.clients import UNREADABLE, get_client, record_name, utc_now
from kensium_provision.steps.base import Difference, Param, Probe, StepContext
from kensium_provision.steps.client_record import _put, records_table
from kensium_provision.steps.facts import facts
from kensium_provision.steps.rabbitmq_vhost import _names as vhost_names
from kensium_provision.steps.rabbitmq_vhost import management_client
from kensium_provision.steps.sql import (
    CONNECTION_PARAMS,
    SqlScript,
    checked_name,
    connection,
    password_placeholder,
    quote_identifier,
    quote_string,
    run_batches,
    run_by_hand,
)

__all__ = [
    "STEP_TYPES",
    "ClientRecordSecret",
    "RabbitMQRotateUser",
    "SqlRotateLogin",
    "password_matches",
    "rotate_login_script",
]

# RabbitMQ stores base64(salt + hash(salt + utf-8 password)) with a 32-bit salt, the hash named by the user's
# hashing_algorithm (https://www.rabbitmq.com/docs/passwords#computing-password-hash).
_RABBIT_HASHES = {"rabbit_password_hashing_sha256": "sha256", "rabbit_password_hashing_sha512": "sha512",
                  "rabbit_password_hashing_md5": "md5"}
_SALT = 4


def password_matches(user: Mapping[str, object], password: str) -> bool:
    """Whether `password` is the one a RabbitMQ user record (GET /api/users/NAME) holds the hash of."""
    algorithm = _RABBIT_HASHES.get(str(user.get("hashing_algorithm") or "rabbit_password_hashing_sha256"))
    try:
        raw = base64.b64decode(str(user.get("password_hash") or ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    if algorithm is None or len(raw) <= _SALT:
        return False
    digest = hashlib.new(algorithm, raw[:_SALT] + password.encode()).digest()
    return hmac.compare_digest(digest, raw[_SALT:])


def _update(ctx: StepContext, entry: str, secret: Any) -> str:
    """Store `secret` as the entry's new current value (the vault keeps the old as its previous version)."""
    update = getattr(ctx.runtime.vault, "update", None)
    if not callable(update):
        raise StepError(f"the password manager ({type(ctx.runtime.vault).__name__}) cannot update {entry}",
                        hint="rotate with a backend that updates entries (secretsmanager, keepassxc, pass)")
    return str(update(entry, secret))


def _stored(ctx: StepContext, entry: str) -> tuple[str, Any]:
    """The entry's reference and current value; a rotation needs one to start from."""
    reference = ctx.runtime.vault.find(entry)
    if reference is None:
        raise StepError(f"the password manager has no entry {entry}: nothing to rotate",
                        hint="the install stores it; kprov check client shows what is missing")
    return reference, ctx.runtime.vault.fetch(reference)


class _Rotation:
    """What both rotations share: probe for an interrupted rotation, then store -> set -> verify."""

    policy: ClassVar[str]

    def _entry(self, params: Mapping[str, Any]) -> str:
        return str(params["secret_name"])

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        """Whether the service accepts `secret`; None when kprov cannot tell (no connection)."""
        raise NotImplementedError

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str) -> None:
        raise NotImplementedError

    def _what(self, params: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        entry, what = self._entry(params), self._what(params)
        reference, current = _stored(ctx, entry)
        works = self._works(ctx, params, current)
        desired = {"entry": entry, "stored first": "the new value, as the entry's current version", "then": what}
        if works is False:
            return Probe(done=False, current={"entry": reference}, desired=desired,
                         note=f"resume: {entry}'s current value is not set on {what} yet (an earlier rotation "
                              "stored it): it is set now, nothing new is generated")
        return Probe(done=False, current={"entry": reference}, desired=desired,
                     note=f"will generate a new password, store it as {entry}, then set it on {what}")

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import generate_password

        entry, what = self._entry(params), self._what(params)
        old_reference, current = _stored(ctx, entry)
        if self._works(ctx, params, current) is False:
            secret, reference = current, old_reference  # resume: the stored value wins, never a new one
        else:
            secret = generate_password(self.policy)
            reference = _update(ctx, entry, secret)  # stored before the old value stops working
            ctx.runtime.journal.record("credential.stored", entry=entry, reference=reference, previous=old_reference)
        ctx.progress(f"setting the new password on {what}")
        self._set(ctx, params, secret, reference)
        if self._works(ctx, params, secret) is False:
            raise StepError(f"{what} does not accept the new password stored as {entry}",
                            hint=f"the previous value is still in the password manager ({old_reference}); run "
                                 "the rotation again to set the stored one")
        return {"secret_ref": reference, "previous_ref": old_reference, "rotated": utc_now()}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        reference, current = _stored(ctx, self._entry(params))
        if self._works(ctx, params, current) is False:
            return (Difference(f"{self._what(params)} password", "not the stored one", reference),)
        return ()


class RabbitMQRotateUser(_Rotation):
    """Rotate an organization's RabbitMQ user's password (the hub user of `rabbitmq.vhost`).

    Set as the broker admin (PUT /api/users/NAME keeps the user's tags); checked against the hash the broker
    stores for the user (GET /api/users/NAME), since a user without management tags cannot log in to the API.
    Outputs: secret_ref (the new reference), previous_ref, rotated (when).
    """

    name: ClassVar[str] = "rabbitmq.rotate-user"
    summary: ClassVar[str] = "Rotate a RabbitMQ user's password: stored first, then set, then checked."
    policy = "rabbitmq-user"
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="broker", required=False, doc="Amazon MQ broker name (mq-POS-01); its console URL is used."),
        Param(name="base_url", required=False, doc="Management API URL, instead of the broker lookup."),
        Param(name="vhost", doc="The user's vhost (for the name check only)."),
        Param(name="user", doc="The user, e.g. rms_acme; never the broker admin."),
        Param(name="admin_user", required=False, doc="The broker admin (default: settings, else admin)."),
        Param(name="admin_secret", doc="Password-manager reference of the broker admin's password."),
        Param(name="secret_name", doc="The user's password-manager entry, e.g. acme/rabbitmq-hub."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("secret_ref", "previous_ref", "rotated")

    def _what(self, params: Mapping[str, Any]) -> str:
        return f"RabbitMQ user {params['user']}"

    def _user(self, ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, object]:
        _, user = vhost_names(ctx, params)
        found = management_client(ctx, params).get_user(user)
        if found is None:
            raise StepError(f"RabbitMQ user {user} does not exist: nothing to rotate",
                            hint="kprov install-client makes it (or check client shows why it is missing)")
        return found

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        return password_matches(self._user(ctx, params), secret.reveal())

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str) -> None:
        found = self._user(ctx, params)
        tags = found.get("tags") or ()
        management_client(ctx, params).put_user(str(found["name"]), secret,
                                                tags=[str(t) for t in tags] if isinstance(tags, list | tuple)
                                                else str(tags))


def rotate_login_script(login: str, password: str) -> SqlScript:
    """A new password for an existing SQL login (its other options stay)."""
    return SqlScript(("SET NOCOUNT ON;\nUSE [master];\n"
                      f"ALTER LOGIN {quote_identifier(login)} WITH PASSWORD = {quote_string(password)};",))


class SqlRotateLogin(_Rotation):
    """Rotate a SQL Server login's password (the client login of `sql.login`).

    With a SQL connection configured: ALTER LOGIN as the RDS master, then a login as the login itself with the
    new password. Without one, the operator runs the script shown (the password as a placeholder naming its
    entry) and confirms; kprov cannot check it then. Outputs: secret_ref, previous_ref, rotated.
    """

    name: ClassVar[str] = "sql.rotate-login"
    summary: ClassVar[str] = "Rotate a SQL Server login's password: stored first, then set, then checked."
    policy = "sql-login"
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="login", doc="The login, e.g. POS_acme_user."),
        Param(name="rule", doc="Its naming rule, e.g. client-login."),
        Param(name="secret_name", doc="The login's password-manager entry, e.g. acme/sql-login."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("secret_ref", "previous_ref", "rotated")

    def _what(self, params: Mapping[str, Any]) -> str:
        return f"SQL login {params['login']}"

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        login = checked_name(ctx, params, "login", "rule")
        settings = ctx.runtime.settings.get("sql")
        if not isinstance(settings, Mapping) or not (settings.get("driver") or callable(settings.get("connect"))):
            return None
        # The configured connection, logged in as the login itself with `secret` (a driver's refusal is a StepError).
        as_login = StepContext(replace(ctx.runtime, vault=_OneSecret(secret)), ctx.step_id, ctx.values)
        try:
            with connection(as_login, {**params, "admin_user": login, "admin_password_ref": "rotated"}):
                return True
        except StepError:
            return False

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str) -> None:
        login = checked_name(ctx, params, "login", "rule")
        with connection(ctx, params) as conn:
            if conn is None:
                shown = rotate_login_script(login, password_placeholder(reference))
                run_by_hand(ctx, params, shown, extra=f", replacing the placeholder with the password stored as "
                                                      f"{reference}")
                return
            run_batches(conn, [secret.derive(lambda value: rotate_login_script(login, value).batches[0])], ctx.step_id)


class _OneSecret:
    """A vault of one value: what `sql.connection` fetches to log in as the rotated login (reads only)."""

    def __init__(self, secret: Any) -> None:
        self._secret = secret

    def fetch(self, reference: str) -> Any:
        return self._secret

    def find(self, name: str) -> str | None:
        return None

    def store(self, name: str, secret: Any, *, description: str, tags: Mapping[str, str]) -> str:
        raise StepError("checking a rotated login stores nothing")


class ClientRecordSecret:
    """Point the client record's reference to a rotated entry at its new version.

    `key` names the record's `secrets` entry (sql_login, rabbitmq_user). When it was rotated is the password
    manager's (the version's date) and the journal's (`credential.stored`): the record holds what the install's
    own check compares, and a rotation leaves that check clean. Done when the record already holds the
    reference. Outputs: record.
    """

    name: ClassVar[str] = "client.record-secret"
    summary: ClassVar[str] = "Record a rotated credential's new reference (and its date) in the client record."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="org_id", rule="org-id", doc="The organization id."),
        Param(name="key", choices=("sql_login", "rabbitmq_user", "iam_access_key"), doc="The secrets entry."),
        Param(name="reference", doc="The new password-manager reference (a rotation's secret_ref)."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("record",)

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        org_id, key, table = str(params["org_id"]), str(params["key"]), records_table(ctx)
        record = facts(ctx).client_record(ctx, org_id, table)
        held = record.secrets.get(key) if record is not None else None
        if held == params["reference"]:
            return Probe(done=True, note=f"the record holds the current reference of {key}",
                         outputs={"record": record_name(org_id, table)})
        return Probe(done=False, note=f"the record's {key} reference is the previous version",
                     differences=(Difference(f"secrets.{key}", held, params["reference"]),))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        org_id, key, table = str(params["org_id"]), str(params["key"]), records_table(ctx)
        record = get_client(ctx.client("dynamodb"), org_id, table)
        if record is None or record.status == UNREADABLE:
            raise StepError(f"the client record {record_name(org_id, table)} is gone or unreadable")
        now = utc_now()
        _put(ctx, replace(record, secrets={**record.secrets, key: str(params["reference"])}, updated=now,
                          run_id=ctx.runtime.run_id), claim=False)
        return {"record": record_name(org_id, table)}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        record = facts(ctx).client_record(ctx, str(params["org_id"]), records_table(ctx))
        held = record.secrets.get(str(params["key"])) if record is not None else None
        return () if held == params["reference"] else (Difference("reference", held, params["reference"]),)


STEP_TYPES = (RabbitMQRotateUser, SqlRotateLogin, ClientRecordSecret)
