"""Issue 16: `check client --all` checks its clients while Secrets Manager's listing is still paging.

ListSecrets' pages come one after another (each needs the previous page's token): 151 at 5,000 clients,
which every client's check used to wait for. `fleet.snapshot.SecretListing` is filled page by page and
answers each entry as soon as it is listed; a name not (yet) listed waits for the listing's end.

The listing's pages are real moto answers; what the tests hold back is the listing's progress (a gate in
the page iterator), to see who waits for what: nothing here fakes AWS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kensium_provision.aws.call import pages
from kensium_provision.errors import AwsError
from kensium_provision.fleet import check as fleet_check
from kensium_provision.fleet import snapshot
from kensium_provision.fleet.snapshot import SecretListing
from tests.test_fleet import Fleet, by_client, three  # noqa: F401  (the fixture)

pytest_plugins = ["rabbitmq_fixtures"]

WAIT = 20.0  # seconds a held listing waits for the test before it goes on anyway


def _held(entries: Iterator[Any], release: threading.Event, after: int) -> Iterator[Any]:
    """`entries`, holding back everything after the first `after` until `release` is set."""
    for n, entry in enumerate(entries):
        if n == after:
            release.wait(WAIT)
        yield entry
    release.wait(WAIT)


@pytest.fixture
def listed() -> Iterator[list[Mapping[str, Any]]]:
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        for n in range(5):
            sm.create_secret(Name=f"kprov/sandbox/org{n}/sql-login", SecretString=f"Sql-Pw-{n}-1234")
        yield list(pages(sm, "list_secrets", "SecretList", Filters=[{"Key": "name", "Values": ["kprov/sandbox/"]}],
                         MaxResults=2))


def test_an_entry_is_answered_as_soon_as_it_is_listed(listed: list[Mapping[str, Any]]) -> None:
    listing, release = SecretListing(), threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        filled = pool.submit(listing.fill, _held(iter(listed), release, after=2))
        first = listing.get(str(listed[0]["Name"]))  # listed in the first page: no wait for the rest
        assert first is not None and first["ARN"] == listed[0]["ARN"]
        assert listing.by_arn(str(listed[1]["ARN"])) == listed[1]
        assert not release.is_set() and not filled.done()
        late = pool.submit(lambda: None)  # queued behind the held listing: shows it is still running
        assert not late.done()
        release.set()
        assert listing.get(str(listed[4]["Name"])) == listed[4]
    assert listing.get("kprov/sandbox/nobody/sql-login") is None  # the listing ended without it
    assert listing.by_arn("arn:aws:secretsmanager:us-east-1:123456789012:secret:none-AbCdEf") is None
    assert sorted(str(e["Name"]) for e in listing.entries()) == sorted(str(e["Name"]) for e in listed)


def test_a_name_not_listed_waits_for_the_end_of_the_listing(listed: list[Mapping[str, Any]]) -> None:
    listing, release = SecretListing(), threading.Event()
    answers: list[object] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(listing.fill, _held(iter(listed), release, after=2))
        asked = pool.submit(lambda: answers.append(listing.get("kprov/sandbox/nobody/sql-login")))
        assert not asked.done() and answers == []  # absent so far is not absent: more pages may hold it
        release.set()
        asked.result(timeout=WAIT)
    assert answers == [None]


def test_a_listing_that_fails_raises_for_what_it_cannot_answer(listed: list[Mapping[str, Any]]) -> None:
    error = AwsError(service="secretsmanager", operation="ListSecrets", code="ThrottlingException",
                     message="Rate exceeded")

    def failing() -> Iterator[Any]:
        yield from listed[:2]
        raise error

    listing = SecretListing()
    with pytest.raises(AwsError):
        listing.fill(failing())
    assert listing.get(str(listed[0]["Name"])) == listed[0]  # what was listed is still known
    assert listing.failed() is error
    with pytest.raises(AwsError, match="Rate exceeded"):
        listing.get(str(listed[4]["Name"]))  # not listed: it may exist, the listing cannot say
    with pytest.raises(AwsError):
        listing.entries()


# --- in the fleet check -------------------------------------------------------------------------------------


def _hold_secrets(monkeypatch: pytest.MonkeyPatch, release: threading.Event,
                  fail: BaseException | None = None) -> list[bool]:
    """The snapshot's ListSecrets held back after its last entry (until `release`), or failing there; the
    list returned says, once the listing ended, whether `release` came (True) or the hold timed out."""
    real = pages
    released: list[bool] = []

    def held(client: Any, operation: str, key: str, /, **params: Any) -> Iterator[Any]:
        if operation != "list_secrets":
            return real(client, operation, key, **params)

        def entries() -> Iterator[Any]:
            yield from real(client, operation, key, **params)
            released.append(release.wait(WAIT))
            if fail is not None:
                raise fail

        return entries()

    monkeypatch.setattr(snapshot, "pages", held)
    return released


def test_the_clients_are_checked_before_the_secrets_listing_ends(three: Fleet,  # noqa: F811
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    released = _hold_secrets(monkeypatch, release)
    checked: list[str] = []
    real = fleet_check._check_client

    def counted(record: Any, **kwargs: Any) -> Any:
        result = real(record, **kwargs)
        checked.append(record.org_id)
        if len(checked) == 3:
            release.set()  # every client was checked while the listing was held
        return result

    monkeypatch.setattr(fleet_check, "_check_client", counted)
    report = three.check()
    assert released == [True]  # by the clients' checks, not by the hold's timeout
    assert checked == ["acme", "beta", "gamma"]
    assert by_client(report) == {"acme": [], "beta": [], "gamma": []}
    assert three.calls("secretsmanager:ListSecrets") == 1 and three.calls("secretsmanager:DescribeSecret") == 0


def test_a_missing_entry_is_still_a_finding(three: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    three.world.client("secretsmanager").delete_secret(SecretId="kprov/sandbox/beta/sql-login",
                                                      ForceDeleteWithoutRecovery=True)
    release = threading.Event()
    _hold_secrets(monkeypatch, release)
    threading.Timer(0.5, release.set).start()  # beta's check waits for the listing's end to know it is gone
    found = by_client(three.check())
    assert found["acme"] == found["gamma"] == []
    assert [step for step, _ in found["beta"]] == ["sql-password"]
    assert "beta/sql-login will be generated" in found["beta"][0][1]


def test_a_secrets_listing_that_fails_fails_the_check(three: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    release = threading.Event()
    release.set()
    _hold_secrets(monkeypatch, release, fail=AwsError(service="secretsmanager", operation="ListSecrets",
                                                      code="ThrottlingException", message="Rate exceeded"))
    with pytest.raises(AwsError, match="Rate exceeded"):
        three.check()


def test_clients_are_checked_in_install_order_and_reported_in_org_id_order(three: Fleet,  # noqa: F811
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """ListSecrets lists oldest first (CreatedDate): checking the clients in the order they were installed
    asks for each one's entries in the order they arrive."""
    from dataclasses import replace

    from kensium_provision.records.clients import get_client, put_record

    dynamodb = three.world.client("dynamodb")
    three.clone("aaa")  # installed last, first by name
    aaa = get_client(dynamodb, "aaa")
    acme = get_client(dynamodb, "acme")
    assert aaa is not None and acme is not None
    put_record(dynamodb, replace(aaa, created="9999-01-01T00:00:00+00:00"))
    asked: list[dict[str, Any]] = []
    real = pages

    def seen(client: Any, operation: str, key: str, /, **params: Any) -> Iterator[Any]:
        if operation == "list_secrets":
            asked.append(params)
        return real(client, operation, key, **params)

    monkeypatch.setattr(snapshot, "pages", seen)
    checked: list[str] = []
    real_check = fleet_check._check_client

    def counted(record: Any, **kwargs: Any) -> Any:
        checked.append(record.org_id)
        return real_check(record, **kwargs)

    monkeypatch.setattr(fleet_check, "_check_client", counted)
    report = three.check()
    assert [a.get("SortOrder") for a in asked] == ["asc"]
    assert checked[-1] == "aaa" and checked[0] == "acme"
    assert [c.org_id for c in report.clients] == ["aaa", "acme", "beta", "gamma"]
    assert by_client(report) == {"aaa": [], "acme": [], "beta": [], "gamma": []}
