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

from kensium_provision.app.commands.provision import preflight_choice, reported, run_checklist
from kensium_provision.app.context import Context
from kensium_provision.model import Mode

__all__ = ["ROTATIONS", "SHARED_ROTATIONS", "names_free", "remove_client", "rotate"]

# kprov rotate ORG_ID RESOURCE [--credential NAME]: per client resource, its credentials (the first is the
# default) and the answer of client/rotate's `credential` input that rotates each.
ROTATIONS: dict[str, dict[str, str]] = {
    "sql": {"login": "sql-login"},
    "rabbitmq": {"user": "rabbitmq-user"},
    "iam": {"access-key": "iam-access-key", "old-key": "iam-old-key"},  # old-key: delete the inactive one
}
# kprov rotate shared RESOURCE [--credential NAME]: the shared resources' credentials and their checklists.
SHARED_ROTATIONS: dict[str, dict[str, str]] = {
    "rds": {"master": "shared/rotate-rds"},
    "rabbitmq": {"admin": "shared/rotate-rabbitmq"},
}


def _chosen(table: dict[str, dict[str, str]], resource: str, credential: str | None, whose: str) -> str:
    """What rotates `credential` of `resource` (its first when not named); a UsageError naming the choices."""
    from kensium_provision.app.context import UsageError

    if resource not in table:
        raise UsageError(f"{resource!r} is not one of {whose}: {', '.join(table)}", param_hint="RESOURCE")
    credentials = table[resource]
    if credential is None:
        return next(iter(credentials.values()))
    if credential in credentials.values():  # the checklist's own name of it (sql-login)
        return credential
    if credential not in credentials:
        raise UsageError(f"{resource} of {whose} has: {', '.join(credentials)}; not {credential!r}",
                         param_hint="--credential")
    return credentials[credential]


def remove_client(context: Context, *, org_id: str, dry_run: bool, answers: Path | None, yes: bool,
                  preflight: bool = False, skip_preflight: bool = False) -> int:
    from kensium_provision.checklist.catalog import find

    code, document = run_checklist(context, find("client/remove").path, Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={"org_id": org_id},
                                   command=f"remove-client {org_id}",
                                   preflight=preflight_choice(preflight=preflight, skip_preflight=skip_preflight))
    return reported(context, code, document)


def rotate(context: Context, *, owner: str, resource: str, credential: str | None, dry_run: bool,
           answers: Path | None, yes: bool, preflight: bool = False, skip_preflight: bool = False) -> int:
    """Rotate one credential: a client's (`client/rotate`) or a shared resource's (`shared/rotate-*`)."""
    from kensium_provision.checklist.catalog import find

    mode, chosen_preflight = Mode.PLAN if dry_run else Mode.APPLY, preflight_choice(preflight=preflight,
                                                                                     skip_preflight=skip_preflight)
    if owner == "shared":  # which instance or broker: the checklist's input, its choices read from AWS
        checklist = _chosen(SHARED_ROTATIONS, resource, credential, "the shared resources")
        code, document = run_checklist(context, find(checklist).path, mode, answers=answers, yes=yes, preset={},
                                       command=f"rotate shared {resource}", preflight=chosen_preflight)
        return reported(context, code, document)
    wanted = _chosen(ROTATIONS, resource, credential, "a client")
    code, document = run_checklist(context, find("client/rotate").path, mode, answers=answers, yes=yes,
                                   preset={"org_id": owner, "credential": wanted},
                                   command=f"rotate {owner} {resource}", preflight=chosen_preflight)
    return reported(context, code, document)


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
