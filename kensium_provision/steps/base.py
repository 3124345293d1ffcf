"""The step contract every step type satisfies: probe, act, verify, and optional undo.

- `probe` is read-only: is the step already done, and what is there?
- `act` makes the change and returns the step's outputs.
- `verify` is read-only: after act (or in `check`), is everything right? It lists what differs.
- `undo` (optional) removes only what this run created: the resources its act journaled with
  `record_created` the moment it made them (`step.created`), never what was there before. An undoable
  step type also has `undo_check`, read-only like a probe: is each of them still as the run left it?
  A step type that creates but cannot undo says why (`NotUndoable`), and `kprov undo` shows the reason.

The engine is the only caller; plan and check never call `act` (and the AWS read-only wall
refuses any mutating call in those modes as a second line of defence).

A step type may also have optional capabilities, each a small Protocol of its own, so the engine,
the loader, the answers file and the runsheet never name a step type (as pre-commit's core never
names a language):

- `CollectsEvidence`: it asks a person for typed evidence; the evidence ids are its outputs and
  answer keys.
- `ConfirmedByHand`: its `act` has a person confirm the work, a confirmation `--yes` never gives;
  the engine asks nothing before it.
- `MayLackProbe`: with some params it cannot tell by itself whether it is done; check mode skips
  it as not checkable, and a resumed run keeps its journaled outputs.
- `GivesInstructions`: the instructions a person follows, printed in a runsheet.
- `ChecksParams`: rules between parameters (a zone other than another) or that need more than one
  value; the engine runs them with the `Param` checks before the first change (`param_problems`).

Ask through `evidence_of`, `confirmed_by_hand`, `has_probe` and `instructions_of`, which give
the plain step's answer when a step type lacks the capability.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kensium_provision.model import InputSpec
    from kensium_provision.runtime import Runtime

__all__ = [
    "CheckContext",
    "ChecksParams",
    "CollectsEvidence",
    "ConfirmedByHand",
    "Created",
    "Difference",
    "GivesInstructions",
    "MayLackProbe",
    "NotUndoable",
    "Param",
    "Probe",
    "ProbesAhead",
    "StepContext",
    "StepType",
    "Touches",
    "Undo",
    "UndoCheck",
    "Undoable",
    "VerifiesAct",
    "confirmed_by_hand",
    "evidence_of",
    "field_words",
    "has_probe",
    "instructions_of",
    "not_undoable_reason",
    "param_problems",
    "probes_ahead",
    "record_created",
    "refusal",
    "touches_of",
    "undoable",
    "verify_after_act",
    "words_of",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """A parameter a step type accepts in a checklist (`params:`).

    `kind` is str, int, bool, list, map, any, or a text kind of `steps.kinds.TEXT_KINDS` (date, email,
    timezone, ipv4, cidr, version); `rule` names a naming rule the rendered value must meet; `choices`
    restricts a str; `minimum`/`maximum` bound an int; `check` returns the problem of a rendered value
    (None when it is right), saying the rule and giving an example. The loader and the JSON Schema are
    generated from these, and the engine runs every check before the first change (`param_problems`).
    """

    name: str
    kind: str = "str"
    required: bool = True
    doc: str = ""
    rule: str = ""
    choices: tuple[str, ...] = ()
    default: object = None
    minimum: int | None = None
    maximum: int | None = None
    check: Callable[[object], str | None] | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs between what is there and what should be."""

    field: str
    actual: object
    expected: object

    @property
    def name(self) -> str:
        """The field in words: a JMESPath path's last name (`DBInstances[0].DBInstanceStatus` -> `db instance
        status`), else the field as written."""
        return field_words(self.field)

    def __str__(self) -> str:
        """`vhost: none, should be acme`: as an operator reads it, no Python reprs and no JMESPath (issue 15)."""
        return f"{self.name}: {words_of(self.actual)}, should be {words_of(self.expected)}"


def field_words(name: str) -> str:
    """A field as an operator reads it: a JMESPath path becomes its last name in words."""
    import re

    path = name.split("|", 1)[0].strip() if "|" in name else name  # `... | [0]`: the path before the pipe
    if " " not in path and re.search(r"[.\[]", path):
        last = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"'[^']*'|`[^`]*`", "", path))  # not filters' literals
        if last:
            return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", last[-1]).lower()
    return name


def words_of(value: object) -> str:
    """A value as an operator reads it: yes/no, none, empty, lists and maps as text (never a Python repr)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, (Mapping, list, tuple, set, frozenset)) and not value):
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={words_of(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(words_of(v) for v in value)
    return str(value) if value != "" else "empty"


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """What a probe found.

    `done` means nothing is left to do; `current` is what exists (empty if nothing), `desired` what
    act would send (secrets as `Secret` values, masked when shown), `differences` the fields that
    differ for a change to something that exists, `outputs` the values later steps may use.
    """

    done: bool
    note: str = ""
    current: Mapping[str, object] = field(default_factory=dict)
    desired: Mapping[str, object] = field(default_factory=dict)
    differences: tuple[Difference, ...] = ()
    outputs: Mapping[str, object] = field(default_factory=dict)
    by_hand: bool = False  # the probe cannot tell: a person does it and confirms it (a resume keeps that)

    @property
    def creates(self) -> bool:
        """True when nothing exists yet (a create), False for a change to something that exists."""
        return not self.done and not self.current


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a step implementation may use: the injected runtime plus who it is."""

    runtime: Runtime
    step_id: str
    values: Mapping[str, object]  # rendered inputs and earlier outputs, read-only

    def client(self, service: str) -> Any:
        """A boto3 client of the run's session (counted, and walled in plan/check)."""
        return self.runtime.aws.client(service)

    def token(self, purpose: str = "create") -> str:
        """A deterministic idempotency token for this run and step (stable across retries and resume)."""
        return self.runtime.idempotency_token(self.step_id, purpose)

    def forget_reads(self) -> None:
        """Drop the run's cached reads (aws.cache): a poll must see what AWS says now."""
        invalidate = getattr(self.runtime.aws, "invalidate", None)
        if invalidate is not None:
            invalidate()

    def progress(self, message: str) -> None:
        self.runtime.reporter.progress(self.step_id, message)


class StepType(Protocol):
    """A step implementation. Implementations are plain classes registered in `steps.registry()`.

    Besides these members a step type may satisfy the optional capability Protocols below.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    outputs: ClassVar[tuple[str, ...]]  # result fields a checklist may name in `outputs:`; () = any

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe: ...

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]: ...

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]: ...


# --- undo: what a run created, and only that ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    """One resource a step's act made, as journaled by `record_created` (`kind` is the step type's own word:
    vhost, user, bucket, vpc...; `id` names it in its service; `details` what its undo needs besides)."""

    kind: str
    id: str
    details: Mapping[str, str] = field(default_factory=dict)


def record_created(ctx: StepContext, kind: str, resource_id: str, **details: str) -> None:
    """Journal one resource this step has just made (`step.created`), before the act goes on: what `kprov
    undo` may remove, and only that, even when the act fails later or the run is interrupted."""
    ctx.runtime.journal.record("step.created", step=ctx.step_id, kind=kind, id=resource_id, **details)


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoCheck:
    """What an undo's re-probe found of the resources a step created.

    `present`: the ones still there, to remove (none: nothing left to undo); `changed`: how they differ
    from what the run left (tags, rules, contents), each a sentence; any refuses the whole undo. `by_hand`:
    kprov cannot remove them here (no SQL connection, a password manager without delete): what a person
    does instead, shown in the undo plan."""

    present: tuple[Created, ...] = ()
    changed: tuple[str, ...] = ()
    note: str = ""
    by_hand: str = ""


Undo = Callable[[StepContext, Mapping[str, Any], Sequence[Created]], None]


@runtime_checkable
class Undoable(Protocol):
    """A step type that can remove what its act created (`record_created`)."""

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        """Read-only: which of `created` are still there, and whether any changed since the run."""
        ...

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        """Remove `created` (those `undo_check` found present), newest first; only after its check passed."""
        ...


@runtime_checkable
class NotUndoable(Protocol):
    """A step type that creates but that kprov cannot undo: the reason, shown in the undo plan."""

    def not_undoable(self, params: Mapping[str, Any]) -> str: ...


def undoable(step_type: object) -> bool:
    """True when the step type can undo what it created (`Undoable`)."""
    return callable(getattr(step_type, "undo", None)) and callable(getattr(step_type, "undo_check", None))


def not_undoable_reason(step_type: object, params: Mapping[str, Any]) -> str:
    """Why kprov cannot undo such a step: the type's own reason, or that it has no undo at all."""
    reason = getattr(step_type, "not_undoable", None)
    if callable(reason):
        return str(reason(params))
    return f"{getattr(step_type, 'name', 'this step type')} has no undo"


# --- optional capabilities -------------------------------------------------------------------------------


@runtime_checkable
class CollectsEvidence(Protocol):
    """A step type that asks a person for typed evidence (validated like an input, and journaled).

    Each evidence id becomes one of the step's outputs, a name later steps may use, and a key an
    answers file may hold; the engine binds the values `act` returns under those ids.
    """

    def evidence(self, params: Mapping[str, Any]) -> Sequence[InputSpec]:
        """The evidence asked for with these params; raises `InputError` on a malformed list."""
        ...


@runtime_checkable
class ConfirmedByHand(Protocol):
    """A step type whose `act` has a person confirm the work is done.

    That confirmation comes from the operator or an answers file's `confirm:`, never from `--yes`;
    the engine does not ask its own "Create: ...?" before such a step.
    """

    confirmed_by_hand: ClassVar[bool]


@runtime_checkable
class MayLackProbe(Protocol):
    """A step type that, with some params, cannot tell by itself whether it is done.

    Without a probe, check mode skips the step as not checkable, and a resumed run keeps the
    outputs the journal recorded for it (there is nothing to re-probe).
    """

    def has_probe(self, params: Mapping[str, Any]) -> bool: ...


@runtime_checkable
class GivesInstructions(Protocol):
    """A step type a person carries out by following instructions (shown in a runsheet)."""

    def instructions(self, params: Mapping[str, Any]) -> str:
        """The instructions as written in the checklist (placeholders left in)."""
        ...


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What parameter checks may use: the naming rules, the text values known so far (a rule's context),
    the parameters not known yet (they need an earlier step's outputs; absent from the params), and the
    run's settings and environment once they are known (not yet for an answers file read before AWS)."""

    names: Any  # naming.RuleSet
    values: Mapping[str, str] = field(default_factory=dict)
    pending: frozenset[str] = frozenset()
    settings: Mapping[str, object] | None = None  # the run's settings; None before the environment is known
    env_name: str = ""

    def known(self, params: Mapping[str, Any], *names: str) -> bool:
        """True when every named parameter is there and known (given, not waiting for an output)."""
        return all(n in params and n not in self.pending for n in names)


@runtime_checkable
class ChecksParams(Protocol):
    """A step type with rules a single `Param` cannot say (between parameters, or a parameter-given rule).

    The engine calls it before the first change with the parameters known then, and again at the step's
    own turn with all of them: check only what `ctx.known(...)` says is there.
    """

    def check_params(self, params: Mapping[str, Any], ctx: CheckContext) -> Sequence[str]: ...


def _param_problem(param: Param, value: object, ctx: CheckContext) -> str | None:
    from kensium_provision.steps.kinds import Bounds, check_text

    if hasattr(value, "reveal"):  # a secret is checked where it is made, never shown in a message
        return None
    if param.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        return Bounds(param.minimum, param.maximum).problem(value)
    if isinstance(value, str):
        problem = check_text(param.kind, value)
        if problem is None and param.choices and value not in param.choices:
            problem = f"must be one of: {', '.join(param.choices)}"
        if problem is None and param.rule:
            problems = ctx.names.check(param.rule, value, ctx.values)
            if problems:
                problem = "; ".join(problems) + f" (for example {ctx.names.example(param.rule, ctx.values)})"
        if problem is not None:
            return problem
    return param.check(value) if param.check is not None else None


def param_problems(step_type: object, params: Mapping[str, Any], ctx: CheckContext,
                   *, only: Collection[str] | None = None) -> list[str]:
    """Every problem of a step's rendered parameters: each `Param`'s kind, choices, bounds, naming rule and
    `check` (of the parameters in `only`, when given), then the step type's own `check_params`.
    Parameters in `ctx.pending` are not known yet and are skipped."""
    problems: list[str] = []
    for param in getattr(step_type, "params", ()):
        if param.name in params and param.name not in ctx.pending and (only is None or param.name in only):
            value = params[param.name]
            problem = None if value is None and not param.required else _param_problem(param, value, ctx)
            if problem:
                problems.append(f"{param.name} {_quoted(value)} {problem}")
    checks = getattr(step_type, "check_params", None)
    if callable(checks):
        problems += [str(p) for p in checks(params, ctx)]
    return problems


def refusal(read: Callable[..., object], *args: object) -> str | None:
    """A `Param.check` made of a reader that raises InputError on a bad value: its message, or None."""
    from kensium_provision.errors import InputError

    try:
        read(*args)
    except InputError as exc:
        return str(exc)
    return None


def _quoted(value: object) -> str:
    return f"\"{value}\"" if isinstance(value, str) else str(value)


# The capabilities are looked up as attributes (not with isinstance), so a wrapper that forwards
# attribute access to the step type it wraps keeps them.


def evidence_of(step_type: object, params: Mapping[str, Any]) -> Sequence[InputSpec]:
    """The evidence a step asks for: none unless its type `CollectsEvidence`."""
    evidence = getattr(step_type, "evidence", None)
    return tuple(evidence(params)) if callable(evidence) else ()


@runtime_checkable
class Touches(Protocol):
    """A step type that names what its act may change, as keys (`subnet:<vpc>:<cidr>`), so the engine can
    prove two steps independent (`engine.schedule`): no output of one in the other's params and no key in
    common. Keys come from the rendered params; a step type without `touches` runs alone."""

    def touches(self, params: Mapping[str, Any]) -> frozenset[str]: ...


def touches_of(step_type: object, params: Mapping[str, Any]) -> frozenset[str] | None:
    """What the step may change (`Touches`), or None when its type does not say (then it touches everything)."""
    return step_type.touches(params) if isinstance(step_type, Touches) else None


@runtime_checkable
class ProbesAhead(Protocol):
    """A step type whose probe only reads AWS through the run's session (no other system, no person, no
    write), so the engine may start it ahead of its turn (`engine.run`'s prefetch): `probes_ahead = True`."""

    probes_ahead: ClassVar[bool]


def probes_ahead(step_type: object) -> bool:
    return getattr(step_type, "probes_ahead", False) is True


@runtime_checkable
class VerifiesAct(Protocol):
    """A step type whose act's own answers from AWS tell whether it is right, so the verify right after its
    act need not read again (a 200 to CreateSubnet or AuthorizeSecurityGroupIngress is authoritative; at
    AWS's latency each re-read costs tens of milliseconds: bench/latency). `verify_act` gets what `act`
    returned and lists what differs, or None when the act cannot tell (then `verify` reads). Check mode
    and every later run still read: only what this very act just did is taken from its answers.
    """

    def verify_act(self, ctx: StepContext, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None: ...


def verify_after_act(step_type: StepType, ctx: StepContext, params: Mapping[str, Any],
                     acted: Mapping[str, object]) -> Sequence[Difference]:
    """The verify right after `act`: from the act's answers where the step type can tell (`VerifiesAct`),
    else `verify`'s reads."""
    # A subclass that adds to `verify` but inherits `verify_act` would lose its additions: only a pair.
    if isinstance(step_type, VerifiesAct) and _owner(step_type, "verify_act") is _owner(step_type, "verify"):
        found = step_type.verify_act(ctx, params, acted)
        if found is not None:
            return found
    return step_type.verify(ctx, params)


def _owner(obj: object, name: str) -> type | None:
    return next((cls for cls in type(obj).__mro__ if name in vars(cls)), None)


def confirmed_by_hand(step_type: object) -> bool:
    """True when the step's `act` asks a person to confirm the work (`ConfirmedByHand`)."""
    return getattr(step_type, "confirmed_by_hand", False) is True


def has_probe(step_type: object, params: Mapping[str, Any]) -> bool:
    """Whether the step can tell by itself that it is done: always, unless its type `MayLackProbe`."""
    probes = getattr(step_type, "has_probe", None)
    return bool(probes(params)) if callable(probes) else True


def instructions_of(step_type: object, params: Mapping[str, Any]) -> str:
    """A person's instructions for the step, or "" unless its type `GivesInstructions`."""
    instructions = getattr(step_type, "instructions", None)
    return str(instructions(params)) if callable(instructions) else ""
