"""The kprov command line: the typer declarations of every command, and `main`.

Declarations only (design.md section 9): each command states its arguments and help, then hands
them to its function in `app.commands`, found in the one lazy table `app.commands.COMMANDS`. typer
lives here only, and no command module is imported before its command runs, so `kprov --help` and
`kprov validate` start fast. The global options become an `app.context.Context` (no global state);
`main(argv, context)` runs the command line in-process as a console script would, and returns the
exit code, mapped from errors in one place (`app.outcome`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from kensium_provision import __version__
from kensium_provision.app import commands
from kensium_provision.app.context import Context, Output, UsageError
from kensium_provision.errors import ExitCode

__all__ = ["app", "main"]

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
iam_app = typer.Typer(help="The AWS permissions kprov needs.", no_args_is_help=True)
for sub, name in ((provision_app, "provision"), (check_app, "check"), (runs_app, "runs"), (audit_app, "audit"),
                  (names_app, "names"), (sandbox_app, "sandbox"), (lock_app, "lock"), (iam_app, "iam")):
    app.add_typer(sub, name=name)


def _completion(kind: str) -> Callable[[str], list[str]]:
    def complete(incomplete: str) -> list[str]:
        from kensium_provision.app.completion import complete as found

        return found(kind, incomplete)

    return complete


def _run(ctx: typer.Context, name: str, **params: object) -> int:
    """Run command `name` (`app.commands.COMMANDS`) in this invocation's context; its exit code."""
    root = ctx.find_root().obj
    context = root if isinstance(root, Context) else Context()
    try:
        return commands.invoke(name, context, **params)
    except UsageError as exc:  # shown as click shows a bad parameter: the usage line, then the error
        raise typer.BadParameter(str(exc), ctx=ctx, param_hint=exc.param_hint or None) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kprov {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option("--env", help="Environment from the config (default: sandbox).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Config file (else KPROV_CONFIG, else the user config dir).")] = None,
    output: Annotated[Output, typer.Option(
        "--output", help="text for people, json for machines (on stdout).")] = Output.text,
    non_interactive: Annotated[bool, typer.Option(
        "--non-interactive", help="Never prompt (implied without a terminal).")] = False,
    verbose: Annotated[int, typer.Option(
        "-v", "--verbose", count=True, help="-v: API call counts; -v -v: debug logs (redacted).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, expose_value=False,
                                          help="Show the version and exit.")] = False,
) -> None:
    base = ctx.obj if isinstance(ctx.obj, Context) else Context()
    ctx.obj = base.with_options(env=env, config=config, output=output, non_interactive=non_interactive,
                                verbose=verbose)


DryRun = Annotated[bool, typer.Option("--dry-run", help="Plan only: run every probe, change nothing.")]
Answers = Annotated[Path | None, typer.Option("--answers", help="YAML answers for an unattended run.", exists=True,
                                              dir_okay=False)]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Accept routine confirmations (never a protected "
                                                       "environment's typed confirmation).")]
Preflight = Annotated[bool, typer.Option("--preflight", help="With --dry-run: also ask IAM whether the apply "
                                                              "would be allowed (an apply always asks).")]
SkipPreflight = Annotated[bool, typer.Option("--skip-preflight", help="Apply without first asking IAM whether "
                                                                      "every step is allowed (journaled).")]
Step = Annotated[bool, typer.Option("--step", help="Ask Y/n before each step instead of showing the whole plan "
                                                "and asking once.")]
Out = Annotated[Path | None, typer.Option("--out", metavar="PLAN", dir_okay=False,
                                          help="With --dry-run: save the plan to PLAN (JSON) for review, "
                                               "`kprov approve PLAN` and `kprov apply PLAN`.")]
PlanFile = Annotated[Path, typer.Argument(metavar="PLAN", exists=True, dir_okay=False,
                                          help="A plan saved with --dry-run --out PLAN.")]
RunId = Annotated[str, typer.Argument(help="A run id from `kprov runs list`.", autocompletion=_completion("run"))]


@app.command("install-client")
def install_client(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Argument(help="The organization id, e.g. acme.",
                                          autocompletion=_completion("org"))],
    dry_run: DryRun = False, answers: Answers = None, yes: Yes = False, preflight: Preflight = False,
    skip_preflight: SkipPreflight = False, step: Step = False, out: Out = None,
) -> int:
    """Install a client: database, hub vhost, tenant, IAM/S3 checks, client record."""
    return _run(ctx, "install-client", org_id=org_id, dry_run=dry_run, answers=answers, yes=yes, preflight=preflight,
                skip_preflight=skip_preflight, step=step, out=out)


@app.command("remove-client")
def remove_client(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Argument(help="The organization id, e.g. acme.",
                                          autocompletion=_completion("org"))],
    dry_run: DryRun = False, answers: Answers = None, yes: Yes = False, preflight: Preflight = False,
    skip_preflight: SkipPreflight = False,
) -> int:
    """Remove a client: final backup, then its database, vhost, keys, secrets, DNS; the record is kept, removed.

    Every change destroys, so the org id is typed first on every environment (--yes never does it).
    """
    return _run(ctx, "remove-client", org_id=org_id, dry_run=dry_run, answers=answers, yes=yes, preflight=preflight,
                skip_preflight=skip_preflight)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    owner: Annotated[str, typer.Argument(metavar="ORG_ID|shared", help="A client's org id (or shared).",
                                         autocompletion=_completion("org"))],
    resource: Annotated[str, typer.Argument(help="A client's: sql (its SQL login), rabbitmq (its hub user) or iam "
                                                 "(its access key); shared: rds (an instance's master password) or "
                                                 "rabbitmq (a broker's admin).")],
    credential: Annotated[str | None, typer.Option("--credential", help="Which credential of RESOURCE (default its "
                                                   "first): iam access-key or old-key (delete the inactive old key "
                                                   "after its grace), rds master, rabbitmq admin (shared).")] = None,
    dry_run: DryRun = False, answers: Answers = None, yes: Yes = False, preflight: Preflight = False,
    skip_preflight: SkipPreflight = False,
) -> int:
    """Rotate a credential: the new value is stored first, then set, then checked; the record follows."""
    return _run(ctx, "rotate", owner=owner, resource=resource, credential=credential, dry_run=dry_run,
                answers=answers, yes=yes, preflight=preflight, skip_preflight=skip_preflight)


@provision_app.command("shared")
def provision_shared(
    ctx: typer.Context,
    resource: Annotated[str, typer.Argument(help="vpc, rds, rabbitmq, ec2, pos or tenant-manager.",
                                            autocompletion=_completion("resource"))],
    dry_run: DryRun = False, answers: Answers = None, yes: Yes = False, preflight: Preflight = False,
    skip_preflight: SkipPreflight = False, step: Step = False, out: Out = None,
) -> int:
    """Provision one shared resource with its checklist."""
    return _run(ctx, "provision shared", resource=resource, dry_run=dry_run, answers=answers, yes=yes,
                preflight=preflight, skip_preflight=skip_preflight, step=step, out=out)


@check_app.command("shared")
def check_shared(
    ctx: typer.Context,
    resources: Annotated[list[str] | None, typer.Argument(help="Resources to check (default: all).",
                                                          autocompletion=_completion("resource"))] = None,
    answers: Answers = None,
) -> int:
    """Verify shared resources read-only; exit 1 on any finding.

    Without --answers every instance kprov made is checked, from the records it keeps in the account;
    checking all of them also sweeps the account for shared resources whose names break a convention.
    """
    return _run(ctx, "check shared", resources=resources, answers=answers)


@check_app.command("client")
def check_client(
    ctx: typer.Context,
    org_id: Annotated[str | None, typer.Argument(help="The organization id.",
                                                 autocompletion=_completion("org"))] = None,
    all_clients: Annotated[bool, typer.Option("--all", help="Every client with a client record.")] = False,
    answers: Answers = None,
) -> int:
    """Verify one client's install (or all) read-only; exit 1 on any finding."""
    return _run(ctx, "check client", org_id=org_id, all_clients=all_clients, answers=answers)


@app.command("fleet")
def fleet(
    ctx: typer.Context,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the overview as a static HTML page.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the overview as CSV.")] = None,
) -> int:
    """The fleet at a glance, read-only: every client, shared capacity; exit 1 on any finding."""
    return _run(ctx, "fleet", html=html, csv_file=csv_file)


@app.command("list")
def list_checklists(
    ctx: typer.Context,
    step_types: Annotated[bool, typer.Option("--step-types", help="List the step types instead.")] = False,
) -> int:
    """What checklists (or step types) exist."""
    return _run(ctx, "list", step_types=step_types)


@app.command("show")
def show(
    ctx: typer.Context,
    checklist: Annotated[str, typer.Argument(help="A checklist id (rds, client/install) or file, or a saved plan.",
                                             autocompletion=_completion("checklist"))],
    markdown: Annotated[bool, typer.Option("--markdown", help="Markdown for a change ticket.")] = False,
) -> int:
    """Render a checklist as a readable runsheet, or a saved plan (PLAN.json) for review."""
    return _run(ctx, "show", checklist=checklist, markdown=markdown)


@app.command("apply")
def apply(ctx: typer.Context, plan: PlanFile, answers: Annotated[Path | None, typer.Option(
        "--answers", exists=True, dir_okay=False, help="Unattended: only confirm: (work by hand) and "
                                                       "confirm_target: (a protected environment).")] = None,
          skip_preflight: SkipPreflight = False) -> int:
    """Apply a saved plan: every step re-probed first; refused, naming the step, if anything differs from it."""
    return _run(ctx, "apply", plan=plan, answers=answers, skip_preflight=skip_preflight)


@app.command("approve")
def approve(ctx: typer.Context, plan: PlanFile) -> int:
    """Approve a saved plan as this caller (kept in its account): another identity may then apply it."""
    return _run(ctx, "approve", plan=plan)


@app.command("validate")
def validate(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="Checklist files or folders (default: all).")] = None,
) -> int:
    """Offline lint of checklists and naming rules; exit 3 on any issue."""
    return _run(ctx, "validate", paths=paths)


@app.command("schema")
def schema(ctx: typer.Context) -> int:
    """Print the JSON Schema of the checklist language (for editors)."""
    return _run(ctx, "schema")


@names_app.command("check")
def names_check(ctx: typer.Context, rule: Annotated[str, typer.Argument(help="A rule id, e.g. rds-instance.")],
                value: Annotated[str, typer.Argument(help="The name to check.")]) -> int:
    """Check a name against a naming rule (exit 0, or 3 with the broken rule and a valid example)."""
    return _run(ctx, "names check", rule=rule, value=value)


@names_app.command("show")
def names_show(ctx: typer.Context, org_id: Annotated[str, typer.Argument(help="The organization id.")]) -> int:
    """Every name derived for a client."""
    return _run(ctx, "names show", org_id=org_id)


@names_app.command("free")
def names_free(ctx: typer.Context, org_id: Annotated[str, typer.Argument(help="A removed client's org id.")]) -> int:
    """Free a removed client's org id on purpose (typed confirmation; journaled; the record is kept)."""
    return _run(ctx, "names free", org_id=org_id)


@runs_app.command("list")
def runs_list(ctx: typer.Context, limit: Annotated[int, typer.Option("--limit", help="Newest N runs.")] = 20) -> int:
    """Past runs, newest first."""
    return _run(ctx, "runs list", limit=limit)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: RunId,
              markdown: Annotated[bool, typer.Option("--markdown", help="Markdown for a change ticket.")] = False,
              ) -> int:
    """One run as a readable runsheet."""
    return _run(ctx, "runs show", run_id=run_id, markdown=markdown)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, run_id: Annotated[str | None, typer.Argument(
        help="One run (default: every run).", autocompletion=_completion("run"))] = None) -> int:
    """Check every journal's hash chain and head: edited, removed, reordered or cut records; exit 1."""
    return _run(ctx, "audit verify", run_id=run_id)


@audit_app.command("show")
def audit_show(
    ctx: typer.Context,
    client: Annotated[str | None, typer.Option("--client", help="Only this org id.")] = None,
    environment: Annotated[str | None, typer.Option("--environment", help="Only this environment.")] = None,
    operator: Annotated[str | None, typer.Option(
        "--operator", help="Only this operator (ARN, user or user@host).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this date (YYYY-MM-DD, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to this date (YYYY-MM-DD, UTC).")] = None,
) -> int:
    """Who did what: runs filtered by client, environment, operator and date."""
    return _run(ctx, "audit show", client=client, environment=environment, operator=operator, since=since,
                until=until)


@app.command("resume")
def resume(ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="An interrupted or failed run.",
                                                                     autocompletion=_completion("run"))],
           answers: Answers = None, yes: Yes = False,
           change: Annotated[list[str] | None, typer.Option(
               "--change", metavar="INPUT=VALUE",
               help="Correct one journaled answer (repeatable), checked like a fresh answer.")] = None,
           skip_preflight: SkipPreflight = False) -> int:
    """Continue a run: reuse its answers (--answers and --change correct them), re-probe every step, go on at the
    first one not done. A plan, a check or a journal that fails `audit verify` is not resumed."""
    return _run(ctx, "resume", run_id=run_id, answers=answers, yes=yes, change=tuple(change or ()),
                skip_preflight=skip_preflight)


@app.command("undo")
def undo(ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="The run whose changes to remove.",
                                                                   autocompletion=_completion("run"))],
         dry_run: DryRun = False, answers: Answers = None, yes: Yes = False, out: Out = None,
         preflight: Preflight = False, skip_preflight: SkipPreflight = False) -> int:
    """Remove what a run created, newest first, and only that; refused if any of it changed since (exit 3).

    It destroys, so the target's name is typed first on every environment (--yes never does it). Run it
    again to continue an undo that stopped. Where approval is required: `--dry-run --out PLAN`, a colleague's
    `kprov approve PLAN`, then `kprov apply PLAN`."""
    return _run(ctx, "undo", run_id=run_id, dry_run=dry_run, answers=answers, yes=yes, out=out,
                preflight=preflight, skip_preflight=skip_preflight)


@sandbox_app.command("start")
def sandbox_start(ctx: typer.Context) -> int:
    """Start the sandbox (it also starts on demand)."""
    return _run(ctx, "sandbox start")


@sandbox_app.command("stop")
def sandbox_stop(ctx: typer.Context) -> int:
    """Stop the sandbox; its state is lost."""
    return _run(ctx, "sandbox stop")


@sandbox_app.command("status")
def sandbox_status(ctx: typer.Context) -> int:
    """Is the sandbox running, and where."""
    return _run(ctx, "sandbox status")


@sandbox_app.command("reset")
def sandbox_reset(ctx: typer.Context) -> int:
    """Empty the sandbox: every resource is gone (it is started first if it is not running)."""
    return _run(ctx, "sandbox reset")


@lock_app.command("list")
def lock_list(ctx: typer.Context) -> int:
    """Locks held now: target, holder, run, since, expiry."""
    return _run(ctx, "lock list")


@lock_app.command("break")
def lock_break(ctx: typer.Context,
               lock_id: Annotated[str, typer.Argument(help="The lock id from `kprov lock list`.")]) -> int:
    """Break another operator's lock (guards first; typed confirmation; journaled)."""
    return _run(ctx, "lock break", lock_id=lock_id)


@iam_app.command("policy")
def iam_policy(
    ctx: typer.Context,
    checklists: Annotated[list[str] | None, typer.Argument(help="Checklist ids or files (default: all).",
                                                           autocompletion=_completion("checklist"))] = None,
    mode: Annotated[str, typer.Option("--mode", help="plan, check, apply or undo (`kprov undo` of their runs: "
                                              "not part of apply, granted on its own).")] = "apply",
) -> int:
    """Print the least-privilege IAM policy (JSON for iam:CreatePolicy) of checklists in a mode."""
    return _run(ctx, "iam policy", checklists=checklists, mode=mode)


# --- the entry point --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, context: Context | None = None) -> int:
    """Run the command line (`argv`, else the process's) and return one of the documented exit codes.

    `context` gives the process edges (tests: how the sandbox is reached); the options come from `argv`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    base = replace(context or Context(), argv=tuple(args))
    command = typer.main.get_command(app)
    code: int
    try:
        result = command.main(args=_hoisted(command, args), prog_name="kprov", standalone_mode=False, obj=base)
        code = int(result) if isinstance(result, int) else 0
        if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into a silent Exit(130), returned here
            from kensium_provision.app.outcome import say_error

            say_error("interrupted")
    except typer.Exit as done:
        code = int(done.exit_code)
    except typer.Abort as abort:  # typer (vendoring click) turns Ctrl-C at its own prompts into Abort
        from kensium_provision.app.outcome import say_error

        interrupted = isinstance(abort.__cause__, KeyboardInterrupt) or abort.__cause__ is None
        code = int(ExitCode.INTERRUPTED if interrupted else ExitCode.ABORTED)
        say_error("interrupted" if interrupted else "aborted")
    except typer.TyperException as usage:  # typer's vendored click: usage errors, bad parameters
        from kensium_provision.app.outcome import json_error

        show = getattr(usage, "show", None)
        if show is not None:
            show()
        code = int(getattr(usage, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)
        json_error(usage, code, base)
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - the one place a failure becomes an exit code
        from kensium_provision.app.outcome import exit_code_of

        code = exit_code_of(exc, base)
    return code


def _arity(command: Any) -> dict[str, int]:
    """Each option name of `command` -> how many values follow it (0 for a flag or a counter)."""
    return {name: 0 if (param.is_flag or param.count) else int(param.nargs)
            for param in command.params if param.param_type_name == "option"
            for name in (*param.opts, *param.secondary_opts)}


def _hoisted(root: Any, args: Sequence[str]) -> list[str]:
    """`args` with the global options given after a command (`kprov install-client acme --non-interactive`)
    moved to the front, where click reads them. A command's own options win over a global one of the same
    name; every other argument keeps its place; `--` ends the options."""
    options = _arity(root)
    front: list[str] = []
    rest: list[str] = []
    command: Any = root
    own: dict[str, int] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        name = arg.split("=", 1)[0]
        cluster = (arg.startswith("-") and not arg.startswith("--") and len(arg) > 2
                   and all(options.get(f"-{letter}") == 0 for letter in arg[1:]))  # -vv
        if name in own or (name not in options and not cluster):
            width = 1 if "=" in arg or name not in own else 1 + own[name]
            rest.extend(args[index:index + width])
            sub = None if arg.startswith("-") else getattr(command, "commands", {}).get(arg)
            if sub is not None:
                command, own = sub, _arity(sub)
            index += width
            continue
        width = 1 if "=" in arg or cluster else 1 + options[name]
        front.extend(args[index:index + width])
        index += width
    return front + rest
