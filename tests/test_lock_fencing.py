"""Locks fenced by owner id and version, not by clock agreement (issue 14.6); a run whose lock is broken
stops before its next act (14.5); the DynamoDB lock table is made by the first apply (14.12).

Clocks are injected (`Clock`): a wall clock that may be skewed, and the waiter's monotonic clock, which
advances only when the waiter sleeps. Everything else is real: lock files, and DynamoDB under moto.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kensium_provision.errors import ExitCode, LockError
from kensium_provision.records.locks import SKEW_SECONDS, DynamoLocks, Heartbeat, LocalLocks, LockInfo, Locks, Watch
from tests.conftest import Kprov
from tests.e2e import EXAMPLES, events, read_records

ALICE = "arn:aws:iam::123456789012:user/alice"
MALLORY = "arn:aws:iam::123456789012:user/mallory"
T0 = 1_796_000_000.0  # 2026-11-29
TABLE = "kprov-locks"
FAST = 20 * 60  # the skewed client's clock runs 20 minutes ahead


class Clock:
    """Seconds of the test's world; `offset` makes a skewed wall clock of the same world."""

    def __init__(self, world: list[float], offset: float = 0.0) -> None:
        self.world, self.offset = world, offset

    def __call__(self) -> float:
        return self.world[0] + self.offset


Backend = Callable[..., Locks]


@pytest.fixture(params=["local", "dynamo"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Makes clients of ONE lock store (a directory, or a DynamoDB table under moto), each with its clocks."""
    if request.param == "local":
        return lambda **kw: LocalLocks(tmp_path / "locks", **kw)
    request.getfixturevalue("aws")
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    return lambda **kw: DynamoLocks(client, TABLE, **kw)


def holder_and_waiter(backend: Backend, *, skew: float,
                      alive: bool) -> tuple[Locks, Locks, list[LockInfo], list[float]]:
    """Alice's client (true clock), and Mallory's whose wall clock is `skew` s off. While Mallory waits,
    the world's time passes; a live Alice renews her lock every 20 s of it, as her heartbeat thread does."""
    world = [T0]
    alice = backend(clock=Clock(world))
    held = [alice.acquire("client:acme", owner=ALICE, run_id="run-alice", ttl_seconds=60)]
    waited = [0.0]

    def sleep(seconds: float) -> None:
        for _ in range(int(seconds * 1000)):  # milliseconds of the world, so renewals land on time
            world[0] += 0.001
            waited[0] += 0.001
            if alive and world[0] - held[-1].heartbeat.timestamp() >= 20:
                held.append(alice.heartbeat(held[-1]))

    watch = Watch(clock=Clock(world, skew), monotonic=lambda: waited[0], sleep=sleep)
    return alice, backend(clock=Clock(world, skew), watch=watch), held, waited


def test_a_client_20_minutes_fast_cannot_take_a_live_lock(backend: Backend) -> None:
    alice, mallory, held, waited = holder_and_waiter(backend, skew=FAST, alive=True)
    with pytest.raises(LockError) as refused:
        mallory.acquire("client:acme", owner=MALLORY, run_id="run-mallory", ttl_seconds=60)
    assert str(refused.value).startswith(f"client:acme is locked by {ALICE} (")
    assert waited[0] < 60 + SKEW_SECONDS  # it watched, saw a renewal and gave up
    assert len(held) >= 2 and alice.list() == [held[-1]]  # Alice's lock, renewed, is still there
    alice.release(held[-1])


def test_a_fast_client_cannot_renew_or_delete_another_s_lock(backend: Backend) -> None:
    alice, mallory, held, _ = holder_and_waiter(backend, skew=FAST, alive=False)
    mine = held[0]
    for forged in (LockInfo(**{**_fields(mine), "run_id": "run-mallory", "owner": MALLORY}),
                   LockInfo(**{**_fields(mine), "owner": MALLORY})):
        with pytest.raises(LockError, match="no longer holds the lock on client:acme"):
            mallory.release(forged)  # Alice's lock id alone is not her owner id
        with pytest.raises(LockError, match="no longer holds the lock on client:acme"):
            mallory.heartbeat(forged)
    assert alice.list() == [mine]
    renewed = alice.heartbeat(mine)
    assert renewed.version == mine.version + 1
    with pytest.raises(LockError, match="no longer holds the lock on client:acme"):
        mallory.heartbeat(mine)  # a copy of the version before: the fence refuses it
    assert alice.list() == [renewed]


def _fields(info: LockInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in LockInfo.__dataclass_fields__}


def test_a_dead_lock_is_taken_after_the_lease_as_the_waiter_observes_it(backend: Backend) -> None:
    alice, mallory, held, waited = holder_and_waiter(backend, skew=FAST, alive=False)
    taken = mallory.acquire("client:acme", owner=MALLORY, run_id="run-mallory", ttl_seconds=60)
    assert waited[0] > 60 + SKEW_SECONDS  # on Mallory's own monotonic clock, whatever her wall clock says
    assert mallory.list() == [taken]
    with pytest.raises(LockError, match="it is now held by arn:aws:iam::123456789012:user/mallory"):
        alice.heartbeat(held[0])
    with pytest.raises(LockError, match="it is now held by arn:aws:iam::123456789012:user/mallory"):
        alice.release(held[0])  # the old holder, back from the dead, cannot delete the new lock
    assert alice.list() == [taken]


def test_a_slow_clock_never_takes_a_lease_that_looks_alive_to_it(backend: Backend) -> None:
    """A clock 20 minutes slow sees the lease running: refused at once, no watching (the safe direction)."""
    _, mallory, held, waited = holder_and_waiter(backend, skew=-FAST, alive=False)
    with pytest.raises(LockError, match="client:acme is locked by"):
        mallory.acquire("client:acme", owner=MALLORY, run_id="run-mallory", ttl_seconds=60)
    assert waited[0] == 0 and mallory.list() == held


def test_heartbeat_check_notices_a_broken_lock_at_once(backend: Backend) -> None:
    locks = backend()
    info = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=900)
    with Heartbeat(locks, info) as beat:  # the thread would beat only after 300 s
        beat.check()
        assert beat.info.version == info.version + 1
        backend().break_(info.lock_id)  # another operator: `kprov lock break`
        with pytest.raises(LockError, match=r"no longer holds the lock on client:acme .* nobody holds it now"):
            beat.check()
        with pytest.raises(LockError, match="no longer holds"):
            beat.check()  # and it stays lost


def test_heartbeat_check_fails_closed_when_the_renewal_cannot_be_made(backend: Backend,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """No proof the lock is still ours (AWS or the disk failed): no further change, rather than a guess."""
    from kensium_provision.errors import AwsError

    locks = backend()
    info = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=900)

    def unreachable(info: LockInfo) -> LockInfo:
        raise AwsError(service="dynamodb", operation="UpdateItem", code="ThrottlingException", message="slow down")

    monkeypatch.setattr(locks, "heartbeat", unreachable)
    with Heartbeat(locks, info) as beat, pytest.raises(LockError, match=r"could not renew the lock on client:acme: "
                                                                          r".*ThrottlingException.*before the next"):
        beat.check()


# ---- a run whose lock is broken (14.5); the lock table on a fresh account (14.12) ----------------------------


def dynamodb_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"locks: {{backend: dynamodb, table: {TABLE}}}\n")
    monkeypatch.setenv("KPROV_CONFIG", str(config))


def other_operator(kind: str) -> Locks:
    """The lock store as another operator's `kprov lock list` / `lock break` reach it."""
    from kensium_provision.app.config import state_dir

    if kind == "local":
        return LocalLocks(state_dir() / "locks")
    import boto3

    return DynamoLocks(boto3.client("dynamodb", region_name="us-east-1"), TABLE)


@pytest.mark.parametrize("kind", ["local", "dynamo"])
def test_a_run_whose_lock_is_broken_stops_before_its_next_act(
        kind: str, aws: None, kprov: Kprov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fresh account (no lock table yet, with dynamo): the apply makes the table, then another operator
    breaks the run's lock right after the VPC is created: the first subnet is never created, exit 1."""
    import boto3

    from kensium_provision.app.config import state_dir
    from kensium_provision.steps.ec2.network import Ec2Vpc

    if kind == "dynamo":
        dynamodb_config(tmp_path, monkeypatch)
    act = Ec2Vpc.act
    broken: list[LockInfo] = []

    def act_then_break(self: Ec2Vpc, *args: Any, **kwargs: Any) -> Any:
        done = act(self, *args, **kwargs)
        (held,) = other_operator(kind).list()
        broken.append(other_operator(kind).break_(held.lock_id))
        return done

    monkeypatch.setattr(Ec2Vpc, "act", act_then_break)
    done = kprov("--non-interactive", "provision", "shared", "vpc", "--answers", str(EXAMPLES / "shared-vpc.yaml"),
                 "--yes")
    assert done.code == ExitCode.FAILED, done.err
    assert "this run no longer holds the lock on shared:vpc:" in done.out + done.err
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]  # the act before the break happened
    assert not [s for s in ec2.describe_subnets()["Subnets"] if not s["DefaultForAz"]]  # none after it
    (journal,) = (state_dir() / "runs").glob("*.jsonl")
    records = read_records(journal)
    # The subnets run at once (engine.schedule): each of them that reached its act is refused there; the loss
    # is journaled once, by whichever came first, and the results stay in checklist order.
    (lost,) = events(records, "lock.lost")
    assert lost["lock_id"] == broken[0].lock_id
    assert "no longer holds the lock" in lost["message"]
    assert f"kprov resume {lost_run(records)}" in " ".join((done.out + done.err).split())
    assert [r["step"] for r in events(records, "step.intent")][-1] == "vpc"  # nothing was attempted after
    failed = [r for r in events(records, "step.result") if r["status"] == "failed"]
    assert failed[0]["step"] == "public-subnet-primary" and lost["step"] in {r["step"] for r in failed}
    assert all("no longer holds the lock" in r["reason"] for r in failed)
    assert events(records, "run.finished")[0]["outcome"] == "failed"


def lost_run(records: list[dict[str, Any]]) -> str:
    return str(records[0]["run_id"])


def test_the_first_apply_creates_the_lock_table_and_a_check_does_not(
        aws: None, kprov: Kprov, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    dynamodb_config(tmp_path, monkeypatch)
    client = boto3.client("dynamodb", region_name="us-east-1")
    listed = kprov("lock", "list")  # a check-mode session: the wall refuses any CreateTable
    assert listed.code == ExitCode.OK, listed.err
    said = " ".join((listed.out + listed.err).split())
    assert f"no lock table {TABLE} in this account yet: no locks are held" in said
    assert kprov("--output", "json", "lock", "list").json()["locks"] == []
    assert client.list_tables()["TableNames"] == []
    locks = DynamoLocks(client, TABLE)
    info = locks.acquire("client:acme", owner=ALICE, run_id="r1", ttl_seconds=60)  # what an apply does
    table = client.describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockTarget", "KeyType": "HASH"}]
    assert client.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"] == [
        {"Key": "kprov:kind", "Value": "locks"}]
    assert locks.list() == [info]
