"""What every password-manager backend shares: entry names, the never-overwrite rule, and running a program.

A password manager that is a program (the `command` backend, `keepassxc-cli`, `pass`) is run through
`Program`: an argv without a shell, the secret on stdin only (never argv, which `ps` shows to every user,
nor the environment), a child environment without AWS credentials or any variable holding a registered
secret, output captured and never shown, and its error text redacted before it reaches a message.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kensium_provision.errors import InputError, StepError
from kensium_provision.secret import MASK, REDACTOR, Secret

__all__ = [
    "Done",
    "Program",
    "check_part",
    "entry_name",
    "never_overwrite",
    "one_line",
    "reference_name",
    "refuse_embedded",
    "secret_name",
]

# Starts with a letter or digit: a part like `-rf` would read as an option to a password-manager CLI.
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_part(kind: str, part: object) -> str:
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
    return check_part("owner", owner), check_part("credential name", credential)


def reference_name(prefix: str, reference: str, what: str) -> str:
    """The entry name `<owner>/<credential>` of a `<prefix><owner>/<credential>` reference, allow-listed."""
    if not isinstance(reference, str) or not reference.startswith(prefix):
        shown = REDACTOR.redact(str(reference))  # a value pasted where a reference belongs stays masked
        raise InputError(f"not a {what} reference: {shown!r} (expected {prefix}<owner>/<credential>)")
    return "/".join(entry_name(reference.removeprefix(prefix)))


def secret_name(env: str, owner: str, name: str) -> str:
    """The Secrets Manager name `kprov/<env>/<owner>/<name>`; every part allow-listed."""
    parts = check_part("environment", env), check_part("owner", owner), check_part("credential name", name)
    return "kprov/" + "/".join(parts)


def refuse_embedded(secret: Secret, **texts: str) -> None:
    """Descriptions and tags are readable by anyone who can list secrets: the value must not be in them."""
    value = secret.reveal()
    for what, text in texts.items():
        if value and value in text:
            raise InputError(f"the {what} of a credential must not contain the credential itself")


def never_overwrite(where: str) -> StepError:
    return StepError(
        f"{where} already holds a different credential; kprov never overwrites a stored credential",
        hint="reuse the stored one (the step finds it), or rotate it on purpose (the vault's update)",
    )


def one_line(program: str, secret: Secret) -> str:
    """The value of a program that reads one line per answer: a line break would end the answer early."""
    value = secret.reveal()
    if not value or "\n" in value or "\r" in value:
        raise InputError(f"{program} stores a credential of one non-empty line; this one is empty or has a line break")
    return value


def _credential_variable(name: str, value: str) -> bool:
    upper = name.upper()
    aws_credential = upper.startswith("AWS_") and any(w in upper for w in ("KEY", "SECRET", "TOKEN", "CREDENTIAL"))
    return aws_credential or REDACTOR.leaks(value)


@dataclass(frozen=True, slots=True)
class Done:
    """What a program did: its exit code and its output (stdout holds secrets: never shown)."""

    code: int
    stdout: bytes
    stderr: str  # decoded, not yet redacted


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """How to run one password-manager program: `name` for messages, a timeout, variables to set (`env`),
    and how to install it (`install`, the hint when it is not found)."""

    name: str
    timeout: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)
    install: str = ""

    def run(self, argv: Sequence[str], stdin: str = "") -> Done:
        child = {k: v for k, v in os.environ.items() if not _credential_variable(k, v)}
        child.update(self.env)
        try:
            done = subprocess.run(list(argv), input=stdin.encode(), capture_output=True, env=child,
                                  timeout=self.timeout, check=False, close_fds=True)
        except FileNotFoundError:
            raise InputError(f"password manager command {argv[0]!r} not found", hint=self.install) from None
        except OSError as exc:
            raise InputError(f"password manager command {argv[0]!r} cannot be run: {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise StepError(f"password manager command {argv[0]!r} did not finish in {self.timeout:g} s") from None
        return Done(done.returncode, done.stdout, done.stderr.decode(errors="replace"))

    def failed(self, done: Done, *secrets: Secret, doing: str = "", hint: str = "") -> StepError:
        """The error for a failed run: the program, its exit code and the end of what it said, redacted."""
        said = done.stderr.strip()
        for secret in secrets:
            if secret.reveal():
                said = said.replace(secret.reveal(), MASK)  # a tool that echoes its input
        said = REDACTOR.redact(said)[-500:]  # cut after redacting: a cut could leave half a secret unmatched
        what = f"{self.name} failed" + (f" to {doing}" if doing else "") + f" with exit code {done.code}"
        return StepError(what + (f": {said}" if said else ""), hint=hint)

    def text(self, done: Done) -> str:
        """Its stdout as text, without the one line break a program prints after a value."""
        try:
            text = done.stdout.decode()
        except UnicodeDecodeError:
            raise StepError(f"{self.name} printed something that is not UTF-8") from None
        return text.removesuffix("\n").removesuffix("\r")
