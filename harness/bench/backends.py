"""Which BLAS/LAPACK implementation a benchmark process runs on, chosen by HARNESS_BLAS, and
which PCA implementation scikit-learn hands out, chosen by HARNESS_SKLEARNEX.

A numpy built from source against the generic ``libblas.so.3``/``liblapack.so.3`` runs on whatever
the dynamic loader hands it. :func:`select` preloads the chosen pair with RTLD_GLOBAL before numpy
is imported; :func:`loaded` reads /proc/self/maps to say what was really mapped. Standard library
only: importing this module must not load numpy.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from harness.bench import blas
from harness.bench.store import cache_dir

ENV = "HARNESS_BLAS"
SKLEARNEX_ENV = "HARNESS_SKLEARNEX"
MKL_SONAME = "libmkl_rt.so.3"


class BackendUnavailable(RuntimeError):
    """A backend cannot be selected in this process; the message says why."""


@dataclass(frozen=True)
class Backend:
    """One implementation: its libblas.so.3 and liblapack.so.3, and how to install them."""

    name: str
    label: str
    blas: str  # relative to the library dir (LIBDIR, or mkl_dir() for MKL)
    lapack: str
    install: str


def _multiarch_libdir() -> Path:
    arch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    return Path("/usr/lib") / arch


LIBDIR = _multiarch_libdir()
BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "reference",
            "reference BLAS/LAPACK",
            "blas/libblas.so.3",
            "lapack/liblapack.so.3",
            "apt-get install libblas3 liblapack3",
        ),
        Backend(
            "atlas",
            "ATLAS",
            "atlas/libblas.so.3",
            "atlas/liblapack.so.3",
            "apt-get install libatlas3-base",
        ),
        Backend(
            "blis",
            "BLIS (pthread) + reference LAPACK",
            "blis-pthread/libblas.so.3",
            "lapack/liblapack.so.3",
            "apt-get install libblis4-pthread liblapack3",
        ),
        Backend(
            "openblas",
            "OpenBLAS (Debian, pthread)",
            "openblas-pthread/libblas.so.3",
            "openblas-pthread/liblapack.so.3",
            "apt-get install libopenblas0-pthread",
        ),
        Backend(
            "mkl",
            "Intel MKL (PyPI)",
            "libblas.so.3",
            "liblapack.so.3",
            "pip install mkl, then python -m harness.study.setup_backends",
        ),
    )
}


def mkl_dir() -> Path:
    """The directory of libblas.so.3/liblapack.so.3 stand-ins for MKL (made by setup_backends)."""
    return cache_dir() / "blas" / "mkl"


def libraries(name: str) -> tuple[Path, Path]:
    """The libblas.so.3 and liblapack.so.3 that backend ``name`` loads."""
    backend = BACKENDS[name]
    root = mkl_dir() if name == "mkl" else LIBDIR
    return root / backend.blas, root / backend.lapack


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot be loaded here, or None when its libraries are present."""
    if name not in BACKENDS:
        return f"unknown backend {name!r} (known: {', '.join(BACKENDS)})"
    if sys.platform != "linux":
        return f"backend {name!r} needs Linux (ELF shared libraries), not {sys.platform}"
    for path in libraries(name):
        if not path.parent.is_dir():
            return f"{path.parent} is missing ({BACKENDS[name].install})"
        if not path.exists():  # also a dangling link (MKL uninstalled after set-up)
            return f"{path} is missing ({BACKENDS[name].install})"
    if name == "mkl" and not (mkl_dir() / "lib" / MKL_SONAME).exists():
        return f"{mkl_dir() / 'lib' / MKL_SONAME} is missing ({BACKENDS[name].install})"
    return None


def numpy_blas_problem() -> str | None:
    """Why the installed numpy cannot switch BLAS (bundled OpenBLAS, or none), found without importing it."""
    spec = importlib.util.find_spec("numpy")
    if spec is None or not spec.submodule_search_locations:
        return "numpy is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    extension = next(
        (
            p
            for sub in ("_core", "core")
            for p in sorted((root / sub).glob("_multiarray_umath*.so"))
        ),
        None,
    )
    if extension is None:
        return f"no _multiarray_umath extension under {root}"
    data = extension.read_bytes()
    if b"libblas.so.3" in data or b"libcblas.so.3" in data:
        return None
    bundled = sorted(p.name for p in root.parent.glob("numpy.libs/*openblas*"))
    what = (
        f"its own bundled OpenBLAS ({', '.join(bundled)})" if bundled else "no generic libblas.so.3"
    )
    return (
        f"numpy at {root} is linked against {what}, so HARNESS_BLAS cannot change its BLAS: "
        "install numpy built from source (python -m harness.study.setup_backends --install-numpy)"
    )


def select(name: str) -> tuple[Path, Path]:
    """Preload backend ``name``'s libblas.so.3 then liblapack.so.3; call before numpy is imported.

    Once numpy is imported it only verifies: fine if ``name`` is what is mapped (loaded earlier by
    :func:`hook`, LD_PRELOAD or LD_LIBRARY_PATH), an error otherwise.
    """
    if reason := unavailable_reason(name):
        raise BackendUnavailable(f"backend {name!r} unavailable: {reason}")
    pair = libraries(name)
    if "numpy" in sys.modules:
        if loaded() == name:
            return pair
        raise BackendUnavailable(
            f"backend {name!r} cannot be selected: numpy is already imported and bound to "
            f"{loaded()!r}; select before anything imports numpy (asv_runner imports it through "
            "pympler before the benchmarks: install the start-up hook, setup_backends --asv-env)"
        )
    if problem := numpy_blas_problem():
        raise BackendUnavailable(f"backend {name!r} cannot be selected: {problem}")
    # Order matters: liblapack.so.3 has DT_NEEDED libblas.so.3, and glibc satisfies a DT_NEEDED
    # with an already loaded object of that SONAME (numpy's entries alike) before searching the
    # default path (where Debian's alternatives symlink would pick another implementation).
    for path in pair:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return pair


_hook_failure: str | None = None


def select_from_env() -> str | None:
    """Select the backend named by $HARNESS_BLAS (no-op when unset or empty); return its name."""
    name = os.environ.get(ENV, "").strip().lower()
    if not name:
        return None
    if _hook_failure is not None:  # the start-up hook's reason, not a later 'numpy imported'
        raise BackendUnavailable(_hook_failure)
    select(name)
    return name


def sklearnex_requested() -> bool:
    """True when $HARNESS_SKLEARNEX asks for scikit-learn-intelex's PCA (1, true, yes)."""
    return os.environ.get(SKLEARNEX_ENV, "").strip().lower() in {"1", "true", "yes"}


_sklearnex_active = False


def activate_pca_implementation() -> str:
    """Patch scikit-learn's PCA with scikit-learn-intelex's (oneDAL) when asked; return its name.

    Idempotent. scanpy imports ``sklearn.decomposition.PCA`` when it runs PCA, so patching any
    time before the call suffices. sklearnex runs oneDAL only where it supports the parameters
    (dense input; 'full' and 'covariance_eigh' solvers) and falls back to scikit-learn elsewhere.
    """
    global _sklearnex_active
    if not sklearnex_requested():
        return "scikit-learn"
    if not _sklearnex_active:
        if importlib.util.find_spec("sklearnex") is None:
            raise BackendUnavailable(
                f"{SKLEARNEX_ENV} is set but scikit-learn-intelex is not installed "
                "(pip install scikit-learn-intelex)"
            )
        from sklearnex import patch_sklearn  # optional: only where HARNESS_SKLEARNEX asks

        patch_sklearn(["sklearn.decomposition.PCA"], verbose=False)
        _sklearnex_active = True
    return "sklearnex"


def hook() -> None:
    """Interpreter start-up (the .pth line): select early; a failure is re-raised by select_from_env."""
    global _hook_failure
    try:
        select_from_env()
    except BackendUnavailable as err:
        _hook_failure = str(err)


# Written into an environment's site-packages by setup_backends: site.py runs lines starting with
# 'import' at every interpreter start, before asv_runner (through pympler) imports numpy.
PTH_NAME = "harness_blas.pth"
PTH_LINE = f"import os; os.environ.get({ENV!r}) and __import__('harness.bench.backends').bench.backends.hook()\n"


def _kind(path: str) -> str | None:
    """The backend a mapped BLAS/LAPACK file belongs to, from its directory (or MKL's name)."""
    p = Path(path)
    if p.name.startswith("libmkl_rt") or (
        p.parent.name == "mkl" and p.parent.parent.name == "blas"
    ):
        return "mkl"
    if not p.name.startswith(("libblas.so", "liblapack.so")):
        return None
    parent = p.parent.name
    for prefix, kind in (
        ("atlas", "atlas"),
        ("blis", "blis"),
        ("openblas", "openblas"),
        ("blas", "reference"),
        ("lapack", "reference"),
    ):
        if parent.startswith(prefix):
            return kind
    return None


def loaded(maps: str | None = None) -> str:
    """The backend mapped in this process (a BACKENDS name), or a description of what is instead."""
    mapped = blas.mapped_libraries(maps)
    blas_kinds = {_kind(p) for p in mapped if Path(p).name.startswith("libblas.so")} - {None}
    lapack_kinds = {_kind(p) for p in mapped if Path(p).name.startswith("liblapack.so")} - {None}
    if any(_kind(p) == "mkl" for p in mapped) and blas_kinds <= {"mkl"}:
        return "mkl"
    for name, backend in BACKENDS.items():
        want_blas = _kind(str(LIBDIR / backend.blas))
        want_lapack = _kind(str(LIBDIR / backend.lapack))
        if name != "mkl" and blas_kinds == {want_blas} and lapack_kinds <= {want_lapack}:
            return name
    if blas_kinds or lapack_kinds:
        return f"mixed (blas: {sorted(blas_kinds)}, lapack: {sorted(lapack_kinds)})"
    if any("openblas" in Path(p).name for p in mapped):
        return "bundled OpenBLAS"
    return "none"
