"""Input checks for ``harness doctor``: read the file, find the matrix PCA sees, describe it.

Every problem a user can fix raises :class:`~harness.errors.HarnessError` with one line naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
from scipy import sparse

from harness.bench.datasets import DatasetUnavailable, check_matrix, matrix_sha256
from harness.errors import HarnessError

#: The var column scanpy's ``pp.pca`` uses as mask when ``mask_var`` is not given.
HVG = "highly_variable"
#: Up to this many matrix elements the rank comes from an SVD of the matrix itself.
RANK_SVD_MAX_ELEMENTS = 4_000_000
#: Above this many (non-constant) genes the rank is not computed: the gene covariance it needs
#: would take 8 * n_vars**2 bytes (512 MB at 8,000).
RANK_MAX_VARS = 8_000
#: Rows per block when the gene covariance is accumulated (blocks of at most ~32 MB in float64).
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class InputSummary:
    """What the PCA input looks like: shape, storage, content kind, and the sha256 PCA sees."""

    source: str
    layer: str | None
    mask_var: str | None
    n_obs: int
    n_vars: int
    n_vars_total: int
    dtype: str
    layout: str
    density: float
    zero_variance_genes: int
    kind: str
    kind_evidence: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    #: Numerical rank of the matrix PCA decomposes (centred when ``centered``); None: not computed.
    rank: int | None = None
    centered: bool = True


def read_h5ad(path: str | os.PathLike[str]):
    """Read an .h5ad file, or raise HarnessError saying why it cannot be read."""
    p = Path(path)
    if not p.exists():
        raise HarnessError(f"{p}: no such file")
    if not p.is_file():
        raise HarnessError(f"{p}: not a file")
    if p.suffix.lower() != ".h5ad":
        raise HarnessError(f"{p}: not an .h5ad file (expected an AnnData .h5ad)")
    try:
        return ad.read_h5ad(p)
    except Exception as err:  # h5py and anndata raise many types for a file that is not h5ad
        raise HarnessError(f"{p}: cannot be read as .h5ad ({type(err).__name__}: {err})") from None


def source_matrix(adata, layer: str | None, what: str):
    """``adata.X`` or ``adata.layers[layer]`` (HarnessError if absent)."""
    if layer is None:
        if adata.X is None:
            raise HarnessError(f"{what}: X is empty (None); pass --layer")
        return adata.X
    if layer not in adata.layers:
        have = ", ".join(map(repr, adata.layers.keys())) or "none"
        raise HarnessError(f"{what}: layer {layer!r} does not exist (layers: {have})")
    return adata.layers[layer]


def resolve_mask(adata, mask_var: Any, what: str) -> tuple[str | None, np.ndarray | None]:
    """The mask ``sc.pp.pca`` applies: (name, boolean array) or (None, None).

    ``None`` means scanpy's default (``var['highly_variable']`` when present); ``False`` no mask.
    """
    if mask_var is False:
        return None, None
    if mask_var is None:
        if HVG not in adata.var.columns:
            return None, None
        mask_var = HVG
    if isinstance(mask_var, str):
        if mask_var not in adata.var.columns:
            raise HarnessError(f"{what}: mask key {mask_var!r} is not a column of var")
        values = adata.var[mask_var].to_numpy()
        name = mask_var
    else:
        values, name = np.asarray(mask_var), "<array>"
    if values.dtype != bool or values.shape != (adata.n_vars,):
        raise HarnessError(f"{what}: mask {name!r} must be boolean with one value per gene")
    if not values.any():
        raise HarnessError(f"{what}: mask {name!r} selects no genes (the matrix is empty)")
    return name, values


def layout_of(x) -> str:
    """'dense', 'csr', 'csc' or the sparse format name."""
    return x.format if sparse.issparse(x) else "dense"


def masked(x, mask: np.ndarray | None):
    """The columns of ``x`` PCA sees, as scanpy slices them (``adata[:, mask].X``)."""
    return x if mask is None else x[:, mask]


def _finite_counts(x) -> tuple[int, int]:
    values = x.data if sparse.issparse(x) else np.asarray(x)
    if not np.issubdtype(values.dtype, np.floating):
        return 0, 0
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())


def check_values(x, what: str, n_comps: int) -> None:
    """HarnessError for an empty matrix, NaN/inf, or n_comps not in [1, min(shape))."""
    if min(x.shape) == 0:
        raise HarnessError(f"{what}: the matrix is empty ({x.shape[0]} x {x.shape[1]})")
    n_nan, n_inf = _finite_counts(x)
    if n_nan or n_inf:
        raise HarnessError(f"{what}: the matrix holds {n_nan} NaN and {n_inf} inf values")
    if n_comps < 1:
        raise HarnessError(f"{what}: n_comps={n_comps} must be at least 1")
    try:
        check_matrix(x, what, n_comps)
    except DatasetUnavailable as err:
        raise HarnessError(str(err)) from None


def _gene_moments(x) -> tuple[np.ndarray, np.ndarray]:
    if sparse.issparse(x):
        mean = np.asarray(x.mean(axis=0, dtype=np.float64)).ravel()
        sq = np.asarray(x.multiply(x).mean(axis=0, dtype=np.float64)).ravel()
        return mean, np.maximum(sq - mean**2, 0.0)
    d = np.asarray(x, dtype=np.float64)
    return d.mean(axis=0), d.var(axis=0)


def _values(x) -> np.ndarray:
    return x.data if sparse.issparse(x) else np.asarray(x).ravel()


def _row_sums(x) -> np.ndarray:
    return np.asarray(x.sum(axis=1, dtype=np.float64)).ravel()


def data_kind(x) -> tuple[str, str]:
    """A guess at what X holds ('raw counts', 'log-normalized', 'scaled', ...) and the evidence."""
    vals = _values(x)
    vmin, vmax = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
    mean, var = _gene_moments(x)
    if vmin < 0:
        med_mean, med_sd = float(np.median(np.abs(mean))), float(np.median(np.sqrt(var)))
        if med_mean < 0.05 and 0.5 < med_sd < 2:
            return (
                "scaled",
                f"negative values, gene means ~0 (median |mean| {med_mean:.2g}), sd ~1 (median {med_sd:.2g})",
            )
        return "other", f"negative values (min {vmin:.3g}) but genes are not centered"
    if np.array_equal(vals, np.round(vals)):
        return "raw counts", f"non-negative integers up to {vmax:.0f}"
    sums = _row_sums(x)
    if _constant(sums):
        return (
            "normalized",
            f"non-negative, every cell sums to {np.median(sums):.4g} (not log-transformed)",
        )
    if vmax < 30:
        return "log-normalized", f"non-negative, non-integer, max {vmax:.3g}: log scale"
    return "normalized", f"non-negative, non-integer, max {vmax:.3g}"


def _constant(sums: np.ndarray) -> bool:
    m = float(np.median(sums)) if sums.size else 0.0
    return m > 0 and float(np.abs(sums - m).max()) <= 1e-3 * m


def _varying_columns(x, center: bool) -> np.ndarray:
    """Columns that are not exactly zero in the matrix PCA decomposes (constant ones are, once
    centred): dropping them first keeps the rank exact for constant genes and the covariance small.
    """
    hi = x.max(axis=0)
    lo = x.min(axis=0)
    hi, lo = (np.asarray(v.toarray() if sparse.issparse(v) else v).ravel() for v in (hi, lo))
    return hi != lo if center else (hi != 0) | (lo != 0)


def _gene_covariance(x, center: bool) -> np.ndarray:
    """(X - mean)^T (X - mean) in float64 (uncentred without ``center``), accumulated in row blocks."""
    n_obs, n_vars = x.shape
    mean = np.asarray(x.mean(axis=0, dtype=np.float64)).ravel() if center else np.zeros(n_vars)
    cov = np.zeros((n_vars, n_vars))
    step = max(1, _BLOCK_ELEMENTS // max(1, n_vars))
    for start in range(0, n_obs, step):
        block = x[start : start + step]
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        block = block.astype(np.float64) - mean
        cov += block.T @ block
    return cov


def numerical_rank(x, center: bool = True) -> int | None:
    """Numerical rank of the matrix PCA decomposes: ``x`` with centred columns when ``center``.

    None when there are more than RANK_MAX_VARS varying genes (too costly to compute).
    """
    x = x[:, _varying_columns(x, center)]
    n_obs, n_vars = x.shape
    limit = min(n_obs - 1 if center else n_obs, n_vars)
    if n_vars == 0 or limit <= 0:
        return 0
    if n_obs * n_vars <= RANK_SVD_MAX_ELEMENTS:
        d = _dense64(x)
        # numpy's default tolerance: max(shape) * eps * the largest singular value.
        return min(limit, int(np.linalg.matrix_rank(d - d.mean(axis=0) if center else d)))
    if n_vars > RANK_MAX_VARS:
        return None
    eig = np.linalg.eigvalsh(_gene_covariance(x, center))
    # The same standard tolerance, max(shape) * eps * the largest singular value, applied to the
    # covariance we decompose: its singular values are its eigenvalues sigma_i**2, so components
    # with sigma_i <= sqrt(max(shape) * eps) * sigma_1 count as null (forming the covariance
    # squares the condition number, so smaller singular values cannot be told from zero here).
    tol = max(n_obs, n_vars) * np.finfo(np.float64).eps * eig.max(initial=0.0)
    return min(limit, int(np.count_nonzero(eig > tol)))


def _dense64(x) -> np.ndarray:
    return (x.toarray() if sparse.issparse(x) else np.asarray(x)).astype(np.float64)


def summarize(
    x_full,
    mask_name: str | None,
    mask: np.ndarray | None,
    *,
    source: str,
    layer: str | None,
    center: bool = True,
) -> InputSummary:
    """Describe the matrix PCA sees (``x_full`` masked); the sha256 is that of the masked matrix.

    ``center``: whether PCA centres it (``zero_center``), which the numerical rank depends on.
    """
    x = masked(x_full, mask)
    nnz = int(x.nnz) if sparse.issparse(x) else int(np.count_nonzero(x))
    _, var = _gene_moments(x)
    kind, evidence = data_kind(x)
    summary = InputSummary(
        source=source,
        layer=layer,
        mask_var=mask_name,
        n_obs=int(x.shape[0]),
        n_vars=int(x.shape[1]),
        n_vars_total=int(x_full.shape[1]),
        dtype=str(x.dtype),
        layout=layout_of(x),
        density=nnz / max(1, x.shape[0] * x.shape[1]),
        zero_variance_genes=int((var == 0).sum()),
        kind=kind,
        kind_evidence=evidence,
        sha256=matrix_sha256(x),
        rank=numerical_rank(x, center),
        centered=center,
    )
    summary.notes.extend(_notes(summary, x_full))
    return summary


def _notes(s: InputSummary, x_full) -> list[str]:
    notes = []
    if s.kind == "raw counts":
        notes.append("X looks like raw counts: PCA is usually run after normalize_total and log1p")
    if s.zero_variance_genes:
        notes.append(
            f"{s.zero_variance_genes} genes have zero variance (they add nothing to PCA; scale would divide by 0)"
        )
    if s.dtype == "float32":
        notes.append("float32 input: scikit-learn computes in float32 (~7 significant digits)")
    if s.layout == "dense" and not np.asarray(x_full).flags.c_contiguous:
        notes.append(
            "the dense matrix is not C-contiguous: memory order changes BLAS blocking and so the bits"
        )
    return notes
