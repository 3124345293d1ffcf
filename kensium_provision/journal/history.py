"""Past runs for people: `kprov runs`, `kprov audit show`, and what `kprov resume` will reuse.

Reads the journal (see `journal.reader`), renders a run as a runsheet (text or Markdown for a change
ticket) and compares a run's checklist with today's to say what changed before a resume.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kensium_provision.journal.reader import RunLog, RunSummary

__all__ = ["ChecklistChange", "checklist_changes", "run_json", "run_markdown", "summary_rows"]


def summary_rows(summaries: Sequence[RunSummary]) -> list[dict[str, str]]:
    return [{"run_id": s.run_id, "started": s.started, "outcome": s.outcome, "mode": s.mode,
             "checklist": s.checklist, "target": s.target or s.client, "environment": s.env,
             "who": s.who.rsplit("/", 1)[-1] or s.os_user} for s in summaries]


def _target(log: RunLog) -> str:
    from kensium_provision.journal.reader import run_target

    return run_target(log)[0]  # one reading of a run's target: the rendered one, never template syntax


def _word(value: object) -> str:
    """An answer as an operator reads it: yes/no, not Python's True/False."""
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def run_json(log: RunLog) -> dict[str, Any]:
    steps: dict[str, dict[str, Any]] = {}
    answers: dict[str, object] = {}
    for rec in log.records:
        event, step = rec.get("event"), rec.get("step")
        if event == "answer":
            answers[str(rec.get("input"))] = rec.get("value", rec.get("reference"))
        elif event in ("step.intent", "step.result") and isinstance(step, str):
            entry = steps.setdefault(step, {"id": step})
            if event == "step.intent":
                entry["intent_at"] = rec.get("ts")
                entry["params"] = rec.get("params")
            else:
                entry.update(status=rec.get("status"), reason=rec.get("reason"), outputs=rec.get("outputs"),
                             findings=rec.get("findings"), finished_at=rec.get("ts"), seconds=rec.get("seconds"))
    empty: Mapping[str, object] = {}
    finished = next((r for r in reversed(log.records) if r.get("event") == "run.finished"), empty)
    header = log.header
    return {"kprov_json": 1, "kind": "run", "run_id": log.run_id, "checklist": header.get("checklist"),
            "checklist_sha256": header.get("checklist_sha256"), "mode": header.get("mode"),
            "environment": header.get("environment"), "account": header.get("account"),
            "region": header.get("region"), "who": header.get("who"), "os_user": header.get("os_user"),
            "target": _target(log), "started": header.get("ts"), "finished": finished.get("ts"),
            "outcome": finished.get("outcome", "interrupted" if any(r.get("event") == "interrupted"
                                                                    for r in log.records) else "unfinished"),
            "answers": answers, "steps": list(steps.values()), "api_calls": finished.get("api_calls"),
            "problems": list(log.problems)}


def _escape(text: str) -> str:
    """Text as Markdown shows it literally: a note saying `'.*'` must not turn into emphasis."""
    return re.sub(r"([\\`*_\[\]<>|~])", r"\\\1", text)


def run_markdown(log: RunLog) -> str:
    data = run_json(log)
    lines = [f"# kprov run {data['run_id']}", "",
             "| run | |", "|---|---|",
             f"| checklist | `{data['checklist']}` (sha256 `{str(data['checklist_sha256'])[:12]}`) |",
             f"| mode | {data['mode']} |", f"| target | {data['target']} |",
             f"| environment | {data['environment']} (account {data['account']}, {data['region']}) |",
             f"| operator | {data['who']} ({data['os_user']}) |",
             f"| started | {data['started']} |", f"| finished | {data['finished'] or '-'} |",
             f"| outcome | **{data['outcome']}** |", ""]
    if data["answers"]:
        lines += ["## Answers", ""] + [f"- `{k}`: {_escape(_word(v))}" for k, v in data["answers"].items()] + [""]
    lines += ["## Steps", "", "| step | status | note |", "|---|---|---|"]
    for step in data["steps"]:
        note = _escape(str(step.get("reason") or ""))
        lines.append(f"| `{step['id']}` | {step.get('status') or 'intended, no result'} | {note} |")
    findings = [f for s in data["steps"] for f in (s.get("findings") or [])]
    if findings:
        lines += ["", "## Findings", ""] + [f"- {_escape(str(f))}" for f in findings]
    if data["problems"]:
        lines += ["", "## Journal problems", ""] + [f"- {p}" for p in data["problems"]]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class ChecklistChange:
    kind: str  # added, removed, changed
    step_id: str

    def __str__(self) -> str:
        return f"step {self.step_id} was {self.kind}"


def checklist_changes(recorded: Sequence[Mapping[str, str]], now: Sequence[Mapping[str, str]]) -> list[ChecklistChange]:
    """What differs between the steps a run started with and today's checklist."""
    before = {s["id"]: s["digest"] for s in recorded}
    after = {s["id"]: s["digest"] for s in now}
    changes = [ChecklistChange("removed", sid) for sid in before if sid not in after]
    changes += [ChecklistChange("added", sid) for sid in after if sid not in before]
    changes += [ChecklistChange("changed", sid) for sid in after if sid in before and before[sid] != after[sid]]
    return changes
