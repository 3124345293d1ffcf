"""Issue 15.2: an interactive apply shows the whole plan, then asks once; `--step` keeps the per-step Y/n.

In process: the real command line (`kprov` runner) against in-process moto. The operator is a recorder
standing in for the person at the terminal (questionary needs a real one: the tmux test in
test_apply_terminal.py types there); it answers the checklist's inputs from a dict and records every
question, with the number of AWS writes botocore had sent when it was asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from kensium_provision.errors import ExitCode
from tests.conftest import Kprov
from tests.test_shared_network import VPC, vpc_named

QUESTION = "Apply these 17 changes to shared:vpc:us-east-1:POS-VPC in sandbox? Type yes to go on:"


def writes(sent: Sequence[str]) -> list[str]:
    from kensium_provision.aws.wall import is_read

    return [c for c in sent if not is_read(*c.split(":", 1))]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS operation kprov sends (`ec2:CreateVpc`), through botocore's one request path."""
    import botocore.client

    calls: list[str] = []
    real = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def spy(self: Any, operation: str, params: Any) -> Any:
        calls.append(f"{self.meta.service_model.service_name}:{operation}")
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    return calls


class Terminal:
    """The person at the terminal: answers from `answers`, types `typed` at a typed confirmation."""

    interactive = True

    def __init__(self, answers: Mapping[str, Any], typed: str, sent: list[str]) -> None:
        self.answers, self.typed, self.sent = dict(answers), typed, sent
        self.questions: list[tuple[str, int]] = []  # (question, AWS writes sent before it was asked)

    def _asked(self, question: str) -> None:
        self.questions.append((question, len(writes(self.sent))))

    def ask(self, spec: Any, *, default: object, choices: Sequence[str],
            validate: Callable[[object], str | None]) -> object:
        value = self.answers.get(spec.id, default)
        assert validate(value) is None, (spec.id, value, validate(value))
        return value

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        self._asked(message)
        return bool(self.answers.get("confirm", {}).get(key, True)) if key else True

    def type_to_confirm(self, message: str, expected: str) -> bool:
        self._asked(f"{message} Type {expected} to go on:")
        return self.typed == expected

    def instruct(self, title: str, text: str) -> None:
        return None

    def show_secret_once(self, label: str, secret: Any) -> None:
        return None

    def asked(self, text: str) -> list[tuple[str, int]]:
        return [q for q in self.questions if text in q[0]]


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch, sent: list[str]) -> Callable[[str], Terminal]:
    """`terminal("yes")`: every run of the test gets a fresh Terminal that types that at the question."""
    from kensium_provision.app import bootstrap, context

    made: list[Terminal] = []
    monkeypatch.setattr(context, "_stdin_is_a_terminal", lambda: True)  # the person is at a terminal

    def at(typed: str) -> Terminal:
        person = Terminal(VPC, typed, sent)
        made.append(person)
        monkeypatch.setattr(bootstrap, "open_operator", lambda console, **kwargs: person)
        return person

    return at


def test_the_plan_then_one_yes_asked_once_before_any_write(aws: None, kprov: Kprov, sent: list[str],
                                                           terminal: Callable[[str], Terminal]) -> None:
    person = terminal("yes")
    done = kprov("provision", "shared", "vpc")
    assert done.code == ExitCode.OK, done.err
    assert person.asked("Apply these") == [(QUESTION, 0)]  # once, and before any write
    assert person.asked("Create:") == [] and person.asked("Change:") == []  # no per-step Y/n any more
    assert person.asked("Have you read them?") != []  # a manual step keeps its own confirmation
    plan = done.err.index("Plan: 1 to create, 0 to modify, 1 unchanged; 1 manual step, 16 wait for earlier steps.")
    assert plan < done.err.index("17 changes, 16 of them depend on earlier steps") < done.err.index("Apply complete:")
    assert "Apply complete: 16 changed, 1 confirmed by hand, 2 already done, 0 skipped." in done.err
    assert "Next: `kprov check shared vpc`" in done.err
    assert len(vpc_named("POS-VPC")) == 1


@pytest.mark.parametrize("typed", ["no", "", "y", "YES please"])
def test_anything_but_yes_aborts_with_exit_5_and_no_write(aws: None, kprov: Kprov, sent: list[str],
                                                           terminal: Callable[[str], Terminal], typed: str) -> None:
    from kensium_provision.app.commands.history import state
    from kensium_provision.journal.reader import read_run

    person = terminal(typed)
    done = kprov("provision", "shared", "vpc")
    assert done.code == ExitCode.ABORTED, done.err
    assert person.asked("Apply these") == [(QUESTION, 0)]
    assert writes(sent) == [] and vpc_named("POS-VPC") == []
    assert "nothing was changed" in done.err
    [journal] = (state() / "runs").glob("*.jsonl")
    events = [r.get("event") for r in read_run(state(), journal.stem).records]
    assert "plan.declined" in events and "step.intent" not in events and "step.result" not in events


def test_a_done_checklist_says_nothing_to_change_and_asks_nothing(aws: None, kprov: Kprov, sent: list[str],
                                                                 terminal: Callable[[str], Terminal]) -> None:
    terminal("yes")
    assert kprov("provision", "shared", "vpc").code == ExitCode.OK
    built = len(writes(sent))
    person = terminal("yes")
    again = kprov("provision", "shared", "vpc")
    assert again.code == ExitCode.OK, again.err
    assert person.questions == []  # not the one question, not the manual step's
    assert "Nothing to change" in again.err and "Apply complete: 0 changed" in again.err
    assert len(writes(sent)) == built


def test_step_keeps_the_per_step_questions(aws: None, kprov: Kprov, terminal: Callable[[str], Terminal]) -> None:
    person = terminal("yes")
    done = kprov("provision", "shared", "vpc", "--step")
    assert done.code == ExitCode.OK, done.err
    assert person.asked("Apply these") == []
    assert len(person.asked("Create:")) == 12 and len(person.asked("Change:")) == 4


def test_yes_skips_the_question(aws: None, kprov: Kprov, terminal: Callable[[str], Terminal]) -> None:
    person = terminal("no")  # would decline, were it asked
    done = kprov("provision", "shared", "vpc", "--yes")
    assert done.code == ExitCode.OK, done.err
    assert person.asked("Apply these") == [] and person.asked("Create:") == []
