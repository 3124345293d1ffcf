"""A check's answers come from the client record: what was installed, not what an install would offer today.

An install offers an input's choices from a live lookup (`choices_from`: the running hosts with the client's
POS version, the live RDS instances of its edition, the brokers). Asked in a check, that lookup turned drift
of a shared resource (a host's PosVersion tag removed, an instance stopped, a broker gone) into an input
error that stopped the whole client's check ("no choices for ec2_host", exit 3), hiding every other finding.

`recorded_checklist` takes those inputs as the recorded text instead (still held to the lookup's naming
rule), so every step runs and judges its resource (`tenant-host-version`, `db-instance-ready`, `hub-vhost`);
`with_unoffered` then asks each lookup as the install would, and a recorded answer it no longer offers is
one more finding, of the step that uses the answer (a deleted broker, a host tagged Dedicated: no step
reads those). `check client --all` does both for each client (`fleet.check`); `check client ORG` should
(its run is opened by `app.bootstrap.execute`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from kensium_provision.errors import KprovError

if TYPE_CHECKING:
    from kensium_provision.engine.run import RunReport
    from kensium_provision.model import Checklist, Finding, InputSpec
    from kensium_provision.runtime import Runtime

__all__ = ["Unoffered", "attach", "input_owners", "recorded_checklist", "unoffered", "with_unoffered"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unoffered:
    """A recorded answer the install's live lookup no longer offers."""

    input_id: str
    message: str
    expected: tuple[str, ...]  # what the lookup offers now
    actual: object  # the recorded answer


def _as_recorded(spec: InputSpec) -> InputSpec:
    if spec.choices_from is None:
        return spec
    rule = spec.choices_from.params.get("rule")
    return replace(spec, type="string", choices=(), choices_from=None, default_from=None,
                   rule=spec.rule or (rule if isinstance(rule, str) and "{{" not in rule else ""))


def recorded_checklist(checklist: Checklist) -> Checklist:
    """`checklist` with every live-choice input taken as the recorded text (for a check from the record)."""
    return replace(checklist, inputs=tuple(_as_recorded(spec) for spec in checklist.inputs))


def unoffered(checklist: Checklist, runtime: Runtime, values: Mapping[str, object],
              cache: MutableMapping[str, tuple[str, ...] | str]) -> list[Unoffered]:
    """The recorded answers of `checklist`'s (the original's) live-choice inputs that its lookups do not offer.

    `cache` keeps each lookup's answer by its rendered parameters (the fleet's clients share a few)."""
    from kensium_provision.steps.base import StepContext
    from kensium_provision.steps.lookups import run_lookup
    from kensium_provision.template import render_value

    found: list[Unoffered] = []
    for spec in checklist.inputs:
        lookup = spec.choices_from
        if lookup is None or spec.id not in values or (spec.when is not None and not spec.when.holds(values)):
            continue
        key = json.dumps([lookup.name, lookup.service, lookup.operation, lookup.query,
                          render_value(dict(lookup.params), values)], sort_keys=True, default=str)
        if key not in cache:
            try:
                answer = run_lookup(StepContext(runtime, "inputs", MappingProxyType(dict(values))), lookup, values)
                cache[key] = tuple(str(c) for c in (answer if isinstance(answer, list) else [answer]) if c is not None)
            except KprovError as exc:
                cache[key] = str(exc)
        offered, value = cache[key], values[spec.id]
        if isinstance(offered, str):
            found.append(Unoffered(input_id=spec.id, actual=value, expected=(),
                                   message=f"{spec.prompt}: cannot tell whether {value} is still offered: {offered}"))
        elif str(value) not in offered:
            now = ", ".join(offered) if offered else "none"
            found.append(Unoffered(input_id=spec.id, actual=value, expected=offered,
                                   message=f"{spec.prompt}: {value} is no longer among them (an install offers "
                                           f"now: {now})"))
    return found


def input_owners(checklist: Checklist) -> dict[str, str]:
    """Each input id -> the first step that uses it (a finding about an answer belongs to that step)."""
    from kensium_provision.template import placeholders

    def names(value: object) -> set[str]:
        if isinstance(value, str):
            return {p.name for p in placeholders(value)}
        if isinstance(value, Mapping):
            return set().union(*(names(v) for v in value.values())) if value else set()
        if isinstance(value, Sequence):
            return set().union(*(names(v) for v in value)) if value else set()
        return set()

    owners: dict[str, str] = {}
    for step in checklist.steps:
        used = names(step.params)
        if step.type == "flow.select":
            cases = step.params.get("cases")
            used |= {str(v) for v in cases.values()} if isinstance(cases, Mapping) else set()
        for name in used:
            owners.setdefault(name, step.id)
    return owners


def with_unoffered(report: RunReport, installed: Checklist, runtime: Runtime, values: Mapping[str, object],
                   cache: MutableMapping[str, tuple[str, ...] | str]) -> RunReport:
    """`report` of a check run over `recorded_checklist(installed)`, with each recorded answer the live lookups
    no longer offer a finding of the step that uses it (that step then failed, as any step with a finding)."""
    from kensium_provision.model import Finding

    found = unoffered(installed, runtime, values, cache)
    if not found or not report.results:
        return report
    owners = input_owners(installed)
    return attach(report, [Finding(step_id=owners.get(u.input_id, ""), message=u.message, expected=list(u.expected),
                                   actual=u.actual) for u in found])


def attach(report: RunReport, findings: Iterable[Finding]) -> RunReport:
    """`report` with each of `findings` on its step's result (titled as the engine titles a finding; that step
    then failed, as any step with a finding); one of a step the run has no result for goes to the first."""
    from kensium_provision.model import Status

    results = list(report.results)
    if not results:
        return report
    index = {r.step_id: n for n, r in enumerate(results)}
    extra: dict[int, list[Finding]] = {}
    for f in findings:
        extra.setdefault(index.get(f.step_id, 0), []).append(f)
    for n, found in extra.items():
        r = results[n]
        titled = tuple(replace(f, step_id=r.step_id, message=f"{r.title}: {f.message}") for f in found)
        results[n] = replace(r, status=Status.FAILED, findings=(*titled, *r.findings))
    return replace(report, results=tuple(results))
