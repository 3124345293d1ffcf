"""The step engine: plan, apply and check a checklist through the probe/act/verify contract.

A run is a short sequence of stages: resolve inputs -> hooks (guards, lock) -> for each step:
condition -> render -> validate names -> probe -> (plan: record | check: verify | apply: confirm,
act, verify). Only `apply_step` calls `act`; plan and check never do.

The engine never names a step type: what sets a step apart (evidence a person gives, a
confirmation `--yes` never gives, no probe) it learns from the step type's optional capabilities
(`steps.base`).
"""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from kensium_provision.aws.errors import sdk_errors, translate
from kensium_provision.checklist.checks import input_problems, preflight
from kensium_provision.engine.schedule import Node, startable, wildcard
from kensium_provision.errors import AbortedError, ExitCode, InputError, KprovError, StepError
from kensium_provision.model import Checklist, Finding, InputSpec, Mode, Risk, Status, Step, StepResult
from kensium_provision.runtime import Runtime
from kensium_provision.secret import masked
from kensium_provision.steps import registry
from kensium_provision.steps.base import (
    CheckContext,
    Difference,
    Probe,
    StepContext,
    StepType,
    confirmed_by_hand,
    evidence_of,
    has_probe,
    param_problems,
    probes_ahead,
    touches_of,
    verify_after_act,
)
from kensium_provision.steps.kinds import coerce_answer
from kensium_provision.template import TemplateError, placeholders, render, render_value

__all__ = ["RunReport", "answer_problem", "coerce_input", "refuse_invalid", "resolve_inputs", "run", "shown_value"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReport:
    """The outcome of one run: every step's result and the findings."""

    checklist_id: str
    mode: Mode
    results: tuple[StepResult, ...]
    values: Mapping[str, object] = field(default_factory=dict)  # secrets masked
    error: str = ""

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.results for f in r.findings)

    @property
    def exit_code(self) -> ExitCode:
        if self.error or self.findings or any(r.status is Status.FAILED for r in self.results):
            return ExitCode.FAILED
        return ExitCode.OK

    def count(self, status: Status, *risks: Risk) -> int:
        return sum(1 for r in self.results if r.status is status and (not risks or r.risk in risks))


_EARLIER = "done earlier in this run (journaled evidence)"
shown_value = masked  # a value as it may be shown or journaled: secrets masked, recursively (secret.masked)


def _shown_map(values: Mapping[str, object]) -> dict[str, object]:
    """`shown_value` of each value of a mapping (params, outputs)."""
    return {k: shown_value(v) for k, v in values.items()}


def check_context(runtime: Runtime, values: Mapping[str, str] | None = None) -> CheckContext:
    """What parameter checks may use of the run: its naming rules, settings and environment."""
    return CheckContext(runtime.names, dict(values or {}), settings=runtime.settings, env_name=runtime.env_name)


def coerce_input(spec: InputSpec, raw: object, choices: Sequence[str], runtime: Runtime,
                 context: Mapping[str, object]) -> tuple[object, str | None]:
    """Turn an answer into the input's type and validate it; returns (value, problem) (`steps.kinds`)."""
    return coerce_answer(spec, raw, choices=choices, names=runtime.names, context=context)


def answer_problem(checklist: Checklist, types: Mapping[str, StepType], spec: InputSpec, raw: object,
                   choices: Sequence[str], runtime: Runtime, context: Mapping[str, object]) -> str | None:
    """What is wrong with an answer: its own type and rules, then the checks of every step that uses it
    (`checklist.checks`), so the prompt refuses what a step would refuse later."""
    value, problem = coerce_input(spec, raw, choices, runtime, context)
    return problem or _steps_refuse(checklist, types, spec, value, runtime, context)


def _steps_refuse(checklist: Checklist, types: Mapping[str, StepType], spec: InputSpec, value: object,
                  runtime: Runtime, context: Mapping[str, object]) -> str | None:
    """What the steps that use an answer would refuse of it; nothing in a check, whose answers are what was
    installed (it reports step by step)."""
    if runtime.mode is Mode.CHECK:
        return None
    found = input_problems(checklist, types, check_context(runtime), spec, value, context)
    return "; ".join(str(p) for p in found) or None


def _lookup(runtime: Runtime, spec_lookup: Any, values: Mapping[str, object]) -> Any:
    """A live lookup, asked once per run for the same question (two zone inputs share one call)."""
    import json

    from kensium_provision.steps.lookups import run_lookup
    from kensium_provision.template import render_value

    key = json.dumps([spec_lookup.name, spec_lookup.service, spec_lookup.operation, spec_lookup.query,
                      render_value(dict(spec_lookup.params), values)], sort_keys=True, default=str)
    if key not in runtime.lookups:
        context = StepContext(runtime, "inputs", MappingProxyType(dict(values)))
        runtime.lookups[key] = run_lookup(context, spec_lookup, values)
    return runtime.lookups[key]


def _filled(text: str, values: Mapping[str, object]) -> str:
    """A prompt or help text with the answers given so far filled in (`... host name {{ org_id }}.example`)."""
    try:
        return render(text, {k: v for k, v in values.items() if isinstance(v, (str, int)) and not isinstance(v, bool)})
    except TemplateError:
        return text


def _ask(checklist: Checklist, types: Mapping[str, StepType], runtime: Runtime, spec: InputSpec,
         choices: tuple[str, ...], values: Mapping[str, object]) -> object:
    """The operator's answer to one input: its prompt and help with the answers so far filled in, its default,
    and every answer checked as `resolve_inputs` checks it, so the prompt asks again instead of failing."""
    default: object = None
    if spec.default_from is not None:
        default = _lookup(runtime, spec.default_from, values)
    elif isinstance(spec.default, str):
        default = render(spec.default, values)
    elif spec.default is not None:
        default = spec.default

    def validate(raw: object) -> str | None:
        return answer_problem(checklist, types, spec, raw, choices, runtime, values)

    shown = replace(spec, prompt=_filled(spec.prompt, values), help=_filled(spec.help, values))
    return runtime.operator.ask(shown, default=default, choices=choices, validate=validate)


def resolve_inputs(checklist: Checklist, runtime: Runtime,
                   preset: Mapping[str, object] | None = None, *,
                   types: Mapping[str, StepType] | None = None) -> dict[str, object]:
    """Ask (or read) every input whose `when` holds, in order, validating each answer with its own rules
    and the parameter checks of every step that uses it."""
    types = types if types is not None else registry()
    values: dict[str, object] = {}
    preset = preset or {}
    for spec in checklist.inputs:
        if spec.when is not None and not spec.when.holds(values):
            continue
        choices: tuple[str, ...] = spec.choices
        if spec.choices_from is not None:
            found = _lookup(runtime, spec.choices_from, values)
            choices = tuple(str(c) for c in (found if isinstance(found, list) else [found]) if c is not None)
            if not choices:
                raise InputError(f"no choices for {spec.id}: {_filled(spec.prompt, values)} (the live lookup "
                                 "found nothing)", hint="create the resource first with its shared checklist")
        # A preset answer (a client record's, in a check) is not asked: no prompt to fill, no default to look up.
        raw = preset[spec.id] if spec.id in preset else _ask(checklist, types, runtime, spec, choices, values)
        value, problem = coerce_input(spec, raw, choices, runtime, values)
        problem = problem or _steps_refuse(checklist, types, spec, value, runtime, values)
        if problem:
            shown = repr(shown_value(raw))
            raise InputError(f"{spec.id}: {problem}" if problem.startswith(shown) else f"{spec.id}: {shown} {problem}")
        values[spec.id] = value
        runtime.journal.record("answer", input=spec.id, value=shown_value(value), evidence=spec.evidence)
    if runtime.mode is not Mode.CHECK:  # every answer known: all steps' checks, before the lock or any change
        refuse_invalid(checklist, runtime, values, types)
    return values


class _Run:
    """One pass over the steps in one mode."""

    def __init__(self, checklist: Checklist, runtime: Runtime, values: dict[str, object],
                 types: Mapping[str, StepType], recorded: Mapping[str, Mapping[str, object]],
                 confirmed: bool = False, reviewed: bool = False) -> None:
        self.checklist, self.runtime, self.values = checklist, runtime, values
        self.recorded = recorded
        self.confirmed = confirmed or reviewed  # the operator said yes to the whole plan (engine.once)
        # A saved plan's apply (plans.saved): every step, a destroying one too, was reviewed (and approved where
        # that is required) in the plan file, so none asks; the typed confirmation of the first change still does.
        self.reviewed = reviewed
        self.types = types
        self.unknown: set[str] = set()  # names whose value a plan cannot know yet
        self.absent: set[str] = set()  # outputs of skipped steps
        self.changed_once = False
        self.acted = False  # kprov has called a changing step's act (an input refused later is no exit 3)
        self.ahead: set[str] = set()  # steps whose probe was started ahead (`prefetch`)
        # What a step adds never changes within a run; asked for every step still queued each time one ends
        # (the scheduler), so kept by step id (what it names: `_names_used`, kept across runs).
        self._produced: dict[str, tuple[str, ...]] = {}

    def names_of(self, step: Step) -> set[str]:
        """Every name the step's params and condition use."""
        return set(_names_used(step))

    def produced(self, step: Step) -> list[str]:
        """Every name the step adds: its `outputs:` and the ids of the evidence it collects."""
        if step.id not in self._produced:
            self._produced[step.id] = (*step.outputs,
                                       *[s.id for s in evidence_of(self.types.get(step.type), step.params)])
        return list(self._produced[step.id])

    def bind_outputs(self, step: Step, result: Mapping[str, object]) -> dict[str, object]:
        from kensium_provision.steps.generic import search

        bound: dict[str, object] = {}
        for alias, field_name in step.outputs.items():
            value = result[field_name] if field_name in result else search(field_name, dict(result))
            if value is None:
                raise StepError(f"step {step.id} gave no {field_name!r} for output {alias!r}")
            bound[alias] = value
        bound.update({s.id: result[s.id] for s in evidence_of(self.types.get(step.type), step.params)
                      if s.id in result})
        self.values.update(bound)
        return bound

    def bind_existing(self, step: Step, probe: Probe) -> dict[str, object]:
        """A step not done whose resource exists (it differs) still hands on what it found, so later
        steps are probed instead of all showing "depends on an earlier step" and hiding other drift."""
        fields = set(step.outputs.values())
        # Evidence comes from a person, never from what a probe found: such a step binds nothing early.
        collects = bool(evidence_of(self.types.get(step.type), step.params))
        if probe.current and fields and fields <= set(probe.outputs) and not collects:
            return self.bind_outputs(step, probe.outputs)
        self.unknown.update(self.produced(step))
        return {}

    def prefetch(self, pending: Sequence[Step], pool: ThreadPoolExecutor) -> None:
        """Start, on other threads, the probes of the later steps whose every input is known now and whose
        type says its probe only reads AWS (`ProbesAhead`): their reads fill the run's read cache while
        the steps before them run, and each step's own probe, at its turn, takes the answers from there
        (or waits for the same read in flight: aws.cache). Reads change nothing, so any two are
        independent; an answer stays only until a change empties the cache, so in apply nothing starts
        ahead once a step has acted, nor beyond a person's work by hand (it empties the cache too).
        Whatever goes wrong ahead comes again, in order, from the step's own probe."""
        apply = self.runtime.mode is Mode.APPLY
        if apply and (self.changed_once or self.acted):
            return
        for index, step in enumerate(pending):
            if apply and confirmed_by_hand(self.types.get(step.type)):
                return
            if index == 0:  # its probe runs at once, in this thread
                continue
            names = self.names_of(step)
            if step.id in self.ahead or names & (self.unknown | self.absent) or not names <= self.values.keys():
                continue
            step_type = self.types.get(step.type)
            if step_type is None or not probes_ahead(step_type) or (
                    step.when is not None and not step.when.holds(self.values)):
                continue
            try:
                params = render_value(dict(step.params), self.values)
            except TemplateError:
                continue
            if not isinstance(params, dict):
                continue
            self.ahead.add(step.id)
            ctx = StepContext(self.runtime, step.id, MappingProxyType(dict(self.values)))
            pool.submit(_quietly, step_type.probe, ctx, params)

    def node(self, step: Step, coming: frozenset[str] = frozenset()) -> Node:
        """The step as `engine.schedule` sees it, in apply (`_steps` builds none elsewhere: there every step runs
        alone). It may run on another thread only when it cannot ask anything (the plan was accepted or --yes;
        no evidence, no work by hand, nothing destroyed), after the first change's hook, and what it touches is
        said by its type. A name it needs may still be `coming` (given by an earlier step not finished): the
        step waits for that step anyway, and stands in what it touches a `schedule.wildcard` for the name, which
        conflicts with anything of that kind; so later steps of other kinds need not wait behind it (the VPC
        job's security groups no longer wait for the subnets and the gateway the route tables need)."""
        needs, gives = frozenset(self.names_of(step)), frozenset(self.produced(step))
        step_type = self.types.get(step.type)
        asks = step.risk is Risk.DESTROY or confirmed_by_hand(step_type) or bool(
            evidence_of(step_type, step.params)) or not (self.runtime.assume_yes or self.confirmed)
        missing = needs - self.values.keys()
        if asks or not self.changed_once or needs & (self.unknown | self.absent) or not missing <= coming:
            return Node(step.id, needs, gives, None)
        try:
            params = render_value(dict(step.params), {**self.values, **{name: wildcard(name) for name in missing}})
        except TemplateError:
            return Node(step.id, needs, gives, None)
        touches = touches_of(step_type, params) if isinstance(params, dict) else None
        return Node(step.id, needs, gives, touches)

    def fork(self) -> _Run:
        """A copy for a step on another thread: its own values and names, merged back when it ends (`merge`)."""
        other = copy.copy(self)
        other.values, other.unknown, other.absent = dict(self.values), set(self.unknown), set(self.absent)
        return other

    def merge(self, other: _Run) -> None:
        self.values.update({k: v for k, v in other.values.items() if k not in self.values})
        self.unknown |= other.unknown
        self.absent |= other.absent
        self.acted = self.acted or other.acted
        self.changed_once = self.changed_once or other.changed_once

    def title(self, step: Step) -> str:
        """The title with its placeholders filled in where the values are known already."""
        try:
            return render(step.title, self.values)
        except TemplateError:
            return step.title

    def step(self, step: Step) -> StepResult:
        rt = self.runtime
        # Each result is made once from the fields every result of the step has (a fleet check makes 150,000:
        # `dataclasses.replace` from a base and then from those fields cost three times as much).
        base: dict[str, Any] = {"step_id": step.id, "title": self.title(step), "risk": step.risk}
        if self.names_of(step) & self.unknown:
            self.unknown.update(self.produced(step))
            waits = sorted(self.names_of(step) & self.unknown)
            return StepResult(**base, status=Status.DEPENDS, reason=f"needs {', '.join(waits)}")
        if self.names_of(step) & self.absent:
            self.absent.update(self.produced(step))
            missing = sorted(self.names_of(step) & self.absent)
            return StepResult(**base, status=Status.SKIPPED, reason=f"needs {', '.join(missing)} from a skipped step")
        if step.when is not None and not step.when.holds(self.values):
            self.absent.update(self.produced(step))
            return StepResult(**base, status=Status.SKIPPED, reason=f"only when {step.when.describe()}")
        step_type = self.types[step.type]
        try:
            rendered = render_value(dict(step.params), self.values)
        except TemplateError as exc:
            raise InputError(f"step {step.id}: {exc}") from None
        if not isinstance(rendered, dict):  # render_value keeps the shape it is given
            raise TypeError(f"step {step.id}: params rendered to {type(rendered).__name__}")
        params: dict[str, Any] = rendered
        self.require_params(step, step_type, params)
        ctx = StepContext(rt, step.id, MappingProxyType(self.values))
        probe = step_type.probe(ctx, params)
        observed = getattr(rt.hooks, "observed", None)
        if observed is not None:  # a saved plan keeps what each probe found, to compare at its apply (plans.saved)
            observed(step.id, probe)
        diff = tuple((d.field, shown_value(d.actual), shown_value(d.expected)) for d in probe.differences)
        common = {**base, "params": _shown_map(params), "diff": diff}
        if rt.mode is Mode.PLAN:
            if self.journaled(step, step_type, params, probe):  # a resume's plan: what it will keep is done
                bound = self.keep_journaled(step)
                return StepResult(**common, status=Status.DONE, reason=_EARLIER, outputs=_shown_map(bound))
            if probe.done:
                bound = self.bind_outputs(step, probe.outputs)
                return StepResult(**common, status=Status.DONE, reason=probe.note, outputs=_shown_map(bound))
            bound = self.bind_existing(step, probe)
            return StepResult(**common, status=Status.CHANGE, reason=probe.note, outputs=_shown_map(bound))
        if rt.mode is Mode.CHECK:
            return self.check_step(step, step_type, ctx, params, probe, common)
        return self.apply_step(step, step_type, ctx, params, probe, common)

    def require_params(self, step: Step, step_type: StepType, params: Mapping[str, object]) -> None:
        """The step's parameter checks with every value known, at its own turn (before its probe and act)."""
        context = {k: v for k, v in self.values.items() if isinstance(v, str)}
        problems = param_problems(step_type, params, check_context(self.runtime, context))
        if problems:
            raise InputError(f"step {step.id}: " + "; ".join(problems),
                             hint="correct the answer (or the checklist) and run again")

    def findings(self, step: Step, differences: Sequence[Difference]) -> tuple[Finding, ...]:
        return tuple(Finding(step_id=step.id, message=f"{self.title(step)}: {d}", expected=shown_value(d.expected),
                             actual=shown_value(d.actual)) for d in differences)

    def check_step(self, step: Step, step_type: StepType, ctx: StepContext, params: Mapping[str, Any],
                   probe: Probe, common: Mapping[str, Any]) -> StepResult:
        if not probe.done:
            if not has_probe(step_type, params):
                self.unknown.update(self.produced(step))
                return StepResult(**common, status=Status.SKIPPED,
                                  reason=f"{step.type} step without a probe: not checkable")
            self.bind_existing(step, probe)
            finding = Finding(step_id=step.id, message=f"{self.title(step)}: not done ({probe.note})")
            differences = self.findings(step, probe.differences)
            return StepResult(**common, status=Status.FAILED, reason=probe.note, findings=differences or (finding,))
        bound = self.bind_outputs(step, probe.outputs)
        problems = step_type.verify(ctx, params)
        findings = self.findings(step, problems)
        return StepResult(**common, status=Status.FAILED if findings else Status.DONE,
                       reason="; ".join(str(d) for d in problems) or probe.note, outputs=_shown_map(bound),
                       findings=findings)

    def apply_step(self, step: Step, step_type: StepType, ctx: StepContext, params: Mapping[str, Any],
                   probe: Probe, common: Mapping[str, Any]) -> StepResult:
        rt = self.runtime
        if self.journaled(step, step_type, params, probe):
            bound = self.keep_journaled(step)
            return StepResult(**common, status=Status.DONE, reason=_EARLIER, outputs=_shown_map(bound))
        if probe.done:
            bound = self.bind_outputs(step, probe.outputs)
            return StepResult(**common, status=Status.DONE, reason=probe.note, outputs=_shown_map(bound))
        if not self.changed_once and step.risk is not Risk.READ:
            rt.hooks.before_first_change(self.checklist, self.values)
            self.changed_once = True
        if step.risk is not Risk.READ and not confirmed_by_hand(step_type):
            self.confirm(step, probe)
        rt.hooks.before_act(step.id)  # still this run's lock (renewed now), or the run stops here (issue 14.5)
        rt.journal.record("step.intent", step=step.id, type=step.type, risk=step.risk.value,
                          params=common["params"], diff=[list(d) for d in common["diff"]])
        invalidate = getattr(rt.aws, "invalidate", None)
        if invalidate is not None and confirmed_by_hand(step_type):
            # A person's work by hand changes what is there: read it again (see aws.cache). Otherwise the
            # act may use its probe's reads (bench/latency: 5 reads of the fresh VPC job were the same
            # describe again right after its probe); any AWS write of the act empties the cache anyway.
            invalidate()
        acted = step_type.act(ctx, params, probe)
        result = dict(probe.outputs)
        result.update(acted)
        if invalidate is not None:  # the act may have changed things outside AWS's view (SQL, RabbitMQ)
            invalidate()
        # kprov changed something (a person's work by hand is theirs; an act raises InputError only before its
        # first write, as an InputError says nothing was attempted): see `run`'s exit 3 rule.
        self.acted = self.acted or (step.risk is not Risk.READ and not confirmed_by_hand(step_type))
        bound = self.bind_outputs(step, result)
        problems = verify_after_act(step_type, ctx, params, acted)
        if problems:
            raise StepError(f"step {step.id} did not verify after it ran: " + "; ".join(map(str, problems)))
        return StepResult(**common, status=Status.CHANGED, reason=probe.note, outputs=_shown_map(bound),
                       by_hand=confirmed_by_hand(step_type) or probe.by_hand)

    def keep_journaled(self, step: Step) -> dict[str, object]:
        """The outputs a resumed step journaled, as journaled: already under the names later steps use."""
        bound = dict(self.recorded[step.id])
        self.values.update(bound)
        return bound

    def journaled(self, step: Step, step_type: StepType, params: Mapping[str, Any], probe: Probe) -> bool:
        """A resumed run: a step without a probe (or one a person did and confirmed, as a SQL script run by
        hand) has nothing to re-probe, so its journaled confirmation and outputs stand."""
        return not probe.done and (probe.by_hand or not has_probe(step_type, params)) and step.id in self.recorded

    def confirm(self, step: Step, probe: Probe) -> None:
        rt = self.runtime
        if self.reviewed or ((rt.assume_yes or self.confirmed) and step.risk is not Risk.DESTROY):
            return
        verb = {Risk.CREATE: "Create", Risk.MODIFY: "Change", Risk.DESTROY: "DESTROY"}[step.risk]
        if not rt.operator.confirm(f"{verb}: {self.title(step)}?", default=step.risk is not Risk.DESTROY):
            raise AbortedError(f"the operator declined step {step.id}")


def run(checklist: Checklist, runtime: Runtime, values: Mapping[str, object],
        *, types: Mapping[str, StepType] | None = None,
        recorded: Mapping[str, Mapping[str, object]] | None = None, confirmed: bool = False,
        reviewed: bool = False) -> RunReport:
    """Run every step of a checklist in the runtime's mode with already resolved inputs.

    `recorded` holds the journaled outputs of the steps a resumed run already completed; a step
    without a probe (`steps.base.MayLackProbe`) keeps them instead of being done again. `confirmed`: the
    operator accepted the whole plan (`engine.once`), so no step asks its routine "Create: ...?"; `reviewed`:
    a saved plan's apply, so no step asks at all (`plans.saved.apply_saved`).
    """
    invalidate = getattr(runtime.aws, "invalidate", None)
    if invalidate is not None:  # a run starts from what is there now, not from an earlier run's reads
        invalidate()
    types = types if types is not None else registry()
    if runtime.mode is not Mode.CHECK:  # a check reports what it finds, step by step; it changes nothing anyway
        refuse_invalid(checklist, runtime, values, types)
    state = _Run(checklist, runtime, dict(values), types, recorded or {}, confirmed, reviewed)
    results: list[StepResult] = []
    error = ""
    pending = list(checklist.steps)
    ahead = any(probes_ahead(types.get(s.type)) for s in pending)
    with ThreadPoolExecutor(max_workers=_AHEAD, thread_name_prefix="kprov-probe") if ahead else nullcontext() as pool:
        results, error = _steps(state, pending, pool)
    return RunReport(checklist_id=checklist.id, mode=runtime.mode, results=tuple(results),
                     values={k: shown_value(v) for k, v in state.values.items()}, error=error)


def _steps(state: _Run, pending: list[Step], pool: ThreadPoolExecutor | None) -> tuple[list[StepResult], str]:
    """Every step (the probes of later ones started ahead on `pool`; in apply, steps proven independent at
    once: `engine.schedule`): the results in checklist order, and the error. The operator sees and the
    journal records each step's start and result in checklist order; a step that may ask anything runs
    on this thread, alone. A failure starts nothing more and waits for the steps in flight."""
    queue = list(pending)  # not yet reported, in order
    finished: dict[str, tuple[StepResult, str]] = {}
    started: set[str] = set()
    announced: set[str] = set()
    results: list[StepResult] = []
    running: dict[Future[tuple[StepResult, str]], tuple[Step, _Run]] = {}
    raised: BaseException | None = None
    error = ""
    with ThreadPoolExecutor(max_workers=_AT_ONCE, thread_name_prefix="kprov-step") as steps_pool:
        while queue:
            while queue and queue[0].id in finished:  # the finished head, in order
                step = queue.pop(0)
                result, error = finished[step.id]
                _report(state, step, result, announce=step.id not in announced)
                results.append(result)
                if error:
                    break
            if error or raised is not None or not queue:
                break
            # Outside apply every step runs alone, in order: no proof to build for the steps still queued.
            nodes = _nodes(state, queue, finished) if state.runtime.mode is Mode.APPLY else [
                Node(queue[0].id, frozenset(), frozenset(), None)]
            for index in startable(nodes, finished, started):
                step = next(s for s in queue if s.id == index)
                started.add(step.id)
                if nodes[queue.index(step)].touches is None:  # alone, here: every earlier step is finished
                    if pool is not None:
                        state.prefetch(queue[queue.index(step):], pool)
                    state.runtime.reporter.step_started(step.id, state.title(step))
                    announced.add(step.id)
                    try:
                        finished[step.id] = _attempt(state, step)
                    except BaseException as exc:  # noqa: BLE001 - raised once the steps in flight have ended
                        raised = exc
                    break
                fork = state.fork()
                future = steps_pool.submit(contextvars.copy_context().run, _attempt, fork, step)
                running[future] = (step, fork)
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                step, fork = running.pop(future)
                state.merge(fork)
                try:
                    finished[step.id] = future.result()
                except BaseException as exc:  # noqa: BLE001 - raised once the steps in flight have ended
                    raised = raised or exc
        for future in as_completed(running):  # a failure: what is in flight ends before the run does
            step, fork = running[future]
            state.merge(fork)
            with suppress(BaseException):
                finished[step.id] = future.result()
    if raised is not None:
        raise raised
    for step in queue:  # after a failure: what ran anyway, then what never started
        if step.id in finished:
            _report(state, step, finished[step.id][0], announce=step.id not in announced)
            results.append(finished[step.id][0])
        else:
            results.append(StepResult(step_id=step.id, title=step.title, status=Status.PENDING, risk=step.risk,
                                      reason="not run: an earlier step failed"))
    return results, error


def _attempt(state: _Run, step: Step) -> tuple[StepResult, str]:
    """One step's result (a failure of kprov's as a FAILED result) and, in apply, the error that stops the run."""
    runtime = state.runtime
    start = runtime.monotonic()
    error = ""
    try:
        try:
            result = state.step(step)
        except sdk_errors() as exc:  # botocore's own errors escaping a step; anything else is a bug
            raise _as_aws_error(exc, step) from None
    except (AbortedError, KeyboardInterrupt):
        raise
    except KprovError as exc:
        # Exit 3 says nothing changed: an input refused once kprov has acted is this step's failure
        # (exit 1, and a run to resume), never an "invalid input" that hides the changes made.
        if isinstance(exc, InputError) and not state.acted:
            raise
        state.unknown.update(state.produced(step))
        message = str(exc) + (f" (hint: {exc.hint})" if exc.hint else "")
        title = state.title(step)
        result = StepResult(step_id=step.id, title=title, status=Status.FAILED, risk=step.risk,
                            reason=message, findings=(Finding(step_id=step.id, message=f"{title}: {message}"),))
        if runtime.mode is Mode.APPLY:
            error = message
    return replace(result, seconds=runtime.monotonic() - start), error


def _report(state: _Run, step: Step, result: StepResult, *, announce: bool) -> None:
    runtime = state.runtime
    if announce:  # it ran on another thread: its start is shown now, in order
        runtime.reporter.step_started(step.id, result.title)
    runtime.reporter.step_finished(result)
    runtime.journal.record("step.result", step=step.id, status=result.status.value, reason=result.reason,
                           outputs=dict(result.outputs), findings=[f.message for f in result.findings],
                           seconds=round(result.seconds, 3))


def _nodes(state: _Run, queue: Sequence[Step], finished: Mapping[str, object]) -> list[Node]:
    """The scheduler's view of the queued steps, each told the names earlier unfinished steps will give."""
    nodes: list[Node] = []
    coming: set[str] = set()
    for step in queue:
        nodes.append(state.node(step, frozenset(coming)))
        if step.id not in finished:
            coming.update(state.produced(step))
    return nodes


def _names_used(step: Step) -> frozenset[str]:
    """Every name a step's params and condition use: the same for every run of its checklist (a fleet check
    runs one checklist for each of 5,000 clients), so kept for the step object."""
    kept = _USED.get(id(step))
    if kept is not None and kept[0] is step:  # the step is held in the entry, so its id is not reused meanwhile
        return kept[1]
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.update(p.name for p in placeholders(value))
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(dict(step.params))
    if step.when is not None:
        found.add(step.when.name)
    names = frozenset(found)
    if len(_USED) >= 4096:
        _USED.clear()
    _USED[id(step)] = (step, names)
    return names


_USED: dict[int, tuple[Step, frozenset[str]]] = {}  # _names_used's, by id(step)

# Steps at once at most (the VPC job has 4 subnets, its gateway and 3 groups ready together).
_AT_ONCE = 8

# Probes started ahead at most at once: the VPC job has 4 subnets and 3 groups ready together.
_AHEAD = 8


def _quietly(probe: Any, ctx: StepContext, params: Mapping[str, Any]) -> None:
    with suppress(Exception):  # the step's own probe, at its turn, meets it again and reports it
        probe(ctx, params)


def refuse_invalid(checklist: Checklist, runtime: Runtime, values: Mapping[str, object],
                   types: Mapping[str, StepType]) -> None:
    """Every step's parameter checks on the answers, before the first step (so before any change): one
    InputError (exit 3, nothing changed) listing every problem. What needs an earlier step's outputs is
    checked at that step's turn."""
    problems = preflight(checklist, types, check_context(runtime), values)
    if problems:
        runtime.journal.record("refused", problems=[str(p) for p in problems])
        raise InputError("the answers break the rules of these steps, so nothing was changed:\n  "
                         + "\n  ".join(str(p) for p in problems),
                         hint="correct the answers (an answers file: the values named) and run again")


def _as_aws_error(exc: Exception, step: Step) -> Exception:
    """A botocore error escaping a step becomes an AwsError (operation, code, hint), not a crash."""
    operation = str(getattr(exc, "operation_name", "") or "call")
    service = str(getattr(exc, "response", {}).get("Error", {}).get("Service", "") or step.type.split(".", 1)[0])
    return translate(exc, service=service, operation=operation, resource=f"step {step.id}")

