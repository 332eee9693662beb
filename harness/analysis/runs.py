"""Which runs a view shows: the newest run of each group (by default each (machine, asv
environment)), defined once for the table, crossenv and compare."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

Key = tuple[str, str, str]
T = TypeVar("T")
G = TypeVar("G", bound=Hashable)


def date_rank(date: float | None) -> float:
    """A run's date as a sort key: missing dates (None, NaN) sort before every real one."""
    return -math.inf if date is None or math.isnan(date) else float(date)


def newest_by(items: Iterable[T], group: Callable[[T], G], order: Callable[[T], Any]) -> dict[G, T]:
    """The item with the largest ``order`` in each ``group`` (the first seen on ties)."""
    best: dict[G, tuple[Any, T]] = {}
    for item in items:
        g, rank = group(item), order(item)
        if g not in best or rank > best[g][0]:
            best[g] = (rank, item)
    return {g: item for g, (_, item) in best.items()}


def newest(
    keys: Sequence[Key],
    dates: Mapping[Key, float],
    *,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> list[Key]:
    """The newest run (by date, then commit) of each (machine, environment), sorted.

    ``commit`` (a hash prefix) keeps that commit's runs instead, ``all_commits`` every run;
    ``machine`` keeps that machine's only.
    """
    chosen = [k for k in keys if not machine or k[0] == machine]
    if commit:
        return sorted(k for k in chosen if k[1].startswith(commit))
    if all_commits:
        return sorted(chosen)
    best = newest_by(chosen, lambda k: (k[0], k[2]), lambda k: (date_rank(dates.get(k)), k[1]))
    return sorted(best.values())
