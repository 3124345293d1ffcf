"""Reading the journal: a run's records (`read_run`), every run's summary (`list_runs`), and filters.

A torn last line (a crash mid-write) or an unreadable line is reported in `problems`, never raised;
`journal.verify` says whether the chain is intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kensium_provision.journal.files import journal_path, run_ids

__all__ = ["Evidence", "RunLog", "RunSummary", "filter_runs", "list_runs", "parse_journal", "read_run", "run_evidence",
           "run_target"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLog:
    """A run's journal as read: the header, the records in file order, and lines that could not be read."""

    run_id: str
    path: Path
    header: Mapping[str, object]
    records: tuple[Mapping[str, object], ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """One line of `kprov runs`: outcome is the `run.finished` outcome, `interrupted` or `unfinished`."""

    run_id: str
    started: str
    finished: str | None
    outcome: str
    checklist: str
    target: str
    env: str
    who: str
    os_user: str
    mode: str
    client: str
    problems: tuple[str, ...] = ()



def parse_journal(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, record) of every readable line, and what is wrong with the others."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    cut = lines.pop()  # b"" when the file ends with a newline, else a line without one
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        rec = _load(raw)
        if rec is None:
            after = f" (after record {records[-1][1]['seq']})" if records else ""
            problems.append(f"line {number} is not a valid record{after}")
        else:
            records.append((number, rec))
    if cut:
        expected = records[-1][1]["seq"] + 1 if records else 1
        problems.append(f"record {expected} is torn: line {len(lines) + 1} is incomplete "
                        "(the writer stopped mid-write)")
    return records, problems


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict) or type(rec.get("seq")) is not int:
        return None
    return rec


def read_run(state_dir: Path, run_id: str) -> RunLog:
    """The run's journal; a torn last line (a crash mid-write) is reported in `problems`, not raised."""
    path = journal_path(state_dir, run_id)
    parsed, problems = parse_journal(path)
    records = tuple(rec for _, rec in parsed)
    header = records[0] if records and records[0].get("event") == "run.started" else {}
    return RunLog(run_id=run_id, path=path, header=header, records=records, problems=tuple(problems))


def run_target(log: RunLog) -> tuple[str, bool]:
    """What the run acted on, and whether that is known: the last rendered target journaled (a `target` record,
    or the `answer` that completed the header's template: `journal.writer`), else the header's target. A
    template nobody answered reads `client:(org_id unknown)`, never as template syntax."""
    rendered = [r["target"] for r in log.records
                if r.get("event") in ("target", "answer") and isinstance(r.get("target"), str)]
    if rendered:
        return str(rendered[-1]), True
    from kensium_provision.template import TemplateError, placeholders, render

    target = str(log.header.get("target", ""))
    try:
        names = {p.name for p in placeholders(target)}
        return render(target, {name: f"({name} unknown)" for name in names}), not names
    except TemplateError:  # not a template kprov writes (`{{ n:02 }}` needs a number): shown as journaled
        return target, False


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What a person stated at a manual step, as journaled: the step's `evidence` item and its answer.

    Evidence is a reference or a fact typed by the operator (a tenant name, a DNS target), not a
    secret; a value the writer masked stays masked."""

    step: str
    id: str
    prompt: str
    value: object


def run_evidence(log: RunLog) -> tuple[Evidence, ...]:
    """Every manual step's evidence in the run, in step order: its intent names the items (`params.evidence`),
    its last done or changed result holds the answers (`outputs`, keyed by item id)."""
    asked: dict[str, list[tuple[str, str]]] = {}
    given: dict[str, Mapping[str, object]] = {}
    for rec in log.records:
        step, event = rec.get("step"), rec.get("event")
        if not isinstance(step, str):
            continue
        params = rec.get("params")
        items = params.get("evidence") if event == "step.intent" and isinstance(params, dict) else None
        if isinstance(items, list):
            asked[step] = [(str(i["id"]), str(i.get("prompt") or i["id"])) for i in items
                           if isinstance(i, dict) and isinstance(i.get("id"), str)]
        outputs = rec.get("outputs")
        if event == "step.result" and rec.get("status") in ("done", "changed") and isinstance(outputs, dict):
            given[step] = outputs
    return tuple(Evidence(step=step, id=item, prompt=prompt, value=given[step][item])
                 for step, items in asked.items() if step in given
                 for item, prompt in items if item in given[step])


def _summary(log: RunLog) -> RunSummary:
    header = log.header
    finished = next((r for r in reversed(log.records) if r.get("event") == "run.finished"), None)
    if finished is not None:
        outcome = str(finished.get("outcome", ""))
    elif any(r.get("event") == "interrupted" for r in log.records):
        outcome = "interrupted"
    else:
        outcome = "unfinished"  # crashed, killed, or still running
    target, known = run_target(log)
    client = str(header.get("client") or (target.split(":", 1)[1] if known and target.startswith("client:") else ""))
    return RunSummary(
        run_id=log.run_id,
        started=str(header.get("ts", "")),
        finished=str(finished["ts"]) if finished is not None else None,
        outcome=outcome,
        checklist=str(header.get("checklist", "")),
        target=target,
        env=str(header.get("environment", "")),
        who=str(header.get("who", "")),
        os_user=str(header.get("os_user", "")),
        mode=str(header.get("mode", "")),
        client=client,
        problems=log.problems,
    )


def list_runs(state_dir: Path) -> list[RunSummary]:
    """Every run in the state dir, newest first."""
    summaries = [_summary(read_run(state_dir, run_id)) for run_id in run_ids(state_dir)]
    return sorted(summaries, key=lambda s: (s.started, s.run_id), reverse=True)


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # a naive bound means UTC


def _is_operator(summary: RunSummary, operator: str) -> bool:
    user = summary.os_user.partition("@")[0]
    session = summary.who.rsplit("/", 1)[-1]  # user name or assumed-role session name
    return operator in (summary.who, summary.os_user, user, session)


def filter_runs(
    summaries: Iterable[RunSummary],
    *,
    client: str | None = None,
    env: str | None = None,
    operator: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[RunSummary]:
    """The runs matching every given filter (`kprov audit show`); `operator` is an ARN, user@host or user."""
    chosen = []
    for summary in summaries:
        started = _moment(summary.started)
        if client is not None and summary.client != client:
            continue
        if env is not None and summary.env != env:
            continue
        if operator is not None and not _is_operator(summary, operator):
            continue
        if since is not None and (started is None or started < _utc(since)):
            continue
        if until is not None and (started is None or started > _utc(until)):
            continue
        chosen.append(summary)
    return chosen
