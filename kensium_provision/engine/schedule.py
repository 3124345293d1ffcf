"""Which steps of a checklist may run at once: the independence proof, as data (no threads here).

A later step waits for an earlier one when it needs a name the earlier one gives (its params or condition
reference that step's outputs), or when both may change the same thing (`steps.base.Touches`). A step that
cannot say what it touches, or may ask a person, runs alone: it waits for every earlier step, and every
later step waits for it. Steps start in checklist order, so the earliest waiting step is never overtaken
by one that conflicts with it.

What a step touches may name a value not known yet (the subnet a route table will be associated with,
given by a subnet step still running): a `wildcard` stands in for it, and a touch holding one conflicts
with every touch that begins as it does up to the wildcard (`subnet-association:<any>`), so what is not
known is taken as anything of that kind.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["Node", "conflicts", "startable", "wildcard"]

_WILD = "\x00"  # cannot occur in a rendered name, an AWS id or a tag


@dataclass(frozen=True, slots=True)
class Node:
    """One step as the scheduler sees it: the names it needs and gives, and what it may change (None:
    anything, or not known yet: it runs alone)."""

    id: str
    needs: frozenset[str]
    gives: frozenset[str]
    touches: frozenset[str] | None


def wildcard(name: str) -> str:
    """The stand-in for the value of `name` while it is not known, in what a step touches."""
    return f"{_WILD}{name}{_WILD}"


def conflicts(earlier: Node, later: Node) -> bool:
    """Whether `later` must wait for `earlier` to finish."""
    if earlier.touches is None or later.touches is None:
        return True
    return bool(later.needs & earlier.gives) or bool(earlier.touches & later.touches) or any(
        _may_be_same(one, other) for one in earlier.touches for other in later.touches
        if _WILD in one or _WILD in other)


def _may_be_same(one: str, other: str) -> bool:
    """Two touches, either holding a wildcard: the same thing unless they differ before the first wildcard."""
    one, other = one.split(_WILD, 1)[0], other.split(_WILD, 1)[0]
    return one.startswith(other) or other.startswith(one)


def startable(nodes: Sequence[Node], finished: Collection[str], started: Collection[str]) -> list[str]:
    """The ids of the steps that may start now, in order: not started, and every earlier step they conflict
    with finished. `nodes` are all the steps not yet finished and reported, in checklist order."""
    found: list[str] = []
    for index, node in enumerate(nodes):
        if node.id in started or node.id in finished:
            continue
        if all(other.id in finished or not conflicts(other, node) for other in nodes[:index]):
            found.append(node.id)
    return found
