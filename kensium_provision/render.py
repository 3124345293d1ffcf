"""What the operator sees: plans, live step states, findings, banners and errors (rich only here).

Data never goes into markup strings: names come from YAML and AWS, so they are always wrapped in
`Text` (research/reliability-notes.md section 5: markup injection and escape sequences).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from kensium_provision.engine import RunReport
from kensium_provision.errors import Issue
from kensium_provision.model import Checklist, Mode, Risk, Status, StepResult

__all__ = [
    "JSON_SCHEMA_VERSION",
    "LineReporter",
    "LiveReporter",
    "make_console",
    "make_reporter",
    "print_banner",
    "print_issues",
    "print_plan",
    "print_report",
    "report_json",
    "runsheet_markdown",
    "safe",
]

JSON_SCHEMA_VERSION = 1
_MARK = {
    Status.DONE: ("✓", "green"), Status.CHANGED: ("✓", "green"), Status.CHANGE: ("+", "yellow"),
    Status.DEPENDS: ("…", "cyan"), Status.SKIPPED: ("-", "dim"), Status.FAILED: ("✗", "red"),
    Status.PENDING: (" ", "dim"), Status.RUNNING: ("▸", "blue"),
}


def safe(value: object) -> str:
    """Text for the terminal: control and format characters shown as escapes, never executed."""
    text = str(value)
    return "".join(c if c.isprintable() or c == "\n" else f"\\u{ord(c):04x}" for c in text)


def make_console(stream: IO[str] | None = None) -> Console:
    """Human output goes to stderr; stdout is kept for `--output json`."""
    no_color = bool(os.environ.get("NO_COLOR"))
    return Console(file=stream or sys.stderr, no_color=no_color, highlight=False)


def print_issues(console: Console, issues: Iterable[Issue]) -> None:
    for issue in issues:
        console.print(Text(safe(issue)))


def print_banner(console: Console, rows: Mapping[str, str], *, protected: bool = False) -> None:
    table = Table.grid(padding=(0, 2))
    for key, value in rows.items():
        table.add_row(Text(key, style="bold"), Text(safe(value)))
    style = "bold red" if protected else "bold"
    title = "PROTECTED ENVIRONMENT" if protected else "kprov"
    from rich.panel import Panel

    console.print(Panel(table, title=Text(title, style=style), border_style="red" if protected else "blue",
                        expand=False))


def _params_text(params: Mapping[str, object], indent: str = "      ") -> Text:
    text = Text()
    for key, value in params.items():
        shown = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
        if "\n" in shown:
            shown = shown.splitlines()[0] + " …"
        text.append(f"{indent}{key} = ", style="dim")
        text.append(safe(shown[:160]) + ("…" if len(shown) > 160 else ""))
        text.append("\n")
    return text


def print_plan(console: Console, report: RunReport) -> None:
    """The dry-run preview, grouped by step, with a summary line."""
    for index, result in enumerate(report.results, 1):
        mark, style = _MARK[result.status]
        line = Text(f" {mark} ", style=style)
        line.append(f"{index:>2}. ")
        line.append(safe(result.title), style="bold")
        line.append(f"  [{result.step_id}]  ", style="dim")
        line.append(result.status.value, style=style)
        if result.reason:
            line.append(f"  ({safe(result.reason)})", style="dim")
        console.print(line)
        if result.status is Status.CHANGE and result.risk is not Risk.READ:
            if result.diff:
                for field, actual, expected in result.diff:
                    row = Text(f"      ~ {safe(field)}: ", style="yellow")
                    row.append(safe(repr(actual)), style="red")
                    row.append(" → ")
                    row.append(safe(repr(expected)), style="green")
                    console.print(row)
            console.print(_params_text(result.params), end="")
    console.print(Text(plan_summary(report), style="bold"))


def plan_summary(report: RunReport) -> str:
    create = sum(1 for r in report.results if r.status is Status.CHANGE and r.risk is Risk.CREATE)
    modify = sum(1 for r in report.results if r.status is Status.CHANGE and r.risk in (Risk.MODIFY, Risk.DESTROY))
    manual = sum(1 for r in report.results if r.status is Status.CHANGE and r.risk is Risk.READ)
    depends = report.count(Status.DEPENDS)
    done = report.count(Status.DONE)
    parts = [f"Plan: {create} to create, {modify} to modify, {done} unchanged"]
    if depends:
        parts.append(f"{depends} depend on earlier steps")
    if manual:
        parts.append(f"{manual} checks not yet holding")
    failed = report.count(Status.FAILED)
    if failed:
        parts.append(f"{failed} could not be probed")
    return ", ".join(parts) + "."


def print_report(console: Console, report: RunReport) -> None:
    """The end of an apply or check: findings and a summary."""
    for finding in report.findings:
        console.print(Text(f" ✗ {safe(finding.step_id)}: {safe(finding.message)}", style="red"))
    if report.mode is Mode.CHECK:
        n = len(report.findings)
        console.print(Text(f"Check: {n} finding{'s' if n != 1 else ''}, {report.count(Status.DONE)} steps verified.",
                           style="bold red" if n else "bold green"))
    elif report.mode is Mode.APPLY:
        status = "failed" if report.error else "complete"
        console.print(Text(f"Apply {status}: {report.count(Status.CHANGED)} changed, "
                           f"{report.count(Status.DONE)} already done, {report.count(Status.SKIPPED)} skipped.",
                           style="bold red" if report.error else "bold green"))


def report_json(report: RunReport, **extra: object) -> dict[str, Any]:
    """The versioned machine-readable report (schema in docs/json-output.md)."""

    def step(r: StepResult) -> dict[str, Any]:
        return {"id": r.step_id, "title": r.title, "status": r.status.value, "risk": r.risk.value,
                "reason": r.reason, "params": dict(r.params), "outputs": dict(r.outputs),
                "diff": [{"field": f, "actual": a, "expected": e} for f, a, e in r.diff],
                "findings": [{"step": f.step_id, "message": f.message, "expected": f.expected, "actual": f.actual}
                             for f in r.findings],
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


def runsheet_markdown(checklist: Checklist) -> str:
    """A checklist as a printable runsheet for a change ticket."""
    lines = [f"# {checklist.title}", "", f"Checklist `{checklist.id}` ({checklist.scope}), sha256 "
             f"`{checklist.sha256[:12]}`", ""]
    if checklist.description:
        lines += [checklist.description.strip(), ""]
    if checklist.inputs:
        lines += ["## Inputs", "", "| input | type | question | rule |", "|---|---|---|---|"]
        lines += [f"| `{i.id}` | {i.type} | {i.prompt} | {i.rule or ''} |" for i in checklist.inputs]
        lines.append("")
    lines += ["## Steps", ""]
    for n, step in enumerate(checklist.steps, 1):
        when = f" — only when {step.when.describe()}" if step.when else ""
        lines.append(f"{n}. [ ] **{step.title}** (`{step.id}`, {step.type}, risk: {step.risk.value}){when}")
        if step.type == "manual":
            for row in str(step.params.get("instructions", "")).strip().splitlines():
                lines.append(f"    > {row}")
    return "\n".join(lines) + "\n"


class LineReporter:
    """Plain line-by-line progress: not a TTY, NO_COLOR, or CI."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def step_started(self, step_id: str, title: str) -> None:
        return None

    def step_finished(self, result: StepResult) -> None:
        mark, style = _MARK[result.status]
        line = Text(f" {mark} {safe(result.title)} [{safe(result.step_id)}] {result.status.value}", style=style)
        if result.reason:
            line.append(f" ({safe(result.reason)})", style="dim")
        line.append(f" {result.seconds:.1f}s", style="dim")
        self.console.print(line)

    def progress(self, step_id: str, message: str) -> None:
        self.console.print(Text(f"   … {safe(step_id)}: {safe(message)}", style="dim"))

    def close(self) -> None:
        return None


class LiveReporter:
    """A live checklist: every step with its state, elapsed time, and a spinner for waits."""

    def __init__(self, console: Console, steps: Sequence[tuple[str, str]]) -> None:
        self.console = console
        self.rows: dict[str, list[str]] = {sid: [title, Status.PENDING.value, "", ""] for sid, title in steps}
        import time

        self._clock = time.monotonic
        self._started: dict[str, float] = {}
        self.live = Live(self._render(), console=console, refresh_per_second=8, transient=False)
        self.live.start()

    def _render(self) -> Group:
        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column(width=2)
        table.add_column()
        table.add_column(style="dim")
        table.add_column(justify="right", style="dim")
        for sid, (title, status, note, elapsed) in self.rows.items():
            st = Status(status)
            if st is Status.RUNNING:
                mark: Any = Spinner("dots", style="blue")
                elapsed = f"{self._clock() - self._started.get(sid, self._clock()):.0f}s"
            else:
                mark = Text(_MARK[st][0], style=_MARK[st][1])
            table.add_row(mark, Text(safe(title)), Text(safe(note or status)), Text(elapsed))
        return Group(table)

    def step_started(self, step_id: str, title: str) -> None:
        self._started[step_id] = self._clock()
        self.rows[step_id][1] = Status.RUNNING.value
        self.live.update(self._render())

    def step_finished(self, result: StepResult) -> None:
        row = self.rows[result.step_id]
        row[1], row[3] = result.status.value, f"{result.seconds:.1f}s"
        row[2] = result.status.value + (f" — {result.reason}" if result.reason else "")
        self.live.update(self._render())

    def progress(self, step_id: str, message: str) -> None:
        self.rows[step_id][2] = message
        self.live.update(self._render())

    def close(self) -> None:
        self.live.stop()


def make_reporter(console: Console, checklist: Checklist, *, live: bool) -> LineReporter | LiveReporter:
    """The live view on a colour terminal, plain lines otherwise."""
    if live and console.is_terminal and not console.no_color and not os.environ.get("CI"):
        return LiveReporter(console, [(s.id, s.title) for s in checklist.steps])
    return LineReporter(console)
