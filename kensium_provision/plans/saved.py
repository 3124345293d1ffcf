"""Saved plans (issue 17.3): what a dry run found and would do, in one JSON file a colleague can review.

A plan holds the checklist (id and sha256), the answers (a secret only as its `vault:` reference), each
step's probe observation (done, current, desired, differences: JSON, secrets masked) and intended change,
where it was made (environment, account, region, caller) and a digest: the sha256 of the canonical JSON of
all the rest. `apply PLAN` re-probes every step under the run's lock and refuses, naming the step, when
anything differs from the file (Terraform's stale plan), so what was reviewed is what runs.

A plan is made of passes (`Passes`): a checklist's (`checklist_passes`), or an undo's (`engine.undo.UndoRun.run`,
whose steps are made from the undone run's journal); the file, its review, approval and apply are the same.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kensium_provision.engine.run import RunReport, run
from kensium_provision.errors import InputError
from kensium_provision.model import Checklist, Mode
from kensium_provision.runtime import Runtime
from kensium_provision.secret import masked
from kensium_provision.steps.base import Probe

__all__ = ["FORMAT", "Passes", "SavedPlan", "StalePlan", "apply_saved", "build", "canonical", "checklist_passes",
           "load", "observe", "stale_steps", "write"]

FORMAT = "kprov-plan/1"


class StalePlan(InputError):
    """The account is no longer what the plan saw: exit 3, nothing changed (make and review a new plan)."""


def _json_safe(value: object) -> object:
    """Masked (secret.masked), then through JSON: what the file can hold and a re-probe compares equal."""
    return json.loads(json.dumps(masked(value), sort_keys=True, default=str))


def canonical(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def observation(probe: Probe) -> dict[str, object]:
    seen = {"done": probe.done, "note": probe.note, "current": dict(probe.current), "desired": dict(probe.desired),
            "differences": [[d.field, d.actual, d.expected] for d in probe.differences]}
    safe: dict[str, object] = json.loads(json.dumps(masked(seen), sort_keys=True, default=str))
    return safe


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedPlan:
    """A plan as written: `body` is the file less its digest; `digest` the sha256 of canonical(body)."""

    body: Mapping[str, Any]
    digest: str

    @property
    def plan_id(self) -> str:
        return str(self.body["plan_id"])

    def text(self, key: str) -> str:
        return str(self.body.get(key, ""))

    @property
    def steps(self) -> list[Mapping[str, Any]]:
        return list(self.body.get("steps", []))

    @property
    def answers(self) -> Mapping[str, object]:
        return dict(self.body.get("answers", {}))

    def document(self) -> dict[str, object]:
        return {**self.body, "digest": self.digest}


class _Observing:
    """The run's hooks, plus `observed` (engine.run calls it after each probe): the observations by step."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.seen: dict[str, dict[str, object]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def observed(self, step_id: str, probe: Probe) -> None:
        self.seen[step_id] = observation(probe)


class Passes(Protocol):
    """One pass of what a plan is made of, in the runtime's mode; `reviewed`: the apply of its saved plan."""

    def __call__(self, runtime: Runtime, *, reviewed: bool = False) -> RunReport: ...


def checklist_passes(checklist: Checklist, values: Mapping[str, object]) -> Passes:
    def passes(runtime: Runtime, *, reviewed: bool = False) -> RunReport:
        return run(checklist, runtime, values, reviewed=reviewed)

    return passes


def observe(passes: Passes, runtime: Runtime) -> tuple[RunReport, dict[str, Any]]:
    """A plan pass (probes only) and every probe's observation."""
    hooks = _Observing(runtime.hooks)
    report = passes(replace(runtime, mode=Mode.PLAN, hooks=hooks))
    return report, hooks.seen


def _answers(checklist: Checklist, values: Mapping[str, object], refs: Mapping[str, object]) -> dict[str, object]:
    """The answers to keep: a secret only by its vault reference (the answers file's `vault:<reference>`)."""
    kept: dict[str, object] = {}
    for spec in checklist.inputs:
        if spec.id not in values:
            continue
        if spec.type == "secret":
            ref = refs.get(spec.id)
            if not (isinstance(ref, str) and ref.startswith("vault:")):
                raise InputError(f"{spec.id}: a secret typed at a prompt cannot be saved in a plan (only its "
                                 "reference may be)", hint=f"put `{spec.id}: vault:<reference>` in an answers file "
                                                           "and pass --answers FILE")
            kept[spec.id] = ref
        else:
            kept[spec.id] = _json_safe(values[spec.id])
    return kept


def build(checklist: Checklist, values: Mapping[str, object], refs: Mapping[str, object], report: RunReport,
          seen: Mapping[str, object], *, where: Mapping[str, str], command: str, version: str,
          about: Mapping[str, str] | None = None) -> SavedPlan:
    """The plan of a dry run: `where` is environment, account, region and caller; `about` what else says what
    the plan is of (an undo's `undoes`: the run it removes)."""
    steps = [{"id": r.step_id, "title": r.title, "risk": r.risk.value, "status": r.status.value, "reason": r.reason,
              "params": _json_safe(dict(r.params)), "diff": _json_safe([list(d) for d in r.diff]),
              "observation": seen.get(r.step_id)} for r in report.results]
    body: dict[str, object] = {
        "format": FORMAT, "plan_id": uuid.uuid4().hex, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kprov_version": version, "command": command, "checklist": checklist.id,
        "checklist_sha256": checklist.sha256, **{k: where[k] for k in ("environment", "account", "region", "caller")},
        **(about or {}), "answers": _answers(checklist, values, refs), "steps": steps}
    return SavedPlan(body=body, digest=hashlib.sha256(canonical(body)).hexdigest())


def write(plan: SavedPlan, path: Path) -> None:
    path.write_text(json.dumps(plan.document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def load(path: Path) -> SavedPlan:
    """A plan file, its digest checked: an edited file is refused (exit 3) with the place that is wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the plan ({exc.strerror or exc})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not a kprov plan ({exc.msg})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{path}:1:1: not a kprov plan (no \"format\": \"{FORMAT}\")",
                         hint="write one with --dry-run --out PLAN")
    digest = str(document.pop("digest", ""))
    actual = hashlib.sha256(canonical(document)).hexdigest()
    if digest != actual:
        raise InputError(f"{path}: the plan was edited after it was written (its digest {digest[:12] or '-'} is "
                         f"not the sha256 of its content, {actual[:12]})", hint="make a new plan with --dry-run --out")
    return SavedPlan(body=document, digest=digest)


def stale_steps(plan: SavedPlan, report: RunReport, seen: Mapping[str, object]) -> list[str]:
    """What differs between the plan and a fresh plan pass, step by step ("step X: what")."""
    fresh = {r.step_id: r for r in report.results}
    found: list[str] = []
    for step in plan.steps:
        sid = str(step["id"])
        now = fresh.get(sid)
        if now is None:
            found.append(f"step {sid}: no longer in the checklist")
            continue
        if now.status.value != step["status"]:
            found.append(f"step {sid} ({step['title']}): planned {step['status']!r}, now {now.status.value!r}")
            continue
        then, current = step.get("observation"), seen.get(sid)
        if then != current:
            found.append(f"step {sid} ({step['title']}): the probe finds {_changed(then, current)}")
    found += [f"step {sid}: not in the plan" for sid in fresh if sid not in {str(s["id"]) for s in plan.steps}]
    return found


def _changed(then: object, now: object) -> str:
    """Which parts of an observation differ (their names, not the values: those may be long)."""
    if not isinstance(then, dict) or not isinstance(now, dict):
        return "something the plan did not see" if now else "nothing it can compare"
    parts: list[str] = []
    for key in sorted(set(then) | set(now)):
        a, b = then.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            parts += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            parts.append(key)
    return "other " + ", ".join(parts) + " than planned"


def apply_saved(passes: Passes, runtime: Runtime, plan: SavedPlan) -> RunReport:
    """Re-probe every step (under the apply's lock), refuse a stale plan naming its steps, else apply it with
    no per-step question (what the environment itself requires, the typed target, still asks)."""
    # engine.once's plan pass: its records under plan.* (no result a resume skips), no step lines of its own
    from kensium_provision.engine.once import PlanJournal, quiet

    with quiet(runtime):
        report, seen = observe(passes, replace(runtime, journal=PlanJournal(runtime.journal)))
    stale = stale_steps(plan, report, seen)
    runtime.journal.record("plan.reprobed", plan=plan.plan_id, digest=plan.digest, stale=stale)
    if stale:
        more = f"; and {len(stale) - 3} more step(s) (the journal's plan.reprobed lists them)" if len(stale) > 3 else ""
        raise StalePlan(f"the plan {plan.plan_id[:12]} is stale, so nothing was changed: "
                        + "; ".join(stale[:3]) + more,
                        hint="someone changed the account since the plan was made: make a new plan (--dry-run "
                             "--out PLAN), review it, and apply that")
    return passes(runtime, reviewed=True)

