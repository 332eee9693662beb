"""Each run of ``harness doctor`` compared with the baseline, and what the comparisons show.

Numbers come from :mod:`harness.analysis.metrics`; verdicts are the suite's calibrated ones
(:mod:`harness.bench.verdicts`: each run judged against the input's exact covariance with the
rounding level of its own computation path, then the pair per component). Components beyond the
input's numerical rank span a null space, where any orthonormal basis is a valid answer: they
are compared bitwise only, and counted, never judged or measured per PC.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from harness.analysis import downstream, metrics, rounding
from harness.bench import verdicts
from harness.bench.pca import PCAResult
from harness.doctor import inputs
from harness.doctor.model import Effect, Variation
from harness.vocabulary import BEYOND, EXACT, EXPLAINED, UNDETERMINED


def range_components(result: PCAResult, rank: int | None) -> int:
    """How many leading components lie in the input's range (at least 1): the rest are null.

    ``rank`` is the input's numerical rank; when it is unknown, a component whose variance is
    numerically zero next to the first one's (max(shape) * eps, as for the rank) counts as null.
    """
    k = result.n_comps
    if rank is None:
        var = np.abs(np.asarray(result.variance, np.float64))
        tol = max(result.embedding.shape[0], result.loadings.shape[0]) * np.finfo(np.float64).eps
        rank = int(np.count_nonzero(var > tol * var.max(initial=0.0)))
    return max(1, min(k, rank))


def leading(result: PCAResult, k: int) -> PCAResult:
    """The first ``k`` components of ``result``."""
    return PCAResult(
        embedding=result.embedding[:, :k],
        loadings=result.loadings[:, :k],
        variance=result.variance[:k],
        variance_ratio=result.variance_ratio[:k],
    )


def _downstream(a: PCAResult, b: PCAResult, n_neighbors: int) -> tuple[float, float | None]:
    """(kNN Jaccard, Leiden ARI); the ARI is None on a scanpy whose pp.neighbors has no
    ``transformer=`` or tl.leiden no ``flavor=`` (before 1.10), the Jaccard is sklearn's."""
    try:
        d = downstream.compare(a.embedding, b.embedding, calibrated=False, n_neighbors=n_neighbors)
    except (TypeError, AttributeError, ValueError):
        return metrics.knn_jaccard(a.embedding, b.embedding, n_neighbors), None
    return d.knn_jaccard, d.leiden_ari


def bitwise_equal(a: PCAResult, b: PCAResult) -> bool:
    """Whether two runs gave the same bits in every output."""
    return metrics.compare(a, b).bitwise


#: Above this many genes no exact problem is built: its covariance and eigenvalues need
#: 8 * n_vars**2 bytes each and O(n_vars**3) time (the limit of the numerical rank too).
JUDGE_MAX_VARS = inputs.RANK_MAX_VARS


@dataclass(frozen=True)
class Exact:
    """What the calibrated verdicts need from the input: its exact problem (None, with the
    reason, when there is none) and the gene mask (scanpy stores zero loadings outside it)."""

    problem: rounding.Problem | None
    mask: np.ndarray | None = None
    reason: str | None = None


def exact(x, mask: np.ndarray | None, zero_center: bool) -> Exact:
    """The exact problem of the matrix PCA sees: its float64 covariance (second moment when not
    centred) with every eigenvalue."""
    n_vars = x.shape[1] if mask is None else int(np.count_nonzero(mask))
    if n_vars > JUDGE_MAX_VARS:
        return Exact(None, mask, f"{n_vars} genes: the exact covariance is not built above "
                     f"{JUDGE_MAX_VARS}")  # fmt: skip
    x = inputs.masked(x, mask)
    return Exact(rounding.problem_of(x) if zero_center else uncentred_problem(x), mask)


def uncentred_problem(x) -> rounding.Problem:
    """The exact problem of ``zero_center=False``: X^T X / (n_obs - 1), whose eigenvectors are
    truncated SVD's loadings (no mean is subtracted)."""
    x64 = x.astype(np.float64)
    gram, abs_gram = (_dense(m.T @ m) for m in (x64, abs(x64)))
    return rounding.problem_from_gram(gram, np.zeros(x.shape[1]), x.shape[0], abs_gram)


def _dense(m) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def side(solver: str, layout: str, dtype: str, result: PCAResult) -> verdicts.Side:
    """How ``result`` was computed: its solver's rounding path and precision."""
    u = compute_dtype(dtype)
    # With a mask scanpy stores float64 loadings whatever it computed in: take the lower precision.
    stored = min((np.dtype(u), result.loadings.dtype), key=lambda d: d.itemsize)
    return verdicts.side(solver, layout, [u, result.loadings.dtype], np.empty(0, stored))


def judgement(
    ex: Exact, a: PCAResult, b: PCAResult, sides: tuple[verdicts.Side, verdicts.Side]
) -> dict[str, Any]:
    """The suite's calibrated record of ``b`` against ``a`` (both cut to the range components),
    with each component's relative gap in the exact spectrum."""
    assert ex.problem is not None
    if ex.mask is not None:
        a, b = (dataclasses.replace(r, loadings=r.loadings[ex.mask]) for r in (a, b))
    j = verdicts.judge_pair(ex.problem, a, b, *sides)
    record = verdicts.judgement_record(j, sides)
    record["components"]["rel_gap"] = [verdicts.short(g) for g in exact_rel_gaps(ex.problem, a)]
    return record


def exact_rel_gaps(problem: rounding.Problem, result: PCAResult) -> list[float]:
    """Per component: the distance of its exact eigenvalue to the nearest other, over lambda_1."""
    values, lam1 = problem.values, problem.lambda1 or 1.0
    out = []
    for i in range(result.n_comps):
        near = [abs(values[i] - values[j]) for j in (i - 1, i + 1) if 0 <= j < values.size]
        out.append(min(near, default=math.inf) / lam1)
    return out


def effect(
    base: PCAResult,
    other: PCAResult,
    v: Variation,
    *,
    ex: Exact,
    sides: tuple[verdicts.Side, verdicts.Side] | None,
    rank: int | None,
    n_neighbors: int,
    seconds: float | None,
) -> Effect:
    """Compare one run with the baseline (kNN and Leiden only when the bits differ), and judge it
    against the exact problem as the suite does (``sides``: how each run was computed)."""
    k = range_components(base, rank)
    bitwise = bitwise_equal(base, other)
    a, b = (base, other) if k == base.n_comps else (leading(base, k), leading(other, k))
    c = metrics.compare(a, b)
    # The graph users build (scanpy's pp.neighbors connectivities, then tl.leiden), as the suite
    # judges it (issue #10 point 6), with an exact kNN so that only PCA's change shows.
    jaccard, ari = (1.0, 1.0) if bitwise else _downstream(a, b, n_neighbors)
    judged = judgement(ex, a, b, sides) if ex.problem is not None and sides else None
    comparison = c.to_dict()
    return Effect(
        name=v.name,
        factor=v.factor,
        label=v.label,
        bitwise=bitwise,
        knn_jaccard=jaccard,
        leiden_ari=ari,
        max_abs_diff=c.max_abs_diff,
        aligned_max_abs_diff=c.aligned_max_abs_diff,
        aligned_max_rel_diff=c.aligned_max_rel_diff,
        angle_k10_deg=c.angle_k10_deg,
        angle_all_deg=c.angle_all_deg,
        sig_digits_min=metrics.significant_digits([a, b]).minimum,
        verdict=judged["verdict"] if judged else None,
        verdict_counts=judged["counts"] if judged else None,
        not_judged=None if judged else ex.reason or "no exact problem",
        null_components=base.n_comps - k,
        rounding_level=judged["verdict"] in EXACT if judged else None,
        seconds=seconds,
        comparison={**comparison, "knn_jaccard": jaccard, "leiden_ari": ari},
        judgement=judged,
    )


def compute_dtype(dtype: str) -> str:
    """The dtype scikit-learn computes in: float32 stays float32, all else float64."""
    return "float32" if dtype == "float32" else "float64"


def failed(v: Variation, error: str, seconds: float | None) -> Effect:
    """A variation whose PCA raised: no numbers, the error as the reason."""
    return Effect(v.name, v.factor, v.label, seconds=seconds, skipped=f"failed: {error}")


# --- what the comparisons show -----------------------------------------------------------------


def ranked(effects: Sequence[Effect]) -> list[Effect]:
    """Effects ordered by their effect on the kNN graph (1 - Jaccard), then aligned max rel. deviation."""
    ran = [e for e in effects if e.skipped is None]
    return sorted(ran, key=lambda e: (e.knn_effect, e.aligned_max_rel_diff or 0.0), reverse=True)


def worst_per_factor(effects: Sequence[Effect]) -> list[Effect]:
    """The strongest variation of each factor (repeats excluded), strongest factor first."""
    seen: dict[str, Effect] = {}
    for e in ranked(effects):
        if e.factor != "repeat":
            seen.setdefault(e.factor, e)
    return list(seen.values())


def explained_components(effects: Sequence[Effect]) -> list[dict[str, Any]]:
    """PCs judged "explained": in a cluster of near-equal exact eigenvalues, they rotate inside
    its subspace, which agrees within the rounding bound (expected, not a bug)."""
    found: dict[int, dict[str, Any]] = {}
    for e in effects:
        if e.judgement is None or e.comparison is None:
            continue
        comps = e.judgement["components"]
        for i, (verdict, gap, sin) in enumerate(
            zip(comps["verdict"], comps["rel_gap"], comps["sin_theta"], strict=True)
        ):
            if verdict != EXPLAINED:
                continue
            entry = found.setdefault(
                i + 1,
                {"component": i + 1, "rel_gap": gap, "max_sin_theta": 0.0, "max_rel_diff": 0.0,
                 "factors": []},
            )  # fmt: skip
            entry["max_sin_theta"] = max(entry["max_sin_theta"], sin or 0.0)
            rel = e.comparison["component_rel_diff"][i]
            entry["max_rel_diff"] = max(entry["max_rel_diff"], rel or 0.0)
            if e.factor not in entry["factors"]:
                entry["factors"].append(e.factor)
    return [found[k] for k in sorted(found)]


def components_judged(effects: Sequence[Effect], verdict: str) -> dict[str, list[int]]:
    """Per variation, the PCs (1-based) whose calibrated verdict is ``verdict``."""
    out = {}
    for e in effects:
        comps = [
            i + 1
            for i, got in enumerate(e.judgement["components"]["verdict"] if e.judgement else [])
            if got == verdict
        ]
        if comps:
            out[e.name] = comps
    return out


def beyond_rounding_components(effects: Sequence[Effect]) -> dict[str, list[int]]:
    """Per variation, the PCs that moved more than rounding allows (or are not rounding-level
    eigenpairs of the exact covariance): another algorithm, seed or an unconverged solver."""
    return components_judged(effects, BEYOND)


def undetermined_components(effects: Sequence[Effect]) -> dict[str, list[int]]:
    """Per variation, the PCs the spectrum cannot pin down (their gap is at the rounding level)."""
    return components_judged(effects, UNDETERMINED)


def null_components(effects: Sequence[Effect], n_comps: int) -> list[int]:
    """The PCs (1-based) beyond the input's numerical rank, as the comparisons found them."""
    n_null = max((e.null_components for e in effects), default=0)
    return list(range(n_comps - n_null + 1, n_comps + 1))
