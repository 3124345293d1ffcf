"""Locks per target: local files and DynamoDB (under moto), with holders named, leases and owner-only release."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kensium_provision.errors import InputError, LockError
from kensium_provision.records.locks import (
    SKEW_SECONDS,
    DynamoLocks,
    Heartbeat,
    LocalLocks,
    LockInfo,
    Locks,
    Watch,
    check_target,
)

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
T0 = datetime(2026, 11, 28, 7, 12, tzinfo=UTC).timestamp()


class Clock:
    """An injected clock, wall and monotonic alike: leases expire, and waiters wait, without sleeping."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def watch(self) -> Watch:
        return Watch(clock=self, monotonic=self, sleep=self.advance)


def held_message(info: LockInfo) -> str:
    return (f"{info.target} is locked by {info.owner} ({info.who}, run {info.run_id}, since 2026-11-28 07:12 UTC); "
            f"wait for that run, or break the lock with: kprov lock break {info.lock_id}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def local(tmp_path: Path, clock: Clock) -> LocalLocks:
    return LocalLocks(tmp_path / "locks", clock=clock, watch=clock.watch())


@pytest.fixture
def dynamo(aws: None, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> DynamoLocks:
    import boto3
    from moto.dynamodb.models import DynamoDBBackend

    # AWS applies a conditional write atomically; moto's in-process backend checks and writes without a
    # lock, so under CPU load two threads can both pass the condition. Serialise moto's writes so the
    # race test measures kprov's locking logic, not a gap in the emulator.
    guard = threading.Lock()
    for name in ("put_item", "update_item", "delete_item"):
        original = getattr(DynamoDBBackend, name)

        def serialised(self: object, *args: object, _original: object = original, **kwargs: object) -> object:
            with guard:
                return _original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(DynamoDBBackend, name, serialised)
    locks = DynamoLocks(boto3.client("dynamodb", region_name="us-east-1"), "kprov-locks", clock=clock,
                        watch=clock.watch())
    assert locks.ensure_table() is True
    assert locks.ensure_table() is False
    return locks


@pytest.fixture(params=["local", "dynamo"])
def locks(request: pytest.FixtureRequest) -> Locks:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


# ---- both backends ------------------------------------------------------------------------------------------


def test_target_strings_are_allow_listed() -> None:
    assert check_target("client:acme") == "client:acme"
    assert check_target("shared:rds:db-POS-01") == "shared:rds:db-POS-01"
    for bad in ("acme", "client:", "Client:acme", "client:../../etc/passwd", "client:a b", "client:a/b", ""):
        with pytest.raises(InputError, match="is not a lock target"):
            check_target(bad)


def test_second_acquirer_is_refused_naming_the_holder(locks: Locks) -> None:
    first = locks.acquire("client:acme", owner=ALICE, run_id="20261128-071200-a1", ttl_seconds=300)
    assert first.owner == ALICE and first.run_id == "20261128-071200-a1" and "@" in first.who
    assert first.created == datetime.fromtimestamp(T0, UTC)
    assert first.expires - first.created == timedelta(seconds=300)
    with pytest.raises(LockError) as refused:
        locks.acquire("client:acme", owner=BOB, run_id="20261128-071500-b2", ttl_seconds=300)
    assert str(refused.value) == held_message(first)
    assert refused.value.hint == (
        "its holder renews its 300 s lease every 100 s (last at 2026-11-28 07:12:00 UTC by its clock); a crashed "
        f"run's lock is taken over by the next run once that run has seen it unrenewed for the lease plus "
        f"{SKEW_SECONDS:.0f} s")
    other = locks.acquire("shared:rds:db-POS-01", owner=BOB, run_id="r2", ttl_seconds=300)
    assert [i.target for i in locks.list()] == ["client:acme", "shared:rds:db-POS-01"]
    assert locks.list() == [first, other]


def test_an_expired_lease_is_taken_over(locks: Locks, clock: Clock) -> None:
    old = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    clock.advance(30)
    with pytest.raises(LockError):
        locks.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
    clock.advance(31)
    watching = clock.now
    new = locks.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
    assert clock.now - watching > 60 + SKEW_SECONDS  # seen unrenewed for the lease and the skew bound first
    assert locks.list() == [new]
    with pytest.raises(LockError, match=f"no longer holds the lock on client:acme \\(lock {old.lock_id}\\)"):
        locks.release(old)
    with pytest.raises(LockError, match="it is now held by arn:aws:iam::123456789012:user/bob"):
        locks.heartbeat(old)


def test_only_the_owner_releases(locks: Locks) -> None:
    mine = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    forged = LockInfo(**{**{f: getattr(mine, f) for f in LockInfo.__dataclass_fields__}, "lock_id": "not-mine"})
    with pytest.raises(LockError, match="this run no longer holds the lock on client:acme"):
        locks.release(forged)
    assert locks.list() == [mine]
    locks.release(mine)
    assert locks.list() == []
    with pytest.raises(LockError, match="nobody holds it now"):
        locks.release(mine)
    again = locks.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
    assert again.lock_id != mine.lock_id


def test_heartbeat_extends_the_lease(locks: Locks, clock: Clock) -> None:
    info = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    clock.advance(50)
    renewed = locks.heartbeat(info)
    assert renewed.expires == info.expires + timedelta(seconds=50)
    assert renewed.heartbeat == info.created + timedelta(seconds=50) and renewed.created == info.created
    assert locks.list() == [renewed]
    clock.advance(50)  # past the first lease, inside the renewed one
    with pytest.raises(LockError):
        locks.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)


def test_break_removes_a_lock_by_id(locks: Locks) -> None:
    info = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    assert locks.break_(info.lock_id) == info
    assert locks.list() == []
    with pytest.raises(LockError, match=f"no lock has the id {info.lock_id}"):
        locks.break_(info.lock_id)
    with pytest.raises(LockError, match="no longer holds"):
        locks.heartbeat(info)


def real_time(locks: Locks) -> Locks:
    """The same lock store, on the real clocks: the heartbeat thread runs in real time."""
    if isinstance(locks, LocalLocks):
        return LocalLocks(locks.dir)
    assert isinstance(locks, DynamoLocks)
    return DynamoLocks(locks._client, locks.table)


def test_heartbeat_thread_renews_and_stops(locks: Locks) -> None:
    locks = real_time(locks)
    info = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=0.3)
    with Heartbeat(locks, info) as beat:
        time.sleep(0.35)
        beat.check()
        assert beat.info.heartbeat > info.heartbeat and beat.info.expires > info.expires
        assert beat.info.version >= info.version + 2  # one beat of the thread at least, and the check's
    assert not beat.alive
    assert locks.list() == [beat.info]
    with Heartbeat(locks, beat.info, interval=0.02) as lost:
        locks.break_(info.lock_id)
        deadline = time.monotonic() + 5
        while lost.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not lost.alive
        with pytest.raises(LockError, match="no longer holds the lock on client:acme"):
            lost.check()


def test_heartbeat_gives_up_after_repeated_errors() -> None:
    class Flaky:
        calls = 0

        def heartbeat(self, info: LockInfo) -> LockInfo:
            self.calls += 1
            raise OSError("connection reset")

    now = datetime.now(UTC)
    info = LockInfo(lock_id="x", target="client:acme", owner=ALICE, who="a@h", pid=1, run_id="r", created=now,
                    expires=now + timedelta(seconds=1), heartbeat=now)
    flaky = Flaky()
    with Heartbeat(flaky, info, interval=0.01, max_failures=3) as beat:  # type: ignore[arg-type]
        beat._thread.join(timeout=5)
    assert flaky.calls == 3
    with pytest.raises(LockError, match="could not renew the lock on client:acme 3 times: connection reset"):
        beat.check()


# ---- local files ---------------------------------------------------------------------------------------------


def test_lock_files_stay_inside_the_directory(local: LocalLocks) -> None:
    for target in ("client:..", "client:acme", "client:ACME", "shared:rds:db-POS-01"):
        path = local.path(target)
        assert path.parent == local.dir and "/" not in path.name and not path.name.startswith(".")
    assert local.path("client:acme") != local.path("client:ACME")
    assert local.path("client:acme").name.lower() != local.path("client:ACME").name.lower()
    info = local.acquire("client:..", owner=ALICE, run_id="r1", ttl_seconds=60)
    assert local.list() == [info]


def test_a_lock_of_a_dead_process_is_stale(local: LocalLocks) -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as dead:
        dead.wait()
    info = local.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=3600)
    path = local.path("client:acme")
    path.write_text(json.dumps({**info.to_json(), "pid": dead.pid}))
    taken = local.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=3600)
    assert local.list() == [taken]


def test_a_torn_lock_file_is_stale(local: LocalLocks) -> None:
    local.dir.mkdir(parents=True)
    local.path("client:acme").write_text('{"lock_id": "x", "tar')
    info = local.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    assert local.list() == [info]


HOLDER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from kensium_provision.records.locks import LocalLocks
    info = LocalLocks(Path(sys.argv[1])).acquire("client:acme", owner=sys.argv[2], run_id="held-by-child",
                                                  ttl_seconds=3600)
    print(json.dumps(info.to_json()), flush=True)
    sys.stdin.read()  # hold until the parent closes stdin, then exit without releasing
    """
)


def test_a_second_process_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    locks = LocalLocks(tmp_path / "locks")
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(locks.dir), ALICE],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdin is not None and child.stdout is not None
        held = LockInfo.from_json(json.loads(child.stdout.readline()))
        assert held.pid == child.pid
        with pytest.raises(LockError) as refused:
            locks.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
        assert str(refused.value).startswith(f"client:acme is locked by {ALICE} ({held.who}, run held-by-child, since ")
        assert f"kprov lock break {held.lock_id}" in str(refused.value)
        child.stdin.close()
        assert child.wait(timeout=10) == 0
    # the holder died without releasing: its pid is gone on this host, so the lock is stale
    mine = locks.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
    assert locks.list() == [mine]


def test_local_racers_get_one_winner(local: LocalLocks) -> None:
    wins = race(local, "client:acme", racers=16)
    assert len(wins) == 1


# ---- DynamoDB ------------------------------------------------------------------------------------------------


def race(locks: Locks, target: str, *, racers: int) -> list[LockInfo]:
    barrier = threading.Barrier(racers)
    wins: list[LockInfo] = []
    refusals: list[str] = []

    def contend(n: int) -> None:
        barrier.wait()
        try:
            wins.append(locks.acquire(target, owner=ALICE, run_id=f"run-{n}", ttl_seconds=60))
        except LockError as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(wins) + len(refusals) == racers
    if len(wins) == 1:
        assert refusals == [held_message(wins[0])] * (racers - 1)
    return wins


def test_dynamo_racers_get_exactly_one_winner_per_round(dynamo: DynamoLocks) -> None:
    for round_ in range(10):
        wins = race(dynamo, f"client:race-{round_}", racers=32)
        assert len(wins) == 1, f"round {round_}: {len(wins)} winners"
    assert len(dynamo.list()) == 10


def test_dynamo_stores_a_readable_item(dynamo: DynamoLocks) -> None:
    info = dynamo.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    item = dynamo._client.get_item(TableName="kprov-locks", Key={"LockTarget": {"S": "client:acme"}})["Item"]
    assert item["LockId"] == {"S": info.lock_id} and item["Owner"] == {"S": ALICE}
    assert item["RunId"] == {"S": "r1"} and float(item["ExpiresAt"]["N"]) == T0 + 60


def test_dynamo_names_the_holder_from_the_failed_put_itself(
    dynamo: DynamoLocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = dynamo.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)

    def no_second_read(**kwargs: Any) -> Any:
        raise AssertionError("ALL_OLD returns the holder: no get_item needed")

    monkeypatch.setattr(dynamo._client, "get_item", no_second_read)
    with pytest.raises(LockError) as refused:
        dynamo.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
    assert str(refused.value) == held_message(first)


def test_dynamo_names_the_holder_without_all_old(dynamo: DynamoLocks, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older botocore lacks ReturnValuesOnConditionCheckFailure: the holder is read afterwards."""
    sent: list[dict[str, Any]] = []
    client = dynamo._client
    put = client.put_item

    def put_item(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return put(**kwargs)

    monkeypatch.setattr(dynamo, "_all_old", False)
    monkeypatch.setattr(client, "put_item", put_item)
    first = dynamo.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    with pytest.raises(LockError) as refused:
        dynamo.acquire("client:acme", owner=BOB, run_id="r2", ttl_seconds=60)
    assert str(refused.value) == held_message(first)
    assert all("ReturnValuesOnConditionCheckFailure" not in kwargs for kwargs in sent)


def test_dynamo_detects_all_old_support(dynamo: DynamoLocks) -> None:
    assert dynamo._returns_holder() is True
    assert DynamoLocks(object(), "t")._returns_holder() is False


def test_dynamo_other_errors_become_aws_errors(aws: None, clock: Clock) -> None:
    """AWS refuses the put for another reason than the lock's condition: an AwsError, not a lock decision.
    botocore's own Stubber answers (moto cannot be told to deny one call)."""
    import boto3
    from botocore.stub import Stubber

    from kensium_provision.errors import AwsError

    client = boto3.client("dynamodb", region_name="us-east-1")
    locks = DynamoLocks(client, "kprov-locks", clock=clock)
    with Stubber(client) as stub:
        stub.add_client_error("put_item", service_error_code="AccessDeniedException", http_status_code=400,
                              service_message="not authorized to perform: dynamodb:PutItem")
        with pytest.raises(AwsError, match="dynamodb:PutItem failed with AccessDeniedException") as denied:
            locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)
    assert "dynamodb:PutItem" in (denied.value.hint or "")
