"""Is the timing noise this process's own, or the host's? (a script, not a test)

Runs a few of the suite's noisiest configurations at one BLAS thread, 10 calls each, a fresh
AnnData per call as asv's setup gives it, and prints wall and CPU time (median, IQR/median) and
the share of CPU time the hypervisor stole meanwhile (/proc/stat). Equal wall and CPU time with
no steal means nothing else in the guest took the core: what varies is the host.

    .venv/bin/python tests/perf/host_noise.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np

# Loaded before threadpool_limits, as benchmarks/common.py does for the suite: a BLAS or OpenMP
# library loaded after the limit is set runs at its default thread count (scipy's OpenBLAS and
# scikit-learn's libgomp load on the first PCA call), so the "1-thread" calls would use 2.
import scanpy  # noqa: F401
import sklearn.decomposition  # noqa: F401
from threadpoolctl import threadpool_limits

from harness.bench import datasets
from harness.bench.pca import make_anndata, run_pca

CONFIGS = [
    ("pbmc68k_reduced", "csr", "float32", "covariance_eigh"),
    ("pbmc68k_reduced", "csr", "float32", "arpack"),
    ("synthetic_small", "csr", "float32", "arpack"),
    ("synthetic_small", "dense", "float32", "auto"),
    ("10x_10k", "csr", "float64", "arpack"),
]


def _cpu_ticks() -> tuple[int, int]:
    """(all ticks, steal ticks) from the first line of /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    return sum(fields), fields[7]


def _stats(t: list[float]) -> str:
    q1, m, q3 = np.percentile(np.array(t[2:]), [25, 50, 75])
    return f"{m * 1e3:.0f} ms, IQR {100 * (q3 - q1) / m:.0f}%"


def main() -> None:
    warnings.simplefilter("ignore")
    total0, steal0 = _cpu_ticks()
    for cfg in CONFIGS:
        wall, cpu = [], []
        with threadpool_limits(limits=1):
            for _ in range(10):
                adata = make_anndata(datasets.matrix(*cfg[:3]))
                w0, c0 = time.perf_counter(), time.process_time()
                run_pca(adata, solver=cfg[3])
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
        print(f"{' '.join(cfg)}: wall {_stats(wall)} | CPU {_stats(cpu)}", flush=True)
    total1, steal1 = _cpu_ticks()
    print(f"steal: {(steal1 - steal0) / max(1, total1 - total0):.2%} of CPU ticks meanwhile")


if __name__ == "__main__":
    main()
