"""How a command that raised ends: the one mapping from an exception to a documented exit code.

The operator reads why on stderr (`kprov: error: ...` and a hint); with `--output json` a script
also gets an `error` document on stdout. A bug (any other exception) becomes exit 70 and a crash
report: versions, platform and a traceback without locals, with every known secret redacted.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from kensium_provision import __version__
from kensium_provision.app.context import Context
from kensium_provision.errors import ChecklistError, ExitCode, KprovError

__all__ = ["RunInterrupted", "crash_report", "exit_code_of", "json_error", "say_error"]


class RunInterrupted(KprovError):
    """Ctrl-C during a run whose journal exists (exit 130): the error names the run, the hint how to resume it.

    A KprovError, not a KeyboardInterrupt: typer turns those into a bare Abort on their way out.
    """

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, run_id: str, resume: str) -> None:
        super().__init__(f"interrupted: run {run_id} stopped (its journal says where)",
                         hint=f"resume it with `{resume}`" if resume else "run the command again")
        self.run_id = run_id


def say_error(message: str, *, hint: str = "") -> None:
    from rich.text import Text

    from kensium_provision.ui.render import make_console, safe

    console = make_console()
    # soft_wrap: paths and commands in errors must stay whole for copy and paste
    console.print(Text(f"kprov: error: {safe(message)}", style="bold red"), soft_wrap=True)
    if hint:
        console.print(Text(f"hint: {safe(hint)}", style="yellow"), soft_wrap=True)


def json_error(exc: BaseException, code: int, context: Context) -> None:
    """The `error` document, when the command line asked for JSON (even if parsing it failed)."""
    if context.wants_json():
        from kensium_provision.ui import json_output

        json_output.emit(json_output.error(exc, code))


def exit_code_of(exc: BaseException, context: Context) -> int:
    """The exit code of a command that raised `exc`, once the operator (and a script) were told why."""
    if isinstance(exc, KeyboardInterrupt):
        say_error("interrupted")
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, ChecklistError):
        from kensium_provision.ui.render import make_console, print_issues

        print_issues(make_console(), exc.issues)
        json_error(exc, int(exc.exit_code), context)
        return int(exc.exit_code)
    if isinstance(exc, KprovError):
        say_error(str(exc), hint=exc.hint)
        json_error(exc, int(exc.exit_code), context)
        return int(exc.exit_code)
    try:
        path = crash_report(exc, context)
    except OSError as failed:  # the disk that failed the command may fail the report too (ENOSPC, EROFS)
        say_error(f"internal error ({type(exc).__name__}); no crash report could be written: "
                  f"{failed.strerror or failed}", hint="free space in the state dir and run the command again "
                                                       "to get a crash report for a ticket")
        return int(ExitCode.INTERNAL)
    say_error(f"internal error ({type(exc).__name__}); a crash report was written to {path}",
              hint="please attach it to a ticket; it contains no secrets")
    return int(ExitCode.INTERNAL)


def crash_report(exc: BaseException, context: Context) -> str:
    """Write the crash report (mode 0600, never over another file); its path. A report that cannot be
    written whole is removed, and the OSError raised."""
    import platform

    from kensium_provision.secret import REDACTOR

    try:
        from kensium_provision.app.config import state_dir

        folder = state_dir() / "crash"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except Exception:  # noqa: BLE001 - a crash report must be written even when the state dir is unusable
        folder = Path(tempfile.gettempdir())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.txt"
    # An option's value given as --name=value may be a secret: only its name is kept.
    shown = " ".join(a if not a.startswith("-") or "=" not in a else a.split("=")[0] + "=…" for a in context.argv)
    body = "\n".join([
        f"kprov {__version__}", f"python {platform.python_version()} on {platform.platform()}",
        f"command: kprov {shown}",
        "", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    ])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(REDACTOR.redact(body))
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return str(path)
