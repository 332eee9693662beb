"""What each timing choice does to noise and cost, measured side by side (a script, not a test).

Runs the runtime suite's own call (harness.bench.pca.run_pca, a fresh AnnData per sample as
asv's setup gives it) for every configuration of pbmc68k_reduced and 10x_10k at threads=1, under
each variant, interleaved so that the machine's load hits every variant alike:

- clock: wall (time.perf_counter, asv's default) or CPU (time.process_time);
- pinning: the process on one core (os.sched_setaffinity) or free to migrate.

    .venv/bin/python tests/perf/noise_factors.py [--samples 8] [--rounds 2]

Prints, per variant, the share of runtimes of 20 ms or more whose IQR is within 5% of the median,
the median and 90th percentile of IQR/median, and the time spent.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import warnings

import numpy as np

# Loaded before threadpool_limits, as benchmarks/common.py does for the suite: a BLAS or OpenMP
# library loaded after the limit is set runs at its default thread count (scipy's OpenBLAS and
# scikit-learn's libgomp load on the first PCA call), so the "1-thread" calls would use 2.
import scanpy  # noqa: F401
import sklearn.decomposition  # noqa: F401
from threadpoolctl import threadpool_limits

from harness.bench import datasets, support
from harness.bench.pca import DTYPES, LAYOUTS, SOLVERS, make_anndata, run_pca

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def configs() -> list[tuple[str, str, str, str]]:
    out = []
    for ds, layout, dtype, solver in itertools.product(
        ("pbmc68k_reduced", "10x_10k"), LAYOUTS, DTYPES, SOLVERS
    ):
        if not support.unsupported_reason(solver, layout):
            out.append((ds, layout, dtype, solver))
    return out


def sample(x, solver: str, clock, pin: bool) -> float:
    cores = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {max(cores)})
    try:
        adata = make_anndata(x)
        t0 = clock()
        run_pca(adata, solver=solver)
        return clock() - t0
    finally:
        os.sched_setaffinity(0, cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    variants = [(c, p) for c in CLOCKS for p in (False, True)]
    times: dict[tuple, list[float]] = {}
    spent = dict.fromkeys(variants, 0.0)
    with threadpool_limits(limits=1):
        for cfg in configs():
            x = datasets.matrix(*cfg[:3])
            run_pca(make_anndata(x), solver=cfg[3])  # warmup
            for _ in range(args.rounds):
                for v in variants:
                    t0 = time.perf_counter()
                    for _ in range(args.samples // args.rounds):
                        times.setdefault((cfg, v), []).append(sample(x, cfg[3], CLOCKS[v[0]], v[1]))
                    spent[v] += time.perf_counter() - t0
    for v in variants:
        rel = []
        for cfg in configs():
            t = np.array(times[(cfg, v)])
            q1, med, q3 = np.percentile(t, [25, 50, 75])
            if med >= 0.020:
                rel.append((q3 - q1) / med)
        r = np.array(rel)
        print(
            f"clock={v[0]:4s} pin={v[1]!s:5s}: {len(r)} runtimes >= 20 ms; IQR <= 5% for "
            f"{(r <= 0.05).mean():.0%}; IQR/median median {np.median(r):.1%}, "
            f"p90 {np.quantile(r, 0.9):.1%}; {spent[v]:.0f} s; load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
