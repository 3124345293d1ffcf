"""Answers files: --yes answers routine questions, never a statement about work done by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kensium_provision.checklist.answers import Answers, AnswersOperator, load_answers
from kensium_provision.checklist.schema import load_checklist_text
from kensium_provision.errors import ChecklistError, ExitCode, InputError
from kensium_provision.model import Checklist
from kensium_provision.yamlio import MAX_DEPTH
from tests.hostile import DEV_ZERO, deep_flow, fifo, kprov


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


# --- hostile answers files: exit 3 at a position, never a crash or a hang (issue 14, items 8 and 9) ---------


def _tiny() -> Checklist:
    return load_checklist_text(
        "schema: 1\nid: tiny\ntitle: Tiny\nscope: client\n"
        "inputs:\n  - {id: org_id, type: string, prompt: 'Org?'}\n  - {id: hosted, type: bool, prompt: 'Hosted?'}\n"
        "steps:\n  - {id: tell, title: Tell, type: manual, risk: read, params: {instructions: 'Hi {{ org_id }}'}}\n",
        "tiny.yaml")


@pytest.mark.parametrize("text", [deep_flow(480), deep_flow(2000, closed=False), "org_id: " + deep_flow(480)])
def test_a_deeply_nested_answers_file_is_refused_at_its_position(tmp_path: Path, text: str) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text(text)
    with pytest.raises(ChecklistError) as caught:
        load_answers(path, _tiny())
    column = 65 + (len("org_id: ") - 1 if text.startswith("org_id") else 0)
    assert str(caught.value) == f"{path}:1:{column}: nested more than {MAX_DEPTH} levels deep"
    assert caught.value.exit_code is ExitCode.INVALID


@pytest.mark.parametrize("hostile", ["fifo", "dev-zero"])
def test_an_answers_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, hostile: str) -> None:
    path = fifo(tmp_path) if hostile == "fifo" else DEV_ZERO
    what = "a FIFO" if hostile == "fifo" else "a character device"
    with pytest.raises(ChecklistError, match=f"^{re.escape(str(path))}:1:1: cannot read file: not a regular file"):
        load_answers(path, _tiny())
    done = kprov("install-client", "acme", "--dry-run", "--answers", str(path))
    assert done.returncode == ExitCode.INVALID, done.stderr
    assert f"{path}:1:1: cannot read file: not a regular file ({what})" in done.stderr


# --- the one schema reader: the same strictness and wording as checklists, never a secret echoed -------------


def _secretive() -> Checklist:
    return load_checklist_text(
        "schema: 1\nid: tiny\ntitle: Tiny\nscope: client\n"
        "inputs:\n  - {id: org_id, type: string, prompt: 'Org?'}\n  - {id: hosted, type: bool, prompt: 'Hosted?'}\n"
        "  - {id: size, type: int, prompt: 'Size?'}\n  - {id: password, type: secret, prompt: 'Password?'}\n"
        "steps:\n  - {id: tell, title: Tell, type: manual, risk: read, params: {instructions: 'Hi {{ org_id }}'}}\n",
        "tiny.yaml")


def test_answers_are_read_as_strictly_as_checklists(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("org_id: NO\nhosted: yes\nsize: 010\npasword: x\nconfirm: {tell: on, nothing: true}\n")
    with pytest.raises(ChecklistError) as caught:
        load_answers(path, _secretive())
    assert str(caught.value).splitlines() == [
        f"{path}:1:9: org_id: expected a string, got NO (YAML reads it as false); YAML reads an unquoted NO as true "
        "or false: quote it: 'NO'",
        f"{path}:2:9: hosted: expected true or false, got yes (YAML reads it as true); write true or false",
        f"{path}:3:7: size: expected a whole number in decimal digits, got 010 (YAML reads it as 8)",
        f"{path}:4:1: pasword: unknown input 'pasword' for tiny (did you mean 'password'?)",
        f"{path}:5:17: confirm › tell: expected true or false, got on (YAML reads it as true); write true or false",
        f"{path}:5:21: confirm › nothing: 'nothing' is not one of: tell",
    ]


@pytest.mark.parametrize("written", ["hunter2-Secret", "'12345678'", "123456789", "'vault:'"])
def test_a_secret_answer_that_is_not_a_vault_reference_is_refused_without_showing_it(
        tmp_path: Path, written: str) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text(f"org_id: acme\npassword: {written}\n")
    with pytest.raises(ChecklistError) as caught:
        load_answers(path, _secretive())
    assert str(caught.value) == (f"{path}:2:11: password: expected a vault reference (vault:<reference>), never the "
                                 "secret itself")
    assert written.strip("'") not in str(caught.value).replace("vault:<reference>", "")


def test_valid_answers_keep_values_confirmations_and_positions(tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("org_id: acme\nhosted: false\nsize: 3\npassword: vault:pos/acme\nconfirm: {tell: true}\n"
                    "confirm_target: acme\n")
    answers = load_answers(path, _secretive())
    assert answers.values == {"org_id": "acme", "hosted": False, "size": 3, "password": "vault:pos/acme",
                              "confirm_target": "acme"}
    assert answers.confirm == {"tell": True}
    assert (answers.locs["size"].line, answers.locs["size"].column) == (3, 7)
