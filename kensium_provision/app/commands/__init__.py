"""The commands: one small function per command, each taking a `Context` and returning an exit code.

`COMMANDS` is the one table of them, read lazily (pip's `commands_dict`): the command line declares
every command with typer and calls `invoke(name, context, ...)`, which imports only the module of the
command that runs. So `kprov --help` imports none of them, and `kprov validate` never imports boto3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from kensium_provision.app.context import Context

__all__ = ["COMMANDS", "CommandInfo", "command", "invoke"]


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """Where a command lives: a module of this package and the function in it."""

    module: str
    function: str


COMMANDS: Mapping[str, CommandInfo] = {
    "install-client": CommandInfo("plans", "install_client"),  # --out: a saved plan, else provision's
    "remove-client": CommandInfo("lifecycle", "remove_client"),
    "rotate": CommandInfo("lifecycle", "rotate"),
    "provision shared": CommandInfo("plans", "provision_shared"),
    "resume": CommandInfo("provision", "resume"),
    "undo": CommandInfo("undo", "undo"),
    "check shared": CommandInfo("check", "check_shared"),
    "check client": CommandInfo("check", "check_client"),
    "fleet": CommandInfo("fleet", "fleet"),
    "list": CommandInfo("catalog", "list_checklists"),
    "show": CommandInfo("plans", "show"),  # a plan file, else a checklist (catalog.show)
    "apply": CommandInfo("plans", "apply_plan"),
    "approve": CommandInfo("plans", "approve"),
    "validate": CommandInfo("catalog", "validate"),
    "schema": CommandInfo("catalog", "schema"),
    "names check": CommandInfo("names", "names_check"),
    "names show": CommandInfo("names", "names_show"),
    "names free": CommandInfo("lifecycle", "names_free"),
    "runs list": CommandInfo("history", "runs_list"),
    "runs show": CommandInfo("history", "runs_show"),
    "audit verify": CommandInfo("history", "audit_verify"),
    "audit show": CommandInfo("history", "audit_show"),
    "sandbox start": CommandInfo("sandbox", "sandbox_start"),
    "sandbox stop": CommandInfo("sandbox", "sandbox_stop"),
    "sandbox status": CommandInfo("sandbox", "sandbox_status"),
    "sandbox reset": CommandInfo("sandbox", "sandbox_reset"),
    "lock list": CommandInfo("locks", "lock_list"),
    "lock break": CommandInfo("locks", "lock_break"),
    "iam policy": CommandInfo("iam", "iam_policy"),
}


def command(name: str) -> Callable[..., int]:
    """The function of command `name` (its module imported now, not before)."""
    info = COMMANDS[name]
    module = importlib.import_module(f"{__name__}.{info.module}")
    return cast("Callable[..., int]", getattr(module, info.function))


def invoke(name: str, context: Context, **params: object) -> int:
    """Run command `name` with the command line's parameters; its exit code."""
    return int(command(name)(context, **params))
