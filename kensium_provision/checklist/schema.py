"""The checklist language: its schema (as data), the strict loader, and the JSON Schema export.

One definition (`CHECKLIST`, `INPUT`, `STEP`, `LOOKUP`, `CONDITION` and each step type's `params`)
drives both the loader and `json_schema()`, so editors and kprov can never disagree. The loader
reports every issue of a file at once as `path:line:col: breadcrumb: message`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kensium_provision.errors import ChecklistError, InputError, Issue
from kensium_provision.model import Checklist, Condition, InputSpec, Lookup, Risk, Step
from kensium_provision.steps.base import Param, StepType, evidence_of
from kensium_provision.template import TemplateError, placeholders
from kensium_provision.yamlio import Loc, Node, load, load_file

__all__ = ["SCHEMA_VERSION", "json_schema", "load_checklist", "parse_checklist"]

SCHEMA_VERSION = 1
KEBAB = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
SNAKE = r"^[a-z][a-z0-9_]*$"
INPUT_TYPES = ("string", "choice", "bool", "int", "secret")


@dataclass(frozen=True, slots=True)
class Field:
    """One key of a mapping in the checklist language."""

    name: str
    kind: str  # str, int, bool, list, map, any, or the name of a nested schema
    required: bool = False
    doc: str = ""
    choices: tuple[str, ...] = ()
    pattern: str = ""
    item: str = ""  # for lists: the kind of each item


LOOKUP = (
    Field("lookup", "str", doc="A named lookup implemented in kprov (availability-zones, next-free-name, ...)."),
    Field("service", "str", doc="AWS service of a generic read call, e.g. ec2."),
    Field("operation", "str", pattern=r"^(Describe|List|Get|Head)[A-Za-z]+$",
          doc="A read-only operation, e.g. DescribeAvailabilityZones."),
    Field("query", "str", doc="JMESPath into the response selecting a list of strings (or one string)."),
    Field("params", "map", doc="Call parameters, or lookup arguments (templates allowed)."),
)
CONDITION = (
    Field("name", "str", required=True, pattern=SNAKE, doc="An input or an earlier output."),
    Field("equals", "any"),
    Field("not_equals", "any"),
    Field("in", "list", item="any"),
    Field("not_in", "list", item="any"),
    Field("is", "bool"),
)
INPUT = (
    Field("id", "str", required=True, pattern=SNAKE, doc="Name used in templates: {{ id }}."),
    Field("type", "str", required=True, choices=INPUT_TYPES),
    Field("prompt", "str", required=True, doc="The question shown to the operator."),
    Field("help", "str", doc="Extra guidance shown with the prompt."),
    Field("rule", "str", doc="A naming rule (checklists/naming.yaml) the answer must meet."),
    Field("default", "any", doc="A default: a template, a number or a bool."),
    Field("choices", "list", item="str"),
    Field("choices_from", "lookup", doc="A live read-only lookup giving the choices."),
    Field("default_from", "lookup", doc="A live read-only lookup giving the default."),
    Field("when", "condition", doc="Ask only when this holds."),
    Field("evidence", "bool", doc="Recorded as evidence (sign-off, approval) in the journal."),
)
STEP = (
    Field("id", "str", required=True, pattern=KEBAB, doc="Unique kebab-case step id."),
    Field("title", "str", required=True),
    Field("type", "str", required=True, doc="The step type (see `kprov list --step-types`)."),
    Field("risk", "str", required=True, choices=tuple(r.value for r in Risk)),
    Field("params", "map", doc="The step type's parameters; templates allowed."),
    Field("when", "condition", doc="Run only when this holds; otherwise skipped with the reason shown."),
    Field("outputs", "map", doc="Names for later steps: {name: result field}."),
)
CHECKLIST = (
    Field("schema", "int", required=True, doc="Checklist language version; must be 1."),
    Field("id", "str", required=True, pattern=KEBAB),
    Field("title", "str", required=True),
    Field("scope", "str", required=True, choices=("shared", "client")),
    Field("description", "str"),
    Field("target", "str", doc="What the run acts on (a template), used for locks and banners."),
    Field("inputs", "list", item="input"),
    Field("steps", "list", required=True, item="step"),
)
_TOP = {f.name: f for f in CHECKLIST}
_NESTED: Mapping[str, tuple[Field, ...]] = {"lookup": LOOKUP, "condition": CONDITION, "input": INPUT, "step": STEP}
_KIND_WORDS = {"str": "a string", "int": "a whole number", "bool": "true or false", "list": "a list",
               "map": "a mapping", "null": "empty", "float": "a number", "timestamp": "a date", "seq": "a list"}


def _what(node: Node) -> str:
    if node.kind in ("map", "seq", "null"):
        return _KIND_WORDS[node.kind]
    if node.kind == "bool":
        return f"{node.text} (YAML reads it as {str(node.value).lower()})"
    return f"{_KIND_WORDS.get(node.kind, node.kind)} ({node.text})"


class _Reader:
    """Walks the node tree with a breadcrumb, collecting issues instead of stopping at the first."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, loc: Loc | None, crumb: str, message: str) -> None:
        where = loc or Loc("?", 1, 1)
        self.issues.append(where.issue(crumb, message))

    def scalar(self, node: Node, kind: str, crumb: str, field: Field | None = None) -> object:
        if kind == "any":
            return node.plain()
        if kind == "str":
            if node.kind != "str":
                hint = ""
                if node.kind in ("int", "float", "bool", "timestamp", "null"):
                    hint = f"; YAML reads an unquoted {node.text or '~'} as {_KIND_WORDS[node.kind]}: quote it: '{node.text}'"
                self.add(node.loc, crumb, f"expected a string, got {_what(node)}{hint}")
                return None
            value = str(node.value)
            if field and field.choices and value not in field.choices:
                self.add(node.loc, crumb, f"{value!r} is not one of: {', '.join(field.choices)}")
                return None
            if field and field.pattern and not re.match(field.pattern, value):
                self.add(node.loc, crumb, f"{value!r} does not match {field.pattern}")
                return None
            return value
        if kind == "int":
            if node.kind != "int":
                self.add(node.loc, crumb, f"expected a whole number, got {_what(node)}")
                return None
            return node.value
        if kind == "bool":
            if node.kind != "bool" or node.text not in ("true", "false"):
                self.add(node.loc, crumb, f"expected true or false, got {_what(node)}; write true or false")
                return None
            return node.value
        raise AssertionError(kind)

    def mapping(self, node: Node, fields: Sequence[Field], crumb: str) -> dict[str, Node] | None:
        if node.kind != "map":
            self.add(node.loc, crumb, f"expected a mapping, got {_what(node)}")
            return None
        assert isinstance(node.value, dict)
        known = {f.name for f in fields}
        for key in node.value:
            if key not in known:
                close = [k for k in sorted(known) if _similar(k, key)]
                hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(sorted(known))}"
                self.add(node.key_locs[key], _join(crumb, key), f"unknown key {key!r}{hint}")
        for f in fields:
            if f.required and f.name not in node.value:
                self.add(node.loc, crumb, f"missing required key {f.name!r}")
        return {k: v for k, v in node.value.items() if k in known}

    def value(self, node: Node, field: Field, crumb: str) -> object:
        if field.kind in ("str", "int", "bool", "any"):
            return self.scalar(node, field.kind, crumb, field)
        if field.kind == "list":
            if node.kind != "seq":
                self.add(node.loc, crumb, f"expected a list, got {_what(node)}")
                return ()
            assert isinstance(node.value, list)
            return tuple(node.value) if field.item in _NESTED else tuple(
                self.scalar(item, field.item, f"{crumb}[{i}]") for i, item in enumerate(node.value))
        if field.kind == "map":
            if node.kind != "map":
                self.add(node.loc, crumb, f"expected a mapping, got {_what(node)}")
                return None
            return node
        return node  # nested schema: handled by the caller


def _similar(a: str, b: str) -> bool:
    return a != b and (a.startswith(b[:3]) or b.startswith(a[:3])) and abs(len(a) - len(b)) <= 2


def _join(crumb: str, key: str) -> str:
    return f"{crumb} › {key}" if crumb else key


def _read_fields(reader: _Reader, node: Node, fields: Sequence[Field], crumb: str) -> dict[str, object] | None:
    mapping = reader.mapping(node, fields, crumb)
    if mapping is None:
        return None
    by_name = {f.name: f for f in fields}
    return {key: reader.value(child, by_name[key], _join(crumb, key)) for key, child in mapping.items()}


def _read_lookup(reader: _Reader, node: Node, crumb: str, lookup_names: Sequence[str]) -> Lookup | None:
    raw = _read_fields(reader, node, LOOKUP, crumb)
    if raw is None:
        return None
    name = raw.get("lookup")
    params_node = raw.get("params")
    params = params_node.plain() if isinstance(params_node, Node) else {}
    if name is not None:
        if name not in lookup_names:
            reader.add(node.loc, _join(crumb, "lookup"), f"unknown lookup {name!r}; known: {', '.join(lookup_names)}")
        if any(k in raw for k in ("service", "operation", "query")):
            reader.add(node.loc, crumb, "give either `lookup` or `service`/`operation`/`query`, not both")
        return Lookup(name=str(name), params=params if isinstance(params, dict) else {}, loc=node.loc)
    missing = [k for k in ("service", "operation", "query") if k not in raw]
    if missing:
        reader.add(node.loc, crumb, f"a generic lookup needs {', '.join(missing)} (or use `lookup:`)")
        return None
    return Lookup(service=str(raw["service"]), operation=str(raw["operation"]), query=str(raw["query"]),
                  params=params if isinstance(params, dict) else {}, loc=node.loc)


def _read_condition(reader: _Reader, node: Node, crumb: str) -> Condition | None:
    raw = _read_fields(reader, node, CONDITION, crumb)
    if raw is None:
        return None
    ops = [k for k in ("equals", "not_equals", "in", "not_in", "is") if k in raw]
    if len(ops) != 1:
        reader.add(node.loc, crumb, "a condition needs `name` and exactly one of equals, not_equals, in, not_in, is")
        return None
    if raw.get("name") is None:
        return None
    return Condition(name=str(raw["name"]), op=ops[0], value=raw[ops[0]], loc=node.loc)


@dataclass(frozen=True, slots=True)
class _Use:
    """A name used by a template or condition, for the order checks."""

    name: str
    loc: Loc
    crumb: str
    step_index: int  # -1 for inputs and the target


def _template_uses(reader: _Reader, node: Node, crumb: str, step_index: int) -> list[_Use]:
    uses: list[_Use] = []
    if node.kind == "str" and isinstance(node.value, str):
        try:
            uses += [_Use(p.name, node.loc, crumb, step_index) for p in placeholders(node.value)]
        except TemplateError as exc:
            reader.add(node.loc, crumb, str(exc))
    elif node.kind == "map":
        for key, child in node.items():
            uses += _template_uses(reader, child, _join(crumb, key), step_index)
    elif node.kind == "seq":
        assert isinstance(node.value, list)
        for i, child in enumerate(node.value):
            uses += _template_uses(reader, child, f"{crumb}[{i}]", step_index)
    return uses


def _check_param(reader: _Reader, param: Param, node: Node, crumb: str) -> None:
    """Type-check a parameter; a bare placeholder may stand for a value of any type."""
    if node.kind == "str" and isinstance(node.value, str) and node.value.strip().startswith("{{"):
        return
    if param.kind in ("str", "int", "bool"):
        value = reader.scalar(node, param.kind, crumb)
        if param.kind == "str" and param.choices and value is not None and value not in param.choices \
                and "{{" not in str(value):
            reader.add(node.loc, crumb, f"{value!r} is not one of: {', '.join(param.choices)}")
    elif param.kind == "list" and node.kind != "seq":
        reader.add(node.loc, crumb, f"expected a list, got {_what(node)}")
    elif param.kind == "map" and node.kind != "map":
        reader.add(node.loc, crumb, f"expected a mapping, got {_what(node)}")


def _item_crumb(section: str, index: int, node: Node) -> str:
    """`steps[3] (id=create)`: the position, and the id when the item has a readable one."""
    id_node = node.value.get("id") if node.kind == "map" and isinstance(node.value, dict) else None
    named = id_node is not None and id_node.kind == "str"
    return f"{section}[{index}]" + (f" (id={id_node.value})" if named else "")  # type: ignore[union-attr]


def _read_step(reader: _Reader, node: Node, index: int, types: Mapping[str, StepType]) -> tuple[Step | None, list[_Use]]:
    crumb = _item_crumb("steps", index, node)
    raw = _read_fields(reader, node, STEP, crumb)
    if raw is None:
        return None, []
    uses: list[_Use] = []
    if isinstance(node.value, dict) and isinstance(node.value.get("title"), Node):
        uses += _template_uses(reader, node.value["title"], _join(crumb, "title"), index)
    step_type = types.get(str(raw.get("type"))) if raw.get("type") else None
    if raw.get("type") is not None and step_type is None:
        from difflib import get_close_matches

        close = get_close_matches(str(raw["type"]), list(types), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else "; `kprov list --step-types` lists them"
        reader.add(node.value["type"].loc, _join(crumb, "type"),  # type: ignore[index]
                   f"unknown step type {raw['type']!r}{hint}")
    params_node = raw.get("params")
    params: dict[str, object] = {}
    if isinstance(params_node, Node):
        uses += _template_uses(reader, params_node, _join(crumb, "params"), index)
        params = params_node.plain()  # type: ignore[assignment]
        if step_type is not None:
            declared = {p.name: p for p in step_type.params}
            for key, child in params_node.items():
                if key not in declared:
                    reader.add(params_node.key_locs[key], _join(_join(crumb, "params"), key),
                               f"unknown parameter {key!r} for {step_type.name}; allowed: {', '.join(declared) or 'none'}")
                else:
                    _check_param(reader, declared[key], child, _join(_join(crumb, "params"), key))
    if step_type is not None:
        for p in step_type.params:
            if p.required and p.name not in params:
                where = params_node.loc if isinstance(params_node, Node) else node.loc
                reader.add(where, _join(crumb, "params"), f"missing parameter {p.name!r} for {step_type.name}")
    when = None
    if isinstance(raw.get("when"), Node):
        when = _read_condition(reader, raw["when"], _join(crumb, "when"))  # type: ignore[arg-type]
        if when is not None and when.loc is not None:
            uses.append(_Use(when.name, when.loc, _join(crumb, "when"), index))
    outputs: dict[str, str] = {}
    outputs_node = raw.get("outputs")
    if isinstance(outputs_node, Node):
        for key, child in outputs_node.items():
            okey = _join(_join(crumb, "outputs"), key)
            if not re.match(SNAKE, key):
                reader.add(outputs_node.key_locs[key], okey, f"output name {key!r} must be snake_case")
            field_name = reader.scalar(child, "str", okey)
            if field_name is None:
                continue
            if step_type is not None and step_type.outputs and field_name not in step_type.outputs:
                reader.add(child.loc, okey, f"{step_type.name} has no result {field_name!r}; it has: "
                           f"{', '.join(step_type.outputs)}")
            outputs[key] = str(field_name)
    if any(raw.get(k) is None for k in ("id", "title", "type", "risk")):
        return None, uses
    step = Step(id=str(raw["id"]), title=str(raw["title"]), type=str(raw["type"]), params=params,
                risk=Risk(str(raw["risk"])), when=when, outputs=outputs, loc=node.loc)
    return step, uses


def _read_input(reader: _Reader, node: Node, index: int, lookup_names: Sequence[str]) -> tuple[InputSpec | None, list[_Use]]:
    crumb = _item_crumb("inputs", index, node)
    raw = _read_fields(reader, node, INPUT, crumb)
    if raw is None:
        return None, []
    uses: list[_Use] = []
    for key in ("prompt", "help"):  # placeholders of earlier inputs, filled in when the question is asked
        text_node = node.value.get(key) if isinstance(node.value, dict) else None
        if isinstance(text_node, Node):
            uses += _template_uses(reader, text_node, _join(crumb, key), -1)
    lookups = {}
    for key in ("choices_from", "default_from"):
        if isinstance(raw.get(key), Node):
            lookups[key] = _read_lookup(reader, raw[key], _join(crumb, key), lookup_names)  # type: ignore[arg-type]
            lk_node = raw[key]
            assert isinstance(lk_node, Node)
            uses += _template_uses(reader, lk_node, _join(crumb, key), -1)
    when = None
    if isinstance(raw.get("when"), Node):
        when = _read_condition(reader, raw["when"], _join(crumb, "when"))  # type: ignore[arg-type]
        if when is not None and when.loc is not None:
            uses.append(_Use(when.name, when.loc, _join(crumb, "when"), -1))
    default = raw.get("default")
    kind_of_default = {"string": "str", "choice": "str", "int": "int", "bool": "bool"}.get(str(raw.get("type")))
    if "default" in raw and kind_of_default:
        default = reader.scalar(node.value["default"], kind_of_default, _join(crumb, "default"))  # type: ignore[index]
    if isinstance(default, str):
        default_node = node.value["default"]  # type: ignore[index]
        uses += _template_uses(reader, default_node, _join(crumb, "default"), -1)
    kind = raw.get("type")
    if kind == "choice" and not raw.get("choices") and "choices_from" not in lookups:
        reader.add(node.loc, crumb, "a choice input needs `choices` or `choices_from`")
    if kind == "secret" and default is not None:
        reader.add(node.loc, crumb, "a secret input cannot have a default")
    if any(raw.get(k) is None for k in ("id", "type", "prompt")):
        return None, uses
    spec = InputSpec(
        id=str(raw["id"]), type=str(kind), prompt=str(raw["prompt"]), help=str(raw.get("help") or ""),
        rule=str(raw.get("rule") or ""), default=default,
        choices=tuple(str(c) for c in raw.get("choices") or ()),  # type: ignore[union-attr]
        choices_from=lookups.get("choices_from"), default_from=lookups.get("default_from"),
        when=when, evidence=bool(raw.get("evidence")), loc=node.loc)
    return spec, uses


def parse_checklist(
    root: Node,
    *,
    path: str,
    sha256: str,
    types: Mapping[str, StepType],
    lookup_names: Sequence[str],
    rule_ids: Iterable[str] | None = None,
) -> Checklist:
    """Validate a parsed tree and build the Checklist; raise ChecklistError listing every issue."""
    reader = _Reader()
    top = reader.mapping(root, CHECKLIST, "")
    if top is None:
        raise ChecklistError(reader.issues)
    schema_node = top.get("schema")
    if schema_node is not None:
        version = reader.scalar(schema_node, "int", "schema")
        if version is not None and version != SCHEMA_VERSION:
            hint = "upgrade kprov" if isinstance(version, int) and version > SCHEMA_VERSION else "use schema: 1"
            reader.add(schema_node.loc, "schema", f"schema {version} is not supported ({hint})")
    scalars = {f.name: reader.value(top[f.name], f, f.name) for f in CHECKLIST
               if f.name in top and f.kind in ("str", "int")}
    uses: list[_Use] = []
    if "target" in top:
        uses += _template_uses(reader, top["target"], "target", -1)

    inputs: list[InputSpec] = []
    inputs_node = top.get("inputs")
    if inputs_node is not None and reader.value(inputs_node, _TOP["inputs"], "inputs"):
        for i, item in enumerate(inputs_node.value):  # type: ignore[arg-type]
            spec, more = _read_input(reader, item, i, lookup_names)
            uses += more
            if spec is not None:
                inputs.append(spec)
    steps: list[Step] = []
    steps_node = top.get("steps")
    if steps_node is not None and reader.value(steps_node, _TOP["steps"], "steps"):
        for i, item in enumerate(steps_node.value):  # type: ignore[arg-type]
            step, more = _read_step(reader, item, i, types)
            uses += more
            if step is not None:
                steps.append(step)
    elif steps_node is not None and steps_node.kind == "seq":
        reader.add(steps_node.loc, "steps", "a checklist needs at least one step")

    _check_names(reader, inputs, steps, uses, types, set(rule_ids) if rule_ids is not None else None)
    if reader.issues:
        raise ChecklistError(reader.issues)
    return Checklist(id=str(scalars["id"]), title=str(scalars["title"]), scope=str(scalars["scope"]),
                     description=str(scalars.get("description") or ""), inputs=tuple(inputs), steps=tuple(steps),
                     path=path, sha256=sha256, target=str(scalars.get("target") or ""))


def _evidence_ids(reader: _Reader, step: Step, types: Mapping[str, StepType], crumb: str) -> list[str]:
    """Names a step's evidence adds to the namespace (they are its outputs: `steps.base.CollectsEvidence`)."""
    try:
        return [spec.id for spec in evidence_of(types.get(step.type), step.params)]
    except InputError as exc:  # the run would refuse it at this step: say so now
        reader.add(step.loc, _join(crumb, "params"), str(exc))
        return []


def _check_names(reader: _Reader, inputs: Sequence[InputSpec], steps: Sequence[Step], uses: Sequence[_Use],
                 types: Mapping[str, StepType], rule_ids: set[str] | None) -> None:
    defined: dict[str, int] = {}  # name -> index of the step that defines it (-1: an input)
    for spec in inputs:
        if spec.id in defined:
            reader.add(spec.loc, f"inputs (id={spec.id})", f"duplicate input id {spec.id!r}")
        defined[spec.id] = -1
        if rule_ids is not None and spec.rule and spec.rule not in rule_ids:
            reader.add(spec.loc, f"inputs (id={spec.id}) › rule", f"unknown naming rule {spec.rule!r}")
    seen_steps: dict[str, Step] = {}
    for index, step in enumerate(steps):
        crumb = f"steps[{index}] (id={step.id})"
        if step.id in seen_steps:
            first = seen_steps[step.id].loc
            reader.add(step.loc, crumb, f"duplicate step id {step.id!r} (first at line {first.line if first else '?'})")
        seen_steps[step.id] = step
        for name in [*step.outputs, *_evidence_ids(reader, step, types, crumb)]:
            if name in defined:
                reader.add(step.loc, f"{crumb} › outputs", f"{name!r} is already defined"
                           f"{' as an input' if defined[name] == -1 else ' by an earlier step'}")
            else:
                defined[name] = index
        step_type = types.get(step.type)
        if step_type is not None and rule_ids is not None:
            for p in step_type.params:
                if p.rule and p.rule not in rule_ids:
                    reader.add(step.loc, crumb, f"step type {step.type} names unknown naming rule {p.rule!r}")
    input_index = {spec.id: i for i, spec in enumerate(inputs)}
    for use in uses:
        where = defined.get(use.name)
        if where is None:
            reader.add(use.loc, use.crumb, f"unknown name {use.name!r}: not an input or a step output")
        elif use.step_index == -1 and where >= 0:
            reader.add(use.loc, use.crumb, f"{use.name!r} is a step output; inputs and the target can use inputs only")
        elif use.step_index >= 0 and where >= use.step_index:
            msg = "its own output" if where == use.step_index else f"an output of a later step (steps[{where}])"
            reader.add(use.loc, use.crumb, f"{use.name!r} is {msg}; a step can use only earlier outputs")
        elif use.step_index == -1 and where == -1 and use.crumb.startswith("inputs"):
            user = use.crumb.split("(id=", 1)[-1].split(")", 1)[0]
            if user in input_index and input_index[use.name] >= input_index[user]:
                reader.add(use.loc, use.crumb, f"{use.name!r} is asked later; an input can use only earlier inputs")


def load_checklist(
    path: Path,
    *,
    display: str | None = None,
    types: Mapping[str, StepType] | None = None,
    lookup_names: Sequence[str] | None = None,
    rule_ids: Iterable[str] | None = None,
) -> Checklist:
    """Read, parse and validate one checklist file."""
    from kensium_provision import steps

    shown = display or str(path)
    root = load_file(path, display=shown)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return parse_checklist(root, path=shown, sha256=sha, types=types if types is not None else steps.registry(),
                           lookup_names=lookup_names if lookup_names is not None else steps.LOOKUP_NAMES,
                           rule_ids=rule_ids)


def load_checklist_text(text: str, path: str = "<text>", **kwargs: object) -> Checklist:
    """Parse a checklist from text (tests, stdin)."""
    from kensium_provision import steps

    root = load(text, path)
    return parse_checklist(root, path=path, sha256=hashlib.sha256(text.encode()).hexdigest(),
                           types=kwargs.get("types") or steps.registry(),  # type: ignore[arg-type]
                           lookup_names=kwargs.get("lookup_names") or steps.LOOKUP_NAMES,  # type: ignore[arg-type]
                           rule_ids=kwargs.get("rule_ids"))  # type: ignore[arg-type]


# --- JSON Schema --------------------------------------------------------------------------------

def _field_schema(field: Field, defs: Callable[[str], dict[str, object]]) -> dict[str, object]:
    schema: dict[str, object]
    if field.kind == "str":
        schema = {"type": "string"}
        if field.choices:
            schema["enum"] = list(field.choices)
        if field.pattern:
            schema["pattern"] = field.pattern
    elif field.kind == "int":
        schema = {"type": "integer"}
    elif field.kind == "bool":
        schema = {"type": "boolean"}
    elif field.kind == "list":
        item = defs(field.item) if field.item in _NESTED else ({} if field.item == "any" else {"type": "string"})
        schema = {"type": "array", "items": item}
    elif field.kind == "map":
        schema = {"type": "object"}
    elif field.kind == "any":
        schema = {}
    else:
        schema = defs(field.kind)
    if field.doc:
        schema["description"] = field.doc
    return schema


def _object(fields: Sequence[Field], defs: Callable[[str], dict[str, object]]) -> dict[str, object]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in fields if f.required],
        "properties": {f.name: _field_schema(f, defs) for f in fields},
    }


def _param_schema(param: Param) -> dict[str, object]:
    template = {"type": "string", "pattern": r"^\{\{.*\}\}$"}
    kinds = {"str": {"type": "string"}, "int": {"type": "integer"}, "bool": {"type": "boolean"},
             "list": {"type": "array"}, "map": {"type": "object"}}
    base: dict[str, object] = dict(kinds.get(param.kind, {}))
    if param.choices:
        base["enum"] = list(param.choices)
    schema: dict[str, object] = base if param.kind == "str" and not param.choices else {"anyOf": [base, template]}
    if param.doc:
        schema["description"] = param.doc
    return schema


def json_schema(types: Mapping[str, StepType] | None = None) -> dict[str, object]:
    """The checklist language as JSON Schema (draft 2020-12), for yaml-language-server and CI."""
    from kensium_provision import steps

    types = types if types is not None else steps.registry()

    def ref(name: str) -> dict[str, object]:
        return {"$ref": f"#/$defs/{name}"}

    step = _object(STEP, ref)
    step["properties"]["type"] = {"enum": sorted(types), "description": STEP[2].doc}  # type: ignore[index]
    step["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"properties": {"params": {
                "type": "object",
                "additionalProperties": False,
                "required": [p.name for p in t.params if p.required],
                "properties": {p.name: _param_schema(p) for p in t.params},
                "description": t.summary,
            }}},
        }
        for name, t in sorted(types.items())
    ]
    condition = _object(CONDITION, ref)
    condition["minProperties"] = 2
    condition["maxProperties"] = 2
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kensium.com/schemas/kprov-checklist-1.json",
        "title": "kprov checklist",
        **_object(CHECKLIST, ref),
        "$defs": {"input": _object(INPUT, ref), "step": step, "lookup": _object(LOOKUP, ref), "condition": condition},
    }
