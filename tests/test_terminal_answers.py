"""An answers file in a real terminal (tmux, tests/terminal.py): the file answers what it holds, the person
at the keyboard the rest (issue 15: it was treated as "no terminal", and a partial file silently took
the checklist's defaults).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_terminal import ENTER, YES, Operator, Terminal, example, fresh, typed

__all__ = ["fresh"]  # the fixture, used by name


@pytest.mark.terminal
def test_a_partial_answers_file_in_a_terminal_asks_what_it_lacks_and_the_one_yes(fresh: Terminal,
                                                                                  tmp_path: Path) -> None:
    partial = tmp_path / "vpc.yaml"
    # No vpc_name (the checklist has a default: offered, not taken silently) and no confirm: for read-docs.
    text = (Path(example("shared-vpc.yaml"))).read_text()
    partial.write_text(re.sub(r"(?ms)^(vpc_name: .*?\n|confirm:\n.*)", "", text))
    assert "vpc_name" not in partial.read_text() and "read-docs" not in partial.read_text()
    pane = fresh.pane("provision", "shared", "vpc", "--answers", str(partial))
    try:
        operator = Operator(pane)
        asked = operator.converse([("Name of the VPC", ENTER), ("Have you read them?", YES),
                                   ("Type yes to go on", typed("yes"))])
        code, screen = pane.exit_code(), pane.screen()
    finally:
        pane.close()
    assert code == 0, screen
    assert "without a terminal" not in screen
    # Only what the file lacks, and the plan's one yes: nothing the file answered is asked again.
    expected = ["Name of the VPC", "Apply these 17 changes to shared:vpc:us-east-1:POS-VPC", "Have you read them"]
    assert len(asked) == len(expected) and all(q.startswith(e) for q, e in zip(asked, expected, strict=True)), asked
    assert "Apply complete" in screen
