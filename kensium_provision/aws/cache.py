"""A run's read-through cache of AWS reads: the same Describe/List/Get is asked once until something changes.

Steps are independent (each probes what it needs), so a checklist asks the same read several times:
a step's verify repeats its probe, four subnet probes read one VPC's subnets. Within one run, holding
the target's lock, an answer stays true until something changes it, so the cache is emptied:
- before any call that is not a read (kprov's own writes),
- whenever the run sleeps (a wait polls for a change made by AWS itself),
- when a step starts to act (an operator's manual work happens there).
Cached answers (successes, and definite 4xx answers such as NoSuchEntity) are deep copies and are not
counted as API calls; the caller's identity is kept for the whole run.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, ClassVar

from kensium_provision.aws.wall import is_read

__all__ = ["ReadCache"]


# Answers that cannot change during a run: kept when the cache is emptied.
_PINNED = frozenset({("sts", "GetCallerIdentity")})


class _CachedResponse:
    """Stands in for the HTTP response of an answer served from the cache (botocore reads status_code,
    and raises the cached error itself for a 4xx)."""

    headers: ClassVar[dict[str, str]] = {}
    kprov_cached = True

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def _keeps(status: int, parsed: Any) -> bool:
    """Successes, and definite answers such as NoSuchEntity or NotFound; never throttling or 5xx."""
    if status < 300:
        return True
    if not 400 <= status < 500 or status == 429:
        return False
    from kensium_provision.aws.errors import is_throttling

    code = str(((parsed or {}).get("Error") or {}).get("Code") or "")
    return bool(code) and not is_throttling(code, status)


class ReadCache:
    """botocore `before-call` / `after-call` handlers keeping the answers of read operations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], Any] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._answers = {k: v for k, v in self._answers.items() if (k[0], k[1]) in _PINNED}

    def register(self, client: Any) -> None:
        service = client.meta.service_model.service_name

        def before_call(*, model: Any, params: Any, context: Any, **_: Any) -> Any:
            if not is_read(service, model.name):
                self.invalidate()
                return None
            # The full URL (S3 puts the bucket in the host name), the method, the query and the body.
            key = (service, model.name, str(params.get("method")), repr(params.get("url")),
                   repr(params.get("url_path")), repr(params.get("query_string")), repr(params.get("body")))
            context["kprov_cache_key"] = key
            with self._lock:
                found = self._answers.get(key)
            if found is None:
                return None
            status, parsed = found
            return _CachedResponse(status), copy.deepcopy(parsed)

        def after_call(*, http_response: Any, parsed: Any, context: Any, **_: Any) -> None:
            key = (context or {}).get("kprov_cache_key")
            if key is None or getattr(http_response, "kprov_cached", False):
                return
            status = int(getattr(http_response, "status_code", 500))
            if _keeps(status, parsed):
                with self._lock:
                    self._answers[key] = (status, copy.deepcopy(parsed))

        client.meta.events.register("before-call", before_call, unique_id="kprov-read-cache")
        client.meta.events.register("after-call", after_call, unique_id="kprov-read-cache-store")
