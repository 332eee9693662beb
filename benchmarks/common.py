"""Shared parameter grid and setup for the PCA benchmarks (no benchmarks here)."""

from __future__ import annotations

import os
import sys

from harness.bench.store import cache_dir

# scanpy's pp.neighbors JIT-compiles umap's numba code (about 8 s a process here): numba keeps
# what it may cache on disk, so each check process that builds a kNN graph loads it instead.
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir() / "numba"))

# Imported here so that asv's forkserver pre-imports them once, not once per benchmark process.
import igraph  # noqa: F401
import leidenalg  # noqa: F401
import scanpy  # noqa: F401
import significantdigits  # noqa: F401
import sklearn.decomposition
import sklearn.metrics
import sklearn.neighbors  # noqa: F401
from threadpoolctl import threadpool_limits

from harness.bench import datasets, fingerprint, store, support
from harness.bench.pca import DTYPES, LAYOUTS, N_COMPS, SOLVERS, make_anndata
from harness.vocabulary import usable_cores

ALL_CORES = usable_cores()
PROFILE = datasets.profile()
# The study times one thread only (its 27 environments must fit in 4 hours); the stability
# suite's threads check still runs every thread count in-process.
THREADS = [1] if PROFILE == "study" else sorted({1, ALL_CORES})
DATASETS = datasets.names()


def skip(reason: str, benchmark: str | None = None, params: dict | None = None) -> None:
    """Skip this parameter combination: one line on stderr, a record, asv's NotImplementedError.

    asv keeps no message for a skip (NaN only), so the reason is stored beside the results.
    """
    print(f"skipped: {reason}", file=sys.stderr)
    if benchmark is not None:
        store.write_record(benchmark, params or {}, None, {"status": "skipped", "reason": reason})
    raise NotImplementedError(reason)


def input_matrix(dataset: str, layout: str, dtype: str, solver: str, benchmark: str | None = None):
    """The matrix to run PCA on, or a skip naming the dataset (or solver rule) and the reason."""
    params = {"dataset": dataset, "layout": layout, "dtype": dtype, "svd_solver": solver}
    if reason := support.unsupported_reason(solver, layout):
        skip(reason)  # a version rule, not a fault: no record needed, the rule is recomputable
    try:
        x = datasets.matrix(dataset, layout, dtype)
        datasets.check_matrix(x, dataset, N_COMPS)
    except datasets.DatasetUnavailable as err:
        skip(str(err), benchmark, params)
    return x


def record_environment() -> None:
    """Write the fingerprint and input hashes of this (machine, commit, environment) once."""
    folder = store.current_folder()
    if not (folder / "fingerprint.jsonl").exists():
        row = {**store.current().to_dict(), **fingerprint.collect(probe_neighbors=True)}
        store.write_once(folder / "fingerprint.jsonl", [row])
    if (folder / "inputs.jsonl").exists():
        return
    rows = []
    for name in DATASETS:
        for layout in LAYOUTS:
            for dtype in DTYPES:
                try:
                    rows.append(datasets.describe(name, layout, dtype))
                except datasets.DatasetUnavailable as err:
                    rows.append(
                        {"dataset": name, "layout": layout, "dtype": dtype, "unavailable": str(err)}
                    )
    store.write_once(folder / "inputs.jsonl", rows)


class PCAParams:
    """dataset x layout x dtype x svd_solver x threads, with the PCA input prepared in setup."""

    param_names = ["dataset", "layout", "dtype", "svd_solver", "threads"]
    params = [DATASETS, list(LAYOUTS), list(DTYPES), list(SOLVERS), THREADS]
    timeout = 600

    def setup_cache(self):
        record_environment()

    setup_cache.timeout = 1800  # first use builds the dataset cache (the 10x download)

    def setup(self, dataset, layout, dtype, svd_solver, threads):
        self.x = input_matrix(dataset, layout, dtype, svd_solver, benchmark="pca.PCA")
        self.adata = make_anndata(self.x)
        self.limits = threadpool_limits(limits=threads)

    def teardown(self, *params):
        # asv calls teardown even when setup skipped the combination.
        if limits := getattr(self, "limits", None):
            limits.restore_original_limits()
