"""The history's PCA checks on one installed scanpy: ``python -m harness.history.probe SPEC OUT``.

Runs inside a commit's environment (asv.scanpy.conf.json), as a child of the history driver.
For every configuration (dataset x layout x dtype x solver) at one BLAS thread it calls the
suite's own :func:`harness.bench.pca.run_pca` ``1 + samples`` times: the first call warms up,
every call's outputs are hashed (a configuration whose calls disagree is "nondeterministic"),
and the last ``samples`` calls are timed by CPU time, as the suite times one thread. A call that
raises is recorded with its error. (run_pca silences scanpy's warnings, so a solver scanpy
replaces shows as the other solver's bits: the write-up lists such groups.)
The outputs go to a content-addressed blob (full loadings, 500 cells of X_pca, per-component
hashes) in the cache, so identical results across commits are stored once.

Exit codes: 0 done, 3 scanpy (or the harness) does not import: the commit is unusable.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Import failures are the commit's, not the probe's: reported as exit code 3 with the reason.
try:
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from harness import io
    from harness.bench import datasets
    from harness.bench.digests import column_hashes, spaced
    from harness.bench.pca import PCAResult, make_anndata, run_pca
except Exception as err:
    print(f"probe: import failed: {type(err).__name__}: {err}", file=sys.stderr)
    sys.exit(3)

N_CELLS = 500
EXIT_IMPORT = 3


def result_sha(r: PCAResult) -> str:
    """One sha256 over every output (embedding, loadings, variance, variance ratio)."""
    h = hashlib.sha256()
    for name, a in r.arrays().items():
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_blob(folder: Path, sha: str, r: PCAResult) -> None:
    """Store what a comparison needs of a result once, under its sha (atomic, never rewritten)."""
    path = folder / sha[:2] / f"{sha}.npz"
    if path.exists():
        return
    cells = spaced(r.embedding.shape[0], N_CELLS)
    arrays = {
        "loadings": r.loadings,
        "embedding_cells": r.embedding[cells],
        "cells": cells,
        "variance": r.variance,
        "variance_ratio": r.variance_ratio,
        "col_sha": np.array(column_hashes(r.embedding, r.loadings)),
        "col_sha_neg": np.array(column_hashes(r.embedding, r.loadings, sign=-1)),
        "n_obs": np.array(r.embedding.shape[0]),
    }
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def check(x, solver: str, samples: int, blobs: Path) -> dict[str, Any]:
    """Run one configuration ``1 + samples`` times; its state, hash and timings."""
    shas, times = [], []
    last = None
    for i in range(1 + samples):
        adata = make_anndata(x.copy())
        t0 = time.process_time()
        try:
            last = run_pca(adata, solver=solver)
        except Exception as err:  # the commit's PCA raising is a result, not a probe error
            line = traceback.format_exception_only(type(err), err)[-1].strip()
            return {"state": "raised", "error": line[:500], "times": []}
        elapsed = time.process_time() - t0
        if i > 0:
            times.append(elapsed)
        shas.append(result_sha(last))
    if len(set(shas)) > 1:
        return {"state": "nondeterministic", "distinct": len(set(shas)), "times": times}
    save_blob(blobs, shas[0], last)
    return {"state": "ok", "sha256": shas[0], "times": times}


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    out: dict[str, Any] = {"python": sys.version.split()[0]}
    for dist in ("scanpy", "anndata", "numpy", "scipy", "scikit-learn"):
        out[dist] = version(dist)
    out["blas"] = [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for lib in threadpool_info()
    ]
    return out


def run(spec: dict[str, Any], out: Path) -> int:
    """Every configuration of ``spec``; the records are written atomically to ``out``."""
    try:
        import scanpy  # noqa: F401
    except Exception as err:
        print(f"probe: import scanpy failed: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_IMPORT
    blobs = Path(spec["blobs"])
    rows: list[dict[str, Any]] = [{"kind": "header", "versions": versions(), "t0": time.time()}]
    started = time.perf_counter()
    with threadpool_limits(limits=spec.get("threads", 1)):
        for dataset in spec["datasets"]:
            for layout in spec["layouts"]:
                for dtype in spec["dtypes"]:
                    x = datasets.matrix(dataset, layout, dtype)
                    for solver in spec["solvers"]:
                        config = {
                            "dataset": dataset,
                            "layout": layout,
                            "dtype": dtype,
                            "svd_solver": solver,
                        }
                        t = time.perf_counter()
                        rec = check(x, solver, spec["samples"], blobs)
                        rows.append(
                            {"kind": "config", **config, **rec, "wall": time.perf_counter() - t}
                        )
    rows.append({"kind": "footer", "wall": time.perf_counter() - started})
    io.write_jsonl(out, rows)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.history.probe SPEC.json OUT.jsonl", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    return run(spec, Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
