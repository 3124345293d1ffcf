"""Independent AWS calls at once: at 50 ms a call, two calls in a row cost twice what they cost side by side.

`gather(*calls)` runs each zero-argument call on a thread of its own and returns their answers in
order; the first failure (in that order) is raised once all have ended, so no call is left running.
Only for calls that do not depend on each other: reads, or writes to different resources that AWS takes
in any order (a route table's route and its subnets' associations). botocore clients, the run's read
cache and the settling retries are thread-safe.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["gather"]

T = TypeVar("T")


def gather(*reads: Callable[[], T]) -> list[T]:
    """The answers of `reads`, run concurrently (one alone runs on the caller's thread)."""
    if len(reads) <= 1:
        return [read() for read in reads]
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="kprov-read") as pool:
        # Each read in a copy of the caller's context: what the caller's context says (who is calling, for
        # the journal and its observers) holds on the read's thread too.
        futures = [pool.submit(contextvars.copy_context().run, read) for read in reads]
    return [future.result() for future in futures]  # the pool has waited for all: raises the first failure
