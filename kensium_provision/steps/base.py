"""The step contract every step type satisfies: probe, act, verify, and optional undo.

- `probe` is read-only: is the step already done, and what is there?
- `act` makes the change and returns the step's outputs.
- `verify` is read-only: after act (or in `check`), is everything right? It lists what differs.
- `undo` (optional) removes only what this run created.

The engine is the only caller; plan and check never call `act` (and the AWS read-only wall
refuses any mutating call in those modes as a second line of defence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from kensium_provision.runtime import Runtime

__all__ = ["Difference", "Param", "Probe", "StepContext", "StepType"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """A parameter a step type accepts in a checklist (`params:`).

    `kind` is str, int, bool, list or map; `rule` names a naming rule the rendered value must meet;
    `choices` restricts a str. The loader and the JSON Schema are both generated from these.
    """

    name: str
    kind: str = "str"
    required: bool = True
    doc: str = ""
    rule: str = ""
    choices: tuple[str, ...] = ()
    default: object = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs between what is there and what should be."""

    field: str
    actual: object
    expected: object

    def __str__(self) -> str:
        return f"{self.field}: is {self.actual!r}, should be {self.expected!r}"


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
    """A step implementation. Implementations are plain classes registered in `steps.REGISTRY`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    outputs: ClassVar[tuple[str, ...]]  # result fields a checklist may name in `outputs:`; () = any

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe: ...

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]: ...

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]: ...


Undo = Callable[[StepContext, Mapping[str, Any], Mapping[str, object]], None]
