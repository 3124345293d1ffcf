"""Four eyes (issue 17.4): a plan's approval, kept in the account it changes.

One DynamoDB item per plan in `kprov-approvals` (its own table: an approval is no client record, and an
operator may be granted read on one and not the other), keyed by the plan id, holding the approver's caller
ARN, the plan's digest and the time. The write is conditional (attribute_not_exists), so a plan is
approved once, by one person, and that item is never overwritten:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kensium_provision.aws.call import call
from kensium_provision.errors import GuardError
from kensium_provision.records.tables import NO_TABLE, ensure_table, table_exists

__all__ = ["TABLE", "Approval", "approval_of", "approve", "require_approval"]

TABLE = "kprov-approvals"
_KEY = "plan_id"


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    plan_id: str
    digest: str
    approver: str
    approved_at: str


def _item(approval: Approval) -> dict[str, dict[str, str]]:
    return {_KEY: {"S": approval.plan_id}, "digest": {"S": approval.digest}, "approver": {"S": approval.approver},
            "approved_at": {"S": approval.approved_at}}


def approval_of(dynamodb: Any, plan_id: str) -> Approval | None:
    """The plan's approval (a consistent read), or None: no table yet is no approval."""
    if not table_exists(dynamodb, TABLE):
        return None
    found = call(dynamodb, "GetItem", TableName=TABLE, Key={_KEY: {"S": plan_id}}, ConsistentRead=True,
                 missing=NO_TABLE)
    item = (found or {}).get("Item")
    if not item:
        return None
    return Approval(plan_id=plan_id, **{k: str(item.get(k, {}).get("S", "")) for k in ("digest", "approver",
                                                                                         "approved_at")})


def approve(dynamodb: Any, *, plan_id: str, digest: str, author: str, approver: str) -> Approval:
    """Record `approver`'s approval of the plan; refused (exit 4) for its author or a plan approved already."""
    if approver == author:
        raise GuardError(f"{approver} made this plan and may not approve it: a different identity must approve",
                         hint="ask a colleague to run `kprov approve PLAN` with their own credentials")
    ensure_table(dynamodb, TABLE, key=_KEY, kind="approvals")
    approval = Approval(plan_id=plan_id, digest=digest, approver=approver,
                        approved_at=datetime.now(UTC).isoformat(timespec="seconds"))
    done = call(dynamodb, "PutItem", TableName=TABLE, Item=_item(approval),
                ConditionExpression="attribute_not_exists(#k)", ExpressionAttributeNames={"#k": _KEY},
                missing=("ConditionalCheckFailedException",))
    if done is None:
        earlier = approval_of(dynamodb, plan_id)
        who = f" by {earlier.approver} at {earlier.approved_at}" if earlier else ""
        raise GuardError(f"plan {plan_id[:12]} is approved already{who}; an approval is never replaced",
                         hint="a changed plan is a new plan: make it with --dry-run --out and have it approved")
    return approval


def require_approval(approval: Approval | None, *, plan_id: str, digest: str, applier: str) -> Approval:
    """The apply's four-eyes rule: approved, for this very digest, by someone other than who applies (exit 4)."""
    hint = "have a colleague review it and run `kprov approve PLAN` with their own credentials"
    if approval is None:
        raise GuardError(f"plan {plan_id[:12]} is not approved, and this environment requires approval: nothing "
                         "was changed", hint=hint)
    if approval.digest != digest:
        raise GuardError(f"plan {plan_id[:12]} was approved by {approval.approver} for digest {approval.digest[:12]},"
                         f" not for this plan's digest {digest[:12]}: nothing was changed",
                         hint="the plan changed after it was approved: " + hint)
    if approval.approver == applier:
        raise GuardError(f"{applier} approved this plan and may not also apply it: nothing was changed",
                         hint="another identity applies an approved plan (four eyes)")
    return approval
