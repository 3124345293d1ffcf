"""Capacity of a shared RDS for SQL Server instance (issue 16.8): RDS limits databases per instance by class.

The shared instances and the client records are real (in-process moto: RDS and DynamoDB); the limit is the
one `steps.capacity.database_limit` takes from the RDS User Guide's quotas page.
"""

from __future__ import annotations

import pytest

from kensium_provision.errors import InputError
from kensium_provision.model import Mode
from kensium_provision.records.clients import ClientRecord, ensure_table, put_record
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.capacity import database_limit
from kensium_provision.steps.lookups import LOOKUPS
from tests.checklist_harness import moto_runtime, raw_client


def _instance(name: str, instance_class: str = "db.t3.small") -> None:
    raw_client("rds").create_db_instance(
        DBInstanceIdentifier=name.lower(), Engine="sqlserver-web", EngineVersion="15.00.4415.2.v1",
        DBInstanceClass=instance_class, AllocatedStorage=20, MasterUsername="posadmin",
        MasterUserPassword="Passw0rd-long-1", LicenseModel="license-included", PubliclyAccessible=True,
        Tags=[{"Key": "kprov:name", "Value": name}, {"Key": "kprov:hosting", "Value": "Shared"}])


def _clients_on(name: str, count: int, *, status: str = "installed") -> None:
    dynamodb = raw_client("dynamodb")
    ensure_table(dynamodb)
    for n in range(count):
        put_record(dynamodb, ClientRecord(org_id=f"{name.lower()}-c{n}", client_name=f"Client {n}", status=status,
                                          rds_instance=name))


def _shared(mode: Mode = Mode.APPLY) -> list[str]:
    ctx = StepContext(moto_runtime(mode), "rds_instance", {})
    found = LOOKUPS["rds-instances"](ctx, {"engine": "sqlserver-web", "rule": "rds-instance"})
    assert isinstance(found, list)
    return found


def test_the_limit_follows_the_class_size() -> None:
    assert database_limit("db.t3.small") == database_limit("db.m5.large") == 30
    assert database_limit("db.m5.xlarge") == database_limit("db.r6i.16xlarge") == 100


def test_a_full_instance_is_not_offered_and_the_one_with_room_is(aws: None) -> None:
    _instance("db-POS-01")
    _instance("db-POS-02")
    _clients_on("db-POS-01", database_limit("db.t3.small"))
    _clients_on("db-POS-02", 3)
    assert _shared() == ["db-POS-02"]  # before: both, and the 31st database would fail on RDS
    assert _shared(Mode.CHECK) == ["db-POS-01", "db-POS-02"]  # a check places nobody: it counts nothing


def test_removed_clients_free_their_place(aws: None) -> None:
    _instance("db-POS-01")
    _clients_on("db-POS-01", database_limit("db.t3.small"), status="removed")
    assert _shared() == ["db-POS-01"]


def test_when_every_instance_is_full_install_client_is_told_to_make_a_new_one(aws: None) -> None:
    _instance("db-POS-01")
    _clients_on("db-POS-01", database_limit("db.t3.small"))
    with pytest.raises(InputError, match=r"every shared RDS instance of this kind is full: db-POS-01 \(30 of 30 "
                                         r"databases, db.t3.small\)") as caught:
        _shared()
    assert "Shared (New)" in (caught.value.hint or "")


def test_check_shared_shows_each_instances_use(aws: None) -> None:
    from kensium_provision.steps.rds import RdsDbInstance

    _instance("db-POS-01")
    _clients_on("db-POS-01", 12)
    made = raw_client("rds").describe_db_instances()["DBInstances"][0]
    params = {"identifier": "db-POS-01", "edition": "Web", "engine_version": "15.00.4415.2.v1",
              "instance_class": "db.t3.small", "allocated_storage": 20, "zone": made["AvailabilityZone"],
              "db_subnet_group": "default",
              "security_group_ids": [g["VpcSecurityGroupId"] for g in made["VpcSecurityGroups"]],
              "master_username": "posadmin", "master_password_ref": "vault:x"}
    ctx = StepContext(moto_runtime(Mode.CHECK), "create-instance", {})
    assert "12 of 30 client databases" in RdsDbInstance().probe(ctx, params).note
