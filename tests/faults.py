"""Fault injection for AWS tests: `before-send` hooks, so botocore's real retry loop sees every fault.

`inject` answers the first N sends with a canned error in the service's own wire format;
`lose_response` lets the request execute (moto, or the real endpoint) and then loses the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

__all__ = ["FEDERATED_IDENTITY", "ROOT_IDENTITY", "Fault", "client_error", "error_body", "inject", "lose_response",
           "no_backoff", "respond"]

_NOWHERE = "http://kprov-injected-fault.invalid/"  # matches no moto backend, so moto ignores it


@dataclass(slots=True)
class Fault:
    """What a hook did: `sends` requests seen, `fired` of them faulted."""

    times: int
    sends: int = 0
    fired: int = 0

    def take(self) -> bool:
        self.sends += 1
        if self.fired < self.times:
            self.fired += 1
            return True
        return False


class _Raw:
    """The minimal raw body botocore's AWSResponse reads from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def client_error(code: str, message: str, *, status: int, operation: str) -> ClientError:
    """The ClientError botocore raises for an HTTP `status` answer with error `code` to `operation`."""
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(cast(Any, response), operation)  # the stubs' TypedDict wants every metadata key


def _response(url: str, status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
    # botocore wraps any mapping in its own HeadersDict; its stubs ask for http.client's HTTPMessage.
    return AWSResponse(url, status, cast(Any, headers), _Raw(body))


def error_body(protocol: str, code: str, message: str) -> tuple[bytes, dict[str, str]]:
    """An error body and headers in `protocol`'s format (research/reliability-notes.md section 2.1)."""
    if protocol == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                "<RequestID>kprov-fault</RequestID></Response>")
        return body.encode(), {"Content-Type": "text/xml"}
    if protocol == "query":
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                "</Error><RequestId>kprov-fault</RequestId></ErrorResponse>")
        return body.encode(), {"Content-Type": "text/xml"}
    if protocol in ("json", "rest-json"):
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-errortype": code,
                   "x-amzn-requestid": "kprov-fault"}
        return json.dumps({"__type": code, "message": message}).encode(), headers
    if protocol == "rest-xml":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>kprov-fault</RequestId></Error>"
        return body.encode(), {"Content-Type": "application/xml"}
    raise ValueError(f"no canned error body for protocol {protocol!r}")


def _event(client: Any, op: str) -> str:
    """`ec2.CreateVpc` (boto3 service name, operation) to the client's `before-send.<service-id>.<Op>`."""
    service, _, operation = op.partition(".")
    model = client.meta.service_model
    if service != model.service_name or operation not in model.operation_names:
        raise ValueError(f"{op!r} is not an operation of this {model.service_name} client")
    return f"before-send.{model.service_id.hyphenize()}.{operation}"


def inject(client: Any, op: str, *, status: int = 503, code: str = "ServiceUnavailable",
           message: str = "injected fault", times: int = 1) -> Fault:
    """Answer the first `times` sends of `op` (e.g. "ec2.CreateVpc") with an HTTP `status` error `code`."""
    fault = Fault(times=times)
    body, headers = error_body(client.meta.service_model.protocol, code, message)

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if not fault.take():
            return None  # fall through to moto or the real endpoint
        response = _response(request.url, status, headers, body)
        # botocore's emit() calls EVERY before-send handler, moto's stubber included, and only then
        # takes the first answer: without this, moto would execute the "failed" request anyway.
        request.url, request.body = _NOWHERE, b""
        return response

    client.meta.events.register_first(_event(client, op), answer)
    return fault


def respond(client: Any, op: str, body: str | bytes, *, status: int = 200, times: int = 1,
            headers: dict[str, str] | None = None) -> Fault:
    """Answer the first `times` sends of `op` with `body` (e.g. a GetCallerIdentity of a root user)."""
    fault = Fault(times=times)
    data = body.encode() if isinstance(body, str) else body

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        if not fault.take():
            return None
        response = _response(request.url, status, headers or {"Content-Type": "text/xml"}, data)
        request.url, request.body = _NOWHERE, b""  # see inject: keep moto from executing it too
        return response

    client.meta.events.register_first(_event(client, op), answer)
    return fault


def lose_response(client: Any, op: str, *, times: int = 1) -> Fault:
    """Let the first `times` sends of `op` execute, then raise `ReadTimeoutError`: the answer is lost."""
    fault = Fault(times=times)

    def execute_then_lose(request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        if not fault.take():
            return None
        from moto.core.models import botocore_stubber

        if botocore_stubber(event_name=event_name, request=request) is None:
            # Not under mock_aws (a moto server, say): really send it, then drop the answer.
            client._endpoint.http_session.send(request)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register_first(_event(client, op), execute_then_lose)
    return fault


def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make botocore's retry backoff zero (throttling waits up to 1 s, 2 s, 4 s...): tests stay fast."""
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda *_: 0)


# STS's answer for the account's root user: what the root guard must refuse.
ROOT_IDENTITY = """<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:root</Arn><UserId>123456789012</UserId><Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>root-test</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""
# GetFederationToken's user: root may have minted it, and GetCallerIdentity cannot tell.
FEDERATED_IDENTITY = """<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:federated-user/bob</Arn><UserId>123456789012:bob</UserId><Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>root-test</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""
