"""One command's world: the global options it was given and the process edges it may touch.

httpie's `Environment` idea (research/style-anchors.md, 1.4): `cli.main(argv, context)` takes one
of these, so a test runs the real command line in-process and replaces an edge (how the embedded
sandbox is reached) without patching module internals. A `Context` is frozen; the command line
makes the one a command gets from the options it parsed (`with_options`).

Cheap to import: the command line reads it before any command runs (`kprov --help` stays fast).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from kensium_provision.errors import ExitCode, KprovError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Context", "Output", "SandboxStarter", "UsageError", "in_process_sandbox", "start_sandbox"]

# How this process reaches the embedded sandbox: (state dir, region) -> its endpoint URL, "" when it is
# served in this very process (moto's mock_aws in tests), so no client gets an endpoint.
SandboxStarter = Callable[[Path, str], str]


def start_sandbox(state: Path, region: str) -> str:
    """The sandbox kprov starts on demand (a moto server in a child process), and its endpoint."""
    from kensium_provision.sandbox import server

    return str(server.ensure_running(state, region=region).endpoint)


def in_process_sandbox(state: Path, region: str) -> str:
    """The sandbox is served in this process (moto's `mock_aws` patches botocore): no endpoint."""
    return ""


class Output(StrEnum):
    text = "text"
    json = "json"


class UsageError(KprovError):
    """The command line asks for something that cannot be (exit 2); the command line shows it as click does."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, param_hint: str = "") -> None:
        super().__init__(message)
        self.param_hint = param_hint


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The global options (`--env`, `--config`, `--output`, `--non-interactive`, `-v`) and the edges."""

    env: str | None = None
    config: Path | None = None
    output: Output = Output.text
    non_interactive: bool = False
    verbose: int = 0
    argv: tuple[str, ...] = ()  # the command line as typed (crash reports; JSON errors before parsing ended)
    sandbox: SandboxStarter = start_sandbox

    @property
    def json(self) -> bool:
        return self.output is Output.json

    @property
    def interactive(self) -> bool:
        return not self.non_interactive

    def with_options(self, *, env: str | None, config: Path | None, output: Output, non_interactive: bool,
                     verbose: int) -> Context:
        """The context of a command: its global options; without a terminal a command never prompts."""
        if verbose >= 2:
            from kensium_provision.ui.diagnostics import enable_debug

            enable_debug()
        return replace(self, env=env, config=config, output=output, verbose=verbose,
                       non_interactive=non_interactive or not _stdin_is_a_terminal())

    def wants_json(self) -> bool:
        """`--output json`, also when parsing failed before the options were read (a usage error)."""
        return self.json or _json_in(self.argv)

    def console(self) -> Console:
        """Human output (stderr): stdout is kept for `--output json`."""
        from kensium_provision.ui.render import make_console

        return make_console()


def _stdin_is_a_terminal() -> bool:
    try:
        return bool(sys.stdin.isatty())
    except (AttributeError, ValueError, OSError):  # no stdin, a closed or a detached one
        return False


def _json_in(args: Sequence[str]) -> bool:
    return "--output=json" in args or ("--output", "json") in pairwise(args)
