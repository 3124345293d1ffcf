"""Schemas as data for kprov's YAML files, and the one reader that checks a positioned tree against them.

Checklists, the config, the naming rules and answers files are all read the same way (pre-commit's
cfgv, with positions kept): a schema declares each field's kind, whether it is required, its
default and its doc; `Reader` walks a `yamlio.Node` tree against it and collects every problem as
`path:line:col: breadcrumb: message` instead of stopping at the first; the caller adds the checks
that need several fields at once, then `Reader.fail` raises them all, sorted. `json_schema` makes
the JSON Schema (for editors and CI) from the same declarations.

One strictness everywhere, decided here:
- booleans are `true` and `false`. YAML 1.1 also reads yes/no/on/off (in any case) as booleans;
  such a spelling is refused wherever it appears, with the value YAML would have read;
- whole numbers are plain decimal digits. YAML 1.1 reads 01433 as 795 (octal), 0x1F, 0b11 and
  1_000 as numbers, and 12:30 as 750 (base 60); those are refused too;
- a string is a string: an unquoted 3.10, NO or 2024-01-01 where text is expected is refused
  with the advice to quote it, never read as 3.1, false or a date;
- unknown keys are errors, never warnings (a typo must not be ignored), with the closest known
  key suggested, else the allowed ones in their declared order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from kensium_provision.errors import ChecklistError, Issue
from kensium_provision.yamlio import Loc, Node

__all__ = [
    "INVALID",
    "Anything",
    "Bool",
    "Deferred",
    "Field",
    "Int",
    "Kind",
    "Map",
    "MapOf",
    "OneOf",
    "Reader",
    "Record",
    "Seq",
    "Str",
    "Templated",
    "describe",
    "join",
    "json_object",
    "json_schema",
]


# --- kinds ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Str:
    """Text. `choices` or a `pattern` (matched in full) restrict it; `expect` says in words what the
    pattern accepts ("an AWS region name like us-east-1"); `conceal` keeps the value out of messages."""

    choices: tuple[str, ...] = ()
    pattern: str = ""
    expect: str = ""
    conceal: bool = False


@dataclass(frozen=True, slots=True)
class Int:
    """A whole number in decimal digits, optionally from `low` and up to `high`."""

    low: int | None = None
    high: int | None = None


@dataclass(frozen=True, slots=True)
class Bool:
    """`true` or `false`, spelled so."""


@dataclass(frozen=True, slots=True)
class Anything:
    """Any YAML value, read as plain data; a YAML 1.1 surprise anywhere inside it is still refused."""


@dataclass(frozen=True, slots=True)
class Seq:
    """A list of `item`; with `nonempty`, an empty list is an issue with that message."""

    item: Kind
    nonempty: str = ""


@dataclass(frozen=True, slots=True)
class Field:
    """One key of a `Map`: its kind, whether it must be there, its default when absent, its doc."""

    name: str
    kind: Kind
    required: bool = False
    default: object = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Map:
    """A mapping with declared keys (a record). `id_key` names list items in breadcrumbs
    (`steps[3] (id=create)`); `noun` and `owner` word the messages about keys
    ("unknown parameter 'x' for aws.assert"); `name` is its entry in the JSON Schema's `$defs`."""

    fields: tuple[Field, ...]
    name: str = ""
    id_key: str = ""
    noun: str = "key"
    owner: str = ""
    doc: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True, slots=True)
class MapOf:
    """A mapping of free keys (each meeting `keys`) to values of one kind: `{name: value}`."""

    value: Kind
    keys: Str = Str()


@dataclass(frozen=True, slots=True)
class Templated:
    """A value of `kind`, or a `{{ placeholder }}` string standing for one until the run fills it in."""

    kind: Kind


@dataclass(frozen=True, slots=True)
class OneOf:
    """One of several kinds, chosen by the node's own (a string or a mapping, say)."""

    options: tuple[Kind, ...]


@dataclass(frozen=True, slots=True)
class Deferred:
    """A value the caller reads itself, with a kind that depends on other fields (a step's params
    depend on its type); `shape` is all the JSON Schema says about it."""

    shape: Kind = Anything()


Kind = Str | Int | Bool | Anything | Seq | Map | MapOf | Templated | OneOf | Deferred


class _Invalid:
    """The value of a node that did not meet its kind (its issue is already recorded)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"

    def __bool__(self) -> bool:
        return False


INVALID: Final = _Invalid()


# --- messages -------------------------------------------------------------------------------------

_WORDS = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false",
          "null": "empty", "timestamp": "a date", "map": "a mapping", "seq": "a list"}
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_TEMPLATE = {"type": "string", "pattern": r"^\{\{.*\}\}$"}
_CRUMB_ID_MAX = 64


def describe(node: Node) -> str:
    """What a node is, for `expected X, got <this>`: `a list`, `a number (3.10)`, `NO (YAML reads it as false)`."""
    if node.kind in ("map", "seq", "null"):
        return _WORDS[node.kind]
    if node.kind == "bool":
        return f"{node.text} (YAML reads it as {str(node.value).lower()})"
    return f"{_WORDS.get(node.kind, node.kind)} ({node.text})"


def _yaml11(node: Node) -> str | None:
    """How YAML 1.1 reads a plain scalar that looks like something else, or None when it reads as written."""
    if node.quoted or node.kind not in ("bool", "int", "float"):
        return None
    if node.kind == "bool":
        return None if node.text in ("true", "false") else str(node.value).lower()
    if node.kind == "int":
        return None if _DECIMAL.fullmatch(node.text) else str(node.value)
    return repr(node.value) if ":" in node.text or "_" in node.text else None


def _quote_hint(node: Node) -> str:
    if node.kind not in ("int", "float", "bool", "timestamp", "null"):
        return ""
    return f"; YAML reads an unquoted {node.text or '~'} as {_WORDS[node.kind]}: quote it: '{node.text}'"


def join(crumb: str, key: str) -> str:
    """`steps[3] (id=create) › params`: a breadcrumb one key further in (odd keys shown as repr)."""
    shown = key if key.isprintable() and key.strip() == key and key else repr(key)
    return f"{crumb} › {shown}" if crumb else shown


def _item_crumb(crumb: str, index: int, node: Node, kind: Kind) -> str:
    here = f"{crumb}[{index}]"
    if not isinstance(kind, Map) or not kind.id_key:
        return here
    id_node = node.mapping().get(kind.id_key)
    if id_node is None or id_node.kind != "str":
        return here
    value = str(id_node.value)
    if not value or not value.isprintable() or len(value) > _CRUMB_ID_MAX:
        return here
    return f"{here} (id={value})"


def _range(kind: Int) -> str:
    if kind.low is not None and kind.high is not None:
        return f" from {kind.low} to {kind.high}"
    if kind.low is not None:
        return f" of at least {kind.low}"
    return f" of at most {kind.high}" if kind.high is not None else ""


def _unknown(key: str, known: tuple[str, ...], noun: str, owner: str) -> str:
    import difflib  # only on this error path

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(known) or 'none'}"
    return f"unknown {noun} {key!r}{owner}{hint}"


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """A mapping read against a `Map`: its node, its breadcrumb, and the values that were valid.

    `values` holds the read value of every valid key present (a nested `Record`, a tuple for a
    list, the `Node` itself for a `Deferred` field) and the default of every absent key that has
    one. `ok` is whether no issue was found inside the mapping.
    """

    node: Node
    crumb: str
    values: Mapping[str, object]
    ok: bool

    def __contains__(self, key: object) -> bool:
        """Whether the key is written in the file (valid or not)."""
        return isinstance(key, str) and key in self.node.mapping()

    def child(self, key: str) -> Node | None:
        return self.node.mapping().get(key)

    def loc(self, key: str = "") -> Loc:
        """Where the key's value is, else the mapping itself."""
        found = self.child(key) if key else None
        return found.loc if found is not None else self.node.loc

    def key_loc(self, key: str) -> Loc:
        return self.node.key_locs.get(key, self.node.loc)

    def at(self, key: str) -> str:
        return join(self.crumb, key)

    def get(self, key: str, default: object = None) -> object:
        return self.values.get(key, default)

    def text(self, key: str) -> str:
        value = self.values.get(key)
        return value if isinstance(value, str) else ""

    def number(self, key: str) -> int | None:
        value = self.values.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def flag(self, key: str) -> bool:
        return self.values.get(key) is True

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key)
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, tuple) else ()

    def record(self, key: str) -> Record | None:
        value = self.values.get(key)
        return value if isinstance(value, Record) else None

    def records(self, key: str) -> tuple[Record, ...]:
        value = self.values.get(key)
        return tuple(v for v in value if isinstance(v, Record)) if isinstance(value, tuple) else ()

    def present(self) -> dict[str, object]:
        """The valid values of the keys written in the file (no defaults): `Settings(**record.present())`."""
        written = self.node.mapping()
        return {k: v for k, v in self.values.items() if k in written}


class Reader:
    """Reads nodes against kinds, collecting issues; `fail` raises them all at once."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, loc: Loc, crumb: str, message: str) -> None:
        self.issues.append(loc.issue(crumb, message))

    def missing(self, record: Record, key: str, hint: str = "") -> None:
        """A key required only in some cases (the caller knows which), worded like any missing key."""
        self.add(record.node.loc, record.crumb, f"missing required key {key!r}" + (f" ({hint})" if hint else ""))

    def version(self, record: Record, key: str, supported: int) -> None:
        """`schema: 2` where this kprov reads 1: say whether kprov or the file is behind."""
        found = record.number(key)
        if found is not None and found != supported:
            hint = "upgrade kprov" if found > supported else f"use {key}: {supported}"
            self.add(record.loc(key), record.at(key), f"{key} {found} is not supported ({hint})")

    def fail(self, error: type[ChecklistError] = ChecklistError) -> None:
        """Raise every issue found so far, sorted by position (nothing when there is none)."""
        if self.issues:
            raise error(self.issues)

    def record(self, node: Node, schema: Map, crumb: str) -> Record | None:
        """A mapping against its declared fields; None (and an issue) when the node is not a mapping."""
        if node.kind != "map":
            self.add(node.loc, crumb, f"expected a mapping, got {describe(node)}")
            return None
        before = len(self.issues)
        known = tuple(f.name for f in schema.fields)
        values: dict[str, object] = {}
        for key, child in node.items():
            declared = schema.field(key)
            if declared is None:
                self.add(node.key_locs.get(key, node.loc), join(crumb, key),
                         _unknown(key, known, schema.noun, schema.owner))
                continue
            value = self.read(child, declared.kind, join(crumb, key))
            if value is not INVALID:
                values[key] = value
        written = node.mapping()
        for declared in schema.fields:
            if declared.name in written:
                continue
            if declared.required:
                self.add(node.loc, crumb, f"missing required {schema.noun} {declared.name!r}{schema.owner}")
            elif declared.default is not None:
                values[declared.name] = declared.default
        return Record(node, crumb, values, ok=len(self.issues) == before)

    def read(self, node: Node, kind: Kind, crumb: str) -> object:
        """The node's value as `kind` says, or `INVALID` (its issues recorded)."""
        if isinstance(kind, Str):
            return self._str(node, kind, crumb)
        if isinstance(kind, Int):
            return self._int(node, kind, crumb)
        if isinstance(kind, Bool):
            return self._bool(node, crumb)
        if isinstance(kind, Anything):
            return self._anything(node, crumb)
        if isinstance(kind, Seq):
            return self._seq(node, kind, crumb)
        if isinstance(kind, Map):
            found = self.record(node, kind, crumb)
            return INVALID if found is None else found
        if isinstance(kind, MapOf):
            return self._map_of(node, kind, crumb)
        if isinstance(kind, Templated):
            return self._templated(node, kind, crumb)
        if isinstance(kind, OneOf):
            return self._one_of(node, kind, crumb)
        return node  # Deferred: the caller reads it

    def _str(self, node: Node, kind: Str, crumb: str) -> object:
        if node.kind != "str" or not isinstance(node.value, str):
            if kind.conceal:
                self.add(node.loc, crumb, f"expected {kind.expect or 'a string'}")
            else:
                self.add(node.loc, crumb, f"expected a string, got {describe(node)}{_quote_hint(node)}")
            return INVALID
        return self.text(node.value, node.loc, kind, crumb)

    def text(self, value: str, loc: Loc, kind: Str, crumb: str) -> object:
        """A string (a value or a mapping key) against a `Str`'s choices and pattern."""
        if kind.choices and value not in kind.choices:
            shown = "the value" if kind.conceal else repr(value)
            self.add(loc, crumb, f"{shown} is not one of: {', '.join(kind.choices)}")
            return INVALID
        if kind.pattern and not re.fullmatch(kind.pattern, value):
            if kind.conceal:
                self.add(loc, crumb, f"expected {kind.expect or 'a string matching ' + kind.pattern}")
            elif kind.expect:
                self.add(loc, crumb, f"{value!r} is not {kind.expect}")
            else:
                self.add(loc, crumb, f"{value!r} does not match {kind.pattern}")
            return INVALID
        return value

    def _int(self, node: Node, kind: Int, crumb: str) -> object:
        value = node.value
        if node.kind != "int" or not isinstance(value, int) or isinstance(value, bool):
            self.add(node.loc, crumb, f"expected a whole number{_range(kind)}, got {describe(node)}")
            return INVALID
        if _yaml11(node) is not None:
            self.add(node.loc, crumb, f"expected a whole number{_range(kind)} in decimal digits, got {node.text} "
                                      f"(YAML reads it as {value})")
            return INVALID
        if (kind.low is not None and value < kind.low) or (kind.high is not None and value > kind.high):
            self.add(node.loc, crumb, f"expected a whole number{_range(kind)}, got {describe(node)}")
            return INVALID
        return value

    def _bool(self, node: Node, crumb: str) -> object:
        if node.kind != "bool" or not isinstance(node.value, bool):
            self.add(node.loc, crumb, f"expected true or false, got {describe(node)}")
            return INVALID
        if _yaml11(node) is not None:
            self.add(node.loc, crumb, f"expected true or false, got {describe(node)}; write true or false")
            return INVALID
        return node.value

    def _anything(self, node: Node, crumb: str) -> object:
        before = len(self.issues)
        self._surprises(node, crumb)
        return node.plain() if len(self.issues) == before else INVALID

    def _surprises(self, node: Node, crumb: str) -> None:
        if node.kind == "map":
            for key, child in node.items():
                self._surprises(child, join(crumb, key))
        elif node.kind == "seq":
            for index, child in enumerate(node.sequence()):
                self._surprises(child, f"{crumb}[{index}]")
        else:
            reading = _yaml11(node)
            if reading is not None:
                self.add(node.loc, crumb, f"YAML reads an unquoted {node.text} as {reading}: write {reading}, "
                                          f"or quote it: '{node.text}'")

    def items(self, node: Node, kind: Seq, crumb: str) -> list[tuple[Node, object]]:
        """The valid items of a list with their nodes (for callers that keep each item's position)."""
        if node.kind != "seq":
            self.add(node.loc, crumb, f"expected a list, got {describe(node)}")
            return []
        items = node.sequence()
        if kind.nonempty and not items:
            self.add(node.loc, crumb, kind.nonempty)
        read = [(item, self.read(item, kind.item, _item_crumb(crumb, i, item, kind.item)))
                for i, item in enumerate(items)]
        return [(item, value) for item, value in read if value is not INVALID]

    def _seq(self, node: Node, kind: Seq, crumb: str) -> object:
        pairs = self.items(node, kind, crumb)
        return tuple(value for _, value in pairs) if node.kind == "seq" else INVALID

    def _map_of(self, node: Node, kind: MapOf, crumb: str) -> object:
        if node.kind != "map":
            self.add(node.loc, crumb, f"expected a mapping, got {describe(node)}")
            return INVALID
        values: dict[str, object] = {}
        for key, child in node.items():
            here = join(crumb, key)
            if self.text(key, node.key_locs.get(key, node.loc), kind.keys, here) is INVALID:
                continue
            value = self.read(child, kind.value, here)
            if value is not INVALID:
                values[key] = value
        return values

    def _templated(self, node: Node, kind: Templated, crumb: str) -> object:
        if node.kind == "str" and isinstance(node.value, str):
            if node.value.strip().startswith("{{"):
                return node.value  # a placeholder stands for a value of any kind
            if isinstance(kind.kind, Str) and "{{" in node.value:  # filled in later: choices can wait
                return self.text(node.value, node.loc, Str(pattern=kind.kind.pattern, expect=kind.kind.expect),
                                 crumb)
        return self.read(node, kind.kind, crumb)

    def _one_of(self, node: Node, kind: OneOf, crumb: str) -> object:
        for option in kind.options:
            if _accepts(option, node):
                return self.read(node, option, crumb)
        words = " or ".join(dict.fromkeys(_word(o) for o in kind.options))
        hint = _quote_hint(node) if any(isinstance(o, Str) for o in kind.options) else ""
        self.add(node.loc, crumb, f"expected {words}, got {describe(node)}{hint}")
        return INVALID


def _accepts(kind: Kind, node: Node) -> bool:
    """Whether `OneOf` should read the node as this kind (by the node's own kind)."""
    wanted = {Str: "str", Int: "int", Bool: "bool", Seq: "seq", Map: "map", MapOf: "map"}
    if isinstance(kind, Anything | Deferred):
        return True
    if isinstance(kind, Templated):
        return _accepts(kind.kind, node) or node.kind == "str"
    return wanted.get(type(kind)) == node.kind


def _word(kind: Kind) -> str:
    if isinstance(kind, Templated):
        return _word(kind.kind)
    words = {Str: "a string", Int: "a whole number", Bool: "true or false", Seq: "a list", Map: "a mapping",
             MapOf: "a mapping"}
    return words.get(type(kind), "a value")


# --- JSON Schema ----------------------------------------------------------------------------------

Ref = Callable[[Map], dict[str, object]]


def json_schema(kind: Kind, ref: Ref | None = None) -> dict[str, object]:
    """The JSON Schema (draft 2020-12) of a kind; a named `Map` goes through `ref` when one is given."""
    if isinstance(kind, Str):
        schema: dict[str, object] = {"type": "string"}
        if kind.choices:
            schema["enum"] = list(kind.choices)
        if kind.pattern:
            schema["pattern"] = kind.pattern if kind.pattern.startswith("^") else f"^(?:{kind.pattern})$"
        return schema
    if isinstance(kind, Int):
        schema = {"type": "integer"}
        if kind.low is not None:
            schema["minimum"] = kind.low
        if kind.high is not None:
            schema["maximum"] = kind.high
        return schema
    if isinstance(kind, Bool):
        return {"type": "boolean"}
    if isinstance(kind, Seq):
        schema = {"type": "array", "items": json_schema(kind.item, ref)}
        if kind.nonempty:
            schema["minItems"] = 1
        return schema
    if isinstance(kind, Map):
        return ref(kind) if ref is not None and kind.name else json_object(kind, ref)
    if isinstance(kind, MapOf):
        schema = {"type": "object", "additionalProperties": json_schema(kind.value, ref)}
        if kind.keys != Str():
            schema["propertyNames"] = json_schema(kind.keys, ref)
        return schema
    if isinstance(kind, Templated):
        inner = json_schema(kind.kind, ref)
        if isinstance(kind.kind, Str) and not kind.kind.choices and not kind.kind.pattern:
            return inner
        return {"anyOf": [inner, dict(_TEMPLATE)]} if inner else {}
    if isinstance(kind, OneOf):
        return {"anyOf": [json_schema(option, ref) for option in kind.options]}
    if isinstance(kind, Deferred):
        return json_schema(kind.shape, ref)
    return {}  # Anything


def json_object(schema: Map, ref: Ref | None = None) -> dict[str, object]:
    """A `Map` as a closed JSON Schema object (unknown keys are errors here too)."""
    properties: dict[str, object] = {}
    for f in schema.fields:
        found = json_schema(f.kind, ref)
        if f.doc:
            found = {**found, "description": f.doc}
        if f.default is not None:
            found = {**found, "default": f.default}
        properties[f.name] = found
    result: dict[str, object] = {"type": "object", "additionalProperties": False,
                                 "required": [f.name for f in schema.fields if f.required], "properties": properties}
    if schema.doc:
        result["description"] = schema.doc
    return result
