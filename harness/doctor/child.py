"""The PCA child processes of ``harness doctor``: their entry point, and the parent's side.

The parent writes a plan (JSON) and starts ``python -c _CHILD PLAN``; the child runs each planned
variation of the user's call, saves one .npz per run and a meta JSON (seconds, errors and, for
the main process, the environment's fingerprint), and prints a mark per run for the progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from harness import io
from harness.bench.fingerprint import collect
from harness.bench.pca import PCAResult, as_layout, run_pca
from harness.doctor.model import Call, Variation
from harness.doctor.process import run_child
from harness.errors import HarnessError

_MARK = "@@doctor "
_CHILD = (
    "import sys; from harness.doctor.child import _child_main; sys.exit(_child_main(sys.argv[1]))"
)


# --- in the child ------------------------------------------------------------------------------


def _child_main(plan_path: str) -> int:
    """Entry point of a child: run each planned variation, write one .npz each and a meta JSON."""
    spec = json.loads(Path(plan_path).read_text())
    out = Path(spec["out"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = ad.read_h5ad(spec["data"])
    import scanpy  # noqa: F401  (imported before timing, so the first run's time is PCA only)

    meta: dict[str, Any] = {"seconds": {}, "errors": {}}
    for raw in spec["variations"]:
        v = Variation(**raw)
        print(f"{_MARK}start {v.name}", flush=True)
        t0 = time.perf_counter()
        try:
            _save(out / f"{v.name}.npz", _run_variation(adata, spec, v))
        except Exception as err:  # reported per variation; the parent decides what is fatal
            meta["errors"][v.name] = f"{type(err).__name__}: {err}"
        meta["seconds"][v.name] = time.perf_counter() - t0
        print(f"{_MARK}done {v.name}", flush=True)
    if spec.get("fingerprint"):
        meta["fingerprint"] = collect()
    io.write_text(out / f"{spec['process']}.json", io.dumps(meta))
    return 0


def _run_variation(adata: Any, spec: dict[str, Any], v: Variation) -> PCAResult:
    run = ad.AnnData(X=_convert(adata.X, v.layout, v.dtype), var=adata.var.copy())
    mask = "mask" if "mask" in run.var.columns else None
    limits = threadpool_limits(limits=v.threads) if v.threads else contextlib.nullcontext()
    with limits:
        return run_pca(
            run,
            solver=v.solver,
            n_comps=spec["n_comps"],
            random_state=v.random_state,
            zero_center=spec["zero_center"],
            mask_var=mask,
            **spec["extra"],
        )


def _convert(x, layout: str | None, dtype: str | None):
    """A copy of ``x`` in another layout and/or dtype (same layout and dtype when both are None)."""
    if layout is not None:
        return as_layout(x, layout, dtype or x.dtype)
    if sparse.issparse(x):
        return x.astype(dtype or x.dtype, copy=True)
    return np.array(x, dtype=dtype or x.dtype, order="K", copy=True)


def _save(path: Path, result: PCAResult) -> None:
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **dataclasses.asdict(result))


# --- in the parent -----------------------------------------------------------------------------


def load(path: Path) -> PCAResult:
    """One run's result, as the child saved it."""
    with np.load(path) as z:
        return PCAResult(**{k: z[k] for k in z.files})


def spawn(
    tmp: Path,
    process: str,
    runs: Sequence[Variation],
    data: Path,
    call: Call,
    bar: Any,
    *,
    what: str,
    timeout: float,
) -> dict[str, Any]:
    """Run ``runs`` in one new process, advancing ``bar`` as each finishes; returns its meta.

    ``what`` names the input in errors; the process is stopped after ``timeout`` seconds.
    """
    spec = {
        "process": process,
        "data": str(data),
        "out": str(tmp),
        "n_comps": call.n_comps,
        "zero_center": call.zero_center,
        "extra": call.extra,
        "fingerprint": process == "main",
        "variations": [dataclasses.asdict(v) for v in runs],
    }
    plan_path = tmp / f"{process}-plan.json"
    io.write_text(plan_path, json.dumps(spec))
    cmd = [sys.executable, "-c", _CHILD, str(plan_path)]
    # stderr goes to a file: a full stderr pipe would block the child while we read stdout.
    with open(tmp / f"{process}.stderr", "w+") as err:
        rc = run_child(
            cmd,
            what=f"{what}: the PCA child process",
            timeout=timeout,
            stderr=err,
            on_line=lambda line: _advance(bar, line),
        )
        if rc != 0:
            err.seek(0)
            tail = [line for line in err.read().splitlines() if line.strip()][-1:] or ["no message"]
            raise HarnessError(f"the PCA child process failed (exit {rc}): {tail[0]}")
    return json.loads((tmp / f"{process}.json").read_text())


def _advance(bar: Any, line: str) -> None:
    """Move the progress bar on a child's mark line (other output is ignored)."""
    if line.startswith(_MARK):
        state, name = line[len(_MARK) :].split(maxsplit=1)
        bar.set_postfix_str(f"pca {name.strip()}")
        if state == "done":
            bar.update(1)
