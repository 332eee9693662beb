"""Which svd_solver / layout combinations a scanpy + scikit-learn pair really runs.

The one place that knows the version rules (read from each release's ``scanpy/preprocessing/_pca``):
benchmarks, the stability suite and ``harness doctor`` ask :func:`unsupported_reason` and skip
what it rejects. A combination counts as supported when scanpy runs the requested solver; where
scanpy would warn "Ignoring svd_solver=..." and silently run arpack instead, or raise, it does not:
timing that would only time arpack twice under another name.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

_SKLEARN_DENSE = frozenset({"auto", "full", "arpack", "randomized"})


def _dense_solvers(scanpy: Version, sklearn: Version) -> frozenset[str]:
    # covariance_eigh exists in sklearn >= 1.5. scanpy 1.10 filters dense solvers through a fixed
    # set without it; 1.9 hands any name to sklearn; 1.11+ allows it when sklearn has it.
    solvers = set(_SKLEARN_DENSE)
    if sklearn >= Version("1.5") and not (Version("1.10") <= scanpy < Version("1.11")):
        solvers.add("covariance_eigh")
    return frozenset(solvers)


def _sparse_solvers(scanpy: Version, sklearn: Version) -> frozenset[str]:
    if scanpy < Version("1.10"):
        # scanpy's own implicit-centering path; 'auto' maps to arpack, 'randomized' densifies.
        return frozenset({"arpack", "lobpcg", "auto", "randomized"})
    if scanpy < Version("1.11"):
        return frozenset({"arpack", "lobpcg", "randomized"})  # randomized still densifies
    if sklearn < Version("1.4"):
        return frozenset({"arpack", "lobpcg"})
    # scanpy >= 1.11 with sklearn >= 1.4: sklearn's own sparse PCA; lobpcg on the legacy path.
    solvers = {"arpack", "lobpcg"}
    if sklearn >= Version("1.5"):
        solvers.add("covariance_eigh")
    return frozenset(solvers)


def supported_solvers(layout: str, scanpy: str, sklearn: str) -> frozenset[str]:
    """The svd_solver values that scanpy ``scanpy`` with scikit-learn ``sklearn`` runs on ``layout``."""
    sc_v, sk_v = Version(scanpy), Version(sklearn)
    if layout == "dense":
        return _dense_solvers(sc_v, sk_v)
    if layout == "csr":
        return _sparse_solvers(sc_v, sk_v)
    raise ValueError(f"unknown layout {layout!r}")


def unsupported_reason(
    solver: str, layout: str, *, scanpy: str | None = None, sklearn: str | None = None
) -> str | None:
    """None when the combination runs as asked, else a one-line reason (versions default to installed)."""
    scanpy = scanpy or installed_version("scanpy")
    sklearn = sklearn or installed_version("scikit-learn")
    if solver in supported_solvers(layout, scanpy, sklearn):
        return None
    return f"scanpy {scanpy} with scikit-learn {sklearn} does not run svd_solver={solver!r} on {layout} input"


@cache
def installed_version(dist: str) -> str:
    """The installed version of a distribution, or '' when it is absent."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


#: How a solver's rounding scales (harness.analysis.rounding): "centred" solvers factor the
#: explicitly centred data (X - mean, then an SVD: errors scale with the centred spectrum);
#: "gram" ones form or apply the uncentred X^T X and subtract the mean's outer product
#: (covariance_eigh, and every sparse path, which centres implicitly): their errors scale with
#: ||X^T X|| / (n - 1), which is 19x lambda_1 on 10x_10k (issue #10).
COMPUTATION_PATHS = ("centred", "gram")


def computation_path(solver: str | None, layout: str) -> str:
    """The rounding model of a solver on a layout: 'gram' or 'centred' (see COMPUTATION_PATHS).

    'auto' and None resolve differently across releases and shapes: they get the larger
    ('gram') model, so a rounding-level difference is never called beyond rounding.
    """
    if layout != "dense" or solver in (None, "auto", "covariance_eigh"):
        return "gram"
    return "centred"
