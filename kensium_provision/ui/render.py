"""What the operator sees: plans, live step states, findings, banners and errors (rich only here).

Data never goes into markup strings: names come from YAML and AWS, so they are always wrapped in
`Text` through `safe` (ui/boundary.py, the one output boundary: control, format and bidi characters
shown as escapes, never run by the terminal), and the console itself neutralises whatever it writes.

Two reporters show a run as it goes: `LiveReporter` on a colour terminal (finished steps scroll as
permanent lines; a transient region at the bottom shows the running step with a spinner, its elapsed
time and a wait's budget counting down, then the steps still pending) and `LineReporter` everywhere
else (not a TTY, NO_COLOR, CI). Prompts take the screen with `paused(console)`, which stops the live
region while questionary asks and brings it back afterwards.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from kensium_provision.errors import Issue
from kensium_provision.model import Checklist, Mode, Risk, Status, StepResult
from kensium_provision.secret import MASK, masked
from kensium_provision.ui.boundary import BoundaryConsole, safe, shown

if TYPE_CHECKING:
    from kensium_provision.engine.run import RunReport
    from kensium_provision.journal.reader import Evidence
    from kensium_provision.steps.base import StepType

__all__ = [
    "JSON_SCHEMA_VERSION",
    "LineReporter",
    "LiveReporter",
    "evidence_markdown",
    "make_console",
    "make_reporter",
    "manual_note",
    "paused",
    "plan_summary",
    "print_banner",
    "print_issues",
    "print_plan",
    "print_plan_to_apply",
    "print_report",
    "report_json",
    "result_line",
    "runsheet_markdown",
    "safe",
]

JSON_SCHEMA_VERSION = 1
_MARK = {
    Status.DONE: ("✓", "green"), Status.CHANGED: ("✓", "green"), Status.CHANGE: ("+", "yellow"),
    Status.DEPENDS: ("…", "cyan"), Status.SKIPPED: ("-", "dim"), Status.FAILED: ("✗", "red"),
    Status.PENDING: ("·", "dim"), Status.RUNNING: ("▸", "blue"),
}
_LEFT = re.compile(r"(\d+) s left")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def make_console(stream: IO[str] | None = None) -> Console:
    """Human output goes to stderr; stdout is kept for `--output json`. Through the output boundary."""
    no_color = bool(os.environ.get("NO_COLOR"))
    return BoundaryConsole(file=stream or sys.stderr, no_color=no_color, soft_wrap=True)


def print_issues(console: Console, issues: Iterable[Issue]) -> None:
    for issue in issues:
        console.print(Text(safe(issue)))


def print_banner(console: Console, rows: Mapping[str, str], *, protected: bool = False) -> None:
    """Who is about to act where, shown before any change (and before a plan's probes)."""
    table = Table.grid(padding=(0, 2))
    for key, value in rows.items():
        table.add_row(Text(key, style="bold"), Text(safe(value)))
    style = "bold red" if protected else "bold"
    title = "PROTECTED ENVIRONMENT" if protected else "kprov"
    console.print(Panel(table, title=Text(title, style=style), border_style="red" if protected else "blue",
                        expand=False))


# --- values, folded for one line ------------------------------------------------------------------------------


def _short(value: object) -> str:
    """One value on one line, in words: text as is, None as (none), yes/no, a lookup by the call it makes
    (never its JMESPath), lists and mappings as `a, b` and `k=v`; anything deeper as compact JSON."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value if value.strip() else repr(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "reveal"):
        return MASK
    if isinstance(value, Mapping) and value.get("operation"):
        return f"looked up with {value.get('service', '?')}:{value['operation']}"
    flat = (str, int, float, type(None))
    if isinstance(value, (list, tuple)) and all(isinstance(v, flat) for v in value):
        return ", ".join(_short(v) for v in value) if value else "(none)"
    if isinstance(value, Mapping) and all(isinstance(v, flat) for v in value.values()):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items()) if value else "(none)"
    return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))


def _fold(text: str, room: int) -> str:
    """The first line of `text`, cut to `room` characters; says what was left out."""
    lines = text.splitlines() or [""]
    first = lines[0].rstrip()
    more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    room = max(room - len(more), 12)
    if len(first) > room:
        first = first[: room - 1] + "…"
    return first + more


_masked = masked  # secrets masked again, in case a caller hands over raw parameters (the engine masks them already)


def _param_value(key: str, value: object) -> str:
    """A parameter as the operator reads it; a manual step's evidence and probe say what they ask."""
    if key == "evidence" and isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return "asks: " + "; ".join(str(v.get("prompt") or v.get("id")) for v in value)
    if key == "probe" and isinstance(value, Mapping) and value.get("operation"):
        return f"checked with {value.get('service', '?')}:{value['operation']}"
    return _short(value)


def _params_text(params: Mapping[str, object], *, width: int, indent: str = "        ") -> Text:
    text = Text()
    if not params:
        return text
    pad = min(max(len(k) for k in params), 24)
    for key, raw in params.items():
        value = _masked(raw)
        words = _param_value(key, value)
        room = width - len(indent) - pad - 3
        text.append(f"{indent}{key:<{pad}} = ", style="dim")
        text.append(safe(_fold(words, room)))
        text.append("\n")
    return text


def _is_manual(result: StepResult) -> bool:
    return "instructions" in result.params


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _not_checkable(result: StepResult) -> bool:
    """A check that could not look (no SQL connection, the manual vault): done by the operator, not verified."""
    return result.reason.startswith("not checkable")


def _reason_and_hint(reason: str) -> tuple[str, str]:
    """The engine writes a failure as `message (hint: what to do)`; shown on two lines."""
    message, found, hint = reason.partition(" (hint: ")
    return (message, hint[:-1] if hint.endswith(")") else hint) if found else (reason, "")


# --- plan ---------------------------------------------------------------------------------------------------


def _plan_head(index: int, result: StepResult) -> Text:
    mark, style = _MARK[result.status]
    line = Text(f" {mark} ", style=style)
    line.append(f"{index:>2}. ")
    line.append(safe(result.title), style="bold")
    line.append(f"  [{safe(result.step_id)}]  ", style="dim")
    line.append(result.status.value, style=style)
    return line


def _diff_redundant(result: StepResult) -> bool:
    """A probe note that only lists the differences adds nothing to the diff lines below it."""
    from kensium_provision.steps.base import Difference

    return bool(result.diff) and all(str(Difference(*d)) in result.reason for d in result.diff)


def print_plan(console: Console, report: RunReport) -> None:
    """The dry-run preview, grouped by step, with a summary line.

    A step to change shows why (the probe's note), the difference between what is there and what will
    be, and the parameters that will be sent (secrets masked, long values folded to one line).
    """
    width = max(console.width, 60)
    for index, result in enumerate(report.results, 1):
        line = _plan_head(index, result)
        message, hint = _reason_and_hint(result.reason)
        detail = ""
        if result.status is Status.DEPENDS and message.startswith("needs "):
            detail = f"waits for {message.removeprefix('needs ')}"
        elif message and not _diff_redundant(result) and result.status is not Status.FAILED:
            detail = message
        if detail and len(line) + len(detail) + 4 <= width:
            line.append(f"  ({safe(detail)})", style="dim")
            detail = ""
        console.print(line)
        if detail:  # too long for the step's line: on its own, under the title
            console.print(Text(f"        {safe(_fold(detail, width - 8))}", style="dim"))
        if result.status is Status.FAILED:
            _print_failure(console, message, hint)
        if result.status is not Status.CHANGE:
            continue
        from kensium_provision.steps.base import field_words

        for field, actual, expected in result.diff:
            row = Text(f"        ~ {safe(field_words(field))}: ", style="yellow")
            row.append(safe(_fold(_short(actual), 50)), style="red")
            row.append(" → ")
            row.append(safe(_fold(_short(expected), 50)), style="green")
            console.print(row)
        if result.risk is not Risk.READ or _is_manual(result):
            console.print(_params_text(result.params, width=width), end="")
    console.print(Text(plan_summary(report), style="bold"))


def print_plan_to_apply(console: Console, report: RunReport, changes: int, depends: int) -> None:
    """An interactive apply's plan, before its one question (`engine.once`): the dry run's plan, then what
    the question counts, or that there is nothing to change."""
    print_plan(console, report)
    if not changes:
        console.print(Text("Nothing to change: every step is done already.", style="bold green"))
    elif depends:
        console.print(Text(f"{_plural(changes, 'change')}, {depends} of them depend on earlier steps (what they "
                           "change is known once those have run).", style="bold"))


def plan_summary(report: RunReport) -> str:
    """`Plan: 9 to create, 1 to modify, 8 unchanged; 2 manual steps, 3 wait for earlier steps, ...`.

    A step to change counts as a modification when something exists already (its diff has a current
    value), whatever its declared risk; a manual step (instructions for the operator) counts apart.
    """
    change = [r for r in report.results if r.status is Status.CHANGE]
    manual = [r for r in change if _is_manual(r)]
    automated = [r for r in change if not _is_manual(r)]
    destroy = sum(1 for r in automated if r.risk is Risk.DESTROY)
    modify = sum(1 for r in automated if r.risk is not Risk.DESTROY and r.risk is not Risk.READ
                 and (r.risk is Risk.MODIFY or any(actual is not None for _, actual, _ in r.diff)))
    checks = sum(1 for r in automated if r.risk is Risk.READ)
    create = len(automated) - destroy - modify - checks
    parts = [f"{create} to create", f"{modify} to modify"]
    if destroy:
        parts.append(f"{destroy} to destroy")
    parts.append(f"{report.count(Status.DONE)} unchanged")
    extra = []
    if manual:
        extra.append(f"{len(manual)} manual step{'s' if len(manual) != 1 else ''}")
    depends = report.count(Status.DEPENDS)
    if depends:
        extra.append(f"{depends} wait{'s' if depends == 1 else ''} for earlier steps")
    if checks:
        extra.append(f"{checks} check{'s' if checks != 1 else ''} not holding yet")
    skipped = report.count(Status.SKIPPED)
    if skipped:
        extra.append(f"{skipped} skipped")
    failed = report.count(Status.FAILED)
    if failed:
        extra.append(f"{failed} could not be probed")
    return "Plan: " + ", ".join(parts) + ("; " + ", ".join(extra) if extra else "") + "."


# --- apply and check ------------------------------------------------------------------------------------------


def _print_failure(console: Console, message: str, hint: str, indent: str = "      ") -> None:
    if message:
        console.print(Text(f"{indent}{safe(message)}", style="red"))
    if hint:
        console.print(Text(f"{indent}hint: {safe(hint)}", style="yellow"))


def result_line(result: StepResult, width: int = 0) -> list[Text]:
    """One finished step: mark, title, id, state and time; the reason on the same line when it fits
    in `width` (0: always), else on its own line under the title. A failure's message and hint follow."""
    mark, style = _MARK[result.status]
    line = Text(f" {mark} ", style=style)
    line.append(safe(result.title))
    line.append(f" [{safe(result.step_id)}] ", style="dim")
    line.append(result.status.value, style=style)
    took = f" {result.seconds:.1f}s"
    message, hint = _reason_and_hint(result.reason)
    if result.status is Status.FAILED:
        line.append(took, style="dim")
        rows = [line]
        if message:
            rows.append(Text(f"      {safe(message)}", style="red"))
        if hint:
            rows.append(Text(f"      hint: {safe(hint)}", style="yellow"))
        return rows
    if message and (not width or len(line) + len(message) + len(took) + 3 <= width):
        line.append(f" ({safe(message)})", style="dim")
        message = ""
    line.append(took, style="dim")
    return [line, Text(f"      {safe(_fold(message, width - 6))}", style="dim")] if message else [line]


def _print_result(console: Console, result: StepResult, *, terse: bool = False) -> None:
    """`terse` (a check): a step that holds is one line; what it found goes under it only when it could
    not look (`not checkable`). A check of the whole estate is a line a step, then its findings and total."""
    rows = result_line(result, console.width)
    if terse and result.status is Status.DONE and not _not_checkable(result):
        rows = rows[:1]
    for row in rows:
        console.print(row)


def print_report(console: Console, report: RunReport, *, run_id: str = "", resume: str = "",
                 instead: str = "") -> None:
    """The end of an apply or check: findings, what failed and what to do next, a summary. `resume` is the
    exact command that resumes the run (with its answers file and options), else `kprov resume RUN_ID`;
    `instead` the way on after a failure where a resume is refused (an environment requiring approval)."""
    resume = resume or (f"kprov resume {run_id}" if run_id else "kprov resume RUN_ID (the run id is below)")
    if report.mode is Mode.CHECK:
        for finding in report.findings:
            console.print(Text(f" ✗ {safe(finding.step_id)}: {safe(finding.message)}", style="red"))
        n = len(report.findings)
        failed_steps = len({f.step_id for f in report.findings})
        unverified = sum(1 for r in report.results if r.status is Status.DONE and _not_checkable(r))
        summary = (f"Check: {n} finding{'s' if n != 1 else ''}"
                   + (f" in {failed_steps} step{'s' if failed_steps != 1 else ''}" if n else "")
                   + f", {_plural(report.count(Status.DONE) - unverified, 'step')} verified"
                   + (f", {unverified} not checkable" if unverified else "")
                   + f", {report.count(Status.SKIPPED)} skipped.")
        console.print(Text(summary, style="bold red" if n else "bold green"))
        if n:
            console.print(Text("Next: apply the same checklist again to repair what it can (it changes only what "
                               "differs), fix the rest by hand, then check again.", style="yellow"))
    elif report.mode is Mode.APPLY:
        failed = next((r for r in report.results if r.status is Status.FAILED), None)
        if report.error and failed is not None:
            console.print(Text(f" ✗ {safe(failed.title)} [{safe(failed.step_id)}] failed", style="bold red"))
            _print_failure(console, *_reason_and_hint(failed.reason))
        status = "failed" if report.error else "complete"
        not_run = report.count(Status.PENDING)
        ran = [r for r in report.results if r.status is Status.CHANGED]
        changed = sum(1 for r in ran if r.kprov_changed)
        by_hand = sum(1 for r in ran if r.by_hand)
        checked = len(ran) - changed - by_hand  # read-only steps that ran (a wait, an assertion): no change
        console.print(Text(f"Apply {status}: {changed} changed"
                           + (f", {by_hand} confirmed by hand" if by_hand else "")
                           + f", {report.count(Status.DONE) + checked} already done, "
                           f"{report.count(Status.SKIPPED)} skipped" + (f", {not_run} not run" if not_run else "")
                           + ".", style="bold red" if report.error else "bold green"))
        if report.error and instead:
            console.print(Text(f"Next: fix the cause, then {instead}.", style="yellow"))
        elif report.error:
            console.print(Text(f"Next: fix the cause, then `{resume}`: every step is probed again, nothing "
                               "done is done twice.", style="yellow"))
        elif check := _check_command(report):
            console.print(Text("Next: ") + shown(f"`{check}`", one_line=True)
                          + Text(" verifies it at any time (read-only: it changes nothing)."))


def _check_command(report: RunReport) -> str:
    """The read-only check of what an apply made: `kprov check shared vpc`, `kprov check client acme`."""
    if report.checklist_id.startswith("shared-"):
        return f"kprov check shared {report.checklist_id.removeprefix('shared-')}"
    org_id = report.values.get("org_id")
    if report.checklist_id == "install-client" and isinstance(org_id, str):
        return f"kprov check client {org_id}"
    return ""


def report_json(report: RunReport, **extra: object) -> dict[str, Any]:
    """The versioned machine-readable report (schema in docs/json-output.md)."""

    def step(r: StepResult) -> dict[str, Any]:
        return {"id": r.step_id, "title": r.title, "status": r.status.value, "risk": r.risk.value,
                "reason": r.reason, "params": _masked(dict(r.params)), "outputs": _masked(dict(r.outputs)),
                "diff": [{"field": f, "actual": _masked(a), "expected": _masked(e)} for f, a, e in r.diff],
                "findings": [{"step": f.step_id, "message": f.message, "expected": _masked(f.expected),
                              "actual": _masked(f.actual)} for f in r.findings],
                "seconds": round(r.seconds, 3)}

    return {
        "kprov_json": JSON_SCHEMA_VERSION,
        "kind": {"plan": "plan", "apply": "apply", "check": "check"}[report.mode.value],
        "checklist": report.checklist_id,
        "ok": report.exit_code == 0,
        "error": report.error or None,
        "summary": {s.value: report.count(s) for s in Status if report.count(s)},
        "steps": [step(r) for r in report.results],
        **extra,
    }


def _cell(text: object) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _literal(text: str) -> str:
    """Text Markdown shows as it is: the operator's `acme_*` stays `acme_*`, never emphasis."""
    return re.sub(r"([\\`*_\[\]<>|~#])", r"\\\1", " ".join(text.split()))


def evidence_markdown(evidence: Sequence[Evidence]) -> str:
    """A run's manual evidence (`journal.reader.run_evidence`) as a runsheet section: each step, what was
    asked and what the operator answered, in clear (evidence is a reference, never a secret: a value the
    journal masked stays masked). Empty when the run has none."""
    if not evidence:
        return ""
    lines = ["## Evidence", "", "| step | asked | answered |", "|---|---|---|"]
    lines += [f"| `{_cell(e.step)}` | {_literal(e.prompt)} | {_literal(_short(e.value))} |" for e in evidence]
    return "\n".join(lines) + "\n"


def runsheet_markdown(checklist: Checklist, types: Mapping[str, StepType] | None = None) -> str:
    """A checklist as a printable runsheet for a change ticket (and, rendered, for the terminal).

    A step whose type gives a person instructions (`steps.base.GivesInstructions`) has them quoted
    under it; `types` defaults to the step registry.
    """
    from kensium_provision.steps import registry
    from kensium_provision.steps.base import instructions_of

    types = registry() if types is None else types
    lines = [f"# {checklist.title}", "", f"Checklist `{checklist.id}` ({checklist.scope}), sha256 "
             f"`{checklist.sha256[:12]}`" + (f", target `{checklist.target}`" if checklist.target else ""), ""]
    if checklist.description:
        lines += [checklist.description.strip(), ""]
    if checklist.inputs:
        lines += ["## Inputs", "", "| input | type | question | rule / choices |", "|---|---|---|---|"]
        for i in checklist.inputs:
            where = i.rule or ", ".join(i.choices) or ("live lookup" if i.choices_from else "")
            when = f" (only when {i.when.describe()})" if i.when else ""
            lines.append(f"| `{i.id}` | {i.type} | {_cell(i.prompt)}{_cell(when)} | {_cell(where)} |")
        lines.append("")
    lines += ["## Steps", ""]
    for n, step in enumerate(checklist.steps, 1):
        when = f" — only when {step.when.describe()}" if step.when else ""
        lines.append(f"{n}. [ ] **{step.title}** (`{step.id}`, {step.type}, risk: {step.risk.value}){when}")
        instructions = instructions_of(types.get(step.type), step.params).strip()
        if instructions:
            rows = instructions.splitlines()
            lines.append("")
            for row, following in zip(rows, [*rows[1:], ""], strict=True):
                # A hard break (two trailing spaces) keeps each line of the instructions a line: Markdown
                # would fold `Open the console.` and `Click Create.` into one paragraph.
                lines.append(f"    > {row}" + ("  " if following.strip() else "") if row.strip() else "    >")
            lines.append("")
    return "\n".join(lines) + "\n"


# --- during a run ---------------------------------------------------------------------------------------------

_LIVE: weakref.WeakKeyDictionary[Console, LiveReporter] = weakref.WeakKeyDictionary()


# Seconds prompts on each console have waited for the operator: a step's time shown leaves them out.
_WAITED: weakref.WeakKeyDictionary[Console, float] = weakref.WeakKeyDictionary()


@contextmanager
def paused(console: Console) -> Iterator[None]:
    """Give the screen to a prompt: the live view on `console` (if any) stops, and comes back after it."""
    start = time.monotonic()
    try:
        reporter = _LIVE.get(console)
        if reporter is None:
            yield
        else:
            with reporter.paused():
                yield
    finally:
        _WAITED[console] = _WAITED.get(console, 0.0) + time.monotonic() - start


def _working(result: StepResult, console: Console, waited_before: float) -> StepResult:
    """The step as shown: its time without what its prompts waited for the operator (think time)."""
    waited = _WAITED.get(console, 0.0) - waited_before
    return replace(result, seconds=max(0.0, result.seconds - waited)) if waited > 0 else result


def manual_note(console: Console, source: str = "") -> Callable[[str, str], None]:
    """What an unattended run shows for a manual step: the first line of its instructions, and who answers."""
    who = f"the answers file {source}" if source else "the answers file"

    def note(step_id: str, instructions: str) -> None:
        first = next((row.strip() for row in instructions.splitlines() if row.strip()), "")
        line = Text("   ☐ manual step ", style="yellow")
        line.append(safe(step_id), style="bold")
        line.append(": " + safe(_fold(first, max(console.width - 20 - len(step_id), 40))))
        console.print(line)
        console.print(Text(f"     no prompt: {safe(who)} answers for the operator (journaled)", style="dim"))

    return note


class LineReporter:
    """Plain line-by-line progress: not a TTY, NO_COLOR, or CI. `quiet` (a plan) prints no step lines:
    the plan preview that follows shows every step."""

    def __init__(self, console: Console, *, quiet: bool = False, terse: bool = False) -> None:
        self.console = console
        self.quiet, self.terse = quiet, terse
        self._waited = 0.0

    def step_started(self, step_id: str, title: str) -> None:
        self._waited = _WAITED.get(self.console, 0.0)

    def step_finished(self, result: StepResult) -> None:
        if not self.quiet:
            _print_result(self.console, _working(result, self.console, self._waited), terse=self.terse)

    def inputs_known(self, values: Mapping[str, object]) -> None:
        return None  # plain lines show each title when its step finishes, rendered by the engine

    @contextmanager
    def planning(self) -> Iterator[None]:
        """An apply's plan pass (`engine.once`): no step lines, the plan that follows shows every step."""
        quiet, self.quiet = self.quiet, True
        try:
            yield
        finally:
            self.quiet = quiet

    def show_plan(self, report: RunReport, changes: int, depends: int) -> None:
        print_plan_to_apply(self.console, report, changes, depends)

    def progress(self, step_id: str, message: str) -> None:
        if not self.quiet:
            self.console.print(Text(f"   … {safe(step_id)}: {safe(message)}", style="dim"))

    def close(self) -> None:
        return None


class LiveReporter:
    """A live checklist: finished steps as permanent lines, and below them a transient region with the
    running step (spinner, elapsed time, latest progress, a wait's budget counting down) and what is pending.

    The region starts with the first step (inputs are asked before it) and stops around every prompt
    (`paused`). `keep_lines=False` (a plan) prints no step lines: the plan preview shows every step.
    """

    PENDING_ROWS = 3

    def __init__(self, console: Console, steps: Sequence[tuple[str, str]], *, keep_lines: bool = True,
                 terse: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.keep_lines, self.terse = keep_lines, terse
        self._clock = clock
        # Titles of steps not started yet may hold placeholders the engine fills in later: `‹org_id›`.
        self._templates = dict(steps)
        self._titles = {sid: _PLACEHOLDER.sub(r"‹\1›", title) for sid, title in steps}
        self._order = [sid for sid, _ in steps]
        self._finished: set[str] = set()
        self._running: str = ""
        self._started_at = 0.0
        self._message = ""
        self._message_at = 0.0
        self._spinner = Spinner("dots", style="blue")
        self._waited = 0.0
        self._live: Live | None = None
        self._pauses = 0
        self._closed = False
        _LIVE[console] = self

    # The region is drawn from this on every refresh, so elapsed time and the budget left keep moving.
    def _view(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        table.add_column(width=2, no_wrap=True)
        table.add_column(ratio=3, no_wrap=True, overflow="ellipsis")
        table.add_column(ratio=2, no_wrap=True, overflow="ellipsis", style="dim")
        table.add_column(justify="right", no_wrap=True, style="dim")
        now = self._clock()
        total = len(self._order)
        if self._running:
            position = self._order.index(self._running) + 1 if self._running in self._order else 0
            title = Text(f"[{position}/{total}] ", style="dim")
            title.append(safe(self._titles.get(self._running, self._running)), style="bold")
            note = self._message
            if note:
                note = _LEFT.sub(lambda m: f"{max(0, int(m[1]) - int(now - self._message_at))} s left", note)
            table.add_row(self._spinner, title, Text(safe(note or "running")),
                          Text(_elapsed(now - self._started_at)))
        pending = [sid for sid in self._order if sid not in self._finished and sid != self._running]
        for sid in pending[: self.PENDING_ROWS]:
            table.add_row(Text("·", style="dim"), Text(safe(self._titles[sid]), style="dim"), Text("pending"),
                          Text(""))
        if len(pending) > self.PENDING_ROWS:
            table.add_row(Text(""), Text(f"… and {len(pending) - self.PENDING_ROWS} more pending", style="dim"),
                          Text(""), Text(""))
        return Group(table)

    def _start(self) -> None:
        if self._live is not None or self._pauses or self._closed:
            return
        # A new Live each time: a stopped one remembers the height it drew and would move over the prompt.
        self._live = Live(get_renderable=self._view, console=self.console, refresh_per_second=8, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start(refresh=True)

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the region while a prompt has the screen; bring it back unless the prompt raised (Ctrl-C)."""
        self._stop()
        self._pauses += 1
        try:
            yield
        except BaseException:
            self._pauses -= 1
            raise
        self._pauses -= 1
        if self._running:
            self._start()

    def step_started(self, step_id: str, title: str) -> None:
        self._titles[step_id] = title
        if step_id not in self._order:
            self._order.append(step_id)
        self._running, self._started_at, self._message = step_id, self._clock(), ""
        self._waited = _WAITED.get(self.console, 0.0)
        # One spinner per step, kept across refreshes: a new one each refresh starts at its first frame again.
        self._spinner = Spinner("dots", style="blue")
        self._start()

    @contextmanager
    def planning(self) -> Iterator[None]:
        """An apply's plan pass (`engine.once`): the running step shown, no step lines (the plan follows);
        afterwards every step is pending again for the apply."""
        keep, self.keep_lines = self.keep_lines, False
        try:
            yield
        finally:
            self.keep_lines = keep
            self._finished.clear()
            self._running = ""
            self._stop()

    def show_plan(self, report: RunReport, changes: int, depends: int) -> None:
        print_plan_to_apply(self.console, report, changes, depends)

    def step_finished(self, result: StepResult) -> None:
        self._finished.add(result.step_id)
        self._running = ""
        if self.keep_lines:  # printed above the region by rich's render hook
            _print_result(self.console, _working(result, self.console, self._waited), terse=self.terse)

    def progress(self, step_id: str, message: str) -> None:
        self._message, self._message_at = message, self._clock()

    def inputs_known(self, values: Mapping[str, object]) -> None:
        """The answers are in: pending titles show `acme`, not `‹org_id›` (issue 15). Placeholders of values
        that come from earlier steps stay `‹name›` until their step starts and the engine renders its title."""
        from kensium_provision.template import TemplateError, render

        text = {k: v for k, v in values.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
        for sid, template in self._templates.items():
            if sid in self._finished or sid == self._running:
                continue
            try:
                self._titles[sid] = render(template, text)
            except TemplateError:
                self._titles[sid] = _PLACEHOLDER.sub(
                    lambda m: safe(text[m[1]]) if m[1] in text else f"‹{m[1]}›", template)

    def close(self) -> None:
        self._closed = True
        self._stop()
        if _LIVE.get(self.console) is self:
            del _LIVE[self.console]


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def make_reporter(console: Console, checklist: Checklist, *, live: bool,
                  mode: Mode | None = None) -> LineReporter | LiveReporter:
    """The live view on a colour terminal, plain lines otherwise; a plan (shown afterwards) prints no step lines,
    a check one line for each step that holds."""
    plan, check = mode is Mode.PLAN, mode is Mode.CHECK
    if live and console.is_terminal and not console.no_color and not os.environ.get("CI") \
            and os.environ.get("TERM") != "dumb":
        return LiveReporter(console, [(s.id, s.title) for s in checklist.steps], keep_lines=not plan,
                            terse=check)
    return LineReporter(console, quiet=plan, terse=check)
