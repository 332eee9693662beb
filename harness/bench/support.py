"""Which svd_solver / layout combinations a scanpy + scikit-learn pair really runs.

The one place that knows the version rules (read from each release's ``scanpy/preprocessing/_pca``):
benchmarks, the stability suite and ``harness doctor`` ask :func:`unsupported_reason` and skip
what it rejects. A combination counts as supported when scanpy runs the requested solver; where
scanpy would warn "Ignoring svd_solver=..." and silently run arpack instead, or raise, it does not:
timing that would only time arpack twice under another name.
"""

from __future__ import annotations

import inspect
import warnings
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from packaging.version import Version
from scipy.sparse.linalg import svds

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


#: Dask arrays of row chunks spanning all genes (issue #13): dense blocks or CSR blocks.
DASK_LAYOUTS = ("dask-dense", "dask-csr")
#: What scanpy hands to dask-ml's PCA on dense dask arrays (from 1.10).
_DASK_ML = frozenset({"auto", "full", "tsqr", "randomized"})


def _dask_solvers(layout: str, scanpy: Version) -> frozenset[str]:
    # 1.9 has no dask path (scikit-learn computes the whole array into memory). 1.10 sends every
    # dask array to dask-ml's PCA, which cannot take sparse chunks. 1.11 sends sparse dask to
    # its own covariance + eigh (ignoring svd_solver and random_state); 1.11.1 adds that path for
    # dense dask with svd_solver='covariance_eigh'.
    if scanpy < Version("1.10"):
        return frozenset()
    if layout == "dask-csr":
        return frozenset({"covariance_eigh"}) if scanpy >= Version("1.11") else frozenset()
    if scanpy >= Version("1.11.1"):
        return _DASK_ML | {"covariance_eigh"}
    return _DASK_ML


def supported_solvers(layout: str, scanpy: str, sklearn: str) -> frozenset[str]:
    """The svd_solver values that scanpy ``scanpy`` with scikit-learn ``sklearn`` runs on ``layout``."""
    sc_v, sk_v = Version(scanpy), Version(sklearn)
    if layout in DASK_LAYOUTS:
        return _dask_solvers(layout, sc_v)
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
    if solver not in supported_solvers(layout, scanpy, sklearn):
        return f"scanpy {scanpy} with scikit-learn {sklearn} does not run svd_solver={solver!r} on {layout} input"
    if layout in DASK_LAYOUTS:
        return _dask_missing(layout, solver)
    return None


def _dask_missing(layout: str, solver: str) -> str | None:
    """The package a dask layout needs that is not installed here, as a reason."""
    if not installed_version("dask"):
        return f"dask is not installed: no {layout} input"
    if layout == "dask-dense" and solver in _DASK_ML and not installed_version("dask-ml"):
        return (
            f"dask-ml is not installed: scanpy runs svd_solver={solver!r} on dense dask through it"
        )
    return None


def dask_ml_auto_solver(n_obs: int, n_vars: int, n_comps: int) -> str:
    """What dask-ml's PCA(svd_solver='auto') runs: full up to 500 x 500, else randomized when
    n_comps < 0.8 min(shape), else full."""
    if max(n_obs, n_vars) <= 500:
        return "full"
    return "randomized" if 1 <= n_comps < 0.8 * min(n_obs, n_vars) else "full"


def dask_input_reason(
    layout: str,
    solver: str,
    chunks: tuple[tuple[int, ...], tuple[int, ...]],
    random_state: object,
    n_comps: int,
) -> str | None:
    """Why scanpy refuses this dask input, as one line (None when it runs it).

    ``chunks`` is the dask array's ``.chunks``. scanpy needs an int random_state with dask
    (TypeError otherwise; numpy integers are not ints there). Its covariance path (every CSR
    dask array, and dense with covariance_eigh) needs row chunks spanning all genes; dask-ml's
    full/tsqr SVD needs chunks along one axis only; randomized takes any chunking.
    """
    if not isinstance(random_state, int):
        return (
            f"random_state={random_state!r} ({type(random_state).__name__}): scanpy needs an "
            "int random_state with dask arrays"
        )
    rows, cols = chunks
    shape = f"chunks of {max(rows)} x {max(cols)} cells x genes"
    if len(cols) == 1:
        return None
    n_obs, n_vars = sum(rows), sum(cols)
    if layout == "dask-csr" or solver == "covariance_eigh":
        return (
            f"{shape} do not span all {n_vars} genes: scanpy's dask covariance path needs "
            f"row chunks (N, {n_vars})"
        )
    if solver == "auto":
        solver = dask_ml_auto_solver(n_obs, n_vars, n_comps)
    if solver in ("full", "tsqr") and len(rows) > 1:
        return f"{shape}: dask's tsqr SVD (svd_solver={solver!r}) needs chunks along one axis only"
    return None


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
    # dask-dense: dask-ml centres the blocks explicitly, as scikit-learn does for dense input.
    if layout not in ("dense", "dask-dense") or solver in (None, "auto", "covariance_eigh"):
        return "gram"
    return "centred"


# --- mechanisms the harness can name when results move (issue #10 points 7 and 11) -------------


def auto_solver(sklearn: str, n_obs: int, n_vars: int, n_comps: int) -> str:
    """What scikit-learn's PCA(svd_solver='auto') runs on dense input of this shape.

    < 1.5: randomized for inputs over 500 x 500 with n_comps < 0.8 min(shape), else full;
    >= 1.5: covariance_eigh when n_vars <= 1000 and n_obs >= 10 n_vars, then the same rule.
    """
    if Version(sklearn) >= Version("1.5") and n_vars <= 1000 and n_obs >= 10 * n_vars:
        return "covariance_eigh"
    if max(n_obs, n_vars) > 500 and n_comps < 0.8 * min(n_obs, n_vars):
        return "randomized"
    return "full"


def sign_convention(sklearn: str) -> str:
    """How svd_flip fixes each component's sign: 'u-based' (<= 1.4) or 'v-based' (>= 1.5:
    the largest-|value| loading made positive), so 1.4 and 1.5 flip signs (scikit-learn#28826)."""
    return "v-based" if Version(sklearn) >= Version("1.5") else "u-based"


def lobpcg_is_seeded(
    rng_passed: bool, size: tuple[int, int] = (300, 60), k: int = 10
) -> bool | None:
    """Whether two identical ``svds(solver='lobpcg')`` calls give identical bits, with numpy's
    global RNG seeded before each (what scanpy's legacy sparse path does) and ``rng`` passed or not;
    None for ``rng_passed`` where this scipy's svds takes no ``rng`` (older releases), so that no
    reader claims a passed ``rng`` made calls agree where none could be passed.

    scipy >= 1.17 draws lobpcg's start vectors from a fresh ``default_rng()`` when ``rng`` is None
    (scipy#25069: gh-23531 dropped ``check_random_state``; fix proposed in scipy#25204), so the
    global seed no longer reaches them; scipy <= 1.15 used numpy's global RandomState.
    """
    a = np.random.default_rng(0).standard_normal(size)
    kwargs = {}
    if rng_passed:
        if "rng" not in inspect.signature(svds).parameters:
            return None
        kwargs = {"rng": 0}
    out = []
    for _ in range(2):
        np.random.seed(0)  # noqa: NPY002 - the global seed is what scanpy sets
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lobpcg warns that it stopped short of its tolerance
            if kwargs:
                kwargs["rng"] = np.random.default_rng(0)
            out.append(svds(a, k=k, solver="lobpcg", **kwargs)[1])
    return bool(np.array_equal(out[0], out[1]))
