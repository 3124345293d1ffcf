"""The interactive operator: questionary prompts in a terminal (the only questionary importer).

Prompts validate inline with the same function the engine uses, and use `unsafe_ask()` so Ctrl-C
raises KeyboardInterrupt (plain `ask()` would turn it into None, which reads like "no"). Every
prompt runs inside `render.paused(console)`: the live checklist view steps aside while questionary
owns the screen, and comes back when the answer is in.

questionary writes to the terminal itself, not through kprov's console: every text it shows (a question,
a choice from a live lookup, a lock's target) passes `ui.boundary.safe` first; a choice's value stays
what it was, so the answer is the real one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from kensium_provision.model import InputSpec
from kensium_provision.ui.boundary import safe
from kensium_provision.ui.render import paused

__all__ = ["ConsoleOperator"]


class ConsoleOperator:
    """Asks a person at a terminal."""

    interactive = True

    def __init__(self, console: Console, *, assume_yes: bool = False,
                 fetch_secret: Callable[[str], object] | None = None) -> None:
        self.console = console
        self.assume_yes = assume_yes
        self.fetch_secret = fetch_secret

    def ask(self, spec: InputSpec, *, default: object, choices: Sequence[str],
            validate: Callable[[object], str | None]) -> object:
        import questionary

        def check(raw: Any) -> bool | str:
            problem = validate(raw)
            return True if problem is None else problem

        # `[INFER]` marks a checklist author's unconfirmed guess: a note for authors, not for the operator.
        help_text = " ".join(spec.help.replace("[INFER]", " ").split()) if spec.help else ""
        message = safe(spec.prompt + (f" ({help_text})" if help_text else ""))
        with paused(self.console):
            if spec.type == "secret":
                from kensium_provision.secret import Secret

                raw = questionary.password(message, validate=lambda v: check(Secret(v))).unsafe_ask()
                return Secret(raw)
            if spec.type == "bool":
                return _yes_no(message, default=bool(default), validate=validate)
            if choices:
                options = [questionary.Choice(safe(c, one_line=True), value=c) for c in choices]
                start = str(default) if default is not None and str(default) in choices else None
                while True:  # a select cannot refuse inline: a choice a step's rule refuses is asked again
                    picked = questionary.select(message, choices=options, default=start).unsafe_ask()
                    problem = validate(picked)
                    if problem is None:
                        return picked
                    questionary.print(f"  {safe(str(picked), one_line=True)}: {safe(problem)}", style="fg:ansired")
            # A default from a record or a lookup is data too: shown escaped (and refused if Enter takes it).
            shown_default = "" if default is None else safe(default, one_line=True)
            return questionary.text(message, default=shown_default, validate=check).unsafe_ask()

    def confirm(self, message: str, *, default: bool = False, key: str = "") -> bool:
        if self.assume_yes and not key:  # --yes answers routine questions only (runtime.Operator.confirm)
            return True

        with paused(self.console):
            return _yes_no(safe(message), default=default)

    def type_to_confirm(self, message: str, expected: str) -> bool:
        import questionary

        with paused(self.console):
            typed = questionary.text(safe(f"{message} Type {expected} to go on:")).unsafe_ask()
        return str(typed).strip() == expected

    def instruct(self, title: str, text: str) -> None:
        # No panel: a border would fold a long SQL statement mid-line and come along when it is copied.
        # The lines go out whole (soft wrap: the terminal wraps them on screen, a copy gets each one intact).
        self.console.print(Text(f"☐ Manual step: {safe(title)}", style="bold yellow"))
        self.console.print(Text(safe(text).strip("\n")), soft_wrap=True)
        self.console.print()

    def show_secret_once(self, label: str, secret: Any) -> None:
        # Straight to the terminal, never through logging or the journal; the vault asks for the confirmation.
        # The value stays on one line of its own (no panel border), so it can be selected and copied whole.
        self.console.print(Text("Copy this into the Kensium Password Manager now; kprov shows it only once.",
                                style="bold yellow"))
        self.console.print(Text(f"  {safe(label)}: "), Text(secret.reveal(), style="bold"), sep="")


def _yes_no(message: str, *, default: bool, validate: Callable[[object], str | None] | None = None) -> bool:
    """A y/N question answered by a line: yes/y or no/n (Enter: the default); anything else (`maybe`) is
    asked again. (questionary's confirm answers at the first y or n key, so "maybe" read as yes.)"""
    import questionary

    from kensium_provision.steps.kinds import parse_yes_no

    def answer(text: str) -> bool | None:
        return default if not text.strip() else parse_yes_no(text)

    def check(text: str) -> bool | str:
        found = answer(text)
        if found is None:
            return "answer yes or no (y or n)"
        problem = validate(found) if validate is not None else None
        return True if problem is None else problem

    typed = questionary.text(f"{message} ({'Y/n' if default else 'y/N'})", validate=check).unsafe_ask()
    return bool(answer(str(typed)))
