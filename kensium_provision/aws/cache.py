"""A run's read-through cache of AWS reads: the same Describe/List/Get is asked once until something changes.

Steps are independent (each probes what it needs), so a checklist asks the same read several times:
a step's verify repeats its probe, four subnet probes read one VPC's subnets. Within one run, holding
the target's lock, an answer stays true until something changes it, so the cache is emptied:
- before any call that is not a read (kprov's own writes),
- whenever the run sleeps (a wait polls for a change made by AWS itself),
- when a step starts to act (an operator's manual work happens there).
Cached answers (successes, and definite 4xx answers such as NoSuchEntity) are deep copies and are not
counted as API calls; the caller's identity is kept for the whole run.

Reads may run at once (`aws.gather`, the engine's prefetch of probes): the same read asked while it is
in flight waits for that answer instead of sending it again, and an answer that arrives after the cache
was emptied is not kept (it may predate the change that emptied it).
"""

from __future__ import annotations

import copy
import threading
from typing import Any, ClassVar

from kensium_provision.aws.wall import is_read

__all__ = ["ReadCache"]


# Answers that cannot change during a run: kept when the cache is emptied.
_PINNED = frozenset({("sts", "GetCallerIdentity")})
# How long a read waits for the same read in flight before it sends its own (a safety net: the flight's
# own after-call or after-call-error always ends it).
_FLIGHT_WAIT = 30.0


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


class _Flight:
    """A read in flight: the generation it began in, and its answer once it lands (None: nothing to share)."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.answer: tuple[int, Any] | None = None
        self.landed = threading.Event()


class ReadCache:
    """botocore `before-call` / `after-call` handlers keeping the answers of read operations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], Any] = {}
        self._flights: dict[tuple[str, ...], _Flight] = {}  # reads in flight, by key
        self._generation = 0  # +1 each time the cache is emptied

    def invalidate(self) -> None:
        with self._lock:
            self._answers = {k: v for k, v in self._answers.items() if (k[0], k[1]) in _PINNED}
            self._generation += 1

    def _lookup(self, key: tuple[str, ...], context: Any) -> Any:
        """The kept answer of `key`; else None, once this thread owns the flight of `key` (or waited long).

        A read that joins a flight takes its answer even when the cache was emptied after it joined: the
        write that emptied it began after this read was asked, so the two were concurrent and either order
        is a true answer. Only a flight that began before the latest emptying (this read was asked after a
        write the flight may predate) is not taken. Without that, reads of one key behind a stream of other
        steps' writes went out one after the other (bench/latency: the VPC job's four subnet probes)."""
        waited = False
        while True:
            with self._lock:
                found = self._answers.get(key)
                flight = self._flights.get(key)
                if found is not None or flight is None or waited:
                    if found is None and flight is None:
                        self._flights[key] = _Flight(self._generation)
                        context["kprov_cache_flight"] = self._generation
                    return found
                joined = self._generation
            waited = not flight.landed.wait(_FLIGHT_WAIT)  # the same read is in flight: its answer will do
            if not waited and flight.generation == joined and flight.answer is not None:
                return flight.answer

    def _land(self, key: tuple[str, ...], context: Any, status: int | None, parsed: Any) -> None:
        """The end of this thread's flight of `key`: its answer for those who joined it, and kept unless the
        cache was emptied meanwhile."""
        generation = context.pop("kprov_cache_flight", None)
        if generation is None:
            return
        answer = (status, copy.deepcopy(parsed)) if status is not None and _keeps(status, parsed) else None
        with self._lock:
            if answer is not None and generation == self._generation:
                self._answers[key] = answer
            flight = self._flights.pop(key, None)
        if flight is not None:
            flight.answer = answer
            flight.landed.set()

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
            found = self._lookup(key, context)
            if found is None:
                return None
            status, parsed = found
            return _CachedResponse(status), copy.deepcopy(parsed)

        def after_call(*, http_response: Any, parsed: Any, context: Any, **_: Any) -> None:
            key = (context or {}).get("kprov_cache_key")
            if key is None or getattr(http_response, "kprov_cached", False):
                return
            self._land(key, context, int(getattr(http_response, "status_code", 500)), parsed)

        def after_call_error(*, context: Any, **_: Any) -> None:
            key = (context or {}).get("kprov_cache_key")
            if key is not None:  # no answer (a connection error): the flight ends, nothing kept
                self._land(key, context, None, None)

        client.meta.events.register("before-call", before_call, unique_id="kprov-read-cache")
        client.meta.events.register("after-call", after_call, unique_id="kprov-read-cache-store")
        client.meta.events.register("after-call-error", after_call_error, unique_id="kprov-read-cache-error")
