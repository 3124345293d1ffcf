"""The resume point of a run: the answers, outputs and step states `kprov resume` may reuse.

Completed steps are re-probed by the engine, never trusted blindly; masked or unrecordable values
are left out, so they are asked or probed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kensium_provision.journal.reader import RunLog
from kensium_provision.secret import MASK

__all__ = ["DONE_STATUSES", "ResumeState", "resume_point"]

DONE_STATUSES = frozenset({"done", "changed"})  # step.result statuses that resume may skip re-doing


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeState:
    """What `kprov resume` may reuse from a run; completed steps are re-probed, never trusted blindly.

    `answers` holds non-secret values only; secret answers are password-manager references in
    `secret_refs`. Masked values are left out, so they are asked or probed again.
    """

    run_id: str
    checklist: str
    checklist_sha256: str
    target: str
    answers: Mapping[str, object]
    secret_refs: Mapping[str, str]
    outputs: Mapping[str, Mapping[str, object]]  # step id -> outputs of a done or changed step
    completed: frozenset[str]
    failed: frozenset[str]
    in_flight: str | None  # intended last and never finished: its act may or may not have happened


def _unmasked(value: object) -> bool:
    return value != MASK and not (isinstance(value, str) and value.startswith("<unrecordable"))


def resume_point(log: RunLog) -> ResumeState:
    """Answers, outputs and step states of a run, from its records in order (a later record wins)."""
    answers: dict[str, object] = {}
    secret_refs: dict[str, str] = {}
    outputs: dict[str, Mapping[str, object]] = {}
    completed: set[str] = set()
    failed: set[str] = set()
    open_steps: list[str] = []  # intended, no result yet, in order
    for rec in log.records:
        event, step, name, reference = rec.get("event"), rec.get("step"), rec.get("input"), rec.get("reference")
        if event == "answer" and isinstance(name, str):
            answers.pop(name, None)
            secret_refs.pop(name, None)
            if isinstance(reference, str):
                secret_refs[name] = reference
            elif "value" in rec and not rec.get("secret") and _unmasked(rec["value"]):
                answers[name] = rec["value"]
        elif not isinstance(step, str):
            continue
        elif event == "step.intent":
            open_steps = [s for s in open_steps if s != step] + [step]
        elif event in ("step.result", "step.skipped"):
            open_steps = [s for s in open_steps if s != step]
            status = str(rec.get("status", "")) if event == "step.result" else "skipped"
            completed.discard(step)
            failed.discard(step)
            outputs.pop(step, None)
            if status in DONE_STATUSES:
                completed.add(step)
                found = rec.get("outputs")
                outputs[step] = {k: v for k, v in found.items() if _unmasked(v)} if isinstance(found, dict) else {}
            elif status == "failed":
                failed.add(step)
    header = log.header
    return ResumeState(
        run_id=log.run_id,
        checklist=str(header.get("checklist", "")),
        checklist_sha256=str(header.get("checklist_sha256", "")),
        target=str(header.get("target", "")),
        answers=answers,
        secret_refs=secret_refs,
        outputs=outputs,
        completed=frozenset(completed),
        failed=frozenset(failed),
        in_flight=open_steps[-1] if open_steps else None,
    )
