"""The scaling table of the dask suite (issue #13): time and peak memory against n_obs.

One row per (run, path), a path being one way of computing the PCA: a dask layout with its solver
and scheduler (workers x threads), or the in-memory CSR. Its points are the median runtime and
the peak memory (driver and every worker summed; in memory, the one process) at each dataset
size, and the growth exponents are the slopes of log(time) and log(memory) against log(n_obs),
fitted by least squares over the sizes that have a value (at least two).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.vocabulary import RUN_KEY

DASK_TIME = "dask.DaskPCA.time_pca"
DASK_MEMORY = "dask.DaskPeakMemory.track_peakmem_total"
IN_MEMORY_TIME = "dask.InMemoryPCA.time_pca"
IN_MEMORY_MEMORY = "dask.InMemoryPCA.peakmem_pca"
IN_MEMORY = "in-memory csr"


@dataclass(frozen=True)
class Point:
    """One dataset size of a path: median seconds and peak bytes (None where not measured)."""

    n_obs: int
    dataset: str
    seconds: float | None
    peak_bytes: float | None


@dataclass(frozen=True)
class Path:
    """One way of computing the PCA in one run, with its points by n_obs and fitted exponents."""

    run: tuple[str, str, str]
    layout: str
    svd_solver: str
    scheduler: str
    workers: str
    points: list[Point]
    time_exponent: float | None
    memory_exponent: float | None

    @property
    def label(self) -> str:
        if self.layout == IN_MEMORY:
            return f"{IN_MEMORY} · {self.svd_solver}"
        return f"{self.layout} · {self.svd_solver} · {self.scheduler} {self.workers}"


@dataclass(frozen=True)
class ScalingTable:
    """Every path of every run, and the sizes (n_obs) that appear in any of them."""

    paths: list[Path]
    sizes: list[int] = field(default_factory=list)


def growth_exponent(n_obs: Iterable[float], values: Iterable[float | None]) -> float | None:
    """Least-squares slope of log(value) against log(n_obs) (None with fewer than two points)."""
    pts = [
        (math.log(n), math.log(v))
        for n, v in zip(n_obs, values, strict=True)
        if v is not None and not math.isnan(v) and v > 0 and n > 0
    ]
    if len({x for x, _ in pts}) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def n_obs_by_dataset(inputs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """n_obs of each dataset from the lines of inputs.jsonl (harness.results.sidecars.read_inputs)."""
    return {str(r["dataset"]): int(r["shape"][0]) for r in inputs if r.get("shape")}


def _values(frame: pd.DataFrame, benchmark: str, keys: list[str]) -> dict[tuple, float]:
    rows = frame[(frame["benchmark"] == benchmark) & (frame["status"] == "ok")]
    return {
        tuple(str(v) for v in key): float(value)
        for key, value in zip(rows[keys].itertuples(index=False), rows["value"], strict=True)
    }


def scaling_table(frame: pd.DataFrame, n_obs: Mapping[str, int]) -> ScalingTable:
    """The scaling table of a results frame (:func:`harness.load_results`).

    ``n_obs`` maps each dataset to its number of cells (:func:`n_obs_by_dataset`); datasets it
    does not name are left out. Runs are told apart by machine, commit and environment.
    """
    run = list(RUN_KEY)
    if "benchmark" not in frame or frame.empty:
        return ScalingTable([])
    dask_keys = [*run, "layout", "svd_solver", "scheduler", "workers", "dataset"]
    memory_keys = [*run, "svd_solver", "dataset"]
    by_path: dict[tuple, list[Point]] = {}
    if {"layout", "scheduler", "workers"} <= set(frame.columns):
        times = _values(frame, DASK_TIME, dask_keys)
        peaks = _values(frame, DASK_MEMORY, dask_keys)
        for key in sorted(set(times) | set(peaks)):
            *path, dataset = key
            if dataset in n_obs:
                point = Point(n_obs[dataset], dataset, times.get(key), peaks.get(key))
                by_path.setdefault(tuple(path), []).append(point)
    if {"svd_solver", "dataset"} <= set(frame.columns):
        times = _values(frame, IN_MEMORY_TIME, memory_keys)
        peaks = _values(frame, IN_MEMORY_MEMORY, memory_keys)
        for key in sorted(set(times) | set(peaks)):
            *head, solver, dataset = key
            if dataset in n_obs:
                point = Point(n_obs[dataset], dataset, times.get(key), peaks.get(key))
                by_path.setdefault((*head, IN_MEMORY, solver, "-", "-"), []).append(point)
    paths = []
    for key, points in sorted(by_path.items()):
        points = sorted(points, key=lambda p: p.n_obs)
        sizes = [p.n_obs for p in points]
        paths.append(
            Path(
                run=tuple(key[:3]),
                layout=key[3],
                svd_solver=key[4],
                scheduler=key[5],
                workers=key[6],
                points=points,
                time_exponent=growth_exponent(sizes, [p.seconds for p in points]),
                memory_exponent=growth_exponent(sizes, [p.peak_bytes for p in points]),
            )
        )
    sizes = sorted({p.n_obs for path in paths for p in path.points})
    return ScalingTable(paths, sizes)
