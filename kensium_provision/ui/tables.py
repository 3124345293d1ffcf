"""Tables as the place they are printed to can show them (issue 15: presentation).

On a terminal a table wraps its cells instead of cutting them (`out… che… sha…` at 80 columns); anywhere
else (a pipe, a file, CI) it is plain columns, aligned with spaces, one row a line, no box drawing and no
width limit, as `kubectl get` and `gh ... list` print for scripts and `grep`. kprov's console
(`ui.boundary.BoundaryConsole`) applies this to whatever it prints.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["for_terminal", "plain"]


def for_terminal(renderable: RenderableType) -> RenderableType:
    """A table's cells fold onto more lines when the terminal is narrow, never end in an ellipsis."""
    if isinstance(renderable, Table):
        for column in renderable.columns:
            if column.overflow == "ellipsis":
                column.overflow = "fold"
    return renderable


def plain(renderable: RenderableType) -> RenderableType | list[Text]:
    """A boxed table as plain lines; anything else (a grid, a panel, Markdown, text) as it is."""
    if isinstance(renderable, Table) and renderable.box is not None:
        return _table_lines(renderable)
    return renderable


def _text(cell: object) -> Text:
    if isinstance(cell, Text):
        return cell
    return Text(str(cell)) if isinstance(cell, str) else Text("")


def _one_line(cell: object) -> Text:
    text = _text(cell).copy()
    text.plain = text.plain.replace("\n", " ")
    return text


def _table_lines(table: Table) -> list[Text]:
    columns = table.columns
    rows: list[Sequence[Text]] = []
    if table.show_header:
        rows.append([_one_line(c.header) for c in columns])
    rows.extend([_one_line(c._cells[index]) if index < len(c._cells) else Text("") for c in columns]
                for index in range(table.row_count))
    widths = [max((cell_len(row[i].plain) for row in rows), default=0) for i in range(len(columns))]
    lines = [_one_line(table.title)] if table.title else []
    for row in rows:
        line = Text()
        for i, cell in enumerate(row):
            line.append_text(cell)
            if i < len(row) - 1:
                line.append(" " * (widths[i] - cell_len(cell.plain) + 2))
        line.rstrip()
        lines.append(line)
    return lines
