"""Password-manager backends (`runtime.Vault`): AWS Secrets Manager, a password-manager command, or manual.

None of them ever overwrites a stored credential: storing the same value again is a no-op that returns the
reference, storing a different value under a stored name is an error (the step must reuse or rotate it).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from kensium_provision.errors import AbortedError, AwsError, InputError, StepError
from kensium_provision.model import InputSpec
from kensium_provision.runtime import ClientFactory, Operator, Vault
from kensium_provision.secret import MASK, REDACTOR, Secret

__all__ = [
    "BACKENDS",
    "CommandVault",
    "ManualVault",
    "SecretsManagerVault",
    "entry_name",
    "make_vault",
    "secret_name",
]

BACKENDS = ("secretsmanager", "command", "manual")
# Starts with a letter or digit: a part like `-rf` would read as an option to a password-manager CLI.
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_COMMAND_ID = re.compile(r"[A-Za-z0-9._:/@+=-]{1,256}")  # what a password manager may print as an entry id
_MANAGED_TAG = "kprov:managed"


def _check_part(kind: str, part: object) -> str:
    if not isinstance(part, str) or not _PART.fullmatch(part) or ".." in part:
        raise InputError(
            f"invalid {kind} {part!r} for the password manager: 1-128 of A-Z a-z 0-9 . _ -, starting with a letter "
            "or digit, no '..'"
        )
    return part


def entry_name(name: str) -> tuple[str, str]:
    """A vault entry name `<owner>/<credential>` (`acme/sql-login`, `mq-POS-01/admin`), split and allow-listed."""
    owner, sep, credential = name.partition("/") if isinstance(name, str) else ("", "", "")
    if not sep:
        raise InputError(f"invalid password-manager entry {name!r}: write <owner>/<credential>, e.g. acme/sql-login")
    return _check_part("owner", owner), _check_part("credential name", credential)


def secret_name(env: str, owner: str, name: str) -> str:
    """The Secrets Manager name `kprov/<env>/<owner>/<name>`; every part allow-listed."""
    parts = _check_part("environment", env), _check_part("owner", owner), _check_part("credential name", name)
    return "kprov/" + "/".join(parts)


def _refuse_embedded(secret: Secret, **texts: str) -> None:
    """Descriptions and tags are readable by anyone who can list secrets: the value must not be in them."""
    value = secret.reveal()
    for field, text in texts.items():
        if value and value in text:
            raise InputError(f"the {field} of a credential must not contain the credential itself")


def _never_overwrite(where: str) -> StepError:
    return StepError(
        f"{where} already holds a different credential; kprov never overwrites a stored credential",
        hint="reuse the stored one (the step finds it), or rotate it on purpose and delete the old entry first",
    )


# --- AWS Secrets Manager ----------------------------------------------------------------------------------


class SecretsManagerVault:
    """Secrets under `kprov/<env>/<owner>/<credential>`, tagged `kprov:managed=true`; reference `ARN#VersionId`.

    `client` is a boto3 secretsmanager client (typed Any: boto3 stays out of this module's imports).
    """

    def __init__(self, client: Any, env_name: str) -> None:
        self._client = client
        self.env_name = _check_part("environment", env_name)

    def _name(self, name: str) -> str:
        return secret_name(self.env_name, *entry_name(name))

    def _call(self, operation: str, **params: object) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(**params)
        except Exception as exc:
            error = getattr(exc, "response", None)
            if not isinstance(error, dict):  # not a ClientError: a parameter or transport failure
                message = REDACTOR.redact(str(exc))
                raise AwsError(service="secretsmanager", operation=operation, code=type(exc).__name__,
                               message=message) from None  # `from None`: the original text may hold the value
            details = error.get("Error", {})
            raise AwsError(service="secretsmanager", operation=operation, code=str(details.get("Code", "?")),
                           message=REDACTOR.redact(str(details.get("Message", "")))) from None

    def _describe(self, full_name: str) -> dict[str, Any] | None:
        try:
            return self._call("describe_secret", SecretId=full_name)
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise

    @staticmethod
    def _reference(described: Mapping[str, Any]) -> str:
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
        return None if described is None else self._reference(described)

    def store(self, name: str, secret: Secret, *, description: str, tags: Mapping[str, str]) -> str:
        full_name = self._name(name)
        _refuse_embedded(secret, description=description, tags=" ".join(f"{k}={v}" for k, v in tags.items()))
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
        reference = self._reference(described)
        if self.fetch(reference) != secret:
            raise _never_overwrite(f"Secrets Manager secret {full_name}")
        have = {t["Key"]: t["Value"] for t in described.get("Tags") or ()}
        missing = [{"Key": k, "Value": v} for k, v in wanted.items() if have.get(k) != v]
        if missing:  # adds or corrects kprov's tags; never removes anyone else's
            self._call("tag_resource", SecretId=described["ARN"], Tags=missing)
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


def _credential_variable(name: str, value: str) -> bool:
    upper = name.upper()
    aws_credential = upper.startswith("AWS_") and any(w in upper for w in ("KEY", "SECRET", "TOKEN", "CREDENTIAL"))
    return aws_credential or REDACTOR.leaks(value)


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

    `argv` and `fetch_argv` are templates where `{name}` is the entry name (`acme/sql-login`, allow-listed)
    and, in `fetch_argv`, `{id}` is the id the store command printed (else the name). The child's
    environment lacks AWS credential variables and any variable holding a registered secret; its output is
    captured, never shown. `fetch_argv` prints the secret on stdout (one trailing newline is dropped).

    With `fetch_argv`, store is idempotent (an entry it can read back with the same value is kept, one with a
    different value is an error) and verified (read back after writing). A fetch that exits non-zero counts
    as "no such entry". Without it, the password manager itself must refuse or handle duplicates.
    """

    def __init__(self, argv: Sequence[str], fetch_argv: Sequence[str] | None = None, *, timeout: float = 60.0) -> None:
        self.argv = _check_argv("command", argv)
        self.fetch_argv = None if fetch_argv is None else _check_argv("fetch_command", fetch_argv)
        self.timeout = timeout

    def _run(self, argv: list[str], stdin: str) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if not _credential_variable(k, v)}
        try:
            return subprocess.run(argv, input=stdin.encode(), capture_output=True, env=env, timeout=self.timeout,
                                  check=False, close_fds=True)
        except FileNotFoundError:
            raise InputError(f"password manager command {argv[0]!r} not found") from None
        except OSError as exc:
            raise InputError(f"password manager command {argv[0]!r} cannot be run: {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise StepError(f"password manager command {argv[0]!r} did not finish in {self.timeout:g} s") from None

    def _failed(self, argv: list[str], done: subprocess.CompletedProcess[bytes], secret: Secret | None) -> StepError:
        said = done.stderr.decode(errors="replace").strip()
        if secret is not None and secret.reveal():
            said = said.replace(secret.reveal(), MASK)  # a tool that echoes its input
        said = REDACTOR.redact(said)[-500:]  # cut after redacting: a cut could leave half a secret unmatched
        return StepError(f"password manager command {argv[0]!r} failed with exit code {done.returncode}"
                         + (f": {said}" if said else ""))

    def _read(self, name: str, entry_id: str, *, missing_ok: bool) -> Secret | None:
        if self.fetch_argv is None:
            raise InputError("the password manager has no fetch_command configured: kprov cannot read credentials")
        argv = _argv(self.fetch_argv, name=name, id=entry_id)
        done = self._run(argv, "")
        if done.returncode != 0:
            if missing_ok:
                return None
            raise self._failed(argv, done, None)
        try:
            text = done.stdout.decode()
        except UnicodeDecodeError:
            raise StepError(f"password manager command {argv[0]!r} printed something that is not UTF-8") from None
        return Secret(text.removesuffix("\n").removesuffix("\r"))

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
                    raise _never_overwrite(f"password manager entry {name}")
                return f"command:{name}"
        argv = _argv(self.argv, name=name)
        done = self._run(argv, secret.reveal() + "\n")
        if done.returncode != 0:
            raise self._failed(argv, done, secret)
        first = (done.stdout.decode(errors="replace").splitlines() or [""])[0].strip()
        entry_id = first if _COMMAND_ID.fullmatch(first) and not REDACTOR.leaks(first) else ""
        reference = f"command:{name}#{entry_id}" if entry_id else f"command:{name}"
        if self.fetch_argv is not None and self.fetch(reference) != secret:
            raise StepError(f"password manager entry {name} does not read back as the value just stored")
        return reference

    def fetch(self, reference: str) -> Secret:
        if not reference.startswith("command:"):
            raise InputError(f"not a password-manager command reference: {REDACTOR.redact(reference)!r}")
        name, _, entry_id = reference.removeprefix("command:").partition("#")
        name = "/".join(entry_name(name))
        if entry_id and not _COMMAND_ID.fullmatch(entry_id):
            raise InputError(f"invalid entry id in reference {REDACTOR.redact(reference)!r}")
        found = self._read(name, entry_id or name, missing_ok=False)
        assert found is not None
        return found


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

    def fetch(self, reference: str) -> Secret:
        if not reference.startswith("manual:"):
            raise InputError(f"not a manual password-manager reference: {REDACTOR.redact(reference)!r}")
        name = "/".join(entry_name(reference.removeprefix("manual:")))
        self._require_terminal(f"read {name}")
        prompt = f"Password of {name} (from the Kensium Password Manager)"
        spec = InputSpec(id=f"vault:{name}", type="secret", prompt=prompt)

        def validate(value: object) -> str | None:
            text = value.reveal() if isinstance(value, Secret) else value
            return None if isinstance(text, str) and text else "paste the password stored for this entry"

        answer = self.operator.ask(spec, default=None, choices=(), validate=validate)
        if isinstance(answer, Secret):
            return answer
        if isinstance(answer, str) and answer:
            return Secret(answer)
        raise InputError(f"no password given for {name}")


# --- the factory the CLI calls ----------------------------------------------------------------------------


def make_vault(kind: str, *, settings: Mapping[str, object], client_factory: ClientFactory, operator: Operator,
               env_name: str) -> Vault:
    """The backend of the config's `vault:` section (`backend`, `command`, `fetch_command`, `timeout`).

    `client_factory` is the run's `ClientFactory` (its secretsmanager client is made here, boto3 imported by it).
    """
    unknown = sorted(set(settings) - {"backend", "command", "fetch_command", "timeout"})
    if unknown:
        raise InputError(f"unknown vault setting(s): {', '.join(unknown)}")
    if kind not in BACKENDS:
        raise InputError(f"unknown vault backend {kind!r}: use one of {', '.join(BACKENDS)}")
    if settings.get("backend", kind) != kind:
        raise InputError(f"vault backend {kind!r} was asked for, but the settings say {settings['backend']!r}")
    command_only = sorted({"command", "fetch_command", "timeout"} & set(settings))
    if kind != "command" and command_only:
        raise InputError(f"{', '.join(command_only)} apply only to the command backend, not {kind}")
    if kind == "secretsmanager":
        return SecretsManagerVault(client_factory.client("secretsmanager"), env_name)
    if kind == "manual":
        return ManualVault(operator)
    if "command" not in settings:
        raise InputError("the command vault backend needs `command`: the argv that stores an entry read on stdin")
    timeout = settings.get("timeout", 60)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InputError("vault timeout must be a positive number of seconds")
    fetch = settings.get("fetch_command")
    return CommandVault(_check_argv("command", settings["command"]),
                        None if fetch is None else _check_argv("fetch_command", fetch), timeout=float(timeout))
