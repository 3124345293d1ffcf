"""Client credentials due for rotation (issue 18.2): older than `rotation.max_age_days` (default 90).

When a credential was last set is its password manager's and IAM's, not the client record's (a rotation
points the record at the new version, `steps.rotation`): a Secrets Manager entry's LastChangedDate (else
CreatedDate), and an active IAM access key's creation (the credential report's `access_key_N_last_rotated`,
or ListAccessKeys' CreateDate). Other password managers keep no date kprov can read: their entries are not
aged. `credential_ages` is the one computation; its dates come from the fleet check's snapshot (no call of its
own: ListSecrets and the credential report are read for the check anyway) or, for one client, live
(`live_ages`); the shared ones (an RDS master, a broker admin) by `shared_findings` for `check shared`.
Nothing about a secret's value is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kensium_provision.fleet.model import CredentialAge

if TYPE_CHECKING:
    from kensium_provision.engine.run import RunReport
    from kensium_provision.model import Finding
    from kensium_provision.records.clients import ClientRecord

__all__ = ["DEFAULT_MAX_AGE_DAYS", "SHARED_CREDENTIALS", "KeyDate", "age_findings", "clock", "credential_ages",
           "listed_secrets", "live_ages", "max_age_days", "overdue", "report_key_dates", "secret_dates",
           "shared_findings", "with_ages"]

DEFAULT_MAX_AGE_DAYS = 90  # app.config.RotationSettings' default
KeyDate = tuple[str, datetime]  # (how the access key is named, when it was made), active keys only

# The record's secrets key -> (the install step that made it, `kprov rotate ORG RESOURCE`, what it is).
_SECRETS: Mapping[str, tuple[str, str, str]] = {
    "sql_login": ("sql-password", "sql", "the password of the SQL login"),
    "rabbitmq_user": ("hub-vhost", "rabbitmq", "the password of the hub vhost's RabbitMQ user"),
}
_ACCESS_KEY = ("iam-user", "iam", "the access key")


def clock() -> datetime:
    """The time credentials are aged at (one place, so a check can be run as if later)."""
    return datetime.now(UTC)


def max_age_days(settings: Mapping[str, object]) -> int:
    """`rotation.max_age_days` of the run settings (app.config), else the default."""
    rotation = settings.get("rotation")
    found = rotation.get("max_age_days") if isinstance(rotation, Mapping) else None
    return int(found) if isinstance(found, int) and not isinstance(found, bool) else DEFAULT_MAX_AGE_DAYS


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def secret_dates(entries: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    """Secrets Manager entries (ListSecrets or DescribeSecret answers) -> {ARN: when last changed}."""
    found: dict[str, datetime] = {}
    for entry in entries:
        when = entry.get("LastChangedDate") or entry.get("CreatedDate")
        if isinstance(when, datetime) and entry.get("ARN"):
            found[str(entry["ARN"])] = _aware(when)
    return found


def report_key_dates(row: Mapping[str, str]) -> list[KeyDate]:
    """The active access keys of one credential-report row (the report names no key id: by position)."""
    found: list[KeyDate] = []
    for n in (1, 2):
        made = row.get(f"access_key_{n}_last_rotated", "N/A")
        if row.get(f"access_key_{n}_active") != "true" or made in ("", "N/A", "not_supported"):
            continue
        try:
            found.append((f"access key {n} of {row.get('user', '?')}", _aware(datetime.fromisoformat(made))))
        except ValueError:
            continue
    return found


def credential_ages(records: Iterable[ClientRecord], secrets: Mapping[str, datetime],
                    access_keys: Mapping[str, Sequence[KeyDate]], *, max_age_days: int,
                    now: datetime) -> tuple[CredentialAge, ...]:
    """The installed clients' credentials last set more than `max_age_days` ago, by org id (case ignored).

    `secrets`: ARN -> when the entry changed (a record's reference is `ARN#VersionId`); `access_keys`: IAM user
    -> its active keys. A reference with no date (another password manager) is not aged."""
    from kensium_provision.records.clients import RETIRED

    due: list[CredentialAge] = []
    for record in sorted((r for r in records if r.status not in RETIRED), key=lambda r: r.org_id.lower()):
        dated = [(what, "secret", secrets.get(reference.split("#", 1)[0]))
                 for what, reference in sorted(record.secrets.items())]
        dated += [(name, "access key", made) for name, made in access_keys.get(record.iam_user, ())]
        for credential, kind, when in dated:
            age = overdue(when, max_age_days=max_age_days, now=now)
            if when is not None and age is not None:
                due.append(CredentialAge(org_id=record.org_id, credential=credential, kind=kind,
                                         changed=when.date().isoformat(), age_days=age))
    return tuple(due)


def overdue(when: datetime | None, *, max_age_days: int, now: datetime) -> int | None:
    """The age in days of a credential set at `when`, if older than `max_age_days`; else (or undated) None."""
    if when is None:
        return None
    age = (now - _aware(when)).days
    return age if age > max_age_days else None


def age_findings(due: Iterable[CredentialAge], *, max_age_days: int) -> list[Finding]:
    """Each due credential as a finding of the install step that made it, with the command that rotates it."""
    from kensium_provision.model import Finding

    found = []
    for cred in due:
        step, resource, what = _SECRETS.get(cred.credential, _ACCESS_KEY) if cred.kind == "secret" else _ACCESS_KEY
        subject = f"{what} ({cred.credential})" if cred.kind == "secret" else cred.credential
        found.append(Finding(
            step_id=step, expected=f"set within {max_age_days} days", actual=cred.changed,
            message=f"{subject[0].upper()}{subject[1:]} was last set on {cred.changed}, {cred.age_days} days ago "
                    f"(rotation.max_age_days: {max_age_days}): due for rotation, "
                    f"`kprov rotate {cred.org_id} {resource}`"))
    return found


def with_ages(report: RunReport, record: ClientRecord, secretsmanager: Any, iam: Any, *,
              max_age_days: int) -> RunReport:
    """`check client ORG`'s report with the client's credentials due for rotation (`live_ages`) as findings of
    the steps that made them (`fleet.recorded.attach`)."""
    from kensium_provision.fleet.recorded import attach

    due = live_ages(record, secretsmanager, iam, max_age_days=max_age_days)
    return attach(report, age_findings(due, max_age_days=max_age_days)) if due else report


def listed_secrets(secretsmanager: Any, names: Iterable[str]) -> list[Mapping[str, Any]]:
    """The Secrets Manager entries named exactly `names`: ListSecrets by name filter (a filter takes 10 values
    and matches by prefix), paginated. ListSecrets, not DescribeSecret: the check's declared read of the
    password manager's dates (`permissions.declared`, the fleet's)."""
    from kensium_provision.aws.call import pages

    wanted = sorted(set(names))
    found: list[Mapping[str, Any]] = []
    for start in range(0, len(wanted), 10):
        chunk = wanted[start:start + 10]
        found += [e for e in pages(secretsmanager, "list_secrets", "SecretList",
                                   Filters=[{"Key": "name", "Values": chunk}]) if e.get("Name") in chunk]
    return found


def _secret_name_of(reference: str) -> str:
    """`arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf#<version>` -> <name>."""
    arn = reference.split("#", 1)[0]
    return arn.split(":secret:", 1)[-1][:-7] if ":secret:" in arn else ""


def live_ages(record: ClientRecord, secretsmanager: Any, iam: Any, *, max_age_days: int,
              now: datetime | None = None) -> tuple[CredentialAge, ...]:
    """One client's due credentials, read live: ListSecrets of its Secrets Manager references, ListAccessKeys of
    its IAM user (what `check client ORG` would add; the fleet check reads its snapshot instead)."""
    from kensium_provision.aws.call import pages

    names = [_secret_name_of(r) for r in record.secrets.values() if r.startswith("arn:aws:secretsmanager:")]
    keys: dict[str, list[KeyDate]] = {}
    if record.iam_user:
        keys[record.iam_user] = [(str(k["AccessKeyId"]), _aware(k["CreateDate"]))
                                 for k in pages(iam, "list_access_keys", "AccessKeyMetadata",
                                                missing=("NoSuchEntity",), UserName=record.iam_user)
                                 if k.get("Status") == "Active"]
    return credential_ages([record], secret_dates(listed_secrets(secretsmanager, filter(None, names))), keys,
                           max_age_days=max_age_days, now=now or clock())


# The shared credentials kprov rotates (`kprov rotate shared RESOURCE`): RESOURCE -> (the credential part of
# each recorded instance's password-manager entry, what it is), as the shared rds and rabbitmq checklists store them.
SHARED_CREDENTIALS: Mapping[str, tuple[str, str]] = {
    "rds": ("master", "the master password of RDS instance"),
    "rabbitmq": ("admin", "the admin password of broker"),
}


def shared_findings(secretsmanager: Any, env_name: str, names: Mapping[str, Sequence[str]], *, max_age_days: int,
                    now: datetime | None = None) -> list[str]:
    """The shared credentials (`names`: resource -> its recorded instances) in Secrets Manager older than
    `max_age_days`, as finding messages (one ListSecrets page for up to 10 of them)."""
    from kensium_provision.vault.common import secret_name

    now = now or clock()
    wanted = {secret_name(env_name, name, SHARED_CREDENTIALS[resource][0]): (resource, name)
              for resource, instances in names.items() if resource in SHARED_CREDENTIALS for name in instances}
    dated = {str(e["Name"]): when for e in listed_secrets(secretsmanager, wanted)
             for when in secret_dates([e]).values()}
    found = []
    for secret, (resource, name) in sorted(wanted.items(), key=lambda kv: kv[1]):
        entry, what = SHARED_CREDENTIALS[resource]
        when = dated.get(secret)
        age = overdue(when, max_age_days=max_age_days, now=now)
        if when is not None and age is not None:
            found.append(f"{what[0].upper()}{what[1:]} {name} ({name}/{entry}) was last set on "
                         f"{when.date().isoformat()}, {age} days ago (rotation.max_age_days: {max_age_days}): "
                         f"due for rotation, `kprov rotate shared {resource}`")
    return found
