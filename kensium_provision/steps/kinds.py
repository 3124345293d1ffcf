"""Typed values: the one place an answer or a parameter is checked against its kind.

An input's `type` (checklist `inputs:`), a manual step's evidence `type` and a step parameter's `kind`
(`steps.base.Param`) all name a kind of this table, so a date, an e-mail address, a time zone, an IPv4
address, a CIDR block or a version is refused the same way at the prompt, in an answers file and in
the engine's checks before the first change. Each problem says the rule and gives an example.

The time zones are the IANA tz database as Python's `zoneinfo` ships it (the system's or the `tzdata`
package's): data, not a list typed here.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kensium_provision.model import InputSpec

__all__ = ["TEXT_KINDS", "Bounds", "check_text", "coerce", "coerce_answer", "parse_yes_no"]


def _date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# A pragmatic address check (one @, a dotted domain, no spaces); what the mailbox accepts only mail can tell.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")


@cache
def _zones() -> frozenset[str]:
    from zoneinfo import available_timezones

    return frozenset(available_timezones())


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _cidr(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _TextKind:
    ok: Callable[[str], bool]
    rule: str
    example: str


TEXT_KINDS: Mapping[str, _TextKind] = {
    "date": _TextKind(_date, "a real calendar date written YYYY-MM-DD", "2026-11-28"),
    "email": _TextKind(lambda t: _EMAIL.fullmatch(t) is not None, "an e-mail address", "support@example.com"),
    "timezone": _TextKind(lambda t: t in _zones(), "an IANA time zone name", "America/New_York"),
    "ipv4": _TextKind(_ipv4, "an IPv4 address (four numbers 0-255)", "203.0.113.10"),
    "cidr": _TextKind(_cidr, "an IPv4 CIDR block whose host bits are zero", "10.0.0.0/16"),
    "version": _TextKind(lambda t: re.fullmatch(r"\d+(\.\d+)+(\.v\d+)?", t) is not None,
                         "a version made of numbers and dots", "15.00.4415.2.v1"),
}


def check_text(kind: str, value: object) -> str | None:
    """The problem of a value of a text kind (`date`, `email`, ...), or None; other kinds pass."""
    found = TEXT_KINDS.get(kind)
    if found is None:
        return None
    if isinstance(value, str) and found.ok(value):
        return None
    if kind == "ipv4" and isinstance(value, str) and _cidr(value):
        size = ipaddress.IPv4Network(value).num_addresses
        if size > 1:
            return f"is a range of {size} addresses; give one IPv4 address (for example {found.example})"
        return None if value.endswith("/32") else f"must be {found.rule} (for example {found.example})"
    return f"must be {found.rule} (for example {found.example})"


@dataclass(frozen=True, slots=True)
class Bounds:
    """Inclusive bounds of a number (None: open on that side)."""

    minimum: int | None = None
    maximum: int | None = None

    def describe(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"from {low} to {high} (for example {low})"
        if low is not None:
            return f"of {low} or more (for example {low})"
        return f"of {high} or less (for example {high})" if high is not None else ""

    def problem(self, number: int) -> str | None:
        low, high = self.minimum, self.maximum
        if (low is None or number >= low) and (high is None or number <= high):
            return None
        return f"must be a number {self.describe()}"


_YES, _NO = ("yes", "y", "true"), ("no", "n", "false")


def parse_yes_no(raw: object) -> bool | None:
    """yes/y/true or no/n/false (any case); anything else (`maybe`) is None: ask again."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    return True if text in _YES else False if text in _NO else None


def _unsafe_text(value: str) -> str | None:
    if value.isprintable():  # no Cc or Cf character (isprintable is False for both): the common case, in C
        return None
    bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cf")]
    if bad:
        return f"contains a control or format character (U+{ord(bad[0]):04X})"
    return None


def coerce(kind: str, raw: object, *, choices: Sequence[str] = (), rule: str = "", bounds: Bounds = Bounds(),
           names: object = None, context: Mapping[str, object] | None = None) -> tuple[object, str | None]:
    """An answer (or evidence) made into its kind and checked; returns (value, problem).

    `kind` is an input type: string, choice, bool, int, secret or a text kind of `TEXT_KINDS`.
    """
    if kind == "secret":
        return raw, None if hasattr(raw, "reveal") else "must come from a password prompt or a vault reference"
    if kind == "bool":
        answer = parse_yes_no(raw)
        return (raw, "answer yes or no (y or n)") if answer is None else (answer, None)
    if kind == "int":
        if isinstance(raw, bool):
            return raw, "must be a whole number"
        try:
            number = int(str(raw).strip())
        except ValueError:
            return raw, "must be a whole number" + (f" {bounds.describe()}" if bounds.describe() else "")
        return number, bounds.problem(number)
    if not isinstance(raw, str):
        return raw, f"must be text (got {type(raw).__name__}; quote it in YAML)"
    problem = _unsafe_text(raw)
    if problem:
        return raw, problem
    if kind == "choice" and raw not in choices:
        return raw, f"must be one of: {', '.join(choices)}"
    if not raw.strip() and not rule:
        return raw, "must not be empty"
    problem = check_text(kind, raw)
    if problem:
        return raw, problem
    if rule and names is not None:
        text_context = {k: v for k, v in (context or {}).items() if isinstance(v, str)}
        problems = names.check(rule, raw, text_context)  # type: ignore[attr-defined]
        if problems:
            found = "; ".join(p.removeprefix(f"{rule}: ") for p in problems)
            return raw, f"breaks naming rule {rule}: {found} (for example {names.example(rule, text_context)})"  # type: ignore[attr-defined]
    return raw, None


def coerce_answer(spec: InputSpec, raw: object, *, choices: Sequence[str] = (), names: object = None,
                  context: Mapping[str, object] | None = None) -> tuple[object, str | None]:
    """An answer to an input (or evidence) made into its type and checked against everything the input
    declares: its type, choices, bounds, naming rule and `differs_from` (an earlier answer it may not equal)."""
    context = context or {}
    value, problem = coerce(spec.type, raw, choices=choices or spec.choices, rule=spec.rule,
                            bounds=Bounds(spec.minimum, spec.maximum), names=names, context=context)
    other = spec.differs_from
    if problem is None and other and other in context and value == context[other]:
        problem = f"must differ from {other} ({context[other]}): choose another"
    return value, problem
