"""Which BLAS/LAPACK a process really runs: threadpoolctl's view plus the mapped libraries.

threadpoolctl names OpenBLAS (with its kernel family, ``architecture``), MKL and BLIS when they
expose their own API, but not the reference BLAS, ATLAS or BLIS loaded as ``libblas.so.3``; those
are only visible in /proc/self/maps, so both views are recorded.
"""

from __future__ import annotations

import contextlib
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
    import numpy  # noqa: F401
    import scipy.linalg
    import scipy.sparse.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    # A foreign environment without scikit-learn still gets a fingerprint.
    with contextlib.suppress(ImportError):
        import sklearn.decomposition  # noqa: F401
    return threadpool_info()


def vendor(pools: list[dict[str, Any]], mapped: list[str]) -> str:
    """A short human name for the BLAS in use, e.g. 'OpenBLAS 0.3.31 SkylakeX' or 'ATLAS'."""
    blas = [p for p in pools if p.get("user_api") == "blas"]
    if blas:
        p = blas[0]
        name = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(
            p.get("internal_api", ""), p.get("internal_api", "?")
        )
        version = ".".join(str(p.get("version") or "").split(".")[:3])
        arch = p.get("architecture") or ""
        return " ".join(s for s in (name, version, arch) if s)
    names = " ".join(Path(m).parent.name + "/" + Path(m).name for m in mapped)
    for key, label in (
        ("atlas", "ATLAS"),
        ("blis", "BLIS"),
        ("mkl", "MKL"),
        ("openblas", "OpenBLAS"),
    ):
        if key in names.lower():
            return label
    return "reference BLAS" if "libblas" in names else "unknown BLAS"
