"""YAML text to a tree of positioned nodes: the only module that imports `yaml`.

Strict by design (research/reliability-notes.md section 5): safe loading only, every node keeps its
`line:col`, and duplicate keys, anchors, aliases, custom tags and oversized files are errors, all
reported at once. Scalars keep their source text and style, so a schema (`yamlschema`) can refuse
`3.10` or `NO` where a string is expected instead of silently reading 3.1 or False.

Hostile files end as issues at `path:1:1` or at their position, never as a crash or a hang: only
regular files are read (a FIFO, `/dev/zero` or a directory is refused before it is read), reading
stops at `MAX_BYTES` whatever `stat` said, and nesting deeper than `MAX_DEPTH` stops the parser
before Python's recursion limit would.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kensium_provision.errors import ChecklistError, Issue

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Loc", "Node", "dump", "load", "load_bytes", "load_file", "read_file",
           "shown_path"]

MAX_BYTES = 256 * 1024  # a checklist is a page or two; a bigger file is a mistake or an attack
MAX_DEPTH = 64  # mappings and lists inside each other; a checklist needs about eight

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

    def mapping(self) -> dict[str, Node]:
        """The entries of a mapping node; empty for any other node."""
        return self.value if self.kind == "map" and isinstance(self.value, dict) else {}

    def sequence(self) -> list[Node]:
        """The items of a sequence node; empty for any other node."""
        return self.value if self.kind == "seq" and isinstance(self.value, list) else []

    def items(self) -> Iterator[tuple[str, Node]]:
        yield from self.mapping().items()

    def plain(self) -> object:
        """The node as plain Python values (dicts, lists, scalars)."""
        if self.kind == "map":
            return {k: v.plain() for k, v in self.mapping().items()}
        if self.kind == "seq":
            return [v.plain() for v in self.sequence()]
        return self.value


class _TooDeep(Exception):
    def __init__(self, line: int, column: int) -> None:
        super().__init__()
        self.line, self.column = line, column


def _mark(event: yaml.Event) -> tuple[int, int]:
    """1-based line and column where an event starts."""
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Composer(yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """PyYAML's safe composer whose nodes record anchors and aliases as issues instead of sharing them,
    and which stops at `MAX_DEPTH` (it recurses once per level: 480 levels were a RecursionError).

    It reads events from a parser mixed in after it: libyaml's (`yaml.CParser`) where PyYAML was built
    with it, about five times faster than the pure-Python scanner that was most of `kprov validate`'s
    time, else PyYAML's own. Composition stays in Python either way, so both behave the same here.
    """

    def __init__(self, path: str) -> None:
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.kprov_path = path
        self.kprov_issues: list[Issue] = []
        self.kprov_depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[attr-defined]
        if not isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            return self._compose(parent, index, event)
        if self.kprov_depth >= MAX_DEPTH:
            raise _TooDeep(*_mark(event))
        self.kprov_depth += 1
        try:
            return self._compose(parent, index, event)
        finally:
            self.kprov_depth -= 1

    def _compose(self, parent: yaml.Node | None, index: object, event: yaml.Event) -> yaml.Node | None:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line, column = _mark(event)
            self.kprov_issues.append(
                Issue(self.kprov_path, line, column, "", "anchors and aliases are not allowed (write the value out)"))
            if isinstance(event, yaml.AliasEvent):  # replace the alias by an empty scalar
                self.get_event()  # type: ignore[attr-defined]
                return yaml.ScalarNode("tag:yaml.org,2002:null", "", event.start_mark, event.start_mark)  # type: ignore[arg-type]
            setattr(event, "anchor", None)  # noqa: B010 (the stubs do not declare NodeEvent.anchor)
        return super().compose_node(parent, index)  # type: ignore[arg-type]


class _PureLoader(_Composer, yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, text: str, path: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Composer.__init__(self, path)


if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _FastLoader(_Composer, CParser):
        def __init__(self, text: str, path: str) -> None:
            CParser.__init__(self, text)
            _Composer.__init__(self, path)

    _Loader: type[_PureLoader] | type[_FastLoader] = _FastLoader
else:  # pragma: no cover - PyYAML without libyaml
    _Loader = _PureLoader

# libyaml reports a character YAML does not allow while parsing, by byte offset; PyYAML's reader checks
# the whole text first, by character. One check before either parser keeps the message and position.
_NOT_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


def _loc(path: str, node: yaml.Node) -> Loc:
    return Loc(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert(loader: _Composer, node: yaml.Node) -> Node:
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
    quoted = getattr(node, "style", None) in ("'", '"', "|", ">")
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
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        position = bad.start()
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        message = f"character U+{ord(bad.group()):04X} is not allowed in YAML"
        raise ChecklistError([Issue(path, line, column, "", message)])
    try:
        return _parse(_Loader(text, path))
    except yaml.YAMLError:
        # libyaml words errors its own way (and refuses deep flow nesting before the composer can say
        # where): a file that does not parse is read again by PyYAML's own parser, for one wording.
        pass
    return _parse(_PureLoader(text, path))


def _parse(loader: _PureLoader | _FastLoader) -> Node:
    """Compose and convert one document; `ChecklistError` for what kprov refuses. Raises `yaml.YAMLError`
    from the fast parser (`load` retries with the pure one), a `ChecklistError` from the pure one."""
    path = loader.kprov_path
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            if not isinstance(loader, _PureLoader):
                raise
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ChecklistError([Issue(path, line, col, "", f"YAML syntax: {message}")]) from None
        except yaml.YAMLError as exc:
            if not isinstance(loader, _PureLoader):
                raise
            raise ChecklistError([Issue(path, 1, 1, "", f"YAML syntax: {exc}")]) from None
        except _TooDeep as exc:
            message = f"nested more than {MAX_DEPTH} levels deep"
            raise ChecklistError([Issue(path, exc.line, exc.column, "", message)]) from None
        if root is None:
            raise ChecklistError([Issue(path, 1, 1, "", "file is empty")])
        tree = _convert(loader, root)
    finally:
        loader.dispose()
    if loader.kprov_issues:
        raise ChecklistError(loader.kprov_issues)
    return tree


_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str:
    what = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
    return f"cannot read file: not a regular file ({what})"


def read_file(path: Path, *, display: str | None = None) -> bytes:
    """The bytes of a regular file of at most `MAX_BYTES`; `ChecklistError` at `display:1:1` otherwise.

    A FIFO, a device (`/dev/zero`), a socket or a directory is refused before it is read, and again
    after it is opened (it may have been swapped in between); opening never blocks (`O_NONBLOCK`:
    a FIFO without a writer would hang `open`). The size is capped while reading, not taken from
    `stat`, which says 0 for `/dev/zero` and can be outgrown by a file that is still being written.
    """
    shown = display or str(path)

    def refuse(message: str) -> ChecklistError:
        return ChecklistError([Issue(shown, 1, 1, "", message)])

    too_large = f"file is larger than {MAX_BYTES // 1024} KiB"
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise refuse(_not_regular(mode))
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise refuse(_not_regular(mode))
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_BYTES:
                chunk = os.read(fd, MAX_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise refuse(f"cannot read file: {exc.strerror}") from None
    if size > MAX_BYTES:
        raise refuse(too_large)
    return b"".join(chunks)


def load_bytes(raw: bytes, path: str) -> Node:
    """Decode UTF-8 and parse one YAML document (see `load`)."""
    if len(raw) > MAX_BYTES:
        raise ChecklistError([Issue(path, 1, 1, "", f"file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChecklistError([Issue(path, 1, 1, "", f"not UTF-8 text (byte {exc.start})")]) from None
    return load(text, path)


def load_file(path: Path, *, display: str | None = None) -> Node:
    """Read (`read_file`) and parse a YAML file; `display` is the path shown in messages."""
    shown = display or str(path)
    return load_bytes(read_file(path, display=shown), shown)


def shown_path(path: Path) -> str:
    """How messages name a file: relative to the working directory when it is inside it, else as given."""
    if not path.is_absolute():
        return str(path)
    for here in (Path.cwd(), Path.cwd().resolve()):
        try:
            return str(path.relative_to(here))
        except ValueError:
            continue
    return str(path)


def dump(data: object) -> str:
    """Plain data to block-style YAML (answers files, Markdown runsheets)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
