"""What moto's server spends on every request that AWS does not: done once instead.

The fleet check sends 10,000 requests at 5,000 clients, and the sandbox server shares the machine with kprov,
so its CPU per request is part of every timing the bench reports (bench/README). Two of moto's costs grow
with nothing AWS has:

- its dispatcher finds each request's service by listing moto's own package folder
  (`moto.backends.list_of_moto_modules`: some 175 `stat` calls a request), under the one lock every
  request waits for. The folder cannot change while the server runs: its listing is kept.
- each error answer builds its service's table of error shapes anew: `moto.core.errors.get_error_model`
  makes a new `ErrorLookupFactory` per error, so the factory's cache never holds one. One table per service
  is kept (a model's error shapes never change). Every `GetPublicAccessBlock` of a bucket without one is
  such an answer.

What moto answers is unchanged: the same modules, the same error shapes.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["install"]


def install() -> None:
    """Keep moto's module listing and error tables (idempotent)."""
    import moto.backends
    from moto.core.errors import ErrorLookupFactory

    if not hasattr(moto.backends, "_kprov_list_of_moto_modules"):
        listing = moto.backends.list_of_moto_modules
        moto.backends._kprov_list_of_moto_modules = listing  # type: ignore[attr-defined]
        kept = cache(lambda: tuple(listing()))
        moto.backends.list_of_moto_modules = lambda: iter(kept())  # a generator before: still an iterable
    if not hasattr(ErrorLookupFactory, "_kprov_tables"):
        ErrorLookupFactory._kprov_tables = {}  # type: ignore[attr-defined]
        ErrorLookupFactory.__init__ = _shared_tables  # type: ignore[method-assign]


def _shared_tables(self: Any) -> None:
    self._error_lut_cache = type(self)._kprov_tables  # one cache for every factory, not one per error
