"""Undo a run: remove, newest first, what that run created, and only that (issue 17.5).

What a run created is what its journal says: each `step.created` record (`steps.base.record_created`,
written by an act the moment it made a resource, so a failed or interrupted act's partial work is known
too). A step whose probe found it done created nothing, so nothing of it is touched; a step that changed
something that existed before (no `step.created`) is listed, never "restored". A run resumed by later
runs is undone with them: their journals are read too.

The undo is itself a run of the engine over a checklist made here, one `destroy` step per step undone
(`UndoStep` wraps the step type's `undo_check` and `undo`), so it is journaled, locked, guarded and
confirmed as any run is (the typed confirmation of a destroying run: `--yes` never gives it), and it
resumes by running it again: what is gone already is re-probed as done. Before any deletion every
resource is re-probed (`plan_undo`): anything changed since the run refuses the whole undo (exit 3,
nothing deleted), naming the step and what changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, ClassVar, cast

from kensium_provision.engine.run import RunReport, run
from kensium_provision.errors import InputError, StepError
from kensium_provision.journal.reader import RunLog
from kensium_provision.model import Checklist, Mode, Risk, Status, Step, StepResult
from kensium_provision.runtime import Runtime
from kensium_provision.steps.base import (
    Created,
    Difference,
    Param,
    Probe,
    StepContext,
    StepType,
    Undoable,
    confirmed_by_hand,
    instructions_of,
    not_undoable_reason,
    undoable,
)

__all__ = ["UndoItem", "UndoPlan", "UndoRun", "UndoStep", "Undone", "created_of", "items_of", "plan_undo", "prepare"]

_BY_HAND = "done by a person, not by kprov: undo it by hand"


@dataclass(frozen=True, slots=True, kw_only=True)
class Undone:
    """One step of the undone run, as its journal tells it."""

    run_id: str  # the run (the undone one, or a run resuming it) whose act made it
    step_id: str
    type: str
    params: Mapping[str, object]  # as journaled at its intent: secret-named ones masked (what the act journals
    # with `record_created` carries what its undo needs besides)
    status: str  # its last step.result status; "" when the run stopped during its act
    risk: str = ""
    created: tuple[Created, ...] = ()
    diff: tuple[tuple[str, object, object], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoItem:
    """What the undo does with one step: remove (what `present` lists), nothing (`gone`: removed already),
    or nothing because it cannot (`reason`), or refuse the whole undo (`changed`)."""

    step: Undone
    action: str  # remove | gone | refused | not-undoable
    present: tuple[Created, ...] = ()
    changed: tuple[str, ...] = ()
    reason: str = ""
    by_hand: str = ""  # what of it a person removes (kprov removes the rest)


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoPlan:
    """Every step of the undone run that changed something, newest first, and what the undo does with it."""

    run_id: str
    items: tuple[UndoItem, ...]
    kept: tuple[str, ...] = ()  # steps found done by their probe: what existed before the run

    @property
    def refused(self) -> tuple[UndoItem, ...]:
        return tuple(i for i in self.items if i.action == "refused")


def created_of(record: Mapping[str, object]) -> Created:
    """A `step.created` record as the resource it names (`steps.base.record_created`)."""
    details = {str(k): str(v) for k, v in record.items()
               if k not in ("event", "step", "kind", "id", "seq", "ts", "prev", "hash", "run_id")}
    return Created(kind=str(record.get("kind", "")), id=str(record.get("id", "")), details=details)


def items_of(logs: Iterable[RunLog]) -> tuple[list[Undone], list[str]]:
    """Each step that acted in these runs (a run and those resuming it, in order), oldest first; and the steps
    their probes found done (existing before: kept)."""
    found: dict[str, Undone] = {}
    done: list[str] = []
    for log in logs:
        for rec in log.records:
            event, step = rec.get("event"), rec.get("step")
            if not isinstance(step, str):
                continue
            if event == "step.intent":
                params = rec.get("params")
                diff = rec.get("diff")
                earlier = found.pop(step, None)
                found[step] = Undone(
                    run_id=log.run_id, step_id=step, type=str(rec.get("type", "")),
                    params=dict(params) if isinstance(params, dict) else {}, status="", risk=str(rec.get("risk", "")),
                    created=earlier.created if earlier else (),
                    diff=tuple((d[0], d[1], d[2]) for d in diff if isinstance(d, list) and len(d) == 3)
                    if isinstance(diff, list) else ())
            elif event == "step.created" and step in found:
                item = found[step]
                found[step] = replace(item, created=(*item.created, created_of(rec)))
            elif event == "step.result" and step in found:
                found[step] = replace(found[step], status=str(rec.get("status", "")))
            elif event == "step.result" and rec.get("status") == "done" and step not in done:
                done.append(step)
    return list(found.values()), [s for s in done if s not in found]


def undo_context(runtime: Runtime, step_id: str, runs: Sequence[str], ids: Iterable[str] = ()) -> StepContext:
    """A step's context in an undo: its values name the runs undone (`undone_runs`), whose writes are theirs, and
    the ids of all they created (`undone_ids`), which what one step created may hold (a VPC its subnets)."""
    return StepContext(runtime, step_id, MappingProxyType({"undone_runs": tuple(runs), "undone_ids": tuple(ids)}))


def _decide(undone: Undone, step_type: StepType | None, runtime: Runtime, runs: Sequence[str],
            ids: frozenset[str]) -> UndoItem:
    """What to do with one step: re-probe what it created (read-only), or say why it is not undone."""
    if step_type is None:
        return UndoItem(step=undone, action="not-undoable", present=undone.created,
                        reason=f"step type {undone.type} is unknown to this kprov")
    if not undone.created:  # it acted, and made nothing new: a person's work, or a change to what existed
        if callable(getattr(step_type, "not_undoable", None)):
            reason = not_undoable_reason(step_type, undone.params)
        elif confirmed_by_hand(step_type) or instructions_of(step_type, undone.params):
            reason = _BY_HAND
        elif undoable(step_type) and not undone.diff:  # a create, journaled before acts recorded what they made
            reason = ("its journal does not say what it created (no step.created record: a run of an older kprov); "
                      "remove it by hand after a review")
        elif undoable(step_type):
            changes = "; ".join(str(Difference(str(f), a, e)) for f, a, e in undone.diff)
            reason = (f"it changed what existed before the run ({changes}); undo removes only what a run created "
                      "and never restores earlier settings")
        else:
            reason = not_undoable_reason(step_type, undone.params)
        return UndoItem(step=undone, action="not-undoable", reason=reason)
    if not undoable(step_type):
        return UndoItem(step=undone, action="not-undoable", present=undone.created,
                        reason=not_undoable_reason(step_type, undone.params))
    ctx = undo_context(runtime, f"undo-{undone.step_id}", runs, ids)
    check = cast("Undoable", step_type).undo_check(ctx, undone.params, undone.created)
    if check.changed:
        return UndoItem(step=undone, action="refused", present=check.present, changed=tuple(check.changed))
    if check.by_hand and not check.present:
        return UndoItem(step=undone, action="not-undoable", reason=check.by_hand)
    if not check.present:
        return UndoItem(step=undone, action="gone", reason=check.note or "removed already")
    return UndoItem(step=undone, action="remove", present=check.present, reason=check.note, by_hand=check.by_hand)


def plan_undo(run_id: str, logs: Sequence[RunLog], runtime: Runtime,
              types: Mapping[str, StepType]) -> UndoPlan:
    """Re-probe, newest first, everything the runs created (read-only: plan mode's wall holds for it). A
    read-only step and a step whose act made nothing before it failed are not in the plan."""
    steps, kept = items_of(logs)
    chosen = [u for u in reversed(steps) if u.created or (u.status == "changed" and u.risk != Risk.READ.value)]
    runs = [log.run_id for log in logs]
    ids = frozenset(c.id for u in steps for c in u.created)
    return UndoPlan(run_id=run_id, items=tuple(_decide(u, types.get(u.type), runtime, runs, ids) for u in chosen),
                    kept=tuple(kept))


def describe(created: Sequence[Created]) -> str:
    """`vhost acme, user rms_acme`: what a step created, as the undo plan names it."""
    return ", ".join(f"{c.kind} {c.id}" for c in created) or "nothing"


class UndoStep:
    """A step of the undo run: the step type's `undo_check` as its probe, its `undo` as the act (destroy)."""

    name: ClassVar[str] = "undo"
    summary: ClassVar[str] = "Remove what a step of an earlier run created."
    params: ClassVar[tuple[Param, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("removed",)

    def __init__(self, inner: Undoable, item: UndoItem, runs: Sequence[str], ids: Iterable[str] = ()) -> None:
        self.inner, self.item, self.runs, self.ids = inner, item, tuple(runs), tuple(ids)

    def _check(self, ctx: StepContext) -> Any:
        ctx = undo_context(ctx.runtime, ctx.step_id, self.runs, self.ids)
        check = self.inner.undo_check(ctx, self.item.step.params, self.item.step.created)
        if check.changed:  # changed between the undo's plan and now: stop here, nothing more is removed
            raise StepError(f"step {self.item.step.step_id} changed since run {self.item.step.run_id}: "
                            + "; ".join(check.changed), hint="look at what changed; undo refuses to remove it")
        return check

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        check = self._check(ctx)
        if not check.present:
            return Probe(done=True, note="removed already: nothing left to undo",
                         outputs={"removed": describe(self.item.step.created)})
        by_hand = f"; by hand: {check.by_hand}" if check.by_hand else ""
        return Probe(done=False, note=f"will remove {describe(check.present)}{by_hand}",
                     current={"created": describe(check.present)}, outputs={"removed": describe(check.present)})

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        check = self._check(ctx)
        self.inner.undo(undo_context(ctx.runtime, ctx.step_id, self.runs, self.ids), self.item.step.params,
                        check.present)
        ctx.runtime.journal.record("step.undone", step=ctx.step_id, undoes=self.item.step.run_id,
                                   removed=[{"kind": c.kind, "id": c.id} for c in check.present])
        return {"removed": describe(check.present)}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        left = self._check(ctx).present
        return tuple(Difference(c.kind, c.id, None) for c in left)


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoRun:
    """A prepared undo: the checklist of its steps, their step types, and what is not undone. `run` is what the
    bootstrap calls with the run's runtime (`app.bootstrap.RunRequest.prepared`)."""

    run_id: str
    logs: tuple[RunLog, ...]
    target: str
    types: Mapping[str, StepType] = field(default_factory=dict)

    @property
    def checklist(self) -> Checklist:
        """The run's checklist before its re-probe: one step per step of the undone run that created something
        (its id `undo-<step id>`), newest first; filled in by `run` once the runtime is known."""
        steps, _ = items_of(self.logs)
        return _checklist(self, [s for s in reversed(steps) if s.created])

    def run(self, runtime: Runtime, values: Mapping[str, object], *, reviewed: bool = False) -> RunReport:
        """Plan the undo (re-probe all), refuse it when anything changed (exit 3, nothing deleted), else run it;
        `reviewed`: the apply of its saved plan (`plans.saved.apply_saved`), whose steps ask nothing."""
        runtime.journal.record("undo", undoes=self.run_id, runs=[log.run_id for log in self.logs])
        plan = plan_undo(self.run_id, self.logs, runtime, self.types)
        runtime.journal.record("undo.plan", undoes=self.run_id, items=[
            {"step": i.step.step_id, "action": i.action, "present": describe(i.present), "reason": i.reason,
             "changed": list(i.changed), "by_hand": i.by_hand} for i in plan.items], kept=list(plan.kept))
        if plan.refused:
            problems = [f"step {i.step.step_id} ({i.step.type}): " + "; ".join(i.changed) for i in plan.refused]
            runtime.journal.record("refused", problems=problems)
            raise InputError(f"run {self.run_id} is not undone: what it created changed since, so nothing was "
                             "removed:\n  " + "\n  ".join(problems),
                             hint="put it back as the run left it, or remove it by hand after a review")
        removable = [i for i in plan.items if i.action in ("remove", "gone") and i.step.created]
        checklist = _checklist(self, [i.step for i in removable])
        runs = [log.run_id for log in self.logs]
        ids = [c.id for i in plan.items for c in i.step.created]
        types = {f"undo:{i.step.step_id}": UndoStep(cast("Undoable", self.types[i.step.type]), i, runs, ids)
                 for i in removable}
        report: RunReport
        if not removable:
            report = RunReport(checklist_id=checklist.id, mode=runtime.mode, results=())
        elif runtime.mode is Mode.APPLY and not (runtime.assume_yes or reviewed):
            from kensium_provision.engine.once import plan_then_apply

            report = plan_then_apply(checklist, runtime, values, types=types)
        else:
            report = run(checklist, runtime, values, types=types, reviewed=reviewed)
        left = tuple(_not_undone(i) for i in plan.items if i.action == "not-undoable")
        for row in left:
            runtime.journal.record("step.not_undoable", step=row.step_id, reason=row.reason)
        whole = bool(plan.items) and not left and report.exit_code == 0
        records = _shared_records(self.logs, runtime, runs) if whole else ()
        return replace(report, results=(*report.results, *left, *records))


def _shared_records(logs: Sequence[RunLog], runtime: Runtime, runs: Sequence[str]) -> tuple[StepResult, ...]:
    """The shared records (`records.shared`) the undone runs wrote, once all they made is gone: a record still
    theirs names a resource that is no more, so it goes too (planned in a dry run)."""
    import json

    from kensium_provision.aws.call import call

    paths = dict.fromkeys(str(r["path"]) for log in logs for r in log.records
                          if r.get("event") == "shared.recorded" and isinstance(r.get("path"), str))
    rows: list[StepResult] = []
    ssm = runtime.aws.client("ssm") if paths else None
    for path in paths:
        found = call(ssm, "GetParameter", Name=path, missing=("ParameterNotFound",))
        try:
            body = json.loads(str((found or {}).get("Parameter", {}).get("Value", "")))
        except ValueError:
            body = {}
        if not isinstance(body, dict) or body.get("run_id") not in runs:
            continue  # gone, or written since by another run: its resource is that run's
        if runtime.mode is Mode.APPLY:
            call(ssm, "DeleteParameter", resource=f"shared record {path}", Name=path, missing=("ParameterNotFound",))
            runtime.journal.record("shared.removed", path=path)
        applied = runtime.mode is Mode.APPLY
        rows.append(StepResult(step_id="undo-shared-record", title=f"Remove the shared record {path}",
                               risk=Risk.DESTROY, status=Status.CHANGED if applied else Status.CHANGE,
                               reason="what it records was removed" if applied else "what it records will be removed"))
    return tuple(rows)


def _not_undone(item: UndoItem) -> StepResult:
    what = f" ({describe(item.present)})" if item.present else ""
    return StepResult(step_id=f"undo-{item.step.step_id}", title=f"Undo {item.step.step_id}{what}",
                      status=Status.SKIPPED, risk=Risk.DESTROY, reason=f"not undone: {item.reason}")


def _checklist(undo: UndoRun, steps: Sequence[Undone]) -> Checklist:
    made = [Step(id=f"undo-{s.step_id}", title=f"Undo {s.step_id}",
                 type=f"undo:{s.step_id}", params={}, risk=Risk.DESTROY) for s in steps]
    digest = hashlib.sha256(json.dumps([[s.run_id, s.step_id, describe(s.created)] for s in steps]).encode())
    return Checklist(id="undo", title=f"Undo run {undo.run_id}", scope="undo",
                     description=f"Remove what run {undo.run_id} created", inputs=(), steps=tuple(made),
                     path=f"undo of {undo.run_id}", sha256=digest.hexdigest(), target=undo.target)


def prepare(run_id: str, logs: Sequence[RunLog], types: Mapping[str, StepType]) -> UndoRun:
    """The undo of a run (and the runs resuming it): refused (exit 3) for a run that changed nothing."""
    first = logs[0]
    mode = str(first.header.get("mode", ""))
    if mode != Mode.APPLY.value:
        raise InputError(f"run {run_id} was a {mode or 'unknown'} run, which changes nothing: there is nothing to undo")
    if str(first.header.get("checklist", "")) == "undo":
        raise InputError(f"run {run_id} is itself an undo: kprov does not undo an undo",
                         hint="run the install (or provision) again to make it anew")
    targets = [r.get("target") for log in logs for r in log.records
               if r.get("event") == "target" and isinstance(r.get("target"), str)]
    target = str(targets[-1]) if targets else str(first.header.get("target", ""))
    return UndoRun(run_id=run_id, logs=tuple(logs), target=target, types=types)
