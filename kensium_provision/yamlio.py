"""YAML text to a tree of positioned nodes: the only module that imports `yaml`.

Strict by design (research/reliability-notes.md section 5): safe loading only, every node keeps its
`line:col`, and duplicate keys, anchors, aliases, custom tags and oversized files are errors, all
reported at once. Scalars keep their source text and style, so a schema can refuse `3.10` or `NO`
where a string is expected instead of silently reading 3.1 or False.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kensium_provision.errors import ChecklistError, Issue

__all__ = ["MAX_BYTES", "Loc", "Node", "dump", "load", "load_file"]

MAX_BYTES = 256 * 1024  # a checklist is a page or two; a bigger file is a mistake or an attack

_TAGS = {
    "tag:yaml.org,2002:str": "str",
    "tag:yaml.org,2002:int": "int",
    "tag:yaml.org,2002:float": "float",
    "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "timestamp",
    "tag:yaml.org,2002:map": "map",
    "tag:yaml.org,2002:seq": "seq",
}


@dataclass(frozen=True, slots=True)
class Loc:
    """A position in a source file (1-based line and column)."""

    path: str
    line: int
    column: int

    def issue(self, breadcrumb: str, message: str) -> Issue:
        return Issue(self.path, self.line, self.column, breadcrumb, message)


@dataclass(frozen=True, slots=True)
class Node:
    """One YAML node: a mapping (`dict[str, Node]`), a sequence (`list[Node]`) or a scalar.

    `kind` is map, seq, str, int, float, bool, null or timestamp (YAML 1.1's implicit types, as
    PyYAML's safe loader resolves them); `text` is the scalar's source text, `quoted` its style.
    """

    kind: str
    value: object
    loc: Loc
    text: str = ""
    quoted: bool = False
    key_locs: Mapping[str, Loc] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[str, Node]]:
        assert isinstance(self.value, dict)
        yield from self.value.items()

    def plain(self) -> object:
        """The node as plain Python values (dicts, lists, scalars)."""
        if self.kind == "map":
            assert isinstance(self.value, dict)
            return {k: v.plain() for k, v in self.value.items()}
        if self.kind == "seq":
            assert isinstance(self.value, list)
            return [v.plain() for v in self.value]
        return self.value


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer records anchors and aliases as issues instead of sharing nodes."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.kprov_path = path
        self.kprov_issues: list[Issue] = []

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            self.kprov_issues.append(
                Issue(self.kprov_path, mark.line + 1, mark.column + 1, "",
                      "anchors and aliases are not allowed (write the value out)")
            )
            if isinstance(event, yaml.AliasEvent):  # replace the alias by an empty scalar
                self.get_event()
                return yaml.ScalarNode("tag:yaml.org,2002:null", "", mark, mark)
            event.anchor = None
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def _loc(path: str, node: yaml.Node) -> Loc:
    return Loc(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(loader: _Loader, node: yaml.Node) -> Node:
    path, issues = loader.kprov_path, loader.kprov_issues
    loc = _loc(path, node)
    kind = _TAGS.get(node.tag)
    if kind is None:
        issues.append(loc.issue("", f"tag {node.tag!r} is not allowed"))
        return Node("null", None, loc)
    if isinstance(node, yaml.MappingNode):
        value: dict[str, Node] = {}
        key_locs: dict[str, Loc] = {}
        for key_node, value_node in node.value:
            key_loc = _loc(path, key_node)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                issues.append(key_loc.issue("", f"keys must be plain strings, not {key_node.tag.rsplit(':', 1)[-1]}"))
                continue
            key = str(key_node.value)
            if key in value:
                first = key_locs[key]
                issues.append(key_loc.issue("", f"duplicate key {key!r} (first at line {first.line})"))
                continue
            key_locs[key] = key_loc
            value[key] = _convert(loader, value_node)
        return Node("map", value, loc, key_locs=key_locs)
    if isinstance(node, yaml.SequenceNode):
        return Node("seq", [_convert(loader, item) for item in node.value], loc)
    text = str(node.value)
    quoted = node.style in ("'", '"', "|", ">")
    if kind == "str":
        return Node("str", text, loc, text=text, quoted=quoted)
    try:
        scalar = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError) as exc:
        issues.append(loc.issue("", f"cannot read {text!r}: {exc}"))
        scalar = None
    if kind == "timestamp":
        scalar = text  # dates stay text: kprov never needs a datetime from YAML
    return Node(kind, scalar, loc, text=text, quoted=quoted)


def load(text: str, path: str) -> Node:
    """Parse one YAML document; raise `ChecklistError` with every issue found."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ChecklistError([Issue(path, 1, 1, "", f"file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        loader = _Loader(text, path)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ChecklistError([Issue(path, line, column, "", f"character U+{exc.character:04X} is not allowed in YAML")]) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ChecklistError([Issue(path, line, col, "", f"YAML syntax: {message}")]) from None
        except yaml.YAMLError as exc:
            raise ChecklistError([Issue(path, 1, 1, "", f"YAML syntax: {exc}")]) from None
        if root is None:
            raise ChecklistError([Issue(path, 1, 1, "", "file is empty")])
        tree = _convert(loader, root)
    finally:
        loader.dispose()
    if loader.kprov_issues:
        raise ChecklistError(loader.kprov_issues)
    return tree


def load_file(path: Path, *, display: str | None = None) -> Node:
    """Read and parse a YAML file; `display` is the path shown in messages."""
    shown = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ChecklistError([Issue(shown, 1, 1, "", f"file is larger than {MAX_BYTES // 1024} KiB")])
        raw = path.read_bytes()
    except OSError as exc:
        raise ChecklistError([Issue(shown, 1, 1, "", f"cannot read file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChecklistError([Issue(shown, 1, 1, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return load(text, shown)


def dump(data: object) -> str:
    """Plain data to block-style YAML (answers files, Markdown runsheets)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
