"""Every change point of a sequence by recursive bisection, skipping what cannot be evaluated.

A segment whose two ends differ is split at its middle, and both halves are searched, until each
change sits between two neighbours: with k change points among N units about
(k + 1) * log2(N) + k evaluations, not N. A unit that cannot be evaluated (a commit that does not
build) is skipped the way ``git bisect skip`` does: the nearest other unit in the segment is
taken instead, and a change whose segment holds only such units is reported with its bounds.
Two changes that cancel inside one segment (a change later reverted) are not seen: the ends agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")  # what evaluating a unit gives; None when it cannot be evaluated
D = TypeVar("D")  # what differs between two evaluated units (falsy: nothing)


@dataclass(frozen=True)
class ChangePoint(Generic[D]):
    """A change between evaluated units ``before`` and ``after``; ``skipped`` units lie between
    them (the change is at one of ``before + 1 .. after``), none when they are neighbours."""

    before: int
    after: int
    diff: D

    @property
    def exact(self) -> bool:
        return self.after == self.before + 1


@dataclass(frozen=True)
class Outcome(Generic[D]):
    changes: list[ChangePoint[D]]
    evaluated: list[int]  # in the order evaluated, skipped units included
    first: int | None  # the first and last units that evaluated (None: none did)
    last: int | None


def bisect(
    n: int,
    evaluate: Callable[[int], T | None],
    differs: Callable[[T, T], D],
    progress: Callable[[list[ChangePoint[D]], list[int]], None] | None = None,
) -> Outcome[D]:
    """Every change point among units ``0 .. n-1`` (``evaluate`` is called once per unit);
    ``progress`` gets the change points isolated so far after each evaluation."""
    results: dict[int, T | None] = {}
    order: list[int] = []

    def get(i: int) -> T | None:
        if i not in results:
            results[i] = evaluate(i)
            order.append(i)
        return results[i]

    first = next((i for i in range(n) if get(i) is not None), None)
    last = next((i for i in range(n - 1, -1, -1) if get(i) is not None), None)
    if first is None or last is None or first == last:
        return Outcome([], order, first, last)
    changes: list[ChangePoint[D]] = []
    stack = [(first, last)]
    while stack:
        lo, hi = stack.pop()
        a, b = results[lo], results[hi]
        assert a is not None and b is not None
        diff = differs(a, b)
        if not diff:
            continue
        mid = (lo + hi) // 2
        inner = sorted(range(lo + 1, hi), key=lambda i: (abs(i - mid), i))
        pick = next((i for i in inner if get(i) is not None), None)
        if pick is None:
            changes.append(ChangePoint(lo, hi, diff))
        else:
            stack.append((pick, hi))
            stack.append((lo, pick))
        if progress is not None:
            progress(sorted(changes, key=lambda c: c.before), order)
    changes.sort(key=lambda c: c.before)
    return Outcome(changes, order, first, last)
