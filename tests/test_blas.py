"""Naming the BLAS from /proc/self/maps text and threadpoolctl entries (pure functions, no loading)."""

from __future__ import annotations

import pytest

from harness.bench import backends, blas

D = "/usr/lib/x86_64-linux-gnu"
MKL_LIB = "/venv/lib"
SCIPY_POOL = {
    "user_api": "blas",
    "internal_api": "openblas",
    "version": "0.3.30",
    "architecture": "SkylakeX",
    "filepath": "/venv/lib/python3.11/site-packages/scipy.libs/libscipy_openblas-68440149.so",
}
DEBIAN_POOL = {
    "user_api": "blas",
    "internal_api": "openblas",
    "version": "0.3.21",
    "architecture": "Cooperlake",
    "filepath": f"{D}/openblas-pthread/libopenblasp-r0.3.21.so",
}
MKL_POOL = {
    "user_api": "blas",
    "internal_api": "mkl",
    "version": "2026.2-Product",
    "filepath": f"{MKL_LIB}/libmkl_rt.so.3",
}
MAPPED = {
    "reference": [f"{D}/blas/libblas.so.3.11.0", f"{D}/lapack/liblapack.so.3.11.0"],
    "atlas": [
        f"{D}/atlas/libblas.so.3.10.3",
        f"{D}/atlas/liblapack.so.3.10.3",
        f"{D}/libatlas.so.3.10.3",
    ],
    "blis": [f"{D}/blis-pthread/libblas.so.3", f"{D}/lapack/liblapack.so.3.11.0"],
    "openblas": [
        f"{D}/openblas-pthread/libblas.so.3",
        f"{D}/openblas-pthread/liblapack.so.3",
        f"{D}/openblas-pthread/libopenblasp-r0.3.21.so",
    ],
    "mkl": [
        "/root/.cache/pca-harness/blas/mkl/libblas.so.3",
        "/root/.cache/pca-harness/blas/mkl/liblapack.so.3",
        f"{MKL_LIB}/libiomp5.so",
        f"{MKL_LIB}/libmkl_core.so.3",
        f"{MKL_LIB}/libmkl_rt.so.3",
    ],
}


def maps_text(paths: list[str]) -> str:
    """A /proc/self/maps excerpt mapping ``paths`` (plus libc and an anonymous mapping)."""
    lines = [f"7f00-7f01 r-xp 00000000 08:01 {i} {p}" for i, p in enumerate(paths, 1)]
    lines += [f"7f02-7f03 r-xp 00000000 08:01 99 {D}/libc.so.6", "7f04-7f05 rw-p 00000000 00:00 0"]
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(MAPPED))
def test_loaded_names_the_mapped_backend(name):
    assert backends.loaded(maps_text(MAPPED[name])) == name


def test_loaded_says_when_implementations_are_mixed_or_absent():
    mixed = [f"{D}/openblas-pthread/libblas.so.3", f"{D}/atlas/liblapack.so.3.10.3"]
    assert backends.loaded(maps_text(mixed)).startswith("mixed (blas: ['openblas']")
    bundled = ["/venv/site-packages/numpy.libs/libscipy_openblas64_-8fb3d286.so"]
    assert backends.loaded(maps_text(bundled)) == "bundled OpenBLAS"
    assert backends.loaded(maps_text([])) == "none"


@pytest.mark.parametrize(
    ("name", "pools", "expected"),
    [
        ("reference", [], "reference BLAS"),
        ("atlas", [], "ATLAS"),
        ("blis", [], "BLIS + reference LAPACK"),
        ("openblas", [DEBIAN_POOL], "OpenBLAS 0.3.21 Cooperlake (Debian)"),
        ("mkl", [MKL_POOL], "MKL 2026.2 CBWR=AVX2,STRICT"),
        ("atlas", [SCIPY_POOL], "ATLAS; scipy wheel: OpenBLAS 0.3.30 SkylakeX"),
        (
            "openblas",
            [DEBIAN_POOL, SCIPY_POOL],
            "OpenBLAS 0.3.21 Cooperlake (Debian); scipy wheel: OpenBLAS 0.3.30 SkylakeX",
        ),
    ],
)
def test_vendor_names_the_generic_blas_and_scipys_own(name, pools, expected):
    mapped = blas.mapped_libraries(maps_text(MAPPED[name]))
    assert blas.vendor(pools, mapped, cbwr="AVX2,STRICT") == expected


def test_vendor_keeps_the_wheel_name_when_nothing_generic_is_mapped():
    numpy_pool = SCIPY_POOL | {
        "version": "0.3.31",
        "filepath": "/venv/site-packages/numpy.libs/libscipy_openblas64_-8fb3d286.so",
    }
    mapped = [numpy_pool["filepath"], SCIPY_POOL["filepath"]]
    expected = "OpenBLAS 0.3.31 SkylakeX; scipy: OpenBLAS 0.3.30 SkylakeX"
    assert blas.vendor([numpy_pool, SCIPY_POOL], mapped) == expected
    assert blas.vendor([SCIPY_POOL, numpy_pool], mapped) == expected  # threadpoolctl's order varies
    same = SCIPY_POOL | {"version": "0.3.31"}
    assert blas.vendor([same, numpy_pool], mapped) == "OpenBLAS 0.3.31 SkylakeX"


def test_mkl_cbwr_is_none_unless_mkl_is_mapped_here():
    assert blas.mkl_cbwr(MAPPED["mkl"]) is None  # listed, but not in this process's maps
    assert blas.mkl_cbwr([]) is None
