"""The sandbox's strictness where moto is kinder than AWS: eventual consistency and RDS's usable states.

A WSGI layer around moto (`Strict(app)`), so everything kprov sends to the sandbox meets what it meets
on AWS, and the tests of the retries and the state handling run against it:

- EC2 eventual consistency: an id that a create just returned (CreateVpc, CreateSubnet,
  CreateSecurityGroup, RunInstances, AllocateAddress, CreateRouteTable, CreateInternetGateway) is
  unknown to the first `unknown_reads` requests that name it as a parameter, which are answered with
  that resource's NotFound error, as AWS documents
  (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html); moto never executes
  them. A filter value (Filter.N.Value.M) naming the id is no error on AWS (the answer is empty), so
  filters pass through.
- RDS: a new DB instance goes on through `backing-up` (as a new instance does on AWS right after
  `creating`) for its next `backing_up_reads` DescribeDBInstances, then `available`
  (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html#Overview.DBInstance.Status);
  moto makes it `available` at once.

`refused` lists what was refused (Action:id), for the tests.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["Strict"]

_CREATES = frozenset({"CreateVpc", "CreateSubnet", "CreateSecurityGroup", "RunInstances", "AllocateAddress",
                      "CreateRouteTable", "CreateInternetGateway"})
_ID = re.compile(rb"<(?:vpcId|subnetId|groupId|instanceId|allocationId|routeTableId|internetGatewayId)>"
                 rb"((?:vpc|subnet|sg|i|eipalloc|rtb|igw)-[0-9a-f]{8,17})</")
_NOT_FOUND = {"vpc": "InvalidVpcID.NotFound", "subnet": "InvalidSubnetID.NotFound", "sg": "InvalidGroup.NotFound",
              "i": "InvalidInstanceID.NotFound", "eipalloc": "InvalidAllocationID.NotFound",
              "rtb": "InvalidRouteTableID.NotFound", "igw": "InvalidInternetGatewayID.NotFound"}
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


class Strict:
    """Wraps moto's WSGI app: see the module. Thread-safe (werkzeug serves requests on threads)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *, unknown_reads: int = 1,
                 backing_up_reads: int = 2) -> None:
        self.app = app
        self.unknown_reads, self.backing_up_reads = unknown_reads, backing_up_reads
        self._lock = threading.Lock()
        self._unknown: dict[str, int] = {}  # id -> refusals still to give
        self._backing_up: dict[tuple[str, str], int] = {}  # (region, db id) -> describes still backing-up
        self.refused: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        params = self._form(environ)
        action = params.get("Action", "")
        refusal = self._refusal(action, params)
        if refusal is not None:
            return _reply(start_response, *refusal)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        if action not in _CREATES and action not in ("CreateDBInstance", "DescribeDBInstances"):
            return self.app(environ, start_response)
        if action == "DescribeDBInstances":
            self._settle_instances(environ)
        body = b"".join(self.app(environ, capture))
        if str(captured.get("status", "")).startswith("200"):
            if action in _CREATES:
                with self._lock:
                    for found in _ID.findall(body):
                        self._unknown.setdefault(found.decode(), self.unknown_reads)
            elif action == "CreateDBInstance":
                key = (_region(environ), params.get("DBInstanceIdentifier", "").lower())
                with self._lock:
                    self._backing_up[key] = self.backing_up_reads
        return [body]

    @staticmethod
    def _form(environ: dict[str, Any]) -> dict[str, str]:
        """The query-protocol parameters (EC2, RDS), the body put back for moto."""
        if "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
            return dict(parse_qsl(environ.get("QUERY_STRING", "")))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        return dict(parse_qsl(raw.decode("utf-8", errors="replace")))

    def _refusal(self, action: str, params: dict[str, str]) -> tuple[str, bytes] | None:
        with self._lock:
            for key, value in params.items():
                if key.startswith("Filter.") or self._unknown.get(value, 0) <= 0:
                    continue
                self._unknown[value] -= 1
                self.refused.append(f"{action}:{value}")
                code = _NOT_FOUND[value.split("-", 1)[0]]
                return "400 Bad Request", (
                    f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>"
                    f"<Message>The ID '{value}' does not exist</Message></Error></Errors>"
                    "<RequestID>kprov-sandbox-settling</RequestID></Response>").encode()
        return None

    def _settle_instances(self, environ: dict[str, Any]) -> None:
        """Each new instance: `backing-up` for its next describes, then `available` (moto keeps the state)."""
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.rds.models import rds_backends

        region = _region(environ)
        databases = rds_backends[DEFAULT_ACCOUNT_ID][region].databases
        with self._lock:
            for key, left in list(self._backing_up.items()):
                if key[0] != region or key[1] not in databases:
                    continue
                databases[key[1]].status = "backing-up" if left > 0 else "available"
                if left > 0:
                    self._backing_up[key] = left - 1
                else:
                    del self._backing_up[key]


def _region(environ: dict[str, Any]) -> str:
    found = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found.group(1) if found else "us-east-1"


def _reply(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]
