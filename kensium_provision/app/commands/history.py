"""What the journal says: `runs list`, `runs show`, `audit verify`, `audit show` (offline, read-only)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.app.context import Context, UsageError
from kensium_provision.errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["anchors", "audit_show", "audit_verify", "known_run", "moment", "runs_list", "runs_show", "state"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")


def state() -> Path:
    from kensium_provision.app.config import state_dir

    return state_dir()


def known_run(value: str) -> str:
    """`value` if it is the id of a run in the journal; a usage error otherwise."""
    if not _RUN_ID.fullmatch(value):
        raise UsageError(f"{value!r} is not a run id (see `kprov runs list`)", param_hint="RUN_ID")
    if not (state() / "runs" / f"{value}.jsonl").is_file():
        raise UsageError(f"no run {value!r} in {state()} (see `kprov runs list`)", param_hint="RUN_ID")
    return value


def moment(text: str | None, option: str, *, end: bool = False) -> datetime | None:
    """`2026-11-28` (the day's start, or its end for --until) or an ISO time; UTC unless it says otherwise."""
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)",
                         param_hint=option) from None
    if end and len(text) == 10:  # a whole day: up to its last moment
        found += timedelta(days=1) - timedelta(microseconds=1)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _runs_table(console: Console, rows: list[dict[str, str]], title: str) -> None:
    from rich.table import Table
    from rich.text import Text

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
    console.print(table)


def runs_list(context: Context, *, limit: int) -> int:
    """Past runs, newest first."""
    from kensium_provision.journal.history import summary_rows
    from kensium_provision.journal.reader import list_runs
    from kensium_provision.ui import json_output

    rows = summary_rows(list_runs(state()))[:limit]
    if context.json:
        json_output.emit(json_output.runs(rows))
        return 0
    _runs_table(context.console(), rows, "Runs")
    return 0


def runs_show(context: Context, *, run_id: str, markdown: bool) -> int:
    """One run as a readable runsheet."""
    from kensium_provision.journal.history import run_json, run_markdown
    from kensium_provision.journal.reader import read_run, run_evidence
    from kensium_provision.ui import json_output
    from kensium_provision.ui.boundary import write_plain
    from kensium_provision.ui.render import evidence_markdown

    log = read_run(state(), known_run(run_id))
    evidence = run_evidence(log)  # what the operator stated at manual steps: part of the runsheet
    if context.json:
        json_output.emit({**run_json(log), "evidence": [{"step": e.step, "id": e.id, "prompt": e.prompt,
                                                          "value": e.value} for e in evidence]})
        return 0
    text = run_markdown(log) + ("\n" + evidence_markdown(evidence) if evidence else "")
    if markdown:
        write_plain(text)  # the journal's text, neutralised like everything kprov writes for a person
        return 0
    from rich.markdown import Markdown

    context.console().print(Markdown(text))
    return 0


def audit_verify(context: Context, *, run_id: str | None) -> int:
    """Every journal's hash chain and head, and the state dir's ledger (runs deleted or rewritten whole),
    with the anchor key when the config names one: what is and is not found is in `journal.verify`; exit 1."""
    from rich.text import Text

    from kensium_provision.journal.verify import verify_all, verify_run
    from kensium_provision.ui import json_output
    from kensium_provision.ui.render import safe

    key, shipped = anchors(context)
    if run_id:
        results = {run_id: verify_run(state(), known_run(run_id), key=key, shipped=shipped)}
    else:
        import socket

        results = verify_all(state(), key=key, shipped=shipped, host=socket.gethostname())
    bad = {k: v for k, v in results.items() if v}
    if context.json:
        json_output.emit(json_output.audit_verify(results))
    console = context.console()
    for rid, problems in bad.items():
        for p in problems:
            console.print(Text(f"✗ {rid}: {safe(p)}", style="red"))
    if bad:
        console.print(Text(f"{len(bad)} of {len(results)} journal(s) failed verification.", style="bold red"))
        return int(ExitCode.FAILED)
    anchored = ", anchored by the key" if key is not None else ""
    console.print(Text(f"✓ {len(results)} journal(s) intact{anchored}.", style="green"))
    return 0


def anchors(context: Context) -> tuple[bytes | None, dict[str, list[dict[str, Any]]] | None]:
    """What the config anchors the journal with outside this machine: the ledger's HMAC key
    (`journal.anchor_key`, from the password manager) and the CloudWatch Logs copy
    (`journal.cloudwatch_log_group`). Both read through a check-mode (read-only) session after the guards;
    with neither configured, verify stays offline: (None, None)."""
    from kensium_provision.app.bootstrap import anchor_key, connect, open_config, open_operator, open_vault
    from kensium_provision.journal.shipping import read_shipped
    from kensium_provision.model import Mode

    config, env = open_config(context)
    entry, group = config.journal.anchor_key, config.journal.cloudwatch_log_group
    if not entry and not group:
        return None, None
    connection = connect(context, config, env, Mode.CHECK)
    operator = open_operator(context.console(), interactive=context.interactive)
    key = anchor_key(config, open_vault(connection, operator)) if entry else None
    return key, read_shipped(connection.session.client("logs"), group) if group else None


def audit_show(context: Context, *, client: str | None, environment: str | None, operator: str | None,
               since: str | None, until: str | None) -> int:
    """Who did what: runs filtered by client, environment, operator and date."""
    from kensium_provision.journal.history import summary_rows
    from kensium_provision.journal.reader import filter_runs, list_runs
    from kensium_provision.ui import json_output

    rows = summary_rows(filter_runs(list_runs(state()), client=client, env=environment, operator=operator,
                                    since=moment(since, "--since"), until=moment(until, "--until", end=True)))
    if context.json:
        json_output.emit(json_output.runs(rows, kind="audit"))
        return 0
    _runs_table(context.console(), rows, "Audit")
    return 0
