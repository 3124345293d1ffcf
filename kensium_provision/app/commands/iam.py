"""`kprov iam policy`: the least-privilege IAM policy document kprov needs for some checklists in a mode.

No AWS call: the account and region come from the chosen environment of the config (`*` when it
names no account), the tables, log group and password manager from the config's settings.

`--mode undo` is the policy of `kprov undo` of runs of those checklists (its dry run and its removal), and
`--mode apply` does not include it: a change manager grants the right to delete apart from the right to make.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from kensium_provision.app.context import Context, UsageError
from kensium_provision.model import Mode

if TYPE_CHECKING:
    from kensium_provision.app.config import Config
    from kensium_provision.guards import Environment
    from kensium_provision.permissions.policy import Scope

__all__ = ["MODES", "iam_policy", "scope_of"]

MODES = (Mode.PLAN, Mode.CHECK, Mode.APPLY)
MODE_NAMES = (*(m.value for m in MODES), "undo")


def scope_of(config: Config, env: Environment) -> Scope:
    """The values of the policy's resource templates for `env` of `config`."""
    import botocore.session

    from kensium_provision.permissions.policy import Scope

    return Scope(partition=botocore.session.get_session().get_partition_for_region(env.region), region=env.region,
                 account=env.account_id or "*", environment=env.name, clients_table=config.clients.table,
                 locks_table=config.locks.table if config.locks.backend == "dynamodb" else "",
                 log_group=config.journal.cloudwatch_log_group, vault=config.vault.backend,
                 approvals=env.name in config.approval_required)


def iam_policy(context: Context, *, checklists: list[str] | None, mode: str) -> int:
    """Print the policy document (stdout) of `checklists` (default: all) in `mode`; exit 1 if it is too large."""
    from rich.text import Text

    from kensium_provision.app.bootstrap import open_config
    from kensium_provision.checklist.catalog import entries, find
    from kensium_provision.checklist.schema import load_checklist
    from kensium_provision.errors import KprovError
    from kensium_provision.permissions.policy import (
        MANAGED_POLICY_LIMIT,
        UNDO,
        document,
        needs,
        policy_size,
        undo_needs,
        undo_step_id,
    )

    if mode not in MODE_NAMES:
        raise UsageError(f"{mode!r} is not one of: {', '.join(MODE_NAMES)}", param_hint="--mode")
    config, env = open_config(context)
    paths = [find(name).path for name in checklists] if checklists else [e.path for e in entries()]
    loaded = [load_checklist(path) for path in paths]
    scope = scope_of(config, env)
    if mode == UNDO:  # any run of them undone: each step's undo (a type without one removes nothing)
        found = undo_needs([(undo_step_id(s.id), s.type) for c in loaded for s in reversed(c.steps)], scope,
                           scopes={c.scope for c in loaded})
    else:
        found = needs(loaded, next(m for m in MODES if m.value == mode), scope)
    policy = document(found)
    size = policy_size(policy)
    if context.json:
        from kensium_provision.ui import json_output

        json_output.emit({"kind": "iam-policy", "mode": mode, "environment": env.name,
                          "checklists": [c.id for c in loaded], "size": size, "limit": MANAGED_POLICY_LIMIT,
                          "policy": policy,
                          "needs": [{"where": n.where, "operation": n.operation, "action": n.action,
                                     "resources": list(n.resources)} for n in found]})
    else:
        sys.stdout.write(json.dumps(policy, indent=2) + "\n")
        actions = {n.action for n in found}
        context.console().print(Text(
            f"{len(actions)} actions for {', '.join(c.id for c in loaded)} in {mode} mode ({env.describe()}); "
            f"{size} of {MANAGED_POLICY_LIMIT} characters", style="dim"), soft_wrap=True)
    if size > MANAGED_POLICY_LIMIT:
        raise KprovError(f"the policy has {size} characters, over the {MANAGED_POLICY_LIMIT} of a managed policy",
                         hint="ask for fewer checklists at a time and attach one policy each (up to 10 per role)")
    return 0
