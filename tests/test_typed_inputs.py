"""Typed inputs (steps.kinds): dates, e-mail addresses, IANA time zones, sizes, IPv4 addresses, CIDRs,
versions and y/N answers, refused with the rule and an example; the checklist language that declares them."""

from __future__ import annotations

import pytest

from kensium_provision.checklist.schema import json_schema, load_checklist_text
from kensium_provision.errors import ChecklistError, InputError
from kensium_provision.model import InputSpec
from kensium_provision.steps.kinds import Bounds, coerce, coerce_answer, parse_yes_no
from kensium_provision.steps.manual import evidence_specs


@pytest.mark.parametrize(("kind", "wrong", "right", "rule"), [
    ("date", "2026-13-01", "2026-12-01", "a real calendar date written YYYY-MM-DD (for example 2026-11-28)"),
    ("date", "2026-02-30", "2026-02-28", "a real calendar date"),
    ("date", "1 March 2026", "2026-03-01", "YYYY-MM-DD"),
    ("email", "notanemail", "ops@example.com", "an e-mail address (for example support@example.com)"),
    ("email", "a@b", "a@b.example", "an e-mail address"),
    ("timezone", "Mars/Olympus", "Europe/London", "an IANA time zone name (for example America/New_York)"),
    ("ipv4", "999.1.1.1", "203.0.113.10", "an IPv4 address (four numbers 0-255) (for example 203.0.113.10)"),
    ("ipv4", "203.0.113.0/24", "203.0.113.10/32", "is a range of 256 addresses"),
    ("cidr", "10.0.0.1/16", "10.0.0.0/16", "an IPv4 CIDR block whose host bits are zero (for example 10.0.0.0/16)"),
    ("cidr", "10.0.0.0", "10.0.0.0/24", "CIDR"),
    ("version", "[bold]x[/bold]", "15.00.4415.2.v1",
     "a version made of numbers and dots (for example 15.00.4415.2.v1)"),
    ("version", "3.13 ", "3.13", "a version"),
])
def test_a_text_kind_refuses_a_wrong_value_with_the_rule_and_an_example(kind: str, wrong: str, right: str,
                                                                       rule: str) -> None:
    _, problem = coerce(kind, wrong)
    assert problem is not None and rule in problem
    assert coerce(kind, right) == (right, None)


@pytest.mark.parametrize(("bounds", "raw", "says"), [
    (Bounds(1), "-1", "must be a number of 1 or more (for example 1)"),
    (Bounds(20, 16384), "19", "must be a number from 20 to 16384 (for example 20)"),
    (Bounds(20, 16384), "16385", "from 20 to 16384"),
    (Bounds(None, 9), "10", "must be a number of 9 or less (for example 9)"),
    (Bounds(1), "ten", "must be a whole number of 1 or more"),
])
def test_sizes_are_bounded(bounds: Bounds, raw: str, says: str) -> None:
    assert says in str(coerce("int", raw, bounds=bounds)[1])
    assert coerce("int", "20", bounds=bounds if bounds.maximum is None or bounds.maximum >= 20 else Bounds())[1] is None


@pytest.mark.parametrize(("raw", "answer"), [("y", True), ("YES", True), (" no ", False), ("n", False),
                                             (True, True), ("maybe", None), ("", None), ("yess", None)])
def test_yes_or_no_and_nothing_else(raw: object, answer: bool | None) -> None:
    assert parse_yes_no(raw) is answer
    if answer is None:
        assert coerce("bool", raw) == (raw, "answer yes or no (y or n)")


def test_an_answer_may_have_to_differ_from_an_earlier_one() -> None:
    spec = InputSpec(id="secondary_zone", type="choice", prompt="?", differs_from="primary_zone")
    zones = ("us-east-1a", "us-east-1b")
    assert coerce_answer(spec, "us-east-1a", choices=zones, context={"primary_zone": "us-east-1a"})[1] == \
        "must differ from primary_zone (us-east-1a): choose another"
    assert coerce_answer(spec, "us-east-1b", choices=zones, context={"primary_zone": "us-east-1a"})[1] is None


CHECKLIST = """
schema: 1
id: typed
title: Typed
scope: shared
inputs:
  - {id: when_done, type: date, prompt: "When?", minimum: 1}
  - {id: first, type: choice, prompt: "First?", choices: [a, b], differs_from: second}
  - {id: second, type: choice, prompt: "Second?", choices: [a, b], differs_from: nowhere}
  - {id: size, type: int, prompt: "Size?", minimum: 1, maximum: 10}
steps:
  - {id: note, title: Note, type: flow.require, risk: read, params: {value: "{{ size }}", below: 10, message: m}}
"""


def test_the_language_refuses_bounds_on_text_and_a_differs_from_that_is_not_an_earlier_input() -> None:
    with pytest.raises(ChecklistError) as caught:
        load_checklist_text(CHECKLIST, "typed.yaml")
    text = str(caught.value)
    assert "typed.yaml:7:59: inputs[0] (id=when_done) › minimum: minimum is for int inputs only" in text
    assert "'second' is asked later; an input can use only earlier inputs" in text
    assert "unknown name 'nowhere'" in text


def test_the_json_schema_knows_the_typed_inputs_and_their_bounds() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    properties = defs["input"]["properties"]
    assert {"date", "email", "timezone", "ipv4", "cidr", "version"} <= set(properties["type"]["enum"])
    assert {"minimum", "maximum", "differs_from"} <= set(properties)


def test_evidence_takes_the_typed_kinds_and_refuses_an_unknown_one() -> None:
    [spec] = evidence_specs({"evidence": [{"id": "time_zone", "prompt": "Zone?", "type": "timezone"}]})
    assert coerce_answer(spec, "Mars/Olympus")[1] == "must be an IANA time zone name (for example America/New_York)"
    with pytest.raises(InputError, match="type planet is not one of"):
        evidence_specs({"evidence": [{"id": "where", "prompt": "Where?", "type": "planet"}]})


def test_every_control_format_and_other_character_is_refused_where_it_is_refused() -> None:
    # The text checks take a printable answer at once (str.isprintable) and scan the characters only
    # otherwise: every character of those categories must still be refused, and printable ones kept.
    import sys
    import unicodedata

    from kensium_provision.steps.sql import quote_identifier

    others = [chr(n) for n in range(sys.maxunicode + 1) if unicodedata.category(chr(n)).startswith("C")]
    control_or_format = [c for c in others if unicodedata.category(c) in ("Cc", "Cf")]
    assert len(control_or_format) > 200
    for c in control_or_format:
        assert coerce("string", f"ab{c}")[1] == f"contains a control or format character (U+{ord(c):04X})"
    for c in others[::37] + control_or_format:
        with pytest.raises(InputError, match="control or invisible"):
            quote_identifier(f"POS_{c}")
    assert coerce("string", "Kensium POS \u00e9\u4e2d")[1] is None and quote_identifier("POS_\u00e9") == "[POS_\u00e9]"
