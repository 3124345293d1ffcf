"""Offline commands about the checklists themselves: `list`, `show`, `validate`, `schema`."""

from __future__ import annotations

from pathlib import Path

from kensium_provision.app.context import Context
from kensium_provision.errors import ChecklistError, ExitCode

__all__ = ["list_checklists", "schema", "show", "validate"]


def list_checklists(context: Context, *, step_types: bool) -> int:
    """What checklists (or step types) exist."""
    from rich.table import Table
    from rich.text import Text

    from kensium_provision.checklist.catalog import entries
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.ui import json_output

    if step_types:
        return _list_step_types(context)
    rows: list[dict[str, object]] = []
    for entry in entries():
        try:
            c = load_checklist(entry.path)
            rows.append({"id": c.id, "scope": c.scope, "title": c.title, "steps": len(c.steps), "ref": entry.ref,
                         "path": str(entry.path)})
        except ChecklistError:
            rows.append({"id": entry.id, "scope": entry.scope, "title": "(invalid: run kprov validate)",
                         "steps": 0, "ref": entry.ref, "path": str(entry.path)})
    if context.json:
        json_output.emit(json_output.checklists(rows))
        return 0
    table = Table("id", "also", "steps", "title")
    for r in rows:
        table.add_row(Text(str(r["id"])), Text(str(r["ref"])), str(r["steps"]), Text(str(r["title"])))
    context.console().print(table)
    return 0


def _list_step_types(context: Context) -> int:
    from rich.text import Text

    from kensium_provision.steps import registry
    from kensium_provision.ui import json_output

    types = registry()
    if context.json:
        json_output.emit(json_output.step_types(types))
        return 0
    console = context.console()
    for name, step_type in types.items():
        console.print(Text(name, style="bold"), Text(f" — {step_type.summary}"))
        for p in step_type.params:
            flag = "" if p.required else " (optional)"
            console.print(Text(f"    {p.name}: {p.kind}{flag}  {p.doc}", style="dim"))
    return 0


def show(context: Context, *, checklist: str, markdown: bool) -> int:
    """Render a checklist as a readable runsheet (Markdown for a change ticket)."""
    from kensium_provision.checklist.catalog import find
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.ui.boundary import write_plain
    from kensium_provision.ui.render import runsheet_markdown

    text = runsheet_markdown(load_checklist(find(checklist).path))
    if markdown:
        write_plain(text)  # a checklist given by path is outside text: neutralised like all output
        return 0
    from rich.markdown import Markdown

    context.console().print(Markdown(text))
    return 0


def validate(context: Context, *, paths: list[Path] | None) -> int:
    """Offline lint of checklists and naming rules; exit 3 on any issue."""
    from rich.text import Text

    from kensium_provision.checklist import validate as validation
    from kensium_provision.ui import json_output
    from kensium_provision.ui.render import print_issues

    issues, count = validation.validate_paths(paths or [])
    console = context.console()
    print_issues(console, issues)
    if context.json:
        json_output.emit(json_output.validate(issues, count))
    if issues:
        console.print(Text(f"{len(issues)} issue(s) in {count} file(s).", style="bold red"))
        return int(ExitCode.INVALID)
    console.print(Text(f"{count} file(s) valid.", style="bold green"))
    return 0


def schema(context: Context) -> int:
    """The JSON Schema of the checklist language (for editors), on stdout."""
    from kensium_provision.checklist.schema import json_schema
    from kensium_provision.ui import json_output

    json_output.emit(json_schema())
    return 0
