"""The naming-convention engine: rules (`NameRule`), and a `RuleSet` that checks, renders, compares and numbers names.

Pure: stdlib, `errors` and `yamlio.Loc` only. The rules come from `naming.yaml`, read by
`naming.loader`; what already exists in AWS is discovered elsewhere and handed in as plain strings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from kensium_provision.errors import InputError, Issue
from kensium_provision.yamlio import Loc

__all__ = [
    "ORG_ID",
    "Bound",
    "Example",
    "Limits",
    "NameRule",
    "RuleSet",
    "Slot",
    "UnknownPlaceholder",
    "check_org_id_unique",
    "check_safe_text",
    "derive_bounds",
    "parse_template",
    "rule_regex",
    "template_form",
]

ORG_ID = "org_id"  # the template placeholder that carries the organization id

# `{{ name }}` or `{{ n:02 }}` (a number zero-padded to 2 digits); nothing else is a template.
_SLOT = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*(?::\s*(0[1-9]))?\s*\}\}")

# Categories no name may contain: terminal control (ESC...), invisible format (bidi overrides,
# zero-width), surrogates, private-use, unassigned, and the Unicode line/paragraph separators.
_UNSAFE_CATEGORIES = {
    "Cc": "control", "Cf": "invisible format", "Cs": "surrogate", "Co": "private-use",
    "Cn": "unassigned", "Zl": "line separator", "Zp": "paragraph separator",
}
_SHOWN_MAX = 60  # echo at most this much of a rejected value
_NUMBER_DIGITS = 9


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The limits a service puts on a name, checked on top of the convention's own shape."""

    service: str = ""  # who imposes them, shown in messages ("Amazon S3 bucket names")
    min_length: int | None = None
    max_length: int | None = None
    max_label_length: int | None = None  # DNS: each dot-separated label
    charset: str = ""  # a regex character class every character must match
    no_double_hyphen: bool = False
    no_trailing_hyphen: bool = False
    must_start_with_letter: bool = False
    forbidden: tuple[str, ...] = ()  # reserved whole names, compared ignoring case
    forbidden_prefixes: tuple[str, ...] = ()  # compared exactly


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One accept or reject example of a rule, with the context values a template needs."""

    value: str
    accept: bool
    context: Mapping[str, str] = field(default_factory=dict)
    why: str = ""
    loc: Loc | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NameRule:
    """One naming convention: an anchored `pattern`, or a `template` built from other rules' values."""

    id: str
    title: str
    description: str
    scope: str  # client, site, shared, operator, kprov
    case: str  # exact or insensitive
    form: str  # the human shape shown in messages: db-POS-NN, rms_<org_id>
    convention: str = ""  # N-number in domain.md section 5
    pattern: str = ""
    template: str = ""
    placeholder: str = ""  # the name this rule's values take inside other rules' templates
    numbered: bool = False
    number_field: str = ""
    also_accept: tuple[str, ...] = ()  # other spellings accepted until a conflict is settled
    allow_slash: bool = False
    limits: Limits = field(default_factory=Limits)
    examples: tuple[Example, ...] = ()
    loc: Loc | None = None

    @property
    def insensitive(self) -> bool:
        return self.case == "insensitive"

    @property
    def slots(self) -> tuple[str, ...]:
        """Placeholder names of the template, in order, each once."""
        return _slot_names(self.template)


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    width: int  # zero-padding of a number; 0 for a text value


@dataclass(frozen=True, slots=True)
class Bound:
    """A maximum length derived from a template that embeds the value."""

    length: int
    rule_id: str
    form: str
    limit: int
    label: bool  # derived from a DNS label limit rather than the whole name


# --- free functions ------------------------------------------------------------------------------


def check_safe_text(value: object, *, allow_slash: bool = False) -> list[str]:
    """Problems that make a value unacceptable as any name, before any convention is looked at.

    Control and invisible characters (terminal escapes, bidi overrides), rich markup brackets,
    path separators and `..`, surrounding whitespace and emptiness. Inner spaces are left to the
    rules. `allow_slash` is for the few values that are paths by nature (`pub/`, a CIDR).
    """
    if not isinstance(value, str):
        return [f"must be text, not {type(value).__name__}"]
    if not value:
        return ["is empty"]
    unsafe = [ch for ch in dict.fromkeys(value) if unicodedata.category(ch) in _UNSAFE_CATEGORIES]
    problems = [f"contains the {_UNSAFE_CATEGORIES[unicodedata.category(ch)]} character {_codepoint(ch)}"
                for ch in unsafe[:3]]
    if len(unsafe) > 3:
        problems.append(f"contains {len(unsafe) - 3} more control or invisible characters")
    if value != value.strip():
        problems.append("starts or ends with whitespace")
    if "[" in value or "]" in value:
        problems.append("contains a square bracket (terminal markup)")
    if "\\" in value or ("/" in value and not allow_slash):
        problems.append("contains a path separator")
    if ".." in value:
        problems.append("contains '..'")
    return problems


def check_org_id_unique(org_id: str, existing: Iterable[str]) -> list[str]:
    """Org ids are unique ignoring case (domain.md N1): `acme` is taken when `ACME` exists."""
    wanted = org_id.casefold()
    for other in existing:
        if other.casefold() == wanted:
            return [f"org-id: {_shown(org_id)} is already taken (as {_shown(other)}); org ids are unique ignoring case"]
    return []


def _codepoint(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} ({name})" if name else f"U+{ord(ch):04X}"


def _shown(value: str) -> str:
    """A value as messages echo it: repr (escapes control characters), cut when long."""
    if len(value) <= _SHOWN_MAX:
        return repr(value)
    return f"{value[:_SHOWN_MAX]!r}… ({len(value)} characters)"


_JUDGED_MAX = 65_536  # values judged kept per rule set (a fleet check of 5,000 clients keeps some 20,000)


@lru_cache(maxsize=256)
def _slot_names(template: str) -> tuple[str, ...]:
    # asked several times for each value judged (a fleet check judges 8 names a client)
    return tuple(dict.fromkeys(s.name for s in parse_template(template) if isinstance(s, Slot)))


@lru_cache(maxsize=256)
def parse_template(template: str) -> tuple[str | Slot, ...]:
    """`fusion-rms-{{ org_id }}` to ('fusion-rms-', Slot('org_id', 0)); ValueError if malformed."""
    parts: list[str | Slot] = []
    position = 0
    for match in _SLOT.finditer(template):
        if match.start() > position:
            parts.append(template[position:match.start()])
        parts.append(Slot(match.group(1), int(match.group(2) or 0)))
        position = match.end()
    if position < len(template):
        parts.append(template[position:])
    for part in parts:
        if isinstance(part, str) and ("{{" in part or "}}" in part):
            raise ValueError("a placeholder is written {{ name }} or {{ n:02 }}")
    return tuple(parts)


def template_form(template: str, number_field: str) -> str:
    shown = []
    for part in parse_template(template):
        if isinstance(part, str):
            shown.append(part)
        elif part.name == number_field:
            shown.append("N" * max(part.width, 1))
        else:
            shown.append(f"<{part.name}>")
    return "".join(shown)


# --- the rule set --------------------------------------------------------------------------------


class RuleSet:
    """The loaded naming rules: check, require, render, compare, number and self-test names."""

    __slots__ = ("_bounds", "_by_id", "_by_placeholder", "_judged", "_shapes", "path")

    def __init__(self, path: str, rules: Iterable[NameRule], shapes: Mapping[str, re.Pattern[str]],
                 bounds: Mapping[str, Bound]) -> None:
        self.path = path
        self._by_id = {r.id: r for r in rules}
        self._by_placeholder = {r.placeholder: r for r in self._by_id.values() if r.placeholder}
        self._shapes = dict(shapes)
        self._bounds = dict(bounds)
        # A value's problems under a rule depend only on the value and the context's values of the rule's
        # slots: kept, as `check client --all` checks the same names (and the shared ones) for 5,000 clients.
        self._judged: dict[tuple[str | None, ...], tuple[str, ...]] = {}

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    @property
    def rules(self) -> tuple[NameRule, ...]:
        return tuple(self._by_id.values())

    def rule(self, rule_id: str) -> NameRule:
        try:
            return self._by_id[rule_id]
        except KeyError:
            import difflib  # only on this error path

            close = difflib.get_close_matches(rule_id, self._by_id, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known rules: {', '.join(self._by_id)}"
            raise InputError(f"unknown naming rule {_shown(rule_id)}", hint=hint) from None

    def max_length(self, rule_id: str) -> int | None:
        """The effective maximum: the rule's own limit or the tightest one derived from templates."""
        rule = self.rule(rule_id)
        limits = [n for n in (rule.limits.max_length, self._bound_length(rule)) if n is not None]
        return min(limits) if limits else None

    # -- checking

    def check(self, rule_id: str, value: str, context: Mapping[str, str] | None = None) -> list[str]:
        """Problems of `value` under the rule, each naming it; empty when valid.

        `context` supplies placeholder values (`org_id`, `host`...): the value must then be exactly
        the name made from them. Without them only the shape is checked.
        """
        rule = self.rule(rule_id)
        return [f"{rule.id}: {p}" for p in self._problems(rule, value, context or {})]

    def require(self, rule_id: str, value: str, context: Mapping[str, str] | None = None) -> str:
        """The value if valid, else `InputError` naming the rule, the problem and a valid example."""
        message = self.explain(rule_id, value, context)
        if message:
            raise InputError(message)
        return value

    def explain(self, rule_id: str, value: str, context: Mapping[str, str] | None = None) -> str | None:
        """The one-line message `require` raises, or None when the value is valid."""
        rule = self.rule(rule_id)
        problems = self._problems(rule, value, context or {})
        if not problems:
            return None
        shown = _shown(value) if isinstance(value, str) else repr(value)
        return (f"{shown} breaks naming rule {rule.id} ({rule.title}, {rule.form}): {'; '.join(problems)}; "
                f"for example {self.example(rule_id, context)}")

    def check_unique(self, rule_id: str, value: str, existing: Iterable[str]) -> list[str]:
        """For a create: the name must not exist yet (compared under the rule's case policy)."""
        for other in existing:
            if self.same(rule_id, value, other):
                return [f"{rule_id}: {_shown(value)} already exists (as {_shown(other)})"]
        return []

    def same(self, rule_id: str, a: str, b: str) -> bool:
        """Equality under the rule's case policy; an `also_accept` spelling equals the canonical one."""
        rule = self.rule(rule_id)
        return self._canonical(rule, a) == self._canonical(rule, b)

    # -- making names

    def render(self, rule_id: str, context: Mapping[str, object]) -> str:
        """The name a template rule makes from `context`; every input and the result are validated."""
        rule = self.rule(rule_id)
        name, values = self._fill(rule, context)
        return self.require(rule.id, name, values)

    def example(self, rule_id: str, context: Mapping[str, object] | None = None) -> str:
        """A valid name: made from `context` when it is complete and valid, else the first accept example."""
        rule = self.rule(rule_id)
        if rule.template and context and all(s in context for s in rule.slots if s != rule.number_field):
            try:
                name, values = self._fill(rule, {rule.number_field: 1, **context} if rule.number_field else context)
            except InputError:
                pass
            else:
                if not self._problems(rule, name, values):  # not `require`: its message calls example()
                    return name
        return next(e.value for e in rule.examples if e.accept)

    def variants(self, rule_id: str, context: Mapping[str, object] | None = None) -> tuple[str, ...]:
        """Every accepted spelling, canonical first (e.g. both billing tag keys, OrgId and OrgID)."""
        rule = self.rule(rule_id)
        return (self.example(rule_id, context), *rule.also_accept)

    def next_free(self, rule_id: str, existing: Iterable[str]) -> str:
        """The next name of a numbered rule: one above the highest number in use (`mq-POS-03` after 01, 02).

        Never the lowest gap: a retired number is not reused, so an old credential, snapshot or journal
        entry never points at a new resource of the same name. Names are matched under the case policy
        (`db-pos-02` counts); names of another shape are ignored; unpadded ones (`mq-POS-7`) still count.
        """
        rule = self.rule(rule_id)
        if not rule.numbered or set(rule.slots) != {rule.number_field}:
            raise InputError(f"naming rule {rule.id} is not numbered on its own ({rule.form})")
        shape = self._shapes[rule.id]
        matches = (shape.fullmatch(name) for name in existing)
        used = [int(digits) for m in matches if m and _is_number(digits := m.group(rule.number_field))]
        return self.render(rule_id, {rule.number_field: max(used, default=0) + 1})

    def derived_names(self, org_id: str, context: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every client-scope name for one organization, by rule id, each valid under its rule.

        Rules needing more than the org id (a host name needs `domain`, a store vhost `site_id`) are
        included when `context` supplies those values.
        """
        org_rule = self._by_placeholder[ORG_ID]
        self.require(org_rule.id, org_id)
        values: dict[str, object] = {**(context or {}), ORG_ID: org_id}
        return {
            rule.id: self.render(rule.id, values)
            for rule in self._by_id.values()
            if rule.scope == "client" and rule.template and not rule.numbered and set(rule.slots) <= values.keys()
        }

    def self_test(self) -> list[Issue]:
        """Every rule against its own examples: accepts must pass, rejects must fail."""
        issues: list[Issue] = []
        for index, rule in enumerate(self._by_id.values()):
            crumb = f"rules[{index}] (id={rule.id}) › examples"
            for example in rule.examples:
                problems = self._problems(rule, example.value, example.context)
                where = example.loc or rule.loc
                if example.accept and problems:
                    message = f"accept example {_shown(example.value)} is rejected: {'; '.join(problems)}"
                elif not example.accept and not problems:
                    message = f"reject example {_shown(example.value)} is accepted"
                else:
                    continue
                issues.append(Issue(where.path, where.line, where.column, crumb, message) if where
                              else Issue(self.path, 1, 1, crumb, message))
            minimum = rule.limits.min_length or 1
            bound = self.max_length(rule.id)
            if bound is not None and bound < minimum and rule.loc:
                issues.append(rule.loc.issue(f"rules[{index}] (id={rule.id})",
                                             f"no value fits: the maximum length is {bound}, the minimum {minimum}"))
        return sorted(issues)

    # -- internals

    def _fill(self, rule: NameRule, context: Mapping[str, object]) -> tuple[str, dict[str, str]]:
        """Substitute validated context values into the template (the result itself is not checked)."""
        if not rule.template:
            raise InputError(f"naming rule {rule.id} is a pattern ({rule.form}); it cannot make a name")
        values: dict[str, str] = {}
        parts = parse_template(rule.template)
        for part in parts:
            if not isinstance(part, Slot) or part.name in values:
                continue
            if part.name not in context:
                raise InputError(f"naming rule {rule.id} needs {part.name} to make a name ({rule.form})")
            raw = context[part.name]
            if part.name == rule.number_field:
                values[part.name] = _format_number(rule, raw, part.width)
            else:
                values[part.name] = self.require(self._by_placeholder[part.name].id, str(raw))
        return "".join(p if isinstance(p, str) else values[p.name] for p in parts), values

    def _canonical(self, rule: NameRule, value: str) -> str:
        if rule.also_accept and rule.template and not rule.slots:
            fold = str.casefold if rule.insensitive else str
            if any(fold(value) == fold(alt) for alt in rule.also_accept):
                value = rule.template
        return value.casefold() if rule.insensitive else value

    def _problems(self, rule: NameRule, value: str, context: Mapping[str, str]) -> list[str]:
        if not isinstance(value, str) or self._by_id.get(rule.id) is not rule:  # not one of this set's rules
            return self._judge(rule, value, context)
        key = (rule.id, value, *(str(context[s]) if s in context else None for s in rule.slots))
        found = self._judged.get(key)
        if found is None:
            if len(self._judged) >= _JUDGED_MAX:
                self._judged.clear()
            found = self._judged[key] = tuple(self._judge(rule, value, context))
        return list(found)

    def _judge(self, rule: NameRule, value: str, context: Mapping[str, str]) -> list[str]:
        unsafe = check_safe_text(value, allow_slash=rule.allow_slash)
        if unsafe:
            return unsafe  # nothing else is worth saying about a value that must never be shown raw
        if any(self.same(rule.id, value, alt) for alt in rule.also_accept):
            return []
        match = self._shapes[rule.id].fullmatch(value)
        if match is None:
            verb = "must match" if rule.slots else "must be"  # a shape with placeholders, else a literal or words
            return [f"{verb} {rule.form}"]
        problems: list[str] = []
        if rule.number_field:
            problems += _number_problems(rule, match.group(rule.number_field), context)
        problems += self._context_problems(rule, match, context)
        problems += self._limit_problems(rule, value)
        return problems

    def _context_problems(self, rule: NameRule, match: re.Match[str], context: Mapping[str, str]) -> list[str]:
        given = [s for s in rule.slots if s in context and s != rule.number_field]
        problems: list[str] = []
        for name in given:
            source = self._by_placeholder[name]
            bad = self._problems(source, str(context[name]), {})
            if bad:
                problems.append(f"its {name} {_shown(str(context[name]))} breaks naming rule {source.id}: {bad[0]}")
        if problems:
            return problems
        fold = str.casefold if rule.insensitive else str
        wrong = [n for n in given if fold(match.group(n)) != fold(str(context[n]))]
        if not wrong:
            return []
        if set(given) == set(rule.slots):  # everything known: say the whole name
            expected = "".join(p if isinstance(p, str) else str(context[p.name])
                               for p in parse_template(rule.template))
            inputs = ", ".join(f"{n} {context[n]}" for n in given)
            return [f"must be {expected} (from {inputs})"]
        return [f"its {n} part is {_shown(match.group(n))}, expected {_shown(str(context[n]))}" for n in wrong]

    def _limit_problems(self, rule: NameRule, value: str) -> list[str]:
        limits, problems = rule.limits, []
        by = f" ({limits.service})" if limits.service else ""
        length = len(value)
        if limits.min_length is not None and length < limits.min_length:
            problems.append(f"is {length} characters long; the minimum is {limits.min_length}{by}")
        bound = self._bounds.get(rule.id)
        own_max = limits.max_length
        if bound is not None and length > bound.length and (own_max is None or bound.length < own_max):
            label = "a DNS label of " if bound.label else ""
            problems.append(f"is {length} characters long; at most {bound.length} so that {bound.rule_id} "
                            f"({bound.form}) stays within {label}{bound.limit} characters")
        elif own_max is not None and length > own_max:
            problems.append(f"is {length} characters long; the maximum is {own_max}{by}")
        if limits.charset:
            allowed = re.compile(limits.charset)
            bad = [ch for ch in dict.fromkeys(value) if not allowed.fullmatch(ch)]
            if bad:
                problems.append(f"contains {', '.join(repr(c) for c in bad[:5])}; allowed: {limits.charset}{by}")
        if limits.max_label_length is not None:
            long = [label for label in value.split(".") if len(label) > limits.max_label_length]
            if long:
                problems.append(f"has a label longer than {limits.max_label_length} characters{by}")
        if limits.must_start_with_letter and not (value[:1].isascii() and value[:1].isalpha()):
            problems.append(f"must start with a letter{by}")
        if limits.no_double_hyphen and "--" in value:
            problems.append(f"must not contain '--'{by}")
        if limits.no_trailing_hyphen and value.endswith("-"):
            problems.append(f"must not end with '-'{by}")
        if value.casefold() in {w.casefold() for w in limits.forbidden}:
            problems.append(f"{_shown(value)} is reserved{by}")
        problems += [f"must not start with {prefix!r}{by}" for prefix in limits.forbidden_prefixes
                     if value.startswith(prefix)]
        return problems

    def _bound_length(self, rule: NameRule) -> int | None:
        bound = self._bounds.get(rule.id)
        return bound.length if bound else None


def _format_number(rule: NameRule, raw: object, width: int) -> str:
    text = str(raw)
    if isinstance(raw, bool) or not _is_number(text) or int(text) < 1:
        raise InputError(f"naming rule {rule.id} numbers are whole numbers from 1, not {_shown(text)}")
    return f"{int(text):0{width}d}"


def _is_number(text: str) -> bool:
    # int() refuses 4300+ digits with ValueError; no resource number needs more than a few
    return text.isascii() and text.isdigit() and len(text) <= _NUMBER_DIGITS


def _number_problems(rule: NameRule, digits: str, context: Mapping[str, str]) -> list[str]:
    width = next(p.width for p in parse_template(rule.template)
                 if isinstance(p, Slot) and p.name == rule.number_field)
    if not _is_number(digits):
        return [f"the number has more than {_NUMBER_DIGITS} digits"]
    number = int(digits)
    if number < 1:
        return ["numbers start at 1"]
    problems = []
    if digits != f"{number:0{width}d}":
        problems.append(f"the number is written {number:0{width}d} (zero-padded to {width} digits)")
    wanted = context.get(rule.number_field)
    if wanted is not None and _is_number(str(wanted)) and int(str(wanted)) != number:
        problems.append(f"the number must be {int(str(wanted)):0{width}d}")
    return problems


# --- compiling (used by the loader) ------------------------------------------------------------


class UnknownPlaceholder(Exception):
    """A template names a placeholder no (valid) rule declares; the loader has reported it already."""


def rule_regex(rule: NameRule, by_placeholder: Mapping[str, NameRule], *, named: bool, stack: tuple[str, ...]) -> str:
    """The regex of a rule without anchors; in a template, `{{ x }}` becomes the pattern of x's rule."""
    if rule.id in stack:
        raise ValueError(f"placeholders loop: {' -> '.join((*stack, rule.id))}")
    if rule.pattern:
        return f"(?:{rule.pattern[1:-1]})"
    pieces, seen = [], set()
    for part in parse_template(rule.template):
        if isinstance(part, str):
            pieces.append(re.escape(part))
            continue
        if part.name == rule.number_field:
            inner = "[0-9]+"
        elif part.name in by_placeholder:
            inner = rule_regex(by_placeholder[part.name], by_placeholder, named=False, stack=(*stack, rule.id))
        else:
            raise UnknownPlaceholder  # unknown, or its rule is broken: reported while parsing
        if not named:
            pieces.append(f"(?:{inner})")
        elif part.name in seen:
            pieces.append(f"(?P={part.name})")
        else:
            seen.add(part.name)
            pieces.append(f"(?P<{part.name}>{inner})")
    return "".join(pieces)


def derive_bounds(rules: list[NameRule], by_placeholder: Mapping[str, NameRule]) -> dict[str, Bound]:
    """For each placeholder rule, the longest value that keeps every template using it within its limits.

    E.g. `fusion-rms-{{ org_id }}` under S3's 63 leaves 52 for the org id. The other placeholders of
    a template count at their minimum length. A DNS label limit applies to a placeholder only when its
    charset has no dot.
    """
    def min_length(name: str, width: int, stack: tuple[str, ...] = ()) -> int:
        source = by_placeholder.get(name)
        if source is None or source.id in stack:
            return max(width, 1)
        if source.limits.min_length:
            return source.limits.min_length
        if source.template:
            return sum(len(p) if isinstance(p, str) else min_length(p.name, p.width, (*stack, source.id))
                       for p in parse_template(source.template))
        return 1

    bounds: dict[str, Bound] = {}

    def offer(target: NameRule, bound: Bound) -> None:
        if target.id not in bounds or bound.length < bounds[target.id].length:
            bounds[target.id] = bound

    for rule in rules:
        if not rule.template:
            continue
        parts = parse_template(rule.template)
        form = rule.form
        for name in rule.slots:
            target = by_placeholder.get(name)
            if target is None or name == rule.number_field:
                continue
            if rule.limits.max_length is not None:
                count = sum(1 for p in parts if isinstance(p, Slot) and p.name == name)
                fixed = sum(len(p) if isinstance(p, str) else (0 if p.name == name else min_length(p.name, p.width))
                            for p in parts)
                offer(target, Bound((rule.limits.max_length - fixed) // count, rule.id, form,
                                     rule.limits.max_length, label=False))
            charset = target.limits.charset
            if rule.limits.max_label_length is not None and charset and not re.fullmatch(charset, "."):
                for label in _labels(parts):
                    count = sum(1 for p in label if isinstance(p, Slot) and p.name == name)
                    if count:
                        fixed = sum(len(p) if isinstance(p, str) else
                                    (0 if p.name == name else min_length(p.name, p.width)) for p in label)
                        offer(target, Bound((rule.limits.max_label_length - fixed) // count, rule.id, form,
                                             rule.limits.max_label_length, label=True))
    return bounds


def _labels(parts: tuple[str | Slot, ...]) -> list[list[str | Slot]]:
    """Split template parts at literal dots into DNS labels."""
    labels: list[list[str | Slot]] = [[]]
    for part in parts:
        if isinstance(part, str):
            pieces = part.split(".")
            labels[-1].append(pieces[0])
            labels.extend([piece] for piece in pieces[1:])
        else:
            labels[-1].append(part)
    return labels
