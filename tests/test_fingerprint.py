"""The environment fingerprint and its human label."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from harness.bench import blas, fingerprint


def test_fingerprint_records_versions_blas_and_cpu():
    fp = fingerprint.collect()
    assert fp["packages"]["numpy"] == np.__version__
    blas_pools = [p for p in fp["threadpools"] if p["user_api"] == "blas"]
    assert blas_pools and blas_pools[0]["filepath"] in fp["mapped_libraries"]
    assert fp["cpu"]["count"] >= 1 and fp["cpu"]["flags"]


def test_env_vars_and_threads_from_a_child_process():
    code = "import json; from harness.bench import fingerprint as f; fp = f.collect(); print(json.dumps([fp['env_vars'], f.threads(fp), f.label(fp)]))"
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    env_vars, threads, label = json.loads(out.stdout)
    assert env_vars == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    assert threads == 1
    assert label.endswith("· 1 thread (env)") and label.startswith("scanpy ")


def test_label_reads_like_the_issue():
    fp = {
        "packages": {"scanpy": "1.11.5", "scikit-learn": "1.9.1", "numpy": "2.4.6"},
        "blas": "OpenBLAS 0.3.31 SkylakeX",
        "threadpools": [{"user_api": "blas", "num_threads": 2}],
        "env_vars": {},
    }
    assert (
        fingerprint.label(fp)
        == "scanpy 1.11.5 · sklearn 1.9.1 · numpy 2.4.6 · OpenBLAS 0.3.31 SkylakeX · 2 threads"
    )


def test_blas_vendor_from_mapped_libraries_when_threadpoolctl_is_blind():
    maps = "\n".join(
        f"7f00-7f01 r-xp 0 08:01 1 {p}"
        for p in (
            "/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3.10.3",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        )
    )
    mapped = blas.mapped_libraries(maps)
    assert mapped == ["/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3.10.3"]
    assert blas.vendor([], mapped) == "ATLAS"
    assert blas.vendor([], ["/usr/lib/x86_64-linux-gnu/blas/libblas.so.3"]) == "reference BLAS"


def test_label_tells_forced_kernels_and_thread_variables_apart():
    base = {
        "packages": {"scanpy": "1.11.5"},
        "blas": "OpenBLAS 0.3.31 SkylakeX",
        "threadpools": [{"user_api": "blas", "num_threads": 2}],
        "env_vars": {},
    }
    forced = {**base, "env_vars": {"OPENBLAS_CORETYPE": "SkylakeX"}}
    by_env = {**base, "env_vars": {"OPENBLAS_NUM_THREADS": "2"}}
    labels = {fingerprint.label(fp) for fp in (base, forced, by_env)}
    assert len(labels) == 3
    assert "OPENBLAS_CORETYPE=SkylakeX" in fingerprint.label(forced)
    assert fingerprint.label(by_env).endswith("2 threads (env)")
