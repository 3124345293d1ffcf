"""The checklist language: its schema (as data), the strict loader, and the JSON Schema export.

One definition (`CHECKLIST`, `INPUT`, `STEP`, `LOOKUP`, `CONDITION` and each step type's `params`,
made into a `yamlschema.Map` by `params_schema`) drives both the loader and `json_schema()`, so
editors and kprov can never disagree. `yamlschema.Reader` checks what the schema says, with the
strictness every kprov YAML file gets; this module adds what one field cannot say: names used
before they are defined, step types and their results, lookups, conditions. Every issue of a file
is reported at once as `path:line:col: breadcrumb: message`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kensium_provision.errors import ChecklistError, InputError
from kensium_provision.model import Checklist, Condition, InputSpec, Lookup, Risk, Step
from kensium_provision.steps.base import Param, StepType, evidence_of
from kensium_provision.steps.kinds import TEXT_KINDS
from kensium_provision.template import TemplateError, placeholders
from kensium_provision.yamlio import Loc, Node, load, load_bytes, read_file
from kensium_provision.yamlschema import (
    INVALID,
    Anything,
    Bool,
    Deferred,
    Field,
    Int,
    Kind,
    Map,
    MapOf,
    Reader,
    Record,
    Seq,
    Str,
    Templated,
    join,
    json_object,
)

__all__ = ["CHECKLIST", "SCHEMA_VERSION", "json_schema", "load_checklist", "load_checklist_text", "params_schema",
           "parse_checklist"]

SCHEMA_VERSION = 1
KEBAB = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
SNAKE = r"^[a-z][a-z0-9_]*$"
INPUT_TYPES = ("string", "choice", "bool", "int", "secret", *TEXT_KINDS)

LOOKUP = Map((
    Field("lookup", Str(), doc="A named lookup implemented in kprov (availability-zones, next-free-name, ...)."),
    Field("service", Str(), doc="AWS service of a generic read call, e.g. ec2."),
    Field("operation", Str(pattern=r"^(Describe|List|Get|Head)[A-Za-z]+$"),
          doc="A read-only operation, e.g. DescribeAvailabilityZones."),
    Field("query", Str(), doc="JMESPath into the response selecting a list of strings (or one string)."),
    Field("params", MapOf(Anything()), doc="Call parameters, or lookup arguments (templates allowed)."),
), name="lookup")
CONDITION = Map((
    Field("name", Str(pattern=SNAKE), required=True, doc="An input or an earlier output."),
    Field("equals", Anything()),
    Field("not_equals", Anything()),
    Field("in", Seq(Anything())),
    Field("not_in", Seq(Anything())),
    Field("is", Bool()),
), name="condition")
_OPS = ("equals", "not_equals", "in", "not_in", "is")
INPUT = Map((
    Field("id", Str(pattern=SNAKE), required=True, doc="Name used in templates: {{ id }}."),
    Field("type", Str(choices=INPUT_TYPES), required=True),
    Field("prompt", Str(), required=True, doc="The question shown to the operator."),
    Field("help", Str(), doc="Extra guidance shown with the prompt."),
    Field("rule", Str(), doc="A naming rule (checklists/naming.yaml) the answer must meet."),
    Field("minimum", Int(), doc="The smallest number an int input takes."),
    Field("maximum", Int(), doc="The largest number an int input takes."),
    Field("differs_from", Str(pattern=SNAKE), doc="An earlier input this answer must not equal."),
    Field("default", Deferred(Anything()), doc="A default: a template, a number or a bool (of the input's type)."),
    Field("choices", Seq(Str())),
    Field("choices_from", LOOKUP, doc="A live read-only lookup giving the choices."),
    Field("default_from", LOOKUP, doc="A live read-only lookup giving the default."),
    Field("when", CONDITION, doc="Ask only when this holds."),
    Field("evidence", Bool(), doc="Recorded as evidence (sign-off, approval) in the journal."),
), name="input", id_key="id")
STEP = Map((
    Field("id", Str(pattern=KEBAB), required=True, doc="Unique kebab-case step id."),
    Field("title", Str(), required=True),
    Field("type", Str(), required=True, doc="The step type (see `kprov list --step-types`)."),
    Field("risk", Str(choices=tuple(r.value for r in Risk)), required=True),
    Field("params", Deferred(MapOf(Anything())), doc="The step type's parameters; templates allowed."),
    Field("when", CONDITION, doc="Run only when this holds; otherwise skipped with the reason shown."),
    Field("outputs", MapOf(Str(), keys=Str(pattern=SNAKE, expect="a snake_case name")),
          doc="Names for later steps: {name: result field}."),
), name="step", id_key="id")
CHECKLIST = Map((
    Field("schema", Int(), required=True, doc=f"Checklist language version; must be {SCHEMA_VERSION}."),
    Field("id", Str(pattern=KEBAB), required=True),
    Field("title", Str(), required=True),
    Field("scope", Str(choices=("shared", "client")), required=True),
    Field("description", Str()),
    Field("target", Str(), doc="What the run acts on (a template), used for locks and banners."),
    Field("inputs", Seq(INPUT)),
    Field("steps", Seq(STEP, nonempty="a checklist needs at least one step"), required=True),
), name="checklist")
_DEFAULT_KINDS: Mapping[str, Kind] = {"string": Str(), "choice": Str(), "int": Int(), "bool": Bool(),
                                      **{k: Str() for k in TEXT_KINDS}}


def _param_kind(param: Param) -> Kind:
    """A parameter's kind; every kind but `any` may also be a bare `{{ placeholder }}` filled in at run time."""
    kinds: Mapping[str, Kind] = {"str": Str(choices=param.choices), "int": Int(), "bool": Bool(),
                                 "list": Seq(Anything()), "map": MapOf(Anything()), **{k: Str() for k in TEXT_KINDS}}
    kind = kinds.get(param.kind)
    return Templated(kind) if kind is not None else Anything()


def params_schema(step_type: StepType) -> Map:
    """The `params:` a step type takes, as a schema (from its `Param` declarations)."""
    return Map(tuple(Field(p.name, _param_kind(p), required=p.required, doc=p.doc) for p in step_type.params),
               noun="parameter", owner=f" for {step_type.name}", doc=step_type.summary)


def _read_lookup(reader: Reader, lookup: Record, lookup_names: Sequence[str]) -> Lookup | None:
    params_node = lookup.child("params")
    plain = params_node.plain() if params_node is not None and isinstance(lookup.get("params"), dict) else {}
    found = plain if isinstance(plain, dict) else {}
    generic = ("service", "operation", "query")
    if "lookup" in lookup:
        name = lookup.text("lookup")
        if name and name not in lookup_names:
            reader.add(lookup.node.loc, lookup.at("lookup"),
                       f"unknown lookup {name!r}; known: {', '.join(lookup_names)}")
        if any(k in lookup for k in generic):
            reader.add(lookup.node.loc, lookup.crumb, "give either `lookup` or `service`/`operation`/`query`, not both")
        return Lookup(name=name, params=found, loc=lookup.node.loc)
    missing = [k for k in generic if k not in lookup]
    if missing:
        reader.add(lookup.node.loc, lookup.crumb, f"a generic lookup needs {', '.join(missing)} (or use `lookup:`)")
        return None
    return Lookup(service=lookup.text("service"), operation=lookup.text("operation"), query=lookup.text("query"),
                  params=found, loc=lookup.node.loc)


def _read_condition(reader: Reader, condition: Record) -> Condition | None:
    ops = [k for k in _OPS if k in condition]
    if len(ops) != 1:
        reader.add(condition.node.loc, condition.crumb,
                   "a condition needs `name` and exactly one of equals, not_equals, in, not_in, is")
        return None
    if not condition.text("name") or ops[0] not in condition.values:
        return None
    value = condition.get(ops[0])
    return Condition(name=condition.text("name"), op=ops[0], value=list(value) if isinstance(value, tuple) else value,
                     loc=condition.node.loc)


@dataclass(frozen=True, slots=True)
class _Use:
    """A name used by a template or condition, for the order checks."""

    name: str
    loc: Loc
    crumb: str
    step_index: int  # -1 for inputs and the target


def _template_uses(reader: Reader, node: Node, crumb: str, step_index: int) -> list[_Use]:
    uses: list[_Use] = []
    if node.kind == "str" and isinstance(node.value, str):
        try:
            uses += [_Use(p.name, node.loc, crumb, step_index) for p in placeholders(node.value)]
        except TemplateError as exc:
            reader.add(node.loc, crumb, str(exc))
    elif node.kind == "map":
        for key, child in node.items():
            uses += _template_uses(reader, child, join(crumb, key), step_index)
    elif node.kind == "seq":
        for i, child in enumerate(node.sequence()):
            uses += _template_uses(reader, child, f"{crumb}[{i}]", step_index)
    return uses


def _uses_of(reader: Reader, record: Record, key: str, step_index: int) -> list[_Use]:
    node = record.child(key)
    return _template_uses(reader, node, record.at(key), step_index) if node is not None else []


def _read_step(reader: Reader, step: Record, index: int,
               types: Mapping[str, StepType]) -> tuple[Step | None, list[_Use]]:
    uses = _uses_of(reader, step, "title", index)
    type_name = step.text("type")
    step_type = types.get(type_name) if type_name else None
    if type_name and step_type is None:
        from difflib import get_close_matches

        close = get_close_matches(type_name, list(types), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else "; `kprov list --step-types` lists them"
        reader.add(step.loc("type"), step.at("type"), f"unknown step type {type_name!r}{hint}")
    params: dict[str, object] = {}
    params_node = step.child("params")
    if params_node is not None:
        uses += _template_uses(reader, params_node, step.at("params"), index)
        kind = params_schema(step_type) if step_type is not None else MapOf(Anything())
        if reader.read(params_node, kind, step.at("params")) is not INVALID:
            params = params_node.plain()  # type: ignore[assignment]  # a mapping: read as one just now
    elif step_type is not None:
        for p in step_type.params:
            if p.required:
                reader.add(step.node.loc, step.at("params"),
                           f"missing required parameter {p.name!r} for {step_type.name}")
    when = None
    condition = step.record("when")
    if condition is not None:
        when = _read_condition(reader, condition)
        if when is not None and when.loc is not None:
            uses.append(_Use(when.name, when.loc, step.at("when"), index))
    outputs: dict[str, str] = {}
    written = step.get("outputs")
    outputs_node = step.child("outputs")
    if isinstance(written, dict) and outputs_node is not None:
        for key, field_name in written.items():
            if step_type is not None and step_type.outputs and field_name not in step_type.outputs:
                reader.add(outputs_node.mapping()[key].loc, join(step.at("outputs"), key),
                           f"{step_type.name} has no result {field_name!r}; it has: {', '.join(step_type.outputs)}")
            outputs[key] = str(field_name)
    if any(k not in step.values for k in ("id", "title", "type", "risk")):
        return None, uses
    found = Step(id=step.text("id"), title=step.text("title"), type=type_name, params=params,
                 risk=Risk(step.text("risk")), when=when, outputs=outputs, loc=step.node.loc)
    return found, uses


def _read_input(reader: Reader, spec: Record, lookup_names: Sequence[str]) -> tuple[InputSpec | None, list[_Use]]:
    uses: list[_Use] = []
    for key in ("prompt", "help"):  # placeholders of earlier inputs, filled in when the question is asked
        uses += _uses_of(reader, spec, key, -1)
    lookups: dict[str, Lookup | None] = {}
    for key in ("choices_from", "default_from"):
        lookup = spec.record(key)
        if lookup is not None:
            lookups[key] = _read_lookup(reader, lookup, lookup_names)
            uses += _template_uses(reader, lookup.node, spec.at(key), -1)
    when = None
    condition = spec.record("when")
    if condition is not None:
        when = _read_condition(reader, condition)
        if when is not None and when.loc is not None:
            uses.append(_Use(when.name, when.loc, spec.at("when"), -1))
    if spec.text("differs_from"):  # an earlier input, checked like a placeholder of one
        uses.append(_Use(spec.text("differs_from"), spec.loc("differs_from"), spec.at("differs_from"), -1))
    kind = spec.text("type")
    default: object = None
    default_node = spec.child("default")
    if default_node is not None:
        default = reader.read(default_node, _DEFAULT_KINDS.get(kind, Anything()), spec.at("default"))
        default = None if default is INVALID else default
        if isinstance(default, str):
            uses += _template_uses(reader, default_node, spec.at("default"), -1)
    if kind == "choice" and not spec.texts("choices") and "choices_from" not in lookups:
        reader.add(spec.node.loc, spec.crumb, "a choice input needs `choices` or `choices_from`")
    if kind == "secret" and default_node is not None:
        reader.add(spec.node.loc, spec.crumb, "a secret input cannot have a default")
    bounds = [k for k in ("minimum", "maximum") if k in spec]
    if bounds and kind != "int":
        reader.add(spec.loc(bounds[0]), spec.at(bounds[0]), f"{bounds[0]} is for int inputs only")
    if any(k not in spec.values for k in ("id", "type", "prompt")):
        return None, uses
    found = InputSpec(
        id=spec.text("id"), type=kind, prompt=spec.text("prompt"), help=spec.text("help"), rule=spec.text("rule"),
        minimum=_int_or_none(spec.get("minimum")), maximum=_int_or_none(spec.get("maximum")),
        differs_from=spec.text("differs_from"),
        default=default, choices=spec.texts("choices"), choices_from=lookups.get("choices_from"),
        default_from=lookups.get("default_from"), when=when, evidence=spec.flag("evidence"), loc=spec.node.loc)
    return found, uses


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positions(record: Record, key: str) -> list[tuple[int, Record]]:
    """The records of a list with their index in the file's list (items that are not mappings count too)."""
    by_node = {id(item.node): item for item in record.records(key)}
    node = record.child(key)
    items = node.sequence() if node is not None else []
    return [(i, by_node[id(item)]) for i, item in enumerate(items) if id(item) in by_node]


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
    reader = Reader()
    top = reader.record(root, CHECKLIST, "")
    if top is None:
        raise ChecklistError(reader.issues)
    reader.version(top, "schema", SCHEMA_VERSION)
    uses = _uses_of(reader, top, "target", -1)
    inputs: list[InputSpec] = []
    for _, record in _positions(top, "inputs"):
        spec, more = _read_input(reader, record, lookup_names)
        uses += more
        if spec is not None:
            inputs.append(spec)
    steps: list[Step] = []
    first_at: dict[str, Loc] = {}  # every step's id, read or not: a step with another error still has one
    for index, record in _positions(top, "steps"):
        step, more = _read_step(reader, record, index, types)
        uses += more
        if step is not None:
            steps.append(step)
        step_id = record.text("id") if "id" in record.values else ""
        if step_id in first_at:
            reader.add(record.node.loc, f"steps[{index}] (id={step_id})",
                       f"duplicate step id {step_id!r} (first at line {first_at[step_id].line})")
        elif step_id:
            first_at[step_id] = record.node.loc
    _check_names(reader, inputs, steps, uses, types, set(rule_ids) if rule_ids is not None else None)
    reader.fail()
    return Checklist(id=top.text("id"), title=top.text("title"), scope=top.text("scope"),
                     description=top.text("description"), inputs=tuple(inputs), steps=tuple(steps),
                     path=path, sha256=sha256, target=top.text("target"))


def _where(loc: Loc | None) -> Loc:
    """A record's position (records built by this loader always have one)."""
    return loc if loc is not None else Loc("?", 1, 1)


def _evidence_ids(reader: Reader, step: Step, types: Mapping[str, StepType], crumb: str) -> list[str]:
    """Names a step's evidence adds to the namespace (they are its outputs: `steps.base.CollectsEvidence`)."""
    try:
        return [spec.id for spec in evidence_of(types.get(step.type), step.params)]
    except InputError as exc:  # the run would refuse it at this step: say so now
        reader.add(_where(step.loc), join(crumb, "params"), str(exc))
        return []


def _check_names(reader: Reader, inputs: Sequence[InputSpec], steps: Sequence[Step], uses: Sequence[_Use],
                 types: Mapping[str, StepType], rule_ids: set[str] | None) -> None:
    defined: dict[str, int] = {}  # name -> index of the step that defines it (-1: an input)
    for spec in inputs:
        if spec.id in defined:
            reader.add(_where(spec.loc), f"inputs (id={spec.id})", f"duplicate input id {spec.id!r}")
        defined[spec.id] = -1
        if rule_ids is not None and spec.rule and spec.rule not in rule_ids:
            reader.add(_where(spec.loc), f"inputs (id={spec.id}) › rule", f"unknown naming rule {spec.rule!r}")
    for index, step in enumerate(steps):
        crumb = f"steps[{index}] (id={step.id})"
        for name in [*step.outputs, *_evidence_ids(reader, step, types, crumb)]:
            if name in defined:
                reader.add(_where(step.loc), f"{crumb} › outputs", f"{name!r} is already defined"
                           f"{' as an input' if defined[name] == -1 else ' by an earlier step'}")
            else:
                defined[name] = index
        step_type = types.get(step.type)
        if step_type is not None and rule_ids is not None:
            for p in step_type.params:
                if p.rule and p.rule not in rule_ids:
                    reader.add(_where(step.loc), crumb, f"step type {step.type} names unknown naming rule {p.rule!r}")
    input_index = {spec.id: i for i, spec in enumerate(inputs)}
    for use in uses:
        where = defined.get(use.name)
        if where is None:
            reader.add(_where(use.loc), use.crumb, f"unknown name {use.name!r}: not an input or a step output")
        elif use.step_index == -1 and where >= 0:
            reader.add(_where(use.loc), use.crumb,
                       f"{use.name!r} is a step output; inputs and the target can use inputs only")
        elif use.step_index >= 0 and where >= use.step_index:
            msg = "its own output" if where == use.step_index else f"an output of a later step (steps[{where}])"
            reader.add(_where(use.loc), use.crumb, f"{use.name!r} is {msg}; a step can use only earlier outputs")
        elif use.step_index == -1 and where == -1 and use.crumb.startswith("inputs"):
            user = use.crumb.split("(id=", 1)[-1].split(")", 1)[0]
            if user in input_index and input_index[use.name] >= input_index[user]:
                reader.add(_where(use.loc), use.crumb,
                           f"{use.name!r} is asked later; an input can use only earlier inputs")


def load_checklist(
    path: Path,
    *,
    display: str | None = None,
    types: Mapping[str, StepType] | None = None,
    lookup_names: Sequence[str] | None = None,
    rule_ids: Iterable[str] | None = None,
) -> Checklist:
    """Read, parse and validate one checklist file (its digest is of the very bytes parsed)."""
    from kensium_provision import steps

    shown = display or str(path)
    raw = read_file(path, display=shown)
    return parse_checklist(load_bytes(raw, shown), path=shown, sha256=hashlib.sha256(raw).hexdigest(),
                           types=types if types is not None else steps.registry(),
                           lookup_names=lookup_names if lookup_names is not None else steps.LOOKUP_NAMES,
                           rule_ids=rule_ids)


def load_checklist_text(
    text: str,
    path: str = "<text>",
    *,
    types: Mapping[str, StepType] | None = None,
    lookup_names: Sequence[str] | None = None,
    rule_ids: Iterable[str] | None = None,
) -> Checklist:
    """Parse a checklist from text (tests, stdin)."""
    from kensium_provision import steps

    return parse_checklist(load(text, path), path=path, sha256=hashlib.sha256(text.encode()).hexdigest(),
                           types=types if types is not None else steps.registry(),
                           lookup_names=lookup_names if lookup_names is not None else steps.LOOKUP_NAMES,
                           rule_ids=rule_ids)


# --- JSON Schema --------------------------------------------------------------------------------


def json_schema(types: Mapping[str, StepType] | None = None) -> dict[str, object]:
    """The checklist language as JSON Schema (draft 2020-12), for yaml-language-server and CI."""
    from kensium_provision import steps

    types = types if types is not None else steps.registry()

    def ref(schema: Map) -> dict[str, object]:
        return {"$ref": f"#/$defs/{schema.name}"}

    step = json_object(STEP, ref)
    type_field = STEP.field("type")
    step["properties"]["type"] = {"enum": sorted(types), "description": type_field.doc if type_field else ""}  # type: ignore[index]
    step["allOf"] = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"properties": {"params": json_object(params_schema(t))}},
        }
        for name, t in sorted(types.items())
    ]
    condition = json_object(CONDITION, ref)
    condition["minProperties"] = 2
    condition["maxProperties"] = 2
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kensium.com/schemas/kprov-checklist-1.json",
        "title": "kprov checklist",
        **json_object(CHECKLIST, ref),
        "$defs": {"input": json_object(INPUT, ref), "step": step, "lookup": json_object(LOOKUP, ref),
                  "condition": condition},
    }
