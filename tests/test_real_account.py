"""Small things real accounts hit that moto hides (issue 16.9): Local/Wavelength zones, account-level Block
Public Access, a bucket name owned by another account.

moto lists only real availability zones and keeps no account-level Block Public Access of a foreign
account, so the answers AWS gives there are faked with `before-send` hooks (tests/faults.respond);
everything else is moto.
"""

from __future__ import annotations

from kensium_provision.model import Mode
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.lookups import availability_zones
from tests.checklist_harness import moto_runtime
from tests.faults import respond

_ZONES = ('<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
          "<requestId>kprov-zones</requestId><availabilityZoneInfo>"
          "<item><zoneName>us-east-1a</zoneName><zoneState>available</zoneState><zoneType>availability-zone</zoneType>"
          "</item><item><zoneName>us-east-1-bos-1a</zoneName><zoneState>available</zoneState>"
          "<zoneType>local-zone</zoneType></item><item><zoneName>us-east-1-wl1-bos-wlz-1</zoneName>"
          "<zoneState>available</zoneState><zoneType>wavelength-zone</zoneType></item>"
          "</availabilityZoneInfo></DescribeAvailabilityZonesResponse>")


def test_only_availability_zones_are_offered_never_local_or_wavelength_zones(aws: None) -> None:
    runtime = moto_runtime(Mode.PLAN)
    ec2 = runtime.aws.client("ec2")
    sent: list[object] = []
    ec2.meta.events.register("provide-client-params.ec2.DescribeAvailabilityZones",
                             lambda params, **_: sent.append(params))
    respond(ec2, "ec2.DescribeAvailabilityZones", _ZONES)  # a region opted into a Local and a Wavelength zone
    assert availability_zones(StepContext(runtime, "zones", {}), {}) == ["us-east-1a"]
    assert {"Name": "zone-type", "Values": ["availability-zone"]} in sent[0]["Filters"]  # type: ignore[index]


def test_account_level_block_public_access_is_read_and_overrides_the_buckets(aws: None) -> None:
    from kensium_provision.steps.s3 import evaluate_bucket, read_bucket

    runtime = moto_runtime(Mode.CHECK)
    raw = moto_runtime(Mode.APPLY).aws
    raw.client("s3").create_bucket(Bucket="fusion-rms-acme")
    account = raw.client("sts").get_caller_identity()["Account"]
    ctx = StepContext(runtime, "s3-bucket", {})
    found = read_bucket(ctx, "fusion-rms-acme")
    assert found is not None and found.account_block_public_access is None  # nothing set: off

    raw.client("s3control").put_public_access_block(AccountId=account, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    runtime = moto_runtime(Mode.CHECK)  # a new run: nothing cached
    found = read_bucket(StepContext(runtime, "s3-bucket", {}), "fusion-rms-acme")
    assert found is not None and found.block_public_access is None  # the bucket's own says nothing...
    problems = evaluate_bucket(found, bucket="fusion-rms-acme", org_id="acme", partition="aws", tag_keys=["OrgId"],
                               user_arn=f"arn:aws:iam::{account}:user/rms_acme")
    assert "account-level Block Public Access" in [p.field for p in problems]  # ...but the account's wins


def test_a_403_on_head_bucket_asks_whether_the_name_is_owned_elsewhere(aws: None) -> None:
    import pytest

    from kensium_provision.errors import StepError
    from kensium_provision.steps.s3 import read_bucket_exists

    s3 = moto_runtime(Mode.CHECK).aws.client("s3")
    respond(s3, "s3.HeadBucket", b"", status=403, headers={})  # S3's answer for another account's bucket
    with pytest.raises(StepError, match="owned elsewhere") as caught:
        read_bucket_exists(s3, "fusion-rms-acme")
    assert "s3:ListBucket" in caught.value.hint  # the IAM reading comes second
