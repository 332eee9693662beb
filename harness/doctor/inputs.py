"""Input checks for ``harness doctor``: read the file, find the matrix PCA sees, describe it.

Every problem a user can fix raises :class:`~harness.errors.HarnessError` with one line naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

#: The var column scanpy's ``pp.pca`` uses as mask when ``mask_var`` is not given.
HVG = "highly_variable"


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


def read_h5ad(path: str | os.PathLike[str]):
    """Read an .h5ad file, or raise HarnessError saying why it cannot be read."""
    import anndata as ad

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
    from scipy import sparse

    return x.format if sparse.issparse(x) else "dense"


def masked(x, mask: np.ndarray | None):
    """The columns of ``x`` PCA sees, as scanpy slices them (``adata[:, mask].X``)."""
    return x if mask is None else x[:, mask]


def _finite_counts(x) -> tuple[int, int]:
    from scipy import sparse

    values = x.data if sparse.issparse(x) else np.asarray(x)
    if not np.issubdtype(values.dtype, np.floating):
        return 0, 0
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())


def check_values(x, what: str, n_comps: int) -> None:
    """HarnessError for an empty matrix, NaN/inf, or n_comps not in [1, min(shape))."""
    from harness.bench.datasets import DatasetUnavailable, check_matrix

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
    from scipy import sparse

    if sparse.issparse(x):
        mean = np.asarray(x.mean(axis=0, dtype=np.float64)).ravel()
        sq = np.asarray(x.multiply(x).mean(axis=0, dtype=np.float64)).ravel()
        return mean, np.maximum(sq - mean**2, 0.0)
    d = np.asarray(x, dtype=np.float64)
    return d.mean(axis=0), d.var(axis=0)


def _values(x) -> np.ndarray:
    from scipy import sparse

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


def summarize(
    x_full, mask_name: str | None, mask: np.ndarray | None, *, source: str, layer: str | None
) -> InputSummary:
    """Describe the matrix PCA sees (``x_full`` masked); the sha256 is that of the masked matrix."""
    from scipy import sparse

    from harness.bench.datasets import matrix_sha256

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
