"""A loopback HTTP proxy that adds a fixed delay to every AWS call and counts them by operation.

Real AWS answers in tens of milliseconds, moto on loopback in a few; the proxy sits between kprov and the
sandbox's moto server (kprov reaches it through AWS_ENDPOINT_URL) and sleeps `delay` seconds before
forwarding each request, so round trips cost what they cost against a region. Every request is counted
under `service:Operation` and classified as a read or a write by kprov's own read-only wall
(`aws.wall.is_read`), so the bench reports what was actually sent (answers served from kprov's read
cache never reach it). Standard library only (http.server, http.client), one thread per connection.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kensium_provision.aws.wall import is_read

__all__ = ["Call", "LatencyProxy", "counts", "operation_of"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                         "upgrade", "content-length"})
# SigV4: `Credential=<key>/<date>/<region>/<signing name>/aws4_request` names the service of every call.
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


@cache
def _rest_routes(service: str) -> tuple[tuple[str, re.Pattern[str], frozenset[str], int, str], ...]:
    """(method, path pattern, required query keys, specificity, operation) of a REST service, from
    botocore's published service model (its `requestUri` templates), most specific first."""
    import botocore.session
    from botocore.exceptions import UnknownServiceError

    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return ()
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path, _, query = str(http.get("requestUri", "/")).partition("?")
        pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(path))  # {Key+}: greedy, slashes too
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
        keys = frozenset(k.partition("=")[0] for k in query.split("&") if k)
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append((str(http.get("method", "GET")), re.compile(f"^{pattern}/?$"), keys,
                       literal + 100 * len(keys), name))
    return tuple(sorted(routes, key=lambda r: -r[3]))


def operation_of(method: str, path: str, headers: Any, body: bytes) -> tuple[str, str]:
    """(signing name, operation) of one request: X-Amz-Target (JSON protocols), Action= (query
    protocols: EC2, IAM, RDS, STS), else the REST service's route (S3, Amazon MQ, Route 53)."""
    found = _SCOPE.search(str(headers.get("Authorization", "")))
    service = found.group(1) if found else "?"
    target = headers.get("X-Amz-Target")
    if target:
        return service, str(target).rpartition(".")[2]
    url = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    if "Action" in query:
        return service, query["Action"][0]
    if "x-www-form-urlencoded" in str(headers.get("Content-Type", "")):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return service, form["Action"][0]
    for verb, pattern, keys, _, name in _rest_routes(service):
        if verb == method and keys <= query.keys() and pattern.match(urllib.parse.unquote(url.path)):
            return service, name
    return service, f"{method} {url.path}"


@dataclass(frozen=True, slots=True)
class Call:
    """One request the proxy forwarded: what it was, when it arrived, and the HTTP status of the answer."""

    service: str  # the SigV4 signing name (`tagging` for resourcegroupstaggingapi)
    operation: str
    status: int
    at: float  # seconds on the monotonic clock
    concurrent: int = 1  # requests in flight when it arrived, itself included
    upstream: float = 0.0  # seconds the server (moto) took to answer, the added delay not included
    detail: str = ""  # a read's parameters (query protocols only): to tell a repeated read from a new one

    @property
    def key(self) -> str:
        return f"{self.service}:{self.operation}"

    @property
    def read(self) -> bool:
        """As kprov's read-only wall classifies the operation."""
        return is_read(self.service, self.operation)


def counts(calls: list[Call]) -> Counter[str]:
    return Counter(call.key for call in calls)


def _parameters(path: str, body: bytes) -> str:
    """A query-protocol read's parameters (ids, filters), without Action and Version; "" for others."""
    form = urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query) + urllib.parse.parse_qsl(
        body.decode("utf-8", "replace"))
    return " ".join(f"{k}={v}" for k, v in form if k not in ("Action", "Version"))


class LatencyProxy:
    """`with LatencyProxy(upstream, delay=0.05) as proxy:` serves on `proxy.url` until the block ends."""

    def __init__(self, upstream: str, *, delay: float) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.delay = delay
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._in_flight = 0
        self._local = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LatencyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self) -> list[Call]:
        """The calls sent since the last `take`, in the order they arrived; recording starts again."""
        with self._lock:
            calls, self._calls = self._calls, []
        return calls

    def _arrive(self) -> int:
        with self._lock:
            self._in_flight += 1
            return self._in_flight

    def _record(self, call: Call) -> None:
        with self._lock:
            self._in_flight -= 1
            self._calls.append(call)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> http.client.HTTPResponse:
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed by the server
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(*self.upstream, timeout=300)
                self._local.connection = connection
            try:
                connection.request(method, path, body=body, headers=headers)
                return connection.getresponse()
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

            def _relay(self) -> None:
                body = self._body()
                service, operation = operation_of(self.command, self.path, self.headers, body)
                arrived, concurrent = time.monotonic(), proxy._arrive()
                time.sleep(proxy.delay)  # the round trip to a region, once per call
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                # The sandbox answers only to its own loopback Host (no DNS rebinding); moto checks no
                # signature, so the signed Host of the proxy may be replaced.
                headers["Host"] = "{}:{}".format(*proxy.upstream)
                sent = time.monotonic()
                answer = proxy._forward(self.command, self.path, headers, body)
                payload = answer.read()
                upstream = time.monotonic() - sent
                detail = _parameters(self.path, body) if is_read(service, operation) else ""  # never a write's
                proxy._record(Call(service, operation, answer.status, arrived, concurrent, upstream, detail))
                self.send_response_only(answer.status, answer.reason)  # upstream sends Server, Date
                for key, value in answer.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    return b"".join(self._chunks())
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _chunks(self) -> Iterator[bytes]:
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    yield self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline().strip():  # trailers
                    pass

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _relay

            def log_message(self, *_: Any) -> None:  # quiet: the bench prints its own numbers
                return

        return Handler
