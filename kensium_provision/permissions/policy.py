"""The least-privilege IAM policy of some checklists in a mode: what each step, lookup and part of kprov needs.

`needs` says, per step (in order) and per part of kprov, which IAM actions on which resources a run
will ask for (from `permissions.declared`); `document` groups them into a policy document valid for
`iam:CreatePolicy`. The same needs feed the preflight, so what is printed is what is checked.

An undo (`kprov undo`) is a mode of its own here (`undo_needs`): each step type's `Uses.undo` and kprov's
own undo calls (`Component.undo`), never part of an apply's policy, so that the right to remove is granted
separately from the right to make.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from string import Template
from typing import Any

from kensium_provision.errors import KprovError
from kensium_provision.model import Checklist, Mode, Step
from kensium_provision.permissions import declared
from kensium_provision.permissions.actions import iam_action

__all__ = ["MANAGED_POLICY_LIMIT", "UNDO", "Need", "Scope", "document", "needs", "policy_size", "step_operations",
           "undo_needs", "undo_step_id"]

# "Managed policy size: 6,144 characters", white space not counted:
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
MANAGED_POLICY_LIMIT = 6144
UNDO = "undo"  # `kprov iam policy --mode undo`: not an engine mode (an undo runs in plan or apply mode)
_OPERATION = re.compile(r"[a-z0-9-]+:[A-Z][A-Za-z0-9]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Where the policy applies: the values of the resource templates (`*` for what is not known)."""

    partition: str = "aws"
    region: str = "*"
    account: str = "*"
    environment: str = "*"
    clients_table: str = "kprov-clients"
    locks_table: str = ""  # "": local locks, no locks table
    log_group: str = ""  # "": the journal stays on the operator's machine
    vault: str = "secretsmanager"
    approvals: bool = False  # the environment requires approval: its applies read (and approvers write) approvals

    def render(self, template: str) -> str:
        return Template(template).substitute(
            Partition=self.partition, Region=self.region, Account=self.account, Environment=self.environment,
            ClientsTable=self.clients_table, LocksTable=self.locks_table or "*", LogGroup=self.log_group or "*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Need:
    """One IAM action a run needs, where it needs it (a step or a part of kprov), and on what."""

    where: str  # "step rds (rds.db-instance)", "lookup availability-zones", "kprov locks"
    step_id: str  # "" outside a step
    operation: str  # the API call: "ec2:CreateVpc"
    action: str  # its IAM action: "ec2:CreateVpc"
    resources: tuple[str, ...]


def step_operations(step: Step, phase: str) -> tuple[str, ...]:
    """The API operations (and `vault:` methods) of one step's phase, its params' read calls included."""
    uses = declared.STEPS.get(step.type)
    if uses is None:
        raise KprovError(f"step {step.id}: step type {step.type} declares no IAM actions (permissions.declared)",
                         hint="every step type needs an entry there: a kprov bug, please report it")
    found: list[str] = []
    for entry in uses.phase(phase):
        if entry.startswith("params:"):
            found.extend(_param_call(step, entry.removeprefix("params:")))
        else:
            found.append(entry)
    return tuple(found)


def _param_call(step: Step, key: str) -> tuple[str, ...]:
    call = step.params.get(key) if key else step.params
    if not call:
        return ()
    if not isinstance(call, Mapping):
        raise KprovError(f"step {step.id}: params {key or ''} is not a call (service, operation)")
    return (_operation(str(call.get("service", "")), str(call.get("operation", "")), f"step {step.id}"),)


def _operation(service: str, operation: str, where: str) -> str:
    name = f"{service}:{operation}"
    if not _OPERATION.fullmatch(name):
        raise KprovError(f"{where}: {name!r} is not a literal <service>:<Operation> (e.g. ec2:DescribeVpcs), so its "
                         "IAM action cannot be known before the run")
    return name


def needs(checklists: Sequence[Checklist], mode: Mode, scope: Scope,
          values: Mapping[str, object] | None = None) -> list[Need]:
    """Every IAM action `checklists` need in `mode`, step by step, then lookups, then kprov's own.

    With `values` (a run's answers) a step whose `when:` does not hold is left out.
    """
    found: list[Need] = []
    for checklist in checklists:
        for spec in checklist.inputs:
            for lookup in (spec.choices_from, spec.default_from):
                if lookup is None:
                    continue
                if lookup.name and lookup.name not in declared.LOOKUPS:
                    raise KprovError(f"input {spec.id}: lookup {lookup.name} declares no IAM actions "
                                     "(permissions.declared)", hint="a kprov bug, please report it")
                operations = declared.LOOKUPS[lookup.name] if lookup.name else (
                    _operation(lookup.service, lookup.operation, f"input {spec.id}"),)
                found += _resolved(f"lookup {lookup.name or spec.id}", "", operations, {}, scope)
        for step in checklist.steps:
            if values is not None and step.when is not None and not step.when.holds(values):
                continue
            uses = declared.STEPS.get(step.type)
            operations = tuple(op for phase in declared.PHASES[mode] for op in step_operations(step, phase))
            found += _resolved(f"step {step.id} ({step.type})", step.id, operations,
                               uses.resources if uses else {}, scope)
    for name, component in declared.COMPONENTS.items():
        if mode in component.modes and _wanted(name, {c.scope for c in checklists}, scope):
            found += _resolved(f"kprov {name}", "", _moded(name, component.operations, mode), component.resources,
                               scope)
    return _unique(found)


def undo_step_id(step_id: str) -> str:
    """The id of the undo step that undoes step `step_id` (engine.undo's checklist)."""
    return f"undo-{step_id}"


def undo_needs(steps: Iterable[tuple[str, str]], scope: Scope, *, scopes: Iterable[str]) -> list[Need]:
    """Every IAM action an undo needs: per (undo step id, undone step type), newest first, the type's `undo`
    (what its re-probe and its removal send); then kprov's own in an undo; `scopes`: the undone checklists'
    (an undo of a shared run removes its shared record)."""
    found: list[Need] = []
    for step_id, kind in steps:
        uses = declared.STEPS.get(kind)
        if uses is None:
            raise KprovError(f"step {step_id}: step type {kind} declares no IAM actions (permissions.declared)",
                             hint="every step type needs an entry there: a kprov bug, please report it")
        found += _resolved(f"step {step_id} ({kind})", step_id, uses.undo, uses.resources, scope)
    wanted = set(scopes)
    for name, component in declared.COMPONENTS.items():
        if component.undo and _wanted(name, wanted, scope):
            found += _resolved(f"kprov {name}", "", component.undo, component.resources, scope)
    return _unique(found)


def _wanted(name: str, scopes: set[str], scope: Scope) -> bool:
    return {"locks": bool(scope.locks_table), "journal": bool(scope.log_group),
            "journal-verify": bool(scope.log_group), "shared-records": "shared" in scopes,
            "client-records": "client" in scopes, "fleet": "client" in scopes,
            "approvals": scope.approvals}.get(name, True)


def _moded(name: str, operations: tuple[str, ...], mode: Mode) -> tuple[str, ...]:
    # Shared records: a check reads them, an apply writes the one it made.
    if name == "shared-records":
        return ("ssm:PutParameter",) if mode is Mode.APPLY else ("ssm:GetParametersByPath",)
    return operations


def _resolved(where: str, step_id: str, operations: Iterable[str], resources: Mapping[str, tuple[str, ...]],
              scope: Scope) -> list[Need]:
    found = []
    for operation in operations:
        if operation.startswith("vault:"):
            if scope.vault != "secretsmanager":
                continue  # another password manager: no AWS call
            method = operation.removeprefix("vault:")
            found += _resolved(where, step_id, declared.VAULT[method], declared.VAULT_RESOURCES, scope)
            continue
        action = iam_action(operation)
        if action is None:
            continue
        templates = next((arns for pattern, arns in resources.items() if fnmatchcase(action, pattern)), ("*",))
        found.append(Need(where=where, step_id=step_id, operation=operation, action=action,
                          resources=tuple(scope.render(t) for t in templates)))
    return found


def _unique(found: list[Need]) -> list[Need]:
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    kept = []
    for need in found:
        key = (need.where, need.action, need.resources)
        if key not in seen:
            seen.add(key)
            kept.append(need)
    return kept


def document(found: Iterable[Need]) -> dict[str, Any]:
    """The policy document: one statement per service and resource set, actions and resources sorted."""
    groups: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for need in found:
        resources = ("*",) if "*" in need.resources else tuple(sorted(set(need.resources)))
        groups.setdefault((need.action.split(":", 1)[0], resources), set()).add(need.action)
    # An action allowed on every resource needs no narrower statement of its own.
    anywhere = {a for (_, resources), actions in groups.items() if resources == ("*",) for a in actions}
    statements: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for (prefix, resources), actions in sorted(groups.items()):
        kept = sorted(actions if resources == ("*",) else actions - anywhere)
        if not kept:
            continue
        counts[prefix] = counts.get(prefix, 0) + 1
        sid = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", prefix))
        statements.append({"Sid": sid + (str(counts[prefix]) if counts[prefix] > 1 else ""), "Effect": "Allow",
                           "Action": kept, "Resource": "*" if resources == ("*",) else list(resources)})
    return {"Version": "2012-10-17", "Statement": statements}


def policy_size(policy: Mapping[str, Any]) -> int:
    """Characters as IAM counts them for the managed-policy quota: white space is not counted."""
    return len(re.sub(r"\s+", "", json.dumps(policy)))
