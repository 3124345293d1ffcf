"""Password-manager backends (`runtime.Vault`): AWS Secrets Manager, a password-manager command, KeePassXC,
`pass`, or manual.

Every backend has one canonical reference per entry: the reference `store` returns is the one `find`
returns for that entry later, so what a client record or the journal holds equals what the next run
finds (a `command` store that prints an id does not change it). `canonical(reference)` maps any form a
backend accepts (those of earlier kprov versions too) to the canonical one: compare references through
it, never as raw text.

`store` never overwrites a stored credential: storing the same value again is a no-op that returns the
reference, storing a different value under a stored name is an error. `update` is the one deliberate
replacement (rotation): it replaces the value of an existing entry and returns its reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kensium_provision.aws.call import call
from kensium_provision.errors import AbortedError, AwsError, InputError, StepError
from kensium_provision.model import InputSpec
from kensium_provision.runtime import ClientFactory, Operator, Vault
from kensium_provision.secret import REDACTOR, Secret
from kensium_provision.vault.common import (
    Program,
    check_part,
    entry_name,
    never_overwrite,
    reference_name,
    refuse_embedded,
    secret_name,
)
from kensium_provision.vault.keepassxc import KeePassXCVault
from kensium_provision.vault.passstore import PassVault

__all__ = [
    "BACKENDS",
    "CommandVault",
    "KeePassXCVault",
    "ManualVault",
    "PassVault",
    "SecretsManagerVault",
    "canonical_reference",
    "entry_name",
    "make_vault",
    "secret_name",
]

BACKENDS = ("secretsmanager", "command", "keepassxc", "pass", "manual")
_COMMAND_ID = re.compile(r"[A-Za-z0-9._:/@+=-]{1,256}")  # an entry id in a reference of kprov before 14.11
_MANAGED_TAG = "kprov:managed"


# --- AWS Secrets Manager ----------------------------------------------------------------------------------


class SecretsManagerVault:
    """Secrets under `kprov/<env>/<owner>/<credential>`, tagged `kprov:managed=true`; reference `ARN#VersionId`.

    `client` is a boto3 secretsmanager client (typed Any: boto3 stays out of this module's imports).
    """

    def __init__(self, client: Any, env_name: str) -> None:
        self._client = client
        self.env_name = check_part("environment", env_name)

    def _name(self, name: str) -> str:
        return secret_name(self.env_name, *entry_name(name))

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        # aws.call: SDK failures become AwsError with AWS's text redacted, raised `from None` (the
        # original exception may quote the SecretString)
        response: dict[str, Any] = call(self._client, operation, **params)
        return response

    def _describe(self, full_name: str) -> dict[str, Any] | None:
        return call(self._client, "describe_secret", missing=("ResourceNotFoundException",), SecretId=full_name)

    @staticmethod
    def reference_of(described: Mapping[str, Any]) -> str:
        """The reference of a secret as DescribeSecret (or ListSecrets, its `SecretVersionsToStages` renamed)
        describes it: its ARN and current version id."""
        stages = described.get("VersionIdsToStages") or {}
        current = next((vid for vid, names in stages.items() if "AWSCURRENT" in names), None)
        if described.get("DeletedDate") is not None or current is None:
            raise StepError(
                f"{described['Name']} exists but is scheduled for deletion or has no current value",
                hint=f"restore it (aws secretsmanager restore-secret --secret-id {described['Name']}) or delete it",
            )
        return f"{described['ARN']}#{current}"

    def find(self, name: str) -> str | None:
        described = self._describe(self._name(name))
        return None if described is None else self.reference_of(described)

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        full_name = self._name(name)
        refuse_embedded(secret, description=description, tags=" ".join(f"{k}={v}" for k, v in tags.items()))
        wanted = {_MANAGED_TAG: "true", "kprov:env": self.env_name, **tags}
        described = self._describe(full_name)
        if described is None:
            try:
                # botocore fills ClientRequestToken itself and resends it on retries, so a retried create is safe
                created = self._call("create_secret", Name=full_name, SecretString=secret.reveal(),
                                     Description=description, Tags=[{"Key": k, "Value": v} for k, v in wanted.items()])
                return f"{created['ARN']}#{created['VersionId']}"
            except AwsError as exc:
                if exc.code != "ResourceExistsException":  # another run created it meanwhile: compare below
                    raise
                described = self._describe(full_name)
                if described is None:
                    raise
        reference = self.reference_of(described)
        if self.fetch(reference) != secret:
            raise never_overwrite(f"Secrets Manager secret {full_name}")
        have = {t["Key"]: t["Value"] for t in described.get("Tags") or ()}
        missing = [{"Key": k, "Value": v} for k, v in wanted.items() if have.get(k) != v]
        if missing:  # adds or corrects kprov's tags; never removes anyone else's
            self._call("tag_resource", SecretId=described["ARN"], Tags=missing)
        return reference

    def update(self, name: str, secret: Secret) -> str:
        """Rotation: the new value becomes AWSCURRENT; the old one stays readable as AWSPREVIOUS.

        See https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html
        (botocore fills ClientRequestToken and resends it on retries: a retried put makes one version).
        """
        full_name = self._name(name)
        described = self._describe(full_name)
        if described is None:
            raise StepError(f"Secrets Manager has no secret {full_name} to update", hint="store it first")
        reference = self.reference_of(described)
        if self.fetch(reference) == secret:
            return reference  # already the new value: a resumed rotation changes nothing
        put = self._call("put_secret_value", SecretId=described["ARN"], SecretString=secret.reveal())
        return f"{described['ARN']}#{put['VersionId']}"

    def canonical(self, reference: str) -> str:
        return reference

    def fetch(self, reference: str) -> Secret:
        arn, _, version = reference.partition("#")
        if not arn.startswith("arn:") or ":secretsmanager:" not in arn:
            shown = REDACTOR.redact(reference)  # a value pasted where a reference belongs stays masked
            raise InputError(f"not a Secrets Manager reference: {shown!r} (expected ARN#VersionId)")
        params: dict[str, object] = {"SecretId": arn, **({"VersionId": version} if version else {})}
        value = self._call("get_secret_value", **params).get("SecretString")
        if not isinstance(value, str):
            raise StepError(f"{arn} holds no SecretString (a binary secret is not a kprov credential)")
        return Secret(value)


# --- a password-manager command ---------------------------------------------------------------------------


def _argv(template: Sequence[str], **values: str) -> list[str]:
    # plain replace, never str.format: a config value must not reach attributes of anything
    out = []
    for part in template:
        for key, value in values.items():
            part = part.replace("{" + key + "}", value)
        out.append(part)
    return out


def _check_argv(kind: str, argv: object) -> tuple[str, ...]:
    if isinstance(argv, str) or not isinstance(argv, Sequence) or not argv or not all(
            isinstance(part, str) and part for part in argv):
        raise InputError(f"vault {kind} must be a non-empty list of strings (an argv, run without a shell)")
    if not any("{name}" in part for part in argv):
        raise InputError(f"vault {kind} must contain {{name}}: where the password manager keeps the entry")
    return tuple(argv)


class CommandVault:
    """Runs a password-manager CLI: the secret goes to its stdin, followed by a newline; never to argv or env.

    `argv`, `fetch_argv` and `update_argv` are templates where `{name}` is the entry name (`acme/sql-login`,
    allow-listed). The reference is `command:<name>` whatever the store command prints: `find` can only
    know the name, and the reference a record holds must be the one `find` gives back. (`{id}` in
    `fetch_argv` is the id in a `command:<name>#<id>` reference of an earlier kprov, else the name.) The
    child's environment lacks AWS credential variables and any variable holding a registered secret; its
    output is captured, never shown. `fetch_argv` prints the secret on stdout (one trailing newline is
    dropped); `update_argv` replaces an entry's value with the one on its stdin (rotation).

    With `fetch_argv`, store is idempotent (an entry it can read back with the same value is kept, one with a
    different value is an error) and verified (read back after writing). A fetch that exits non-zero counts
    as "no such entry". Without it, the password manager itself must refuse or handle duplicates.
    """

    def __init__(self, argv: Sequence[str], fetch_argv: Sequence[str] | None = None, *, timeout: float = 60.0,
                 update_argv: Sequence[str] | None = None) -> None:
        self.argv = _check_argv("command", argv)
        self.fetch_argv = None if fetch_argv is None else _check_argv("fetch_command", fetch_argv)
        self.update_argv = None if update_argv is None else _check_argv("update_command", update_argv)
        self.timeout = timeout

    def _program(self, argv: Sequence[str]) -> Program:
        return Program(name=f"password manager command {argv[0]!r}", timeout=self.timeout)

    def _read(self, name: str, entry_id: str, *, missing_ok: bool) -> Secret | None:
        if self.fetch_argv is None:
            raise InputError("the password manager has no fetch_command configured: kprov cannot read credentials")
        argv = _argv(self.fetch_argv, name=name, id=entry_id)
        program = self._program(argv)
        done = program.run(argv)
        if done.code != 0:
            if missing_ok:
                return None
            raise program.failed(done)
        return Secret(program.text(done))

    def _write(self, template: Sequence[str], name: str, secret: Secret) -> None:
        argv = _argv(template, name=name)
        program = self._program(argv)
        done = program.run(argv, secret.reveal() + "\n")
        if done.code != 0:
            raise program.failed(done, secret)
        if self.fetch_argv is not None and self._read(name, name, missing_ok=False) != secret:
            raise StepError(f"password manager entry {name} does not read back as the value just stored")

    def find(self, name: str) -> str | None:
        name = "/".join(entry_name(name))
        if self.fetch_argv is None or self._read(name, name, missing_ok=True) is None:
            return None
        return f"command:{name}"

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        name = "/".join(entry_name(name))  # description and tags: a command has nowhere safe to put them
        if self.fetch_argv is not None:
            existing = self._read(name, name, missing_ok=True)
            if existing is not None:
                if existing != secret:
                    raise never_overwrite(f"password manager entry {name}")
                return f"command:{name}"
        self._write(self.argv, name, secret)
        return f"command:{name}"

    def update(self, name: str, secret: Secret) -> str:
        name = "/".join(entry_name(name))
        if self.update_argv is None:
            raise InputError("the password manager has no update_command configured: kprov cannot rotate credentials")
        if self.fetch_argv is not None and self._read(name, name, missing_ok=True) == secret:
            return f"command:{name}"  # already the new value: a resumed rotation changes nothing
        self._write(self.update_argv, name, secret)
        return f"command:{name}"

    def _parse(self, reference: str) -> tuple[str, str]:
        base, _, entry_id = reference.partition("#")
        name = reference_name("command:", base, "password-manager command")
        if entry_id and not _COMMAND_ID.fullmatch(entry_id):
            raise InputError(f"invalid entry id in reference {REDACTOR.redact(reference)!r}")
        return name, entry_id

    def canonical(self, reference: str) -> str:
        return f"command:{self._parse(reference)[0]}"

    def fetch(self, reference: str) -> Secret:
        name, entry_id = self._parse(reference)
        found = self._read(name, entry_id or name, missing_ok=False)
        if found is None:  # pragma: no cover - missing_ok=False raises instead
            raise StepError(f"password manager entry {name} cannot be read")
        return found


def _nonempty(problem: str) -> Callable[[object], str | None]:
    """A prompt's check that a password (a Secret or text) was given."""

    def validate(value: object) -> str | None:
        text = value.reveal() if isinstance(value, Secret) else value
        return None if isinstance(text, str) and text else problem

    return validate


# --- manual: the operator copies it ------------------------------------------------------------------------


class ManualVault:
    """The operator copies each credential into the Kensium Password Manager (there is no API for it).

    `store` shows the value once through the operator's terminal, never logged, then asks for confirmation;
    a refusal aborts the run. `fetch` asks the operator to paste the value back at a hidden prompt (an input
    of type `secret`, which the console reads with a password prompt). `find` cannot look anything up and
    returns None: the journal's `manual:<name>` reference is what records that it was stored.
    Needs an interactive operator: an answers file can neither see nor supply a credential.
    """

    def __init__(self, operator: Operator) -> None:
        self.operator = operator

    def _require_terminal(self, doing: str) -> None:
        if not self.operator.interactive:
            raise InputError(f"the manual password manager needs an operator at a terminal to {doing}",
                             hint="run interactively, or configure vault backend secretsmanager or command")

    def find(self, name: str) -> str | None:
        entry_name(name)
        return None

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        name = "/".join(entry_name(name))
        self._require_terminal(f"store {name}")
        self.operator.show_secret_once(f"{name}: {description}" if description else name, secret)
        if not self.operator.confirm("Stored in the Kensium Password Manager?", default=False, key=f"vault:{name}"):
            raise AbortedError(f"{name} was not stored in the password manager; it is not shown again")
        return f"manual:{name}"

    def update(self, name: str, secret: Secret) -> str:
        name = "/".join(entry_name(name))
        self._require_terminal(f"replace {name}")
        self.operator.show_secret_once(f"{name}: the new value (replace the old one)", secret)
        if not self.operator.confirm("Replaced in the Kensium Password Manager?", default=False,
                                     key=f"vault:update:{name}"):
            raise AbortedError(f"{name} was not replaced in the password manager; it is not shown again")
        return f"manual:{name}"

    def canonical(self, reference: str) -> str:
        return "manual:" + reference_name("manual:", reference, "manual password-manager")

    def fetch(self, reference: str) -> Secret:
        name = reference_name("manual:", reference, "manual password-manager")
        self._require_terminal(f"read {name}")
        prompt = f"Password of {name} (from the Kensium Password Manager)"
        spec = InputSpec(id=f"vault:{name}", type="secret", prompt=prompt)

        answer = self.operator.ask(spec, default=None, choices=(),
                                   validate=_nonempty("paste the password stored for this entry"))
        if isinstance(answer, Secret):
            return answer
        if isinstance(answer, str) and answer:
            return Secret(answer)
        raise InputError(f"no password given for {name}")


def canonical_reference(vault: object, reference: object) -> object:
    """`reference` in the canonical form of the run's vault, to compare references through the vault.

    A reference the vault does not read (another backend's, or not text) is returned as it is: it then
    differs from every reference this vault gives, as it should. A vault without `canonical` (a test's
    memory vault) compares references as text.
    """
    canonical = getattr(vault, "canonical", None)
    if not isinstance(reference, str) or not callable(canonical):
        return reference
    try:
        return str(canonical(reference))
    except InputError:
        return reference


# --- the factory the CLI calls ----------------------------------------------------------------------------

# Each backend's settings besides `backend` (the config's `vault:` section).
SETTINGS: Mapping[str, tuple[str, ...]] = {
    "secretsmanager": (),
    "manual": (),
    "command": ("command", "fetch_command", "update_command", "timeout"),
    "keepassxc": ("database", "key_file", "password", "timeout"),
    "pass": ("store", "timeout"),
}


def _timeout(settings: Mapping[str, object]) -> float:
    timeout = settings.get("timeout", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InputError("vault timeout must be a positive number of seconds")
    return float(timeout)


def _path(settings: Mapping[str, object], key: str) -> Path | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InputError(f"vault {key} must be a file or directory path")
    return Path(value).expanduser()


def _asked_once(operator: Operator, database: Path) -> Callable[[], Secret]:
    """The KeePassXC database password, asked at a hidden prompt the first time it is needed, then kept."""
    kept: list[Secret] = []

    def password() -> Secret:
        if kept:
            return kept[0]
        if not operator.interactive:
            raise InputError(f"the KeePassXC database {database} is unlocked with a password typed at a terminal",
                             hint="run interactively, or unlock it with a key file alone (key_file, password: false)")
        spec = InputSpec(id="vault:keepassxc", type="secret", prompt=f"Password of the KeePassXC database {database}")
        answer = operator.ask(spec, default=None, choices=(), validate=_nonempty("type the database password"))
        kept.append(answer if isinstance(answer, Secret) else Secret(str(answer)))
        return kept[0]

    return password


def make_vault(kind: str, *, settings: Mapping[str, object], client_factory: ClientFactory, operator: Operator,
               env_name: str) -> Vault:
    """The backend of the config's `vault:` section (`backend` and that backend's `SETTINGS`).

    `client_factory` is the run's `ClientFactory` (its secretsmanager client is made here, boto3 imported by it).
    """
    known = {key for keys in SETTINGS.values() for key in keys}
    unknown = sorted(set(settings) - known - {"backend"})
    if unknown:
        raise InputError(f"unknown vault setting(s): {', '.join(unknown)}")
    if kind not in BACKENDS:
        raise InputError(f"unknown vault backend {kind!r}: use one of {', '.join(BACKENDS)}")
    if settings.get("backend", kind) != kind:
        raise InputError(f"vault backend {kind!r} was asked for, but the settings say {settings['backend']!r}")
    foreign = sorted(set(settings) - set(SETTINGS[kind]) - {"backend"})
    if foreign:
        owners = sorted(b for b, keys in SETTINGS.items() if set(foreign) & set(keys))
        raise InputError(f"{', '.join(foreign)} apply only to the {' or '.join(owners)} backend, not {kind}")
    if kind == "secretsmanager":
        return SecretsManagerVault(client_factory.client("secretsmanager"), env_name)
    if kind == "manual":
        return ManualVault(operator)
    if kind == "keepassxc":
        database = _path(settings, "database")
        if database is None:
            raise InputError("the keepassxc vault backend needs `database`: the .kdbx file")
        with_password = settings.get("password", True)
        if not isinstance(with_password, bool):
            raise InputError("vault password must be true (asked at a hidden prompt) or false (key file only)")
        key_file = _path(settings, "key_file")
        if not with_password and key_file is None:
            raise InputError("password: false needs key_file: the database must be unlocked by something")
        return KeePassXCVault(database, password=_asked_once(operator, database) if with_password else None,
                              key_file=key_file, timeout=_timeout(settings))
    if kind == "pass":
        return PassVault(_path(settings, "store"), timeout=_timeout(settings))
    if "command" not in settings:
        raise InputError("the command vault backend needs `command`: the argv that stores an entry read on stdin")
    fetch, update = settings.get("fetch_command"), settings.get("update_command")
    return CommandVault(_check_argv("command", settings["command"]),
                        None if fetch is None else _check_argv("fetch_command", fetch), timeout=_timeout(settings),
                        update_argv=None if update is None else _check_argv("update_command", update))
