"""The org bucket's `pub/` folder (issue 16.9): `check client ORG` reads it (one ListObjectsV2 of one key),
and a bucket without it is a finding; the fleet check does not read it (its 2 calls per client).

The bucket is real (in-process moto S3); the step is `s3.client-bucket`, as the install checks POS's bucket.
"""

from __future__ import annotations

import json

from kensium_provision.model import Mode
from kensium_provision.steps.base import StepContext
from kensium_provision.steps.s3 import PUBLIC_FOLDER, S3ClientBucket, bucket_policy
from tests.checklist_harness import moto_runtime, raw_client

PARAMS = {"bucket": "fusion-rms-acme", "org_id": "acme", "user": "rms_acme"}


def _bucket(*, folder: bool) -> None:
    s3 = raw_client("s3")
    s3.create_bucket(Bucket="fusion-rms-acme")
    s3.put_bucket_tagging(Bucket="fusion-rms-acme", Tagging={"TagSet": [{"Key": "OrgId", "Value": "acme"}]})
    policy = bucket_policy("fusion-rms-acme", "arn:aws:iam::123456789012:user/rms_acme", "aws")
    s3.put_bucket_policy(Bucket="fusion-rms-acme", Policy=json.dumps(policy))
    if folder:
        s3.put_object(Bucket="fusion-rms-acme", Key=PUBLIC_FOLDER, Body=b"")


def _differences() -> list[str]:
    ctx = StepContext(moto_runtime(Mode.CHECK), "s3-bucket", {})
    return [str(d) for d in S3ClientBucket().verify(ctx, PARAMS)]


def test_a_bucket_with_its_public_folder_verifies(aws: None) -> None:
    _bucket(folder=True)
    assert _differences() == []


def test_a_bucket_without_its_public_folder_is_a_finding(aws: None) -> None:
    _bucket(folder=False)
    assert _differences() == ["public folder: missing, should be pub/ (the media gallery POS serves)"]
