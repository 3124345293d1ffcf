"""`kprov fleet --html FILE`: the fleet at a glance as one static page (issue 18.4).

No JavaScript and no network reference (no font, image or style sheet from elsewhere): the page opens
the same from a file, offline. Every value comes from client records or AWS, so every one is escaped.
The overview is `fleet.model.FleetOverview`; the fleet layer sits above this one, so it is described by
the protocols below instead of imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Protocol

__all__ = ["render_html"]


class RowView(Protocol):
    def as_json(self) -> dict[str, object]: ...


class CapacityView(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def used(self) -> int | None: ...

    @property
    def limit(self) -> int | None: ...

    @property
    def basis(self) -> str: ...

    @property
    def percent(self) -> int | None: ...

    @property
    def unit(self) -> str: ...

    @property
    def near_limit(self) -> bool: ...


class OverviewView(Protocol):
    @property
    def clients(self) -> Sequence[RowView]: ...

    @property
    def capacity(self) -> Sequence[CapacityView]: ...

    @property
    def generated(self) -> str: ...

    @property
    def due(self) -> Sequence[RowView]: ...

    @property
    def max_age_days(self) -> int: ...


_CLIENT_COLUMNS = ("org_id", "status", "rds_instance", "ec2_host", "broker", "pos_version", "last_check", "findings")

_DUE_COLUMNS = ("org_id", "credential", "kind", "changed", "age_days")

_CSS = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}.bar{width:200px;background:#eee;height:12px}
.fill{height:12px;background:#3a7}.near .fill{background:#d90}.full .fill{background:#c33}.bad{color:#c33}"""


def _cell(value: object) -> str:
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _capacity_row(c: CapacityView) -> str:
    percent = c.percent
    bar = "" if percent is None else (f'<div class="bar" role="meter" aria-valuenow="{percent}">'
                                      f'<div class="fill" style="width:{percent}%"></div></div>')
    state = "full" if percent is not None and percent >= 90 else "near" if c.near_limit else ""
    attributes = (f' class="{state}"' if state else "") + (' data-near="true"' if c.near_limit else "")
    unit = f" {c.unit}" if c.unit else ""
    used = "unknown" if c.used is None else f"{c.used}{unit}"
    limit = "" if c.limit is None else f"{c.limit}{unit}"
    use = "" if percent is None else f"{percent}%" + (" near the limit" if c.near_limit else "")
    return (f'<tr{attributes} data-resource="{escape(c.name)}">{_cell(c.kind)}{_cell(c.name)}{_cell(used)}'
            f"{_cell(limit)}<td>{bar}{escape(use)}</td>{_cell(c.basis)}</tr>")


def render_html(overview: OverviewView) -> str:
    """The page: the clients' table, then the shared resources' capacity with a CSS bar each."""
    head = "".join(f"<th>{escape(name)}</th>" for name in _CLIENT_COLUMNS)
    rows = []
    for client in overview.clients:
        values = client.as_json()
        bad = ' class="bad"' if values.get("findings") else ""
        rows.append(f'<tr{bad} data-client="{escape(str(values["org_id"]))}">'
                    + "".join(_cell(values.get(k)) for k in _CLIENT_COLUMNS) + "</tr>")
    capacity = "".join(_capacity_row(c) for c in overview.capacity)
    due = "".join("<tr>" + "".join(_cell(d.as_json().get(k)) for k in _DUE_COLUMNS) + "</tr>" for d in overview.due)
    due_head = "".join(f"<th>{escape(name)}</th>" for name in _DUE_COLUMNS)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kprov fleet</title>"
            f"<style>{_CSS}</style></head><body><h1>Fleet</h1><p>generated {escape(overview.generated)} · "
            f"{len(overview.clients)} client(s)</p><h2>Clients</h2><table id=\"clients\"><tr>{head}</tr>"
            + "".join(rows) + "</table><h2>Shared resources</h2><table id=\"capacity\"><tr><th>kind</th>"
            "<th>name</th><th>used</th><th>limit</th><th>use</th><th>limit from</th></tr>"
            + capacity + f"</table><h2>Due for rotation (older than {overview.max_age_days} days)</h2>"
            f'<table id="due"><tr>{due_head}</tr>' + due + "</table></body></html>\n")
