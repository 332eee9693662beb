"""The calibrated verdict of a stability check, computed where the results are (issue #10).

A check compares samples of one configuration. Each sample is judged against the exact problem
(the float64 covariance of the input, all its eigenvalues: :mod:`harness.analysis.rounding`) with
the rounding level of its own computation path and precision, then the pair is classified per
component. The record says which output moved (embedding, loadings, variance) and by how much,
and what the move does downstream, beside Leiden's own sensitivity on the same graph.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.analysis import downstream, rounding
from harness.analysis.metrics import align_signs
from harness.analysis.rounding import VERDICTS
from harness.bench import datasets, support
from harness.bench.pca import PCAResult

#: The rounding of the input's own float64 covariance, on the reading side too.
Problem = rounding.Problem


@dataclass(frozen=True)
class Side:
    """How one sample was computed: the solver's rounding model and the precisions involved."""

    path: str  # 'gram' or 'centred' (support.computation_path)
    u: float  # unit roundoff of the computation
    u_out: float  # unit roundoff of the stored loadings

    def rho(self, problem: Problem) -> float:
        return rounding.rounding_level(problem, self.path, self.u, self.u_out)


def side(solver: str, layout: str, dtypes: list[Any], loadings: np.ndarray) -> Side:
    """The side of a result of ``solver`` on ``layout``; ``dtypes`` bound the computation's
    precision (the input's and the result's: a float32 solve compared in float64 is float32)."""
    u = max(float(np.finfo(np.dtype(d)).eps) for d in dtypes) / 2
    return Side(
        support.computation_path(solver, layout), u, float(np.finfo(loadings.dtype).eps) / 2
    )


def problem(dataset: str, layout: str, dtype: str, folder: os.PathLike[str]) -> Problem:
    """The exact problem of a dataset's input, kept on disk: every check of the input shares it.

    Layouts and dtypes of one dataset hold the same values (float64 is float32 upcast), so the
    problem is computed once per dataset from its float64 CSR or dense matrix; a dask layout's
    from its zarr store, chunk by chunk (:func:`dask_problem`).
    """
    if layout in support.DASK_LAYOUTS:
        return dask_problem(dataset, folder)
    sha = datasets.describe(dataset, layout, "float64")["sha256"]
    return _kept(
        folder, sha, lambda: rounding.problem_of(datasets.matrix(dataset, layout, "float64"))
    )


def dask_problem(dataset: str, folder: os.PathLike[str]) -> Problem:
    """The exact problem of a scale dataset, never holding its matrix: the float64 Gram and
    column sums accumulated over the dask array's row chunks (one n_vars x n_vars matrix)."""
    # Imported here: the study's environments have no dask (benchmarks/dask.py).
    from harness.bench import dask_arrays, scale_data

    sha = (scale_data.meta(scale_data.ensure(dataset)) or {}).get("sha256")
    if not sha:
        raise datasets.DatasetUnavailable(f"{dataset}: its store records no sha256")

    def make() -> Problem:
        rows = scale_data.spec(dataset).chunk_rows[0]
        x = dask_arrays.lazy_matrix(dataset, "dask-csr", dask_arrays.chunk_shape(dataset, rows))
        blocks = (x.blocks[i].compute(scheduler="synchronous") for i in range(x.numblocks[0]))
        return rounding.problem_of_blocks(blocks)

    return _kept(folder, sha, make)


def _kept(folder: os.PathLike[str], sha: str, make: Callable[[], Problem]) -> Problem:
    """The problem of the input with this sha256, from ``folder`` or made and written there."""
    path = os.path.join(folder, f"problem-{sha[:16]}.npz")
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as z:
            return Problem(
                cov=z["cov"],
                values=z["values"],
                gram_scale=float(z["gram_scale"]),
                n_obs=int(z["n_obs"]),
            )
    p = make()
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.savez(fh, cov=p.cov, values=p.values, gram_scale=p.gram_scale, n_obs=p.n_obs)
    os.replace(tmp, path)
    return p


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |a| (0 when equal; inf when a is all zero and b is not)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = float(np.abs(a64 - b64).max(initial=0.0))
    scale = float(np.abs(a64).max(initial=0.0))
    if diff == 0:
        return 0.0
    return diff / scale if scale > 0 else math.inf


def outputs(a: PCAResult, b: PCAResult) -> dict[str, dict[str, Any]]:
    """Per output: identical bits, and the largest relative change once signs are aligned."""
    aligned, _ = align_signs(a, b)
    out = {}
    for name in ("embedding", "loadings", "variance"):
        x, y = getattr(a, name), getattr(b, name)
        same = x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        out[name] = {
            "bitwise": same,
            "max_rel_diff": 0.0 if same else _rel(x, getattr(aligned, name)),
        }
    return out


def moved(outs: dict[str, dict[str, Any]]) -> list[str]:
    """The outputs whose values differ once signs are aligned (a sign flip alone moves nothing)."""
    return [name for name, o in outs.items() if o["max_rel_diff"] > 0]


def judge_pair(
    problem_: Problem, a: PCAResult, b: PCAResult, side_a: Side, side_b: Side
) -> rounding.Judgement:
    """Per-component verdicts of ``b`` against ``a`` on the exact problem."""
    return rounding.judge(
        problem_,
        (a.loadings, a.embedding),
        (b.loadings, b.embedding),
        side_a.rho(problem_),
        side_b.rho(problem_),
    )


def judgement_record(j: rounding.Judgement, sides: tuple[Side, Side]) -> dict[str, Any]:
    """A judgement as the record keeps it: the verdict, its counts, the numbers per component."""
    return {
        "verdict": j.worst,
        "counts": j.counts(),
        "paths": [s.path for s in sides],
        "rho": [j.rho_a, j.rho_b],
        "components": {
            "verdict": j.verdicts,
            "sin_theta": [short(x) for x in j.sin_theta],
            "bound": [short(x) for x in j.bound],
            "residual_a": [short(x) for x in j.residual_a],
            "residual_b": [short(x) for x in j.residual_b],
        },
    }


def calibrated(
    problem_: Problem,
    results: list[PCAResult],
    sides: list[Side],
    downstream_unavailable: str | None = None,
) -> dict[str, Any]:
    """The calibrated fields of a check's record: every sample judged against the first, and
    the worst pair's judgement, the outputs it moved and what that does downstream (kNN and
    Leiden, or ``{"unavailable": downstream_unavailable}`` where they are not computed)."""
    judged = [
        judge_pair(problem_, results[0], results[i], sides[0], sides[i])
        for i in range(1, len(results))
    ]
    i = max(
        range(len(judged)),
        key=lambda j: (VERDICTS.index(judged[j].worst), max(judged[j].sin_theta, default=0.0)),
    )
    a, b = results[0], results[i + 1]
    outs = outputs(a, b)
    return {
        "judgement": judgement_record(judged[i], (sides[0], sides[i + 1])),
        "outputs": outs,
        "moved": moved(outs),
        "downstream": downstream_record(a.embedding, b.embedding)
        if downstream_unavailable is None
        else {"unavailable": downstream_unavailable},
    }


def short(x: float) -> float | None:
    """4 significant digits (per-component numbers in records; the verdicts use full precision)."""
    if not math.isfinite(x):
        return None
    return float(f"{x:.4g}")


def downstream_record(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """kNN Jaccard and Leiden ARI of two embeddings; Leiden's own sensitivity on the same graph
    beside the ARI whenever it is below 1 (an ARI of 1 needs no calibration)."""
    if a.dtype == b.dtype and a.tobytes() == b.tobytes():
        return {"knn_jaccard": 1.0, "leiden_ari": 1.0, "identical": True}
    try:
        d = downstream.compare(a, b, calibrated=False)
        if d.leiden_ari < 1:
            d = downstream.compare(a, b, calibrated=True)
    except (TypeError, AttributeError, ValueError) as err:
        # scanpy < 1.10 has no transformer= in pp.neighbors nor flavor= in tl.leiden.
        return {"unavailable": f"{type(err).__name__}: {err}"}
    return {
        "knn_jaccard": d.knn_jaccard,
        "leiden_ari": d.leiden_ari,
        "n_cells": d.n_cells,
        "n_edges": d.n_edges,
        "ari_other_seed": d.calibration.other_seed,
        "ari_one_edge": d.calibration.one_edge,
    }
