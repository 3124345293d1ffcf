"""The naming-convention sweep of `check shared`: hand-made resources that break a rule are findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from kensium_provision.app.config import SANDBOX_ENVIRONMENT
from kensium_provision.aws.session import AwsSession
from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode
from kensium_provision.naming import loader as naming
from kensium_provision.naming.sweep import sweep

if TYPE_CHECKING:
    from tests.conftest import Kprov


def _estate() -> None:
    mq = boto3.client("mq", region_name="us-east-1")
    for name in ("mq-POS-01", "MQ-pos-1"):
        mq.create_broker(BrokerName=name, EngineType="RABBITMQ", EngineVersion="3.13", DeploymentMode="SINGLE_INSTANCE",
                         HostInstanceType="mq.t3.micro", PubliclyAccessible=True, AutoMinorVersionUpgrade=True,
                         Users=[{"Username": "admin", "Password": "Abcdefgh1234-x"}])
    rds = boto3.client("rds", region_name="us-east-1")
    for name in ("db-POS-01", "sqlpos"):
        rds.create_db_instance(DBInstanceIdentifier=name, Engine="sqlserver-web", DBInstanceClass="db.t3.small",
                               AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="Abcdefgh1234")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.create_security_group(GroupName="sg_pos_ops", Description="hand-made", VpcId=vpc)
    for name in ("POS01", "pos-server"):
        ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance",
             "Tags": [{"Key": "Name", "Value": name}, {"Key": "PosVersion", "Value": "3.10.2"}]}])
    ec2.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1,  # not a POS host: no PosVersion
                      TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "bastion"}]}])


def test_sweep_names_every_resource_that_breaks_its_rule(aws: None) -> None:
    _estate()
    found = sweep(AwsSession(SANDBOX_ENVIRONMENT, mode=Mode.CHECK, in_process=True), naming.load_rules())
    assert sorted((f.kind, f.name, f.rule) for f in found) == [
        ("Amazon MQ broker", "MQ-pos-1", "mq-broker"),
        ("POS host (EC2)", "pos-server", "ec2-host"),
        ("RDS instance", "sqlpos", "rds-instance"),
        ("security group", "sg_pos_ops", "security-group-ops"),
    ]
    assert all(f.example for f in found)


def test_check_shared_reports_conventions_and_exits_1(aws: None, kprov: Kprov) -> None:
    _estate()
    done = kprov("--output", "json", "check", "shared")
    assert done.code == ExitCode.FAILED
    document = done.json()
    assert document["kind"] == "check-shared" and document["ok"] is False and document["runs"] == []
    assert any("'MQ-pos-1' breaks naming rule mq-broker" in c for c in document["conventions"])
    schema = json.loads((Path(__file__).resolve().parent.parent / "docs" / "json-output.schema.json").read_text())
    import jsonschema

    jsonschema.validate(document, schema)
