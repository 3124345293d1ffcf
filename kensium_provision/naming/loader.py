"""Reading `naming.yaml`: its schema as data, read by `yamlschema.Reader`, into a `rules.RuleSet`.

Every issue of the file is reported at once at `path:line:col`: what the schema says (kinds,
required keys, unknown keys, YAML 1.1 spellings, exactly as for checklists and the config), then
what one field cannot say (a pattern or a template, anchored patterns, placeholders that some rule
declares, numbered rules and their number field), then what only the whole set can (duplicate ids
and placeholders, placeholder loops). Loaded sets are cached per file and version.

Where the file is by default (`default_path`) is the checklists folder of `checklist.catalog`:
the shipped package data, or `KPROV_CHECKLISTS`. It is worked out here, not imported from the
catalog, because naming sits below the checklist layer.
"""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

from kensium_provision.errors import ChecklistError
from kensium_provision.naming.rules import (
    Example,
    Limits,
    NameRule,
    RuleSet,
    Slot,
    UnknownPlaceholder,
    derive_bounds,
    parse_template,
    rule_regex,
    template_form,
)
from kensium_provision.yamlio import Node, load_file, shown_path
from kensium_provision.yamlschema import (
    Bool,
    Deferred,
    Field,
    Int,
    Map,
    OneOf,
    Reader,
    Record,
    Seq,
    Str,
)

__all__ = ["NAMING_RULES", "SCHEMA_VERSION", "default_path", "load_rules", "parse_rules"]

SCHEMA_VERSION = 1
SCOPES = ("client", "site", "shared", "operator", "kprov")
CASES = ("exact", "insensitive")
_PLACEHOLDER = Str(pattern=r"^[a-z][a-z0-9_]*$")

LIMITS = Map((
    Field("service", Str(), doc="Who imposes the limits, shown in messages (Amazon S3 bucket names)."),
    Field("min_length", Int(low=0)),
    Field("max_length", Int(low=0)),
    Field("max_label_length", Int(low=0), doc="DNS: the longest dot-separated label."),
    Field("charset", Str(), doc="One regex character class every character must match, e.g. [a-z0-9-]."),
    Field("no_double_hyphen", Bool(), default=False),
    Field("no_trailing_hyphen", Bool(), default=False),
    Field("must_start_with_letter", Bool(), default=False),
    Field("forbidden", Seq(Str()), doc="Reserved whole names, compared ignoring case."),
    Field("forbidden_prefixes", Seq(Str()), doc="Compared exactly."),
), name="limits", doc="The limits a service puts on a name, checked on top of the convention's own shape.")


def _example(slots: tuple[str, ...] = ()) -> OneOf:
    """An example: a name, or a mapping with the name and the values of the template's placeholders."""
    return OneOf((Str(), Map((
        Field("value", Str(), required=True),
        Field("why", Str(), doc="What the example shows."),
        *(Field(slot, Str(), doc="The placeholder's value this example is made from.") for slot in slots),
    ))))


def _examples(slots: tuple[str, ...] = ()) -> tuple[Map, Seq, Seq]:
    accept = Seq(_example(slots), nonempty="list at least one accept example")
    reject = Seq(_example(slots))
    return Map((Field("accept", Deferred(accept), required=True), Field("reject", Deferred(reject))),
               name="examples"), accept, reject


RULE = Map((
    Field("id", Str(pattern=r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"), required=True),
    Field("convention", Str(pattern=r"^N[0-9]+$"), doc="Its N-number in domain.md section 5."),
    Field("title", Str(), required=True),
    Field("description", Str(), required=True),
    Field("scope", Str(choices=SCOPES), required=True),
    Field("placeholder", _PLACEHOLDER, doc="The name this rule's values take inside other rules' templates."),
    Field("case", Str(choices=CASES), required=True, doc="insensitive: matched and compared ignoring case."),
    Field("pattern", Str(), doc="An anchored regular expression (^...$); a rule has a pattern or a template."),
    Field("template", Str(), doc="A name made of other rules' values: {{ org_id }}, {{ n:02 }}."),
    Field("form", Str(), doc="The shape in words, shown in messages; required with a pattern."),
    Field("numbered", Bool(), default=False, doc="Names are numbered: {{ number_field }} in the template."),
    Field("number_field", _PLACEHOLDER),
    Field("also_accept", Seq(Str()), doc="Other spellings accepted until a conflict is settled."),
    Field("allow_slash", Bool(), default=False, doc="Values are paths by nature (pub/, a CIDR)."),
    Field("limits", LIMITS),
    Field("examples", Deferred(_examples()[0]), required=True, doc="Names the rule must accept and reject."),
), name="rule", id_key="id")
NAMING_RULES = Map((
    Field("schema", Int(), required=True, doc=f"The naming rules' language version; must be {SCHEMA_VERSION}."),
    Field("rules", Seq(RULE), required=True),
), name="naming-rules")

_CACHE: dict[tuple[str, str, int, int], RuleSet] = {}


def default_path() -> Path:
    """`naming.yaml` beside the checklists: in `KPROV_CHECKLISTS`, else the shipped package data."""
    override = os.environ.get("KPROV_CHECKLISTS")
    return (Path(override) if override else Path(str(files("kensium_provision") / "checklists"))) / "naming.yaml"


def load_rules(path: Path | None = None) -> RuleSet:
    """Load and check a naming rules file (default: `default_path()`).

    Raises `ChecklistError` listing every issue at `path:line:col`. Cached per file and version.
    """
    path = default_path() if path is None else path
    shown = shown_path(path)
    try:
        stat = path.stat()
        key: tuple[str, str, int, int] | None = (shown, str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key and key in _CACHE:
        return _CACHE[key]
    rule_set = parse_rules(load_file(path, display=shown), shown)
    if key:
        _CACHE[key] = rule_set
    return rule_set


def parse_rules(root: Node, path: str) -> RuleSet:
    """Check a parsed rules file and build its `RuleSet`; `ChecklistError` lists every issue."""
    reader = Reader()
    top = reader.record(root, NAMING_RULES, "")
    if top is None:
        raise ChecklistError(reader.issues)
    reader.version(top, "schema", SCHEMA_VERSION)
    rules: list[NameRule] = []
    where: dict[str, Record] = {}  # id of each rule that parsed cleanly -> its mapping
    first_seen: dict[str, int] = {}
    parsed: list[tuple[NameRule, Record]] = []
    for record in top.records("rules"):
        rule, ok = _rule(reader, record)
        parsed.append((rule, record))
        if rule.id in first_seen:
            reader.add(record.loc("id"), record.at("id"),
                       f"duplicate rule id {rule.id!r} (first at line {first_seen[rule.id]})")
            continue
        if rule.id:
            first_seen[rule.id] = record.loc("id").line
        if ok:
            where[rule.id] = record
            rules.append(rule)
    declared = {rule.placeholder for rule, _ in parsed if rule.placeholder}
    for rule, record in parsed:  # broken rules too: every issue at once
        for name in rule.slots:
            if name not in declared and name != rule.number_field:
                reader.add(record.loc("template"), record.at("template"),
                           f"unknown placeholder {{{{ {name} }}}}: no rule declares `placeholder: {name}`")
                if where.get(rule.id) is record:
                    del where[rule.id]
                    rules.remove(rule)
    shapes = _compile(reader, rules, where)
    reader.fail()
    return RuleSet(path, rules, shapes, derive_bounds(rules, _by_placeholder(rules)))


def _rule(reader: Reader, rule: Record) -> tuple[NameRule, bool]:
    """The rule, and whether it is sound (no issue in it, an id)."""
    before = len(reader.issues)
    pattern, template = rule.text("pattern"), rule.text("template")
    if ("pattern" in rule) == ("template" in rule):
        reader.add(rule.node.loc, rule.crumb, "a rule has exactly one of `pattern` or `template`")
    if pattern:
        if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
            reader.add(rule.loc("pattern"), rule.at("pattern"), "must be anchored: start with ^ and end with $")
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                reader.add(rule.loc("pattern"), rule.at("pattern"), f"bad regular expression: {exc}")
    if template:
        try:
            parse_template(template)
        except ValueError as exc:
            reader.add(rule.loc("template"), rule.at("template"), str(exc))
            template = ""
    numbered, number_field = rule.flag("numbered"), rule.text("number_field")
    slots = tuple(dict.fromkeys(p.name for p in parse_template(template) if isinstance(p, Slot)))
    readable = all(key not in rule or key in rule.values for key in ("numbered", "number_field"))
    if readable and numbered != bool(number_field):
        reader.add(rule.node.loc, rule.crumb, "a numbered rule has `numbered: true` and its `number_field`")
    elif number_field and number_field not in slots:
        reader.add(rule.loc("number_field"), rule.at("number_field"), f"the template has no {{{{ {number_field} }}}}")
    form = rule.text("form")
    if pattern and not form:
        reader.add(rule.node.loc, rule.crumb, "a pattern rule needs a `form`: the shape in words, shown in messages")
    found = NameRule(
        id=rule.text("id"),
        title=rule.text("title"),
        description=rule.text("description"),
        convention=rule.text("convention"),
        scope=rule.text("scope"),
        placeholder=rule.text("placeholder"),
        case=rule.text("case"),
        pattern=pattern,
        template=template,
        form=form or (template_form(template, number_field) if template else pattern),
        numbered=numbered,
        number_field=number_field,
        also_accept=rule.texts("also_accept"),
        allow_slash=rule.flag("allow_slash"),
        limits=_limits(reader, rule.record("limits")),
        examples=_read_examples(reader, rule, slots),
        loc=rule.node.loc,
    )
    return found, rule.ok and bool(found.id) and len(reader.issues) == before


def _limits(reader: Reader, limits: Record | None) -> Limits:
    if limits is None:
        return Limits()
    charset = limits.text("charset")
    if charset:
        try:
            compiled = re.compile(charset)
            if not (charset.startswith("[") and charset.endswith("]")) or compiled.groups:
                raise re.error("must be one character class such as [a-z0-9-]")
        except re.error as exc:
            reader.add(limits.loc("charset"), limits.at("charset"), f"bad character class: {exc}")
            charset = ""
    return Limits(
        service=limits.text("service"),
        min_length=limits.number("min_length"),
        max_length=limits.number("max_length"),
        max_label_length=limits.number("max_label_length"),
        charset=charset,
        no_double_hyphen=limits.flag("no_double_hyphen"),
        no_trailing_hyphen=limits.flag("no_trailing_hyphen"),
        must_start_with_letter=limits.flag("must_start_with_letter"),
        forbidden=limits.texts("forbidden"),
        forbidden_prefixes=limits.texts("forbidden_prefixes"),
    )


def _read_examples(reader: Reader, rule: Record, slots: tuple[str, ...]) -> tuple[Example, ...]:
    """The examples, read with the placeholders of this rule's template as allowed keys."""
    node = rule.child("examples")
    if node is None:
        return ()
    schema, accept, reject = _examples(slots)
    examples = reader.record(node, schema, rule.at("examples"))
    if examples is None:
        return ()
    found: list[Example] = []
    for key, kind in (("accept", accept), ("reject", reject)):
        items = examples.child(key)
        if items is None:
            continue
        for item, value in reader.items(items, kind, examples.at(key)):
            if isinstance(value, str):
                found.append(Example(value=value, accept=key == "accept", loc=item.loc))
            elif isinstance(value, Record) and value.ok:
                context = {name: value.text(name) for name in slots if name in value.values}
                found.append(Example(value=value.text("value"), accept=key == "accept", context=context,
                                     why=value.text("why"), loc=item.loc))
    return tuple(found)


def _by_placeholder(rules: list[NameRule]) -> dict[str, NameRule]:
    found: dict[str, NameRule] = {}
    for rule in rules:
        if rule.placeholder:
            found.setdefault(rule.placeholder, rule)
    return found


def _compile(reader: Reader, rules: list[NameRule], where: dict[str, Record]) -> dict[str, re.Pattern[str]]:
    """Each rule's full regex (a template embeds its placeholders' patterns); duplicate placeholders and loops."""
    by_placeholder = _by_placeholder(rules)
    for rule in rules:
        first = by_placeholder.get(rule.placeholder)
        if first is not None and first is not rule:
            record = where[rule.id]
            reader.add(record.loc("placeholder"), record.at("placeholder"),
                       f"placeholder {rule.placeholder!r} is already declared by {first.id}")
    shapes: dict[str, re.Pattern[str]] = {}
    for rule in rules:
        try:
            body = rule_regex(rule, by_placeholder, named=True, stack=())
            shapes[rule.id] = re.compile(body, re.IGNORECASE if rule.insensitive else 0)
        except UnknownPlaceholder:
            continue
        except (ValueError, re.error) as exc:
            key = "template" if rule.template else "pattern"
            reader.add(where[rule.id].loc(key), where[rule.id].at(key), str(exc))
    return shapes
