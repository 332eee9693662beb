"""Properties of harness.analysis.metrics on PCA results built from exact linear algebra."""

from __future__ import annotations

import dataclasses
import json
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ortho_group

from harness.analysis import metrics
from harness.bench.pca import PCAResult

DTYPES = [np.float32, np.float64]


def angle_tol_deg(dtype) -> float:
    """Rounding-level principal angle: 100 eps in radians (< 1e-6 degrees for float64)."""
    return float(np.degrees(100 * np.finfo(dtype).eps))


def centered_data(spectrum: np.ndarray, n_obs: int, n_vars: int, seed: int) -> np.ndarray:
    """Centered data whose covariance is exactly V diag(spectrum) V^T for a random orthogonal V."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n_obs, n_vars))
    q, _ = np.linalg.qr(g - g.mean(axis=0))  # orthonormal, centered columns
    v = ortho_group.rvs(n_vars, random_state=seed)
    s = np.sqrt((n_obs - 1) * np.asarray(spectrum, np.float64))
    return (q * s) @ v.T


def pca_of(x: np.ndarray, k: int, loadings: np.ndarray | None = None, dtype=np.float64):
    """PCAResult from the eigendecomposition of x's covariance (or the given loadings)."""
    lam, vecs = np.linalg.eigh(x.T @ x / (x.shape[0] - 1))
    lam, vecs = lam[::-1], vecs[:, ::-1]
    load = vecs[:, :k] if loadings is None else loadings
    return PCAResult(
        embedding=(x @ load).astype(dtype),
        loadings=load.astype(dtype),
        variance=lam[:k].astype(dtype),
        variance_ratio=(lam[:k] / lam.sum()).astype(dtype),
    )


def flip(r: PCAResult, cols) -> PCAResult:
    s = np.ones(r.n_comps, dtype=r.loadings.dtype)
    s[list(cols)] = -1
    return dataclasses.replace(r, embedding=r.embedding * s, loadings=r.loadings * s)


def rotate(r: PCAResult, q: np.ndarray) -> PCAResult:
    q = q.astype(r.loadings.dtype)
    return dataclasses.replace(r, embedding=r.embedding @ q, loadings=r.loadings @ q)


SEPARATED = 10.0 * 0.7 ** np.arange(30)


@cache
def separated(dtype=np.float64, k: int = 8):
    x = centered_data(SEPARATED, 200, 30, seed=1)
    return x, pca_of(x, k, dtype=dtype)


@cache
def wide(dtype) -> PCAResult:
    x = centered_data(np.linspace(20.0, 1.0, 60), 200, 60, seed=2)
    return pca_of(x, 50, dtype=dtype)


# -- hashing, alignment --------------------------------------------------------------------------


def test_sha256_array_sees_dtype_shape_and_layout():
    z32, z64 = np.zeros(4, np.float32), np.zeros(4, np.float64)
    assert metrics.sha256_array(z32) != metrics.sha256_array(z64)
    assert metrics.sha256_array(np.zeros((2, 2))) != metrics.sha256_array(np.zeros(4))
    a = np.arange(12.0).reshape(3, 4)
    assert metrics.sha256_array(a.T) == metrics.sha256_array(np.ascontiguousarray(a.T))
    assert metrics.sha256_array(a) == metrics.sha256_array(a.copy())


@pytest.mark.parametrize("dtype", DTYPES)
def test_sign_flip_is_not_bitwise_but_aligns_exactly(dtype):
    _, a = separated(dtype)
    b = flip(a, [0, 3, 5])
    c = metrics.compare(a, b)
    assert not c.bitwise
    assert c.sign_flips == 3
    assert c.max_abs_diff > 0
    assert c.aligned_max_abs_diff == 0
    assert c.loadings_aligned_max_abs_diff == 0
    assert c.angle_all_deg < angle_tol_deg(dtype)
    aligned, mask = metrics.align_signs(a, b)
    assert mask.tolist() == [i in (0, 3, 5) for i in range(a.n_comps)]
    assert metrics.sha256_array(aligned.embedding) == metrics.sha256_array(a.embedding)


@pytest.mark.parametrize("dtype", DTYPES)
def test_identical_inputs(dtype):
    _, a = separated(dtype)
    b = PCAResult(*(np.array(f, copy=True) for f in dataclasses.astuple(a)))
    c = metrics.compare(a, b)
    assert c.bitwise
    for name in (
        "max_abs_diff",
        "aligned_max_abs_diff",
        "aligned_max_rel_diff",
        "loadings_aligned_max_abs_diff",
        "angle_k10_deg",
        "angle_all_deg",
        "variance_max_rel_diff",
        "sign_flips",
    ):
        assert getattr(c, name) == 0, name
    assert c.component_rel_diff == c.component_sin_theta == [0.0] * a.n_comps
    sd = metrics.significant_digits([a, b, a])
    cap = metrics.decimal_precision(dtype)
    assert sd.per_component == [cap] * a.n_comps
    assert sd.minimum == cap


def test_identical_outputs_get_what_the_full_comparison_gives():
    """The shortcut for bitwise-equal outputs (no SVDs) answers as the full path does."""
    _, a = separated()
    b = PCAResult(*(np.array(f, copy=True) for f in dataclasses.astuple(a)))
    assert metrics.compare(a, b) == metrics._full(a, b, True)
    nan = dataclasses.replace(a, variance=np.full_like(a.variance, np.nan))
    assert metrics.compare(nan, nan).to_dict()["variance_max_rel_diff"] is None  # not 0


def test_to_dict_is_strict_json():
    x = centered_data(SEPARATED, 100, 30, seed=6)
    a = pca_of(x, 1)
    b = dataclasses.replace(flip(a, [0]), variance=np.array([np.inf]))  # inf: not JSON
    d = metrics.compare(a, b).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["variance_max_rel_diff"] is None
    assert isinstance(d["bitwise"], bool)
    assert isinstance(d["sign_flips"], int)
    assert isinstance(d["component_rel_diff"], list)
    json.dumps(metrics.significant_digits([a, a]).to_dict(), allow_nan=False)


def test_shape_mismatch_is_an_error():
    _, a = separated()
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.compare(a, separated(np.float64, 5)[1])


# -- hypothesis: symmetry and invariance --------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    k=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
    flips=st.lists(st.booleans(), min_size=50, max_size=50),
)
def test_sign_flips_and_rotations_keep_the_subspace(dtype, k, seed, flips):
    full = wide(dtype)
    a = PCAResult(
        full.embedding[:, :k], full.loadings[:, :k], full.variance[:k], full.variance_ratio[:k]
    )
    flipped = flip(a, np.flatnonzero(flips[:k]))
    q = ortho_group.rvs(k, random_state=seed) if k > 1 else -np.eye(1)
    rotated = rotate(a, q)
    tol = angle_tol_deg(dtype)
    for b in (flipped, rotated):
        ab, ba = metrics.compare(a, b), metrics.compare(b, a)
        assert ab.bitwise == ba.bitwise
        assert ab.angle_all_deg == pytest.approx(ba.angle_all_deg, rel=1e-9, abs=tol)
        assert ab.angle_k10_deg == pytest.approx(ba.angle_k10_deg, rel=1e-9, abs=tol)
        assert ab.angle_all_deg < tol
    c = metrics.compare(a, flipped)
    assert c.angle_k10_deg < tol
    assert c.sign_flips == sum(flips[:k])
    assert c.bitwise == (c.sign_flips == 0)
    assert c.aligned_max_abs_diff == 0


# -- downstream ---------------------------------------------------------------------------------


def blobs(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = 6.0 * rng.standard_normal((4, 8))
    return np.concatenate([c + rng.standard_normal((60, 8)) for c in centers])


def test_knn_sets_agree_on_identical_embeddings():
    e = blobs()
    assert metrics.knn_jaccard(e, e.copy()) == 1.0


def test_knn_jaccard_drops_with_neighbour_scale_noise():
    from sklearn.neighbors import NearestNeighbors

    e = blobs()
    dist, _ = NearestNeighbors(n_neighbors=15).fit(e).kneighbors()
    noisy = e + np.median(dist) * np.random.default_rng(8).standard_normal(e.shape)
    j = metrics.knn_jaccard(e, noisy)
    assert 0 <= j < 1
    assert metrics.knn_jaccard(e, noisy) == metrics.knn_jaccard(noisy, e)


# -- significant digits, compare_many -----------------------------------------------------------


def noisy_copies(a: PCAResult, rel: float, n: int, seed: int) -> list[PCAResult]:
    rng = np.random.default_rng(seed)
    return [
        dataclasses.replace(
            a, embedding=a.embedding * (1 + rel * rng.standard_normal(a.embedding.shape))
        )
        for _ in range(n)
    ]


def test_significant_digits_fall_with_noise():
    _, a = separated()
    fine = metrics.significant_digits(noisy_copies(a, 1e-10, 5, seed=9))
    coarse = metrics.significant_digits(noisy_copies(a, 1e-7, 5, seed=9))
    assert coarse.minimum < fine.minimum < metrics.decimal_precision(np.float64)
    assert all(c < f for c, f in zip(coarse.per_component, fine.per_component, strict=True))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.significant_digits([a])


def test_significant_digits_ignore_signs():
    _, a = separated()
    samples = noisy_copies(a, 1e-9, 4, seed=10)
    flipped = [samples[0]] + [flip(s, [1, 2]) for s in samples[1:]]
    assert metrics.significant_digits(flipped) == metrics.significant_digits(samples)


def test_compare_many_reports_the_worst_pair():
    _, a = separated()
    mild, strong = noisy_copies(a, 1e-12, 1, seed=11)[0], noisy_copies(a, 1e-6, 1, seed=12)[0]
    worst = metrics.compare_many([a, mild, a, strong, mild])
    assert worst == metrics.compare(a, strong)
    assert metrics.compare_many([a, a, a]).bitwise
    flipped = metrics.compare_many([a, a, flip(a, [0])])
    assert not flipped.bitwise
    assert flipped.sign_flips == 1
    with pytest.raises(ValueError, match="at least 2"):
        metrics.compare_many([a])


def test_knn_sets_are_kept_on_disk_across_processes(tmp_path, monkeypatch):
    """The stability suite's checks run in separate processes and share baselines: their exact
    kNN sets are computed once and read back, with the same numbers."""
    x = centered_data(SEPARATED, 200, 30, seed=3)
    a = pca_of(x, 10)
    b = dataclasses.replace(a, embedding=a.embedding + 1e-3)
    b = dataclasses.replace(b, embedding=b.embedding * (1 + 0.05 * np.arange(b.n_comps)))
    monkeypatch.setattr(metrics, "DISK_CACHE", tmp_path)
    first = metrics.knn_jaccard(a.embedding, b.embedding)
    kept = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert kept == ["knn15", "knn15"]
    metrics._KNN_CACHE.clear()  # a new process: only the disk remains
    assert metrics.knn_jaccard(a.embedding, b.embedding) == first


@pytest.mark.parametrize("angle", [0.0, 1e-14, 1e-10, 1e-6, 1e-3, 0.3, 1.2, np.pi / 2])
def test_component_sin_theta_agrees_with_scipy_principal_angles(angle):
    """The vectorised angle (Kahan's formula) against scipy's subspace_angles, one column at a
    time, at every magnitude: sqrt(1 - cos^2) would read 0 below 1e-8."""
    from scipy.linalg import subspace_angles

    rng = np.random.default_rng(7)
    a = np.linalg.qr(rng.standard_normal((300, 4)))[0]
    # rotate each column by `angle` towards a direction orthogonal to it, then scale and flip
    w = rng.standard_normal((300, 4))
    w -= a * np.einsum("ij,ij->j", a, w)
    w /= np.linalg.norm(w, axis=0)
    b = (np.cos(angle) * a + np.sin(angle) * w) * np.array([1.0, -1.0, 3.0, -0.5])
    got = metrics.component_sin_theta(a, b)
    want = [np.sin(subspace_angles(a[:, [i]], b[:, [i]])[0]) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-15)
    np.testing.assert_allclose(got, np.sin(angle), rtol=1e-4, atol=1e-15)
    assert metrics.component_sin_theta(a, a).tolist() == [0.0] * 4
