"""The calls of the shared-VPC job, pinned (issue 16: at AWS's latency every call costs tens of milliseconds).

The real `kprov provision shared vpc` in a subprocess, against a moto server in this process wrapped as
the sandbox wraps it (`sandbox.strict`: the first call naming each new EC2 id is refused with AWS's
NotFound), whose log is every action received, refused ones and botocore's retries included. The
fresh job and its repeat send exactly the calls below: a change that adds a read shows here, by name.
Budget: at most one read per resource the job creates plus a constant (`bench/latency` measures the
time; tests never assert timings).

Also here: the route table's move of a subnet associated with another table, which now reads the
VPC's route tables once instead of once per subnet, and the engine's verify right after an act, taken
from the act's own answers where the step type can tell (toy step types: the rule is the engine's).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from kensium_provision.aws.session import AwsSession
from kensium_provision.aws.wall import READ_PREFIXES
from kensium_provision.engine import run as engine
from kensium_provision.errors import ExitCode
from kensium_provision.guards import Environment
from kensium_provision.model import Mode, Status
from kensium_provision.sandbox.strict import Strict
from kensium_provision.steps.base import Difference, probes_ahead, verify_after_act
from tests.checklist_harness import EXAMPLES, answers_operator, load, moto_runtime, run_checklist
from tests.e2e import DEADLINE, MotoServer, World, example

pytestmark = pytest.mark.slow

QA_CONFIG = 'environments:\n  qa: {account_id: "123456789012", region: us-east-1, purposes: [qa, development, demo]}\n'

# What the job makes (as bench/README.md counts them): the VPC, 4 subnets, the internet gateway, 2 route
# tables, the default route, 4 subnet associations, the DB subnet group, 3 security groups, 4 inbound rules
# (2 operator rules, HTTPS, SQL Server by group reference) and the shared record.
CREATED = 22
# Reads of the run itself, whatever it makes: the caller's identity, the zones (an input's choices) and
# the permission preflight (one simulation of the job's actions, three of the run's own: IAM, roles, SSM).
CONSTANT = 6

# A new VPC has DNS resolution on already (AWS's default): one ModifyVpcAttribute, for DNS hostnames.
FRESH_WRITES = Counter({
    "CreateVpc": 1, "ModifyVpcAttribute": 1, "CreateSubnet": 4, "ModifySubnetAttribute": 2,
    "CreateInternetGateway": 1, "AttachInternetGateway": 1, "CreateRouteTable": 2, "CreateRoute": 1,
    "AssociateRouteTable": 4, "CreateDBSubnetGroup": 1, "CreateSecurityGroup": 3,
    "AuthorizeSecurityGroupIngress": 4, "PutParameter": 1,
})
# Each id a create returns is refused once, by the first call that names it: the sandbox's eventual
# consistency (11 new ids named later: the VPC, 4 subnets, the gateway, 2 route tables, 3 groups).
REFUSED = 11


class StrictMotoServer(MotoServer):
    """MotoServer's call log in front of the sandbox's strict layer: refused calls are logged too."""

    strict: Strict

    def _wrap(self, app: Callable[..., Any]) -> Callable[..., Any]:
        self.strict = Strict(app)
        return super()._wrap(self.strict)


@pytest.fixture(scope="module")
def server() -> Iterator[StrictMotoServer]:
    server = StrictMotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def is_read(action: str) -> bool:
    return action.startswith(READ_PREFIXES) or action == "SimulatePrincipalPolicy"


def vpc_job(world: World, server: StrictMotoServer) -> Counter[str]:
    before = len(server.calls)
    answers = (Path(example("shared-vpc.yaml")).read_text(encoding="utf-8")
               .replace("203.0.113.10", "52.94.76.10"))  # outside the sandbox: a public address
    done = world.kprov("--env", "qa", "provision", "shared", "vpc", "--yes",
                       "--answers", str(world.answers("vpc.yaml", answers)))
    assert done.returncode == ExitCode.OK, done.stderr
    return Counter(server.calls[before:])


def test_the_fresh_vpc_job_sends_one_read_per_resource_it_makes_plus_a_constant(
        tmp_path_factory: pytest.TempPathFactory, server: StrictMotoServer) -> None:
    server.reset()
    world = World(tmp_path_factory.mktemp("vpc-calls"), extra_env={"AWS_ENDPOINT_URL": server.endpoint})
    world.write_config(QA_CONFIG)

    fresh = vpc_job(world, server)
    reads = Counter({a: n for a, n in fresh.items() if is_read(a)})
    writes = fresh - reads
    refused = len(server.strict.refused)
    # The writes are the job itself, plus one retry of each write that was the first to name a new id.
    assert writes - FRESH_WRITES == Counter(a.split(":")[0] for a in server.strict.refused
                                            if not is_read(a.split(":")[0])), writes
    assert refused == REFUSED, server.strict.refused
    # A probe per step (the subnets' four, the route tables' two: one listing of the VPC each) and no
    # verify after an act, which AWS's answers to the act tell (steps.base.VerifiesAct); the gateway's
    # act asks who else is attached (a VPC takes one); rds.db-subnet-group reads its probe (404), its
    # subnets and its verify; the groups' probes (3), the rules' (5) and each new group's refused first.
    # Independent steps run at once (engine.schedule), so a read the cache would have answered may be sent
    # again when another step's write emptied the cache meanwhile (or spared, when it lands before): the
    # subnets', route tables' and groups' reads vary by a few, their sum stays under the bound below.
    varies = {"DescribeSubnets": 4 + 1, "DescribeSecurityGroups": 3 + 5 + 3, "DescribeRouteTables": 2}
    assert Counter({a: n for a, n in reads.items() if a not in varies}) == Counter({
        "GetCallerIdentity": 1, "DescribeAvailabilityZones": 1, "SimulatePrincipalPolicy": 4,
        "DescribeVpcs": 1, "DescribeInternetGateways": 1 + 1, "DescribeDBSubnetGroups": 2,
    }), reads
    assert all(1 <= reads[a] <= n + 4 for a, n in varies.items()), reads
    refused_reads = sum(1 for a in server.strict.refused if is_read(a.split(":")[0]))
    assert sum(reads.values()) - refused_reads <= CREATED + CONSTANT, reads

    again = vpc_job(world, server)  # nothing to change: no write, and each resource read once
    assert all(is_read(a) for a in again), again
    assert again == Counter({
        "GetCallerIdentity": 1, "DescribeAvailabilityZones": 1, "SimulatePrincipalPolicy": 4,
        "DescribeVpcs": 1, "DescribeVpcAttribute": 2, "DescribeSubnets": 1, "DescribeInternetGateways": 1,
        "DescribeRouteTables": 1, "DescribeDBSubnetGroups": 1, "DescribeSecurityGroups": 4,
    }), again


def test_a_subnet_associated_with_another_table_is_moved_with_one_read_of_the_vpcs_tables(
        aws: None, tmp_path: Path) -> None:
    """The VPC's route tables, read once by the probe, tell the act each subnet's association (moto in
    process): the subnet associated elsewhere is moved, the other associated, and no read per subnet."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
               for cidr in ("10.0.0.0/20", "10.0.16.0/20")]
    other = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=other, SubnetId=subnets[0])
    checklist = tmp_path / "one-table.yaml"
    checklist.write_text(f"""\
schema: 1
id: one-table
title: One route table
scope: shared
steps:
  - id: routes
    title: The private route table
    type: ec2.route-table
    risk: create
    params: {{name: POS-private-routes, vpc_id: {vpc}, subnet_ids: [{subnets[0]}, {subnets[1]}]}}
""", encoding="utf-8")
    runtime = moto_runtime(Mode.APPLY, operator=answers_operator(load(checklist), {}))

    report = run_checklist(checklist, Mode.APPLY, {}, runtime=runtime)

    assert report.exit_code == ExitCode.OK, report.results
    assert report.results[0].status is Status.CHANGED
    found = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    owners = {a["SubnetId"]: t["RouteTableId"] for t in found for a in t["Associations"] if a.get("SubnetId")}
    ours = next(t["RouteTableId"] for t in found if {"Key": "Name", "Value": "POS-private-routes"} in t.get("Tags", []))
    assert owners == dict.fromkeys(subnets, ours), owners
    counted = runtime.aws.counter.as_dict()["by_operation"]  # type: ignore[attr-defined]
    calls = {key: value["calls"] for key, value in counted.items()}
    # The probe's listing, which the act takes from the read cache; the verify takes AWS's answers to the act.
    assert calls["ec2:DescribeRouteTables"] == 1, calls
    assert calls["ec2:ReplaceRouteTableAssociation"] == 1 and calls["ec2:AssociateRouteTable"] == 1, calls


# ---- the verify right after an act, from the act's answers (steps.base.verify_after_act) ----------------


class _Reads:
    """A step type whose verify is a read (counted) and whose act's answers say what differs."""

    def __init__(self) -> None:
        self.reads = 0

    def verify(self, ctx: object, params: Mapping[str, Any]) -> Sequence[Difference]:
        self.reads += 1
        return [Difference("read", "as found", "wanted")]

    def verify_act(self, ctx: object, params: Mapping[str, Any],
                   acted: Mapping[str, object]) -> Sequence[Difference] | None:
        seen = acted.get("seen")
        if seen is None:
            return None  # the act cannot tell: verify reads
        return [] if seen == "10.0.0.0/16" else [Difference("cidr", seen, "10.0.0.0/16")]


class _AddsToVerify(_Reads):
    """Adds a check to `verify` but inherits `verify_act`: its own verify must run, or the check is lost."""

    def verify(self, ctx: object, params: Mapping[str, Any]) -> Sequence[Difference]:
        return [*super().verify(ctx, params), Difference("pending", "yes", "no")]


def test_the_verify_after_an_act_takes_the_acts_answers_and_reads_only_when_they_cannot_tell() -> None:
    step: Any = _Reads()
    ctx: Any = None  # neither toy step type reads AWS
    assert verify_after_act(step, ctx, {}, {"seen": "10.0.0.0/16"}) == [] and step.reads == 0
    assert [str(d) for d in verify_after_act(step, ctx, {}, {"seen": "10.1.0.0/16"})] == [
        "cidr: 10.1.0.0/16, should be 10.0.0.0/16"] and step.reads == 0
    assert [d.field for d in verify_after_act(step, ctx, {}, {})] == ["read"] and step.reads == 1

    sub: Any = _AddsToVerify()
    assert [d.field for d in verify_after_act(sub, ctx, {}, {"seen": "10.0.0.0/16"})] == ["read", "pending"]
    assert sub.reads == 1


# ---- reads at once: one flight per read, and no answer kept across a change (aws.cache) ------------------


def session_on(server: StrictMotoServer, mode: Mode = Mode.APPLY) -> AwsSession:
    env = Environment(name="sandbox", account_id="123456789012", region="us-east-1", sandbox=True,
                      endpoint_url=server.endpoint)
    return AwsSession(env, mode=mode)


def describe_vpcs(session: AwsSession) -> Any:
    return session.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["POS-VPC"]}])


def test_the_same_read_asked_while_it_is_in_flight_is_sent_once(server: StrictMotoServer) -> None:
    session, before = session_on(server), server.count("DescribeVpcs")
    held = server.hold("DescribeVpcs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(describe_vpcs, session)
        assert held.reached.wait(DEADLINE)
        second = pool.submit(describe_vpcs, session)
        time.sleep(0.3)  # the second read is asked (and waits) while the first is held at the server
        held.release.set()
        assert first.result(DEADLINE)["Vpcs"] == second.result(DEADLINE)["Vpcs"]
    assert server.count("DescribeVpcs") == before + 1


def test_an_answer_that_arrives_after_a_change_emptied_the_cache_is_not_kept(server: StrictMotoServer) -> None:
    session, before = session_on(server), server.count("DescribeVpcs")
    held = server.hold("DescribeVpcs")
    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(describe_vpcs, session)
        assert held.reached.wait(DEADLINE)
        session.invalidate()  # what a write does: the answer in flight may predate it
        held.release.set()
        late.result(DEADLINE)
    describe_vpcs(session)
    assert server.count("DescribeVpcs") == before + 2  # asked again, not served the answer from before


def test_a_read_that_joined_a_flight_takes_its_answer_though_a_change_came_after_it_joined(
        server: StrictMotoServer) -> None:
    """The joiner was asked before the change began: its read and the change were concurrent, so the flight's
    answer is a true one for it. (Before: the joiner sent the read again, and reads of one key behind other
    steps' writes went out one after the other: the VPC job's four subnet probes.) The answer is still not
    kept for a read asked after the change (the test above)."""
    session, before = session_on(server), server.count("DescribeVpcs")
    held = server.hold("DescribeVpcs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(describe_vpcs, session)
        assert held.reached.wait(DEADLINE)
        joined = pool.submit(describe_vpcs, session)
        time.sleep(0.3)  # the second read is asked (and waits on the flight) before the change
        session.invalidate()
        held.release.set()
        assert first.result(DEADLINE)["Vpcs"] == joined.result(DEADLINE)["Vpcs"]
    assert server.count("DescribeVpcs") == before + 1
    describe_vpcs(session)
    assert server.count("DescribeVpcs") == before + 2  # asked after the change: sent


# ---- probes started ahead (steps.base.ProbesAhead) ------------------------------------------------------


def planned_sends(monkeypatch: pytest.MonkeyPatch, *, ahead: bool) -> tuple[Counter[str], set[str]]:
    """A plan of the built VPC (in-process moto): the reads it sent, and the threads that sent them."""
    monkeypatch.setattr(engine, "probes_ahead", probes_ahead if ahead else lambda _: False)
    runtime = moto_runtime(Mode.PLAN, operator=answers_operator(load("shared/vpc"), EXAMPLES / "shared-vpc.yaml"))
    sent: Counter[str] = Counter()
    threads: set[str] = set()

    def record(*, model: Any, **_: Any) -> None:
        sent[model.name] += 1
        threads.add(threading.current_thread().name.split("_")[0])

    for service in ("ec2", "rds"):
        runtime.aws.client(service).meta.events.register("before-call", record)  # after the cache: sent ones
    report = run_checklist("shared/vpc", Mode.PLAN, runtime=runtime)
    assert report.exit_code == ExitCode.OK and report.count(Status.DONE) >= 16, report.results
    return sent, threads


def test_a_plan_of_the_built_vpc_starts_the_probes_ahead_and_sends_no_read_more(
        aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_checklist("shared/vpc", Mode.APPLY, EXAMPLES / "shared-vpc.yaml").exit_code == ExitCode.OK

    one_by_one, threads = planned_sends(monkeypatch, ahead=False)
    assert "kprov-probe" not in threads, threads  # (kprov-read: aws.gather, the VPC's two attributes)
    ahead, threads = planned_sends(monkeypatch, ahead=True)

    assert "kprov-probe" in threads, threads  # some probes' reads went out from the prefetch's threads
    assert ahead == one_by_one, (ahead, one_by_one)  # the same read twice at once is one call (aws.cache)


def test_a_route_tables_route_and_associations_are_sent_at_once(aws: None) -> None:
    """At a new table: CreateRoute and one AssociateRouteTable per subnet, each on a thread of its own
    (aws.gather), and still every subnet associated once.

    Proven by a meeting point, not by thread names: the first two associations each wait (up to 10 s) for
    the other to be in flight. Sent one after the other, the first would wait alone and the meeting fail.
    (A pool may run two calls on one thread when the first ends before the second is handed over, so
    thread names say nothing on a loaded machine.)"""
    runtime = moto_runtime(Mode.APPLY, operator=answers_operator(load("shared/vpc"), EXAMPLES / "shared-vpc.yaml"))
    meeting, lock = threading.Barrier(2, timeout=10), threading.Lock()
    met: list[bool] = []
    threads: list[str] = []

    def record(*, model: Any, **_: Any) -> None:
        if model.name != "AssociateRouteTable":
            return
        with lock:
            threads.append(threading.current_thread().name)
            first_two = len(threads) <= 2
        if first_two:
            try:
                meeting.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)

    runtime.aws.client("ec2").meta.events.register("before-call", record)
    report = run_checklist("shared/vpc", Mode.APPLY, runtime=runtime)
    assert report.exit_code == ExitCode.OK, report.results
    assert all(name.startswith("kprov-read") for name in threads), threads
    assert met == [True, True], met  # two associations were in flight together
    tables = boto3.client("ec2", region_name="us-east-1").describe_route_tables()["RouteTables"]
    associated = [a["SubnetId"] for t in tables for a in t.get("Associations") or () if a.get("SubnetId")]
    assert len(associated) == len(set(associated)) == 4
