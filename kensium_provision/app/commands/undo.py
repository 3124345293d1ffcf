"""`kprov undo RUN_ID [--dry-run]`: remove what a run created, newest first, and only that (engine.undo).

The undone run's journal (and those of the runs that resumed it) must verify, as for `resume`; the undo
is a run of its own through the one bootstrap (`app.bootstrap.execute` with a prepared checklist): its
journal says which run it undoes, it holds the lock of that run's target, and, as every run that
destroys, it has the operator type the target's name first (`--yes` never does). Interrupted or failed,
it is continued by running the same command again: what it removed already is re-probed as gone.

Where the environment requires approval, an undo runs only as an approved saved plan, as any apply: `undo RUN_ID
--dry-run --out PLAN` writes it, a colleague's `kprov approve PLAN` approves it, and `kprov apply PLAN` (which
hands an undo's plan back here) re-probes every step and removes exactly what was reviewed, or nothing.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.app.context import Context
from kensium_provision.model import Mode

if TYPE_CHECKING:
    from kensium_provision.journal.reader import RunLog
    from kensium_provision.plans.saved import SavedPlan

__all__ = ["apply_undo_plan", "undo", "undo_command"]


def undo_command(context: Context, run_id: str, *, answers: Path | None, yes: bool) -> str:
    """The exact command line that continues an undo (its config, answers file and --yes, as it was run)."""
    words = ["kprov", *(["--config", str(context.config)] if context.config else []), "undo", run_id,
             *(["--answers", str(answers)] if answers else []), *(["--yes"] if yes else [])]
    return shlex.join(words)


def _logs(context: Context, run_id: str) -> list[RunLog]:
    """The run, then the runs that resumed it (and those resuming them), oldest first; each journal verified
    (exit 3 when one fails: a journal that was tampered with says nothing reliable about what was made)."""
    from kensium_provision.app.commands.history import anchors, state
    from kensium_provision.errors import InputError
    from kensium_provision.journal.files import run_ids
    from kensium_provision.journal.reader import read_run
    from kensium_provision.journal.verify import verify_run

    chosen = [read_run(state(), run_id)]
    ids = {run_id}
    for other in sorted(run_ids(state())):
        log = read_run(state(), other)
        if str(log.header.get("resumes") or "") in ids and log.header.get("checklist") != "undo":
            chosen.append(log)
            ids.add(other)
    key, shipped = anchors(context)
    for log in chosen:
        problems = verify_run(state(), log.run_id, key=key, shipped=shipped)
        if problems:
            raise InputError(f"run {run_id} is not undone: the journal of run {log.run_id} fails verification ("
                             + "; ".join(problems) + ")",
                             hint=f"`kprov audit verify {log.run_id}` shows what was edited; remove what it made by "
                                  "hand after a review")
    return chosen


def undo(context: Context, *, run_id: str, dry_run: bool = False, answers: Path | None = None,
         yes: bool = False, out: Path | None = None, preflight: bool = False, skip_preflight: bool = False) -> int:
    """Undo run RUN_ID: its plan with `--dry-run` (no write; `--out PLAN` saves it for review and approval), else
    the removal; exit 3 when refused."""
    return _undo(context, run_id=run_id, dry_run=dry_run, answers=answers, yes=yes, out=out, preflight=preflight,
                 skip_preflight=skip_preflight)


def apply_undo_plan(context: Context, *, saved: SavedPlan, plan_path: Path, answers: Path | None,
                    skip_preflight: bool) -> int:
    """`kprov apply PLAN` of an undo's saved plan: the removal it lists, re-probed first (stale: nothing removed)."""
    return _undo(context, run_id=saved.text("undoes"), answers=answers, saved=saved, plan_path=plan_path,
                 skip_preflight=skip_preflight)


def _undo(context: Context, *, run_id: str, dry_run: bool = False, answers: Path | None = None, yes: bool = False,
          out: Path | None = None, saved: SavedPlan | None = None, plan_path: Path | None = None,
          preflight: bool = False, skip_preflight: bool = False) -> int:
    from dataclasses import replace

    from rich.text import Text

    from kensium_provision.app.bootstrap import RunRequest, execute, new_run_id
    from kensium_provision.app.commands.history import known_run, state
    from kensium_provision.app.commands.provision import preflight_choice
    from kensium_provision.app.outcome import RunInterrupted
    from kensium_provision.engine.undo import prepare
    from kensium_provision.errors import ExitCode, InputError, KprovError
    from kensium_provision.journal.writer import check_writable
    from kensium_provision.steps import registry
    from kensium_provision.ui.fleet import print_api_calls
    from kensium_provision.ui.render import print_plan, print_report, report_json

    if out is not None and not dry_run:
        from kensium_provision.app.context import UsageError

        raise UsageError("--out writes the plan of a dry run: add --dry-run (then `kprov apply PLAN`)",
                         param_hint="--out")
    logs = _logs(context, known_run(run_id))
    where = str(logs[0].header.get("environment") or "")
    if context.env and where and context.env != where:
        raise InputError(f"run {run_id} ran in environment {where}, not {context.env}: an undo removes what it made "
                         "where it made it", hint=f"run `kprov --env {where} undo {run_id}`")
    prepared = prepare(run_id, logs, registry())
    check_writable(state())
    console = context.console()
    mode = Mode.PLAN if dry_run else Mode.APPLY
    request = RunRequest(checklist=Path(f"undo of {run_id}"), mode=mode,
                         env_name=where or context.env,
                         answers_path=answers, assume_yes=yes, live=not context.json, prepared=prepared,
                         command=f"apply {plan_path}" if saved is not None else f"undo {run_id}",
                         plan_out=out, saved_plan=saved, run_id=new_run_id(),
                         preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))
    # A saved plan is applied once: what is left after a failure is a new plan's (its probes see what is gone).
    again = undo_command(context, run_id, answers=answers, yes=yes) if saved is None else \
        f"kprov undo {run_id} --dry-run --out PLAN"
    began = (state() / "runs" / f"{request.run_id}.jsonl").is_file
    try:
        outcome = execute(request, context, console)
    except KeyboardInterrupt:
        if not began():
            raise
        raise RunInterrupted(request.run_id, again if mode is Mode.APPLY else "") from None
    except KprovError as exc:
        if began() and mode is Mode.APPLY and exc.exit_code == ExitCode.FAILED:
            exc.hint = "; ".join(filter(None, (exc.hint, f"the undo stopped; continue it with `{again}`")))
        raise
    report = replace(outcome.report, checklist_id="undo")
    if report.mode is Mode.PLAN:
        print_plan(console, report)
    else:
        print_report(console, report, run_id=outcome.run_id, resume=again)
    if context.verbose:
        print_api_calls(console, outcome.api_calls)
    console.print(Text(f"run {outcome.run_id} (undoes {run_id}) · journal {outcome.journal_path}", style="dim"),
                  soft_wrap=True)
    from kensium_provision.app.commands.plans import saved_plan_about, saved_plan_written

    written = saved_plan_written(context, out, int(report.exit_code)) if out is not None else None
    if context.json:
        from kensium_provision.ui import json_output

        document: dict[str, Any] = report_json(
            report, run_id=outcome.run_id, environment=outcome.environment, account=outcome.account,
            region=outcome.region, caller=outcome.caller, api_calls=outcome.api_calls)
        named = written or (saved_plan_about(saved, plan_path) if saved is not None and plan_path else None)
        json_output.emit({**document, "undoes": run_id, "undone_runs": [log.run_id for log in logs],
                          **({"saved_plan": named} if named else {})})
    return int(report.exit_code)
