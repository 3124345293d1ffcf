"""Commands of a client's later life: `remove-client` (offboarding, issue 18.1).

The removal is a checklist run like an install (`provision.run_checklist`): `client/remove` reads what the
install made from the client record, so the command needs only the org id and the removal's own answers.
Its steps are `destroy`: the bootstrap has the operator type the org id before the first change on every
environment, and `--yes` never does it (an answers file's `confirm_target` does, for an unattended run).
"""

from __future__ import annotations

from pathlib import Path

from kensium_provision.app.commands.provision import run_checklist
from kensium_provision.app.context import Context
from kensium_provision.model import Mode

__all__ = ["remove_client"]


def remove_client(context: Context, *, org_id: str, dry_run: bool, answers: Path | None, yes: bool) -> int:
    from kensium_provision.checklist.catalog import find

    code, document = run_checklist(context, find("client/remove").path, Mode.PLAN if dry_run else Mode.APPLY,
                                   answers=answers, yes=yes, preset={"org_id": org_id},
                                   command=f"remove-client {org_id}")
    if context.json:
        from kensium_provision.ui import json_output

        json_output.emit(document)
    return code
