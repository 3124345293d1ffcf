"""The questionary adapter (ui/console.py) driven in-process through prompt_toolkit's pipe input.

The keys go into a `create_pipe_input()` pipe and the screen comes out of a VT100 output into a
string, both made the current prompt_toolkit app session, so these are questionary's real prompts
with the adapter's real arguments (validation, defaults, choices, `unsafe_ask`), no terminal needed.
The real-terminal tests (tmux) are in test_terminal.py.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output
from rich.console import Console

from kensium_provision.model import InputSpec
from kensium_provision.secret import Secret
from kensium_provision.ui import render
from kensium_provision.ui.console import ConsoleOperator

DOWN = "\x1b[B"
ENTER = "\r"
BACKSPACE = "\x7f"
CTRL_C = "\x03"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Screen:
    """What the prompts drew, without the escape sequences between the characters."""

    def __init__(self) -> None:
        self.raw = io.StringIO()
        self.output = Vt100_Output(self.raw, lambda: Size(rows=24, columns=100), term="xterm", enable_cpr=False)

    @property
    def text(self) -> str:
        return _ESCAPES.sub("", self.raw.getvalue())


class Typist:
    """Types into the pipe from a thread: each chunk once the screen shows what it waits for.

    The wait makes the order real (a refusal is drawn before the correction is typed); if the screen
    never shows it, the typist presses Ctrl-C, so a broken prompt fails the test instead of hanging it.
    """

    def __init__(self, pipe: PipeInput, screen: Screen, script: Sequence[tuple[str, str]]) -> None:
        self.pipe, self.screen, self.script = pipe, screen, script
        self.missed: list[str] = []
        self.thread = threading.Thread(target=self._type, daemon=True)

    def _type(self) -> None:
        for wait_for, keys in self.script:
            deadline = time.monotonic() + 5
            while wait_for and wait_for not in self.screen.text:
                if time.monotonic() > deadline:
                    self.missed.append(wait_for)
                    self.pipe.send_text(CTRL_C)
                    return
                time.sleep(0.01)
            self.pipe.send_text(keys)


@contextmanager
def typing(*script: tuple[str, str]) -> Iterator[Screen]:
    """Prompts in the block read `script` (pairs of: text to wait for on the screen, keys to type)."""
    screen = Screen()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=screen.output):
        typist = Typist(pipe, screen, script)
        typist.thread.start()
        try:
            yield screen
        except KeyboardInterrupt:
            if not typist.missed:
                raise
        finally:
            typist.thread.join(timeout=15)
    if typist.missed:  # not a KeyboardInterrupt, which would stop the whole test session
        pytest.fail(f"the screen never showed {typist.missed[0]!r}:\n{screen.text}")


def operator(*, assume_yes: bool = False) -> ConsoleOperator:
    return ConsoleOperator(Console(file=io.StringIO()), assume_yes=assume_yes)


def no_problem(value: object) -> str | None:
    return None


def test_a_text_prompt_refuses_a_bad_name_inline_then_takes_a_good_one() -> None:
    seen: list[object] = []

    def validate(value: object) -> str | None:
        seen.append(value)
        return "'BADname' breaks naming rule org-id" if str(value).startswith("BAD") else None

    spec = InputSpec(id="org_id", type="string", prompt="Org id?", help="lower-case letters and digits")
    with typing(("Org id?", "BADname" + ENTER), ("breaks naming rule org-id", BACKSPACE * 7 + "acme" + ENTER)) \
            as screen:
        answer = operator().ask(spec, default=None, choices=(), validate=validate)
    assert answer == "acme"
    assert seen == ["BADname", "acme"]  # the refused answer never left the prompt
    assert "? Org id? (lower-case letters and digits)" in screen.text


def test_a_text_prompt_offers_its_default() -> None:
    spec = InputSpec(id="vpc_name", type="string", prompt="VPC name?")
    with typing(("VPC name?", ENTER)):
        assert operator().ask(spec, default="POS-VPC", choices=(), validate=no_problem) == "POS-VPC"


def test_a_select_moves_with_the_arrow_keys_from_the_default() -> None:
    spec = InputSpec(id="rds_instance", type="choice", prompt="Which RDS instance?")
    choices = ("db-POS-01", "db-POS-02", "db-POS-03")
    with typing(("db-POS-03", DOWN + ENTER)) as screen:
        answer = operator().ask(spec, default="db-POS-02", choices=choices, validate=no_problem)
    assert answer == "db-POS-03"
    assert "Which RDS instance?" in screen.text
    with typing(("db-POS-03", DOWN + DOWN + ENTER)):  # no default in the choices: from the first
        assert operator().ask(spec, default="db-POS-09", choices=choices, validate=no_problem) == "db-POS-03"


def test_prompts_show_hostile_names_and_choices_inert_and_answer_the_real_value() -> None:
    # questionary draws its own screen, outside kprov's console: a live lookup's choice (an RDS instance
    # named by whoever made it) and a lock's target reach it; the screen must show them escaped.
    hostile = "db-\x1b]0;pwned\x07\u202eevil"
    spec = InputSpec(id="rds_instance", type="choice", prompt="Which RDS instance \x1b[2J?")
    with typing(("evil", DOWN + ENTER)) as screen:
        answer = operator().ask(spec, default=None, choices=("db-POS-01", hostile), validate=no_problem)
    assert answer == hostile  # the value itself, for the engine's own checks
    raw = screen.raw.getvalue()
    assert "\x07" not in raw and "\u202e" not in raw and "]0;pwned" not in raw.replace("\\u001b]0;pwned", "")
    assert "db-\\u001b]0;pwned\\u0007\\u202eevil" in screen.text
    assert "Which RDS instance \\u001b[2J?" in screen.text
    with typing(("to go on:", "client:acme" + ENTER)) as screen:
        assert operator().type_to_confirm(f"Held by {hostile}.", "client:acme") is True
    assert "\u202e" not in screen.raw.getvalue() and "Held by db-\\u001b]0;pwned" in screen.text


def test_a_bool_input_is_a_yes_or_no_line() -> None:
    spec = InputSpec(id="dns_in_route53", type="bool", prompt="Is the domain in Route 53?")
    with typing(("Route 53? (y/N)", "y" + ENTER)):
        assert operator().ask(spec, default=False, choices=(), validate=no_problem) is True
    with typing(("Route 53?", ENTER)):  # Enter takes the default
        assert operator().ask(spec, default=False, choices=(), validate=no_problem) is False


@pytest.mark.parametrize("ask", ["input", "confirm"])
def test_maybe_is_not_yes_it_is_asked_again(ask: str) -> None:
    # Before: questionary's confirm answered at the first "y" key, so "maybe" was taken as Yes.
    spec = InputSpec(id="dns_in_route53", type="bool", prompt="Is the domain in Route 53?")
    with typing(("Route 53?", "maybe" + ENTER), ("answer yes or no (y or n)", BACKSPACE * 5 + "no" + ENTER)) as screen:
        if ask == "input":
            answer = operator().ask(spec, default=True, choices=(), validate=no_problem)
        else:
            answer = operator().confirm("Is the domain in Route 53?", default=True)
    assert answer is False
    assert "answer yes or no (y or n)" in screen.text


def test_a_select_asks_again_when_a_rule_refuses_the_choice() -> None:
    # Before: a select had no validation, so a secondary zone equal to the primary was taken.
    spec = InputSpec(id="secondary_zone", type="choice", prompt="Secondary zone?")
    refuse = {"us-east-1a": "must differ from primary_zone (us-east-1a): choose another"}
    with typing(("Secondary zone?", ENTER), ("choose another", DOWN + ENTER)) as screen:
        answer = operator().ask(spec, default=None, choices=("us-east-1a", "us-east-1b"),
                                validate=lambda v: refuse.get(str(v)))
    assert answer == "us-east-1b"
    assert "must differ from primary_zone" in screen.text


def test_confirm_asks_for_work_done_by_hand_even_with_yes() -> None:
    with typing(("Done?", "n" + ENTER)) as screen:
        assert operator(assume_yes=True).confirm("Done?", key="install-pos") is False
    assert "Done?" in screen.text
    with typing(("Create: the VPC?", "y" + ENTER)):
        assert operator().confirm("Create: the VPC?", default=False) is True


def test_yes_answers_a_routine_confirm_without_a_prompt() -> None:
    with typing(("", "n" + ENTER)) as screen:  # an "n" waits in the pipe: a prompt would read it
        assert operator(assume_yes=True).confirm("Create: the VPC?") is True
    assert screen.text == ""


def test_a_password_prompt_gives_a_secret_and_never_shows_the_value() -> None:
    seen: list[object] = []

    def validate(value: object) -> str | None:
        seen.append(value)
        return None

    spec = InputSpec(id="admin_password", type="secret", prompt="Administrator password?")
    with typing(("Administrator password?", "Sup3r-Secret-Value-1" + ENTER)) as screen:
        answer = operator().ask(spec, default=None, choices=(), validate=validate)
    assert isinstance(answer, Secret) and answer.reveal() == "Sup3r-Secret-Value-1"
    assert seen and all(isinstance(value, Secret) for value in seen)  # validation sees a Secret too
    assert "Sup3r" not in screen.raw.getvalue() and "*" * 20 in screen.text


def test_type_to_confirm_compares_what_was_typed() -> None:
    with typing(("Type acme to go on:", " acme " + ENTER)):
        assert operator().type_to_confirm("This environment is protected.", "acme") is True
    with typing(("Type acme to go on:", "acm" + ENTER)):
        assert operator().type_to_confirm("This environment is protected.", "acme") is False


def test_ctrl_c_in_a_prompt_interrupts_instead_of_answering_none() -> None:
    spec = InputSpec(id="org_id", type="string", prompt="Org id?")
    with typing(("Org id?", CTRL_C)), pytest.raises(KeyboardInterrupt):
        operator().ask(spec, default=None, choices=(), validate=no_problem)


def test_a_prompt_pauses_the_live_view_and_brings_it_back() -> None:
    console = render.make_console(io.StringIO())
    console._force_terminal = True
    reporter = render.LiveReporter(console, [("vpc", "Create the VPC")])
    live_while_asked: list[bool] = []

    def validate(value: object) -> str | None:
        live_while_asked.append(reporter._live is not None)
        return None

    try:
        reporter.step_started("vpc", "Create the VPC")
        assert reporter._live is not None
        spec = InputSpec(id="vpc_name", type="string", prompt="VPC name?")
        with typing(("VPC name?", "POS-VPC" + ENTER)):
            assert ConsoleOperator(console).ask(spec, default=None, choices=(), validate=validate) == "POS-VPC"
        assert live_while_asked == [False] and reporter._live is not None  # back after the answer
    finally:
        reporter.close()


def test_manual_instructions_keep_a_long_sql_statement_whole_and_unboxed() -> None:
    out = io.StringIO()
    made = render.make_console(out)
    made.width = 60
    statement = ("CREATE LOGIN [POS_acme_user] WITH PASSWORD = N'<from the password manager>', "
                 "DEFAULT_DATABASE = [POS_acme], CHECK_POLICY = ON;")
    ConsoleOperator(made).instruct("client-login", f"Connect to SQL Server db-POS-01 and run this script:\n\n"
                                                   f"{statement}\nGO")
    lines = out.getvalue().splitlines()
    assert lines[0] == "☐ Manual step: client-login"
    assert statement in lines and "GO" in lines  # one line each, as typed: select it and copy it
    assert not set("│╭╮╰╯─") & set(out.getvalue())


def test_an_authoring_note_is_not_shown_at_the_prompt() -> None:
    spec = InputSpec(id="support_email", type="string", prompt="Support e-mail?",
                     help="[INFER] The old on-site docs used support@fusionPOS.com.")
    with typing(("Support e-mail?", "ops@kensium.example" + ENTER)) as screen:
        assert operator().ask(spec, default=None, choices=(), validate=no_problem) == "ops@kensium.example"
    assert "? Support e-mail? (The old on-site docs used support@fusionPOS.com.)" in screen.text
    assert "INFER" not in screen.text


def test_a_hostile_default_is_shown_escaped_in_the_text_prompt() -> None:
    spec = InputSpec(id="vpc_name", type="string", prompt="VPC name?")
    with typing(("VPC name?", ENTER)) as screen:
        answer = operator().ask(spec, default="POS\u202eCPV", choices=(), validate=no_problem)
    assert "\u202e" not in screen.raw.getvalue() and "POS\\u202eCPV" in screen.text
    assert answer == "POS\\u202eCPV"  # visible, and no naming rule takes a backslash
