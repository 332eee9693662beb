"""The headline of a stability table: the few numbers a person reads first (issue #14).

Out of the table of :func:`harness.analysis.tables.stability_table` (one row per environment and
configuration):

- per check that repeats a call in one environment (:data:`harness.vocabulary.VERDICT_CHECKS`:
  repeat, process, threads), how many configurations gave identical bits;
- per check, which solvers it moved (bits changed) in how many configurations, and the worst
  sign-aligned relative deviation of X_pca;
- per dataset, the fastest configuration that is reproducible at a fixed thread count (identical
  bits under every identical-call check: :data:`harness.vocabulary.IDENTICAL_CALLS`), beside the
  fastest overall.

Numbers only; :mod:`harness.render.headline` words them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.vocabulary import BITWISE, CHECKS, IDENTICAL_CALLS, NO_NUMBER, VERDICT_CHECKS

CONFIG = ("layout", "dtype", "solver")


@dataclass(frozen=True)
class Reproduced:
    """How many configurations one check left bitwise identical, of those it ran on."""

    check: str
    ran: int
    bitwise: int


@dataclass(frozen=True)
class Moved:
    """The configurations of one solver whose bits one check moved, and the worst deviation."""

    check: str
    solver: str
    moved: int
    ran: int
    worst: float
    #: Where the worst deviation is: dataset/layout/dtype (and the environment's id when the
    #: table holds several).
    where: str


@dataclass(frozen=True)
class Fastest:
    """The fastest reproducible configuration of one dataset, and the fastest overall."""

    dataset: str
    configuration: str  # layout/dtype/solver
    env: str  # the environment's id ('' when the table holds one environment or no ids)
    seconds: float
    threads: str  # the thread count timed: '1 thread' or 'N threads'
    reproducible: int  # configurations reproducible at a fixed thread count (of those timed)
    timed: int
    overall_configuration: str
    overall_env: str
    overall_seconds: float


@dataclass(frozen=True)
class Headline:
    """The headline numbers of a stability table (see the module docstring)."""

    environments: int
    configurations: int  # (environment, configuration) rows on which some benchmark ran
    reproduced: list[Reproduced] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)
    fastest: list[Fastest] = field(default_factory=list)


def _ran(table: pd.DataFrame, check: str) -> pd.Series:
    """Rows where the check produced a number (or a verdict from its record)."""
    v = table[f"v_{check}"]
    dev = pd.to_numeric(table[f"dev_{check}"], errors="coerce")
    return v.notna() & ~v.isin(NO_NUMBER) & (dev.notna() | (v == BITWISE))


def _bitwise(table: pd.DataFrame, check: str) -> pd.Series:
    return _ran(table, check) & (table[f"v_{check}"] == BITWISE)


def _where(row: pd.Series, several: bool) -> str:
    text = f"{row['dataset']}/{row['layout']}/{row['dtype']}"
    return f"{text} in {row['id']}" if several and isinstance(row.get("id"), str) else text


def _moved(table: pd.DataFrame, several: bool) -> list[Moved]:
    """Per check and solver: configurations whose bits moved, worst first within each check."""
    out = []
    for check in CHECKS:
        ran = _ran(table, check)
        moved = ran & ~_bitwise(table, check)
        dev = pd.to_numeric(table[f"dev_{check}"], errors="coerce")
        per_check = []
        for solver, sub in table[ran].groupby(table["solver"].astype(str), sort=True):
            hit = sub[moved[sub.index]]
            if hit.empty:
                continue
            worst = dev[hit.index]
            i = worst.idxmax() if worst.notna().any() else hit.index[0]
            per_check.append(
                Moved(
                    check=check,
                    solver=str(solver),
                    moved=len(hit),
                    ran=len(sub),
                    worst=float(dev[i]) if not math.isnan(dev[i]) else math.nan,
                    where=_where(table.loc[i], several),
                )
            )
        out.extend(sorted(per_check, key=lambda m: (-np.nan_to_num(m.worst, nan=-1.0), m.solver)))
    return out


def _config(row: pd.Series) -> str:
    return "/".join(str(row[k]) for k in CONFIG)


def _fastest(table: pd.DataFrame, several: bool) -> list[Fastest]:
    """Per dataset: the fastest configuration reproducible at a fixed thread count."""
    one = pd.to_numeric(table["time_1_thread_s"], errors="coerce")
    column, threads = "time_1_thread_s", "1 thread"
    if one.notna().sum() == 0:  # a run timed at all cores only
        column = "time_all_cores_s"
        cores = pd.to_numeric(table.get("all_cores"), errors="coerce").dropna()
        n = int(cores.max()) if len(cores) else None
        threads = f"{n} threads" if n else "all cores"
    seconds = pd.to_numeric(table[column], errors="coerce")
    reproducible = pd.Series(True, index=table.index)
    for check in IDENTICAL_CALLS:
        reproducible &= _bitwise(table, check)
    out = []
    for dataset, sub in table.groupby(table["dataset"].astype(str), sort=True):
        timed = sub[seconds[sub.index].notna()]
        good = timed[reproducible[timed.index]]
        if good.empty:
            continue
        best = good.loc[seconds[good.index].idxmin()]
        top = timed.loc[seconds[timed.index].idxmin()]
        out.append(
            Fastest(
                dataset=str(dataset),
                configuration=_config(best),
                env=str(best.get("id") or "") if several else "",
                seconds=float(seconds[best.name]),
                threads=threads,
                reproducible=len(good),
                timed=len(timed),
                overall_configuration=_config(top),
                overall_env=str(top.get("id") or "") if several else "",
                overall_seconds=float(seconds[top.name]),
            )
        )
    return out


def headline(table: pd.DataFrame) -> Headline | None:
    """The headline of a stability table; None for an empty (or another suite's) table."""
    if table.empty or not {f"v_{c}" for c in CHECKS} <= set(table.columns):
        return None
    any_ran = pd.Series(False, index=table.index)
    for check in CHECKS:
        any_ran |= _ran(table, check)
    for column in ("time_1_thread_s", "time_all_cores_s"):
        any_ran |= pd.to_numeric(table[column], errors="coerce").notna()
    table = table[any_ran]
    if table.empty:
        return None
    runs = table[["machine", "commit", "env_name"]].drop_duplicates()
    several = len(runs) > 1
    return Headline(
        environments=len(runs),
        configurations=len(table),
        reproduced=[
            Reproduced(check, int(_ran(table, check).sum()), int(_bitwise(table, check).sum()))
            for check in VERDICT_CHECKS
        ],
        moved=_moved(table, several),
        fastest=_fastest(table, several),
    )
