"""Child process of ``harness doctor --pipeline``: run a user's script with scanpy's steps recorded.

``python -m harness.doctor.tracer SCRIPT OUT.json``: every public function of ``scanpy.pp`` and
``scanpy.tl`` is replaced by a wrapper that fingerprints its AnnData argument before and after the
call (and any AnnData it returns) and notes the caller's file and line. No tracing hooks: the
script runs at full speed apart from the hashing.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from scipy import sparse

import harness
from harness import io
from harness.bench.datasets import matrix_sha256

#: Directories whose frames are not "the caller" (scanpy, anndata and this harness).
_SKIP: list[str] = []


class Recorder:
    """The calls of one run, and the AnnData objects they saw (kept alive so ids stay unique)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.objects: dict[int, int] = {}
        self.alive: list[Any] = []
        self.depth = 0
        self.last_pca: dict[int, np.ndarray] = {}

    def object_id(self, adata: Any) -> int:
        """A stable per-run number for an AnnData object (first seen = 0)."""
        key = id(adata)
        if key not in self.objects:
            self.objects[key] = len(self.objects)
            self.alive.append(adata)
        return self.objects[key]


def array_sha256(x: Any) -> str:
    """sha256 of an array-like's type, shape, dtype and bytes (sparse: its CSR buffers)."""
    if x is None:
        return "none"
    if sparse.issparse(x):
        return matrix_sha256(x if x.format in ("csr", "csc") else x.tocsr())
    if isinstance(x, np.ndarray):
        return matrix_sha256(x)
    if hasattr(x, "columns") and hasattr(x, "index"):  # a DataFrame in obsm
        return hashlib.sha256(
            pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes()
        ).hexdigest()
    try:
        return matrix_sha256(np.asarray(x))
    except Exception:  # dask, backed or exotic arrays: name the type, do not compute
        return f"unhashed {type(x).__name__}"


def _column_sha256(col: Any) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(col, index=False).to_numpy().tobytes()
    ).hexdigest()


def fingerprint(adata: Any) -> dict[str, str]:
    """sha256 of X, each layer, obsm and obsp entry, the boolean var columns (masks) and obs columns."""
    fp = {"shape": f"{adata.n_obs}x{adata.n_vars}", "X": array_sha256(adata.X)}
    for group in ("layers", "obsm", "obsp"):
        mapping = getattr(adata, group)
        for key in list(mapping):
            fp[f"{group}/{key}"] = array_sha256(mapping[key])
    for col in adata.var.columns:
        if adata.var[col].dtype == bool:
            fp[f"var/{col}"] = _column_sha256(adata.var[col])
    for col in adata.obs.columns:
        fp[f"obs/{col}"] = _column_sha256(adata.obs[col])
    return fp


def pca_input_keys(kwargs: dict[str, Any], fp: dict[str, str]) -> dict[str, str]:
    """The fingerprint entries ``sc.pp.pca`` reads: its matrix and its gene mask."""
    layer = kwargs.get("layer")
    mask = kwargs.get("mask_var", "highly_variable")
    keys = ["X" if layer is None else f"layers/{layer}"]
    if isinstance(mask, str):
        keys.append(f"var/{mask}")
    return {k: fp.get(k, "absent") for k in keys}


def _anndata_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    for value in (*args[:1], kwargs.get("adata"), kwargs.get("data")):
        if isinstance(value, AnnData):
            return value
    return None


def _caller() -> tuple[str, int]:
    """File and line of the nearest frame outside scanpy, anndata and the harness."""
    frame = sys._getframe(2)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not any(name.startswith(d) for d in _SKIP) and not name.startswith("<frozen"):
            return name, frame.f_lineno
        frame = frame.f_back
    return "?", 0


def _pca_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    keep = ("layer", "mask_var", "n_comps", "svd_solver", "random_state", "zero_center")
    return {k: repr(kwargs[k]) for k in keep if k in kwargs}


def _pca_change(rec: Recorder, obj: int, emb: Any) -> float | None:
    """Largest sign-aligned |X_pca difference| from the previous PCA call on the same object."""
    if emb is None:
        return None
    emb = np.asarray(emb, dtype=np.float64)
    prev = rec.last_pca.get(obj)
    rec.last_pca[obj] = emb
    if prev is None or prev.shape != emb.shape:
        return None
    sign = np.where(np.einsum("ij,ij->j", prev, emb) < 0, -1.0, 1.0)
    return float(np.abs(prev - emb * sign).max(initial=0.0))


def wrap(module: str, name: str, func: Any, rec: Recorder) -> Any:
    """``func`` with its AnnData input and output fingerprinted into ``rec``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        adata = _anndata_arg(args, kwargs)
        if rec.depth or adata is None:  # calls made by scanpy itself, or on plain arrays
            return func(*args, **kwargs)
        file, line = _caller()
        before = fingerprint(adata)
        rec.depth += 1
        try:
            result = func(*args, **kwargs)
        finally:
            rec.depth -= 1
        entry = {
            "index": len(rec.calls),
            "function": f"{module}.{name}",
            "file": file,
            "line": line,
            "object": rec.object_id(adata),
            "before": before,
            "after": fingerprint(adata),
            "returned": fingerprint(result) if isinstance(result, AnnData) else None,
        }
        if name == "pca":
            entry["pca_input"] = pca_input_keys(kwargs, before)
            entry["pca_params"] = _pca_params(kwargs)
            out = result if isinstance(result, AnnData) else adata
            entry["x_pca_change"] = _pca_change(rec, entry["object"], out.obsm.get("X_pca"))
        rec.calls.append(entry)
        return result

    return wrapper


def install(rec: Recorder) -> int:
    """Replace the public functions of scanpy.pp and scanpy.tl with wrappers; returns how many."""
    for mod in (sc, anndata, harness):
        _SKIP.append(os.path.dirname(os.path.abspath(mod.__file__)) + os.sep)
    n = 0
    for short, module in (("pp", sc.pp), ("tl", sc.tl)):
        for name in dir(module):
            obj = getattr(module, name)
            if not name.startswith("_") and inspect.isfunction(obj):
                setattr(module, name, wrap(short, name, obj, rec))
                n += 1
    return n


def _error(err: BaseException, script: str) -> dict[str, Any]:
    frames = traceback.extract_tb(err.__traceback__)
    here = os.path.abspath(script)
    line = next((f.lineno for f in reversed(frames) if os.path.abspath(f.filename) == here), None)
    text = "".join(traceback.format_exception(err))
    return {"type": type(err).__name__, "message": str(err), "line": line, "traceback": text}


def run(script: str, out: str) -> int:
    """Run ``script`` as ``__main__`` with the wrappers installed; write the record to ``out``."""
    rec = Recorder()
    n_wrapped = install(rec)
    sys.argv = [script]
    sys.path.insert(0, str(Path(script).resolve().parent))
    error = None
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as err:
        if err.code not in (None, 0):
            error = {
                "type": "SystemExit",
                "message": f"exit status {err.code}",
                "line": _error(err, script)["line"],
            }
    except BaseException as err:  # the user's script may raise anything; the parent reports it
        error = _error(err, script)
    record = {
        "calls": rec.calls,
        "error": error,
        "wrapped": n_wrapped,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
    }
    io.write_text(out, io.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
