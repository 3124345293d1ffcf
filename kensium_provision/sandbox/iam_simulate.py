"""`iam:SimulatePrincipalPolicy` for the sandbox: moto 5.2 does not implement it, kprov's preflight asks it.

`install()` adds the operation to moto's IAM responses (the sandbox server calls it at start; the tests'
in-process moto too). It answers as AWS does
(https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html): one
`EvaluationResult` per action, its `ResourceSpecificResults` per resource, each `allowed`, `explicitDeny`
or `implicitDeny`, from the principal's own policies as moto holds them: a user's inline and attached
policies and those of its groups, a role's inline and attached ones, plus `PolicyInputList`.

The evaluation is a small one, and these are its limits (the preflight against AWS uses AWS's own):
`Action`/`NotAction` (case-insensitive) and `Resource`/`NotResource` with the `*` and `?` wildcards;
`Condition` only with the String operators (`StringEquals`, `StringNotEquals`, `StringLike`,
`StringNotLike`, `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`, each also `...IfExists`) on the
context entries given; a statement with any other operator does not apply (so it neither allows nor
denies). No permissions boundary, SCP, session policy or resource policy.

moto's own identity: credentials moto did not issue are `user/moto` (moto/sts/models.py), a user that
exists nowhere and that moto lets do everything; unless an IAM user `moto` exists, it is simulated as
allowed everywhere, which is what the sandbox does for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import unquote

__all__ = ["MOTO_DEFAULT_USER", "decide", "install"]

MOTO_DEFAULT_USER = "moto"
_ALLOWED, _EXPLICIT, _IMPLICIT = "allowed", "explicitDeny", "implicitDeny"
_STRING = re.compile(r"String(Not)?(Equals|Like|EqualsIgnoreCase)(IfExists)?")
_ARN = re.compile(r"arn:[^:]+:iam::(?P<account>\d+):(?P<kind>user|role|group)/(?:.*/)?(?P<name>[^/]+)")


def install() -> None:
    """Teach moto's IAM responses `SimulatePrincipalPolicy` (idempotent; moto looks the method up per call)."""
    from moto.iam.responses import IamResponse

    IamResponse.simulate_principal_policy = _simulate_principal_policy  # type: ignore[attr-defined]


def _simulate_principal_policy(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.iam.exceptions import InvalidInput

    source = str(self._get_param("PolicySourceArn") or "")
    actions = [str(a) for a in self._get_param("ActionNames") or ()]
    if not actions:
        raise InvalidInput("ActionNames must name at least one action")
    _may_simulate(self, source)
    resources = [str(r) for r in self._get_param("ResourceArns") or ()] or ["*"]
    context = _context(self._get_param("ContextEntries") or ())
    policies = [*_principal_policies(self.backend, source), *map(str, self._get_param("PolicyInputList") or ())]
    results = []
    for action in actions:
        per_resource: list[dict[str, Any]] = [
            {"EvalResourceName": r, "EvalResourceDecision": decide(policies, action, r, context),
             "MatchedStatements": [], "MissingContextValues": []} for r in resources]
        worst = _most_restrictive(d["EvalResourceDecision"] for d in per_resource)
        results.append({"EvalActionName": action, "EvalResourceName": resources[0] if len(resources) == 1 else "*",
                        "EvalDecision": worst, "MatchedStatements": [], "MissingContextValues": [],
                        "ResourceSpecificResults": per_resource})
    return ActionResult({"EvaluationResults": results, "IsTruncated": False})


def _may_simulate(response: Any, source: str) -> None:
    """AccessDenied unless the caller's own policies allow iam:SimulatePrincipalPolicy on `source`.

    Checked for credentials moto issued (an IAM user's access key, an assumed role's session); moto's own
    identity may, as moto lets it do everything.
    """
    from moto.core.exceptions import AccessDeniedError  # moto's own, as its IAM enforcement raises it

    caller = _caller_arn(response)
    if caller and decide(_principal_policies(response.backend, caller), "iam:SimulatePrincipalPolicy", source,
                         {}) != _ALLOWED:
        raise AccessDeniedError(caller, f"iam:SimulatePrincipalPolicy on resource: {source}")


def _caller_arn(response: Any) -> str:
    """The IAM user or role whose credentials signed the request; "" for credentials moto did not issue."""
    from moto.sts.models import sts_backends

    key, backend = response.get_access_key(), response.backend
    user = next((u for u in backend.users.values() if any(k.access_key_id == key for k in u.access_keys)), None)
    if user is not None:
        return str(user.arn)
    sts = sts_backends[response.current_account][response.partition]
    return next((str(r.role_arn) for r in sts.assumed_roles if r.access_key_id == key), "")


def _most_restrictive(decisions: Iterable[str]) -> str:
    found = set(decisions)
    return _EXPLICIT if _EXPLICIT in found else _IMPLICIT if _IMPLICIT in found else _ALLOWED


def _context(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    return {str(e.get("ContextKeyName", "")).lower(): [str(v) for v in e.get("ContextKeyValues") or ()]
            for e in entries}


def _principal_policies(backend: Any, arn: str) -> list[str]:
    """The policy documents of the user, role or group `arn` (NoSuchEntity as AWS when there is none)."""
    from moto.iam.exceptions import InvalidInput, NoSuchEntity

    match = _ARN.fullmatch(arn)
    if match is None:
        raise InvalidInput(f"PolicySourceArn {arn!r} is not an IAM user, role or group ARN")
    kind, name = match["kind"], match["name"]
    found = {"user": backend.users, "role": backend.roles, "group": backend.groups}[kind].values()
    holder = next((h for h in found if h.arn == arn), None)  # the exact ARN, its path included, as IAM
    if holder is None and kind == "user" and arn.endswith(f":user/{MOTO_DEFAULT_USER}"):
        return ['{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}']
    if holder is None:
        raise NoSuchEntity(f"The {kind} with name {name} cannot be found.")
    holders = [holder, *(backend.get_groups_for_user(name) if kind == "user" else ())]
    documents: list[str] = []
    for holder in holders:
        documents += [_text(d) for d in holder.policies.values()]
        documents += [next(v.document for v in p.versions if v.is_default) for p in holder.managed_policies.values()]
    return documents


def _text(document: object) -> str:
    if isinstance(document, Mapping):  # a group's inline policy is held with its name
        document = document.get("policy_document", "")
    text = str(document)
    return text if text.lstrip().startswith("{") else unquote(text)


def decide(policies: Sequence[str], action: str, resource: str, context: Mapping[str, Sequence[str]]) -> str:
    """`allowed`, `explicitDeny` or `implicitDeny` of one action on one resource under these policies."""
    allowed = False
    for document in policies:
        statements = json.loads(document).get("Statement") or []
        for statement in statements if isinstance(statements, list) else [statements]:
            if not _applies(statement, action, resource, context):
                continue
            if statement.get("Effect") == "Deny":
                return _EXPLICIT
            allowed = allowed or statement.get("Effect") == "Allow"
    return _ALLOWED if allowed else _IMPLICIT


def _applies(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Sequence[str]]) -> bool:
    if "NotAction" in statement:
        if _any(statement["NotAction"], action, fold=True):
            return False
    elif not _any(statement.get("Action", ()), action, fold=True):
        return False
    if "NotResource" in statement:
        if _any(statement["NotResource"], resource, fold=False):
            return False
    elif not _any(statement.get("Resource", ()), resource, fold=False):
        return False
    return _conditions_hold(statement.get("Condition") or {}, context)


def _any(patterns: object, value: str, *, fold: bool) -> bool:
    listed = [patterns] if isinstance(patterns, str) else list(patterns or ())  # type: ignore[call-overload]
    return any(_pattern(str(p), fold).fullmatch(value) for p in listed)


@cache
def _pattern(wildcard: str, fold: bool) -> re.Pattern[str]:
    body = re.escape(wildcard).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body, re.IGNORECASE if fold else 0)


def _conditions_hold(condition: Mapping[str, Mapping[str, object]], context: Mapping[str, Sequence[str]]) -> bool:
    for operator, tests in condition.items():
        match = _STRING.fullmatch(operator)
        if match is None:
            return False  # an operator this evaluator does not know: the statement does not apply
        negated, kind, if_exists = bool(match[1]), match[2], bool(match[3])
        for key, wanted in tests.items():
            values = context.get(key.lower())
            if values is None:
                # A missing key matches only ...IfExists, and negated operators (IAM's documented behaviour:
                # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)
                if not (if_exists or negated):
                    return False
                continue
            expected = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted]  # type: ignore[attr-defined]
            if any(_string_match(kind, e, v) for e in expected for v in values) == negated:
                return False
    return True


def _string_match(kind: str, expected: str, value: str) -> bool:
    if kind == "Like":
        return bool(_pattern(expected, False).fullmatch(value))
    return expected.lower() == value.lower() if kind == "EqualsIgnoreCase" else expected == value
