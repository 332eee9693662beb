"""PCA on dask arrays (issue #13): the layouts, their row chunking, and where the tasks run.

Layouts: ``dask-csr`` (CSR blocks) and ``dask-dense`` (the same blocks densified), read lazily
from a zarr store of :mod:`harness.bench.scale_data`, in row chunks spanning all genes. Building
that graph is setup; the timed call is :func:`harness.bench.pca.run_pca`, whose outputs are
computed there (``np.asarray`` of the dask X_pca), so the call that is timed is the call that is
compared.

Schedulers: dask's ``threaded`` scheduler in this process, a ``local`` ``distributed.LocalCluster``
of worker processes (workers x threads per worker), or an ``external`` scheduler at
``$HARNESS_DASK_SCHEDULER``. Every task runs on one BLAS thread (distributed's workers set
OMP/OPENBLAS/MKL_NUM_THREADS=1; this process is limited with threadpoolctl for the call), so the
parallelism is dask's own and the factors are dask's, not the BLAS's.
"""

from __future__ import annotations

import contextlib
import os
import resource
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from anndata.experimental import read_elem_lazy
from distributed import Client, LocalCluster
from distributed.comm.core import CommClosedError
from distributed.scheduler import KilledWorker
from scipy import sparse
from threadpoolctl import threadpool_limits

from harness import io
from harness.bench import fingerprint, scale_data, store, support
from harness.bench.datasets import DatasetUnavailable
from harness.bench.pca import N_COMPS, RANDOM_STATE, PCAResult, make_anndata, run_pca

SCHEDULERS = ("threaded", "local", "external")
SCHEDULER_ENV = "HARNESS_DASK_SCHEDULER"
CHUNKS_ENV = "HARNESS_DASK_CHUNKS"
MEMORY_LIMIT_ENV = "HARNESS_DASK_MEMORY_LIMIT"
#: Per LocalCluster worker: the nanny restarts a worker at 95% of it (a failed benchmark).
DEFAULT_MEMORY_LIMIT = "6GiB"
CONNECT_TIMEOUT_S = 3
DASK_ML_LIMIT_ENV = "HARNESS_DASK_ML_LIMIT"
DEFAULT_DASK_ML_LIMIT = 1e9
#: The shape of a cluster, workers x threads per worker, as the benchmarks' parameter spells it.
SHAPES = ("1x2", "2x1")


class SchedulerUnavailable(Exception):
    """The scheduler cannot be had here; the message names it (benchmarks skip on it)."""


class WorkerDied(Exception):
    """A worker died or left during the call; the message says which (the benchmark fails)."""


class BadInput(Exception):
    """scanpy refuses this dask input (chunking, random_state); the message says why."""


@dataclass(frozen=True)
class Shape:
    """Workers x threads per worker."""

    workers: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Shape:
        workers, _, threads = text.partition("x")
        if not (workers.isdigit() and threads.isdigit() and int(workers) and int(threads)):
            raise ValueError(f"cluster shape {text!r}: expected WORKERSxTHREADS, e.g. 2x1")
        return cls(int(workers), int(threads))

    def __str__(self) -> str:
        return f"{self.workers}x{self.threads}"


@dataclass(frozen=True)
class Grid:
    """The dask benchmarks' parameters in one profile."""

    datasets: list[str]
    layouts: tuple[str, ...]
    solvers: tuple[str, ...]
    schedulers: tuple[str, ...]
    shapes: tuple[str, ...]


def grid(profile: str) -> Grid | None:
    """The dask grid of ``profile`` (None: the profile runs no dask benchmark)."""
    names = scale_data.names(profile)
    if profile == "scale":
        return Grid(
            names, support.DASK_LAYOUTS, ("covariance_eigh", "randomized"), SCHEDULERS, SHAPES
        )
    if profile == "dask-smoke":
        # The tests' run: CSR chunks on a 2-worker LocalCluster, as small as a real run can be.
        return Grid(names, ("dask-csr",), ("covariance_eigh",), SCHEDULERS, SHAPES)
    return None


# --- inputs ----------------------------------------------------------------------------------


def chunk_shape(dataset: str, rows: int | None = None) -> tuple[int, int]:
    """Rows x genes per chunk: ``rows``, else $HARNESS_DASK_CHUNKS ('ROWS' or 'ROWS,GENES'), else
    the dataset's default; genes default to all of them."""
    ds = scale_data.spec(dataset)
    if rows is not None:
        return rows, ds.n_vars
    text = os.environ.get(CHUNKS_ENV, "").strip()
    if not text:
        return ds.chunk_rows[0], ds.n_vars
    parts = text.split(",")
    if len(parts) > 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise DatasetUnavailable(f"{CHUNKS_ENV}={text!r}: expected ROWS or ROWS,GENES (integers)")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else ds.n_vars


def lazy_matrix(dataset: str, layout: str, chunks: tuple[int, int]) -> da.Array:
    """The dataset's X as a dask array of ``layout`` in ``chunks`` (nothing is read yet)."""
    if layout not in support.DASK_LAYOUTS:
        raise ValueError(f"unknown dask layout {layout!r}")
    path = scale_data.ensure(dataset)
    group = zarr.open_group(path, mode="r")["X"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata marks its lazy reader experimental
        # anndata reads CSR in row chunks only; other chunkings are dask's rechunk of those.
        x = read_elem_lazy(group, chunks=(chunks[0], group.attrs["shape"][1]))
    if layout == "dask-dense":
        x = x.map_blocks(_densify, dtype=x.dtype, meta=np.empty((0, 0), dtype=x.dtype))
    return x if x.chunksize == chunks else x.rechunk(chunks)


def _densify(block: sparse.spmatrix) -> np.ndarray:
    return block.toarray()


def size_reason(dataset: str, layout: str, solver: str) -> str | None:
    """Why this call is not run here: dask-ml's PCA (every dense dask solver but scanpy's
    covariance_eigh) holds the centred dense matrix in memory (dask-ml#985; 2.4 GB peak at
    100,000 x 2,000, a 0.8 GB matrix, here), so it runs up to $HARNESS_DASK_ML_LIMIT bytes of
    dense matrix (default 1e9)."""
    if layout != "dask-dense" or solver == "covariance_eigh":
        return None
    ds = scale_data.spec(dataset)
    size = 4 * ds.n_obs * ds.n_vars
    limit = float(os.environ.get(DASK_ML_LIMIT_ENV) or DEFAULT_DASK_ML_LIMIT)
    if size <= limit:
        return None
    return (
        f"{dataset}: dask-ml's svd_solver={solver!r} would hold a {size / 1e9:.1f} GB dense "
        f"matrix (over {limit / 1e9:.1f} GB, {DASK_ML_LIMIT_ENV}; dask-ml#985)"
    )


def check_input(x: da.Array, layout: str, solver: str, random_state: object) -> None:
    """Raise BadInput when scanpy refuses this input (the rule: support.dask_input_reason)."""
    if reason := support.dask_input_reason(layout, solver, x.chunks, random_state, N_COMPS):
        raise BadInput(reason)


# --- schedulers ------------------------------------------------------------------------------


@dataclass
class Session:
    """Where one run's tasks go: a scheduler with its client (None for the threaded one)."""

    kind: str
    shape: Shape
    client: Client | None = None
    cluster: LocalCluster | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Tasks of dask.compute go here, and this process's BLAS runs one thread."""
        target: Any = self.client if self.client is not None else "threads"
        options: dict[str, Any] = {"scheduler": target}
        if self.client is None:
            options["num_workers"] = self.shape.threads
        with dask.config.set(options), threadpool_limits(limits=1):
            yield

    def workers(self) -> set[str]:
        if self.client is None:
            return set()
        return set(self.client.scheduler_info(n_workers=-1)["workers"])

    def describe(self) -> dict[str, Any]:
        """The fingerprint's entry for this scheduler: workers, threads, each worker's BLAS."""
        if self.client is None:
            with threadpool_limits(limits=1):
                reports = {"driver": fingerprint.process_report()}
        else:
            reports = self.client.run(fingerprint.process_report)
        return fingerprint.dask_scheduler(
            self.kind, self.shape.workers, self.shape.threads, reports, **self.extra
        )

    def reset_peaks(self) -> None:
        """Start the peak-memory count of this process and of every worker afresh."""
        _reset_peak()
        if self.client is not None:
            self.client.run(_reset_peak)

    def peaks(self) -> dict[str, Any]:
        """Peak resident memory since :meth:`reset_peaks` of this process and of each worker.

        ``total_bytes`` sums them. This process holds a LocalCluster's scheduler and nannies
        (they run on its event loop); the workers are the only other processes.
        ``exact`` is False where the peak cannot be reset (then it is the process's lifetime peak).
        """
        workers = self.client.run(_peak_rss) if self.client is not None else {}
        driver = _peak_rss()
        return {
            "driver_bytes": driver,
            "worker_bytes": workers,
            "total_bytes": driver + sum(workers.values()),
            "exact": _can_reset(),
        }

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def start(kind: str, shape: Shape) -> Session:
    """Start (or connect to) a scheduler; SchedulerUnavailable names an unreachable address."""
    if kind == "threaded":
        return Session(kind, shape)
    if kind == "local":
        return _local(shape)
    if kind == "external":
        return _external(shape)
    raise ValueError(f"unknown dask scheduler {kind!r}")


def memory_limit() -> str:
    return os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT


@contextlib.contextmanager
def _environ_kept() -> Iterator[None]:
    """Give this process its own environment back after starting workers.

    distributed's nanny writes its workers' variables into the parent's ``os.environ`` before it
    spawns them (``WorkerProcess.start``: OMP/MKL/OPENBLAS_NUM_THREADS=1, PYTHONHASHSEED,
    MALLOC_TRIM_THRESHOLD_). Left there, the benchmark process reads another environment after
    its first LocalCluster: the result cache, keyed by the steering variables, split in two
    (threaded runs under one key, LocalCluster runs under another, so a check found none of
    its baseline's results), and every later child or fingerprint inherited them.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _local(shape: Shape) -> Session:
    # A worker that dies fails the call at once (KilledWorker) instead of being retried on the
    # others: a benchmark must not time a recovery.
    with _environ_kept(), dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=shape.workers,
            threads_per_worker=shape.threads,
            processes=True,
            memory_limit=memory_limit(),
            dashboard_address=None,
        )
    client = Client(cluster, set_as_default=False)
    extra = {"memory_limit": memory_limit(), "address": cluster.scheduler_address}
    return Session("local", shape, client, cluster, extra)


def external_address() -> str | None:
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def _external(shape: Shape) -> Session:
    address = external_address()
    if address is None:
        raise SchedulerUnavailable(f"no external dask scheduler: {SCHEDULER_ENV} is not set")
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise SchedulerUnavailable(
            f"dask scheduler {address} unreachable ({type(err).__name__}: {err})"
        ) from None
    info = client.scheduler_info(n_workers=-1)["workers"]
    threads = sorted({w.get("nthreads") for w in info.values()})
    actual = Shape(len(info), threads[0] if len(threads) == 1 else 0)
    extra = {"address": address, "threads_per_worker_all": threads}
    return Session("external", actual, client, None, extra)


def shape_reason(kind: str, shape: str, shapes: tuple[str, ...]) -> str | None:
    """Why ``kind`` does not run in ``shape`` (None when it does)."""
    if kind == "threaded" and Shape.parse(shape).workers != 1:
        return f"the threaded scheduler runs in one process: no {shape} shape"
    if kind == "external" and shape != shapes[0]:
        return f"an external cluster has its own shape (in the fingerprint): run under {shapes[0]} only"
    return None


def sessions(grid: Grid) -> list[tuple[str, str]]:
    """Every (scheduler, shape) the grid runs."""
    return [
        (kind, shape)
        for kind in grid.schedulers
        for shape in grid.shapes
        if not shape_reason(kind, shape, grid.shapes)
    ]


def record_environment(grid: Grid) -> None:
    """This run's fingerprint (if no benchmark wrote it yet) and the stores' hashes in inputs.

    The in-memory suite may have written both files first (its record_environment): the dask
    entries are merged in, under a lock, and never rewritten.
    """
    folder = store.current_folder()
    with _locked_run_folder(folder):
        path = folder / "fingerprint.jsonl"
        if not path.exists():
            io.write_jsonl(path, [{**store.current().to_dict(), **fingerprint.collect()}])
        inputs = folder / "inputs.jsonl"
        have = io.read_jsonl(inputs) if inputs.exists() else []
        known = {(r.get("dataset"), r.get("layout")) for r in have}
        new = [scale_data.describe(n) for n in grid.datasets if (n, "zarr") not in known]
        if new:
            io.write_jsonl(inputs, have + new)


def record_scheduler(kind: str, shape: str, session: Session | None, reason: str = "") -> None:
    """Add one scheduler to the fingerprint's ``dask`` entry, once per (scheduler, shape): the
    session's description (workers, threads, each worker's BLAS), or why it could not be had."""
    folder = store.current_folder()
    with _locked_run_folder(folder):
        path = folder / "fingerprint.jsonl"
        rows = io.read_jsonl(path) if path.exists() else []
        if not rows:
            rows = [{**store.current().to_dict(), **fingerprint.collect()}]
        section = rows[0].setdefault(
            "dask", {"schedulers": [], "memory_limit_per_worker": memory_limit()}
        )
        if any(
            (s.get("scheduler"), s.get("shape")) == (kind, shape) for s in section["schedulers"]
        ):
            return
        if session is not None:
            entry = {**session.describe(), "shape": shape}
        else:
            entry = {
                "scheduler": kind,
                "shape": shape,
                "address": external_address(),
                "unavailable": reason,
            }
        section["schedulers"].append(entry)
        io.write_jsonl(path, rows)


def _locked_run_folder(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    return scale_data.locked(folder / ".dask.lock")


# --- the call --------------------------------------------------------------------------------


def run(
    session: Session, adata, layout: str, solver: str, random_state: object = RANDOM_STATE
) -> PCAResult:
    """``run_pca`` on the session's scheduler; BadInput and WorkerDied say what went wrong."""
    check_input(adata.X, layout, solver, random_state)
    before = session.workers()
    try:
        with session.active():
            result = run_pca(adata, solver=solver, random_state=random_state)
    except (KilledWorker, CommClosedError) as err:
        first = str(err).split(". ")[0]  # distributed appends a paragraph of advice
        raise WorkerDied(
            f"a dask worker died during the PCA ({type(err).__name__}: {first})"
        ) from None
    if gone := before - session.workers():
        raise WorkerDied(f"dask worker(s) {', '.join(sorted(gone))} left during the PCA")
    return result


def warm(session: Session, layout: str) -> None:
    """One small PCA on the session first, so imports and JIT compilation are not timed."""
    x = sparse.random(600, 80, density=0.2, format="csr", dtype=np.float32, random_state=0)
    lazy = da.from_array(x, chunks=(300, 80), asarray=False)
    if layout == "dask-dense":
        lazy = lazy.map_blocks(_densify, dtype=x.dtype, meta=np.empty((0, 0), dtype=x.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = make_anndata(lazy)
    with session.active():
        run_pca(adata, solver="covariance_eigh", n_comps=10)


# --- peak memory (Linux: VmHWM, reset through /proc/self/clear_refs) -----------------------------


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _can_reset() -> bool:
    return os.access("/proc/self/clear_refs", os.W_OK)


def _peak_rss() -> int:
    """Peak resident bytes of this process (since the last reset where Linux allows one)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
