"""The read-only wall: in plan and check modes, a `before-call` hook refuses every non-read operation.

The engine never calls `act` in those modes; this is the second line of defence against a step
type whose probe or verify writes by mistake. No request is sent when the wall refuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from kensium_provision.errors import ExitCode, KprovError
from kensium_provision.model import Mode

__all__ = ["EXCEPTIONS", "READ_OPERATIONS", "READ_PREFIXES", "ReadOnlyViolation", "install_wall", "is_read", "permit"]

READ_PREFIXES = ("Describe", "List", "Get", "Head")

# Reads whose names do not start with a read prefix, as "<boto3 service name>:<Operation>".
READ_OPERATIONS = frozenset({
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:TransactGetItems",
    "logs:FilterLogEvents",
    "logs:TestMetricFilter",
    "ec2:SearchTransitGatewayRoutes",
    "ec2:SearchLocalGatewayRoutes",
    "iam:SimulatePrincipalPolicy",  # a permission preflight: evaluates, changes nothing
    "iam:SimulateCustomPolicy",
    "rds:DownloadDBLogFilePortion",
    "secretsmanager:BatchGetSecretValue",
    "sts:DecodeAuthorizationMessage",
})
# Deliberately NOT reads, though they look harmless: iam:GenerateCredentialReport and
# iam:GenerateServiceLastAccessedDetails start account-wide jobs and replace the stored report
# (CloudTrail records them as write events); logs:StartQuery starts a billed query. Nor is an EC2
# create with DryRun=True let through: AWS honours DryRun, but moto (the sandbox) ignores it on
# CreateVpc and creates the VPC. A wall that makes exceptions for "almost reads" stops being a wall:
# the one below is named, reasoned, scoped to a `with permit(...)` block in one thread, and journaled.

# The only operations a read-only run may send anyway, each only inside `permit(...)` (one thread, one
# `with` block) and each with its reason; the fleet check journals every use.
EXCEPTIONS: Mapping[str, str] = {
    "iam:GenerateCredentialReport": (
        "the fleet check reads every IAM user's console password and access keys from the account's "
        "credential report (one call instead of two per user); when no report younger than four hours "
        "exists it asks IAM to refresh it. That changes no user, key, policy or permission: it only "
        "replaces a cached CSV that IAM itself regenerates at most every four hours."
    ),
}
_PERMITTED: ContextVar[frozenset[str]] = ContextVar("kprov_wall_permitted", default=frozenset())

_MODES = (Mode.PLAN, Mode.CHECK)


class ReadOnlyViolation(KprovError):
    """A step type tried to change AWS in a read-only mode: a bug in kprov, not the operator's mistake."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, *, service: str, operation: str, mode: Mode) -> None:
        self.service, self.operation, self.mode = service, operation, mode
        super().__init__(
            f"read-only wall: {service}:{operation} is not a read and this run is in {mode.value} mode; "
            "nothing was sent",
            hint="A step type's probe or verify made a change call: this is a kprov bug, please report it.",
        )


def is_read(service: str, operation: str) -> bool:
    """True for operations that only read (by name prefix or the allow-list)."""
    for prefix in READ_PREFIXES:
        rest = operation[len(prefix):]
        if operation.startswith(prefix) and (not rest or rest[0].isupper()):
            return True
    return f"{service}:{operation}" in READ_OPERATIONS


@contextmanager
def permit(operation: str) -> Iterator[str]:
    """Let exactly `operation` (one of `EXCEPTIONS`, as `service:Operation`) through the wall, in this
    thread only, for the `with` block; yields the reason to journal. Anything else still refused."""
    if operation not in EXCEPTIONS:
        raise ValueError(f"{operation} is not an allowed exception to the read-only wall")
    token = _PERMITTED.set(_PERMITTED.get() | {operation})
    try:
        yield EXCEPTIONS[operation]
    finally:
        _PERMITTED.reset(token)


def install_wall(client: Any, mode: Mode) -> bool:
    """Register the wall on `client` when `mode` is plan or check; returns whether it did."""
    if mode not in _MODES:
        return False
    service = client.meta.service_model.service_name

    def refuse_writes(*, model: Any, **_: Any) -> None:
        if not is_read(service, model.name) and f"{service}:{model.name}" not in _PERMITTED.get():
            raise ReadOnlyViolation(service=service, operation=model.name, mode=mode)

    # register_first: the wall runs before any other before-call handler (Stubber, counters, ...).
    client.meta.events.register_first("before-call", refuse_writes, unique_id="kprov-read-only-wall")
    return True

