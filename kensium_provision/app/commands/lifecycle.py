"""Commands of a client's later life: `remove-client` (offboarding, issue 18.1) and `names free`.

The removal is a checklist run like an install (`provision.run_checklist`): `client/remove` reads what the
install made from the client record, so the command needs only the org id and the removal's own answers.
Its steps are `destroy`: the bootstrap has the operator type the org id before the first change on every
environment, and `--yes` never does it (an answers file's `confirm_target` does, for an unattended run).

A removed client's org id stays taken (`records.clients.decide_owner`): a new client must not inherit its
host name, bucket name or history by accident. `names free ORG_ID` frees it on purpose, as `lock break`
breaks a lock: the guards, the typed org id at a terminal, and the journal, which keeps the removed
record's whole document (a later install of the id overwrites the record). The org's IAM user and bucket,
if they are still there, keep the id taken all the same (N1: every use of an org id counts).
"""

from __future__ import annotations

from pathlib import Path

from kensium_provision.app.commands.provision import _shown, preflight_choice, run_checklist
from kensium_provision.app.context import Context
from kensium_provision.model import Mode

__all__ = ["ROTATIONS", "names_free", "remove_client", "rotate"]

# kprov rotate ORG_ID RESOURCE: the client resources whose credential client/rotate rotates, and which.
ROTATIONS = {"sql": "sql-login", "rabbitmq": "rabbitmq-user"}


def remove_client(context: Context, *, org_id: str, dry_run: bool, answers: Path | None, yes: bool,
                  preflight: bool = False, skip_preflight: bool = False) -> int:
    from kensium_provision.checklist.catalog import find

    code, document = run_checklist(context, find("client/remove").path, Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={"org_id": org_id},
                                   command=f"remove-client {org_id}",
                                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))
    return _shown(context, code, document)


def rotate(context: Context, *, owner: str, resource: str, credential: str | None, dry_run: bool,
           answers: Path | None, yes: bool, preflight: bool = False, skip_preflight: bool = False) -> int:
    """Rotate one credential of a client (`client/rotate`); the shared resources' credentials are not yet."""
    from kensium_provision.app.context import UsageError
    from kensium_provision.checklist.catalog import find

    if owner == "shared":
        raise UsageError("rotating a shared resource's credential (RDS master, broker admin) is not built yet; "
                         "rotate a client's: kprov rotate ORG_ID sql|rabbitmq", param_hint="ORG_ID")
    if resource not in ROTATIONS:
        raise UsageError(f"{resource!r} is not one of: {', '.join(ROTATIONS)}", param_hint="RESOURCE")
    wanted = ROTATIONS[resource]
    if credential not in (None, wanted):
        raise UsageError(f"{resource} of a client has one credential, {wanted}", param_hint="--credential")
    code, document = run_checklist(context, find("client/rotate").path, Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={"org_id": owner, "credential": wanted},
                                   command=f"rotate {owner} {resource}",
                                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))
    return _shown(context, code, document)


def names_free(context: Context, *, org_id: str) -> int:
    """Free a removed client's org id: the guards, the typed org id, then a journaled conditional write."""
    from rich.text import Text

    from kensium_provision.app.bootstrap import connect, new_run_id, open_config, open_journal, open_operator
    from kensium_provision.errors import AbortedError, ExitCode, InputError
    from kensium_provision.records.clients import REMOVED, free_record, get_client, record_name, table_of
    from kensium_provision.ui.render import print_banner

    config, env = open_config(context)
    connection = connect(context, config, env, Mode.APPLY)  # the guards before the table is read
    table = table_of(config.settings())
    dynamodb = connection.session.client("dynamodb")
    record = get_client(dynamodb, org_id, table)
    console = context.console()
    identity = connection.identity
    print_banner(console, {"caller": f"{identity.display_name} ({identity.arn})", "account": identity.account,
                           "region": env.region, "environment": env.name + (" (sandbox)" if env.sandbox else ""),
                           "target": f"client:{org_id}", "mode": "names-free"}, protected=env.protected)
    if record is None or record.status != REMOVED:  # asked again, conditionally, by free_record
        state = "there is no client record" if record is None else f"the client record says {record.status}"
        raise InputError(f"org id {org_id!r} cannot be freed: {state} ({record_name(org_id, table)})",
                         hint=f"only a removed client's org id is freed: kprov remove-client {org_id} first")
    console.print(Text(f"{record_name(org_id, table)}: {record.client_name}, removed by run "
                       f"{record.run_id or '?'} ({record.updated})."))
    if context.non_interactive:
        raise AbortedError(f"freeing an org id needs a terminal: type {org_id} to confirm")
    operator = open_operator(console, interactive=True)
    if not operator.type_to_confirm(f"A new client may then be installed as {org_id}.", org_id):
        return int(ExitCode.ABORTED)
    run_id = new_run_id()
    journal, _ = open_journal(connection, run_id, mode=Mode.APPLY, header={
        "checklist": "", "checklist_sha256": "", "mode": "names-free", "target": f"client:{org_id}",
        "command": f"names free {org_id}", "client": org_id})
    journal.record("guard", guard="identity", outcome="ok", caller=identity.arn, account=identity.account)
    outcome = "failed"
    try:
        was = free_record(dynamodb, org_id, table, run_id=run_id, by=identity.arn)
        journal.record("client.freed", org_id=org_id, record=was.document())  # references only, never a secret
        outcome = "ok"
    finally:
        journal.close(outcome)
    console.print(Text(f"org id {org_id} is free again (journaled; the removed record is in run {run_id})",
                       style="yellow"))
    return 0
