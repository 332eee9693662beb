"""What changed for one configuration between two commits: its bits, and its runtime.

:func:`bits_change` is the one place a history or a gate classifies two results, so the
classification can be switched (to harness.bench.digests' judge over full digests) in one spot.
Kinds, from the calibrated verdicts of :mod:`harness.analysis.rounding`:

``variance ratio only``  X_pca, the loadings and the variances bitwise; only the explained
                     variance ratio moved (the total variance was summed another way);
``sign only``        every component identical once its sign is flipped, the variance bitwise;
``within rounding``  every component within what rounding explains (its worst verdict within
                     rounding, or explained by a near-degenerate spectrum);
``undetermined``     the spectrum cannot pin some component down, none is beyond rounding;
``beyond rounding``  some component moved more than rounding allows (a different algorithm);
``<a> -> <b>``       the state changed: ``ok``, ``raised`` (with the error), ``nondeterministic``.

A runtime change needs asv compare's own test (Mann-Whitney U on the samples, else the 99% CIs
of asv_runner's statistics) and a ratio of at least ``factor``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from asv_runner.statistics import compute_stats

from harness.analysis import rounding
from harness.analysis.compare import asv_decider
from harness.bench import verdicts
from harness.bench.pca import PCAResult

RATIO_ONLY = "variance ratio only"
SIGN_ONLY = "sign only"
WITHIN = "within rounding"
UNDETERMINED = "undetermined"
BEYOND = "beyond rounding"
#: Bit-change kinds, mildest first (a history's summary takes the worst).
BIT_KINDS = (RATIO_ONLY, SIGN_ONLY, WITHIN, UNDETERMINED, BEYOND)


@dataclass(frozen=True)
class Blob:
    """A probe's stored result (harness.history.probe.save_blob)."""

    loadings: np.ndarray
    embedding_cells: np.ndarray
    variance: np.ndarray
    variance_ratio: np.ndarray
    col_sha: list[str]
    col_sha_neg: list[str]

    def sample(self) -> PCAResult:
        return PCAResult(self.embedding_cells, self.loadings, self.variance, self.variance_ratio)


def load_blob(folder: Path, sha: str) -> Blob:
    path = folder / sha[:2] / f"{sha}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return Blob(
                z["loadings"],
                z["embedding_cells"],
                z["variance"],
                z["variance_ratio"],
                [str(s) for s in z["col_sha"]],
                [str(s) for s in z["col_sha_neg"]],
            )
    except (OSError, KeyError, ValueError) as err:
        raise BlobMissing(f"{path}: {err}") from None


class BlobMissing(Exception):
    """A result's stored outputs are gone (the cache was cleared): only its hash can be compared."""


@dataclass(frozen=True)
class BitChange:
    """How a configuration's outputs moved: kind, per-output size, verdict counts, flipped PCs."""

    kind: str
    size: dict[str, float] = field(default_factory=dict)  # output -> max relative change
    counts: dict[str, int] = field(default_factory=dict)
    flipped: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.size:
            out["size"] = self.size
        if self.counts:
            out["counts"] = self.counts
        if self.flipped:
            out["flipped"] = self.flipped
        if self.detail:
            out["detail"] = self.detail
        return out


ProblemOf = Callable[[str, str, str], rounding.Problem]


def state_of(row: dict[str, Any] | None) -> str:
    return "missing" if row is None else str(row.get("state"))


def bits_change(
    config: tuple[str, ...],
    a: dict[str, Any],
    b: dict[str, Any],
    problem_of: ProblemOf,
    blobs: Path,
) -> BitChange | None:
    """None when ``b`` gave the same bits (or the same state) as ``a``, else how it changed."""
    sa, sb = state_of(a), state_of(b)
    if sa != sb:
        detail = b.get("error") or a.get("error") or ""
        return BitChange(f"{sa} -> {sb}", detail=str(detail))
    if sa != "ok" or a["sha256"] == b["sha256"]:
        return None
    try:
        ba, bb = load_blob(blobs, a["sha256"]), load_blob(blobs, b["sha256"])
    except BlobMissing as err:
        return BitChange(UNDETERMINED, detail=f"outputs not kept ({err}): only the hashes differ")
    return _judged(config, ba, bb, problem_of)


def _judged(config: tuple[str, ...], a: Blob, b: Blob, problem_of: ProblemOf) -> BitChange:
    dataset, layout, dtype, solver = config
    if a.loadings.shape != b.loadings.shape:
        return BitChange(BEYOND, detail=f"loadings {a.loadings.shape} -> {b.loadings.shape}")
    same: list[str | None] = []
    for ca, cb, cb_neg in zip(a.col_sha, b.col_sha, b.col_sha_neg, strict=True):
        same.append("bitwise" if ca == cb else SIGN_ONLY if ca == cb_neg else None)
    flipped = same.count(SIGN_ONLY)
    outs = verdicts.outputs(a.sample(), b.sample())
    size = {k: v["max_rel_diff"] for k, v in outs.items() if v["max_rel_diff"] > 0}
    if all(same) and not size:
        ratio = _rel(a.variance_ratio, b.variance_ratio)
        extra = {"variance_ratio": ratio} if ratio > 0 else {}
        return BitChange(SIGN_ONLY if flipped else RATIO_ONLY, size=extra, flipped=flipped)
    problem = problem_of(dataset, layout, dtype)
    side_a = verdicts.side(solver, layout, [dtype, a.loadings.dtype], a.loadings)
    side_b = verdicts.side(solver, layout, [dtype, b.loadings.dtype], b.loadings)
    ra, _ = rounding.residuals(problem, a.loadings)
    rb, _ = rounding.residuals(problem, b.loadings)
    j = rounding.judge_columns(
        problem.values,
        problem.rho,
        (a.loadings, ra, side_a.rho(problem)),
        (b.loadings, rb, side_b.rho(problem)),
        same,
    )
    worst = j.worst
    kind = (
        BEYOND
        if worst == "beyond rounding"
        else UNDETERMINED
        if worst == "undetermined"
        else WITHIN
    )
    return BitChange(kind, size=size, counts=j.counts(), flipped=flipped)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |a| (0 when bitwise equal)."""
    diff = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(initial=0.0))
    scale = float(np.abs(np.asarray(a, np.float64)).max(initial=0.0))
    return 0.0 if diff == 0 else diff / scale if scale > 0 else math.inf


# --- runtime ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeChange:
    """A significant runtime change of at least the factor: medians and their ratio."""

    before: float
    after: float

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before > 0 else math.inf

    @property
    def kind(self) -> str:
        return "slower" if self.ratio > 1 else "faster"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "before": self.before, "after": self.after, "ratio": self.ratio}


@cache
def _decider() -> Callable[..., bool]:
    return asv_decider()[0]


def median(times: list[float]) -> float:
    return float(statistics.median(times)) if times else math.nan


def time_change(a: list[float], b: list[float], factor: float) -> TimeChange | None:
    """A runtime change by asv compare's test (``_is_result_better``) at ``factor``, or None."""
    if not a or not b:
        return None
    va, sa = compute_stats(a, 1)
    vb, sb = compute_stats(b, 1)
    better = _decider()
    if better(va, vb, (sa, a), (sb, b), factor) or better(vb, va, (sb, b), (sa, a), factor):
        return TimeChange(median(a), median(b))
    return None
