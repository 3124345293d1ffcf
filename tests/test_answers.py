"""Answers files: --yes answers routine questions, never a statement about work done by hand."""

from __future__ import annotations

import pytest

from kensium_provision.checklist.answers import Answers, AnswersOperator
from kensium_provision.errors import InputError


def test_yes_answers_routine_confirmations() -> None:
    assert AnswersOperator(Answers(), assume_yes=True).confirm("Create: the VPC?") is True
    with pytest.raises(InputError, match="without a terminal"):
        AnswersOperator(Answers()).confirm("Create: the VPC?")


def test_yes_never_confirms_manual_work() -> None:
    operator = AnswersOperator(Answers(), assume_yes=True)
    with pytest.raises(InputError) as caught:
        operator.confirm("Done?", key="install-pos")
    assert "--yes never confirms work done by hand" in str(caught.value)
    assert "confirm: {install-pos: true}" in caught.value.hint


def test_the_answers_file_confirms_manual_work() -> None:
    answers = Answers(confirm={"install-pos": True, "read-docs": False})
    operator = AnswersOperator(answers, assume_yes=False)
    assert operator.confirm("Done?", key="install-pos") is True
    assert operator.confirm("Read them?", key="read-docs") is False
