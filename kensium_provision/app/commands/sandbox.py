"""The embedded sandbox AWS (moto on 127.0.0.1): `sandbox start | stop | status | reset`."""

from __future__ import annotations

from kensium_provision.app.context import Context
from kensium_provision.errors import ExitCode
from kensium_provision.guards import SANDBOX_ACCOUNT_ID

__all__ = ["sandbox_reset", "sandbox_start", "sandbox_status", "sandbox_stop"]


def sandbox_start(context: Context) -> int:
    from rich.text import Text

    from kensium_provision.app.config import state_dir as state
    from kensium_provision.sandbox import server as sandbox

    info = sandbox.ensure_running(state())
    context.console().print(Text(f"sandbox running at {info.endpoint} (pid {info.pid})", style="green"))
    return 0


def sandbox_stop(context: Context) -> int:
    from rich.text import Text

    from kensium_provision.app.config import state_dir as state
    from kensium_provision.sandbox import server as sandbox

    stopped = sandbox.stop(state())
    context.console().print(Text("sandbox stopped" if stopped else "sandbox was not running"))
    return 0


def sandbox_status(context: Context) -> int:
    """Exit 0 while it runs and answers, 1 when it does not run or does not answer (hung)."""
    from rich.text import Text

    from kensium_provision.app.config import state_dir as state
    from kensium_provision.sandbox import server as sandbox
    from kensium_provision.ui import json_output

    info = sandbox.status(state())
    hung = sandbox.hung(state()) if info is None else None
    if context.json:
        json_output.emit(json_output.sandbox(info, account_id=SANDBOX_ACCOUNT_ID,
                                             hung=hung.info if hung is not None else None))
    console = context.console()
    if hung is not None:  # alive but silent: "not running" would invite a second, empty server
        console.print(Text(f"sandbox running but not answering: its server (pid {hung.info.pid}, "
                           f"{hung.info.endpoint}) {hung.why} and did not answer within {sandbox.HEALTH_TIMEOUT:g} s",
                           style="red"))
        console.print(Text(f"hint: {hung.hint}"))
        return int(ExitCode.FAILED)
    if info is None:
        console.print(Text("sandbox not running (it starts on demand)"))
        return int(ExitCode.FAILED)
    console.print(Text(f"sandbox running at {info.endpoint} (pid {info.pid}, since {info.started}); "
                       f"account {SANDBOX_ACCOUNT_ID}; RabbitMQ API {info.rabbitmq_url or '-'}", style="green"))
    return 0


def sandbox_reset(context: Context) -> int:
    from rich.text import Text

    from kensium_provision.app.config import state_dir as state
    from kensium_provision.sandbox import server as sandbox

    sandbox.ensure_running(state())
    sandbox.reset(state())
    context.console().print(Text("sandbox reset: empty", style="green"))
    return 0
