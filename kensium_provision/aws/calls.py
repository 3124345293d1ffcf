"""Counts every AWS API call of a run, per service and operation, with the attempts retries added."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["CallCounter"]


@dataclass(slots=True)
class _Count:
    """Calls made, HTTP attempts they took (retries included), and calls that ended in an error."""

    calls: int = 0
    attempts: int = 0
    errors: int = 0


class CallCounter:
    """botocore `after-call` / `after-call-error` handlers that count; safe across threads.

    A call refused before sending (the read-only wall) is not counted: it never reached AWS.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, _Count] = {}

    def register(self, client: Any) -> None:
        """Count every call made through `client`."""
        service = client.meta.service_model.service_name  # one client, one service: "secretsmanager"

        def after_call(*, http_response: Any, parsed: Any, model: Any, context: Any, **_: Any) -> None:
            if getattr(http_response, "kprov_cached", False):  # answered by the run's read cache: AWS saw nothing
                return
            failed = getattr(http_response, "status_code", 200) >= 300
            self._add(f"{service}:{model.name}", _attempts(context, parsed), failed)

        def after_call_error(*, event_name: str, context: Any, **_: Any) -> None:
            # No model here: the event name is after-call-error.<service-id>.<Operation>.
            self._add(f"{service}:{event_name.rsplit('.', 1)[-1]}", _attempts(context, None), True)

        client.meta.events.register("after-call", after_call, unique_id="kprov-call-counter")
        client.meta.events.register("after-call-error", after_call_error, unique_id="kprov-call-counter-error")

    def _add(self, key: str, attempts: int, failed: bool) -> None:
        with self._lock:
            count = self._counts.setdefault(key, _Count())
            count.calls += 1
            count.attempts += attempts
            count.errors += int(failed)

    @property
    def total(self) -> int:
        """API calls made (not counting retries)."""
        with self._lock:
            return sum(c.calls for c in self._counts.values())

    @property
    def attempts(self) -> int:
        """HTTP requests sent, retries included."""
        with self._lock:
            return sum(c.attempts for c in self._counts.values())

    def count(self, service: str, operation: str) -> int:
        with self._lock:
            found = self._counts.get(f"{service}:{operation}")
            return found.calls if found else 0

    def as_dict(self) -> dict[str, object]:
        """For `--output json` reports: totals and `{"ec2:CreateVpc": {"calls", "attempts", "errors"}}`."""
        with self._lock:
            by_operation = {key: {"calls": c.calls, "attempts": c.attempts, "errors": c.errors}
                            for key, c in sorted(self._counts.items())}
        return {
            "calls": sum(v["calls"] for v in by_operation.values()),
            "attempts": sum(v["attempts"] for v in by_operation.values()),
            "errors": sum(v["errors"] for v in by_operation.values()),
            "by_operation": by_operation,
        }


def _attempts(context: Any, parsed: Any) -> int:
    # botocore's endpoint records the attempt number in the request context; RetryAttempts is the
    # same fact from the response metadata (present on parsed responses, including moto's).
    attempt = ((context or {}).get("retries") or {}).get("attempt")
    if isinstance(attempt, int) and attempt > 0:
        return attempt
    retries = ((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts")
    return retries + 1 if isinstance(retries, int) else 1
