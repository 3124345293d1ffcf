"""Frozen records of checklists, plans and findings: the vocabulary every layer shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kensium_provision.yamlio import Loc

__all__ = [
    "Checklist",
    "Condition",
    "Finding",
    "InputSpec",
    "Lookup",
    "Mode",
    "Risk",
    "Status",
    "Step",
    "StepResult",
]


class Mode(StrEnum):
    """What a run does: plan reads only, apply changes, check verifies only."""

    PLAN = "plan"
    APPLY = "apply"
    CHECK = "check"


class Risk(StrEnum):
    """How much a step can change (shown in plans, journaled, drives confirmations)."""

    READ = "read"
    CREATE = "create"
    MODIFY = "modify"
    DESTROY = "destroy"


class Status(StrEnum):
    """A step's state in a plan or a run."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CHANGE = "will change"
    DEPENDS = "depends on an earlier step"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """A live, read-only source of choices or a default.

    Either a named lookup implemented in code (`lookup: availability-zones`) or a generic read call
    (`service`, `operation`, `query` as JMESPath, `params`).
    """

    name: str = ""
    service: str = ""
    operation: str = ""
    query: str = ""
    params: Mapping[str, object] = field(default_factory=dict)
    loc: Loc | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    """A typed input of a checklist, answered by the operator or an answers file."""

    id: str
    type: str  # string, choice, bool, int, secret, or a text kind: date, email, timezone, ipv4, cidr, version
    prompt: str
    help: str = ""
    rule: str = ""  # a naming rule the value must meet
    minimum: int | None = None  # bounds of an int (inclusive)
    maximum: int | None = None
    differs_from: str = ""  # an earlier input this answer must not equal (a secondary zone and the primary)
    default: object = None  # a template string, or a literal bool/int
    choices: tuple[str, ...] = ()
    choices_from: Lookup | None = None
    default_from: Lookup | None = None
    when: Condition | None = None
    evidence: bool = False  # recorded as evidence in the journal (a sign-off, an approval)
    loc: Loc | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """`when:` on a step or input: compare one named value (an input or an output)."""

    name: str
    op: str  # equals, not_equals, in, not_in, is
    value: object
    loc: Loc | None = None

    def holds(self, values: Mapping[str, object]) -> bool:
        actual = values.get(self.name)
        if self.op == "equals":
            return actual == self.value
        if self.op == "not_equals":
            return actual != self.value
        if self.op == "in":
            return actual in tuple(self.value)  # type: ignore[arg-type]
        if self.op == "not_in":
            return actual not in tuple(self.value)  # type: ignore[arg-type]
        return bool(actual) is bool(self.value)

    def describe(self) -> str:
        """In words, as plans and runsheets show it: `db_hosting is Dedicated`, `zone is one of a, b`."""
        shown = {"equals": "is", "not_equals": "is not", "in": "is one of", "not_in": "is not one of", "is": "is"}
        return f"{self.name} {shown[self.op]} {_words(self.value)}"


def _words(value: object) -> str:
    """A condition's value for people: text as is, true/false, a list as `a, b`; never a Python repr."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None or value == "":
        return "empty"
    if isinstance(value, (list, tuple)):
        return ", ".join(_words(v) for v in value) or "nothing"
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One checklist step: a step type, its parameters (templates not yet rendered) and metadata."""

    id: str
    title: str
    type: str
    params: Mapping[str, object]
    risk: Risk
    when: Condition | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)  # name -> result field of the step
    loc: Loc | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checklist:
    """A loaded, validated checklist."""

    id: str
    title: str
    scope: str  # shared or client
    description: str
    inputs: tuple[InputSpec, ...]
    steps: tuple[Step, ...]
    path: str
    sha256: str
    target: str = ""  # template naming what the run acts on, for locks and banners

    def input(self, input_id: str) -> InputSpec:
        return next(i for i in self.inputs if i.id == input_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Something `check` (or a failed verify) found wrong, naming the step and what differs."""

    step_id: str
    message: str
    expected: object = None
    actual: object = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """What happened to one step in a run (plan, apply or check)."""

    step_id: str
    title: str
    status: Status
    risk: Risk
    reason: str = ""
    params: Mapping[str, object] = field(default_factory=dict)
    diff: tuple[tuple[str, object, object], ...] = ()  # (field, current, desired)
    outputs: Mapping[str, object] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    seconds: float = 0.0
    # A person did or confirmed the work (a manual step, `steps.base.ConfirmedByHand`): kprov changed nothing
    # itself, so an apply counts it apart from its changes (a clean re-apply reports 0 changed).
    by_hand: bool = False

    @property
    def kprov_changed(self) -> bool:
        """kprov itself changed something in this step: it ran, was not a person's work and was not read-only."""
        return self.status is Status.CHANGED and not self.by_hand and self.risk is not Risk.READ
