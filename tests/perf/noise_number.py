"""Does averaging several calls per sample (asv's ``number``) tighten the runtimes? (a script)

Runs the runtime suite's call (harness.bench.pca.run_pca at one BLAS thread, CPU time) for every
configuration of pbmc68k_reduced and 10x_10k, ``--samples`` consecutive samples per
configuration as asv takes them, under each variant, the variants interleaved configuration by
configuration so that the host's load hits them alike:

- ``number=1``: one call per sample on a fresh AnnData (what the suite does);
- ``sample>=T``: as many calls on one AnnData as fill T seconds (asv's ``number`` chosen from
  ``sample_time``), the sample being their mean.

    .venv/bin/python tests/perf/noise_number.py [--samples 6] [--targets 0.1 0.25]

Prints, per variant, the share of runtimes of 20 ms or more whose IQR is within 5% of the
median, the median and 90th percentile of IQR/median, and the seconds spent.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import numpy as np
from noise_factors import configs  # (it loads scanpy and scikit-learn before any thread limit)
from threadpoolctl import threadpool_limits

from harness.bench import datasets
from harness.bench.pca import make_anndata, run_pca


def samples(x, solver: str, n: int, calls: int) -> list[float]:
    """``n`` samples of ``calls`` calls each (CPU seconds per call)."""
    out = []
    for _ in range(n):
        adata = make_anndata(x)
        t0 = time.process_time()
        for _ in range(calls):
            run_pca(adata, solver=solver)
        out.append((time.process_time() - t0) / calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--targets", type=float, nargs="*", default=[0.1, 0.25])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    variants = [0.0, *args.targets]
    rel = {v: [] for v in variants}
    spent = dict.fromkeys(variants, 0.0)
    with threadpool_limits(limits=1):
        for cfg in configs():
            x = datasets.matrix(*cfg[:3])
            t0 = time.process_time()
            run_pca(make_anndata(x), solver=cfg[3])  # warmup, and the single call's cost
            single = time.process_time() - t0
            for v in variants:
                calls = max(1, math.ceil(v / max(single, 1e-3)))
                w0 = time.perf_counter()
                t = np.array(samples(x, cfg[3], args.samples, calls))
                spent[v] += time.perf_counter() - w0
                q1, med, q3 = np.percentile(t, [25, 50, 75])
                if med >= 0.020:
                    rel[v].append((q3 - q1) / med)
    for v in variants:
        r = np.array(rel[v])
        name = "number=1" if v == 0 else f"sample>={v:g}s"
        print(
            f"{name:14s}: {len(r)} runtimes >= 20 ms; IQR <= 5% for {(r <= 0.05).mean():.0%}; "
            f"IQR/median median {np.median(r):.1%}, p90 {np.quantile(r, 0.9):.1%}; "
            f"{spent[v]:.0f} s; load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
