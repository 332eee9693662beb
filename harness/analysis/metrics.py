"""How far apart two PCA results are, and whether rounding explains the difference.

Every stability check reduces a pair (or a set) of :class:`~harness.bench.pca.PCAResult` to a
:class:`Comparison`: raw and sign-aligned differences and subspace angles. Whether a difference is
rounding is :mod:`harness.analysis.rounding`'s verdict against the exact covariance (issue #10:
the Davis-Kahan rule that lived here judged with the results' own spectra and is gone).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.linalg import subspace_angles

from harness import io
from harness.bench.pca import PCAResult

N_NEIGHBORS = 15  # the kNN graph of the downstream checks, scanpy's pp.neighbors default
#: Leading components whose subspace angle is reported as ``angle_k10_deg``.
K_LEADING = 10


def _fields_json(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as :func:`_json_value`, read shallowly: ``dataclasses.asdict``
    deep-copies every list first (a third of crossenv's comparison time, #14)."""
    return _json_value({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})


def _json_value(x: Any) -> Any:
    """Plain JSON value: numpy scalars to Python, NaN/inf to None, sequences to lists."""
    if isinstance(x, dict):
        return {k: _json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_json_value(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def sha256_array(a: np.ndarray) -> str:
    """Hex sha256 of an array's C-order bytes, dtype and shape (so float32 and float64 zeros differ)."""
    a = np.asarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).data)  # the buffer itself: tobytes() copied it first
    return h.hexdigest()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _check_shapes(a: PCAResult, b: PCAResult) -> None:
    if a.embedding.shape != b.embedding.shape or a.loadings.shape != b.loadings.shape:
        msg = (
            f"shapes differ: embedding {a.embedding.shape} vs {b.embedding.shape}, "
            f"loadings {a.loadings.shape} vs {b.loadings.shape}"
        )
        raise ValueError(msg)


def align_signs(ref: PCAResult, other: PCAResult) -> tuple[PCAResult, np.ndarray]:
    """Flip components of ``other`` whose loadings point away from ``ref``'s (negative dot product).

    Returns the aligned result and the boolean flip mask; an eigenvector's sign is arbitrary.
    """
    _check_shapes(ref, other)
    dots = np.einsum("ij,ij->j", ref.loadings.astype(np.float64), other.loadings.astype(np.float64))
    flips = dots < 0
    if not flips.any():
        return other, flips
    sign = np.where(flips, -1, 1).astype(other.embedding.dtype)
    aligned = dataclasses.replace(
        other,
        embedding=other.embedding * sign,
        loadings=other.loadings * sign.astype(other.loadings.dtype),
    )
    return aligned, flips


def least_precise(dtypes: Sequence[Any]) -> np.dtype:
    """The floating dtype with the largest machine epsilon among ``dtypes``."""
    return max((np.dtype(d) for d in dtypes), key=lambda d: float(np.finfo(d).eps))


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest element-wise |a - b|, computed in float64 (0.0 for empty arrays)."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(d.max()) if d.size else 0.0


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 -> 0 (nothing moved, nothing to scale); x/0 -> inf.
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.where(num == 0, 0.0, np.inf)
    np.divide(num, den, out=out, where=den != 0)
    return out


def component_rel_diff(ref: PCAResult, aligned: PCAResult) -> np.ndarray:
    """Per component: max |embedding difference| over the reference component's max |value|."""
    ea, eb = ref.embedding.astype(np.float64), aligned.embedding.astype(np.float64)
    if ea.shape[0] == 0:
        return np.zeros(ea.shape[1])
    return _safe_ratio(np.abs(ea - eb).max(axis=0), np.abs(ea).max(axis=0))


def leading_trailing(
    component_rel_diff: Sequence[float] | None, k: int = K_LEADING
) -> tuple[float, float]:
    """Worst per-component deviation among the first ``k`` and the last ``k`` components.

    Trailing components sit on small eigengaps, so they move first; NaN when not recorded.
    """
    rel = np.asarray(
        [math.nan if v is None else v for v in (component_rel_diff or [])], dtype=np.float64
    )
    if rel.size == 0:
        return math.nan, math.nan
    return float(np.nanmax(rel[:k], initial=0.0)), float(np.nanmax(rel[-k:], initial=0.0))


def component_sin_theta(loadings_a: np.ndarray, loadings_b: np.ndarray) -> np.ndarray:
    """Sine of the angle between the two loading vectors of each component (sign-blind)."""
    # sqrt(1 - cos^2) loses everything below sqrt(eps). Kahan's form of the angle between unit
    # vectors, 2 atan2(|u - v|, |u + v|), keeps it to the rounding of the normalisation, as
    # scipy's subspace_angles does, and is one vectorised pass over all components (one
    # subspace_angles call per component took 45 of 68 s of a 100-environment write-up, #14).
    la, lb = np.asarray(loadings_a, np.float64), np.asarray(loadings_b, np.float64)
    na, nb = np.linalg.norm(la, axis=0), np.linalg.norm(lb, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ua, ub = la / na, lb / nb
        ub = ub * np.where(np.einsum("ij,ij->j", ua, ub) < 0, -1.0, 1.0)
        theta = 2 * np.arctan2(np.linalg.norm(ua - ub, axis=0), np.linalg.norm(ua + ub, axis=0))
    out = np.sin(theta)
    out[(na == 0) | (nb == 0)] = 1.0  # a zero vector spans nothing: no angle is small
    out[np.all(la == lb, axis=0)] = 0.0
    return out


def largest_angle_deg(loadings_a: np.ndarray, loadings_b: np.ndarray) -> float:
    """Largest principal angle, in degrees, between the column spans of two loading matrices."""
    la, lb = np.asarray(loadings_a, np.float64), np.asarray(loadings_b, np.float64)
    if la.shape[1] == 0 or np.array_equal(la, lb):
        return 0.0
    return float(np.degrees(subspace_angles(la, lb).max()))


_KNN_CACHE: dict[tuple[str, int], np.ndarray] = {}
#: Where kNN indices and Leiden labels are kept across processes (None: in memory only). The
#: stability suite sets it: asv runs every check in its own process, and each check's baseline
#: embedding is the same, so its kNN graph and clustering are computed once per environment.
DISK_CACHE: Path | None = None


def _disk_cached(kind: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    if DISK_CACHE is None:
        return compute()
    path = DISK_CACHE / f"{kind}-{key}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    value = compute()
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, value)
    return value


def _knn_indices(emb: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Exact euclidean kNN (self excluded); remembered per embedding, as checks share baselines."""
    from sklearn.neighbors import (
        NearestNeighbors,  # heavy (seconds); the results readers import this module
    )

    key = (sha256_array(emb), n_neighbors)
    if key not in _KNN_CACHE:
        nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", metric="euclidean")
        if len(_KNN_CACHE) > 16:
            _KNN_CACHE.clear()
        # kneighbors() without X leaves each cell out of its own neighbour list.
        _KNN_CACHE[key] = _disk_cached(
            f"knn{n_neighbors}",
            key[0],
            lambda: nn.fit(np.asarray(emb, np.float64)).kneighbors(return_distance=False),
        )
    return _KNN_CACHE[key]


def _indicator(idx: np.ndarray) -> sparse.csr_matrix:
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    return sparse.csr_matrix((np.ones(n * k), (rows, idx.ravel())), shape=(n, n))


def _jaccard(ia: np.ndarray, ib: np.ndarray) -> float:
    k = ia.shape[1]
    inter = np.asarray(_indicator(ia).multiply(_indicator(ib)).sum(axis=1)).ravel()
    return float(np.mean(inter / (2 * k - inter)))


def knn_jaccard(emb_a: np.ndarray, emb_b: np.ndarray, n_neighbors: int = N_NEIGHBORS) -> float:
    """Mean over cells of the Jaccard index of their exact euclidean kNN sets (self excluded)."""
    return _jaccard(_knn_indices(emb_a, n_neighbors), _knn_indices(emb_b, n_neighbors))


@dataclass(frozen=True)
class Comparison:
    """Differences between two PCA results, raw, sign-aligned and per component."""

    bitwise: bool
    max_abs_diff: float
    sign_flips: int
    aligned_max_abs_diff: float
    aligned_max_rel_diff: float
    loadings_aligned_max_abs_diff: float
    angle_k10_deg: float
    angle_all_deg: float
    variance_max_rel_diff: float
    component_rel_diff: list[float]
    component_sin_theta: list[float]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (NaN and inf become None)."""
        return _fields_json(self)


def compare(a: PCAResult, b: PCAResult) -> Comparison:
    """Compare ``b`` against the reference ``a`` (what it does downstream, kNN graphs and Leiden
    clusters, is :mod:`harness.analysis.downstream`'s)."""
    bitwise = all(_same_bits(x, y) for x, y in _fields(a, b))
    if bitwise and all(np.isfinite(x).all() for x, _ in _fields(a, b)):
        # What the full comparison gives on identical finite outputs, without its SVDs (a third
        # of a study's cross-environment pairs are bitwise, #14). NaN would not compare 0.
        return _identical(a.n_comps)
    return _full(a, b, bitwise)


def _full(a: PCAResult, b: PCAResult, bitwise: bool) -> Comparison:
    aligned, flips = align_signs(a, b)
    k = a.n_comps
    rel = component_rel_diff(a, aligned)
    var_rel = _safe_ratio(
        np.abs(np.asarray(a.variance, np.float64) - np.asarray(b.variance, np.float64)),
        np.abs(np.asarray(a.variance, np.float64)),
    )
    m = min(K_LEADING, k)
    return Comparison(
        bitwise=bitwise,
        max_abs_diff=max_abs_diff(a.embedding, b.embedding),
        sign_flips=int(flips.sum()),
        aligned_max_abs_diff=max_abs_diff(a.embedding, aligned.embedding),
        aligned_max_rel_diff=float(rel.max(initial=0.0)),
        loadings_aligned_max_abs_diff=max_abs_diff(a.loadings, aligned.loadings),
        angle_k10_deg=largest_angle_deg(a.loadings[:, :m], b.loadings[:, :m]),
        angle_all_deg=largest_angle_deg(a.loadings, b.loadings),
        variance_max_rel_diff=float(var_rel.max(initial=0.0)),
        component_rel_diff=rel.tolist(),
        component_sin_theta=component_sin_theta(a.loadings, b.loadings).tolist(),
    )


def _identical(k: int) -> Comparison:
    """The comparison of two bitwise-equal, finite results with ``k`` components."""
    return Comparison(
        bitwise=True,
        max_abs_diff=0.0,
        sign_flips=0,
        aligned_max_abs_diff=0.0,
        aligned_max_rel_diff=0.0,
        loadings_aligned_max_abs_diff=0.0,
        angle_k10_deg=0.0,
        angle_all_deg=0.0,
        variance_max_rel_diff=0.0,
        component_rel_diff=[0.0] * k,
        component_sin_theta=[0.0] * k,
    )


def _fields(a: PCAResult, b: PCAResult) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(a.embedding, b.embedding), (a.loadings, b.loadings), (a.variance, b.variance)]


def _severity(c: Comparison) -> tuple[float, float, bool]:
    # NaN compares False with everything: rank it as the worst.
    def worst(x: float) -> float:
        return math.inf if math.isnan(x) else x

    return (worst(c.aligned_max_rel_diff), worst(c.max_abs_diff), not c.bitwise)


def compare_many(samples: Sequence[PCAResult]) -> Comparison:
    """Worst comparison of each sample against the first; bitwise only if every pair is."""
    if len(samples) < 2:
        raise ValueError(f"need at least 2 samples, got {len(samples)}")
    comps = [compare(samples[0], s) for s in samples[1:]]
    worst = comps[max(range(len(comps)), key=lambda j: _severity(comps[j]))]
    return dataclasses.replace(worst, bitwise=all(c.bitwise for c in comps))


@dataclass(frozen=True)
class SigDigits:
    """Significant decimal digits of the embedding across repeated runs, per component.

    ``per_component``/``minimum``: the CNH estimate (significantdigits), which subtracts a
    confidence term that depends on the number of samples (about 1.5 digits with 2 samples, 0.7
    with 5), so compare minima only at equal ``n_samples``. ``raw_per_component``/``raw_minimum``:
    -log10 of the median relative error, no confidence term. Both are capped at ``cap``, the
    decimal precision of the least precise compared output (float32: 7.22).
    """

    per_component: list[float]
    minimum: float
    raw_per_component: list[float]
    raw_minimum: float
    n_samples: int
    cap: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (NaN and inf become None)."""
        return _fields_json(self)


def decimal_precision(dtype: np.dtype | type) -> float:
    """Decimal digits a dtype can carry: -log10(eps/2) (float32 ~7.22, float64 ~15.95)."""
    return -math.log10(float(np.finfo(dtype).eps) / 2)


def significant_digits(samples: Sequence[PCAResult], dtype: Any = None) -> SigDigits:
    """Median over cells of the significant decimal digits of each embedding component.

    Samples are sign-aligned to the first and compared with their mean (relative error). The cap
    is the precision of ``dtype`` (default: the least precise embedding among ``samples``): a
    float32 output cast to float64 for the comparison still holds at most ~7.2 digits.
    """
    import significantdigits as sd  # heavy (seconds); the results readers import this module

    if len(samples) < 2:
        raise ValueError(f"need at least 2 samples, got {len(samples)}")
    dtypes = [np.dtype(dtype)] if dtype is not None else [s.embedding.dtype for s in samples]
    cap = min(decimal_precision(d) for d in dtypes)
    # float32 -> float64 is exact and keeps the mean and x / mean - 1 free of float32 rounding.
    embs = np.stack([align_signs(samples[0], s)[0].embedding.astype(np.float64) for s in samples])
    mean = embs.mean(axis=0)
    same = np.all(embs == embs[0], axis=0)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # A zero mean makes the relative error NaN; the library warns, nanmedian skips it.
        warnings.simplefilter("ignore")
        digits = sd.significant_digits(
            embs, reference=mean, basis=10, error="relative", method="CNH"
        )
        raw = -np.log10(np.abs(embs / mean - 1).max(axis=0))
    # With zero spread the library returns its own mantissa-based value, not the cap.
    digits = np.where(same, cap, np.minimum(digits, cap))
    raw = np.where(same, cap, np.minimum(raw, cap))
    per = _median_per_component(digits, cap)
    raw_per = _median_per_component(raw, cap)
    return SigDigits(
        per_component=per.tolist(),
        minimum=float(np.min(per, initial=cap)),
        raw_per_component=raw_per.tolist(),
        raw_minimum=float(np.min(raw_per, initial=cap)),
        n_samples=len(samples),
        cap=cap,
    )


def _median_per_component(digits: np.ndarray, cap: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN components (zero mean everywhere)
        return np.nanmedian(digits, axis=0) if digits.shape[0] else np.full(digits.shape[1], cap)
