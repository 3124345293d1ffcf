"""What a fleet check is asked (`FleetRequest`) and what it answers (`FleetReport`: per client its findings)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kensium_provision.errors import ExitCode

if TYPE_CHECKING:
    from kensium_provision.guards import Environment
    from kensium_provision.runtime import Journal, Operator

__all__ = ["WORKERS", "Capacity", "ClientResult", "ClientRow", "CredentialAge", "FleetFinding", "FleetOverview",
           "FleetReport", "FleetRequest", "WallException"]

# Concurrent reads (the batched listings, then two per client bucket): at 50 ms a call, 10,000 bucket reads
# take 62 s 8 at a time and 16 s 32 at a time. Botocore's standard retry mode backs off on throttling
# within each; S3 allows thousands of GETs a second per prefix, and each bucket is a prefix of its own.
WORKERS = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetFinding:
    """One thing wrong with one client: the install step that owns the fact, and what differs."""

    org_id: str
    step: str
    message: str
    expected: object = None
    actual: object = None

    def as_json(self) -> dict[str, object]:
        return {"step": self.step, "message": self.message, "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientResult:
    org_id: str
    findings: tuple[FleetFinding, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True, kw_only=True)
class WallException:
    """A non-read the check sent through the read-only wall's named exception (aws.wall.EXCEPTIONS)."""

    operation: str  # "iam:GenerateCredentialReport"
    reason: str
    calls: int

    def as_json(self) -> dict[str, object]:
        return {"operation": self.operation, "reason": self.reason, "calls": self.calls}


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetReport:
    """A fleet check: per client its findings; what was read and what it cost."""

    clients: tuple[ClientResult, ...]
    not_checked: Mapping[str, str]  # org id -> why (an install still in progress)
    api_calls: Mapping[str, object]  # CallCounter.as_dict()
    management_api_calls: int  # RabbitMQ management API requests (not AWS)
    credential_report: str  # how the IAM credential report was obtained
    seconds: float
    wall_exceptions: tuple[WallException, ...] = ()  # only those really sent (the counter says so)
    due: tuple[CredentialAge, ...] = ()  # client credentials older than max_age_days (also among the findings)
    max_age_days: int = 90  # rotation.max_age_days the check used

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.clients)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.FAILED


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetRequest:
    """What a fleet check needs, injected (the CLI builds it from the config; tests from moto)."""

    env: Environment
    session: Any  # aws.session.AwsSession in check mode: counted and walled
    settings: Mapping[str, object] = field(default_factory=dict)  # the run settings (rabbitmq, sql, sandbox)
    vault_backend: str = "secretsmanager"
    vault_settings: Mapping[str, object] = field(default_factory=dict)
    environments: Sequence[Environment] = ()  # every configured environment (the purpose guard names others)
    operator: Operator | None = None  # None: never prompts
    journal: Journal | None = None  # None: an in-memory journal
    run_id: str = "fleet"
    workers: int = WORKERS
    checklist: Path | None = None  # default: the catalog's client/install
    sleep: Callable[[float], None] = time.sleep
    now: datetime | None = None  # the time credentials are aged at (None: now)


# --- the fleet at a glance (`kprov fleet`, issue 18.4) ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRow:
    """One client in the fleet table: where it runs, its POS version, and what the last check found."""

    org_id: str
    status: str
    rds_instance: str = ""
    ec2_host: str = ""
    broker: str = ""
    pos_version: str = ""
    last_check: str = ""  # ISO time of the check behind `findings`; "" when not checked
    findings: int | None = None  # None: not checked (an install in progress, or no check run)

    def as_json(self) -> dict[str, object]:
        return {"org_id": self.org_id, "status": self.status, "rds_instance": self.rds_instance,
                "ec2_host": self.ec2_host, "broker": self.broker, "pos_version": self.pos_version,
                "last_check": self.last_check, "findings": self.findings}


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """One shared resource's use against its limit (None: no limit known to kprov): clients placed on it, or an
    Express database's data size (`used` None: not known, `basis` says why)."""

    kind: str  # "RDS instance", "EC2 host", "broker", "Express database"
    name: str
    used: int | None
    limit: int | None = None
    basis: str = ""  # where the limit comes from (the instance class), or why there is none
    unit: str = ""  # "" for a count; "MB" for a size
    near_at: int | None = None  # the percent from which it is flagged as near its limit (None: never flagged)

    @property
    def percent(self) -> int | None:
        return None if not self.limit or self.used is None else min(100, round(100 * self.used / self.limit))

    @property
    def near_limit(self) -> bool:
        return self.near_at is not None and self.percent is not None and self.percent >= self.near_at

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "used": self.used, "limit": self.limit,
                "basis": self.basis, "percent": self.percent, "unit": self.unit, "near_limit": self.near_limit}


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialAge:
    """A client credential older than the configured age (`rotation.max_age_days`): due for rotation."""

    org_id: str
    credential: str  # the record's secrets key, or the IAM access key id
    kind: str  # "secret" (Secrets Manager LastChangedDate) or "access key" (IAM CreateDate)
    changed: str  # ISO date it was last set
    age_days: int

    def as_json(self) -> dict[str, object]:
        return {"org_id": self.org_id, "credential": self.credential, "kind": self.kind,
                "changed": self.changed, "age_days": self.age_days}


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetOverview:
    """`kprov fleet`: every client, and each shared resource's use against its limit."""

    clients: tuple[ClientRow, ...]
    capacity: tuple[Capacity, ...]
    generated: str  # ISO time
    due: tuple[CredentialAge, ...] = ()  # credentials due for rotation
    max_age_days: int = 90

    def as_json(self) -> dict[str, object]:
        return {"generated": self.generated, "max_age_days": self.max_age_days,
                "clients": [c.as_json() for c in self.clients], "capacity": [c.as_json() for c in self.capacity],
                "due_for_rotation": [d.as_json() for d in self.due]}
