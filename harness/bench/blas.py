"""Which BLAS/LAPACK a process really runs: threadpoolctl's view plus the mapped libraries.

threadpoolctl names OpenBLAS (with its kernel family, ``architecture``), MKL and BLIS when they
expose their own API, but not the reference BLAS, ATLAS or BLIS loaded as ``libblas.so.3``; those
are only visible in /proc/self/maps, so both views are recorded.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
from pathlib import Path
from typing import Any

_LIB = re.compile(r"(blas|lapack|atlas|blis|mkl|gomp|iomp|omp)[^/]*\.so", re.IGNORECASE)


def mapped_libraries(maps: str | None = None) -> list[str]:
    """Shared objects mapped in this process whose names look like BLAS, LAPACK or OpenMP."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return []
    paths = {
        line.split()[-1]
        for line in maps.splitlines()
        if line.count("/") and "/" in line.split()[-1]
    }
    return sorted(p for p in paths if _LIB.search(Path(p).name))


def threadpools() -> list[dict[str, Any]]:
    """threadpoolctl's report after importing the libraries PCA uses (so their BLAS are loaded)."""
    # Here, not at the top: this module loads in the start-up hook, before the BLAS is selected.
    import numpy  # noqa: F401
    import scipy.linalg
    import scipy.sparse.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    # A foreign environment without scikit-learn still gets a fingerprint.
    with contextlib.suppress(ImportError):
        import sklearn.decomposition  # noqa: F401
    return threadpool_info()


_CBWR_BRANCHES = {
    0: "UNSET",
    1: "OFF",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    11: "AVX512_MIC",
    12: "AVX512",
    13: "AVX512_MIC_E1",
    14: "AVX512_E1",
}
_CBWR_STRICT = 0x10000
_CBWR_ALL = -1  # MKL_CBWR_ALL is ~0


def mkl_cbwr(mapped: list[str] | None = None) -> str | None:
    """The MKL_CBWR mode in effect (e.g. 'AVX2,STRICT', 'OFF' when unset), if MKL is loaded here."""
    # Only a library this process really maps is asked: CDLL on it adds a handle, loads nothing.
    live = mapped_libraries()
    rt = [
        p for p in (mapped if mapped is not None else live) if Path(p).name.startswith("libmkl_rt")
    ]
    if not rt or rt[0] not in live:
        return None
    try:
        # Mixed case is the C entry (int by value); mkl_cbwr_get/MKL_CBWR_GET are Fortran's, by pointer.
        get = ctypes.CDLL(rt[0]).MKL_CBWR_Get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    code = get(_CBWR_ALL)
    branch = _CBWR_BRANCHES.get(code & ~_CBWR_STRICT, str(code & ~_CBWR_STRICT))
    return branch + (",STRICT" if code & _CBWR_STRICT else "")


def _pool_name(p: dict[str, Any]) -> str:
    """'OpenBLAS 0.3.31 SkylakeX' from one threadpoolctl entry."""
    name = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(
        p.get("internal_api", ""), p.get("internal_api", "?")
    )
    found = re.match(r"\d+(?:\.\d+){0,2}", str(p.get("version") or ""))
    version = found.group() if found else ""  # MKL says '2026.2-Product'
    arch = p.get("architecture") or ""
    return " ".join(s for s in (name, version, arch) if s)


def _generic(mapped: list[str]) -> str | None:
    """Which implementation sits behind a generic libblas.so.3 (Debian alternatives dirs, MKL links)."""
    libs = [Path(m) for m in mapped if Path(m).name.startswith(("libblas.so", "libmkl_rt"))]
    dirs = {p.parent.name for p in libs}
    names = {p.name for p in libs}
    if any(n.startswith("libmkl_rt") for n in names):
        return "MKL"
    for prefix, label in (("atlas", "ATLAS"), ("blis", "BLIS"), ("openblas", "OpenBLAS")):
        if any(d.startswith(prefix) for d in dirs):
            return label
    return "reference BLAS" if libs else None


def vendor(pools: list[dict[str, Any]], mapped: list[str], cbwr: str | None = None) -> str:
    """A short human name for the BLAS in use, e.g. 'OpenBLAS 0.3.31 SkylakeX' or 'ATLAS'.

    numpy's generic libblas.so.3 comes first; a wheel-bundled OpenBLAS beside it (scipy's, which
    sklearn's 'full' solver and svds use) is appended. ``cbwr`` defaults to MKL's live setting.
    """
    blas = [p for p in pools if p.get("user_api") == "blas"]
    bundled = [p for p in blas if Path(p.get("filepath") or "").parent.name.endswith(".libs")]
    generic = _generic(mapped)
    if generic is None:
        if blas:
            # numpy's bundled OpenBLAS names the environment; scipy's own copy (used by the 'full'
            # solver and svds) is added when it differs. threadpoolctl's order is not stable.
            blas.sort(key=lambda p: Path(p.get("filepath") or "").parent.name != "numpy.libs")
            first, *others = [_pool_name(p) for p in blas]
            extra = [n for n in dict.fromkeys(others) if n != first]
            return "; ".join([first, *(f"scipy: {n}" for n in extra)])
        names = " ".join(Path(m).parent.name + "/" + Path(m).name for m in mapped).lower()
        labels = (("atlas", "ATLAS"), ("blis", "BLIS"), ("mkl", "MKL"), ("openblas", "OpenBLAS"))
        return next((label for key, label in labels if key in names), "unknown BLAS")
    own = [p for p in blas if p not in bundled]
    if generic in ("OpenBLAS", "MKL") and own:
        generic = _pool_name(own[0]) + (" (Debian)" if generic == "OpenBLAS" else "")
    if generic == "BLIS" and any(Path(m).parent.name == "lapack" for m in mapped):
        generic += " + reference LAPACK"
    if generic.startswith("MKL"):
        mode = cbwr if cbwr is not None else mkl_cbwr(mapped)
        generic += f" CBWR={mode}" if mode else ""
    for p in bundled:
        owner = Path(p["filepath"]).parent.name.removesuffix(".libs")
        generic += f"; {owner} wheel: {_pool_name(p)}"
    return generic
