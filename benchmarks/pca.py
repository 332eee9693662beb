"""Runtime and peak memory of ``sc.pp.pca`` over data, layout, dtype, solver and BLAS threads."""

from __future__ import annotations

from harness.pca import run_pca

from .common import QUICK, PCAParams


class PCA(PCAParams):
    """Only the PCA call is timed; the matrix, its AnnData and the thread limit come from setup."""

    # number=1 with a setup re-runs setup (a fresh AnnData) before every sample. A short warmup
    # absorbs first-call costs (lazy imports, page faults on the input).
    number = 1
    warmup_time = 0.2
    repeat = (5, 10, 4.0) if QUICK else (10, 30, 20.0)
    rounds = 1 if QUICK else 2
    min_run_count = 2
    version = "pca-1"

    def time_pca(self, dataset, layout, dtype, svd_solver, threads):
        run_pca(self.adata, solver=svd_solver)

    def peakmem_pca(self, dataset, layout, dtype, svd_solver, threads):
        run_pca(self.adata, solver=svd_solver)
