"""Read-only verification: `check shared [RESOURCE...]`, `check client ORG_ID` and `check client --all`.

Every check opens its environment through the bootstrap in check mode: the session is walled, the
guards run first, and nothing is written (not even the journal's copy in CloudWatch Logs).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rich.text import Text

from kensium_provision.app.context import Context, UsageError
from kensium_provision.errors import ChecklistError, ExitCode, InputError
from kensium_provision.model import Mode

__all__ = ["check_all", "check_client", "check_shared"]


def check_shared(context: Context, *, resources: list[str] | None, answers: Path | None) -> int:
    """Without --answers every instance kprov made is checked, from the records it keeps in the account;
    checking all of them also sweeps the account for shared resources whose names break a convention.

    A record that cannot be checked (a value its checklist refuses, control characters in a name) is a
    finding of its own, and the other records are still checked (issue 14 item 10). The last line totals it.
    """
    from kensium_provision.app.bootstrap import connect, list_shared, open_config
    from kensium_provision.app.commands.provision import SHARED_RESOURCES, run_checklist, shared_checklist
    from kensium_provision.checklist.catalog import find
    from kensium_provision.ui import json_output
    from kensium_provision.ui.boundary import shown

    chosen = list(dict.fromkeys(resources or SHARED_RESOURCES))  # `check shared rds rds` checks rds once
    if len(chosen) > 1 and answers is not None:
        raise UsageError("--answers goes with one resource", param_hint="--answers")
    console = context.console()
    session = None
    aged: dict[str, list[str]] = {}  # resource -> its recorded instances, whose credentials are aged
    if answers is None:
        config, env = open_config(context)
        connection = connect(context, config, env, Mode.CHECK)
        session = connection.session
    codes: list[int] = []
    runs: list[dict[str, Any]] = []
    unchecked: list[dict[str, str]] = []
    for resource in chosen:
        path = shared_checklist(resource)
        presets: list[tuple[str, dict[str, object]]] = [("", {})]
        if session is not None:
            checklist_id = find(f"shared/{resource}").id
            records = list_shared(session, checklist_id)
            if records:
                presets = [(f"{checklist_id}/{r.name}", dict(r.answers)) for r in records]
                aged[resource] = [r.name for r in records]
            elif context.non_interactive:
                console.print(Text(f"- {resource}: nothing recorded in this account (provision it with kprov, "
                                   "or pass --answers)", style="dim"), soft_wrap=True)
                continue
        for record, preset in presets:
            try:
                code, document = run_checklist(context, path, Mode.CHECK, answers=answers, yes=False,
                                               preset=preset, command=f"check shared {resource}", console=console)
            except (ChecklistError, InputError) as exc:
                if not record:  # --answers: the operator's own file, refused as any run refuses it
                    raise
                problem = "; ".join([str(exc), *map(str, getattr(exc, "issues", ()))])
                console.print(Text(" ✗ ", style="red") + shown(f"the shared record {record} cannot be checked: "
                                                               f"{problem}", "red"), soft_wrap=True)
                unchecked.append({"resource": resource, "record": record, "problem": problem})
                codes.append(int(ExitCode.FAILED))
                continue
            codes.append(code)
            runs.append(document)
    conventions: list[str] = []
    swept = not resources and session is not None
    if swept:
        from kensium_provision.naming.loader import load_rules
        from kensium_provision.naming.sweep import sweep

        conventions = [f.message for f in sweep(session, load_rules())]
        for message in conventions:
            console.print(Text(" ✗ conventions: ", style="red") + shown(message, "red"), soft_wrap=True)
        codes.append(int(ExitCode.FAILED) if conventions else 0)
    rotation: list[str] | None = None  # None: not aged (a password manager that keeps no date kprov reads)
    if session is not None and config.vault.backend == "secretsmanager":  # other managers keep no date kprov reads
        from kensium_provision.app.bootstrap import run_settings
        from kensium_provision.fleet.rotation import max_age_days, shared_findings

        rotation = shared_findings(session.client("secretsmanager"), env.name, aged,
                                   max_age_days=max_age_days(run_settings(connection)))
        for message in rotation:
            console.print(Text(" ✗ rotation: ", style="red") + shown(message, "red"), soft_wrap=True)
        codes.append(int(ExitCode.FAILED) if rotation else 0)
    code = max(codes) if codes else 0
    console.print(Text(_shared_total(chosen, runs, unchecked, conventions if swept else None, len(rotation or ())),
                       style="bold red" if code else "bold green"), soft_wrap=True)
    if context.json:
        json_output.emit(json_output.check_shared(ok=code == 0, runs=runs, conventions=conventions,
                                                  unchecked=unchecked, rotation=rotation))
    return code


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _shared_total(resources: list[str], runs: list[dict[str, Any]], unchecked: list[dict[str, str]],
                  conventions: list[str] | None, due: int = 0) -> str:
    """`Check shared: 6 resources, 4 instances checked, 3 findings (1 record could not be checked), ...`."""
    findings = sum(len(step.get("findings") or ()) for run in runs for step in run.get("steps", ()))
    total = _count(findings + len(unchecked), "finding")
    if unchecked:
        total += f" ({_count(len(unchecked), 'record')} could not be checked)"
    parts = [_count(len(resources), "resource"), f"{_count(len(runs), 'instance')} checked", total]
    if conventions is not None:
        parts.append(_count(len(conventions), "naming convention finding"))
    if due:
        parts.append(f"{_count(due, 'credential')} due for rotation")
    return "Check shared: " + ", ".join(parts) + "."


def check_client(context: Context, *, org_id: str | None, all_clients: bool, answers: Path | None) -> int:
    """One client's install (from its client record, or --answers), or every recorded client."""
    if all_clients:
        return check_all(context)
    if org_id is None:
        raise UsageError("give an ORG_ID or --all", param_hint="ORG_ID")
    from kensium_provision.app.commands.provision import run_checklist
    from kensium_provision.checklist.catalog import install_checklist
    from kensium_provision.ui import json_output

    code, document = run_checklist(context, install_checklist(), Mode.CHECK, answers=answers, yes=False,
                                   preset={"org_id": org_id}, command=f"check client {org_id}",
                                   from_record="" if answers else org_id)
    if context.json:
        json_output.emit(document)
    return code


def check_all(context: Context) -> int:
    """`check client --all`: the fleet check (`fleet.check`), opened, journaled and shown like any check."""
    from kensium_provision.app.bootstrap import connect, new_run_id, open_config, open_journal, run_settings
    from kensium_provision.checklist.catalog import install_checklist
    from kensium_provision.fleet.check import FleetRequest, check_fleet
    from kensium_provision.ui import json_output
    from kensium_provision.ui.fleet import print_fleet

    console = context.console()
    config, env = open_config(context)
    connection = connect(context, config, env, Mode.CHECK)
    session, identity = connection.session, connection.identity
    run_id = new_run_id()
    install = install_checklist()
    journal, journal_path = open_journal(connection, run_id, mode=Mode.CHECK, header={
        "checklist": "install-client", "checklist_sha256": hashlib.sha256(install.read_bytes()).hexdigest(),
        "mode": Mode.CHECK.value, "target": "client:*", "command": "check client --all", "client": None})
    operator = None
    if context.interactive and config.vault.backend == "manual":
        from kensium_provision.app.bootstrap import open_operator

        operator = open_operator(console, interactive=True)  # the manual vault asks for each broker's admin
    request = FleetRequest(env=env, session=session, settings=run_settings(connection),
                           vault_backend=config.vault.backend, vault_settings=config.vault.settings(),
                           environments=tuple(config.environments), operator=operator, journal=journal,
                           run_id=run_id, checklist=install)
    outcome = "failed"
    try:
        report = check_fleet(request)
        outcome = "ok" if report.ok else "failed"
    except KeyboardInterrupt:
        outcome = "interrupted"
        journal.record("interrupted", where="fleet")
        raise
    finally:
        journal.close(outcome, api_calls=session.counter.as_dict())
    print_fleet(console, report, verbose=bool(context.verbose))
    console.print(Text(f"run {run_id} · journal {journal_path}", style="dim"), soft_wrap=True)
    if context.json:
        json_output.emit(json_output.fleet(report, run_id=run_id, environment=env.name, account=identity.account,
                                           region=env.region, caller=identity.arn))
    return int(report.exit_code)
