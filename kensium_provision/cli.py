"""The kprov command line: parse, build the request, call one function, map errors to exit codes.

Thin on purpose (design.md section 9): typer lives here only; every command delegates to a module
that does the work. Heavy imports (boto3, questionary, the engine) happen inside commands, so
`kprov --help` and `kprov validate` start fast.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass
from datetime import UTC
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from kensium_provision import __version__
from kensium_provision.errors import ChecklistError, ExitCode, KprovError
from kensium_provision.ui.render import make_console, safe

__all__ = ["app", "main"]

SHARED_RESOURCES = ("vpc", "rds", "rabbitmq", "ec2", "pos", "tenant-manager")


class Output(str, Enum):
    text = "text"
    json = "json"


@dataclass
class Options:
    env: str | None = None
    config: Path | None = None
    output: Output = Output.text
    non_interactive: bool = False
    verbose: int = 0


OPTIONS = Options()

app = typer.Typer(
    name="kprov",
    help="Executable provisioning checklists for Kensium POS on AWS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a security setting: locals can hold secrets
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)
provision_app = typer.Typer(help="Create or update shared resources.", no_args_is_help=True)
check_app = typer.Typer(help="Read-only verification: findings, exit 1 if any.", no_args_is_help=True)
runs_app = typer.Typer(help="Past runs from the journal.", no_args_is_help=True)
audit_app = typer.Typer(help="Journal integrity and history.", no_args_is_help=True)
names_app = typer.Typer(help="Kensium naming conventions.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The embedded sandbox AWS (moto on 127.0.0.1).", no_args_is_help=True)
lock_app = typer.Typer(help="Locks between operators.", no_args_is_help=True)
for sub, name in ((provision_app, "provision"), (check_app, "check"), (runs_app, "runs"), (audit_app, "audit"),
                  (names_app, "names"), (sandbox_app, "sandbox"), (lock_app, "lock")):
    app.add_typer(sub, name=name)


def _complete_resource(incomplete: str) -> list[str]:
    return [r for r in SHARED_RESOURCES if r.startswith(incomplete)]


def _complete_checklist(incomplete: str) -> list[str]:
    from kensium_provision.checklist.catalog import entries

    return [name for entry in entries() for name in entry.names if name.startswith(incomplete)]


def _complete_org(incomplete: str) -> list[str]:
    """Org ids kprov has run for, offline: each journal's header line, cached by run id so that
    completion stays instant with thousands of runs (a new run costs one header read)."""
    import re

    from kensium_provision.app.config import state_dir

    try:
        state = state_dir()
        cache_path = state / "cache" / "completion-orgs.json"
        try:
            seen = {str(k): str(v) for k, v in json.loads(cache_path.read_text()).get("runs", {}).items()}
        except (OSError, ValueError, AttributeError):
            seen = {}
        current = {p.stem: p for p in (state / "runs").glob("*.jsonl")}
        missing = [run_id for run_id in current if run_id not in seen]
        for run_id in missing:
            with current[run_id].open("rb") as journal:
                client = json.loads(journal.readline() or b"{}").get("client")
            seen[run_id] = client if isinstance(client, str) else ""
        if missing or len(seen) != len(current):
            seen = {run_id: seen[run_id] for run_id in current}
            cache_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
            partial.write_text(json.dumps({"runs": seen}))
            os.replace(partial, cache_path)
    except Exception:  # noqa: BLE001 - completion must never crash the shell
        return []
    # Only well-formed org ids reach the shell: a journal is data, not completion syntax.
    orgs = {org for org in seen.values() if re.fullmatch(r"[a-z][a-z0-9]{0,62}", org)}
    return sorted(org for org in orgs if org.startswith(incomplete))


def _complete_run(incomplete: str) -> list[str]:
    """Run ids from the journal's file names (newest first); nothing is parsed."""
    from kensium_provision.app.config import state_dir

    try:
        ids = sorted((p.stem for p in (state_dir() / "runs").glob("*.jsonl")), reverse=True)
    except OSError:
        return []
    return [i for i in ids if i.startswith(incomplete)][:50]


@app.callback()
def _global(
    env: Annotated[str | None, typer.Option("--env", help="Environment from the config (default: sandbox).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Config file (else KPROV_CONFIG, else the user config dir).")] = None,
    output: Annotated[Output, typer.Option("--output", help="text for people, json for machines (on stdout).")] = Output.text,
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="Never prompt (implied without a terminal).")] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="-v: API call counts; -v -v: debug logs (redacted).")] = 0,
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"kprov {__version__}")
        raise typer.Exit()
    OPTIONS.env, OPTIONS.output, OPTIONS.verbose = env, output, verbose
    OPTIONS.config = config or (Path(os.environ["KPROV_CONFIG"]) if os.environ.get("KPROV_CONFIG") else None)
    OPTIONS.non_interactive = non_interactive or not sys.stdin.isatty()
    if verbose >= 2:
        from kensium_provision.ui.diagnostics import enable_debug

        enable_debug()


def _console() -> Any:
    return make_console()


def _emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def _shared_checklist(resource: str) -> Path:
    from kensium_provision.checklist.catalog import shared_checklist

    if resource not in SHARED_RESOURCES:  # allow-listed before it becomes a path
        raise typer.BadParameter(f"{resource!r} is not one of: {', '.join(SHARED_RESOURCES)}", param_hint="RESOURCE")
    return shared_checklist(resource)


def _execute(checklist: Path, mode: str, *, answers: Path | None, yes: bool, preset: dict[str, object],
             command: str, from_record: str = "") -> tuple[int, dict[str, Any]]:
    """One run, shown to the operator; returns its exit code and its JSON report."""
    from kensium_provision.app.bootstrap import RunRequest, execute
    from kensium_provision.model import Mode
    from kensium_provision.ui.render import print_plan, print_report, report_json

    console = _console()
    request = RunRequest(checklist=checklist, mode=Mode(mode), env_name=OPTIONS.env, config_path=OPTIONS.config,
                         answers_path=answers, preset=preset, assume_yes=yes,
                         interactive=not OPTIONS.non_interactive and answers is None, command=command,
                         live=OPTIONS.output is Output.text, from_record=from_record)
    outcome = execute(request, console)
    report = outcome.report
    if report.mode is Mode.PLAN:
        print_plan(console, report)
    else:
        print_report(console, report)
    if OPTIONS.verbose:
        _print_calls(console, outcome.api_calls)
    console.print(Text(f"run {outcome.run_id} · journal {outcome.journal_path}", style="dim"), soft_wrap=True)
    document = report_json(report, run_id=outcome.run_id, environment=outcome.environment, account=outcome.account,
                           region=outcome.region, caller=outcome.caller, api_calls=outcome.api_calls)
    return int(report.exit_code), document


def _run(checklist: Path, mode: str, *, answers: Path | None, yes: bool, preset: dict[str, object],
         command: str, from_record: str = "") -> None:
    code, document = _execute(checklist, mode, answers=answers, yes=yes, preset=preset, command=command,
                              from_record=from_record)
    if OPTIONS.output is Output.json:
        _emit_json(document)
    raise typer.Exit(code)


def _print_calls(console: Any, calls: Any) -> None:
    from rich.table import Table

    table = Table(title="AWS API calls", title_justify="left")
    table.add_column("service.operation")
    table.add_column("calls", justify="right")
    for key, count in sorted((calls.get("by_operation") or {}).items()):
        table.add_row(Text(key), str(count["calls"]))
    table.add_row(Text("total", style="bold"), str(calls.get("calls", "")))
    console.print(table)


DryRun = Annotated[bool, typer.Option("--dry-run", help="Plan only: run every probe, change nothing.")]
Answers = Annotated[Path | None, typer.Option("--answers", help="YAML answers for an unattended run.", exists=True,
                                              dir_okay=False)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Accept routine confirmations (never a protected "
                                                       "environment's typed confirmation).")]


@app.command("install-client")
def install_client(
    org_id: Annotated[str, typer.Argument(help="The organization id, e.g. acme.", autocompletion=_complete_org)],
    dry_run: DryRun = False, answers: Answers = None, yes: Yes = False,
) -> None:
    """Install a client: database, hub vhost, tenant, IAM/S3 checks, client record."""
    from kensium_provision.checklist.catalog import install_checklist

    _run(install_checklist(), "plan" if dry_run else "apply", answers=answers, yes=yes,
         preset={"org_id": org_id}, command=f"install-client {org_id}")


@provision_app.command("shared")
def provision_shared(
    resource: Annotated[str, typer.Argument(help="vpc, rds, rabbitmq, ec2, pos or tenant-manager.",
                                            autocompletion=_complete_resource)],
    dry_run: DryRun = False, answers: Answers = None, yes: Yes = False,
) -> None:
    """Provision one shared resource with its checklist."""
    _run(_shared_checklist(resource), "plan" if dry_run else "apply", answers=answers, yes=yes, preset={},
         command=f"provision shared {resource}")


@check_app.command("shared")
def check_shared(
    resources: Annotated[list[str] | None, typer.Argument(help="Resources to check (default: all).",
                                                          autocompletion=_complete_resource)] = None,
    answers: Answers = None,
) -> None:
    """Verify shared resources read-only; exit 1 on any finding.

    Without --answers every instance kprov made is checked, from the records it keeps in the account;
    checking all of them also sweeps the account for shared resources whose names break a convention.
    """
    from kensium_provision.app.bootstrap import list_shared, read_session
    from kensium_provision.checklist.catalog import find

    chosen = resources or list(SHARED_RESOURCES)
    if len(chosen) > 1 and answers is not None:
        raise typer.BadParameter("--answers goes with one resource", param_hint="--answers")
    console = _console()
    session = read_session(OPTIONS.env, OPTIONS.config) if answers is None else None
    codes: list[int] = []
    runs: list[dict[str, Any]] = []
    for resource in chosen:
        path = _shared_checklist(resource)
        presets: list[dict[str, object]] = [{}]
        if session is not None:
            records = list_shared(session, find(f"shared/{resource}").id)
            if records:
                presets = [dict(r.answers) for r in records]
            elif OPTIONS.non_interactive:
                console.print(Text(f"- {resource}: nothing recorded in this account (provision it with kprov, "
                                   "or pass --answers)", style="dim"), soft_wrap=True)
                continue
        for preset in presets:
            code, document = _execute(path, "check", answers=answers, yes=False, preset=preset,
                                      command=f"check shared {resource}")
            codes.append(code)
            runs.append(document)
    conventions: list[str] = []
    if not resources and session is not None:
        from kensium_provision.naming import rules as naming
        from kensium_provision.naming.sweep import sweep

        conventions = [f.message for f in sweep(session, naming.load_rules())]
        for message in conventions:
            console.print(Text(f" ✗ conventions: {safe(message)}", style="red"), soft_wrap=True)
        console.print(Text(f"Naming conventions: {len(conventions)} finding(s) in the account.",
                           style="bold red" if conventions else "bold green"))
        codes.append(int(ExitCode.FAILED) if conventions else 0)
    code = max(codes) if codes else 0
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "check-shared", "ok": code == 0, "runs": runs,
                    "conventions": conventions})
    raise typer.Exit(code)


@check_app.command("client")
def check_client(
    org_id: Annotated[str | None, typer.Argument(help="The organization id.", autocompletion=_complete_org)] = None,
    all_clients: Annotated[bool, typer.Option("--all", help="Every client with a client record.")] = False,
    answers: Answers = None,
) -> None:
    """Verify one client's install (or all) read-only; exit 1 on any finding."""
    from kensium_provision.checklist.catalog import install_checklist

    if all_clients or org_id is None:
        from kensium_provision.fleet.check import check_all

        if not all_clients:
            raise typer.BadParameter("give an ORG_ID or --all", param_hint="ORG_ID")
        raise typer.Exit(check_all(OPTIONS, _console(), json_output=OPTIONS.output is Output.json))
    _run(install_checklist(), "check", answers=answers, yes=False,
         preset={"org_id": org_id}, command=f"check client {org_id}", from_record="" if answers else org_id)


@app.command("list")
def list_checklists(
    step_types: Annotated[bool, typer.Option("--step-types", help="List the step types instead.")] = False,
) -> None:
    """What checklists (or step types) exist."""
    from kensium_provision.checklist.catalog import entries
    from kensium_provision.checklist.schema import load_checklist

    if step_types:
        _list_step_types()
        return

    rows = []
    for entry in entries():
        try:
            c = load_checklist(entry.path)
            rows.append({"id": c.id, "scope": c.scope, "title": c.title, "steps": len(c.steps), "ref": entry.ref,
                         "path": str(entry.path)})
        except ChecklistError:
            rows.append({"id": entry.id, "scope": entry.scope, "title": "(invalid: run kprov validate)",
                         "steps": 0, "ref": entry.ref, "path": str(entry.path)})
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "list", "checklists": rows})
        return
    from rich.table import Table

    table = Table("id", "also", "steps", "title")
    for r in rows:
        table.add_row(Text(r["id"]), Text(r["ref"]), str(r["steps"]), Text(r["title"]))
    _console().print(table)


def _list_step_types() -> None:
    from kensium_provision.steps import registry

    types = registry()
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "step-types", "step_types": [
            {"name": n, "summary": t.summary, "params": [
                {"name": p.name, "kind": p.kind, "required": p.required, "doc": p.doc, "rule": p.rule or None}
                for p in t.params], "outputs": list(t.outputs)} for n, t in types.items()]})
        return
    console = _console()
    for name, step_type in types.items():
        console.print(Text(name, style="bold"), Text(f" — {step_type.summary}"))
        for p in step_type.params:
            flag = "" if p.required else " (optional)"
            console.print(Text(f"    {p.name}: {p.kind}{flag}  {p.doc}", style="dim"))


@app.command("show")
def show(
    checklist: Annotated[str, typer.Argument(help="A checklist id (rds, client/install) or file.",
                                             autocompletion=_complete_checklist)],
    markdown: Annotated[bool, typer.Option("--markdown", help="Markdown runsheet for a change ticket.")] = False,
) -> None:
    """Render a checklist as a readable runsheet."""
    from kensium_provision.checklist.catalog import find
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.ui.render import runsheet_markdown

    loaded = load_checklist(find(checklist).path)
    text = runsheet_markdown(loaded)
    if markdown:
        sys.stdout.write(text)
        return
    from rich.markdown import Markdown

    _console().print(Markdown(text))


@app.command("validate")
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Checklist files or folders (default: all).")] = None,
) -> None:
    """Offline lint of checklists and naming rules; exit 3 on any issue."""
    from kensium_provision.checklist.validate import validate_paths

    issues, count = validate_paths(paths or [])
    console = _console()
    from kensium_provision.ui.render import print_issues

    print_issues(console, issues)
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "validate", "ok": not issues, "files": count,
                    "issues": [str(i) for i in issues]})
    if issues:
        console.print(Text(f"{len(issues)} issue(s) in {count} file(s).", style="bold red"))
        raise typer.Exit(int(ExitCode.INVALID))
    console.print(Text(f"{count} file(s) valid.", style="bold green"))


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the checklist language (for editors)."""
    from kensium_provision.checklist.schema import json_schema

    _emit_json(json_schema())


@names_app.command("check")
def names_check(rule: Annotated[str, typer.Argument(help="A rule id, e.g. rds-instance.")],
                value: Annotated[str, typer.Argument(help="The name to check.")]) -> None:
    """Check a name against a naming rule (exit 0, or 3 with the broken rule and a valid example)."""
    from kensium_provision.naming import rules as naming

    rules = naming.load_rules()
    if rule not in rules.ids:
        raise typer.BadParameter(f"no rule {rule!r}; rules: {', '.join(sorted(rules.ids))}", param_hint="RULE")
    problems = rules.check(rule, value, {})
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "names.check", "rule": rule, "value": value, "ok": not problems,
                    "problems": problems, "example": rules.example(rule, {})})
    console = _console()
    if problems:
        for p in problems:
            console.print(Text(f"✗ {safe(p)}", style="red"))
        console.print(Text(f"  for example: {rules.example(rule, {})}"))
        raise typer.Exit(int(ExitCode.INVALID))
    console.print(Text(f"✓ {safe(value)} meets {rule}", style="green"))


@names_app.command("show")
def names_show(org_id: Annotated[str, typer.Argument(help="The organization id.")]) -> None:
    """Every name derived for a client."""
    from kensium_provision.naming import rules as naming

    rules = naming.load_rules()
    rules.require("org-id", org_id, {})  # an InputError: the broken rule and an example, exit 3
    names = rules.derived_names(org_id)
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "names.show", "org_id": org_id, "names": names})
        return
    from rich.table import Table

    table = Table("rule", "name", "description", title=Text(f"Names for {org_id}"), title_justify="left")
    for rule_id, name in names.items():
        table.add_row(rule_id, Text(name), Text(rules.rule(rule_id).description.split(". ")[0].strip()))
    _console().print(table)


def main() -> NoReturn:
    """Entry point: run the app and turn every outcome into one of the documented exit codes."""
    command = typer.main.get_command(app)
    code: int
    try:
        result = command.main(args=sys.argv[1:], prog_name="kprov", standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
        if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into a silent Exit(130), returned here
            _say_error("interrupted", code)
    except typer.Exit as done:
        code = int(done.exit_code)
    except typer.Abort as abort:  # typer (vendoring click) turns Ctrl-C at its own prompts into Abort
        interrupted = isinstance(abort.__cause__, KeyboardInterrupt) or abort.__cause__ is None
        code = int(ExitCode.INTERRUPTED if interrupted else ExitCode.ABORTED)
        _say_error("interrupted" if interrupted else "aborted", code)
    except typer.TyperException as usage:  # typer's vendored click: usage errors, bad parameters
        show = getattr(usage, "show", None)
        if show is not None:
            show()
        code = int(getattr(usage, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)
        _json_error(usage, code)
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
        _say_error("interrupted", code)
    except ChecklistError as exc:
        from kensium_provision.ui.render import print_issues

        print_issues(make_console(), exc.issues)
        code = int(exc.exit_code)
        _json_error(exc, code)
    except KprovError as exc:
        code = int(exc.exit_code)
        _say_error(str(exc), code, hint=exc.hint)
        _json_error(exc, code)
    except Exception as exc:  # noqa: BLE001 - the one place a bug becomes a crash report
        code = int(ExitCode.INTERNAL)
        path = _crash_report(exc)
        _say_error(f"internal error ({type(exc).__name__}); a crash report was written to {path}", code,
                   hint="please attach it to a ticket; it contains no secrets")
    sys.exit(code)


def _say_error(message: str, code: int, *, hint: str = "") -> None:
    console = make_console()
    # soft_wrap: paths and commands in errors must stay whole for copy and paste
    console.print(Text(f"kprov: error: {safe(message)}", style="bold red"), soft_wrap=True)
    if hint:
        console.print(Text(f"hint: {safe(hint)}", style="yellow"), soft_wrap=True)


def _wants_json() -> bool:
    """`--output json`, also when parsing failed before the options were read (a usage error)."""
    args = sys.argv[1:]
    pairs = zip(args, args[1:], strict=False)
    return OPTIONS.output is Output.json or "--output=json" in args or ("--output", "json") in pairs


def _json_error(exc: Exception, code: int) -> None:
    if _wants_json():
        issues = [str(i) for i in getattr(exc, "issues", ())]
        _emit_json({"kprov_json": 1, "kind": "error", "exit_code": code, "error": type(exc).__name__,
                    "message": str(exc), "hint": getattr(exc, "hint", "") or None, "issues": issues})


def _crash_report(exc: BaseException) -> str:
    """Versions, platform and a traceback without locals, with every known secret redacted."""
    import platform
    import tempfile
    from datetime import datetime

    from kensium_provision.secret import REDACTOR

    try:
        from kensium_provision.app.config import state_dir

        folder = state_dir() / "crash"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except Exception:  # noqa: BLE001 - a crash report must be written even when the state dir is unusable
        folder = Path(tempfile.gettempdir())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.txt"
    body = "\n".join([
        f"kprov {__version__}", f"python {platform.python_version()} on {platform.platform()}",
        f"command: kprov {' '.join(a if not a.startswith('-') or '=' not in a else a.split('=')[0] + '=…' for a in sys.argv[1:])}",
        "", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    ])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(REDACTOR.redact(body))
    return str(path)


# --- history, audit, resume ------------------------------------------------------------------------

def _state() -> Path:
    from kensium_provision.app.config import state_dir

    return state_dir()


def _run_id(value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", value):
        raise typer.BadParameter(f"{value!r} is not a run id (see `kprov runs list`)", param_hint="RUN_ID")
    if not (_state() / "runs" / f"{value}.jsonl").is_file():
        raise typer.BadParameter(f"no run {value!r} in {_state()} (see `kprov runs list`)", param_hint="RUN_ID")
    return value


def _runs_table(rows: list[dict[str, str]], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("run", no_wrap=True)  # the id the operator copies into `runs show` / `resume`
    table.add_column("started (UTC)", no_wrap=True)
    for name in ("outcome", "mode", "target", "env", "who"):
        table.add_column(name)
    for r in rows:
        style = {"ok": "green", "failed": "red", "interrupted": "yellow", "aborted": "yellow"}.get(r["outcome"], "")
        started = r["started"][:16].replace("T", " ")
        table.add_row(Text(r["run_id"]), Text(started), Text(r["outcome"], style=style), r["mode"],
                      Text(r["target"]), Text(r["environment"]), Text(r["who"]))
    _console().print(table)


@runs_app.command("list")
def runs_list(limit: Annotated[int, typer.Option("--limit", help="Newest N runs.")] = 20) -> None:
    """Past runs, newest first."""
    from kensium_provision.journal.chain import list_runs
    from kensium_provision.journal.history import summary_rows

    rows = summary_rows(list_runs(_state()))[:limit]
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "runs", "runs": rows})
        return
    _runs_table(rows, "Runs")


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="A run id from `kprov runs list`.",
                                                    autocompletion=_complete_run)],
              markdown: Annotated[bool, typer.Option("--markdown", help="Markdown for a change ticket.")] = False) -> None:
    """One run as a readable runsheet."""
    from kensium_provision.journal.chain import read_run
    from kensium_provision.journal.history import run_json, run_markdown

    log = read_run(_state(), _run_id(run_id))
    if OPTIONS.output is Output.json:
        _emit_json(run_json(log))
        return
    text = run_markdown(log)
    if markdown:
        sys.stdout.write(text)
        return
    from rich.markdown import Markdown

    _console().print(Markdown(text))


@audit_app.command("verify")
def audit_verify(run_id: Annotated[str | None, typer.Argument(help="One run (default: every run).",
                                                              autocompletion=_complete_run)] = None) -> None:
    """Check every journal's hash chain and head: edited, removed, reordered or cut records; exit 1."""
    from kensium_provision.journal.chain import verify_all, verify_run

    results = {run_id: verify_run(_state(), _run_id(run_id))} if run_id else verify_all(_state())
    bad = {k: v for k, v in results.items() if v}
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "audit.verify", "ok": not bad, "runs": len(results), "problems": bad})
    console = _console()
    for rid, problems in bad.items():
        for p in problems:
            console.print(Text(f"✗ {rid}: {safe(p)}", style="red"))
    if bad:
        console.print(Text(f"{len(bad)} of {len(results)} journal(s) failed verification.", style="bold red"))
        raise typer.Exit(int(ExitCode.FAILED))
    console.print(Text(f"✓ {len(results)} journal(s) intact.", style="green"))


@audit_app.command("show")
def audit_show(
    client: Annotated[str | None, typer.Option("--client", help="Only this org id.")] = None,
    environment: Annotated[str | None, typer.Option("--environment", help="Only this environment.")] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Only this operator (ARN, user or user@host).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this date (YYYY-MM-DD, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to this date (YYYY-MM-DD, UTC).")] = None,
) -> None:
    """Who did what: runs filtered by client, environment, operator and date."""
    from kensium_provision.journal.chain import filter_runs, list_runs
    from kensium_provision.journal.history import summary_rows

    rows = summary_rows(filter_runs(list_runs(_state()), client=client, env=environment, operator=operator,
                                    since=_moment(since, "--since"), until=_moment(until, "--until", end=True)))
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "audit", "runs": rows})
        return
    _runs_table(rows, "Audit")


def _moment(text: str | None, option: str, *, end: bool = False) -> Any:
    """`2026-11-28` (the day's start, or its end for --until) or an ISO time; UTC unless it says otherwise."""
    if text is None:
        return None
    from datetime import UTC, datetime, timedelta

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)",
                                 param_hint=option) from None
    if end and len(text) == 10:  # a whole day: up to its last moment
        moment += timedelta(days=1) - timedelta(microseconds=1)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("resume")
def resume(run_id: Annotated[str, typer.Argument(help="An interrupted or failed run.", autocompletion=_complete_run)],
           answers: Answers = None, yes: Yes = False) -> None:
    """Continue a run: reuse its answers, re-probe every step, go on at the first one not done."""
    from kensium_provision.app.bootstrap import step_digests
    from kensium_provision.checklist.catalog import entries
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.journal.chain import read_run, resume_point
    from kensium_provision.journal.history import checklist_changes

    log = read_run(_state(), _run_id(run_id))
    point = resume_point(log)
    path = next((e.path for e in entries() if e.id == point.checklist), None)
    if path is None:
        raise KprovError(f"run {run_id} used checklist {point.checklist!r}, which no longer exists")
    console = _console()
    current = load_checklist(path)
    if current.sha256 != point.checklist_sha256:
        changes = checklist_changes(list(log.header.get("steps") or []), step_digests(current))  # type: ignore[arg-type]
        console.print(Text(f"The checklist {point.checklist} changed since run {run_id} began:", style="yellow"))
        for change in changes or ["(only text outside the steps)"]:
            console.print(Text(f"  - {change}"))
        if OPTIONS.non_interactive:
            if not yes:
                from kensium_provision.errors import AbortedError

                raise AbortedError("the checklist changed since the run began; pass --yes to resume anyway")
        else:
            import questionary

            if not questionary.confirm("Resume with today's checklist?", default=False).unsafe_ask():
                raise typer.Exit(int(ExitCode.ABORTED))
    console.print(Text(f"Resuming {run_id}: {len(point.completed)} step(s) done earlier will be re-probed.",
                       style="bold"))
    from kensium_provision.app.bootstrap import RunRequest, execute
    from kensium_provision.model import Mode
    from kensium_provision.ui.render import print_report

    request = RunRequest(checklist=path, mode=Mode.APPLY, env_name=OPTIONS.env or str(log.header.get("environment")),
                         config_path=OPTIONS.config, answers_path=answers, preset=dict(point.answers),
                         assume_yes=yes, interactive=not OPTIONS.non_interactive and answers is None,
                         command=f"resume {run_id}", resume_run_id=run_id, recorded=dict(point.outputs),
                         live=OPTIONS.output is Output.text)
    outcome = execute(request, console)
    print_report(console, outcome.report)
    console.print(Text(f"run {outcome.run_id} (resumes {run_id}) · journal {outcome.journal_path}", style="dim"))
    raise typer.Exit(int(outcome.report.exit_code))


# --- sandbox and locks ------------------------------------------------------------------------------

@sandbox_app.command("start")
def sandbox_start() -> None:
    """Start the sandbox (it also starts on demand)."""
    from kensium_provision.sandbox import server as sandbox

    info = sandbox.ensure_running(_state())
    _console().print(Text(f"sandbox running at {info.endpoint} (pid {info.pid})", style="green"))


@sandbox_app.command("stop")
def sandbox_stop() -> None:
    """Stop the sandbox; its state is lost."""
    from kensium_provision.sandbox import server as sandbox

    stopped = sandbox.stop(_state())
    _console().print(Text("sandbox stopped" if stopped else "sandbox was not running"))


@sandbox_app.command("status")
def sandbox_status() -> None:
    """Is the sandbox running, and where."""
    from kensium_provision.sandbox import server as sandbox

    info = sandbox.status(_state())
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "sandbox", "running": info is not None,
                    "endpoint": info.endpoint if info else None, "rabbitmq_url": info.rabbitmq_url if info else None,
                    "pid": info.pid if info else None, "account_id": "123456789012"})
    if info is None:
        _console().print(Text("sandbox not running (it starts on demand)"))
        raise typer.Exit(int(ExitCode.FAILED))
    _console().print(Text(f"sandbox running at {info.endpoint} (pid {info.pid}, since {info.started}); "
                          f"account 123456789012; RabbitMQ API {info.rabbitmq_url or '-'}", style="green"))


@sandbox_app.command("reset")
def sandbox_reset() -> None:
    """Empty the sandbox: every resource is gone (it is started first if it is not running)."""
    from kensium_provision.sandbox import server as sandbox

    sandbox.ensure_running(_state())
    sandbox.reset(_state())
    _console().print(Text("sandbox reset: empty", style="green"))


def _lock_backend() -> Any:
    from kensium_provision.app import config as config_module

    cfg = config_module.load_config(OPTIONS.config)
    if cfg.locks.backend == "dynamodb":
        from kensium_provision.app.bootstrap import _endpoint
        from kensium_provision.aws.session import AwsSession
        from kensium_provision.model import Mode
        from kensium_provision.records.locks import DynamoLocks

        env = cfg.environment(OPTIONS.env)
        session = AwsSession(env, mode=Mode.APPLY, endpoint_url=_endpoint(env, _state()))
        return DynamoLocks(session.client("dynamodb"), cfg.locks.table)
    from kensium_provision.records.locks import LocalLocks

    return LocalLocks(_state() / "locks")


@lock_app.command("list")
def lock_list() -> None:
    """Locks held now: target, holder, run, since, expiry."""
    locks = _lock_backend().list()
    rows = [{"lock_id": i.lock_id, "target": i.target, "owner": i.owner, "who": i.who, "run_id": i.run_id,
             "created": str(i.created), "expires": str(i.expires)} for i in locks]
    if OPTIONS.output is Output.json:
        _emit_json({"kprov_json": 1, "kind": "locks", "locks": rows})
        return
    from rich.table import Table

    table = Table("lock", "target", "holder", "run", "since", "expires")
    for r in rows:
        table.add_row(*(Text(r[k]) for k in ("lock_id", "target", "who", "run_id", "created", "expires")))
    _console().print(table)


@lock_app.command("break")
def lock_break(lock_id: Annotated[str, typer.Argument(help="The lock id from `kprov lock list`.")]) -> None:
    """Break another operator's lock (typed confirmation; journaled)."""
    backend = _lock_backend()
    held = next((i for i in backend.list() if i.lock_id == lock_id), None)
    if held is None:
        raise typer.BadParameter(f"no lock {lock_id!r} (see `kprov lock list`)", param_hint="LOCK_ID")
    console = _console()
    console.print(Text(f"{held.target} is held by {held.who} ({held.owner}), run {held.run_id}, since {held.created}."))
    if OPTIONS.non_interactive:
        from kensium_provision.errors import AbortedError

        raise AbortedError("breaking a lock needs a terminal: type the lock's target to confirm")
    import questionary

    typed = questionary.text(f"Type {held.target} to break this lock:").unsafe_ask()
    if str(typed).strip() != held.target:
        raise typer.Exit(int(ExitCode.ABORTED))
    broken = backend.break_(lock_id)
    import getpass

    from kensium_provision.app.bootstrap import new_run_id
    from kensium_provision.journal.chain import JournalWriter

    journal = JournalWriter(_state(), new_run_id(), header={
        "who": getpass.getuser(), "account": "", "region": "", "environment": OPTIONS.env or "",
        "checklist": "", "checklist_sha256": "", "mode": "lock-break", "target": broken.target,
        "command": f"lock break {lock_id}"})
    journal.record("lock.broken", lock_id=lock_id, target=broken.target, holder=broken.owner, run=broken.run_id)
    journal.close("ok")
    console.print(Text(f"lock on {broken.target} broken (journaled)", style="yellow"))
