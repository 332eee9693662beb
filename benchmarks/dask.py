"""``sc.pp.pca`` on dask arrays at atlas size (issue #13): runtime, peak memory and stability.

The grid (:func:`harness.bench.dask_arrays.grid`) is empty outside the dask profiles (``scale``,
``dask-smoke``), so asv runs nothing here in the others. Only the PCA call and the compute of its
outputs are timed; the lazy input graph, the scheduler and a warm-up call are setup.
"""

from __future__ import annotations

import sys
from typing import Any

from threadpoolctl import threadpool_limits

from harness.bench import datasets, store, support
from harness.bench.pca import RANDOM_STATE, make_anndata, run_pca
from harness.bench.stability import UNIT

from .common import PROFILE, skip

# The study's environments install the harness without dask (asv.conf.json's install_command),
# and only the dask profiles run these benchmarks: there alone are the dask modules imported.
if PROFILE in datasets.DASK_PROFILES:
    from harness.bench import dask_arrays, dask_stability, scale_data
    from harness.bench.dask_stability import DaskConfig

    GRID = dask_arrays.grid(PROFILE)
    PARAMS = [GRID.datasets, list(GRID.layouts), [scale_data.DTYPE], list(GRID.solvers)]
    SCHEDULERS, SHAPES = list(GRID.schedulers), list(GRID.shapes)
    STABILITY_SCHEDULERS = list(dask_stability.STABILITY_SCHEDULERS)
    IN_MEMORY_SOLVERS = ["covariance_eigh", "arpack"]
else:
    GRID = None

#: Samples of each timed configuration; at scale they are also the repeat check's calls.
REPEAT = (1, 3, 60.0)  # a call on a million cells takes minutes: one sample there
LONG = 4 * 3600


def record_environment() -> None:
    """The fingerprint and the stores' hashes (each benchmark adds its scheduler's workers)."""
    dask_arrays.record_environment(GRID)


def _params(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, values, strict=True))


def _fail(benchmark: str, params: dict[str, Any], err: Exception) -> None:
    """One line and a record for a benchmark that failed (a worker died, say); asv records null."""
    print(f"failed: {benchmark} {params}: {err}", file=sys.stderr)
    store.write_record(benchmark, params, None, {"status": "failed", "reason": str(err)})


# asv's check refuses a benchmark without one parameter combination (asv_runner 0.3), so
# outside the dask profiles this module defines no benchmark at all.
if GRID is not None:

    class DaskPCA:
        """dataset x layout x svd_solver x scheduler x workers (workers x threads per worker)."""

        param_names = ["dataset", "layout", "dtype", "svd_solver", "scheduler", "workers"]
        params = [*PARAMS, SCHEDULERS, SHAPES]
        number = 1
        warmup_time = 0  # setup makes a warm-up call on the same scheduler instead
        repeat = REPEAT
        rounds = 1
        min_run_count = 1
        timeout = LONG
        version = "dask-1"

        def setup_cache(self):
            record_environment()

        setup_cache.timeout = LONG  # builds the stores on first use (the 1M one takes minutes)

        def setup(self, dataset, layout, dtype, svd_solver, scheduler, workers):
            self.session = None
            self.params_ = _params(
                self.param_names, (dataset, layout, dtype, svd_solver, scheduler, workers)
            )
            if reason := support.unsupported_reason(svd_solver, layout):
                skip(reason)
            if reason := dask_arrays.shape_reason(scheduler, workers, GRID.shapes):
                skip(reason)
            if reason := dask_arrays.size_reason(dataset, layout, svd_solver):
                skip(reason)
            try:
                self.chunks = dask_arrays.chunk_shape(dataset)
                x = dask_arrays.lazy_matrix(dataset, layout, self.chunks)
                dask_arrays.check_input(x, layout, svd_solver, RANDOM_STATE)
                self.session = dask_arrays.start(scheduler, dask_arrays.Shape.parse(workers))
            except (
                datasets.DatasetUnavailable,
                dask_arrays.BadInput,
                dask_arrays.SchedulerUnavailable,
            ) as err:
                if isinstance(err, dask_arrays.SchedulerUnavailable):
                    dask_arrays.record_scheduler(scheduler, workers, None, str(err))
                skip(str(err), "dask.DaskPCA", self.params_)
            dask_arrays.warm(self.session, layout)
            dask_arrays.record_scheduler(scheduler, workers, self.session)
            self.adata = make_anndata(x)
            self.session.reset_peaks()

        def _call(self, benchmark: str):
            try:
                return dask_arrays.run(
                    self.session, self.adata, self.params_["layout"], self.params_["svd_solver"]
                )
            except dask_arrays.WorkerDied as err:
                _fail(f"dask.DaskPCA.{benchmark}", self.params_, err)
                raise

        def time_pca(self, *params):
            self.result = self._call("time_pca")

        def peakmem_pca(self, *params):
            self._call("peakmem_pca")

        def teardown(self, *params):
            # asv calls teardown even when setup skipped the combination.
            session, result = getattr(self, "session", None), getattr(self, "result", None)
            self.result = None
            if session is None:
                return
            if result is not None:
                self._offer(result, session.peaks())
            session.close()

        def _offer(self, result, peaks: dict[str, Any]) -> None:
            p = self.params_
            dask_stability.keep_peaks(p, peaks)
            if p["scheduler"] in STABILITY_SCHEDULERS:
                config = DaskConfig(**{k: p[k] for k in dask_stability.CONFIG_PARAMS})
                dask_stability.offer_timed(config, p["workers"], self.chunks[0], result)

    class DaskPeakMemory:
        """Peak resident memory of the driver and every worker, summed, over one call (bytes).

        asv's own ``peakmem_`` sees the benchmark process only; with a LocalCluster the work runs in
        the workers. The runtime benchmark's first sample measures it; this reads that measurement,
        or makes the call itself when there is none.
        """

        param_names = DaskPCA.param_names
        params = DaskPCA.params
        unit = "bytes"
        timeout = LONG
        version = "dask-1"

        def setup(self, *values):
            self.setup_done = False
            self.params_ = _params(self.param_names, values)
            self.peaks = dask_stability.peaks(self.params_)
            if self.peaks is None:
                self.bench = DaskPCA()
                self.bench.setup(*values)
                self.setup_done = True

        def track_peakmem_total(self, *values):
            benchmark = "dask.DaskPeakMemory.track_peakmem_total"
            if self.peaks is None:
                self.bench._call("track_peakmem_total")
                self.peaks = self.bench.session.peaks()
            store.write_record(
                benchmark, self.params_, self.peaks["total_bytes"], {"status": "ok", **self.peaks}
            )
            return self.peaks["total_bytes"]

        def teardown(self, *values):
            if getattr(self, "setup_done", False):
                self.bench.teardown()

    class InMemoryPCA:
        """The same stores loaded whole as in-memory CSR, for the scaling table (1 BLAS thread)."""

        param_names = ["dataset", "layout", "dtype", "svd_solver"]
        params = [PARAMS[0], ["csr"], [scale_data.DTYPE], IN_MEMORY_SOLVERS]
        number = 1
        warmup_time = 0
        repeat = REPEAT
        rounds = 1
        min_run_count = 1
        timeout = LONG
        version = "dask-1"

        def setup(self, dataset, layout, dtype, svd_solver):
            if reason := support.unsupported_reason(svd_solver, "csr"):
                skip(reason)
            config = DaskConfig(dataset, "dask-csr", dtype, "covariance_eigh", "threaded")
            size = dask_stability.in_memory_bytes(config)
            if size > dask_stability.IN_MEMORY_LIMIT:
                skip(f"{dataset}: the in-memory CSR would take {size / 1e9:.1f} GB")
            self.adata = make_anndata(scale_data.load_in_memory(dataset))
            self.limits = threadpool_limits(limits=1)

        def time_pca(self, dataset, layout, dtype, svd_solver):
            run_pca(self.adata, solver=svd_solver)

        def peakmem_pca(self, dataset, layout, dtype, svd_solver):
            run_pca(self.adata, solver=svd_solver)

        def teardown(self, *params):
            if limits := getattr(self, "limits", None):
                limits.restore_original_limits()

    class _Check:
        """dataset x layout x svd_solver x scheduler (where the baseline runs)."""

        check: str
        param_names = list(dask_stability.CONFIG_PARAMS)
        params = [*PARAMS, STABILITY_SCHEDULERS]
        unit = UNIT
        timeout = LONG

        def setup_cache(self):
            record_environment()

        setup_cache.timeout = LONG

        def setup(self, *params):
            self.config = DaskConfig(*params)
            try:
                reason = dask_stability.not_applicable(self.check, self.config)
            except datasets.DatasetUnavailable as err:
                skip(str(err), self.benchmark, self.config.params())
            if reason:
                skip(reason)
            # The first check of a configuration computes the runs of all its checks (once per
            # environment, cached), so a run of some parameter combinations computes only theirs.
            dask_stability.setup_all([self.config])

        @property
        def benchmark(self) -> str:
            return f"dask.{type(self).__name__}.track_{self.check}"

        def _track(self):
            return dask_stability.track(self.check, self.config, self.benchmark)

    class StabilityRepeat(_Check):
        check = "repeat"

        def track_repeat(self, *params):
            return self._track()

    class StabilityProcess(_Check):
        check = "process"

        def track_process(self, *params):
            return self._track()

    class StabilityChunks(_Check):
        check = "chunks"

        def track_chunks(self, *params):
            return self._track()

    class StabilityScheduler(_Check):
        check = "scheduler"

        def track_scheduler(self, *params):
            return self._track()

    class StabilityWorkers(_Check):
        check = "workers"

        def track_workers(self, *params):
            return self._track()

    class StabilityMemory(_Check):
        check = "memory"

        def track_memory(self, *params):
            return self._track()
