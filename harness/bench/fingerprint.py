"""The environment fingerprint: what was installed and which BLAS kernel ran, beside the results.

asv records only the requirements it was asked for (asv#931 was declined), so each benchmark run
writes this once per (machine, commit, environment); the harness labels environments from it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from harness.bench import backends, blas, support
from harness.bench.support import installed_version
from harness.vocabulary import usable_cores

SCHEMA = 1
PACKAGES = (
    "scanpy",
    "anndata",
    "scikit-learn",
    "numpy",
    "scipy",
    "threadpoolctl",
    "numba",
    "pandas",
    "scikit-learn-intelex",
    # The downstream check's graph and clustering, and scanpy's default pp.neighbors (#10 pt 6).
    "pynndescent",
    "umap-learn",
    "leidenalg",
    "igraph",
    # The dask suite's engine (issue #13).
    "dask",
    "distributed",
    "dask-ml",
    "zarr",
)
ENV_PREFIXES = (
    "OMP_",
    "OPENBLAS_",
    "MKL_",
    "BLIS_",
    "GOTO_",
    "KMP_",
    "HARNESS_BLAS",
    "HARNESS_SKLEARNEX",
    "HARNESS_NULL_CONTROL",  # the baseline's pins rebuilt (asv.conf.json): names it in labels
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
)


def cpu_info() -> dict[str, Any]:
    """CPU model and flags from /proc/cpuinfo, and the cores this process may use."""
    model, flags = platform.processor(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    return {"model": model, "flags": flags, "count": os.cpu_count(), "usable": usable_cores()}


# scikit-learn sets these itself on import (sklearn/__init__.py); they say nothing about the run.
INJECTED = frozenset({"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"})


def steering_env() -> dict[str, str]:
    """Environment variables that steer threads and BLAS selection."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith(ENV_PREFIXES) and k not in INJECTED
    }


def collect(probe_neighbors: bool = False) -> dict[str, Any]:
    """The fingerprint of the running process (imports numpy/scipy/sklearn to see their BLAS);
    ``probe_neighbors`` adds the ~30 s probe of scanpy's default ``pp.neighbors``."""
    pools = blas.threadpools()
    mapped = blas.mapped_libraries()
    return {
        "schema": SCHEMA,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "packages": {p: installed_version(p) for p in PACKAGES if installed_version(p)},
        "threadpools": pools,
        "mapped_libraries": mapped,
        "blas": blas.vendor(pools, mapped),
        "blas_loaded": backends.loaded(),
        "mkl_cbwr": blas.mkl_cbwr(mapped),
        "cpu": cpu_info(),
        "env_vars": steering_env(),
        "mechanisms": mechanisms(probe_neighbors),
    }


def mechanisms(probe_neighbors: bool = False) -> dict[str, Any]:
    """What the harness can name when results move between environments (issue #10 points 6, 7
    and 11): scikit-learn's sign convention, whether lobpcg's start vectors follow numpy's global
    seed (what scanpy sets) or only an ``rng`` passed to svds, and (``probe_neighbors``) whether
    scanpy's default ``pp.neighbors`` runs on 5,000 cells (None) or the error it raised."""
    sklearn = installed_version("scikit-learn") or "0"
    out: dict[str, Any] = {
        "sign_convention": support.sign_convention(sklearn),
        "lobpcg_global_seed_reproducible": support.lobpcg_is_seeded(rng_passed=False),
        "lobpcg_rng_passed_reproducible": support.lobpcg_is_seeded(rng_passed=True),
    }
    if probe_neighbors:
        # Imported here: readers import this module, and downstream imports scanpy. The probe
        # costs ~30 s (pynndescent's numba compilation), so only the suite runs it, once.
        from harness.analysis import downstream

        out["default_neighbors_problem"] = downstream.default_neighbors_problem()
    return out


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def threads(fp: dict[str, Any]) -> int | None:
    """The BLAS thread count the environment ran with (env var if set, else threadpoolctl's).

    ``fp`` is read back from disk: :mod:`harness.results.sidecars` has checked its types, and a
    pool without a thread count says nothing here.
    """
    env = fp.get("env_vars") or {}
    for key in THREAD_VARS:
        if str(env.get(key, "")).isdigit():
            return int(env[key])
    pools = [p for p in fp.get("threadpools") or [] if p.get("user_api") == "blas"]
    n = pools[0].get("num_threads") if pools else None
    return n if type(n) is int else None


def label(fp: dict[str, Any]) -> str:
    """A person's name for an environment: 'scanpy 1.11.5 · sklearn 1.9.1 · numpy 2.4.6 · OpenBLAS 0.3.31 SkylakeX · 2 threads'."""
    pk = fp.get("packages") or {}
    parts = [
        f"{short} {pk[dist]}"
        for dist, short in (
            ("scanpy", "scanpy"),
            ("scikit-learn", "sklearn"),
            ("numpy", "numpy"),
            ("scipy", "scipy"),
        )
        if pk.get(dist)
    ]
    if (fp.get("env_vars") or {}).get("HARNESS_SKLEARNEX") and pk.get("scikit-learn-intelex"):
        parts.append(f"sklearnex {pk['scikit-learn-intelex']}")
    if fp.get("blas"):
        parts.append(fp["blas"])
    env = fp.get("env_vars") or {}
    # Set variables that do not show in the library's report: a forced kernel family equal to
    # the autodetected one, MKL's reproducibility mode.
    parts += [f"{k}={env[k]}" for k in ("OPENBLAS_CORETYPE", "MKL_CBWR") if env.get(k)]
    n = threads(fp)
    if n is not None:
        by_env = any(str(env.get(k, "")).isdigit() for k in THREAD_VARS)
        parts.append(f"{n} thread" + ("s" if n != 1 else "") + (" (env)" if by_env else ""))
    return " · ".join(parts) if parts else "unknown environment"


# --- dask schedulers (issue #13) ------------------------------------------------------------------


def process_report() -> dict[str, Any]:
    """One process's BLAS as the fingerprint names it (run in each dask worker via the client)."""
    pools = blas.threadpools()
    mapped = blas.mapped_libraries()
    return {
        "hostname": platform.node(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "threadpools": pools,
        "blas": blas.vendor(pools, mapped),
        "env_vars": steering_env(),
    }


def dask_scheduler(
    kind: str, workers: int, threads_per_worker: int, reports: dict[str, dict[str, Any]], **extra
) -> dict[str, Any]:
    """What a dask run ran on: the scheduler, its workers and each worker's BLAS.

    ``reports`` maps each worker (its address; "driver" for the threaded scheduler, whose tasks
    run in this process) to its :func:`process_report`, read through the client.
    """
    return {
        "scheduler": kind,
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "worker_blas": {name: r.get("blas") for name, r in sorted(reports.items())},
        "worker_blas_threads": {
            name: sorted({p.get("num_threads") for p in r.get("threadpools") or []} - {None})
            for name, r in sorted(reports.items())
        },
        "worker_reports": dict(sorted(reports.items())),
        **extra,
    }
