"""Commands that run a checklist: `install-client`, `provision shared`, `resume`, and the run they share.

`run_checklist` hands one request to the bootstrap (`app.bootstrap.execute`), shows the plan or the
report, and returns the exit code and the run's JSON document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.app.context import Context, UsageError
from kensium_provision.model import Mode

if TYPE_CHECKING:
    from rich.console import Console

    from kensium_provision.app.bootstrap import RunRequest

__all__ = ["SHARED_RESOURCES", "install_client", "preflight_choice", "provision_shared", "reported", "resume",
           "resume_command", "run_checklist", "run_request", "shared_checklist"]

SHARED_RESOURCES = ("vpc", "rds", "rabbitmq", "ec2", "pos", "tenant-manager")


def shared_checklist(resource: str) -> Path:
    """The checklist of a shared resource; the name is allow-listed before it becomes a path."""
    from kensium_provision.checklist.catalog import shared_checklist as find

    if resource not in SHARED_RESOURCES:
        raise UsageError(f"{resource!r} is not one of: {', '.join(SHARED_RESOURCES)}", param_hint="RESOURCE")
    return find(resource)


def preflight_choice(*, preflight: bool, skip_preflight: bool) -> str:
    """`--preflight` / `--skip-preflight` as `RunRequest.preflight`: "run", "skip" or "auto"."""
    if preflight and skip_preflight:
        raise UsageError("--preflight asks for the permission check and --skip-preflight skips it: choose one",
                         param_hint="--skip-preflight")
    return "run" if preflight else "skip" if skip_preflight else "auto"


def run_checklist(context: Context, checklist: Path, mode: Mode, *, answers: Path | None, yes: bool,
                  preset: dict[str, object], command: str, from_record: str = "",
                  console: Console | None = None, preflight: str = "auto",
                  step: bool = False) -> tuple[int, dict[str, Any]]:
    """One run, shown to the operator; its exit code and its JSON report. `step`: Y/n at each step (--step)."""
    from kensium_provision.app.bootstrap import RunRequest

    request = RunRequest(checklist=checklist, mode=mode, answers_path=answers, preset=preset, assume_yes=yes,
                         command=command, live=not context.json,
                         from_record=from_record, preflight=preflight, step_by_step=step)
    return run_request(context, request, console or context.console())


def resume_command(context: Context, run_id: str, *, answers: Path | None, yes: bool) -> str:
    """The exact command line that resumes a run: its config, its answers file and --yes, as it was run."""
    import shlex

    words = ["kprov", *(["--config", str(context.config)] if context.config else []), "resume", run_id,
             *(["--answers", str(answers)] if answers else []), *(["--yes"] if yes else [])]
    return shlex.join(words)


def run_request(context: Context, request: RunRequest, console: Console, *,
                resumes: str = "") -> tuple[int, dict[str, Any]]:
    """Execute one request under a run id chosen here, so an interrupt or a failure can say how to resume it."""
    from dataclasses import replace

    from rich.text import Text

    from kensium_provision.app.bootstrap import AGAIN_WITH_APPROVAL, execute, new_run_id, requires_approval
    from kensium_provision.app.commands.history import state
    from kensium_provision.app.outcome import RunInterrupted
    from kensium_provision.errors import ExitCode, KprovError
    from kensium_provision.journal.writer import check_writable
    from kensium_provision.ui.fleet import print_api_calls
    from kensium_provision.ui.render import print_plan, print_report, report_json

    check_writable(state())  # a full disk or a read-only state dir: exit 3 before the first AWS call
    request = replace(request, run_id=request.run_id or new_run_id())
    run_id = request.run_id
    again = resume_command(context, run_id, answers=request.answers_path, yes=request.assume_yes)
    began = (state() / "runs" / f"{run_id}.jsonl").is_file

    def instead() -> str:  # where approval is required, a resume would apply what nobody approved
        saved = request.saved_plan is not None and requires_approval(context, request.env_name)
        return AGAIN_WITH_APPROVAL if saved else ""
    try:
        outcome = execute(request, context, console)
    except KeyboardInterrupt:
        if not began():
            raise
        raise RunInterrupted(run_id, again if request.mode is Mode.APPLY else "") from None
    except KprovError as exc:
        if began() and request.mode is Mode.APPLY and exc.exit_code == ExitCode.FAILED:
            on = instead() or f"resume it with `{again}`"
            exc.hint = "; ".join(filter(None, (exc.hint, f"run {run_id} stopped; {on}")))
        raise
    report = outcome.report
    if report.mode is Mode.PLAN:
        print_plan(console, report)
    else:
        print_report(console, report, run_id=run_id, resume=again, instead=instead() if report.error else "")
    if context.verbose:
        print_api_calls(console, outcome.api_calls)
    resumed = f" (resumes {resumes})" if resumes else ""
    console.print(Text(f"run {outcome.run_id}{resumed} · journal {outcome.journal_path}", style="dim"),
                  soft_wrap=True)
    document = report_json(report, run_id=outcome.run_id, environment=outcome.environment, account=outcome.account,
                           region=outcome.region, caller=outcome.caller, api_calls=outcome.api_calls)
    return int(report.exit_code), document


def reported(context: Context, code: int, document: dict[str, Any]) -> int:
    """The command's exit code, its JSON report written first with --output json."""
    if context.json:
        from kensium_provision.ui import json_output

        json_output.emit(document)
    return code


def install_client(context: Context, *, org_id: str, dry_run: bool, answers: Path | None, yes: bool,
                   preflight: bool = False, skip_preflight: bool = False, step: bool = False) -> int:
    from kensium_provision.checklist.catalog import install_checklist

    code, document = run_checklist(context, install_checklist(), Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={"org_id": org_id},
                                   command=f"install-client {org_id}", step=step,
                                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))
    return reported(context, code, document)


def provision_shared(context: Context, *, resource: str, dry_run: bool, answers: Path | None, yes: bool,
                     preflight: bool = False, skip_preflight: bool = False, step: bool = False) -> int:
    code, document = run_checklist(context, shared_checklist(resource), Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={}, command=f"provision shared {resource}",
                                   step=step,
                                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))
    return reported(context, code, document)


def _changes(checklist: Any, given: Sequence[str]) -> dict[str, str]:
    """`--change INPUT=VALUE` as input ids to values; an unknown input or a secret is refused (exit 3)."""
    from kensium_provision.errors import InputError

    inputs = {spec.id: spec for spec in checklist.inputs}
    found: dict[str, str] = {}
    for text in given:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise InputError(f"--change {text!r} is not INPUT=VALUE", hint="e.g. --change rds_storage_gb=20")
        spec = inputs.get(name)
        if spec is None:
            raise InputError(f"--change {name}: {checklist.id} has no input {name!r}",
                             hint=f"its inputs: {', '.join(inputs)}")
        if spec.type == "secret":
            raise InputError(f"--change {name}: a secret is never given on the command line",
                             hint=f"put `{name}: vault:<reference>` in an answers file and pass --answers FILE")
        found[name] = value
    return found


def _sources(journaled: Mapping[str, object], from_file: Mapping[str, object], changes: Mapping[str, str], *,
             answers: Path | None) -> tuple[dict[str, object], list[tuple[str, str, object, object]]]:
    """The preset a resume runs with (journaled answers, less those the answers file or --change give) and
    the journaled answers replaced by another value: (input, source, journaled, new). --change beats the file,
    the file the journal, so a correction always takes effect; every replaced answer is checked again like a
    fresh one (the file's at its line)."""
    preset = {k: v for k, v in journaled.items() if k not in from_file and k not in changes}
    preset.update(changes)
    replaced = []
    for name, was in journaled.items():
        source, now = ("--change", changes[name]) if name in changes else ("the answers file", from_file.get(name))
        if (name in changes or name in from_file) and str(now) != str(was):
            replaced.append((name, source if name in changes else f"{source} {answers}", was, now))
    return preset, replaced


def _refuse_unresumable(context: Context, log: Any, run_id: str) -> None:
    """Exit 3 (nothing changed) for a run whose journal fails verification, or that was a plan or a check."""
    from kensium_provision.app.commands.history import anchors, state
    from kensium_provision.errors import InputError
    from kensium_provision.journal.verify import verify_run

    key, shipped = anchors(context)  # the key and the CloudWatch copy, when the config has them
    problems = verify_run(state(), run_id, key=key, shipped=shipped)
    if problems:
        raise InputError(f"run {run_id} is not resumed: its journal fails verification ("
                         + "; ".join(problems) + ")",
                         hint=f"`kprov audit verify {run_id}` shows what was edited; a journal that was tampered "
                              "with is no resume point: start a new run")
    undone = next((str(r.get("undoes")) for r in log.records if r.get("event") == "undo"), "")
    if undone:  # an undo is continued by undoing again: it re-reads what is left of what it removes
        raise InputError(f"run {run_id} is an undo of run {undone}: continue it with `kprov undo {undone}`",
                         hint="an undo run again removes what is left and shows what is gone as done")
    mode = str(log.header.get("mode", ""))
    if mode != Mode.APPLY.value:
        command = str(log.header.get("command", "")) or "the command"
        raise InputError(f"run {run_id} was a {mode} run, which changes nothing: there is nothing to resume",
                         hint=f"run `kprov {command}` again" + (" (without --dry-run to apply it)"
                                                                if mode == Mode.PLAN.value else ""))


def resume(context: Context, *, run_id: str, answers: Path | None, yes: bool, change: Sequence[str] = (),
           skip_preflight: bool = False) -> int:
    """Continue a run: reuse its answers (corrected by --answers and --change), re-probe every step, go on at
    the first one not done. A run whose journal fails verification, a plan and a check are refused (exit 3)."""
    from rich.text import Text

    from kensium_provision.app.bootstrap import RunRequest, step_digests
    from kensium_provision.app.commands.history import known_run, state
    from kensium_provision.checklist.answers import load_answers
    from kensium_provision.checklist.catalog import entries
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.errors import AbortedError, ExitCode, KprovError
    from kensium_provision.journal.history import checklist_changes
    from kensium_provision.journal.reader import read_run
    from kensium_provision.journal.resume import resume_point
    from kensium_provision.ui.render import safe

    log = read_run(state(), known_run(run_id))
    _refuse_unresumable(context, log, run_id)
    point = resume_point(log)
    path = next((e.path for e in entries() if e.id == point.checklist), None)
    if path is None:
        raise KprovError(f"run {run_id} used checklist {point.checklist!r}, which no longer exists")
    console = context.console()
    current = load_checklist(path)
    changes = _changes(current, change)
    from_file = load_answers(answers, current).values if answers else {}
    preset, replaced = _sources(point.answers, from_file, changes, answers=answers)
    if current.sha256 != point.checklist_sha256:
        recorded = log.header.get("steps")
        steps = [{str(k): str(v) for k, v in s.items()} for s in recorded if isinstance(s, dict)] \
            if isinstance(recorded, list) else []
        differences = [str(c) for c in checklist_changes(steps, step_digests(current))]
        console.print(Text(f"The checklist {point.checklist} changed since run {run_id} began:", style="yellow"))
        for difference in differences or ["(only text outside the steps)"]:
            console.print(Text(f"  - {difference}"))
        if context.non_interactive:
            if not yes:
                raise AbortedError("the checklist changed since the run began; pass --yes to resume anyway")
        else:
            from kensium_provision.ui.console import ConsoleOperator

            if not ConsoleOperator(console).confirm("Resume with today's checklist?", default=False):
                return int(ExitCode.ABORTED)
    console.print(Text(f"Resuming {run_id}: {len(point.completed)} step(s) done earlier will be re-probed.",
                       style="bold"))
    kept = len([k for k in point.answers if k in preset and k not in changes])
    console.print(Text(f"Answers: {kept} from the journal of run {run_id}"
                       + (f", the rest from {answers}" if answers else "")
                       + (f", {len(changes)} from --change" if changes else "") + "."))
    for name, source, was, now in replaced:
        console.print(Text(f"  {safe(name)}: {safe(str(now))} from {safe(source)} (the journal had "
                           f"{safe(str(was))})", style="yellow"), soft_wrap=True)
    corrections = tuple({"input": name, "source": "--change" if name in changes else "answers file",
                         "journaled": was, "value": now, **({"file": str(answers)} if name not in changes else {}),
                         "resumes": run_id} for name, source, was, now in replaced)
    request = RunRequest(checklist=path, mode=Mode.APPLY, env_name=context.env or str(log.header.get("environment")),
                         answers_path=answers, preset=preset, assume_yes=yes,
                         command=f"resume {run_id}", resume_run_id=run_id, recorded=dict(point.outputs),
                         live=not context.json, corrections=corrections,
                         preflight=preflight_choice(preflight=False, skip_preflight=skip_preflight))
    code, document = run_request(context, request, console, resumes=run_id)
    return reported(context, code, document)
