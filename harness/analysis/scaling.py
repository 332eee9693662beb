"""The scaling table of the dask suite (issue #13): time and peak memory against n_obs.

One row per (run, path), a path being one way of computing the PCA: a dask layout with its solver
and scheduler (workers x threads), or the in-memory CSR. Its points are the median runtime and
the peak memory (driver and every worker summed; in memory, the one process) at each dataset
size, and the growth exponents are the slopes of log(time) and log(memory) against log(n_obs),
fitted by least squares over the sizes that have a value (at least two).
"""

from __future__ import annotations

import json
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


# --- the dask suite's runs and stability findings ----------------------------------------------

#: The dask suite's stability benchmarks (benchmarks/dask.py: ``dask.Stability<Check>``).
DASK_STABILITY = "dask.Stability"


def dask_runs(frame: pd.DataFrame) -> dict[tuple[str, str, str], int]:
    """Every run holding dask runtime results, with how many configurations it timed."""
    if "benchmark" not in frame or frame.empty:
        return {}
    rows = frame[(frame["benchmark"] == DASK_TIME) & (frame["status"] == "ok")]
    counts = rows.groupby(list(RUN_KEY), observed=True).size()
    return {tuple(str(k) for k in key): int(n) for key, n in counts.items()}


def only_run(table: ScalingTable, run: tuple[str, str, str]) -> ScalingTable:
    """The table's paths of one run, with the sizes that run measured."""
    paths = [p for p in table.paths if p.run == run]
    return ScalingTable(paths, sorted({p.n_obs for path in paths for p in path.points}))


def dask_stability(records: pd.DataFrame, run: tuple[str, str, str]) -> pd.DataFrame:
    """One row per (check, configuration) of the dask suite's stability records in ``run``:
    check, dataset, layout, svd_solver, scheduler, status, value (the worst sign-aligned
    relative deviation; 0 = identical bits), verdict, moved (the outputs that changed), reason.
    """
    columns = ["check", "dataset", "layout", "svd_solver", "scheduler", "status", "value"]
    columns += ["verdict", "moved", "reason"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    mine = records[
        (records["machine"] == run[0])
        & (records["commit"] == run[1])
        & (records["env_name"] == run[2])
        & records["benchmark"].str.startswith(DASK_STABILITY)
    ]
    scheduler = [json.loads(k).get("scheduler") for k in mine["params_key"]]
    out = mine.assign(scheduler=scheduler)[columns].reset_index(drop=True)
    return out.sort_values(["check", "dataset", "layout", "svd_solver", "scheduler"]).reset_index(
        drop=True
    )


@dataclass(frozen=True)
class CheckFinding:
    """What one dask check found on one scheduler over every configuration it measured."""

    check: str
    scheduler: str
    configurations: int
    bitwise: int
    worst: float | None
    verdicts: dict[str, int]
    skipped: int


def check_findings(stab: pd.DataFrame, checks: Iterable[str]) -> list[CheckFinding]:
    """Per check (in ``checks``' order) and scheduler: configurations measured, how many gave
    identical bits, the worst deviation, the verdicts' counts, the configurations skipped."""
    out = []
    for check in checks:
        mine = stab[stab["check"] == check]
        for scheduler in sorted({str(s) for s in mine["scheduler"]}):
            rows = mine[mine["scheduler"] == scheduler]
            ok = rows[rows["status"] == "ok"]
            values = [float(v) for v in ok["value"] if v is not None and not math.isnan(float(v))]
            out.append(
                CheckFinding(
                    check=check,
                    scheduler=scheduler,
                    configurations=len(values),
                    bitwise=sum(v == 0.0 for v in values),
                    worst=max(values) if values else None,
                    verdicts={str(k): int(n) for k, n in ok["verdict"].value_counts().items()},
                    skipped=int((rows["status"] == "skipped").sum()),
                )
            )
    return out


#: The issue's memory target for a million cells (driver and workers summed; issue #13).
MEMORY_TARGET_BYTES = 4e9


@dataclass(frozen=True)
class ScaleRun:
    """The dask suite's results of one run, as the write-up states them."""

    run: tuple[str, str, str]
    table: ScalingTable
    stability: pd.DataFrame
    findings: list[CheckFinding]
    fingerprint: dict[str, Any]
    inputs: list[dict[str, Any]]
    #: Other runs with dask results, left out (with how many configurations each timed).
    others: dict[tuple[str, str, str], int] = field(default_factory=dict)


def pick_run(runs: Mapping[tuple[str, str, str], int]) -> tuple[str, str, str] | None:
    """The run to write: the one that timed the most dask configurations (ties: the last key)."""
    return max(runs, key=lambda r: (runs[r], r)) if runs else None


def scale_run(
    run: tuple[str, str, str],
    frame: pd.DataFrame,
    records: pd.DataFrame,
    inputs: list[dict[str, Any]],
    fp: dict[str, Any],
    checks: Iterable[str],
    others: Mapping[tuple[str, str, str], int] | None = None,
) -> ScaleRun:
    """Everything the write-up states about the dask results of ``run`` (``others``: the other
    runs with dask results, left out)."""
    n_obs = n_obs_by_dataset(r for r in inputs if r.get("layout") == "zarr")
    stab = dask_stability(records, run)
    return ScaleRun(
        run=run,
        table=only_run(scaling_table(frame, n_obs), run),
        stability=stab,
        findings=check_findings(stab, checks),
        fingerprint=fp,
        inputs=inputs,
        others=dict(others or {}),
    )
