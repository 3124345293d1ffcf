"""`aws.call`: the one way kprov calls AWS (a call, a paginated read, an error code), failures as AwsError."""

from __future__ import annotations

import functools
from typing import Any

import botocore.exceptions as bx
import pytest

from kensium_provision.aws.call import call, error_code, http_status, operation_name, pages
from kensium_provision.aws.errors import translating
from kensium_provision.aws.session import AwsSession
from kensium_provision.aws.wall import ReadOnlyViolation
from kensium_provision.errors import AwsError
from kensium_provision.guards import Environment
from kensium_provision.model import Mode
from tests.faults import client_error, inject, no_backoff

ENV = Environment(name="qa", account_id="123456789012", region="us-east-1", purposes=("qa",))
NAME = "vpc-POS"


@functools.cache
def _shared_boto3_session() -> Any:
    import boto3

    return boto3.Session(region_name="us-east-1")


def session(mode: Mode = Mode.APPLY) -> AwsSession:
    return AwsSession(ENV, mode=mode, session=_shared_boto3_session())


@pytest.fixture
def moto(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest's moto, without retry back-off."""
    no_backoff(monkeypatch)


def test_call_returns_the_response_without_its_metadata(moto: None) -> None:
    ec2 = session().client("ec2")
    ec2.create_vpc(CidrBlock="10.20.0.0/16",
                   TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": NAME}]}])
    by_api = call(ec2, "DescribeVpcs", Filters=[{"Name": "tag:Name", "Values": [NAME]}])
    by_method = call(ec2, "describe_vpcs", Filters=[{"Name": "tag:Name", "Values": [NAME]}])
    assert by_api == by_method and "ResponseMetadata" not in by_api and len(by_api["Vpcs"]) == 1
    assert operation_name(ec2, "describe_vpcs") == ("DescribeVpcs", "describe_vpcs")
    assert operation_name(ec2, "DescribeDBInstances") == ("DescribeDBInstances", "describe_db_instances")


def test_call_gives_none_for_a_missing_code_and_an_aws_error_for_any_other(moto: None) -> None:
    iam = session().client("iam")
    assert call(iam, "get_user", UserName="nobody", missing=("NoSuchEntity",)) is None
    with pytest.raises(AwsError) as caught:
        call(iam, "GetUser", resource="user nobody", UserName="nobody")
    assert caught.value.code == "NoSuchEntity" and caught.value.operation == "GetUser"
    assert str(caught.value).startswith("iam:GetUser failed with NoSuchEntity: user nobody: ")
    assert error_code(caught.value) == "NoSuchEntity"


def test_call_translates_botocore_errors_that_are_not_client_errors(moto: None) -> None:
    rds = session().client("rds")
    with pytest.raises(AwsError) as caught:  # ParamValidationError is a BotoCoreError, not a ClientError
        call(rds, "CreateDBInstance", DBInstanceIdentifier="db-pos-01", MasterUserPassword=123)
    assert caught.value.code == "ParamValidation"
    with pytest.raises(AwsError, match="NotImplemented"):  # moto in-process: a bare NotImplementedError
        call(rds, "DescribeReservedDBInstances")  # (the sandbox data answers DescribeDBEngineVersions)


def test_call_lets_kprov_errors_and_bugs_through(moto: None) -> None:
    with pytest.raises(ReadOnlyViolation):
        call(session(Mode.PLAN).client("ec2"), "CreateVpc", CidrBlock="10.20.0.0/16")

    class Broken:
        def describe_vpcs(self) -> dict[str, Any]:
            raise KeyError("a bug in kprov, not an AWS failure")

    with pytest.raises(KeyError):  # never dressed up as an AWS error
        call(Broken(), "DescribeVpcs")
    with pytest.raises(KeyError), translating("ec2", "DescribeVpcs"):
        Broken().describe_vpcs()


def test_pages_reads_every_page_and_translates_failures(moto: None) -> None:
    iam = session().client("iam")
    for n in range(3):
        iam.create_user(UserName=f"rms_{n}")
    names = [u["UserName"] for u in pages(iam, "ListUsers", "Users", PaginationConfig={"PageSize": 1})]
    assert names == ["rms_0", "rms_1", "rms_2"]
    inject(iam, "iam.ListUsers", status=403, code="AccessDenied", message="no")
    with pytest.raises(AwsError) as caught:
        list(pages(iam, "list_users", "Users"))
    assert caught.value.code == "AccessDenied" and "iam:ListUsers" in caught.value.hint
    assert list(pages(iam, "ListGroupsForUser", "Groups", UserName="nobody", missing=("NoSuchEntity",))) == []


def test_error_code_and_http_status_read_a_client_error_only() -> None:
    error = client_error("InvalidVpcID.NotFound", "no", status=400, operation="DescribeVpcs")
    assert (error_code(error), http_status(error)) == ("InvalidVpcID.NotFound", 400)
    assert (error_code(ValueError("x")), http_status(ValueError("x"))) == ("", 0)
    assert error_code(bx.ClientError({}, "DescribeVpcs")) == ""
