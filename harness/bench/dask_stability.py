"""Stability of PCA on dask arrays (issue #13): which dask factor moves the output's bits.

One configuration is (dataset, layout, svd_solver, scheduler), the scheduler being where its
baseline runs: ``threaded`` (1 process x 2 threads) or ``local`` (a LocalCluster of 2 workers x
1 thread). The checks compare PCA results of one configuration under two or more runs:

=========  ===================================================================================
repeat     ``REPEATS`` identical calls in one process (the runtime suite's samples when it ran)
process    the same call in two fresh interpreters (each starts its own cluster)
chunks     the dataset's default row-chunk size against its others
scheduler  threaded configurations: the threaded scheduler against a LocalCluster of the same
           shape (1 worker x 2 threads): the engine only
workers    local configurations: 2 workers x 1 thread against 1 worker x 2 threads
memory     the dask call against the same solver on the in-memory matrix (CSR for dask-csr,
           dense for dask-dense) where it fits
=========  ===================================================================================

Every (configuration, run) result is computed once per environment and commit, cached on disk
beside the in-memory suite's (:func:`harness.bench.stability.cache_folder`), and compared with
:mod:`harness.analysis.metrics`; records have the in-memory suite's shape
(:func:`harness.bench.stability.evaluate`), the calibrated verdict included: each sample against
the exact problem of the store, built chunk by chunk (:func:`harness.bench.verdicts.dask_problem`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from harness import io
from harness.analysis import metrics
from harness.bench import dask_arrays, scale_data, stability, store, support, verdicts
from harness.bench.datasets import DatasetUnavailable
from harness.bench.pca import RANDOM_STATE, PCAResult, load_results, make_anndata, run_pca
from harness.bench.pca import save_results as save_pca_results
from harness.vocabulary import DASK_CHECK_INFO, DASK_REPEATS

UNIT = stability.UNIT
REPEATS = DASK_REPEATS
#: Where each scheduler's baseline runs (workers x threads).
BASE_SHAPE = {"threaded": "1x2", "local": "2x1"}
#: The other shape of the workers check, and the LocalCluster shape of the scheduler check.
OTHER_SHAPE = "1x2"
#: The in-memory comparison runs where the in-memory matrix is at most this large (bytes).
IN_MEMORY_LIMIT = 3 * 1024**3
#: kNN and Leiden agreement (exact kNN over every cell) only up to this many cells.
DOWNSTREAM_MAX_CELLS = 20_000
#: Seconds one fresh interpreter may take for every configuration of a run.
FRESH_TIMEOUT_S = 4 * 3600
MEMORY = "memory"

CHECK_INFO = DASK_CHECK_INFO
CHECKS: tuple[str, ...] = tuple(c.name for c in CHECK_INFO)
STABILITY_SCHEDULERS = tuple(BASE_SHAPE)


class Skip(Exception):
    """This check does not apply to this configuration; the message says why."""


class Failed(Exception):
    """A run this check needs failed; the message says which and why."""


@dataclass(frozen=True)
class DaskConfig(stability.Config):
    """One parameter combination of the dask stability suite: the in-memory suite's, and the
    scheduler its baseline runs on."""

    scheduler: str


#: A configuration's parameters, in the benchmarks' order.
CONFIG_PARAMS: tuple[str, ...] = tuple(f.name for f in fields(DaskConfig))


@dataclass(frozen=True)
class Run:
    """How one result was computed: scheduler ('memory': no dask), shape, row chunk, process."""

    scheduler: str
    shape: str
    chunk_rows: int
    process: str = "main"
    index: int = 0

    def tag(self) -> str:
        if self.scheduler == MEMORY:
            return f"{MEMORY}-{self.process}-{self.index}"
        return f"{self.scheduler}-{self.shape}-r{self.chunk_rows}-{self.process}-{self.index}"

    def session_key(self) -> tuple[str, str]:
        return self.scheduler, self.shape


def baseline(config: DaskConfig) -> Run:
    rows = dask_arrays.chunk_shape(config.dataset)[0]
    return Run(config.scheduler, BASE_SHAPE[config.scheduler], rows)


def runs(check: str, config: DaskConfig) -> list[Run]:
    """The runs a check compares, the baseline first."""
    b = baseline(config)
    if check == "repeat":
        return [replace(b, index=i) for i in range(REPEATS)]
    if check == "process":
        return [replace(b, process="fresh-1"), replace(b, process="fresh-2")]
    if check == "chunks":
        others = [r for r in scale_data.spec(config.dataset).chunk_rows if r != b.chunk_rows]
        return [b, *(replace(b, chunk_rows=r) for r in others)]
    if check in ("scheduler", "workers"):
        return [b, Run("local", OTHER_SHAPE, b.chunk_rows)]
    if check == MEMORY:
        return [b, Run(MEMORY, "-", 0)]
    raise ValueError(f"unknown dask check {check!r}")


def in_memory_bytes(config: DaskConfig) -> int:
    """What the in-memory matrix of the memory check takes (CSR or dense float32)."""
    m = scale_data.meta(scale_data.ensure(config.dataset)) or {}
    n_obs, n_vars, nnz = m.get("n_obs", 0), m.get("n_vars", 0), m.get("nnz", 0)
    if config.layout == "dask-dense":
        return 4 * n_obs * n_vars
    return 8 * nnz + 8 * (n_obs + 1)


def not_applicable(check: str, config: DaskConfig) -> str | None:
    """Why ``check`` does not apply to ``config`` (None when it does)."""
    if reason := config.unsupported() or dask_arrays.size_reason(
        config.dataset, config.layout, config.svd_solver
    ):
        return reason
    if check == "scheduler" and config.scheduler != "threaded":
        return "the scheduler check is taken under scheduler='threaded'"
    if check == "workers" and config.scheduler != "local":
        return "the workers check is taken under scheduler='local'"
    if check == "chunks" and len(scale_data.spec(config.dataset).chunk_rows) < 2:
        return f"{config.dataset} has one row-chunk size"
    if check == MEMORY:
        if config.svd_solver != "covariance_eigh":
            return (
                f"svd_solver={config.svd_solver!r} is dask-ml's algorithm on dask and "
                "scikit-learn's in memory: compared only for covariance_eigh"
            )
        size = in_memory_bytes(config)
        if size > IN_MEMORY_LIMIT:
            return (
                f"the in-memory matrix of {config.dataset} would take {size / 1e9:.1f} GB "
                f"(over {IN_MEMORY_LIMIT / 1e9:.1f} GB)"
            )
    return None


# --- computing and caching -------------------------------------------------------------------


def _cache_path(config: DaskConfig, run: Run) -> Path:
    sha = (scale_data.meta(scale_data.ensure(config.dataset)) or {}).get("sha256", "unknown")
    name = f"{sha[:16]}-{config.layout}-{config.dtype}-{config.svd_solver}-{run.tag()}"
    return stability.cache_folder() / "dask" / f"{name}.npz"


def _failure_path(path: Path) -> Path:
    return path.with_suffix(".failed.jsonl")


def keep(config: DaskConfig, run: Run, result: PCAResult) -> None:
    path = _cache_path(config, run)
    if not path.exists():
        save_pca_results(path, [result])


def offer_timed(config: DaskConfig, shape: str, chunk_rows: int, result: PCAResult) -> None:
    """Hand a call the runtime suite just timed to the cache: the next repeat index of its run
    when it matches the configuration's baseline (same scheduler, shape and row chunk)."""
    b = baseline(config)
    if (shape, chunk_rows) != (b.shape, b.chunk_rows):
        return
    for i in range(REPEATS):
        path = _cache_path(config, replace(b, index=i))
        if not path.exists():
            save_pca_results(path, [result])
            return


def _peaks_path(params: dict[str, Any]) -> Path:
    return stability.cache_folder() / "dask" / "peaks" / f"{store.params_key(params)}.jsonl"


def keep_peaks(params: dict[str, Any], peaks: dict[str, Any]) -> None:
    """Keep the peak memory of a timed call (the first of its parameters) for DaskPeakMemory."""
    path = _peaks_path(params)
    if not path.exists():
        io.write_jsonl(path, [peaks])


def peaks(params: dict[str, Any]) -> dict[str, Any] | None:
    """The kept peak memory of a timed call with ``params``, if there is one."""
    path = _peaks_path(params)
    return io.read_jsonl(path)[0] if path.exists() else None


def _compute(session: dask_arrays.Session | None, config: DaskConfig, run: Run) -> PCAResult:
    if run.scheduler == MEMORY:
        x = scale_data.load_in_memory(config.dataset)
        if config.layout == "dask-dense":
            x = np.ascontiguousarray(x.toarray())
        with threadpool_limits(limits=1):
            return run_pca(make_anndata(x), solver=config.svd_solver, random_state=RANDOM_STATE)
    assert session is not None
    chunks = dask_arrays.chunk_shape(config.dataset, run.chunk_rows)
    x = dask_arrays.lazy_matrix(config.dataset, config.layout, chunks)
    return dask_arrays.run(session, make_anndata(x), config.layout, config.svd_solver)


def compute_all(configs: list[DaskConfig], process: str = "main") -> None:
    """Compute every missing run of ``configs`` in this process, one session per scheduler shape.

    A run that fails leaves a failure record with its reason (one line on stderr) instead of a
    result; the rest go on.
    """
    todo: dict[tuple[str, str], list[tuple[DaskConfig, Run]]] = defaultdict(list)
    for config in configs:
        for check in CHECKS:
            try:
                if not_applicable(check, config):
                    continue
                needed = runs(check, config)
            except DatasetUnavailable:
                continue
            for run in needed:
                path = _cache_path(config, run)
                if (
                    run.process == process
                    and not path.exists()
                    and not _failure_path(path).exists()
                ):
                    todo[run.session_key()].append((config, run))
    for (kind, shape), pairs in todo.items():
        _compute_on(kind, shape, list(dict.fromkeys(pairs)))


def _compute_on(kind: str, shape: str, pairs: list[tuple[DaskConfig, Run]]) -> None:
    session = None
    try:
        if kind != MEMORY:
            session = dask_arrays.start(kind, dask_arrays.Shape.parse(shape))
            for layout in {c.layout for c, _ in pairs}:
                dask_arrays.warm(session, layout)
        for config, run in pairs:
            _compute_one(session, config, run)
    except dask_arrays.SchedulerUnavailable as err:
        for config, run in pairs:
            _fail(config, run, str(err))
    finally:
        if session is not None:
            session.close()


def _compute_one(session: dask_arrays.Session | None, config: DaskConfig, run: Run) -> None:
    try:
        result = _compute(session, config, run)
    except (dask_arrays.WorkerDied, dask_arrays.BadInput, DatasetUnavailable) as err:
        _fail(config, run, str(err))
        return
    except Exception as err:  # scanpy, dask or zarr failing on this run: the others go on
        _fail(config, run, f"{type(err).__name__}: {err}")
        return
    keep(config, run, result)


def _fail(config: DaskConfig, run: Run, reason: str) -> None:
    print(f"failed: {config.params()} {run.tag()}: {reason}", file=sys.stderr)
    path = _failure_path(_cache_path(config, run))
    io.write_jsonl(path, [{"params": config.params(), "run": asdict(run), "reason": reason}])


def run_fresh_processes(configs: list[DaskConfig], timeout: float = FRESH_TIMEOUT_S) -> None:
    """Compute the process check's runs in two fresh interpreters, one after the other.

    Each child runs in its own process group, killed whole (its LocalCluster workers included)
    when it outlives ``timeout``.
    """
    for process in ("fresh-1", "fresh-2"):
        payload = {"configs": [c.params() for c in configs], "process": process}
        try:
            stability.run_module_children("harness.bench.dask_stability", [payload], timeout)
        except subprocess.TimeoutExpired:
            for config in configs:
                run = replace(baseline(config), process=process)
                _fail(config, run, f"the fresh interpreter ran past {timeout:.0f} s")
        except subprocess.CalledProcessError:
            pass  # what it did not compute, the check reports as missing


def setup_all(configs: list[DaskConfig]) -> None:
    """Everything the checks compare: the fresh processes, then every run of this process."""
    run_fresh_processes(configs)
    compute_all(configs)


def samples(check: str, config: DaskConfig) -> list[PCAResult]:
    """The results a check compares (baseline first); Failed names a run that failed."""
    out = []
    for run in runs(check, config):
        path = _cache_path(config, run)
        if path.exists():
            out.append(load_results(path)[0])
            continue
        failure = _failure_path(path)
        if failure.exists():
            reasons = [r.get("reason", "") for r in io.read_jsonl(failure)]
            raise Failed(f"{run.tag()}: {'; '.join(reasons)}")
        raise Skip(f"no result for {config.params()} {run.tag()} (setup_cache did not produce it)")
    return out


# --- the checks ------------------------------------------------------------------------------


def sides(check: str, config: DaskConfig, raw: list[PCAResult]) -> list[verdicts.Side]:
    """How each sample of a check was computed (the rounding model it is judged with)."""
    # scanpy's dask paths for dask-csr and covariance_eigh form X^T X chunk by chunk and
    # subtract n mu mu^T, then eigh: "gram". dask-ml's dense solvers subtract the mean from the
    # blocks and factor X - mu by orthogonal transformations (TSQR then the SVD of R for full,
    # svd_compressed's QR of the sketch for randomized), as scikit-learn's dense solvers do:
    # "centred" (support.computation_path). A randomized sketch is not converged: its residuals
    # say so, as they do for scikit-learn's randomized in memory. The memory check's second
    # sample is the same solver on the in-memory CSR or dense matrix.
    layouts = [config.layout] * len(raw)
    if check == MEMORY:
        layouts[1] = "csr" if config.layout == "dask-csr" else "dense"
    return [
        verdicts.side(config.svd_solver, layout, [config.dtype, r.loadings.dtype], r.loadings)
        for layout, r in zip(layouts, raw, strict=True)
    ]


def summarize(check: str, config: DaskConfig, raw: list[PCAResult]) -> dict[str, Any]:
    """The track_ value and record of one check: :func:`harness.bench.stability.summary` (the
    in-memory suite's shared fields), the runs compared, the computation path, and the
    calibrated verdict against the exact problem (:func:`harness.bench.verdicts.calibrated`)."""
    metrics.DISK_CACHE = stability.cache_folder() / "downstream"
    n_cells = raw[0].embedding.shape[0]
    downstream = n_cells <= DOWNSTREAM_MAX_CELLS
    record, results = stability.summary(check, raw)
    problem = verdicts.problem(
        config.dataset, config.layout, config.dtype, stability.cache_folder()
    )
    unavailable = None
    if not downstream:
        unavailable = (
            f"kNN and Leiden over {n_cells:,} cells are out of this suite's budget "
            f"(exact kNN up to {DOWNSTREAM_MAX_CELLS:,} cells)"
        )
    return {
        **record,
        "runs": [r.tag() for r in runs(check, config)],
        "computation_path": support.computation_path(config.svd_solver, config.layout),
        **verdicts.calibrated(problem, results, sides(check, config, raw), unavailable),
    }


def evaluate(check: str, config: DaskConfig) -> dict[str, Any]:
    if reason := not_applicable(check, config):
        raise Skip(reason)
    raw = samples(check, config)
    # The analysis at 1 BLAS thread, as harness.bench.stability.evaluate (a multithreaded
    # OpenBLAS spins under load); the samples are compared here, not computed.
    with threadpool_limits(limits=1):
        return summarize(check, config, raw)


def track(check: str, config: DaskConfig, benchmark: str) -> float:
    """What a dask ``track_`` returns; the record goes to the sidecar store (skips and failures
    too, with their reason)."""
    try:
        record = evaluate(check, config)
    except (Skip, DatasetUnavailable) as err:
        _record(benchmark, config, check, "skipped", str(err))
        raise NotImplementedError(str(err)) from None
    except Failed as err:
        _record(benchmark, config, check, "failed", str(err))
        print(f"failed: {benchmark} {config.params()}: {err}", file=sys.stderr)
        raise
    store.write_record(benchmark, config.params(), record["value"], record)
    return record["value"]


def _record(benchmark: str, config: DaskConfig, check: str, status: str, reason: str) -> None:
    store.write_record(
        benchmark, config.params(), None, {"check": check, "status": status, "reason": reason}
    )


def _child(payload: dict[str, Any]) -> None:
    compute_all([DaskConfig(**p) for p in payload["configs"]], process=payload["process"])


if __name__ == "__main__":
    _child(json.loads(sys.stdin.read()))
