"""Step types of credential rotation (`kprov rotate`, checklists/client/rotate.yaml; issue 18.2).

The order never locks anyone out: a new value is generated, then stored as the entry's new current version in
the password manager (the vault's `update`: Secrets Manager keeps the old one as AWSPREVIOUS) and read back from
it, and only then set on the service, which is when the old value stops working; then kprov checks the new
value works there.
An interrupted rotation resumes from what it finds: when the password manager's current value does not work
on the service, an earlier run stored it and stopped before setting it, so it is set now and nothing new is
generated. The journal holds references only; the values never leave the Secret wrapper.

- `rabbitmq.rotate-user`: the hub user's password (set with the management API as the broker admin, checked
  against the user's password hash as the broker stores it);
- `sql.rotate-login`: the SQL login's password (ALTER LOGIN over the configured SQL connection, checked by
  logging in as the login; without a connection, a script the operator runs);
- `rds.rotate-master`: an RDS instance's master password (ModifyDBInstance, applied immediately; checked by
  logging in over the configured SQL connection, else by RDS's own signal: the instance usable again with no
  pending master password change);
- `rabbitmq.rotate-admin`: a broker's admin password, through the management API (Amazon MQ's UpdateUser is for
  ActiveMQ users: RabbitMQ users are not in the Amazon MQ Users API); checked by logging in as the admin;
- `iam.rotate-access-key`: an IAM user's access key (create, store, check with sts, then deactivate the old one;
  the old one deleted once inactive for the grace period, or at once when asked; never the only working one);
- `client.record-secret`: the client record's reference to the entry, and when it was rotated.

Every rotation first keeps the old value as the entry `<owner>/<credential>-previous`: until the service takes
the new value the old one is the working credential, and KeePassXC's entry history and `pass` are not readable
as versions (Secrets Manager's AWSPREVIOUS is); the broker admin needs it to log in, and its lost password
cannot be reset.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from kensium_provision.aws.call import call, pages
from kensium_provision.aws.settle import until_key_accepted
from kensium_provision.errors import AwsError, InputError, StepError
from kensium_provision.model import Mode
from kensium_provision.rabbitmq.management import ManagementClient, RabbitMQError
from kensium_provision.records.clients import UNREADABLE, get_client, record_name, utc_now
from kensium_provision.steps.base import Difference, Param, Probe, StepContext
from kensium_provision.steps.client_record import records_table, write_record
from kensium_provision.steps.facts import facts
from kensium_provision.steps.iam import access_key_value
from kensium_provision.steps.rabbitmq_vhost import BROKER_PARAMS, checked_vhost_user, management_client, management_url
from kensium_provision.steps.rds import usable
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
    "IamRotateAccessKey",
    "RabbitMQRotateAdmin",
    "RabbitMQRotateUser",
    "RdsRotateMaster",
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
    return _read_back(ctx, entry, str(update(entry, secret)), secret)


def _read_back(ctx: StepContext, entry: str, reference: str, secret: Any) -> str:
    """`reference`, once the password manager gives back exactly `secret` from it: the service is changed only
    after, so a store that kept something else (cut, re-encoded) cannot lock anyone out."""
    if not hmac.compare_digest(ctx.runtime.vault.fetch(reference).reveal().encode(), secret.reveal().encode()):
        raise StepError(f"the password manager does not give back the value kprov stored as {entry}: the old "
                        "value still works", hint=f"check the entry {entry} and the password manager's backend, "
                                                  "then run the rotation again")
    return reference


def _stored(ctx: StepContext, entry: str) -> tuple[str, Any]:
    """The entry's reference and current value; a rotation needs one to start from."""
    reference = ctx.runtime.vault.find(entry)
    if reference is None:
        raise StepError(f"the password manager has no entry {entry}: nothing to rotate",
                        hint="the install stores it; kprov check client shows what is missing")
    return reference, ctx.runtime.vault.fetch(reference)


def previous_entry(entry: str) -> str:
    """Where a rotation keeps the value it replaces, until the new one works (`acme/iam-access-key-previous`)."""
    return f"{entry}-previous"


def _keep_previous(ctx: StepContext, entry: str, secret: Any) -> str:
    """Keep `secret` (the value about to be replaced) as the entry's `-previous`, before the entry changes."""
    name = previous_entry(entry)
    if ctx.runtime.vault.find(name) is None:
        return _read_back(ctx, name, ctx.runtime.vault.store(
            name, secret, description=f"the value {entry} held before its last rotation",
            tags={"kprov:rotated-from": entry}), secret)
    return _update(ctx, name, secret)


def _previous(ctx: StepContext, entry: str) -> Any | None:
    reference = ctx.runtime.vault.find(previous_entry(entry))
    return None if reference is None else ctx.runtime.vault.fetch(reference)


class _Rotation:
    """What the password rotations share: probe for an interrupted rotation, then keep -> store -> set -> verify.

    The old value is kept as `<entry>-previous` before the entry changes: until the service takes the new one,
    the old one is the working credential, and KeePassXC's history or a `pass` entry's old version cannot be
    read back. Setting the new value may need it (`_set`'s `old`: the value the service takes now, None when
    kprov cannot tell): the broker admin logs in as itself.
    """

    policy: ClassVar[str]

    def _entry(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        return str(params["secret_name"])

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        """Whether the service accepts `secret`; None when kprov cannot tell (no connection)."""
        raise NotImplementedError

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str, old: Any | None) -> None:
        raise NotImplementedError

    def _what(self, params: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        entry, what = self._entry(ctx, params), self._what(params)
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

        entry, what = self._entry(ctx, params), self._what(params)
        old_reference, current = _stored(ctx, entry)
        works = self._works(ctx, params, current)
        if works is False:
            # resume: the stored value wins, never a new one; the value the service still takes was kept aside
            secret, reference, old = current, old_reference, _previous(ctx, entry)
        else:
            old = current if works else None
            _keep_previous(ctx, entry, current)  # the working value stays in the password manager until replaced
            secret = generate_password(self.policy)
            reference = _update(ctx, entry, secret)  # stored before the old value stops working
            ctx.runtime.journal.record("credential.stored", entry=entry, reference=reference, previous=old_reference)
        ctx.progress(f"setting the new password on {what}")
        self._set(ctx, params, secret, reference, old)
        if self._works(ctx, params, secret) is False:
            raise StepError(f"{what} does not accept the new password stored as {entry}",
                            hint=f"the previous value is still in the password manager ({old_reference}); run "
                                 "the rotation again to set the stored one")
        return {"secret_ref": reference, "previous_ref": old_reference, "rotated": utc_now()}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        reference, current = _stored(ctx, self._entry(ctx, params))
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
        *BROKER_PARAMS,
        Param(name="vhost", doc="The user's vhost (for the name check only)."),
        Param(name="user", doc="The user, e.g. rms_acme; never the broker admin."),
        Param(name="secret_name", doc="The user's password-manager entry, e.g. acme/rabbitmq-hub."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("secret_ref", "previous_ref", "rotated")

    def _what(self, params: Mapping[str, Any]) -> str:
        return f"RabbitMQ user {params['user']}"

    def _user(self, ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, object]:
        _, user = checked_vhost_user(ctx, params)
        found = management_client(ctx, params).get_user(user)
        if found is None:
            raise StepError(f"RabbitMQ user {user} does not exist: nothing to rotate",
                            hint="kprov install-client makes it (or check client shows why it is missing)")
        return found

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        return password_matches(self._user(ctx, params), secret.reveal())

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str, old: Any | None) -> None:
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
        return _logs_in(ctx, params, checked_name(ctx, params, "login", "rule"), secret)

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str, old: Any | None) -> None:
        login = checked_name(ctx, params, "login", "rule")
        with connection(ctx, params) as conn:
            if conn is None:
                shown = rotate_login_script(login, password_placeholder(reference))
                run_by_hand(ctx, params, shown, extra=f", replacing the placeholder with the password stored as "
                                                      f"{reference}")
                return
            run_batches(conn, [secret.derive(lambda value: rotate_login_script(login, value).batches[0])], ctx.step_id)


def _logs_in(ctx: StepContext, params: Mapping[str, Any], login: str, secret: Any) -> bool | None:
    """Whether SQL Server takes `secret` for `login` (the configured connection); None without a connection."""
    settings = ctx.runtime.settings.get("sql")
    if not isinstance(settings, Mapping) or not (settings.get("driver") or callable(settings.get("connect"))):
        return None
    # The configured connection, logged in as `login` with `secret` (a driver's refusal is a StepError).
    as_login = StepContext(replace(ctx.runtime, vault=_OneSecret(secret)), ctx.step_id, ctx.values)
    try:
        with connection(as_login, {**params, "admin_user": login, "admin_password_ref": "rotated"}):
            return True
    except StepError:
        return False


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


# --- the shared resources' credentials -------------------------------------------------------------------


class RdsRotateMaster(_Rotation):
    """Rotate an RDS instance's master password (the one `rds.db-instance` made from `<name>/master`).

    Set with ModifyDBInstance (MasterUserPassword, ApplyImmediately): RDS's own way, which needs no old value,
    so an interrupted rotation never locks anyone out (a new value is set on the next run). Checked by logging
    in as the master over the configured SQL connection; without one, by RDS's own signal: the instance usable
    again with no MasterUserPassword among its PendingModifiedValues, within `budget` seconds. Outputs:
    secret_ref, previous_ref, rotated, verified_by (which of the two checked it).
    """

    name: ClassVar[str] = "rds.rotate-master"
    summary: ClassVar[str] = "Rotate an RDS instance's master password: stored first, then set, then checked."
    policy = "rds-sqlserver-master"
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="identifier", doc="The instance, e.g. db-POS-01 (any case: RDS keeps it lower-case)."),
        Param(name="secret_name", doc="The master password's password-manager entry, e.g. db-POS-01/master."),
        Param(name="budget", kind="int", required=False, default=1800,
              doc="Seconds to wait for RDS to apply the new password."),
        Param(name="interval", kind="int", required=False, default=15, doc="Seconds between polls."),
        *CONNECTION_PARAMS,
    )
    outputs: ClassVar[tuple[str, ...]] = ("secret_ref", "previous_ref", "rotated", "verified_by")

    def _what(self, params: Mapping[str, Any]) -> str:
        return f"the master login of RDS instance {params['identifier']}"

    def _describe(self, ctx: StepContext, params: Mapping[str, Any]) -> Mapping[str, Any]:
        ctx.forget_reads()  # a poll must see what RDS says now
        found = call(ctx.client("rds"), "describe_db_instances", missing=("DBInstanceNotFound",),
                     DBInstanceIdentifier=str(params["identifier"]).lower())
        instances = (found or {}).get("DBInstances") or []
        if not instances:
            raise StepError(f"RDS instance {params['identifier']} does not exist: nothing to rotate")
        return dict(instances[0])

    def _master(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        return str(params.get("admin_user") or self._describe(ctx, params).get("MasterUsername") or "")

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        return _logs_in(ctx, params, self._master(ctx, params), secret)

    @staticmethod
    def _pending(found: Mapping[str, Any]) -> str | None:
        """What keeps the new password from being in use yet (None: RDS says it is applied)."""
        if "MasterUserPassword" in (found.get("PendingModifiedValues") or {}):
            return "the new master password is still pending"
        if not usable(found.get("DBInstanceStatus")):
            return f"the instance is {found.get('DBInstanceStatus')}"
        return None

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str, old: Any | None) -> None:
        identifier = str(params["identifier"]).lower()
        call(ctx.client("rds"), "modify_db_instance", DBInstanceIdentifier=identifier,
             MasterUserPassword=secret.reveal(), ApplyImmediately=True)
        runtime = ctx.runtime
        start, budget = runtime.monotonic(), float(params.get("budget", 1800))
        while (pending := self._pending(self._describe(ctx, params))) is not None:
            left = budget - (runtime.monotonic() - start)
            if left <= 0:
                raise StepError(f"{params['identifier']}: {pending} after {budget:.0f} s",
                                hint="the new password is stored; run the same command again once the instance "
                                     "is available (the stored value is set again, nothing is lost)")
            ctx.progress(f"waiting for RDS to apply the new master password: {pending}, {left:.0f} s left")
            runtime.sleep(min(float(params.get("interval", 15)), left))

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        done = dict(super().act(ctx, params, probe))
        connected = _logs_in(ctx, params, self._master(ctx, params), ctx.runtime.vault.fetch(str(done["secret_ref"])))
        done["verified_by"] = ("a SQL login as the master with the new password" if connected else
                               "RDS: the instance is usable with no pending master password change (no SQL "
                               "connection is configured to log in with it)")
        ctx.progress(f"checked by {done['verified_by']}")
        return done

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        pending = self._pending(self._describe(ctx, params))
        return (Difference("master password", pending, "applied"),) if pending else super().verify(ctx, params)


class RabbitMQRotateAdmin(_Rotation):
    """Rotate a RabbitMQ broker's admin password through the management API (PUT /api/users/NAME, as itself).

    Amazon MQ's UpdateUser does not reach RabbitMQ brokers' users (they are not in the Amazon MQ Users API), and
    a lost admin password of a broker with one administrator cannot be reset (the broker is replaced): so the
    old value is kept as `<entry>-previous` before the entry changes, and a resumed rotation logs in with it to
    set the stored one. Checked by logging in as the admin with the new value (GET /api/whoami). A local broker
    of the settings (`rabbitmq.admin_secret_entry`: the sandbox's) is the one rotated, as every step reaches it.
    Outputs: secret_ref, previous_ref, rotated.
    """

    name: ClassVar[str] = "rabbitmq.rotate-admin"
    summary: ClassVar[str] = "Rotate a RabbitMQ broker's admin password: the old kept, the new stored, set, checked."
    policy = "amazon-mq"
    params: ClassVar[tuple[Param, ...]] = (
        *(p for p in BROKER_PARAMS if p.name != "admin_secret"),  # the admin's password is secret_name's
        Param(name="secret_name", doc="The admin password's password-manager entry, e.g. mq-POS-01/admin."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("secret_ref", "previous_ref", "rotated")

    @staticmethod
    def _settings(ctx: StepContext) -> Mapping[str, object]:
        found = ctx.runtime.settings.get("rabbitmq")
        return found if isinstance(found, Mapping) else {}

    def _entry(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        return str(self._settings(ctx).get("admin_secret_entry") or params["secret_name"])

    def _user(self, ctx: StepContext, params: Mapping[str, Any]) -> str:
        settings = self._settings(ctx)
        local = settings.get("admin_user") if settings.get("admin_secret_entry") else None  # its own admin wins
        return str(local or params.get("admin_user") or settings.get("admin_user") or "admin")

    def _what(self, params: Mapping[str, Any]) -> str:
        return f"the admin of broker {params.get('broker') or params.get('base_url')}"

    def _client(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> ManagementClient:
        timeout = self._settings(ctx).get("timeout", 10)
        return ManagementClient(management_url(ctx, params), self._user(ctx, params), secret,
                                timeout=float(timeout) if isinstance(timeout, int | float) else 10.0,
                                read_only=ctx.runtime.mode is not Mode.APPLY)

    def _works(self, ctx: StepContext, params: Mapping[str, Any], secret: Any) -> bool | None:
        try:
            self._client(ctx, params, secret).whoami()
        except RabbitMQError as exc:
            if exc.status == 401:
                return False
            raise
        return True

    def _set(self, ctx: StepContext, params: Mapping[str, Any], secret: Any, reference: str, old: Any | None) -> None:
        user = self._user(ctx, params)
        if old is None or self._works(ctx, params, old) is not True:
            raise StepError(f"neither the stored value nor the previous one lets kprov log in as {user}",
                            hint="log in with another administrator of the broker and set the password stored as "
                                 f"{reference}; on Amazon MQ a broker whose only admin password is lost is replaced")
        client = self._client(ctx, params, old)
        found = client.get_user(user) or {}
        tags = found.get("tags") or "administrator"
        client.put_user(user, secret, tags=[str(t) for t in tags] if isinstance(tags, list | tuple) else str(tags))


# --- an IAM user's access key ----------------------------------------------------------------------------

_KEY_ID = re.compile(r"^(?:AKIA|ASIA)[A-Z0-9]{12,124}$")
_STARTED_TAG = "kprov:key-rotation-started"  # on the user while a new key may exist whose secret is not stored
_MARGIN = timedelta(seconds=5)  # IAM's CreateDate has whole seconds


def _split_key(value: Any) -> tuple[str | None, Any]:
    """(key id, secret) of a stored access key; the id is None for an entry of the secret alone."""
    from kensium_provision.secret import Secret

    key_id, sep, rest = value.reveal().partition(":")
    if sep and _KEY_ID.fullmatch(key_id):
        return key_id, Secret(rest)
    return None, value


def _created(key: Mapping[str, Any]) -> datetime:
    when = key["CreateDate"]
    return when if isinstance(when, datetime) else datetime.fromisoformat(str(when).replace("Z", "+00:00"))


class IamRotateAccessKey:
    """Rotate an IAM user's access key: create the new one, store it, check it works, then deactivate the old.

    The entry holds `<AccessKeyId>:<SecretAccessKey>` (an entry of the secret alone, as the install may have
    stored it, is matched to the user's one active key). IAM allows two keys per user, so first the room: an
    inactive key (a rotation's old one) is deleted when `delete_old` says so or it has been inactive longer than
    `grace_days` (counted from the creation of the key that replaced it); an active key the password manager
    does not hold is never touched (someone may use it) and stops the rotation. The new key is checked with
    sts:GetCallerIdentity signed with it against the run's endpoint, retried within `budget` seconds while IAM's
    documented eventual consistency lasts; only then is the old key deactivated. Interrupted, it resumes from
    what it finds: a key created while the user carried the rotation tag, never used and never stored (its
    secret is lost) is deleted; the stored new key with the old one (kept as `<entry>-previous`) still active
    is checked and the old one deactivated. `retire_only`: only delete an old inactive key, no new one.
    Outputs: secret_ref, previous_ref, access_key_id, old_access_key_id, deleted, rotated.
    """

    name: ClassVar[str] = "iam.rotate-access-key"
    summary: ClassVar[str] = "Rotate an IAM user's access key: create, store, check, deactivate the old; delete later."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="user", rule="iam-user", doc="The user, rms_<org_id>."),
        Param(name="secret_name", doc="The key's password-manager entry, e.g. acme/iam-access-key."),
        Param(name="grace_days", kind="int", required=False, default=7, minimum=0, maximum=3650,
              doc="Days an old key stays inactive before a later run deletes it (settings "
                  "rotation.access_key_grace_days win)."),
        Param(name="delete_old", kind="bool", required=False, default=False,
              doc="Delete an inactive old key now, whatever its age."),
        Param(name="retire_only", kind="bool", required=False, default=False,
              doc="Only delete an old inactive key whose grace is over (or delete_old); create none."),
        Param(name="budget", kind="int", required=False, default=120,
              doc="Seconds to wait for IAM to accept the new key everywhere."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("secret_ref", "previous_ref", "access_key_id", "old_access_key_id",
                                          "deleted", "rotated")

    # -- what there is --------------------------------------------------------------------------------------

    def _keys(self, ctx: StepContext, user: str) -> list[Mapping[str, Any]]:
        ctx.forget_reads()
        return list(pages(ctx.client("iam"), "list_access_keys", "AccessKeyMetadata", UserName=user))

    def _started(self, ctx: StepContext, user: str) -> datetime | None:
        tags = pages(ctx.client("iam"), "list_user_tags", "Tags", UserName=user)
        found = next((str(t["Value"]) for t in tags if t["Key"] == _STARTED_TAG), None)
        return None if found is None else datetime.fromisoformat(found)

    def _held(self, ctx: StepContext, entry: str, keys: Sequence[Mapping[str, Any]]) -> tuple[str, str, Any]:
        """The stored key: (reference, key id, secret)."""
        reference, value = _stored(ctx, entry)
        key_id, secret = _split_key(value)
        if key_id is None:
            active = [str(k["AccessKeyId"]) for k in keys if k.get("Status") == "Active"]
            if len(active) != 1:
                raise StepError(f"{entry} holds an access key's secret without its id, and the user has "
                                f"{len(active)} active keys: kprov cannot tell which is stored",
                                hint=f"store it again as <AccessKeyId>:<SecretAccessKey> in {entry}")
            key_id = active[0]
        if key_id not in {str(k["AccessKeyId"]) for k in keys}:
            raise StepError(f"{entry} holds access key {key_id}, which the IAM user no longer has",
                            hint="create a key in the IAM console and store it, or restore the deleted one's user")
        return reference, key_id, secret

    def _unused(self, ctx: StepContext, key_id: str) -> bool:
        """Never used to sign a request: a key someone made by hand during a rotation and uses is kept."""
        found = call(ctx.client("iam"), "get_access_key_last_used", AccessKeyId=key_id)
        return not (found.get("AccessKeyLastUsed") or {}).get("LastUsedDate")

    def _grace(self, ctx: StepContext, params: Mapping[str, Any]) -> timedelta:
        rotation = ctx.runtime.settings.get("rotation")
        days = rotation.get("access_key_grace_days") if isinstance(rotation, Mapping) else None
        return timedelta(days=int(days if isinstance(days, int) else params.get("grace_days", 7)))

    def _plan(self, ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        """What act will do, from what there is (also the probe's account of it)."""
        user, entry = str(params["user"]), str(params["secret_name"])
        keys = self._keys(ctx, user)
        reference, held_id, _ = self._held(ctx, entry, keys)
        held = next(k for k in keys if k["AccessKeyId"] == held_id)
        if held.get("Status") != "Active":
            raise StepError(f"the stored access key {held_id} of {user} is inactive: kprov will not rotate away "
                            "from a key nobody can use", hint=f"activate it or store the working key in {entry}")
        previous = _previous(ctx, entry)
        previous_id = _split_key(previous)[0] if previous is not None else None
        started = self._started(ctx, user)
        now, grace = datetime.now(UTC), self._grace(ctx, params)
        plan: dict[str, Any] = {"reference": reference, "held": held_id, "delete": [], "deactivate": None,
                                "blocked": None, "old_inactive": None, "finish": None}
        replaced = next((k for k in keys if k["AccessKeyId"] == previous_id and previous_id != held_id), None)
        if started is not None and replaced is not None and replaced.get("Status") != "Active":
            plan["finish"] = previous_id  # killed after deactivating the old key, before the tag went
        for key in keys:
            key_id = str(key["AccessKeyId"])
            if key_id == held_id:
                continue
            if key.get("Status") == "Active":
                if key_id == previous_id:
                    plan["deactivate"] = key_id  # the stored key replaced it; an earlier run stopped before
                elif started is not None and _created(key) >= started - _MARGIN and self._unused(ctx, key_id):
                    plan["delete"].append(key_id)  # made by an interrupted rotation, its secret never stored
                else:
                    plan["blocked"] = (f"{user} has another active access key, {key_id}, that the password manager "
                                       f"does not hold (in {entry}): kprov never deletes a key someone may use")
            elif params.get("delete_old") or now - _created(held) >= grace:
                plan["delete"].append(key_id)
            else:
                until = (_created(held) + grace).isoformat(timespec="minutes")
                plan["old_inactive"] = f"the old key {key_id} is inactive, kept until {until} (grace {grace.days} days)"
        return plan

    # -- the contract ---------------------------------------------------------------------------------------

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        plan, user = self._plan(ctx, params), str(params["user"])
        current = {"stored key": plan["held"], "entry": plan["reference"]}
        cleanup = "".join([f"; delete {', '.join(plan['delete'])}" if plan["delete"] else "",
                           f"; deactivate {plan['deactivate']}" if plan["deactivate"] else ""])
        if plan["deactivate"]:
            return Probe(done=False, current=current, desired={"deactivate": plan["deactivate"]},
                         note=f"resume: the stored key {plan['held']} replaced {plan['deactivate']}, which is still "
                              f"active: check the stored one, then deactivate the old{cleanup}")
        if plan["finish"] and not params.get("retire_only"):
            return Probe(done=False, current=current, desired={"untag": _STARTED_TAG},
                         note=f"resume: the rotation from {plan['finish']} to {plan['held']} is done but for the "
                              "user's rotation tag: it is removed, no new key is made")
        if params.get("retire_only"):
            if not plan["delete"]:
                return Probe(done=True, current=current,
                             note=plan["old_inactive"] or f"{user} has no old inactive key to delete",
                             outputs={"secret_ref": plan["reference"], "access_key_id": plan["held"]})
            return Probe(done=False, current=current, desired={"delete": plan["delete"]},
                         note=f"will delete {user}'s old inactive key {', '.join(plan['delete'])}")
        if plan["blocked"]:
            return Probe(done=False, current=current, note=plan["blocked"] + ": rotation refused")
        room = "" if not plan["old_inactive"] else f" ({plan['old_inactive']}: answer delete_old_key: true)"
        return Probe(done=False, current=current, desired={"new key": f"stored as {params['secret_name']} first"},
                     note=f"will create a new access key for {user}, store it, check it with sts, then deactivate "
                          f"{plan['held']}{cleanup}{room}")

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        iam, user, entry = ctx.client("iam"), str(params["user"]), str(params["secret_name"])
        plan = self._plan(ctx, params)
        if plan["finish"] and not params.get("retire_only"):
            call(iam, "untag_user", UserName=user, TagKeys=[_STARTED_TAG])
            return {"secret_ref": plan["reference"], "previous_ref": "", "deleted": [], "access_key_id": plan["held"],
                    "old_access_key_id": plan["finish"], "rotated": utc_now()}
        rotating = not plan["deactivate"] and not params.get("retire_only")
        if rotating and plan["blocked"]:  # refused before any change (exit 3)
            raise InputError(plan["blocked"], hint=f"if nobody uses it, delete it in the IAM console (Users › {user} "
                                                   "› Security credentials), then run this again")
        if rotating and plan["old_inactive"]:
            raise InputError(f"{user} already has two access keys: {plan['old_inactive']}",
                             hint="answer delete_old_key: true to delete it now, or rotate after its grace")
        for key_id in plan["delete"]:
            ctx.progress(f"deleting {user}'s access key {key_id} (inactive, or never stored)")
            call(iam, "delete_access_key", UserName=user, AccessKeyId=key_id, missing=("NoSuchEntity",))
        outputs: dict[str, object] = {"secret_ref": plan["reference"], "previous_ref": "", "deleted": plan["delete"],
                                      "access_key_id": plan["held"], "old_access_key_id": "", "rotated": ""}
        if plan["deactivate"]:  # resume: the stored key is the new one
            self._check(ctx, params, *self._held(ctx, entry, self._keys(ctx, user))[1:])
            self._deactivate(ctx, user, plan["deactivate"])
            return {**outputs, "old_access_key_id": plan["deactivate"], "rotated": utc_now()}
        if params.get("retire_only"):
            return outputs
        old_id, (_, value) = plan["held"], _stored(ctx, entry)
        if _split_key(value)[0] is None:  # the secret alone (as installed): its id with it, before anything else
            value = access_key_value(old_id, value)
            plan["reference"] = _update(ctx, entry, value)
        _keep_previous(ctx, entry, value)  # the working key stays readable until replaced
        call(iam, "tag_user", UserName=user, Tags=[{"Key": _STARTED_TAG, "Value": utc_now()}])
        made = call(iam, "create_access_key", UserName=user)["AccessKey"]
        from kensium_provision.secret import Secret

        new_id, secret = str(made["AccessKeyId"]), Secret(str(made.pop("SecretAccessKey")))
        reference = _update(ctx, entry, access_key_value(new_id, secret))  # stored before the old stops working
        ctx.runtime.journal.record("credential.stored", entry=entry, reference=reference, previous=plan["reference"],
                                   access_key_id=new_id)
        self._check(ctx, params, new_id, secret)
        self._deactivate(ctx, user, old_id)
        return {**outputs, "secret_ref": reference, "previous_ref": plan["reference"], "access_key_id": new_id,
                "old_access_key_id": old_id, "rotated": utc_now()}

    def _deactivate(self, ctx: StepContext, user: str, key_id: str) -> None:
        iam = ctx.client("iam")
        ctx.progress(f"deactivating the old access key {key_id} (deleted by a later run after the grace period)")
        call(iam, "update_access_key", UserName=user, AccessKeyId=key_id, Status="Inactive")
        call(iam, "untag_user", UserName=user, TagKeys=[_STARTED_TAG])

    def _check(self, ctx: StepContext, params: Mapping[str, Any], key_id: str, secret: Any) -> None:
        """sts:GetCallerIdentity signed with the key, until IAM knows it everywhere (within `budget`)."""
        import boto3

        runtime, meta = ctx.runtime, ctx.client("sts").meta  # the run's own endpoint, region and settings
        sts = boto3.client("sts", endpoint_url=meta.endpoint_url, region_name=meta.region_name, config=meta.config,
                           aws_access_key_id=key_id, aws_secret_access_key=secret.reveal())
        user = str(params["user"])
        try:  # a new key is refused for a while: IAM's eventual consistency, retried in aws/settle.py
            arn = str(until_key_accepted(
                lambda: call(sts, "get_caller_identity")["Arn"], budget=float(params.get("budget", 120)),
                clock=runtime.monotonic, sleep=runtime.sleep,
                on_retry=lambda _: ctx.progress(f"IAM does not accept {key_id} everywhere yet; retrying")))
        except AwsError as exc:
            raise StepError(f"the new access key {key_id} of {user} does not work ({exc.code})",
                            hint="the old key is still active and kept as the entry's -previous; run the "
                                 "same command again to check the stored one") from None
        if not arn.endswith(f"/{user}"):
            raise StepError(f"the new access key {key_id} signs in as {arn}, not as {user}")

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        user = str(params["user"])
        keys = self._keys(ctx, user)
        _, held_id, _ = self._held(ctx, str(params["secret_name"]), keys)
        active = sorted(str(k["AccessKeyId"]) for k in keys if k.get("Status") == "Active")
        return () if active == [held_id] else (Difference("active access keys", active, [held_id]),)


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
        write_record(ctx, replace(record, secrets={**record.secrets, key: str(params["reference"])}, updated=now,
                          run_id=ctx.runtime.run_id), claim=False)
        return {"record": record_name(org_id, table)}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        record = facts(ctx).client_record(ctx, str(params["org_id"]), records_table(ctx))
        held = record.secrets.get(str(params["key"])) if record is not None else None
        return () if held == params["reference"] else (Difference("reference", held, params["reference"]),)


STEP_TYPES = (RabbitMQRotateUser, SqlRotateLogin, RdsRotateMaster, RabbitMQRotateAdmin, IamRotateAccessKey,
              ClientRecordSecret)
