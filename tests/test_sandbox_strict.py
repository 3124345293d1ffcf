"""The strict sandbox (sandbox.strict, issue 16): moto behind the layer the sandbox server puts in front of it.

A real moto server on loopback in this process, wrapped as `kprov sandbox` wraps it: the first call naming
each new EC2 id is refused with AWS's NotFound, a new RDS instance is `backing-up` before `available`, and
the shared checklists and a client install still succeed (the retries of aws.settle, the usable states of
steps.rds). With the settling retry off, the same VPC job fails: the strictness is real.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from kensium_provision.aws.session import AwsSession
from kensium_provision.aws.settle import Settling
from kensium_provision.errors import ExitCode
from kensium_provision.guards import Environment
from kensium_provision.model import Mode, Status
from kensium_provision.runtime import NullJournal, Runtime
from kensium_provision.sandbox.strict import Strict
from tests.checklist_harness import EXAMPLES, FakeClock, answers_operator, load, names, run_checklist
from tests.fakes import MemoryVault


@dataclass
class StrictSandbox:
    endpoint: str
    strict: Strict

    def env(self) -> Environment:
        return Environment(name="sandbox", account_id="123456789012", region="us-east-1", sandbox=True,
                           endpoint_url=self.endpoint)

    def runtime(self, path: str, answers: Any, mode: Mode = Mode.APPLY, vault: Any = None,
                settling: Settling | None = None) -> Runtime:
        session = AwsSession(self.env(), mode=mode, read_cache=True)
        session.settling = settling or Settling(base=0.01, cap=0.05)
        clock = FakeClock()
        return Runtime(mode=mode, run_id=f"run-{path.replace('/', '-')}", aws=session,
                       operator=answers_operator(load(path), answers), vault=vault or MemoryVault(), names=names(),
                       journal=NullJournal(), assume_yes=True, sleep=clock.sleep, monotonic=clock.monotonic)

    def client(self, service: str) -> Any:
        make: Any = boto3.client  # its stubs overload per literal service name
        return make(service, endpoint_url=self.endpoint, region_name="us-east-1")


@pytest.fixture
def strict_sandbox() -> Iterator[StrictSandbox]:
    from moto.server import ThreadedMotoServer

    from kensium_provision.sandbox import lessons

    lessons.teach()  # as the sandbox server: the RDS offerings the jobs read, before anything else ran
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    wsgi = server._server
    assert wsgi is not None
    strict = Strict(wsgi.app)
    wsgi.app = strict
    endpoint = f"http://{host}:{port}"
    try:
        yield StrictSandbox(endpoint=endpoint, strict=strict)
    finally:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b""), timeout=10)
        server.stop()


def test_the_shared_jobs_succeed_though_every_new_id_is_unknown_to_its_first_call(
        strict_sandbox: StrictSandbox) -> None:
    vault = MemoryVault()
    for name in ("vpc", "rds", "ec2"):
        path = f"shared/{name}"
        runtime = strict_sandbox.runtime(path, EXAMPLES / f"shared-{name}.yaml", vault=vault)
        report = run_checklist(path, Mode.APPLY, runtime=runtime)
        assert report.exit_code is ExitCode.OK, (name, report.error)
    kinds = {call.split(":")[1].split("-")[0] for call in strict_sandbox.strict.refused}
    assert {"vpc", "subnet", "sg", "igw", "rtb", "i", "eipalloc"} <= kinds, strict_sandbox.strict.refused


def test_without_the_settling_retry_the_vpc_job_fails_in_the_strict_sandbox(strict_sandbox: StrictSandbox) -> None:
    runtime = strict_sandbox.runtime("shared/vpc", EXAMPLES / "shared-vpc.yaml", settling=Settling(budget=0))
    report = run_checklist("shared/vpc", Mode.APPLY, runtime=runtime)
    assert report.exit_code is not ExitCode.OK and "NotFound" in (report.error or ""), report.error


def test_a_new_rds_instance_is_backing_up_and_the_jobs_take_it(strict_sandbox: StrictSandbox) -> None:
    vault = MemoryVault()
    strict_sandbox.strict.backing_up_reads = 1000  # a long first backup: every read of the job sees it
    for name in ("vpc", "rds"):
        path = f"shared/{name}"
        report = run_checklist(path, Mode.APPLY, runtime=strict_sandbox.runtime(
            path, EXAMPLES / f"shared-{name}.yaml", vault=vault))
        assert report.exit_code is ExitCode.OK, (name, report.error)
    wait = {r.step_id: r for r in report.results}["wait-available"]
    assert wait.status is Status.DONE and "backing-up" in wait.reason, wait
    assert report.values["endpoint"]
    rds = strict_sandbox.client("rds")
    described = rds.describe_db_instances(DBInstanceIdentifier="db-pos-01")["DBInstances"][0]
    assert described["DBInstanceStatus"] == "backing-up"
    check = run_checklist("shared/rds", Mode.CHECK, runtime=strict_sandbox.runtime(
        "shared/rds", EXAMPLES / "shared-rds.yaml", Mode.CHECK, vault=vault))
    assert check.exit_code is ExitCode.OK, [f.message for f in check.findings]


def test_backing_up_ends_in_available() -> None:
    # The layer's own clock: counted describes, then available (moto's own state machine has none for RDS).
    seen: list[str] = []

    class Database:
        status = "available"

    database = Database()
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    backend = rds_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.databases["db-x"] = database  # type: ignore[assignment]
    try:
        strict = Strict(lambda environ, start: [b""], backing_up_reads=2)
        strict._backing_up[("us-east-1", "db-x")] = 2
        environ = {"CONTENT_TYPE": "", "QUERY_STRING": "Action=DescribeDBInstances"}
        for _ in range(4):
            strict(dict(environ), lambda *a: None)
            seen.append(database.status)
    finally:
        del backend.databases["db-x"]
    assert seen == ["backing-up", "backing-up", "available", "available"]
