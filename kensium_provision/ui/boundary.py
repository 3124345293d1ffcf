"""The one output boundary: no byte kprov writes for a person can drive the terminal (issue 14 item 4).

Values come from YAML, AWS (tags, names, records, lock items, error texts) and the journal, so any of
them may hold an escape sequence (`ESC ] 0 ; title BEL` retitles the terminal, `ESC [ 31 m` colours
it), a bidi override (U+202E turns `moc.evil` into `live.com`) or rich markup. Three layers, one rule:

- `safe(value)` / `shown(value)`: a value as text, every control, format and separator character shown
  as a visible `\\u001b` escape; `shown` is the rich `Text` for it (never parsed as markup).
- `BoundaryConsole`: the console every command prints through. Markup and emoji codes are never parsed
  (a `str` from anywhere is shown as it is), hyperlinks are never emitted, and the text of every segment
  it writes is neutralised again, after layout, before it reaches the file. So a call site that forgot
  `safe` still cannot write ESC, BEL, C1 or a bidi character; it only lays the escape out a little wide.
- `json_text(document)`: JSON with the same characters as `\\u` escapes (json.dumps leaves C1 and bidi
  characters raw with ensure_ascii=False); the document it parses back to is the same.

kprov's own text uses none of those characters; its newlines and tabs pass (they lay out its lines).
research/reliability-notes.md section 5: rich strips only BEL, BS, VT, FF and CR; ESC and U+202E pass.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

from rich.console import Console
from rich.segment import Segment
from rich.text import Text

__all__ = ["BoundaryConsole", "json_text", "neutral", "safe", "shown", "write_plain"]

_LAYOUT = frozenset("\n\t")  # what kprov itself writes between and inside its lines


def _unsafe(char: str) -> bool:
    # isprintable() is False for Cc (C0, DEL, C1), Cf (bidi embeddings, overrides, isolates, marks, ZWJ,
    # BOM), Zl, Zp, Zs other than the space, surrogates, private use and unassigned code points.
    return not char.isprintable() and char not in _LAYOUT


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # as JSON spells it: a surrogate pair, so json_text stays valid JSON
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def neutral(text: str) -> str:
    """`text` with every character that could act on a terminal shown as an escape; newlines and tabs kept."""
    if text.isprintable():  # the common case, in C
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)


def safe(value: object, *, one_line: bool = False) -> str:
    """A value from outside kprov as text for the terminal; `one_line` escapes its newlines and tabs too."""
    text = neutral(str(value))
    return text.replace("\n", "\\u000a").replace("\t", "\\u0009") if one_line else text


def shown(value: object, style: str = "", *, one_line: bool = False) -> Text:
    """A value from outside kprov as rich `Text`: neutralised, and never read as markup."""
    return Text(safe(value, one_line=one_line), style=style)


class BoundaryConsole(Console):
    """kprov's console: no markup, no emoji codes, no hyperlinks, and neutral text in every segment written.

    Plain lines stay unwrapped (soft wrap) so an error or an issue (`path:line:col: ...`) can be copied
    and grepped whole; panels, tables and Markdown are laid out (soft wrap would crop their lines), and
    off a terminal tables and panels are plain lines (ui/tables.py).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "markup": False, "emoji": False, "highlight": False})

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from kensium_provision.ui.tables import for_terminal, plain

        # Tables wrap on a terminal and are plain columns anywhere else (ui/tables.py).
        objects = tuple(for_terminal(o) if self.is_terminal else _lines(plain(o)) for o in objects)
        if kwargs.get("soft_wrap") is None and any(not isinstance(o, (str, Text)) for o in objects):
            kwargs["soft_wrap"] = False
        kwargs["markup"] = kwargs["emoji"] = kwargs["highlight"] = False  # a caller cannot turn them back on
        super().print(*objects, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # Every write of the console (print, log, out, a Live refresh) ends here: the last point where
        # text and rich's own control codes (cursor moves, `Segment.control`) are still apart.
        return super()._render_buffer(_neutral_segments(buffer))


def _lines(shaped: Any) -> Any:
    return Text("\n").join(shaped) if isinstance(shaped, list) else shaped


def _neutral_segments(buffer: Iterable[Segment]) -> Iterable[Segment]:
    for segment in buffer:
        text, style, control = segment
        if control:
            yield segment
            continue
        if style is not None and style.link:
            style = style.update_link(None)  # no OSC 8 hyperlink: kprov links nothing, data must not either
        yield Segment(neutral(text), style, control)


def json_text(document: Mapping[str, object]) -> str:
    """`document` as indented JSON, UTF-8 as is except what could act on a terminal (escaped, same value)."""
    text = json.dumps(document, indent=2, default=str, ensure_ascii=False)
    # Outside its strings JSON is ASCII, and inside them json.dumps escaped C0 already: what is left to
    # escape (DEL, C1, bidi, separators) can only be string content, where `\\uXXXX` means the same.
    return neutral(text)


def write_plain(text: str, stream: IO[str] | None = None) -> None:
    """Text that is not rendered (a Markdown runsheet on stdout), neutralised like everything else."""
    (stream if stream is not None else sys.stdout).write(neutral(text))
