"""Locks between operators: `lock list` and `lock break LOCK_ID`.

Locks in DynamoDB (`locks: {backend: dynamodb}`) are reached like any AWS work, through the
bootstrap: the root and account guards run before the table is read, a list is walled (check mode),
and a break is journaled under the caller's ARN, account and environment. Local lock files (the
default, the sandbox's) live in the state dir and ask AWS nothing: their break is journaled under
this machine's user.
"""

from __future__ import annotations

from kensium_provision.app.context import Context, UsageError
from kensium_provision.errors import AbortedError, ExitCode
from kensium_provision.model import Mode

__all__ = ["lock_break", "lock_list"]


def lock_list(context: Context) -> int:
    """Locks held now: target, holder, run, since, expiry."""
    from rich.table import Table
    from rich.text import Text

    from kensium_provision.app.bootstrap import connect, open_config, open_locks
    from kensium_provision.app.config import state_dir
    from kensium_provision.records.locks import DynamoLocks
    from kensium_provision.ui import json_output

    config, env = open_config(context)
    connection = connect(context, config, env, Mode.CHECK) if config.locks.backend == "dynamodb" else None
    locks = open_locks(config, connection.state if connection else state_dir(), connection)
    held = locks.list()
    if context.json:
        json_output.emit(json_output.locks(held))
        return 0
    if not held and isinstance(locks, DynamoLocks) and not locks.table_exists():
        # A fresh account: the first apply creates the table; a listing (check mode) never writes.
        context.console().print(Text(f"no lock table {locks.table} in this account yet: no locks are held "
                                     "(the first apply creates it)"))
        return 0
    table = Table("lock", "target", "holder", "run", "since", "expires")
    for r in json_output.lock_rows(held):
        table.add_row(*(Text(r[k]) for k in ("lock_id", "target", "who", "run_id", "created", "expires")))
    context.console().print(table)
    return 0


def lock_break(context: Context, *, lock_id: str) -> int:
    """Break another operator's lock: the guards first, then the typed target, then the journal."""
    from rich.text import Text

    from kensium_provision.app.bootstrap import (
        connect,
        new_run_id,
        open_config,
        open_journal,
        open_local_journal,
        open_locks,
        open_operator,
    )
    from kensium_provision.app.config import state_dir
    from kensium_provision.ui.render import print_banner

    config, env = open_config(context)
    # A lock break changes the table: an apply-mode session, and the guards before anything is read.
    connection = connect(context, config, env, Mode.APPLY) if config.locks.backend == "dynamodb" else None
    state = connection.state if connection else state_dir()
    locks = open_locks(config, state, connection)
    held = next((i for i in locks.list() if i.lock_id == lock_id), None)
    if held is None:
        raise UsageError(f"no lock {lock_id!r} (see `kprov lock list`)", param_hint="LOCK_ID")
    console = context.console()
    caller = (f"{connection.identity.display_name} ({connection.identity.arn})" if connection
              else "this machine's user (local locks)")
    print_banner(console, {"caller": caller, "account": connection.identity.account if connection else "-",
                           "region": env.region, "environment": env.name + (" (sandbox)" if env.sandbox else ""),
                           "target": held.target, "mode": "lock-break"}, protected=env.protected)
    console.print(Text(f"{held.target} is held by {held.who} ({held.owner}), run {held.run_id}, since {held.created}."))
    if context.non_interactive:
        raise AbortedError("breaking a lock needs a terminal: type the lock's target to confirm")
    operator = open_operator(console, interactive=True)
    if not operator.type_to_confirm(f"Breaking the lock lets another run change {held.target}.", held.target):
        return int(ExitCode.ABORTED)
    header = {"checklist": "", "checklist_sha256": "", "mode": "lock-break", "target": held.target,
              "command": f"lock break {lock_id}"}
    run_id = new_run_id()
    journal, _ = (open_journal(connection, run_id, mode=Mode.APPLY, header=header) if connection
                  else open_local_journal(env, state, run_id, header=header))
    if connection:
        journal.record("guard", guard="identity", outcome="ok", caller=connection.identity.arn,
                       account=connection.identity.account)
    outcome = "failed"
    try:
        broken = locks.break_(lock_id)
        journal.record("lock.broken", lock_id=lock_id, target=broken.target, holder=broken.owner, run=broken.run_id,
                       environment=env.name)
        outcome = "ok"
    finally:
        journal.close(outcome)
    console.print(Text(f"lock on {broken.target} broken (journaled)", style="yellow"))
    return 0
