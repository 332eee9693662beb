"""HARNESS_BLAS selection: the library a process really maps is the one asked for.

The session fixture makes (or reuses) a small venv under the harness cache holding numpy built from
source against the generic libblas/liblapack (the wheel is built once into the wheelhouse) and MKL.
Each probe is a fresh process, since a process's BLAS is fixed once numpy is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest

from harness.bench import backends
from harness.study import setup_backends

ROOT = Path(__file__).resolve().parents[1]
NAMES = tuple(backends.BACKENDS)
BLAS_DIR = {
    "reference": "blas",
    "atlas": "atlas",
    "blis": "blis-pthread",
    "openblas": "openblas-pthread",
    "mkl": "mkl",
}
VENDOR = {
    "reference": "reference BLAS",
    "atlas": "ATLAS",
    "blis": "BLIS + reference LAPACK",
    "openblas": "OpenBLAS 0.3.21",
    "mkl": "MKL 20",
}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

PROBE = """
import hashlib, json, sys
from harness.bench import backends
from harness.bench import blas
try:
    name = backends.select_from_env()
except backends.BackendUnavailable as err:
    print(json.dumps({"unavailable": str(err)}))
    sys.exit()
import numpy as np
from threadpoolctl import threadpool_info
n = int(sys.argv[1])
a = np.random.default_rng(0).standard_normal((n, n))
c = a @ a.T
w = np.linalg.eigh(c)[0]
digest = lambda x: hashlib.sha256(x.tobytes()).hexdigest()[:16]
mapped = blas.mapped_libraries()
print(json.dumps({
    "selected": name, "loaded": backends.loaded(), "mapped": mapped,
    "vendor": blas.vendor(threadpool_info(), mapped), "cbwr": blas.mkl_cbwr(),
    "gemm": digest(c), "eigh": digest(w),
}))
"""


@pytest.fixture(scope="session")
def backend_env() -> dict[str, str]:
    """Environment for probe processes: the source-numpy venv's python and its own cache root."""
    if sys.platform != "linux":
        pytest.skip("BLAS selection preloads ELF libraries: Linux only")
    start = time.monotonic()
    missing = setup_backends.ensure_apt()
    wheelhouse = setup_backends.wheelhouse_dir()
    if setup_backends.numpy_wheel(wheelhouse) is None and missing:
        pytest.skip(
            f"Debian packages {' '.join(missing)} are missing and cannot be installed here "
            "(not root, no password-less sudo): no numpy can be built against libblas/liblapack"
        )
    wheel = setup_backends.build_numpy(wheelhouse)
    root = backends.cache_dir() / "backend-test"
    python = setup_backends.backend_venv(root / "venv", wheel, extra=("threadpoolctl", "mkl"))
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS and k != "MKL_CBWR"}
    env |= {"HARNESS_CACHE": str(root), "PYTHONPATH": str(ROOT), "PYTHON": str(python)}
    setup_backends.make_mkl_dir(setup_backends.ensure_mkl(str(python)), root / "blas" / "mkl")
    print(f"\nbackend fixture ready in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return env


@pytest.fixture(scope="session")
def probe(backend_env):
    """probe(name, n=200, **env) -> the JSON a fresh process prints after selecting ``name``."""

    @cache
    def run(name: str, n: int = 200, **extra: str) -> dict:
        env = backend_env | {backends.ENV: name} | extra
        out = subprocess.run(
            [env["PYTHON"], "-c", PROBE, str(n)], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout)
        if "unavailable" in result:
            pytest.skip(result["unavailable"])
        return result

    return run


@pytest.mark.parametrize("name", NAMES)
def test_selected_backend_is_the_one_mapped(probe, name):
    result = probe(name)
    assert result["selected"] == name
    assert result["loaded"] == name, result["mapped"]
    blas_files = [Path(p) for p in result["mapped"] if Path(p).name.startswith("libblas.so")]
    assert [p.parent.name for p in blas_files] == [BLAS_DIR[name]], result["mapped"]
    others = set(BLAS_DIR.values()) - {BLAS_DIR[name]}
    assert not [p for p in result["mapped"] if Path(p).parent.name in others]
    assert result["vendor"].startswith(VENDOR[name]), result["vendor"]
    if name == "mkl":
        assert any(Path(p).name == backends.MKL_SONAME for p in result["mapped"])
        assert result["cbwr"] == "OFF"  # MKL_CBWR unset: conditional reproducibility off


def test_without_selection_the_debian_alternative_runs(probe):
    """No HARNESS_BLAS: the loader follows /etc/alternatives (OpenBLAS at Debian's priority 100)."""
    result = probe("")
    assert result["selected"] is None
    assert result["loaded"] in NAMES


def test_each_backend_gives_its_own_bits(probe):
    """Different kernels, different bits (dgemm alone may agree: BLIS and OpenBLAS do at n=200)."""
    bits = {name: (probe(name, 300)["gemm"], probe(name, 300)["eigh"]) for name in NAMES}
    assert len(set(bits.values())) == len(bits), bits


@pytest.mark.parametrize("name", ["reference", "atlas", "blis"])
def test_thread_count_does_not_change_bits(probe, name):
    """REFERENCE.md: reference, ATLAS and BLIS give thread-count independent dgemm/dsyevd bits."""
    one = probe(name, 400, **dict.fromkeys(THREAD_VARS, "1"))
    two = probe(name, 400, **dict.fromkeys(THREAD_VARS, "2"))
    assert (one["gemm"], one["eigh"]) == (two["gemm"], two["eigh"])


@pytest.mark.parametrize("mode", ["COMPATIBLE", "COMPATIBLE,STRICT"])
def test_mkl_cbwr_mode_is_read_back(probe, mode):
    result = probe("mkl", MKL_CBWR=mode)
    assert result["cbwr"] == mode
    assert result["vendor"].endswith(f"CBWR={mode}")
    assert result["gemm"] != probe("mkl")["gemm"]


def test_benchmarks_package_selects_before_numpy(backend_env):
    code = "import benchmarks, numpy; from harness.bench import backends; print(backends.loaded())"
    env = backend_env | {backends.ENV: "atlas"}
    out = subprocess.run([env["PYTHON"], "-c", code], env=env, capture_output=True, text=True)
    if "backend 'atlas' unavailable" in out.stderr:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "atlas"


def test_benchmarks_package_fails_loudly_on_an_unknown_backend(backend_env):
    env = backend_env | {backends.ENV: "nosuch"}
    out = subprocess.run(
        [env["PYTHON"], "-c", "import benchmarks"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "backend 'nosuch' unavailable: unknown backend 'nosuch'" in out.stderr


HOOKED = """
import site, sys
site.addsitedir(sys.argv[1])  # runs the .pth line as interpreter start-up does
import numpy  # as asv_runner does (through pympler) before the benchmarks are imported
from harness.bench import backends
print(backends.select_from_env(), backends.loaded())
"""


def _hooked(backend_env, tmp_path, name: str) -> subprocess.CompletedProcess:
    (tmp_path / backends.PTH_NAME).write_text(backends.PTH_LINE)
    env = backend_env | {backends.ENV: name}
    code = [env["PYTHON"], "-c", HOOKED, str(tmp_path)]
    return subprocess.run(code, env=env, capture_output=True, text=True)


def test_startup_hook_selects_before_numpy_is_imported(backend_env, tmp_path):
    out = _hooked(backend_env, tmp_path, "blis")
    if "backend 'blis' unavailable" in out.stderr:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["blis", "blis"]


def test_startup_hook_failure_keeps_its_reason(backend_env, tmp_path):
    out = _hooked(backend_env, tmp_path, "nosuch")
    assert out.returncode != 0
    assert "unknown backend 'nosuch'" in out.stderr
    assert "already imported" not in out.stderr


def test_selection_after_numpy_import_names_what_is_bound(backend_env):
    code = "import numpy; from harness.bench import backends; backends.select_from_env()"
    env = backend_env | {backends.ENV: "atlas"}
    out = subprocess.run([env["PYTHON"], "-c", code], env=env, capture_output=True, text=True)
    if "backend 'atlas' unavailable" in out.stderr:
        pytest.skip(out.stderr.strip().splitlines()[-1])
    assert out.returncode != 0
    assert "numpy is already imported and bound to" in out.stderr


# --- no venv needed -----------------------------------------------------------------------------


def test_unavailable_reason_for_an_unknown_name():
    reason = backends.unavailable_reason("fastblas")
    assert reason is not None
    assert "unknown backend 'fastblas'" in reason
    assert "reference" in reason
    assert "mkl" in reason


def test_unavailable_reason_names_the_missing_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "LIBDIR", tmp_path / "nowhere")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    atlas = backends.unavailable_reason("atlas")
    assert atlas == f"{tmp_path}/nowhere/atlas is missing (apt-get install libatlas3-base)"
    mkl = backends.unavailable_reason("mkl")
    assert mkl is not None
    assert str(tmp_path / "cache" / "blas" / "mkl") in mkl
    assert "pip install mkl" in mkl
    with pytest.raises(backends.BackendUnavailable, match=r"backend 'blis' unavailable: .*nowhere"):
        backends.select("blis")


def test_select_refuses_once_numpy_is_imported(monkeypatch):
    import numpy  # noqa: F401  (already imported by the test session; explicit here)

    monkeypatch.setattr(backends, "unavailable_reason", lambda name: None)
    with pytest.raises(backends.BackendUnavailable, match="numpy is already imported"):
        backends.select("reference")


def test_select_refuses_a_numpy_wheel_with_bundled_openblas(monkeypatch):
    if backends.numpy_blas_problem() is None:
        pytest.skip("this environment's numpy is itself linked to the generic libblas.so.3")
    monkeypatch.setattr(backends, "unavailable_reason", lambda name: None)
    monkeypatch.delitem(sys.modules, "numpy")
    with pytest.raises(backends.BackendUnavailable, match="bundled OpenBLAS"):
        backends.select("reference")


def test_select_from_env_is_a_no_op_when_unset(monkeypatch):
    monkeypatch.delenv(backends.ENV, raising=False)
    assert backends.select_from_env() is None
    monkeypatch.setenv(backends.ENV, "")
    assert backends.select_from_env() is None


# --- the PCA implementation (HARNESS_SKLEARNEX) ------------------------------------------------

SKLEARNEX_PROBE = """
import json
import numpy as np
from harness.bench.pca import make_anndata, run_pca
x = np.random.default_rng(0).standard_normal((300, 60))
r = run_pca(make_anndata(x), solver="covariance_eigh", n_comps=10)
from sklearn.decomposition import PCA
print(json.dumps({
    "pca": PCA.__module__,
    "onedal": "libonedal" in open("/proc/self/maps").read(),
    "first": float(r.embedding[0, 0]),
}))
"""


def _sklearnex_probe(value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != backends.SKLEARNEX_ENV}
    if value is not None:
        env[backends.SKLEARNEX_ENV] = value
    out = subprocess.run(
        [sys.executable, "-c", SKLEARNEX_PROBE], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_sklearnex_pca_runs_only_when_asked():
    pytest.importorskip("sklearnex")
    asked, stock = _sklearnex_probe("1"), _sklearnex_probe(None)
    assert asked["pca"].startswith("sklearnex") and asked["onedal"]
    assert stock["pca"].startswith("sklearn.") and not stock["onedal"]
    assert abs(abs(asked["first"]) - abs(stock["first"])) < 1e-8  # same PCA, other code


def test_sklearnex_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(backends.SKLEARNEX_ENV, "1")
    monkeypatch.setattr(backends, "_sklearnex_active", False)
    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(backends.BackendUnavailable, match="scikit-learn-intelex is not installed"):
        backends.activate_pca_implementation()
