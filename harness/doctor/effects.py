"""Each run of ``harness doctor`` compared with the baseline, and what the comparisons show.

Numbers come from :mod:`harness.analysis.metrics`. Components beyond the input's numerical rank
span a null space, where any orthonormal basis is a valid answer: they are compared bitwise only,
and counted, never measured per PC (their relative deviation divides by a numerical zero).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.analysis import metrics
from harness.bench.pca import PCAResult
from harness.doctor.model import NEAR_DEGENERATE, ROUNDING_SLACK, Effect, Variation


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


def bitwise_equal(a: PCAResult, b: PCAResult) -> bool:
    """Whether two runs gave the same bits in every output."""
    return metrics.compare(a, b).bitwise


def effect(
    base: PCAResult,
    other: PCAResult,
    v: Variation,
    *,
    base_dtype: str,
    rank: int | None,
    n_neighbors: int,
    seconds: float | None,
) -> Effect:
    """Compare one run with the baseline (kNN and Leiden only when the bits differ)."""
    # Loadings come back float64 when a mask is used, whatever the computation ran in: take the
    # unit roundoff from the input dtypes instead.
    u = max(unit_roundoff(base_dtype), unit_roundoff(v.dtype or base_dtype))
    k = range_components(base, rank)
    bitwise = bitwise_equal(base, other)
    a, b = (base, other) if k == base.n_comps else (leading(base, k), leading(other, k))
    c = metrics.compare(a, b, unit_roundoff=u)
    jaccard = 1.0 if bitwise else metrics.knn_jaccard(a.embedding, b.embedding, n_neighbors)
    # metrics builds the Leiden graph from the kNN sets alone: identical sets, identical clusters.
    ari = 1.0 if jaccard == 1.0 else metrics.leiden_ari(a.embedding, b.embedding, n_neighbors)
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
        n_explained=c.n_explained,
        n_unexplained=c.n_unexplained,
        null_components=base.n_comps - k,
        rounding_level=c.norm_e_rel <= ROUNDING_SLACK * math.sqrt(base.loadings.shape[0]) * u,
        seconds=seconds,
        comparison={**c.to_dict(), "knn_jaccard": jaccard, "leiden_ari": ari},
    )


def unit_roundoff(dtype: str) -> float:
    """u = eps/2 of the dtype scikit-learn computes in: float32 stays float32, all else float64."""
    return float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps) / 2


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
    """PCs in near-degenerate subspaces whose deviation under rounding-level changes is explained."""
    found: dict[int, dict[str, Any]] = {}
    for e in effects:
        if not e.rounding_level or e.bitwise or e.comparison is None:
            continue
        c = e.comparison
        for i, (lab, gap, rel) in enumerate(
            zip(c["classification"], c["rel_gap"], c["component_rel_diff"], strict=True)
        ):
            if lab != "explained" or gap is None or gap >= NEAR_DEGENERATE or not rel:
                continue
            entry = found.setdefault(
                i + 1, {"component": i + 1, "rel_gap": gap, "max_rel_diff": 0.0, "factors": []}
            )
            entry["max_rel_diff"] = max(entry["max_rel_diff"], rel)
            if e.factor not in entry["factors"]:
                entry["factors"].append(e.factor)
    return [found[k] for k in sorted(found)]


def unexplained_components(effects: Sequence[Effect]) -> dict[str, list[int]]:
    """Per variation, the PCs that moved more than rounding explains."""
    out = {}
    for e in effects:
        if e.comparison and e.n_unexplained:
            out[e.name] = [
                i + 1
                for i, lab in enumerate(e.comparison["classification"])
                if lab == "unexplained"
            ]
    return out


def null_components(effects: Sequence[Effect], n_comps: int) -> list[int]:
    """The PCs (1-based) beyond the input's numerical rank, as the comparisons found them."""
    n_null = max((e.null_components for e in effects), default=0)
    return list(range(n_comps - n_null + 1, n_comps + 1))
