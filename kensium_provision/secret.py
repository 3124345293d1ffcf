"""Credentials as values that never show themselves, the redactor that scrubs any text, and passwords.

Pure core: stdlib only. Every `Secret` registers its value with `REDACTOR`, so a value that escapes
through a path the mask cannot cover (botocore DEBUG logs, a library's exception text) is still scrubbed.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import logging
import re
import secrets as _random
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NoReturn
from urllib.parse import quote, quote_plus

from kensium_provision.errors import InputError

__all__ = [
    "MASK",
    "POLICIES",
    "REDACTOR",
    "PasswordPolicy",
    "RedactingFilter",
    "Redactor",
    "Secret",
    "check_password",
    "generate_password",
    "is_secret_key",
    "json_default",
    "masked",
    "password_policy",
]

MASK = "••••••••"
_PLAIN = frozenset({str, int, float, bool, type(None)})


def masked(value: object) -> object:
    """`value` as it may be shown or journaled: every Secret (anything with `reveal`) as `MASK`, through
    nested mappings, lists and tuples (as lists). The one masking function; registered values inside
    plain text are `REDACTOR.redact`'s business."""
    if type(value) in _PLAIN:  # exactly a built-in scalar (no subclass): nothing to mask, and the common case
        return value
    if hasattr(value, "reveal"):
        return MASK
    if isinstance(value, Mapping):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


class Secret:
    """A credential. `reveal()` is the only way to the value; every other path shows `MASK`.

    Deliberately not a dataclass: `dataclasses.asdict` would copy the value out of one. Immutable,
    unpicklable (a pickle is a file holding the password), copy returns itself.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str | Secret, *, redactor: Redactor | None = None) -> None:
        if isinstance(value, Secret):
            value = value._value
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, not {type(value).__name__}")  # the type only, never the value
        object.__setattr__(self, "_value", value)
        (redactor or REDACTOR).register(value)

    def reveal(self) -> str:
        """The value itself: call it only at the moment a service needs it, never to display it."""
        return self._value

    def derive(self, make: Callable[..., str], *others: Secret) -> Secret:
        """A value made from this secret (and `others`), e.g. a connection string: a Secret as well."""
        return Secret(make(self._value, *(other._value for other in others)))

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        try:
            return format(MASK, spec)  # keeps alignment and width specs working in tables
        except (TypeError, ValueError):  # a numeric spec: the mask as is, never an error quoting the value
            return MASK

    def __rich__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented  # comparing with a plain str needs an explicit reveal()
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(MASK)  # equal for all: consistent with ==, and says nothing about the value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Secret cannot be pickled: it would write the value to a file")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self


def json_default(value: object) -> object:
    """`json.dumps(obj, default=json_default)`: Secrets become the mask; anything else stays an error."""
    if isinstance(value, Secret):
        return MASK
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Key names whose values are credentials, in any case or separator style (MasterUserPassword, secret_string,
# X-Amz-Security-Token). Identifier-like keys (SecretId, secret_name, password_policy) stay readable: the
# journal must keep references.
_SECRET_WORDS = ("password", "passwd", "passphrase", "pwd", "secret", "token", "credential", "privatekey",
                 "apikey", "authorization", "cookie", "connectionstring")
# Where a credential is, not the credential: `admin_password_entry` names the password manager's entry.
_NOT_SECRET_SUFFIXES = ("id", "ids", "arn", "name", "ref", "refs", "reference", "references", "entry", "entries",
                        "policy", "length", "type", "manager")
_VAULT_REFERENCE = re.compile(r"^vault:\S+$")  # an answers file's reference to a secret (checklist.answers)


def is_secret_key(key: object, value: object = None) -> bool:
    """Whether a mapping key names a credential (its value is masked by `Redactor.redact_obj`); a value that
    is a vault reference (`vault:<reference>`) is where the secret is, never the secret itself."""
    if not isinstance(key, str) or (isinstance(value, str) and _VAULT_REFERENCE.match(value)):
        return False
    flat = re.sub(r"[^a-z0-9]", "", key.lower())
    return any(word in flat for word in _SECRET_WORDS) and not flat.endswith(_NOT_SECRET_SUFFIXES)


def _base64_forms(raw: bytes) -> set[str]:
    """Base64 texts that any blob containing `raw` shows, whatever its offset (`Basic base64(user:pw)`)."""
    forms = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    for offset in range(3):  # raw may start at any byte of a 3-byte group; keep only chars made of raw's bits alone
        start, end = (8 * offset + 5) // 6, (8 * offset + 8 * len(raw)) // 6
        text = base64.b64encode(b"\0" * offset + raw).decode()[start:end]
        forms |= {text, text.replace("+", "-").replace("/", "_")}
    return forms


class Redactor:
    """Every secret value seen in this process, and the code that scrubs them (and their encodings) from text.

    Values shorter than `min_length` are not registered: masking every `abc` in a log hides more than it
    protects (GitHub Actions' lesson). Generated and checked passwords are far longer.
    """

    def __init__(self, *, min_length: int = 4) -> None:
        self.min_length = min_length
        self._forms: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def register(self, secret: Secret | str) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if len(value) < self.min_length:
            return
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1],
                 quote(value, safe=""), quote(value), quote_plus(value), html.escape(value)}
        forms |= _base64_forms(value.encode())
        with self._lock:
            new = {f for f in forms if len(f) >= self.min_length} - self._forms
            if new:
                self._forms |= new
                # longest first, so a connection string is masked whole before the password inside it
                self._ordered = tuple(sorted(self._forms, key=len, reverse=True))

    def leaks(self, text: str) -> bool:
        """Whether `text` holds a registered value (or one of its encodings)."""
        return any(form in text for form in self._ordered)

    def redact(self, text: str) -> str:
        """`text` with every registered value and encoding replaced by the mask."""
        for form in self._ordered:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def redact_obj(self, obj: object) -> object:
        """A copy of nested dicts/lists/tuples with Secrets, registered values and secret-named keys masked."""
        if isinstance(obj, Secret):
            return MASK
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            # A secret-named key masks its text; containers under it (a map of references, the call
            # counts of `secretsmanager:*`) are walked like any other, numbers and flags kept.
            return {
                self.redact(k) if isinstance(k, str) else k:
                    MASK if is_secret_key(k, v) and isinstance(v, str | bytes | Secret) else self.redact_obj(v)
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple | set | frozenset):
            items = [self.redact_obj(item) for item in obj]
            return tuple(items) if isinstance(obj, tuple) else items
        return obj


REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    """A handler filter: formats the message, traceback and stack now, redacted, so no handler sees raw text.

    It drops `exc_info` after rendering it into a redacted `exc_text`: a traceback rendered later from the
    live exception (rich's) could show values this filter never saw.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor or REDACTOR

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format/args pair or a msg whose __str__ fails: a filter that
            # raised would break the caller's logging call, so log something, redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self.redactor.redact(message), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


# --- passwords -------------------------------------------------------------------------------------------

_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))  # printable ASCII without space: every policy's base
# Symbols used when generating: inert in URLs (unreserved or sub-delims), T-SQL literals, connection strings,
# YAML, XML and shells' double quotes; every policy allows them.
_GEN_SYMBOLS = "-_.!*~"
_CLASSES = (("an upper-case letter", string.ascii_uppercase), ("a lower-case letter", string.ascii_lowercase),
            ("a digit", string.digits))


def _symbol(char: str) -> bool:
    return not char.isalnum()


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordPolicy:
    """What a service accepts for a password, and how long kprov's generated ones are.

    Checked values are printable ASCII without space, minus `forbidden`; `min_classes` of upper, lower,
    digit and symbol must appear. Generated values always contain all four classes.
    """

    name: str
    description: str
    min_length: int
    max_length: int
    forbidden: str = ""
    min_classes: int = 0
    min_distinct: int = 1
    length: int = 24

    @property
    def alphabet(self) -> str:
        """The characters generated passwords are drawn from."""
        return string.ascii_letters + string.digits + "".join(c for c in _GEN_SYMBOLS if c not in self.forbidden)


POLICIES: Mapping[str, PasswordPolicy] = MappingProxyType({
    p.name: p for p in (
        PasswordPolicy(name="amazon-mq", description="Amazon MQ broker user: 12-250 characters, 4 distinct, no , : =",
                       min_length=12, max_length=250, forbidden=",:=", min_distinct=4),
        PasswordPolicy(name="rds-sqlserver-master",
                       description="RDS SQL Server master: 8-128 printable ASCII, no / @ \" or space",
                       min_length=8, max_length=128, forbidden='/@"'),
        # ' " ; [ ] { } excluded so the value can sit in a T-SQL N'...' literal and in an ODBC or ADO.NET
        # connection string without any quoting to get wrong.
        PasswordPolicy(name="sql-login",
                       description="SQL Server login: 8-128, upper, lower, digit and symbol, none of ' \" ; [ ] { }",
                       min_length=8, max_length=128, forbidden="'\";[]{}", min_classes=4),
        # Amazon MQ's rule plus the URI delimiters, so the value is safe in an amqps:// URL's user info too.
        PasswordPolicy(name="rabbitmq-user", description="RabbitMQ user: 12-128, 4 distinct, none of , : = @ / ? # %",
                       min_length=12, max_length=128, forbidden=",:=@/?#%", min_distinct=4),
        PasswordPolicy(name="windows-admin", description="Windows Administrator: 12-127, 3 of upper/lower/digit/symbol",
                       min_length=12, max_length=127, min_classes=3),
        # ASP.NET request validation rejects `<x` and `&#` in form posts: keep them out of the tenant manager.
        PasswordPolicy(name="tenant-admin",
                       description="POS Tenant Manager administrator: 12-128, upper, lower, digit and symbol, no < &",
                       min_length=12, max_length=128, forbidden="<&", min_classes=4),
    )
})


def password_policy(policy: str | PasswordPolicy) -> PasswordPolicy:
    """The policy itself, or the one of that name (InputError listing the known names)."""
    if isinstance(policy, PasswordPolicy):
        return policy
    try:
        return POLICIES[policy]
    except KeyError:
        raise InputError(f"unknown password policy {policy!r}: use one of {', '.join(sorted(POLICIES))}") from None


def check_password(policy: str | PasswordPolicy, value: str | Secret, *, username: str = "") -> list[str]:
    """The problems of an operator-supplied password (empty when it is fine); never quotes the value."""
    rules = password_policy(policy)
    text = value.reveal() if isinstance(value, Secret) else value
    problems = []
    if not rules.min_length <= len(text) <= rules.max_length:
        problems.append(f"must be {rules.min_length} to {rules.max_length} characters long (it has {len(text)})")
    if any(c not in _PRINTABLE for c in text):
        problems.append("may hold only printable ASCII characters, without spaces")
    if rules.forbidden and any(c in rules.forbidden for c in text):
        problems.append(f"must not contain any of {' '.join(rules.forbidden)}")
    if len(set(text)) < rules.min_distinct:
        problems.append(f"must have at least {rules.min_distinct} different characters")
    present = [name for name, chars in _CLASSES if any(c in chars for c in text)]
    present += ["a symbol"] if any(_symbol(c) for c in text) else []
    if len(present) < rules.min_classes:
        missing = "upper-case letter, lower-case letter, digit, symbol"
        problems.append(f"must have at least {rules.min_classes} of: {missing}")
    if len(username) >= 3 and username.lower() in text.lower():
        problems.append("must not contain the user name")
    return problems


def generate_password(policy: str | PasswordPolicy, *, length: int | None = None) -> Secret:
    """A random password from the `secrets` module that meets `policy` and holds all four character classes.

    Rejection sampling (draw uniformly, keep the first that passes) keeps every valid password equally likely.
    """
    rules = password_policy(policy)
    size = rules.length if length is None else length
    if not max(rules.min_length, 4) <= size <= rules.max_length:
        raise InputError(f"a {rules.name} password must be {rules.min_length} to {rules.max_length} characters long")
    alphabet = rules.alphabet
    for _ in range(10_000):  # at length 8 about one draw in three passes; 10,000 failures means a broken policy
        candidate = "".join(_random.choice(alphabet) for _ in range(size))
        if (all(any(c in chars for c in candidate) for _, chars in _CLASSES) and any(map(_symbol, candidate))
                and not check_password(rules, candidate)):
            return Secret(candidate)
    raise RuntimeError(f"password policy {rules.name} cannot be met by its own alphabet")
