"""Wrong answers refused where they are typed, in a real terminal (tmux, tests/test_terminal.py's operator).

`kprov provision shared vpc` against a fresh sandbox: a secondary zone equal to the primary and the
operator IP 999.1.1.1 are refused at their prompts with the rule and an example; the operator then
stops (Ctrl-C), and the run's journal shows that kprov sent no write at all (its call counter).
"""

from __future__ import annotations

import pytest

from kensium_provision.aws.wall import is_read
from tests.test_terminal import Operator, Terminal, chosen, fresh, typed

__all__ = ["fresh"]  # the fixture, used by name


@pytest.mark.terminal
def test_the_vpc_prompts_refuse_a_repeated_zone_and_ip_999_1_1_1_and_nothing_is_written(fresh: Terminal) -> None:
    pane = fresh.pane("provision", "shared", "vpc")
    try:
        operator = Operator(pane)
        operator.converse([("Region this VPC is for", chosen("us-east-1")), ("Name of the VPC", typed("")),
                           ("Primary availability zone", chosen("us-east-1a")),
                           ("Secondary (backup) availability zone", chosen("us-east-1a"))],
                          stop_at="Secondary (backup) availability zone")
        operator.choose("us-east-1a")
        operator.expect("must differ from primary_zone (us-east-1a): choose another")
        operator.choose("us-east-1b")  # the same question, asked again below the rule
        operator.converse([("Name of the RDS DB subnet group", typed("")), ("Your name", typed("Terminal Tester")),
                           ("Your public IPv4 address", typed(""))], stop_at="Your public IPv4 address")
        pane.type("999.1.1.1")
        pane.send("Enter")
        screen = operator.expect("must be an IPv4 address (four numbers 0-255) (for example 203.0.113.10)")
        pane.send("C-c")
        code = pane.exit_code()
    finally:
        pane.close()
    assert code == 130, screen
    [records] = fresh.journals().values()
    assert not [r for r in records if r.get("event") == "step.intent"]
    sent = records[-1].get("api_calls", {})
    assert isinstance(sent, dict)
    written = [op for op in sent.get("by_operation", {}) if not is_read(*op.split(":", 1))]
    assert written == []
    assert not any(r.get("event") == "answer" and r.get("input") == "operator_ip" for r in records)
