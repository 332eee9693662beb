"""One scanpy PCA call, the same way in every environment, and what it returns.

Benchmarks, the stability checks and ``harness doctor`` all go through :func:`run_pca`, so the
call that is timed is the call that is compared.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse

from harness import io
from harness.bench.backends import activate_pca_implementation

Layout = Literal["dense", "csr"]
DType = Literal["float32", "float64"]
Solver = Literal["arpack", "randomized", "full", "covariance_eigh", "auto", "lobpcg"]

LAYOUTS: tuple[Layout, ...] = ("dense", "csr")
DTYPES: tuple[DType, ...] = ("float32", "float64")
SOLVERS: tuple[Solver, ...] = ("arpack", "randomized", "full", "covariance_eigh", "auto", "lobpcg")
N_COMPS = 50
RANDOM_STATE = 123


@dataclass(frozen=True)
class PCAResult:
    """What ``sc.pp.pca`` produced: embedding (X_pca), loadings (PCs, genes x comps), variance."""

    embedding: np.ndarray
    loadings: np.ndarray
    variance: np.ndarray
    variance_ratio: np.ndarray

    @property
    def n_comps(self) -> int:
        return int(self.embedding.shape[1])

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The four outputs by name (``prefix`` + field), as :func:`save_results` stores them."""
        return {f"{prefix}{f}": getattr(self, f) for f in FIELDS}


FIELDS = ("embedding", "loadings", "variance", "variance_ratio")


def save_results(path: str | os.PathLike[str], results: Sequence[PCAResult]) -> None:
    """Store PCA results in one .npz, atomically (fields suffixed _0, _1, ...; no pickles)."""
    arrays = {f"{k}_{i}": v for i, r in enumerate(results) for k, v in r.arrays().items()}
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_results(path: str | os.PathLike[str]) -> list[PCAResult]:
    """The PCA results :func:`save_results` stored, in order."""
    with np.load(path, allow_pickle=False) as z:
        n = sum(1 for k in z.files if k.startswith("embedding_"))
        return [PCAResult(*(z[f"{f}_{i}"] for f in FIELDS)) for i in range(n)]


def as_layout(x: np.ndarray | sparse.spmatrix, layout: Layout, dtype: DType):
    """Return ``x`` in the requested layout and dtype as a new array (C-order dense or CSR)."""
    if layout == "dense":
        dense = x.toarray() if sparse.issparse(x) else np.asarray(x)
        return np.ascontiguousarray(dense, dtype=dtype)
    csr = sparse.csr_matrix(x, dtype=dtype, copy=True)
    csr.sort_indices()
    return csr


def make_anndata(x):
    """A minimal AnnData around ``x`` (no copy), as a user's object would hold it."""
    # Not at the top: the results readers import this module (via metrics) and never run PCA.
    import anndata as ad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.AnnData(X=x)


def run_pca(
    adata,
    *,
    solver: Solver | None = "arpack",
    n_comps: int = N_COMPS,
    random_state: int | None = RANDOM_STATE,
    zero_center: bool = True,
    **kwargs,
) -> PCAResult:
    """Call ``sc.pp.pca`` in place on ``adata`` and collect its outputs.

    Warnings are silenced: scanpy warns on every randomized call and on legacy lobpcg, and the
    benchmarks must not time the warning machinery. Which solver is valid is decided beforehand by
    :func:`harness.bench.support.unsupported_reason`, not by catching scanpy's fallbacks here.
    """
    import scanpy as sc  # seconds to import; see make_anndata

    activate_pca_implementation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.pca(
            adata,
            n_comps=n_comps,
            svd_solver=solver,
            random_state=random_state,
            zero_center=zero_center,
            **kwargs,
        )
    info = adata.uns["pca"]
    return PCAResult(
        embedding=np.asarray(adata.obsm["X_pca"]),
        loadings=np.asarray(adata.varm["PCs"]),
        variance=np.asarray(info["variance"]),
        variance_ratio=np.asarray(info["variance_ratio"]),
    )
