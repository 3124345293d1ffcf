"""A sweep of the account for shared resources whose names break Kensium's conventions.

`check shared` verifies what kprov made; this finds what someone made by hand beside it: a broker
called `MQ-pos-1`, an RDS instance `sqlpos`, a POS host not named POSNN, a second `sg-pos-ops`.
One read per service (paginated), so it costs the same for 3 resources or 300.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["NameFinding", "sweep"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NameFinding:
    kind: str  # what the resource is
    name: str
    rule: str
    problems: tuple[str, ...]
    example: str

    @property
    def message(self) -> str:
        return (f"{self.kind} {self.name!r} breaks naming rule {self.rule}: {'; '.join(self.problems)} "
                f"(for example {self.example})")


def _pages(client: Any, method: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(method).paginate(**params):
        yield from page.get(key, [])


def _tags(items: object) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or ()} if isinstance(items, list) else {}


def sweep(factory: Any, names: Any) -> list[NameFinding]:
    """Every Amazon MQ broker, RDS instance, POS host (EC2 with a PosVersion tag) and operator security
    group (a name like SG-POS-OPS, any case) whose name breaks its rule."""
    found: list[NameFinding] = []

    def judge(kind: str, name: str, rule: str) -> None:
        problems = names.check(rule, name, {})
        if problems:
            found.append(NameFinding(kind=kind, name=name, rule=rule, problems=tuple(problems),
                                     example=names.example(rule, {})))

    for broker in _pages(factory.client("mq"), "list_brokers", "BrokerSummaries"):
        judge("Amazon MQ broker", str(broker.get("BrokerName", "")), "mq-broker")
    for db in _pages(factory.client("rds"), "describe_db_instances", "DBInstances"):
        if str(db.get("Engine", "")).startswith("sqlserver"):
            judge("RDS instance", str(db["DBInstanceIdentifier"]), "rds-instance")
    ec2 = factory.client("ec2")
    for reservation in _pages(ec2, "describe_instances", "Reservations",
                              Filters=[{"Name": "tag-key", "Values": ["PosVersion"]},
                                       {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}]):
        for instance in reservation.get("Instances", []):
            judge("POS host (EC2)", _tags(instance.get("Tags")).get("Name", instance["InstanceId"]), "ec2-host")
    for group in _pages(ec2, "describe_security_groups", "SecurityGroups"):
        name = str(group.get("GroupName", ""))
        if name.replace("_", "-").lower() == "sg-pos-ops":
            judge("security group", name, "security-group-ops")
    return found
