"""Issue 16: in `check client --all`, nothing the clients' checks wait for queues behind the per-bucket reads.

The per-bucket reads (2 per client: 10,000 at 5,000 clients) are started on the fleet's pool as soon as the
bucket list is in. The brokers' management API listings were submitted to the same pool after them, so no
client could be checked before every bucket had been read. Here the bucket reads are held (a gate around
the real reads, on in-process moto) until the first client is checked: that happens only if the broker
listing did not wait for them.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kensium_provision.fleet import check as fleet_check
from kensium_provision.steps import s3
from tests.test_fleet import Fleet, by_client, three  # noqa: F401  (the fixture)

pytest_plugins = ["rabbitmq_fixtures"]

WAIT = 20.0  # seconds a held bucket read waits for the test before it goes on anyway


def test_the_first_client_is_checked_while_the_bucket_reads_are_held(three: Fleet,  # noqa: F811
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    released: list[bool] = []
    real_read, real_check = s3.read_exposure, fleet_check._check_client

    def held(client: Any, bucket: str) -> Any:
        released.append(release.wait(WAIT))
        return real_read(client, bucket)

    def first_releases(record: Any, **kwargs: Any) -> Any:
        release.set()  # a client's check started: its broker's listing was in
        return real_check(record, **kwargs)

    monkeypatch.setattr(s3, "read_exposure", held)
    monkeypatch.setattr(fleet_check, "_check_client", first_releases)
    # Two workers: one pages ListSecrets, the other holds a bucket read; a third task would queue.
    report = three.check(workers=2)
    assert by_client(report) == {"acme": [], "beta": [], "gamma": []}
    assert released and all(released), released  # every hold ended by a client's check, none timed out


def test_a_records_bucket_reads_start_before_the_scans_last_page(three: Fleet,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The records' Scan comes in 1 MB pages (10 at 5,000 clients); each record's bucket reads start as its
    # page comes. Here the Scan is held after its first record until that record's bucket is read: it goes
    # on at once only if the reads did not wait for the whole Scan.
    from kensium_provision.fleet import snapshot

    first_read = threading.Event()
    held: list[bool] = []
    real_items, real_read = getattr(snapshot, "iter_items"), s3.read_exposure  # noqa: B009 - not exported

    def slow_scan(*args: Any, **kwargs: Any) -> Any:
        for n, item in enumerate(real_items(*args, **kwargs)):
            if n == 1:  # the first record is in: its bucket's reads must be under way
                held.append(first_read.wait(WAIT))
            yield item

    def read(client: Any, bucket: str) -> Any:
        first_read.set()
        return real_read(client, bucket)

    monkeypatch.setattr(snapshot, "iter_items", slow_scan)
    monkeypatch.setattr(s3, "read_exposure", read)
    report = three.check()
    assert by_client(report) == {"acme": [], "beta": [], "gamma": []}
    assert held == [True]  # the Scan's hold ended by a bucket read, not by its timeout
