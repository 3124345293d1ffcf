"""The sandbox's Secrets Manager listing (sandbox.listing): moto's pages, each serialised alone.

moto (in process, the suite's `aws` fixture, which teaches it as the sandbox server does) with 45 secrets
under two prefixes and one scheduled for deletion: the pages are the same secrets in the same order with
the same tokens and filters as moto's own listing, and a page serialises only its own secrets (moto's
own serialised every matching secret for every page: 15,000 a page at 5,000 clients).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest


def _names(client: Any, **params: Any) -> list[list[str]]:
    pages = client.get_paginator("list_secrets").paginate(MaxResults=10, **params)
    return [[s["Name"] for s in page["SecretList"]] for page in pages]


def _flat(pages: list[list[str]]) -> list[str]:
    return [name for page in pages for name in page]


@pytest.mark.usefixtures("aws")
def test_each_page_serialises_only_its_own_secrets_and_the_pages_are_motos_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.secretsmanager.models import FakeSecret

    client = boto3.client("secretsmanager", region_name="us-east-1")
    for n in range(40):
        client.create_secret(Name=f"kprov/prod/c{n:02d}/sql-login", SecretString="x")
    for n in range(5):
        client.create_secret(Name=f"other/s{n}", SecretString="x")
    client.delete_secret(SecretId="kprov/prod/c07/sql-login", RecoveryWindowInDays=7)

    serialised: list[str] = []
    to_dict = FakeSecret.to_dict

    def counted(self: FakeSecret) -> dict[str, Any]:
        serialised.append(self.name)
        return to_dict(self)

    monkeypatch.setattr(FakeSecret, "to_dict", counted)
    prefix = [{"Key": "name", "Values": ["kprov/prod/"]}]
    listed = _names(client, Filters=prefix, IncludePlannedDeletion=True)

    assert [len(page) for page in listed] == [10, 10, 10, 10]
    assert _flat(listed) == [f"kprov/prod/c{n:02d}/sql-login" for n in range(40)]  # creation order
    assert sorted(serialised) == sorted(_flat(listed))  # each secret once: only the page it is on
    live = _flat(_names(client, Filters=prefix))
    assert "kprov/prod/c07/sql-login" not in live and len(live) == 39
    assert _flat(_names(client)) == [*live, *(f"other/s{n}" for n in range(5))]


@pytest.mark.usefixtures("aws")
def test_get_resources_by_arn_answers_every_listed_resource_at_once_and_refuses_what_aws_refuses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError
    from moto.secretsmanager.models import SecretsManagerBackend

    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="kprov/prod/c000/sql-login", SecretString="x", Tags=[{"Key": "kprov:managed", "Value": "true"}])
    walked: list[str] = []
    own = SecretsManagerBackend.iter_tagged_resources

    def walk(self: SecretsManagerBackend) -> Any:
        walked.append("secretsmanager")
        return own(self)

    monkeypatch.setattr(SecretsManagerBackend, "iter_tagged_resources", walk)
    s3 = boto3.client("s3", region_name="us-east-1")
    for n in range(120):
        s3.create_bucket(Bucket=f"fusion-rms-c{n:03d}")
        s3.put_bucket_tagging(Bucket=f"fusion-rms-c{n:03d}", Tagging={"TagSet": [
            {"Key": "OrgId", "Value": f"c{n:03d}"}, {"Key": "kprov:managed", "Value": "true"},
            {"Key": "kprov:env", "Value": "sandbox"}]})
    tagging = boto3.client("resourcegroupstaggingapi", region_name="us-east-1")
    arns = [f"arn:aws:s3:::fusion-rms-c{n:03d}" for n in range(100)]

    got = tagging.get_resources(ResourceARNList=[*arns[:99], "arn:aws:s3:::no-such-bucket"])
    # moto's own: 33 resources (100 tags a page) and a token to send back with the list, which AWS refuses
    assert not got.get("PaginationToken")
    assert sorted(r["ResourceARN"] for r in got["ResourceTagMappingList"]) == sorted(arns[:99])
    assert {t["Key"]: t["Value"] for t in got["ResourceTagMappingList"][0]["Tags"]}["kprov:env"] == "sandbox"
    assert walked == []  # only the backends owning a listed ARN: moto's own walked every service's resources
    for beside in ({"ResourceTypeFilters": ["s3:bucket"]}, {"ResourcesPerPage": 100}, {"PaginationToken": "x"}):
        with pytest.raises(ClientError) as refused:
            tagging.get_resources(ResourceARNList=arns, **beside)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError):
        tagging.get_resources(ResourceARNList=[*arns, "arn:aws:s3:::fusion-rms-c100"])  # 101 ARNs
    listed = tagging.get_paginator("get_resources").paginate(ResourceTypeFilters=["s3:bucket"])
    assert sum(len(page["ResourceTagMappingList"]) for page in listed) == 120  # without the list: moto's pages


def _table(client: Any, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])


def _scanned(client: Any, **params: Any) -> list[dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(**params)
    return [{k: v for k, v in page.items() if k != "ResponseMetadata"}
            | {"content-type": page["ResponseMetadata"]["HTTPHeaders"].get("content-type")} for page in pages]


@pytest.mark.usefixtures("aws")
def test_a_scan_answers_what_motos_serialiser_answers_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.responses import DynamoHandler

    client = boto3.client("dynamodb", region_name="us-east-1")
    _table(client, "records")
    for n in range(30):
        client.put_item(TableName="records", Item={
            "pk": {"S": f"c{n:02d}"}, "n": {"N": str(n)}, "f": {"N": "1.5"}, "ok": {"BOOL": n % 2 == 0},
            "none": {"NULL": True}, "tags": {"SS": ["a", "b"]}, "nums": {"NS": ["1", "2"]},
            "answers": {"M": {"org_id": {"S": f"c{n:02d}"}, "list": {"L": [{"S": "x"}, {"N": "3"}]}}},
            "text": {"S": "é \u2028 \"quoted\" \\ " + "x" * 200}})
    _table(client, "binary")
    client.put_item(TableName="binary", Item={"pk": {"S": "b"}, "blob": {"B": b"\x00\xff"}, "blobs": {"BS": [b"1"]}})
    cases: list[dict[str, Any]] = [
        {"TableName": "records", "ConsistentRead": True, "PaginationConfig": {"PageSize": 7}},
        {"TableName": "records", "ReturnConsumedCapacity": "TOTAL", "FilterExpression": "ok = :t",
         "ExpressionAttributeValues": {":t": {"BOOL": True}}},
        {"TableName": "records", "Select": "COUNT"},
        {"TableName": "binary"}]
    serialised: list[str] = []
    serialized = DynamoHandler.serialized

    def counted(self: Any, result: Any) -> Any:
        serialised.append(self._get_action())
        return serialized(self, result)

    monkeypatch.setattr(DynamoHandler, "serialized", counted)
    taught = [_scanned(client, **case) for case in cases]
    assert serialised == ["Scan"]  # the binary table's only: every other page written as JSON directly
    assert [len(pages) for pages in taught] == [5, 1, 1, 1] and taught[0][0]["Count"] == 7
    assert taught[3][0]["Items"][0]["blob"] == {"B": b"\x00\xff"}
    monkeypatch.setattr(DynamoHandler, "scan", DynamoHandler._kprov_scan)  # type: ignore[attr-defined]  # moto's own
    assert [_scanned(client, **case) for case in cases] == taught
