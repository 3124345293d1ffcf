"""Issue 7 end to end: kill -9 mid-apply then resume; Ctrl-C during a wait; a second process meets the lock.

Real `kprov` subprocesses against a moto server in this process (reached through AWS_ENDPOINT_URL,
environment `sandbox`), so a test can hold one API request in flight and change moto's state (an
RDS instance back to `creating`) while kprov runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from kensium_provision.errors import ExitCode
from tests.e2e import (
    ACCOUNT,
    REGION,
    MotoServer,
    World,
    events,
    example,
    finished,
    moment,
    moto_server,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow

VPC_ANSWERS = example("shared-vpc.yaml")
RDS_ANSWERS = example("shared-rds.yaml")
SUBNETS = ("POS-public-us-east-1a", "POS-public-us-east-1b", "POS-private-us-east-1a", "POS-private-us-east-1b")


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    yield from moto_server()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, server: MotoServer) -> World:
    server.reset()
    return World(tmp_path_factory.mktemp("e2e-resume"), extra_env={"AWS_ENDPOINT_URL": server.endpoint})


@pytest.fixture
def vpc(world: World) -> None:
    """The region's network, as the VPC checklist makes it (nothing to do when an earlier test made it)."""
    done = world.kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    assert done.returncode == ExitCode.OK, done.stderr


def lock_files(world: World) -> list[Path]:
    folder = world.state / "locks"
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def rds_instance(identifier: str = "db-pos-01") -> object:
    """moto's own record of the instance (this process hosts the server)."""
    from moto.rds.models import rds_backends

    databases = rds_backends[ACCOUNT][REGION].databases
    return databases.get(identifier) or next(d for key, d in databases.items() if key.lower() == identifier)


def test_kill_9_while_a_create_is_in_flight_then_resume_makes_nothing_twice(world: World, server: MotoServer) -> None:
    server.reset()  # whatever ran before: the network does not exist yet
    start, before = len(server.calls), world.run_ids()
    # The CreateSubnet of public-subnet-secondary is held at the server: kprov waits for its answer. The
    # engine runs the four subnets (and the groups) at once, so the others may be done, in flight or not
    # started when the kill comes: each is either found by its Name tag on resume, or made then, never twice.
    held = server.hold("CreateSubnet", containing="POS-public-us-east-1b")
    process = world.spawn("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    try:
        wait_for(lambda: held.reached.is_set() or process.poll() is not None, what="the held CreateSubnet")
        assert process.poll() is None, finished(process)
        run_id = world.new_run(before)
        records = world.records(run_id)
        assert "public-subnet-secondary" in [r["step"] for r in events(records, "step.intent")]
        assert "vpc" in [r["step"] for r in events(records, "step.result") if r["status"] == "changed"]
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        held.release.set()
        stop(process)
    # The killed request still lands: the subnet exists though kprov never heard of it.
    wait_for(lambda: server.named("subnet", "POS-public-us-east-1b"), what="the held subnet to be created")

    killed = world.records(run_id)
    assert not events(killed, "run.finished") and not events(killed, "step.result", "public-subnet-secondary")
    listed = json.loads(world.kprov("--output", "json", "runs", "list").stdout)
    assert next(r for r in listed["runs"] if r["run_id"] == run_id)["outcome"] == "unfinished"
    assert world.kprov("audit", "verify", run_id).returncode == ExitCode.OK  # a kill is not tampering
    assert len(lock_files(world)) == 1  # the dead run's lock is left behind; its pid is gone

    before = world.run_ids()
    resumed = world.kprov("resume", run_id, "--answers", VPC_ANSWERS, "--yes")
    assert resumed.returncode == ExitCode.OK, resumed.stderr
    assert f"Resuming {run_id}" in resumed.stderr
    new = world.records(world.new_run(before))
    assert new[0]["resumes"] == run_id
    results = {r["step"]: r["status"] for r in events(new, "step.result")}
    assert results["vpc"] == "done"
    # The subnet the killed run's request made is found by its Name tag and finished (its public-IP
    # attribute is set by a second call, which the killed run never made), not created again.
    landed = server.named("subnet", "POS-public-us-east-1b")
    finished_subnet = events(new, "step.result", "public-subnet-secondary")[0]
    assert finished_subnet["outputs"] == {"public_subnet_secondary": landed[0]}
    assert events(new, "step.intent", "public-subnet-secondary")[0]["diff"] == [["MapPublicIpOnLaunch", False, True]]
    for step in ("public-subnet-primary", "private-subnet-primary", "private-subnet-secondary", "security-group"):
        assert results[step] in {"changed", "done"}, step  # done when it ended before the kill
    assert events(new, "run.finished")[0]["outcome"] == "ok"

    assert len(server.named("vpc", "POS-VPC")) == 1
    for name in SUBNETS:
        assert len(server.named("subnet", name)) == 1, name
    assert len(server.named("internet-gateway", "POS-IGW")) == 1
    assert len(server.named("route-table", "POS-public-routes")) == len(server.named("route-table",
                                                                                     "POS-private-routes")) == 1
    assert len(server.named("security-group", "SG-POS-OPS")) == 1
    assert server.calls[start:].count("CreateVpc") == 1 and server.calls[start:].count("CreateSubnet") == 4
    assert lock_files(world) == []  # the resumed run took over the dead run's lock and released it


def test_ctrl_c_during_a_wait_exits_130_and_resume_finishes(world: World, server: MotoServer, vpc: None) -> None:
    start = len(server.calls)
    made = world.kprov("provision", "shared", "rds", "--answers", RDS_ANSWERS, "--yes")
    assert made.returncode == ExitCode.OK, made.stderr
    instance = rds_instance()
    instance.status = "creating"  # type: ignore[attr-defined]  # as RDS reports it for 15-60 minutes

    before = world.run_ids()
    process = world.spawn("provision", "shared", "rds", "--answers", RDS_ANSWERS, "--yes")
    try:
        # kprov is in the wait step once it has journaled its intent and polled the instance since.
        run_id = wait_for(lambda: world.run_ids() != before and world.new_run(before), what="the run's journal")

        def waiting() -> bool:
            intent = events(world.records(run_id), "step.intent", "wait-available")
            return bool(intent) and server.called_after("DescribeDBInstances", moment(intent[0]))

        wait_for(lambda: waiting() or process.poll() is not None, what="kprov to wait for the RDS instance")
        assert process.poll() is None, finished(process)
        assert events(world.records(run_id), "step.intent")[-1]["step"] == "wait-available"

        # A second operator on the same target, while the first one waits: refused, told who holds it.
        second = world.kprov("provision", "shared", "rds", "--answers", RDS_ANSWERS, "--yes")
        assert second.returncode == ExitCode.FAILED, second.stderr
        message = " ".join(second.stderr.split())
        assert "shared:rds:db-POS-01 is locked by" in message and f"run {run_id}" in message, message
        assert "arn:aws:sts::123456789012:user/moto" in message and "kprov lock break" in message, message
        locks = json.loads(world.kprov("--output", "json", "lock", "list").stdout)["locks"]
        assert [(lock["target"], lock["run_id"]) for lock in locks] == [("shared:rds:db-POS-01", run_id)]

        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code, _, err = finished(process)
    finally:
        stop(process)
    assert code == ExitCode.INTERRUPTED, err
    said = " ".join(err.split())
    assert f"interrupted: run {run_id} stopped" in said, said  # the run id and the exact resume command
    printed = said.split("resume it with `", 1)[1].split("`", 1)[0]
    assert printed == f"kprov resume {run_id} --answers {RDS_ANSWERS} --yes", printed
    records = world.records(run_id)
    assert events(records, "interrupted") and events(records, "run.finished")[-1]["outcome"] == "interrupted"
    assert not events(records, "step.result", "wait-available")
    assert events(records, "lock.released") and lock_files(world) == []
    listed = json.loads(world.kprov("--output", "json", "runs", "list").stdout)
    assert next(r for r in listed["runs"] if r["run_id"] == run_id)["outcome"] == "interrupted"

    instance.status = "available"  # type: ignore[attr-defined]
    before = world.run_ids()
    resumed = world.kprov(*shlex.split(printed)[1:])  # the command as printed
    assert resumed.returncode == ExitCode.OK, resumed.stderr
    new = world.records(world.new_run(before))
    waited = events(new, "step.result", "wait-available")
    assert waited and waited[0]["status"] in ("done", "changed") and waited[0]["outputs"]["endpoint"]
    assert len(server.client("rds").describe_db_instances()["DBInstances"]) == 1
    assert server.calls[start:].count("CreateDBInstance") == 1
    assert world.kprov("audit", "verify").returncode == ExitCode.OK


def test_a_lock_held_by_a_live_process_refuses_a_run_and_names_the_holder(world: World) -> None:
    """This test process holds the lock (a dead holder's lock is taken over: see the kill -9 test)."""
    from kensium_provision.records.locks import LocalLocks

    locks = LocalLocks(world.state / "locks")
    held = locks.acquire("shared:vpc:us-east-1:POS-VPC", owner="arn:aws:iam::123456789012:user/alice",
                         run_id="20260101T000000Z-alice1", ttl_seconds=600)
    assert held.pid == os.getpid()
    try:
        refused = world.kprov("provision", "shared", "vpc", "--answers", VPC_ANSWERS, "--yes")
    finally:
        locks.release(held)
    assert refused.returncode == ExitCode.FAILED
    message = " ".join(refused.stderr.split())
    assert "user/alice" in message and "run 20260101T000000Z-alice1" in message, message
