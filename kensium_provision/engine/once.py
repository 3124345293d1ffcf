"""An interactive apply: the whole plan first, then one question (issue 15.2).

The plan is the dry run's own pass (`run` in plan mode: probes only, no act), made with the apply's
lock already held; the operator answers once, `yes` typed, for every change, and the apply pass then
asks no "Create: ...?" of its own. What keeps its own confirmation still asks at its turn: a manual
step (its person's statement, `steps.base.ConfirmedByHand`), a destroying step, and a protected
environment's typed target (`RunHooks.before_first_change`). `--step` (`run` alone) keeps the per-step
questions; `--yes` skips the question, and with it the plan pass, as it skipped every per-step one.

A step whose plan says "depends on an earlier step" cannot be known until that step has run: it counts
as a change ("5 changes, 2 of them depend on earlier steps"). A read-only step is no change: a plan with
no change says so and ends there (exit 0), asking nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

from kensium_provision.engine.run import RunReport, run
from kensium_provision.errors import AbortedError
from kensium_provision.model import Checklist, Mode, Risk, Status, StepResult
from kensium_provision.runtime import Journal, Runtime
from kensium_provision.steps.base import StepType
from kensium_provision.template import TemplateError, render

__all__ = ["PlanCount", "PlanJournal", "count_changes", "plan_then_apply", "question", "quiet", "target_of"]


@dataclass(frozen=True, slots=True)
class PlanCount:
    """What the one question asks about: the changes of a plan, and how many wait for earlier steps."""

    changes: int
    depends: int


def count_changes(plan: RunReport) -> PlanCount:
    """Steps that will (or, waiting for an earlier step, may) change something; read-only steps do not."""
    pending = [r for r in plan.results if r.status in (Status.CHANGE, Status.DEPENDS) and r.risk is not Risk.READ]
    return PlanCount(len(pending), sum(1 for r in pending if r.status is Status.DEPENDS))


def target_of(checklist: Checklist, values: Mapping[str, object]) -> str:
    """What the run acts on (`shared:vpc`, `client:acme`): the checklist's target with the answers filled in."""
    text = {k: v for k, v in values.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    try:
        return render(checklist.target, text) if checklist.target else f"{checklist.scope}:{checklist.id}"
    except TemplateError:
        return checklist.target


def question(count: PlanCount, target: str, environment: str) -> str:
    what = "this 1 change" if count.changes == 1 else f"these {count.changes} changes"
    return f"Apply {what} to {target} in {environment}?"


class PlanJournal:
    """The plan pass's records under `plan.*`: a plan's `step.result` is no result `resume` may skip."""

    def __init__(self, inner: Journal) -> None:
        self.inner = inner

    def record(self, event: str, **fields: object) -> None:
        self.inner.record(f"plan.{event}" if event.startswith("step.") else event, **fields)


def quiet(runtime: Runtime) -> AbstractContextManager[object]:
    """The reporter's plan mode (no step lines: the plan follows), if it has one (`ui.render`)."""
    planning: Callable[[], AbstractContextManager[object]] | None = getattr(runtime.reporter, "planning", None)
    return planning() if planning is not None else nullcontext()


def _not_run(plan: RunReport, failed: StepResult) -> RunReport:
    """A plan that could not probe a step: an apply that changed nothing, failed at that step."""
    results = tuple(r if r.status in (Status.DONE, Status.SKIPPED, Status.FAILED)
                    else replace(r, status=Status.PENDING, reason="not run: the plan could not probe an earlier step")
                    for r in plan.results)
    return replace(plan, mode=Mode.APPLY, results=results,
                   error=f"the plan could not probe step {failed.step_id}, so nothing was changed: {failed.reason}")


def _journal_results(runtime: Runtime, results: Sequence[StepResult]) -> None:
    for result in results:
        runtime.journal.record("step.result", step=result.step_id, status=result.status.value, reason=result.reason,
                               outputs=dict(result.outputs), findings=[], seconds=round(result.seconds, 3))


def plan_then_apply(checklist: Checklist, runtime: Runtime, values: Mapping[str, object], *,
                    types: Mapping[str, StepType] | None = None,
                    recorded: Mapping[str, Mapping[str, object]] | None = None) -> RunReport:
    """Plan, show it, ask once (typed `yes` at a terminal), then apply; `--yes`: apply at once."""
    if runtime.assume_yes:
        return run(checklist, runtime, values, types=types, recorded=recorded)
    with quiet(runtime):
        plan = run(checklist, replace(runtime, mode=Mode.PLAN, journal=PlanJournal(runtime.journal)), values,
                   types=types, recorded=recorded)
    count = count_changes(plan)
    show: Callable[[RunReport, int, int], None] | None = getattr(runtime.reporter, "show_plan", None)
    if show is not None:
        show(plan, count.changes, count.depends)
    runtime.journal.record("plan", changes=count.changes, depends=count.depends)
    failed = next((r for r in plan.results if r.status is Status.FAILED), None)
    if failed is not None:
        return _not_run(plan, failed)
    if not count.changes:
        if not any(r.status is Status.CHANGE for r in plan.results if not r.params.get("instructions")):
            _journal_results(runtime, plan.results)
            return replace(plan, mode=Mode.APPLY)  # nothing to change: every step done (or a person's, read-only)
        return run(checklist, runtime, values, types=types, recorded=recorded)  # checks only: each write still asks
    asked = question(count, target_of(checklist, values), runtime.env_name)
    operator = runtime.operator
    # At a terminal, `yes` typed (anything else declines); an answers file without --yes cannot say yes: the
    # routine confirmation refuses it as before, with its hint to pass --yes.
    agreed = operator.type_to_confirm(asked, "yes") if operator.interactive else operator.confirm(asked)
    runtime.journal.record("plan.confirmed" if agreed else "plan.declined", changes=count.changes,
                           depends=count.depends)
    if not agreed:
        raise AbortedError("the plan was not confirmed (yes was not typed): nothing was changed")
    return run(checklist, runtime, values, types=types, recorded=recorded, confirmed=True)
