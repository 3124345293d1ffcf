"""`AwsSession.client(service, connections=N)`: a client whose connection pool holds N, for N threads sharing it
(the fleet check's per-bucket reads, `fleet.snapshot.wide_client`), made as every other client of the session."""

from __future__ import annotations

import pytest
from moto import mock_aws

from kensium_provision.app.config import SANDBOX_ENVIRONMENT
from kensium_provision.aws.session import AwsSession
from kensium_provision.errors import KprovError
from kensium_provision.model import Mode


def test_a_wide_client_is_its_own_cached_client_counted_and_walled() -> None:
    with mock_aws():
        session = AwsSession(SANDBOX_ENVIRONMENT, mode=Mode.CHECK, in_process=True)
        wide, plain = session.client("s3", connections=32), session.client("s3")
        assert wide is session.client("s3", connections=32) and wide is not plain
        assert wide.meta.config.max_pool_connections == 32 and plain.meta.config.max_pool_connections == 10
        assert session.client("s3", connections=8) is plain  # botocore's 10 already hold 8
        wide.list_buckets()
        assert session.counter.count("s3", "ListBuckets") == 1  # counted as the session's other clients
        with pytest.raises(KprovError):  # walled: a check never writes, whatever the client
            wide.create_bucket(Bucket="kprov-speed-test")
        assert "kprov-speed-test" not in [b["Name"] for b in plain.list_buckets()["Buckets"]]
