"""Creates that never duplicate: describe before create, and reconcile after an ambiguous error.

A create whose response was lost (timeout, 5xx, dropped connection) may have succeeded; retrying it
blindly makes a second VPC. So: probe first; after an ambiguous failure, probe again before retrying.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kensium_provision.aws.call import error_code, http_status
from kensium_provision.aws.errors import is_throttling, sdk_errors

__all__ = ["Created", "create_client", "create_once"]

T = TypeVar("T")

_ALREADY_EXISTS = ("AlreadyExists", "Duplicate", "ResourceExists", "AlreadyOwnedByYou", "ResourceInUse")


@dataclass(frozen=True, slots=True, kw_only=True)
class Created(Generic[T]):
    """The resource, and how it came to be: made now, already there, or found after a lost response."""

    resource: T
    created: bool  # False: the first probe found it (an idempotent re-run)
    reconciled: bool = False  # True: a create failed ambiguously and a probe found it had landed
    attempts: int = 0  # create calls made


def create_client(factory: Any, service: str, *, client_token: str | None = None) -> Any:
    """The client to create with: single-attempt when the create has no idempotency token.

    With a token, botocore's retries are safe (AWS answers a repeat with the first result). Without
    one, a retry after a lost response makes a duplicate, so botocore must not retry and
    `create_once` reconciles instead. Factories other than `AwsSession` (test fakes) are used as is.
    """
    from kensium_provision.aws.session import AwsSession

    if client_token is None and isinstance(factory, AwsSession):
        return factory.client(service, attempts=1)
    return factory.client(service)


def create_once(
    *,
    probe: Callable[[], T | None],
    create: Callable[[], T],
    client_token: str | None,
    attempts: int = 4,
    settle_probes: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    base_delay: float = 1.0,
    probed: bool = False,
    forget: Callable[[], None] | None = None,
) -> Created[T]:
    """Return the resource `probe` finds, else create it, at most once in effect.

    `create` must send `client_token` (`ClientToken`, `CreatorRequestId`, `ClientRequestToken`) when
    the operation has one; use `Runtime.idempotency_token` so a resumed run sends the same token.
    Throttling is retried after a backoff (the request was refused, nothing happened). An
    ambiguous failure (read timeout, dropped connection, 5xx) is followed by probes, `settle_probes`
    of them without a token (AWS reads are eventually consistent), before any retry. An "already
    exists" answer is reconciled by a probe too. Anything else is raised as is (translate it with
    `aws.errors.translate`), as is the last error once `attempts` creates were made. `probed=True`
    skips the first probe when the caller has just made it (a step's act right after its probe, under
    the run's lock): describe-before-create without describing twice. `forget` empties the run's read
    cache before each re-probe (see `aws.cache`).
    """
    if not probed:  # `probed`: the caller's own probe just found nothing (the engine's probe before act)
        found = probe()
        if found is not None:
            return Created(resource=found, created=False)
    made = 0
    while True:
        made += 1
        try:
            return Created(resource=create(), created=True, attempts=made)
        except sdk_errors() as exc:  # anything else (the read-only wall, a bug) is raised as is
            kind = _classify(exc)
            if kind == "fatal":
                raise
            if kind in ("ambiguous", "exists"):
                tries = settle_probes if client_token is None and kind == "ambiguous" else 1
                for i in range(tries):
                    if forget is not None:  # a re-probe must ask AWS, never the run's read cache
                        forget()
                    found = probe()
                    if found is not None:
                        return Created(resource=found, created=made > 1 or kind == "ambiguous",
                                       reconciled=True, attempts=made)
                    if i + 1 < tries:
                        sleep(_backoff(base_delay, i))
                if kind == "exists":
                    raise  # it exists but the probe cannot see it: do not guess
            if made >= attempts:
                raise
            sleep(_backoff(base_delay * (2 if kind == "throttled" else 1), made - 1))


def _backoff(base: float, attempt: int) -> float:
    # Full jitter, as botocore's standard mode does, capped at 20 s.
    return random.uniform(0, min(20.0, base * 2**attempt))  # noqa: S311 - jitter, not security


def _classify(exc: BaseException) -> str:
    """throttled (not executed), unreachable (not executed), ambiguous (may have executed), exists, fatal."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        status = http_status(exc)
        if is_throttling(code, status):
            return "throttled"
        if status >= 500 or code in ("InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"):
            return "ambiguous"
        if any(marker in code for marker in _ALREADY_EXISTS):
            return "exists"
        return "fatal"
    if isinstance(exc, (bx.ConnectTimeoutError, bx.EndpointConnectionError)):
        return "unreachable"  # no connection was made: nothing was sent
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectionClosedError, ResponseParserError)):
        return "ambiguous"  # sent, answer lost or unreadable: it may have happened
    return "fatal"
