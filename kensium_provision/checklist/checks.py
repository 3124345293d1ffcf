"""Validate before acting: the parameter checks of every step, run on what is known before the first change.

Each step type declares its checks (`steps.base.Param`, `ChecksParams`). Here they are run on a
checklist's steps with the answers given so far, so that one wrong answer is refused

- at the prompt, with the checks of every step that uses it (`input_problems`),
- in an answers file, at its line, before any AWS call (`checklist.answers.check_answers`),
- and by the engine for all steps at once before the first act of an apply, and in a plan (`preflight`).

`base` is what the checks may use (`steps.base.CheckContext`): the naming rules, and the run's settings
once the environment is known.

A parameter that needs an earlier step's output is not known yet: it is checked at the step's own
turn, before its act. A step whose `when:` cannot be decided yet is left to its turn too, and a step
that will be skipped is not checked at all: a rule is broken only by a step that runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kensium_provision.model import Checklist, InputSpec, Step
from kensium_provision.steps.base import CheckContext, StepType, evidence_of, param_problems
from kensium_provision.template import TemplateError, placeholders, render_value

__all__ = ["Problem", "input_problems", "names_used", "preflight", "render_known"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A step that would refuse its parameters."""

    step: Step
    message: str

    def __str__(self) -> str:
        return f"step {self.step.id} ({self.step.title}): {self.message}"


def _walk(value: object) -> Iterator[str]:
    if isinstance(value, str):
        try:
            yield from (p.name for p in placeholders(value))
        except TemplateError:
            return
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)


def names_used(step: Step) -> set[str]:
    """The names a step's parameters and its `when:` use."""
    found = set(_walk(dict(step.params)))
    if step.when is not None:
        found.add(step.when.name)
    return found


def render_known(step: Step, values: Mapping[str, object]) -> tuple[dict[str, Any], frozenset[str]]:
    """Each parameter rendered with the values known; those that cannot be rendered yet are pending."""
    params: dict[str, Any] = {}
    pending: set[str] = set()
    for key, raw in step.params.items():
        try:
            params[key] = render_value(raw, values)
        except TemplateError:
            pending.add(key)
    return params, frozenset(pending)


def _produced(step: Step, types: Mapping[str, StepType]) -> set[str]:
    try:
        evidence = {s.id for s in evidence_of(types.get(step.type), step.params)}
    except Exception:  # noqa: BLE001 - a malformed evidence list is the loader's and the step's error
        evidence = set()
    return {*step.outputs, *evidence}


def _runnable(checklist: Checklist, types: Mapping[str, StepType], values: Mapping[str, object],
              unknown: set[str]) -> Iterator[Step]:
    """The steps that will run as far as the known values tell (`unknown`: names not known yet)."""
    unknown = set(unknown)
    absent: set[str] = set()
    for step in checklist.steps:
        produced = _produced(step, types)
        used = names_used(step)
        if used & absent:
            absent |= produced
            continue
        if step.when is not None:
            if step.when.name in unknown:
                unknown |= produced
                continue
            if not step.when.holds(values):
                absent |= produced
                continue
        unknown |= produced
        yield step


def _problems(step: Step, step_type: StepType, values: Mapping[str, object], base: CheckContext,
              uses: str = "") -> list[str]:
    """The step's problems with these values; with `uses`, the `Param` checks only of the parameters that
    use that name (the step's own cross-parameter rules always see every known parameter)."""
    params, pending = render_known(step, values)
    only = None if not uses else {k for k in params if uses in set(_walk(step.params[k]))}
    text = {k: v for k, v in values.items() if isinstance(v, str)}
    return param_problems(step_type, params, replace(base, values=text, pending=pending), only=only)


def preflight(checklist: Checklist, types: Mapping[str, StepType], base: CheckContext,
              values: Mapping[str, object]) -> list[Problem]:
    """Every problem of every step that will run, with the inputs answered (outputs are not known yet)."""
    unknown: set[str] = set()
    found: list[Problem] = []
    for step in _runnable(checklist, types, values, unknown):
        step_type = types.get(step.type)
        if step_type is not None:
            found += [Problem(step, m) for m in _problems(step, step_type, values, base)]
    return found


def input_problems(checklist: Checklist, types: Mapping[str, StepType], base: CheckContext, spec: InputSpec,
                   value: object, earlier: Mapping[str, object]) -> list[Problem]:
    """The problems a new answer gives the steps that use it (inputs asked later are not known yet)."""
    ids = [s.id for s in checklist.inputs]
    later = set(ids[ids.index(spec.id) + 1:]) if spec.id in ids else set()
    values = {**{k: v for k, v in earlier.items() if k not in later}, spec.id: value}
    found: list[Problem] = []
    for step in _runnable(checklist, types, values, later):
        step_type = types.get(step.type)
        used = names_used(step)
        if step_type is None or spec.id not in used:
            continue
        uses = "" if step.when is not None and step.when.name == spec.id else spec.id
        found += [Problem(step, m) for m in _problems(step, step_type, values, base, uses)]
    return found
