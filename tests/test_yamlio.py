"""yamlio reads with libyaml where PyYAML has it, and falls back to PyYAML's own parser for errors.

The two parsers must give the same positioned tree: every packaged checklist and example is read by
both and compared node by node (value, kind, source text, style, line:col).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kensium_provision import yamlio
from kensium_provision.checklist.catalog import CHECKLISTS_DIR
from kensium_provision.errors import ChecklistError

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*CHECKLISTS_DIR.rglob("*.yaml"), *(ROOT / "examples").glob("*.yaml")])


def _tree(node: yamlio.Node) -> object:
    loc = (node.loc.line, node.loc.column)
    if node.kind == "map":
        return ("map", loc, {k: ((node.key_locs[k].line, node.key_locs[k].column), _tree(v)) for k, v in node.items()})
    if node.kind == "seq":
        return ("seq", loc, [_tree(v) for v in node.sequence()])
    return (node.kind, loc, node.value, node.text, node.quoted)


def test_libyaml_is_the_parser_when_pyyaml_has_it() -> None:
    if not yaml.__with_libyaml__:
        pytest.fail("PyYAML was installed without libyaml: kprov validate is then several times slower")
    assert yamlio._Loader is yamlio._FastLoader


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_both_parsers_give_the_same_positioned_tree(path: Path) -> None:
    text = path.read_text()
    fast = yamlio._parse(yamlio._Loader(text, str(path)))
    pure = yamlio._parse(yamlio._PureLoader(text, str(path)))
    assert _tree(fast) == _tree(pure)


def test_a_syntax_error_is_worded_by_pyyaml_whichever_parser_read_first() -> None:
    with pytest.raises(ChecklistError) as caught:
        yamlio.load("a: [1, 2\nb: 3\n", "bad.yaml")
    assert str(caught.value).startswith("bad.yaml:2:")
    assert "YAML syntax: while parsing a flow sequence" in str(caught.value)
