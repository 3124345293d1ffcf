"""moto's server without two costs per request AWS has no counterpart of (sandbox.overhead).

A real moto server (ThreadedMotoServer on loopback, taught as the sandbox server is): its dispatcher lists
moto's package folder once, not for every request, and an error answer's table of error shapes is built
once per service, not for every error; the answers are moto's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


@pytest.fixture
def server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from kensium_provision.sandbox import lessons

    lessons.teach()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        yield f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    finally:
        moto.stop()


def test_each_request_lists_no_folder_and_builds_no_error_table(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.backends
    from moto.core.errors import ErrorLookupFactory

    s3 = boto3.client("s3", endpoint_url=server, region_name="us-east-1", aws_access_key_id="kprov-sandbox",
                      aws_secret_access_key="kprov-sandbox", config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="fusion-rms-acme")
    with pytest.raises(ClientError):
        s3.get_public_access_block(Bucket="fusion-rms-acme")  # the first error answer builds S3's table
    listed: list[str] = []
    built: list[Any] = []
    listdir, create = os.listdir, ErrorLookupFactory._create_error_lut

    def listing(path: str) -> list[str]:
        listed.append(path)
        return listdir(path)

    def table(model: Any) -> Any:
        built.append(model)
        return create(model)

    monkeypatch.setattr(os, "listdir", listing)
    monkeypatch.setattr(ErrorLookupFactory, "_create_error_lut", staticmethod(table))
    codes = []
    for _ in range(20):
        s3.head_bucket(Bucket="fusion-rms-acme")
        with pytest.raises(ClientError) as refused:
            s3.get_public_access_block(Bucket="fusion-rms-acme")
        codes.append(refused.value.response["Error"]["Code"])
    assert codes == ["NoSuchPublicAccessBlockConfiguration"] * 20  # moto's own error answer
    assert listed == [] and built == []  # moto.s own: a listing every request, a table every error
    kept = list(moto.backends.list_of_moto_modules())
    assert kept == list(moto.backends._kprov_list_of_moto_modules())  # type: ignore[attr-defined]
    assert "s3" in kept and "dynamodb" in kept
