"""Datasets: deterministic synthetic counts, one preprocessing, user files, clear refusals."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

from harness.bench import datasets
from harness.bench.datasets import DatasetUnavailable


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    datasets._load.cache_clear()
    datasets._matrix.cache_clear()
    datasets.describe.cache_clear()
    yield tmp_path
    datasets._load.cache_clear()
    datasets._matrix.cache_clear()
    datasets.describe.cache_clear()


def test_synthetic_counts_are_deterministic_and_sparse():
    a = datasets.negative_binomial_counts(3_000, 200, seed=7)
    b = datasets.negative_binomial_counts(3_000, 200, seed=7)
    c = datasets.negative_binomial_counts(3_000, 200, seed=8)
    assert datasets.matrix_sha256(a) == datasets.matrix_sha256(b) != datasets.matrix_sha256(c)
    zeros = 1 - a.nnz / np.prod(a.shape)
    assert 0.85 < zeros < 0.95  # "about 90% zeros", like droplet data
    assert np.array_equal(a.data, np.round(a.data))  # integer counts


def test_builtin_dataset_is_preprocessed_once_and_cached(cache):
    x = datasets.matrix("synthetic_small", "csr", "float32")
    assert x.shape == (2_000, 1_000) and sparse.isspmatrix_csr(x)
    row_totals = np.expm1(x).sum(axis=1)
    assert np.allclose(row_totals, 1e4, rtol=1e-3)  # normalize_total(1e4) then log1p
    assert (cache / "synthetic_small.h5ad").exists()
    cached = ad.read_h5ad(cache / "synthetic_small.h5ad").X
    assert datasets.matrix_sha256(
        sparse.csr_matrix(cached, dtype=np.float32)
    ) == datasets.matrix_sha256(x)


def test_layouts_and_dtypes_hold_the_same_values(cache):
    dense = datasets.matrix("pbmc68k_reduced", "dense", "float64")
    csr = datasets.matrix("pbmc68k_reduced", "csr", "float32")
    assert dense.flags.c_contiguous and dense.dtype == np.float64
    assert np.array_equal(csr.toarray().astype(np.float64), dense)


def test_matrix_returns_a_copy(cache):
    x = datasets.matrix("pbmc68k_reduced", "dense", "float32")
    x[:] = 0
    assert datasets.matrix("pbmc68k_reduced", "dense", "float32").any()


def test_user_files_join_the_dataset_parameter(cache, tmp_path, monkeypatch):
    good = tmp_path / "mine.h5ad"
    ad.AnnData(X=np.arange(60 * 80, dtype=np.float32).reshape(60, 80) % 7).write_h5ad(good)
    missing = tmp_path / "absent.h5ad"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    monkeypatch.setenv("HARNESS_DATASETS", f"{good}:{missing}:{text}")
    assert datasets.names("smoke") == ["pbmc68k_reduced", "user:mine", "user:absent", "user:notes"]
    assert datasets.matrix("user:mine", "dense", "float32").shape == (60, 80)
    with pytest.raises(DatasetUnavailable, match=r"absent\.h5ad: no such file"):
        datasets.matrix("user:absent", "dense", "float32")
    with pytest.raises(DatasetUnavailable, match=r"notes\.txt: not an \.h5ad file"):
        datasets.matrix("user:notes", "dense", "float32")


@pytest.mark.parametrize(
    ("x", "n_comps", "message"),
    [
        (np.full((5, 4), np.inf), None, "NaN or inf"),
        (np.zeros((0, 10)), None, "empty"),
        (np.ones((30, 20)), 20, "n_comps=20 is not below"),
        (sparse.csr_matrix(np.where(np.eye(4) > 0, np.nan, 0)), None, "NaN or inf"),
    ],
)
def test_check_matrix_refuses_bad_input(x, n_comps, message):
    with pytest.raises(DatasetUnavailable, match=message):
        datasets.check_matrix(x, "bad", n_comps)


def test_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv("HARNESS_PROFILE", "huge")
    with pytest.raises(ValueError, match="HARNESS_PROFILE"):
        datasets.profile()


def test_profiles():
    assert datasets.names("smoke") == ["pbmc68k_reduced"]
    assert datasets.names("study") == ["pbmc68k_reduced", "10x_10k"]  # real data only
    assert {"pbmc68k_reduced", "10x_10k", "synthetic_small"} == set(datasets.names("quick"))
    assert {"synthetic_medium", "synthetic_large"} < set(datasets.names("full"))
