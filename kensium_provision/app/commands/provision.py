"""Commands that run a checklist: `install-client`, `provision shared`, `resume`, and the run they share.

`run_checklist` hands one request to the bootstrap (`app.bootstrap.execute`), shows the plan or the
report, and returns the exit code and the run's JSON document.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.app.context import Context, UsageError
from kensium_provision.model import Mode

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SHARED_RESOURCES", "install_client", "provision_shared", "resume", "run_checklist", "shared_checklist"]

SHARED_RESOURCES = ("vpc", "rds", "rabbitmq", "ec2", "pos", "tenant-manager")


def shared_checklist(resource: str) -> Path:
    """The checklist of a shared resource; the name is allow-listed before it becomes a path."""
    from kensium_provision.checklist.catalog import shared_checklist as find

    if resource not in SHARED_RESOURCES:
        raise UsageError(f"{resource!r} is not one of: {', '.join(SHARED_RESOURCES)}", param_hint="RESOURCE")
    return find(resource)


def run_checklist(context: Context, checklist: Path, mode: Mode, *, answers: Path | None, yes: bool,
                  preset: dict[str, object], command: str, from_record: str = "",
                  console: Console | None = None) -> tuple[int, dict[str, Any]]:
    """One run, shown to the operator; its exit code and its JSON report."""
    from rich.text import Text

    from kensium_provision.app.bootstrap import RunRequest, execute
    from kensium_provision.app.commands.history import state
    from kensium_provision.journal.writer import check_writable
    from kensium_provision.ui.fleet import print_api_calls
    from kensium_provision.ui.render import print_plan, print_report, report_json

    check_writable(state())  # a full disk or a read-only state dir: exit 3 before the first AWS call
    console = console or context.console()
    request = RunRequest(checklist=checklist, mode=mode, answers_path=answers, preset=preset, assume_yes=yes,
                         interactive=answers is None, command=command, live=not context.json,
                         from_record=from_record)
    outcome = execute(request, context, console)
    report = outcome.report
    if report.mode is Mode.PLAN:
        print_plan(console, report)
    else:
        print_report(console, report)
    if context.verbose:
        print_api_calls(console, outcome.api_calls)
    console.print(Text(f"run {outcome.run_id} · journal {outcome.journal_path}", style="dim"), soft_wrap=True)
    document = report_json(report, run_id=outcome.run_id, environment=outcome.environment, account=outcome.account,
                           region=outcome.region, caller=outcome.caller, api_calls=outcome.api_calls)
    return int(report.exit_code), document


def _shown(context: Context, code: int, document: dict[str, Any]) -> int:
    if context.json:
        from kensium_provision.ui import json_output

        json_output.emit(document)
    return code


def install_client(context: Context, *, org_id: str, dry_run: bool, answers: Path | None, yes: bool) -> int:
    from kensium_provision.checklist.catalog import install_checklist

    code, document = run_checklist(context, install_checklist(), Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={"org_id": org_id},
                                   command=f"install-client {org_id}")
    return _shown(context, code, document)


def provision_shared(context: Context, *, resource: str, dry_run: bool, answers: Path | None, yes: bool) -> int:
    code, document = run_checklist(context, shared_checklist(resource), Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={}, command=f"provision shared {resource}")
    return _shown(context, code, document)


def resume(context: Context, *, run_id: str, answers: Path | None, yes: bool) -> int:
    """Continue a run: reuse its answers, re-probe every step, go on at the first one not done."""
    from rich.text import Text

    from kensium_provision.app.bootstrap import RunRequest, execute, step_digests
    from kensium_provision.app.commands.history import known_run, state
    from kensium_provision.checklist.catalog import entries
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.errors import AbortedError, ExitCode, KprovError
    from kensium_provision.journal.history import checklist_changes
    from kensium_provision.journal.reader import read_run
    from kensium_provision.journal.resume import resume_point
    from kensium_provision.ui.render import print_report

    log = read_run(state(), known_run(run_id))
    point = resume_point(log)
    path = next((e.path for e in entries() if e.id == point.checklist), None)
    if path is None:
        raise KprovError(f"run {run_id} used checklist {point.checklist!r}, which no longer exists")
    console = context.console()
    current = load_checklist(path)
    if current.sha256 != point.checklist_sha256:
        recorded = log.header.get("steps")
        steps = [{str(k): str(v) for k, v in s.items()} for s in recorded if isinstance(s, dict)] \
            if isinstance(recorded, list) else []
        changes = [str(c) for c in checklist_changes(steps, step_digests(current))]
        console.print(Text(f"The checklist {point.checklist} changed since run {run_id} began:", style="yellow"))
        for change in changes or ["(only text outside the steps)"]:
            console.print(Text(f"  - {change}"))
        if context.non_interactive:
            if not yes:
                raise AbortedError("the checklist changed since the run began; pass --yes to resume anyway")
        else:
            from kensium_provision.ui.console import ConsoleOperator

            if not ConsoleOperator(console).confirm("Resume with today's checklist?", default=False):
                return int(ExitCode.ABORTED)
    console.print(Text(f"Resuming {run_id}: {len(point.completed)} step(s) done earlier will be re-probed.",
                       style="bold"))
    request = RunRequest(checklist=path, mode=Mode.APPLY, env_name=context.env or str(log.header.get("environment")),
                         answers_path=answers, preset=dict(point.answers), assume_yes=yes,
                         interactive=answers is None, command=f"resume {run_id}", resume_run_id=run_id,
                         recorded=dict(point.outputs), live=not context.json)
    outcome = execute(request, context, console)
    print_report(console, outcome.report)
    console.print(Text(f"run {outcome.run_id} (resumes {run_id}) · journal {outcome.journal_path}", style="dim"))
    return int(outcome.report.exit_code)
