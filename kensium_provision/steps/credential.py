"""The `credential.password` step type: generate a credential straight into the password manager.

Every credential kprov creates (RDS master, Amazon MQ admin, SQL logins, tenant Administrator,
RabbitMQ users) is made here: generated to the service's password policy, stored in the vault, and
known to the rest of the run only by its reference. Later steps fetch the value from the vault at
the moment they send it to a service, never earlier, and never show it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from kensium_provision.errors import InputError
from kensium_provision.model import Mode
from kensium_provision.steps.base import (
    Created,
    Difference,
    Param,
    Probe,
    StepContext,
    UndoCheck,
    record_created,
    refusal,
)

__all__ = ["CredentialPassword", "delete_entries", "entry_check", "vault_can_find"]

ENTRY = "password-entry"  # the kind of a password-manager entry a run stored (`record_created`)


def vault_can_find(vault: object) -> bool:
    """Whether `vault.find` can see stored entries.

    The manual backend cannot look anything up (its `find` is always None): the operator's
    confirmation when it was stored is the only evidence, so absence there proves nothing.
    """
    from kensium_provision.vault.backends import ManualVault

    return not isinstance(vault, ManualVault)


def _policy_names() -> tuple[str, ...]:
    from kensium_provision.secret import POLICIES

    return tuple(sorted(POLICIES))


def _entry(params: Mapping[str, Any]) -> str:
    from kensium_provision.vault.backends import entry_name

    name = params.get("name")
    if not isinstance(name, str):
        raise InputError("credential.password needs `name`: the password-manager entry, e.g. db-POS-01/master")
    return "/".join(entry_name(name))  # allow-listed <owner>/<credential>; raises InputError


def _policy(params: Mapping[str, Any]) -> str:
    from kensium_provision.secret import password_policy

    return password_policy(str(params.get("policy", ""))).name  # raises InputError listing the policies


class CredentialPassword:
    """Generate a password to a service's policy and store it in the password manager.

    Done when the password manager already holds the entry `name` (`<owner>/<credential>`, e.g.
    `db-POS-01/master`); its reference is the output `ref`. Otherwise a new password is generated
    to `policy` (amazon-mq, rds-sqlserver-master, sql-login, tenant-admin, rabbitmq-user,
    windows-admin) and stored; the value itself is never shown, logged or returned.

    `owner` (optional, the aws.assert parameters: service, operation, params, query and a
    comparison) says the resource this credential belongs to already exists: then no new password
    is ever generated, because it could not match the one the resource uses. If the password
    manager cannot show the entry, `check` reports it.

    Example: `name: "{{ name }}/master"`, `policy: rds-sqlserver-master`, outputs `{master_ref: ref}`.
    """

    name: ClassVar[str] = "credential.password"
    summary: ClassVar[str] = "Generate a password to a service's policy straight into the password manager."
    params: ClassVar[tuple[Param, ...]] = (
        Param(name="name", doc="Password-manager entry <owner>/<credential>, e.g. db-POS-01/master.",
              check=lambda v: refusal(_entry, {"name": v})),
        Param(name="policy", doc="Password policy: amazon-mq, rds-sqlserver-master, sql-login, tenant-admin, "
                                 "rabbitmq-user or windows-admin.", check=lambda v: refusal(_policy, {"policy": v})),
        Param(name="description", required=False, doc="What the credential is for (stored with it; never the value)."),
        Param(name="owner", kind="map", required=False,
              doc="An aws.assert (service, operation, params, query, comparison) that holds when the resource "
                  "using this credential already exists: then it is never generated again."),
    )
    outputs: ClassVar[tuple[str, ...]] = ("ref", "name")

    def _owner_exists(self, ctx: StepContext, params: Mapping[str, Any]) -> bool:
        check = params.get("owner")
        if not check:
            return False
        from kensium_provision.steps.generic import AwsAssert

        return AwsAssert().probe(ctx, check).done

    def probe(self, ctx: StepContext, params: Mapping[str, Any]) -> Probe:
        name, policy = _entry(params), _policy(params)
        desired = {"name": name, "policy": policy}
        vault = ctx.runtime.vault
        searchable = vault_can_find(vault)
        ref = vault.find(name) if searchable else None
        if ref:
            return Probe(done=True, note=f"the password manager holds {name}", current={"name": name},
                         desired=desired, outputs={"ref": ref, "name": name})
        if self._owner_exists(ctx, params):
            # A new password would not be the one the existing resource uses: never make one.
            where, ref = ("not found in the password manager", "") if searchable else \
                ("kept in the password manager", f"manual:{name}")
            return Probe(done=True, note=f"its resource already exists, so {name} was made with it ({where})",
                         current={"name": name}, desired=desired, outputs={"ref": ref, "name": name})
        if not searchable and ctx.runtime.mode is Mode.CHECK:
            return Probe(done=True, note=f"not checkable: the manual password manager cannot look up {name}",
                         desired=desired, outputs={"ref": f"manual:{name}", "name": name})
        # The manual password manager cannot be asked: whether it holds the entry is the operator's to confirm
        # (by hand), so a resumed run keeps the confirmation it journaled instead of asking again.
        return Probe(done=False, note=f"{name} will be generated ({policy}) and stored in the password manager",
                     desired=desired, by_hand=not searchable)

    def act(self, ctx: StepContext, params: Mapping[str, Any], probe: Probe) -> Mapping[str, object]:
        from kensium_provision.secret import generate_password

        name, policy = _entry(params), _policy(params)
        vault = ctx.runtime.vault
        operator = ctx.runtime.operator
        # Only the operator knows what the manual password manager holds: never replace an entry.
        if not vault_can_find(vault) and operator.interactive and operator.confirm(
                f"Does the Kensium Password Manager already hold {name}? (yes: kprov reuses it and generates "
                "nothing)", default=False, key=f"vault:{name}"):
            return {"ref": f"manual:{name}", "name": name}
        description = str(params.get("description") or f"{policy} credential, generated by kprov")
        secret = generate_password(policy)
        ref = vault.store(name, secret, description=description, tags={"kprov:policy": policy})
        record_created(ctx, ENTRY, ref, name=name)
        return {"ref": ref, "name": name}

    def verify(self, ctx: StepContext, params: Mapping[str, Any]) -> Sequence[Difference]:
        name = _entry(params)
        vault = ctx.runtime.vault
        if not vault_can_find(vault) or vault.find(name):
            return ()
        return (Difference("password manager entry", None, name),)

    def undo_check(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> UndoCheck:
        return entry_check(ctx, created)

    def undo(self, ctx: StepContext, params: Mapping[str, Any], created: Sequence[Created]) -> None:
        delete_entries(ctx, created)


# --- undo: a password-manager entry the run stored ---------------------------------------------------------


def _secrets_manager(ctx: StepContext) -> bool:
    from kensium_provision.vault.backends import SecretsManagerVault

    return isinstance(ctx.runtime.vault, SecretsManagerVault)


def entry_check(ctx: StepContext, created: Sequence[Created]) -> UndoCheck:
    """The entries (`ENTRY`) a run stored: still there, changed since (a new value), or gone. kprov deletes
    an entry only in Secrets Manager, where its reference names the version the run stored; another
    password manager's entry is a person's to delete."""
    from kensium_provision.aws.call import call

    entries = [c for c in created if c.kind == ENTRY]
    if entries and not _secrets_manager(ctx):  # not kprov's to remove: none is `present`
        names = ", ".join(c.details.get("name", c.id) for c in entries)
        return UndoCheck(by_hand=f"kprov deletes password-manager entries only in Secrets Manager: delete {names} "
                                 "by hand once nothing uses it")
    present: list[Created] = []
    changed: list[str] = []
    for entry in entries:
        arn, _, version = entry.id.partition("#")
        found = call(ctx.client("secretsmanager"), "DescribeSecret", SecretId=arn,
                     missing=("ResourceNotFoundException",))
        if found is None or found.get("DeletedDate") is not None:
            continue
        present.append(entry)
        current = [v for v, stages in (found.get("VersionIdsToStages") or {}).items() if "AWSCURRENT" in stages]
        if version and current != [version]:
            changed.append(f"the password-manager entry {found.get('Name')} holds another value than the run "
                           "stored (it was updated since)")
    return UndoCheck(present=tuple(present), changed=tuple(changed))


def delete_entries(ctx: StepContext, created: Sequence[Created]) -> None:
    """Delete the Secrets Manager entries the run stored, at once (no recovery window: the run made the value
    and the undo removed what used it, and a name scheduled for deletion would block the next install)."""
    from kensium_provision.aws.call import call

    for entry in (c for c in created if c.kind == ENTRY):
        ctx.progress(f"deleting the password-manager entry {entry.details.get('name', entry.id)}")
        call(ctx.client("secretsmanager"), "DeleteSecret", SecretId=entry.id.partition("#")[0],
             ForceDeleteWithoutRecovery=True, missing=("ResourceNotFoundException",))
