"""Issue 16: the fleet snapshot reads the buckets' tags 100 named buckets a call, the calls at once.

The paginated listing of every tagged bucket (GetResources with ResourceTypeFilters) came a page after a
page: 51 pages at 5,000 clients, the snapshot's longest chain after ListSecrets (10 s of a 55 s check at
50 ms a call). With ResourceARNList the calls are independent. In-process moto (taught as the sandbox is:
sandbox.listing answers a list of ARNs in one page, as AWS does); the three calls for 250 buckets must all
be in flight together (a barrier in botocore's before-call of each), or the barrier breaks.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from kensium_provision.fleet.snapshot import _bucket_tags


@pytest.mark.usefixtures("aws")
def test_the_tags_of_250_buckets_come_in_three_calls_at_once() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    names = [f"fusion-rms-c{n:03d}" for n in range(250)]
    for name in names:
        s3.create_bucket(Bucket=name)
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "OrgId", "Value": name[11:]},
                                                               {"Key": "kprov:env", "Value": "sandbox"}]})
    s3.create_bucket(Bucket="untagged-bucket")
    tagging = boto3.client("resourcegroupstaggingapi", region_name="us-east-1")
    together = threading.Barrier(3, timeout=10)
    sent: list[int] = []

    def meet(params: Any, **_: Any) -> None:
        sent.append(len(params["ResourceARNList"]))
        together.wait()  # breaks (BrokenBarrierError) unless the three calls are in flight at once

    tagging.meta.events.register("provide-client-params.resource-groups-tagging-api.GetResources", meet)
    with ThreadPoolExecutor(max_workers=4) as pool:
        batches = _bucket_tags(tagging, "aws", [*names, "untagged-bucket"], pool)
        found = {arn: tags for batch in batches for arn, tags in batch.result().items()}

    assert sorted(sent) == [51, 100, 100]
    assert sorted(found) == sorted(f"arn:aws:s3:::{n}" for n in names)  # an untagged bucket is not answered
    assert found["arn:aws:s3:::fusion-rms-c007"] == {"OrgId": "c007", "kprov:env": "sandbox"}
