"""The permission preflight: before an apply's first change, may the caller do everything this run will do?

IAM answers (`iam:SimulatePrincipalPolicy`,
https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html) for the caller's
user or role, each action on the resources the run names (`policy.needs`, so what `kprov iam policy`
prints is what is checked), with the run's region as `aws:RequestedRegion`. A denial names, step by
step, the step, the action and the resource, and refuses the run (exit 4) before anything is made. An undo
(`kprov undo`) asks the same before its first delete, for what its steps remove (`policy.undo_needs`).

A caller that may not simulate (AccessDenied, or an identity IAM cannot simulate) is refused the same
way: the operator may go on without the check only by asking (`--skip-preflight`, journaled). The
simulation sees identity policies only: a resource policy or an SCP can still decide otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from kensium_provision.aws.call import call, pages
from kensium_provision.aws.gather import gather
from kensium_provision.errors import AwsError, GuardError
from kensium_provision.permissions.policy import Need

__all__ = ["Denied", "Passed", "PreflightDenied", "PreflightUnavailable", "principal_of", "refusal", "run_preflight"]

_SKIP_HINT = "`--skip-preflight` goes on without the check (journaled)"
_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
_CALLER = re.compile(r"arn:(?P<partition>[^:]+):(?:iam|sts)::(?P<account>\d{12}):(?P<resource>.+)")
# IAM Identity Center's roles live under a path (/aws-reserved/sso.amazonaws.com/...), which the
# assumed-role ARN leaves out: https://docs.aws.amazon.com/singlesignon/latest/userguide/referencingpermissionsets.html
_SSO_ROLE = "AWSReservedSSO_"
_BATCH = 50  # actions per request: the API states no maximum, a small request stays well inside any


class PreflightUnavailable(GuardError):
    """The caller's permissions could not be simulated (no iam:SimulatePrincipalPolicy, or not a principal)."""


class PreflightDenied(GuardError):
    """The caller may not do some of the run: `issues` has one `where: action on resource (why)` line each
    (the `issues[]` of `--output json`'s error document)."""

    def __init__(self, message: str, *, issues: Sequence[str], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.issues = tuple(issues)


@dataclass(frozen=True, slots=True, kw_only=True)
class Denied:
    """One action the run needs on one resource, and IAM's decision (`implicitDeny`, `explicitDeny`)."""

    where: str  # "step vpc (ec2.vpc)", "kprov locks"
    action: str
    resource: str
    decision: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Passed:
    """The preflight's answer: every action allowed to `principal`."""

    principal: str
    actions: int
    requests: int


def principal_of(caller_arn: str, iam: Any) -> str:
    """The IAM principal whose policies decide for `caller_arn` (sts:GetCallerIdentity's Arn).

    An assumed role is its role (an IAM Identity Center role's path from iam:GetRole); a user is itself
    (moto's `arn:aws:sts::...:user/moto` too). A root, federated or service caller cannot be simulated.
    """
    match = _CALLER.fullmatch(caller_arn)
    parts = match["resource"].split("/") if match else []
    if match and parts[0] == "assumed-role" and len(parts) >= 3:
        role = parts[1]
        if role.startswith(_SSO_ROLE):
            return _role_arn(iam, role)
        return f"arn:{match['partition']}:iam::{match['account']}:role/{role}"
    if match and parts[0] == "user" and len(parts) >= 2:
        return f"arn:{match['partition']}:iam::{match['account']}:{match['resource']}"
    raise PreflightUnavailable(f"the permission preflight cannot simulate {caller_arn}: IAM simulates only a user or "
                               "a role", hint=f"run as an IAM role or user; {_SKIP_HINT}")


def _role_arn(iam: Any, role: str) -> str:
    try:
        return str(call(iam, "GetRole", RoleName=role)["Role"]["Arn"])
    except AwsError as exc:
        if exc.code in _DENIED_CODES:
            raise _unavailable(f"iam:GetRole on role {role}", exc) from None
        raise


def _unavailable(what: str, exc: AwsError) -> PreflightUnavailable:
    return PreflightUnavailable(
        f"the permission preflight could not ask IAM what this run may do: {what} was refused ({exc.code}), so "
        "nothing was checked and nothing was changed",
        hint=f"allow iam:SimulatePrincipalPolicy on yourself (`kprov iam policy` includes it); {_SKIP_HINT}")


def run_preflight(iam: Any, caller_arn: str, found: Sequence[Need], *, region: str, mode: str = "apply") -> Passed:
    """Simulate every need of the run; raise `GuardError` naming each denied step, action and resource (`mode`: the
    `kprov iam policy --mode` that grants it, `undo` for an undo)."""
    principal = principal_of(caller_arn, iam)
    context = [{"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": [region], "ContextKeyType": "string"}]

    def simulate(actions: list[str], resources: tuple[str, ...]) -> list[Mapping[str, Any]]:
        params: dict[str, Any] = {"ResourceArns": list(resources)} if resources != ("*",) else {}
        return list(pages(iam, "SimulatePrincipalPolicy", "EvaluationResults", PolicySourceArn=principal,
                          ActionNames=actions, ContextEntries=context, **params))

    batches: list[tuple[list[str], tuple[str, ...], list[Need]]] = []
    for resources, needs in _by_resources(found).items():
        actions = sorted({n.action for n in needs})
        batches += [(actions[start:start + _BATCH], resources, needs) for start in range(0, len(actions), _BATCH)]

    def ask(batch: tuple[list[str], tuple[str, ...], list[Need]]) -> list[Denied]:
        actions, resources, needs = batch
        try:
            results = simulate(actions, resources)
        except AwsError as exc:
            if exc.code in _DENIED_CODES:
                raise _unavailable(f"iam:SimulatePrincipalPolicy on {principal}", exc) from None
            raise
        return [Denied(where=n.where, action=action, resource=resource, decision=decision)
                for action, resource, decision in _decisions(results) if decision != "allowed"
                for n in needs if n.action.lower() == action.lower()]

    # Every request at once, their denials kept in the batches' order (at 50 ms a call, four in a row were
    # 0.27 s of the VPC job). A role under a path (its assumed-role ARN leaves the path out) is unknown to
    # IAM by the ARN without it: then IAM names the role (iam:GetRole) and every request is asked again.
    asks = [partial(ask, batch) for batch in batches]
    try:
        answers = gather(*asks)
    except AwsError as exc:
        if exc.code != "NoSuchEntity" or ":role/" not in principal:
            raise
        principal = _role_arn(iam, principal.rsplit("/", 1)[1])
        answers = gather(*asks)
    denied = [d for answer in answers for d in answer]
    if denied:
        raise refusal(principal, denied, mode=mode)
    return Passed(principal=principal, actions=len({n.action for n in found}), requests=len(batches))


def _by_resources(found: Iterable[Need]) -> dict[tuple[str, ...], list[Need]]:
    groups: dict[tuple[str, ...], list[Need]] = {}
    for need in found:
        groups.setdefault(("*",) if "*" in need.resources else need.resources, []).append(need)
    return groups


def _decisions(results: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(action, resource, decision) per resource: ResourceSpecificResults where IAM gives them."""
    for result in results:
        action = str(result.get("EvalActionName", ""))
        specific = result.get("ResourceSpecificResults") or ()
        for item in specific:
            yield action, str(item.get("EvalResourceName", "*")), str(item.get("EvalResourceDecision", ""))
        if not specific:
            yield action, str(result.get("EvalResourceName") or "*"), str(result.get("EvalDecision", ""))


def refusal(principal: str, denied: Sequence[Denied], *, mode: str = "apply") -> PreflightDenied:
    """The refusal of a run whose caller lacks permissions: each step (in run order), action and resource."""
    order = [d.where for d in denied]
    lines = [f"{where}: {action} on {resource} ({_WORDS.get(decision, decision)})"
             for where, action, resource, decision in sorted({(d.where, d.action, d.resource, d.decision)
                                                              for d in denied}, key=lambda k: order.index(k[0]))]
    listed = "\n".join(f"  {line}" for line in lines)
    return PreflightDenied(
        f"the permission preflight: {principal} may not do {len(lines)} thing(s) this run needs; nothing was "
        f"changed:\n{listed}", issues=lines,
        hint=f"attach the policy `kprov iam policy CHECKLIST --mode {mode}` prints to this role or user (or ask its "
             f"administrator); a resource policy IAM's simulation cannot see may allow it: {_SKIP_HINT}")


_WORDS = {"implicitDeny": "no policy allows it", "explicitDeny": "a policy denies it"}
