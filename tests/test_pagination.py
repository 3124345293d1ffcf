"""Every list/describe kprov sends reads every page (issue 16.9).

A real account has more VPCs, instances, buckets or brokers than one page holds; moto mostly answers
in one page, so it cannot show this. Two proofs: `aws.call.call` follows a NextToken (the first page
is faked with a `before-send` hook, the second comes from moto), and no module of the package calls a
paginatable List/Describe operation on a client directly, bypassing `aws.call` (a scan of the code).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

from kensium_provision.aws.call import call
from kensium_provision.model import Mode
from tests.checklist_harness import moto_runtime
from tests.faults import respond

PACKAGE = Path(__file__).resolve().parents[1] / "kensium_provision"
_FIRST_PAGE = ('<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
               "<requestId>kprov-page-1</requestId><securityGroupInfo><item><groupId>sg-0000000000000page1</groupId>"
               "<groupName>on-page-1</groupName><groupDescription>d</groupDescription></item></securityGroupInfo>"
               "<nextToken>page-2</nextToken></DescribeSecurityGroupsResponse>")
# Calls on objects that are not boto3 clients (the RabbitMQ management API client), by module and method.
_NOT_BOTO3 = {("steps/rabbitmq_vhost.py", "list_permissions"), ("fleet/snapshot.py", "list_vhosts"),
              ("fleet/snapshot.py", "list_users"), ("fleet/snapshot.py", "list_permissions")}
# Paginated by hand (NextToken loop) in a module this change does not own: listed so it is seen.
_BY_HAND = {("steps/rabbitmq_vhost.py", "list_brokers")}


def test_call_reads_every_page(aws: None) -> None:
    runtime = moto_runtime(Mode.CHECK)
    ec2 = runtime.aws.client("ec2")
    fault = respond(ec2, "ec2.DescribeSecurityGroups", _FIRST_PAGE, times=1)
    groups = call(ec2, "DescribeSecurityGroups")["SecurityGroups"]
    names = [g["GroupName"] for g in groups]
    assert fault.sends == 2, "the second page was never asked for"
    assert "on-page-1" in names and "default" in names  # page 1 (faked) and page 2 (moto's own)


@cache
def _paginated_methods() -> frozenset[str]:
    """Every boto3 method name botocore can paginate, in any service kprov uses."""
    session = botocore.session.get_session()
    found: set[str] = set()
    for service in ("ec2", "rds", "mq", "s3", "s3control", "iam", "route53", "secretsmanager", "dynamodb", "logs"):
        model = session.get_paginator_model(service)
        for operation in session.get_service_model(service).operation_names:
            try:
                model.get_paginator(operation)
            except ValueError:  # botocore: "Paginator for operation does not exist"
                continue
            found.add(xform_name(operation))
    return frozenset(found)


def _direct_calls() -> Iterator[tuple[str, int, str]]:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in _paginated_methods():
                yield str(path.relative_to(PACKAGE)), node.lineno, node.func.attr


def test_no_module_calls_a_paginated_read_directly() -> None:
    offenders = [(f, line, m) for f, line, m in _direct_calls() if (f, m) not in _NOT_BOTO3 | _BY_HAND]
    assert offenders == [], "read these through aws.call.call or aws.call.pages (every page):\n" + "\n".join(
        f"  {f}:{line}: {m}" for f, line, m in offenders)
