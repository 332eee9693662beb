"""Timing noise of the runtime suite: the interquartile range of each runtime against its median.

The suite's target (issue #15): for ``time_pca`` results of 20 ms or more at threads=1, the
90th percentile of IQR/median at most 5% and the median at most 2%. asv keeps each result's
quartiles (``stats_q_25``/``stats_q_75``), so the noise is read from any results folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.vocabulary import RUNTIME

#: Runtimes below this are left out of the noise figures (timer resolution and call overhead).
MIN_SECONDS = 0.020
#: A runtime whose IQR exceeds this share of its median is marked as noisy.
NOISY = 0.05
#: Targets: median and 90th percentile of IQR/median.
TARGET_MEDIAN, TARGET_P90 = 0.02, 0.05
#: What identifies one configuration of one run, between a runtime and its repeat check.
CONFIG = ["machine", "commit", "env_name", "dataset", "layout", "dtype", "svd_solver"]
#: The check whose value is 0 when identical calls in one process gave identical bits.
REPEAT_CHECK = "track_repeat"


@dataclass(frozen=True)
class Noise:
    """IQR/median over the runtimes that count (``n`` of them)."""

    n: int
    within: float  # share with IQR <= NOISY of the median
    median: float
    p90: float
    worst: float
    #: Runtimes whose identical calls gave different bits (the repeat check): their calls do
    #: different work each time (lobpcg with scipy >= 1.17 draws fresh start vectors), so their
    #: spread is the algorithm's, not the clock's. The figures without them follow.
    varying: int = 0
    steady_median: float = math.nan
    steady_p90: float = math.nan

    def line(self) -> str:
        """One line for the end of ``make bench``."""
        if not self.n:
            return f"timing noise: no {RUNTIME} result of {MIN_SECONDS * 1e3:.0f} ms or more at 1 thread"
        met = self.median <= TARGET_MEDIAN and self.p90 <= TARGET_P90
        return (
            f"timing noise: {self.within:.0%} of {self.n} runtimes (>= {MIN_SECONDS * 1e3:.0f} ms, "
            f"1 thread) have an IQR within {NOISY:.0%} of the median; IQR/median median "
            f"{self.median:.1%}, p90 {self.p90:.1%}, worst {self.worst:.1%} "
            f"(target median <= {TARGET_MEDIAN:.0%}, p90 <= {TARGET_P90:.0%}: "
            f"{'met' if met else 'not met'})" + self._steady()
        )

    def _steady(self) -> str:
        if not self.varying or self.varying >= self.n:
            return ""
        runtimes = "runtime" if self.varying == 1 else "runtimes"
        return (
            f"; without the {self.varying} {runtimes} whose identical calls differ in their bits "
            f"(repeat check), median {self.steady_median:.1%}, p90 {self.steady_p90:.1%}"
        )


def relative_iqr(frame: pd.DataFrame) -> pd.Series:
    """IQR/median of every row (NaN where asv kept no quartiles)."""
    return (frame["q_75"] - frame["q_25"]) / frame["value"]


def runtimes(frame: pd.DataFrame) -> pd.DataFrame:
    """The runtime rows the noise target is about, with their ``rel_iqr``."""
    sub = frame[
        (frame["benchmark"].astype(str).str.endswith(f".{RUNTIME}"))
        & (frame["status"] == "ok")
        & (pd.to_numeric(frame.get("threads"), errors="coerce") == 1)
        & (frame["value"] >= MIN_SECONDS)
    ]
    return sub.assign(rel_iqr=relative_iqr(sub))


def varying(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """Per row of ``rows``: whether its configuration's repeat check in ``frame`` found
    identical calls with different bits (False where there is no such check)."""
    if not set(CONFIG) <= set(frame.columns):
        return pd.Series(False, index=rows.index)
    checks = frame[frame["benchmark"].astype(str).str.endswith(f".{REPEAT_CHECK}")]
    moved = checks[pd.to_numeric(checks["value"], errors="coerce") > 0]
    keys = pd.MultiIndex.from_frame(moved[CONFIG].astype(str))
    return pd.Series(
        pd.MultiIndex.from_frame(rows[CONFIG].astype(str)).isin(keys), index=rows.index
    )


def summarize(frame: pd.DataFrame) -> Noise:
    """The noise figures of the runtimes in ``frame`` (filter it to one run first)."""
    rows = runtimes(frame).dropna(subset=["rel_iqr"])
    r = rows["rel_iqr"]
    if r.empty:
        return Noise(0, math.nan, math.nan, math.nan, math.nan)
    steady = r[~varying(frame, rows)]
    return Noise(
        n=len(r),
        within=float((r <= NOISY).mean()),
        median=float(r.median()),
        p90=float(r.quantile(0.9)),
        worst=float(r.max()),
        varying=len(r) - len(steady),
        steady_median=float(steady.median()) if len(steady) else math.nan,
        steady_p90=float(steady.quantile(0.9)) if len(steady) else math.nan,
    )
