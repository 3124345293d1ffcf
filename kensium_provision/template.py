"""Strict, sandboxed templates: `{{ name }}`, `{{ n:02 }}`, `{{ name | lower }}` and nothing else.

Templates substitute validated scalar values from inputs and earlier outputs only: no attribute
access, no expressions, no code (research/reliability-notes.md section 5 shows why `str.format` and
plain Jinja are unsafe here). An unknown name is an error, never an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from kensium_provision.errors import KprovError

__all__ = ["Placeholder", "TemplateError", "placeholders", "render", "render_value"]

_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_EXPR = re.compile(r"^\s*(?P<name>[a-z][a-z0-9_]*)\s*(?::(?P<width>0[1-9]))?\s*(?:\|\s*(?P<filter>lower|upper)\s*)?$")


class TemplateError(KprovError):
    """A template is malformed, names an unknown value, or would interpolate a secret."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str
    width: int
    filter: str
    start: int  # offset in the template text


def placeholders(template: str) -> tuple[Placeholder, ...]:
    """Every placeholder of a template; raises TemplateError on anything that is not one."""
    return _parsed(template)[0]


# A checklist's few hundred templates are rendered again for every run and every client of a fleet check
# (5,000 clients: millions of parses of the same texts); a parse depends on the text alone.
@lru_cache(maxsize=4096)
def _parsed(template: str) -> tuple[tuple[Placeholder, ...], tuple[str, ...], bool]:
    """(placeholders, the literal texts around them, whether the template is exactly one bare placeholder)."""
    found, texts, last = [], [], 0
    for match in _BRACES.finditer(template):
        expr = _EXPR.match(match.group(1))
        if expr is None:
            raise TemplateError(
                f"{{{{{match.group(1)}}}}} is not a placeholder: write {{{{ name }}}}, {{{{ name:02 }}}} or "
                "{{ name | lower }} (names are inputs or earlier outputs)"
            )
        width = int(expr["width"]) if expr["width"] else 0
        found.append(Placeholder(expr["name"], width, expr["filter"] or "", match.start()))
        texts.append(template[last : match.start()])
        last = match.end()
    texts.append(template[last:])
    rest = _BRACES.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise TemplateError("unbalanced '{{' or '}}'")
    bare = (len(found) == 1 and not found[0].width and not found[0].filter and template.strip() == template
            and _BRACES.fullmatch(template) is not None)
    return tuple(found), tuple(texts), bare


def _format(value: object, holder: Placeholder) -> str:
    if hasattr(value, "reveal"):
        raise TemplateError(f"{holder.name} is a secret and cannot be part of a text; pass it as a whole value")
    if isinstance(value, bool) or value is None:
        raise TemplateError(f"{holder.name} is {value!r}, not text or a number")
    if holder.width:
        if not isinstance(value, int):
            raise TemplateError(f"{holder.name}:{holder.width:02d} needs a number, got {value!r}")
        text = f"{value:0{holder.width}d}"
    elif isinstance(value, (str, int)):
        text = str(value)
    else:
        raise TemplateError(f"{holder.name} is a {type(value).__name__}, not a scalar")
    if holder.filter == "lower":
        return text.lower()
    if holder.filter == "upper":
        return text.upper()
    return text


def render(template: str, values: Mapping[str, object]) -> str:
    """Render a text template; every name must be present in `values`."""
    holders, texts, _ = _parsed(template)
    if not holders:
        return template
    out = [texts[0]]
    for holder, text in zip(holders, texts[1:], strict=True):
        if holder.name not in values:
            raise TemplateError(f"unknown name {holder.name!r} in {template!r}")
        out.append(_format(values[holder.name], holder))
        out.append(text)
    return "".join(out)


def render_value(value: object, values: Mapping[str, object]) -> object:
    """Render templates inside a parameter value (strings, lists, maps).

    A string that is exactly one bare placeholder keeps the value's type (an int, a bool, a list,
    a Secret), so secrets and numbers pass through without becoming text.
    """
    if isinstance(value, str):
        holders, _, bare = _parsed(value)
        if bare:
            name = holders[0].name
            if name not in values:
                raise TemplateError(f"unknown name {name!r} in {value!r}")
            return values[name]
        return render(value, values) if holders else value
    if isinstance(value, list):
        return [render_value(v, values) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, values) for k, v in value.items()}
    return value
