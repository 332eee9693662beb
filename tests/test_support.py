"""harness.bench.support must agree with what the installed scanpy really does with each solver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scanpy as sc
from scipy import sparse

from harness.bench import support
from harness.bench.pca import LAYOUTS, SOLVERS, make_anndata


def _scanpy_runs_as_asked(solver: str, layout: str) -> bool:
    """True when sc.pp.pca accepts ``solver`` on ``layout`` without falling back or raising."""
    rng = np.random.default_rng(0)
    x = rng.poisson(1.0, size=(60, 30)).astype(np.float32)
    adata = make_anndata(sparse.csr_matrix(x) if layout == "csr" else x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sc.pp.pca(adata, n_comps=5, svd_solver=solver, random_state=0)
        except (ValueError, TypeError, NotImplementedError):
            return False
    return not any("Ignoring" in str(w.message) for w in caught)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_rules_match_installed_scanpy(solver, layout):
    assert (support.unsupported_reason(solver, layout) is None) == _scanpy_runs_as_asked(
        solver, layout
    )


def test_reason_names_versions_and_combination():
    reason = support.unsupported_reason("full", "csr", scanpy="1.11.5", sklearn="1.9.1")
    assert "1.11.5" in reason and "1.9.1" in reason and "'full'" in reason and "csr" in reason


@pytest.mark.parametrize(
    ("scanpy", "sklearn", "layout", "solver", "runs"),
    [
        # sklearn < 1.5 has no covariance_eigh, whatever scanpy does
        ("1.11.5", "1.4.2", "dense", "covariance_eigh", False),
        ("1.11.5", "1.4.2", "csr", "covariance_eigh", False),
        # scanpy 1.10 filters dense solvers through a fixed set without covariance_eigh
        ("1.10.4", "1.9.1", "dense", "covariance_eigh", False),
        # scanpy < 1.11 sparse PCA is scanpy's own code: lobpcg yes, covariance_eigh no
        ("1.9.8", "1.5.2", "csr", "lobpcg", True),
        ("1.10.4", "1.5.2", "csr", "covariance_eigh", False),
        # scanpy 1.9 hands dense solvers straight to sklearn
        ("1.9.8", "1.5.2", "dense", "covariance_eigh", True),
    ],
)
def test_rules_for_other_releases(scanpy, sklearn, layout, solver, runs):
    assert (solver in support.supported_solvers(layout, scanpy, sklearn)) == runs


def test_unknown_layout_is_an_error():
    with pytest.raises(ValueError, match="layout"):
        support.supported_solvers("coo", "1.11.5", "1.9.1")


def test_the_mechanism_behind_unreproducible_lobpcg():
    """Issue #10 point 11: with scipy >= 1.17 the global seed no longer reaches lobpcg's start
    vectors; passing ``rng`` makes the same call reproducible."""
    import inspect

    from packaging.version import Version
    from scipy.sparse.linalg import svds

    from harness.bench import support

    scipy = Version(support.installed_version("scipy"))
    takes_rng = "rng" in inspect.signature(svds).parameters
    assert support.lobpcg_is_seeded(rng_passed=True) is (True if takes_rng else None)
    assert support.lobpcg_is_seeded(rng_passed=False) is (scipy < Version("1.16"))


def test_auto_and_sign_rules_by_release():
    from harness.bench import support

    # 10x_10k: 10,000 x 1,000, 50 components
    assert support.auto_solver("1.4.2", 10_000, 1_000, 50) == "randomized"
    assert support.auto_solver("1.5.2", 10_000, 1_000, 50) == "covariance_eigh"
    assert support.auto_solver("1.9.1", 700, 765, 50) == "randomized"  # pbmc68k_reduced
    assert support.auto_solver("1.9.1", 300, 200, 50) == "full"
    assert support.sign_convention("1.4.2") == "u-based"
    assert support.sign_convention("1.5.2") == "v-based"
