"""The step registry: an explicit, immutable name -> implementation mapping.

Adding a step type means writing a class that satisfies `steps.base.StepType` and listing it here;
nothing registers itself on import. Step modules import boto3 only through `ctx.client()`, so loading
the registry (for `kprov validate`) stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from kensium_provision.steps.base import StepType

__all__ = ["LOOKUP_NAMES", "registry"]

# Named read-only lookups a checklist may use in `choices_from:` / `default_from:` (steps/lookups.py).
LOOKUP_NAMES = (
    "region",
    "availability-zones",
    "next-free-name",
    "rds-instances",
    "ec2-hosts",
    "brokers",
    "vpcs",
    "subnets",
    "vpc-zones",
    "rds-instance-classes",
    "broker-instance-types",
)


@cache
def registry() -> Mapping[str, StepType]:
    """Every step type by name."""
    from kensium_provision.steps import amazonmq as mq
    from kensium_provision.steps import (
        client_record,
        credential,
        ec2,
        flow,
        generic,
        iam,
        manual,
        offboard,
        rds,
        rds_network,
        rotation,
        s3,
        sql,
    )
    from kensium_provision.steps import rabbitmq_vhost as rabbitmq

    types: list[StepType] = [
        manual.Manual(), generic.AwsAssert(), generic.AwsWait(),
        flow.FlowStop(), flow.FlowRequire(), flow.FlowSelect(),
        credential.CredentialPassword(),
        *(step_type() for step_type in ec2.STEP_TYPES),  # network, security, instance
        rds_network.RdsDbSubnetGroup(), rds.RdsDbInstance(), rds.RdsInstanceReady(),
        mq.MqBroker(), rabbitmq.RabbitMQVhost(),
        sql.SqlDatabase(), sql.SqlLogin(),
        iam.IamClientUser(), iam.IamSandboxClientUser(),
        s3.S3ClientBucket(), s3.S3SandboxClientBucket(),
        client_record.ClientOrgId(), client_record.ClientEvidence(), client_record.ClientRecordStep(),
        *(step_type() for step_type in offboard.STEP_TYPES),  # remove-client
        *(step_type() for step_type in rotation.STEP_TYPES),  # rotate
    ]
    return MappingProxyType({t.name: t for t in sorted(types, key=lambda t: t.name)})
