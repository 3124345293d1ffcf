"""Eventual consistency (issue 16.4): a just-created EC2 id unknown to its first calls, and the run still succeeds.

moto knows every id at once; AWS does not (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
`Unsettled` is a fake of that one AWS behaviour, needed because no real component here has it: a
`before-send` hook on the run's EC2 clients that answers the first call naming an id a create just
returned with that id's NotFound error, as AWS does (or an empty describe), and lets every later one
through to moto. The same runs fail with the retry switched off, so the tests can fail.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
from botocore.exceptions import ClientError

from kensium_provision.aws.session import AwsSession
from kensium_provision.aws.settle import Settling
from kensium_provision.errors import ExitCode
from kensium_provision.model import Mode
from tests.checklist_harness import EXAMPLES, answers_operator, load, moto_runtime, run_checklist
from tests.fakes import MemoryVault
from tests.faults import _NOWHERE, _response, error_body, respond

_ID = re.compile(r"\b(?:vpc|subnet|sg|i|eipalloc|rtb|igw)-[0-9a-f]{8,17}\b")
_CODES = {"vpc": "InvalidVpcID.NotFound", "subnet": "InvalidSubnetID.NotFound", "sg": "InvalidGroup.NotFound",
          "i": "InvalidInstanceID.NotFound", "eipalloc": "InvalidAllocationID.NotFound",
          "rtb": "InvalidRouteTableID.NotFound", "igw": "InvalidInternetGatewayID.NotFound"}
_CREATES = re.compile(r"^(Create|RunInstances|AllocateAddress)")


class Unsettled:
    """The first `reads` calls naming each id a create returned fail as AWS's do while it settles."""

    def __init__(self, reads: int = 1) -> None:
        self.reads = reads
        self.created: dict[str, int] = {}  # id -> calls refused so far
        self.refused: list[str] = []
        self._clients: set[int] = set()

    def attach(self, runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        session = runtime.aws
        original = session.client

        def client(service: str, **kwargs: Any) -> Any:
            made = original(service, **kwargs)
            if service == "ec2" and id(made) not in self._clients:
                self._clients.add(id(made))
                made.meta.events.register_first("before-send.ec2", self._before_send)
                made.meta.events.register("after-call.ec2", self._after_call)
            return made

        monkeypatch.setattr(session, "client", client)

    def _after_call(self, *, model: Any, parsed: Any, **_: Any) -> None:
        if _CREATES.match(model.name):
            for found in _ID.findall(repr(parsed)):
                self.created.setdefault(found, 0)

    def _before_send(self, request: Any, **_: Any) -> Any:
        params = dict(parse_qsl((request.body or b"").decode() if isinstance(request.body, bytes)
                                else str(request.body or "")))
        action = params.get("Action", "")
        for value in params.values():
            if value in self.created and self.created[value] < self.reads:
                self.created[value] += 1
                self.refused.append(f"{action}:{value}")
                body, headers = error_body("ec2", _CODES[value.split("-")[0]], f"The ID '{value}' does not exist")
                response = _response(request.url, 400, headers, body)
                request.url, request.body = _NOWHERE, b""  # moto must not execute the refused request
                return response
        return None


def _vpc_runtime(monkeypatch: pytest.MonkeyPatch, fault: Unsettled, *, budget: float) -> Any:
    checklist = load("shared/vpc")
    runtime = moto_runtime(Mode.APPLY, operator=answers_operator(checklist, EXAMPLES / "shared-vpc.yaml"))
    session(runtime).settling = Settling(budget=budget, base=0.01, cap=0.05)
    fault.attach(runtime, monkeypatch)
    return runtime


def test_the_first_calls_after_each_create_fail_as_aws_does_and_the_run_still_succeeds(
        aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fault = Unsettled(reads=2)
    runtime = _vpc_runtime(monkeypatch, fault, budget=60)
    report = run_checklist("shared/vpc", Mode.APPLY, runtime=runtime)
    assert report.exit_code is ExitCode.OK, report.error
    kinds = {call.split(":")[1].split("-")[0] for call in fault.refused}
    assert {"vpc", "subnet", "sg", "igw", "rtb"} <= kinds, fault.refused  # every kind of new id was refused
    assert session(runtime).settling.retried == len(fault.refused)


def test_without_the_retry_the_same_run_fails(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fault = Unsettled(reads=1)
    runtime = _vpc_runtime(monkeypatch, fault, budget=0)  # nothing counts as just created: no retry
    report = run_checklist("shared/vpc", Mode.APPLY, runtime=runtime)
    assert report.exit_code is not ExitCode.OK
    assert "NotFound" in (report.error or "") or any("NotFound" in r.reason for r in report.results)


def session(runtime: Any) -> AwsSession:
    assert isinstance(runtime.aws, AwsSession)
    return runtime.aws


def test_an_old_id_not_found_is_a_real_answer_and_never_retried(aws: None) -> None:
    runtime = moto_runtime(Mode.CHECK)
    settling = session(runtime).settling
    ec2 = runtime.aws.client("ec2")
    with pytest.raises(ClientError, match=r"InvalidGroup\.NotFound"):
        ec2.describe_security_groups(GroupIds=["sg-0123456789abcdef0"])
    assert settling.retried == 0


def test_the_ec2_host_launch_settles_too(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = MemoryVault()
    assert run_checklist("shared/vpc", Mode.APPLY, EXAMPLES / "shared-vpc.yaml", vault=vault).exit_code is ExitCode.OK
    checklist = load("shared/ec2")
    runtime = moto_runtime(Mode.APPLY, vault=vault, operator=answers_operator(checklist, EXAMPLES / "shared-ec2.yaml"))
    session(runtime).settling = Settling(base=0.01, cap=0.05)
    fault = Unsettled(reads=1)
    fault.attach(runtime, monkeypatch)
    report = run_checklist("shared/ec2", Mode.APPLY, runtime=runtime)
    assert report.exit_code is ExitCode.OK, report.error
    assert {c.split(":")[1].split("-")[0] for c in fault.refused} >= {"i", "eipalloc"}, fault.refused


_EMPTY_GROUPS = ('<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                 "<requestId>kprov-fault</requestId><securityGroupInfo/></DescribeSecurityGroupsResponse>")


def test_an_empty_describe_of_the_new_resource_itself_is_asked_again(aws: None) -> None:
    runtime = moto_runtime(Mode.APPLY)
    session(runtime).settling = Settling(base=0.01, cap=0.05)
    ec2 = runtime.aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="SG-POS-HOST", Description="d", VpcId=vpc)["GroupId"]
    fault = respond(ec2, "ec2.DescribeSecurityGroups", _EMPTY_GROUPS, times=2)
    found = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [group] and fault.fired == 2
    # Listing the groups of the new VPC is another question: empty may be the true answer, never retried.
    fault = respond(ec2, "ec2.DescribeSubnets", _EMPTY_GROUPS.replace("SecurityGroups", "Subnets")
                    .replace("securityGroupInfo", "subnetSet"), times=1)
    assert ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"] == []
    assert fault.sends == 1
