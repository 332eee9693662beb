"""Datasets at the size of spatial atlases, generated chunk by chunk straight to zarr (issue #13).

The counts are the in-memory suite's (:func:`harness.bench.datasets.negative_binomial_chunks`:
negative-binomial, log-normal gene means and library sizes, about 90% zeros) and go through the
same fixed preprocessing (:func:`harness.bench.datasets.preprocess_counts`), one chunk of cells
at a time, so the matrix is never held in memory whole: both steps act row by row, and a store
holds the same values as the in-memory pipeline on the same (n_obs, n_vars, seed).

Each store is an AnnData zarr store (``X`` as CSR, ``obs``, ``var``) that dask reads lazily
(:func:`anndata.experimental.read_elem_lazy`). It is built under a temporary name and renamed
when complete, under a lock, so a killed build leaves no dataset behind; the sha256 of the exact
matrix (:func:`harness.bench.datasets.matrix_sha256` of its CSR, computed by reading the store
back in pieces) is kept in the store's attributes.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import resource
import shutil
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import zarr
from anndata.io import read_elem, sparse_dataset, write_elem
from scipy import sparse

from harness.bench import datasets
from harness.bench.store import cache_dir
from harness.vocabulary import usable_cores

#: Elements per zarr chunk of X's data and indices (4 MiB of float32): reads of a few thousand
#: cells touch a handful of chunks.
DISK_CHUNK = 1 << 20
#: Elements read at a time when the store is hashed.
HASH_BLOCK = 1 << 24
ATTR = "harness"
#: The stores hold float32 values, as the in-memory suite's cached datasets do.
DTYPE = "float32"
GENERATOR = "negative_binomial_chunks, then normalize_total(1e4) and log1p per chunk, float32 CSR"


@dataclass(frozen=True)
class ScaleDataset:
    """A chunked synthetic dataset: its shape, seed, row-chunk sizes and profiles."""

    name: str
    n_obs: int
    n_vars: int
    seed: int
    #: Rows per dask chunk: the first is the default, the others feed the chunk-size check.
    chunk_rows: tuple[int, ...]
    profiles: tuple[str, ...]

    @property
    def description(self) -> str:
        return f"NB counts on disk (zarr), {self.n_obs:,} x {self.n_vars:,}"


SCALE_DATASETS: dict[str, ScaleDataset] = {
    d.name: d
    for d in (
        # seed 2 and 100,000 x 2,000: the counts of the in-memory synthetic_large.
        ScaleDataset("scale_100k", 100_000, 2_000, 2, (10_000, 25_000), ("scale",)),
        ScaleDataset("scale_300k", 300_000, 2_000, 3, (10_000, 25_000), ("scale",)),
        ScaleDataset("scale_1m", 1_000_000, 2_000, 4, (10_000, 25_000), ("scale",)),
        ScaleDataset("dask_tiny", 4_000, 200, 5, (1_000, 2_500), ("dask-smoke",)),
    )
}


class BuildError(Exception):
    """A store could not be built or read back; the message names it and says why."""


def names(active_profile: str | None = None) -> list[str]:
    """The scale datasets of a profile (none outside the dask profiles)."""
    active_profile = active_profile or datasets.profile()
    return [n for n, d in SCALE_DATASETS.items() if active_profile in d.profiles]


def spec(name: str) -> ScaleDataset:
    """The dataset called ``name`` (DatasetUnavailable when there is none)."""
    if name not in SCALE_DATASETS:
        raise datasets.DatasetUnavailable(f"unknown scale dataset {name!r}")
    return SCALE_DATASETS[name]


def store_path(name: str) -> Path:
    return cache_dir() / "scale" / f"{name}.zarr"


def meta(path: Path) -> dict[str, Any] | None:
    """The harness attributes of a complete store (None when absent or incomplete)."""
    try:
        attrs = zarr.open_group(path, mode="r").attrs.asdict()
    except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError):
        return None
    value = attrs.get(ATTR)
    return value if isinstance(value, dict) and value.get("sha256") else None


def ensure(name: str, progress: Callable[[str], None] | None = None) -> Path:
    """The store of ``name``, built once (under a lock; others wait and reuse it)."""
    ds = spec(name)
    target = store_path(name)
    if meta(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target.with_name(f"{target.name}.lock")):
        if meta(target):  # built by another process while this one waited
            return target
        _remove_leftovers(target)
        build(ds, target, progress)
    return target


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) for the block."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Temporary stores of killed builds (only a lock holder builds, so none is in use)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists() and not meta(target):  # a store without its attributes is not complete
        shutil.rmtree(target)


def build(ds: ScaleDataset, target: Path, progress: Callable[[str], None] | None = None) -> dict:
    """Generate ``ds`` into ``target`` (absent) via a temporary store; returns its attributes."""
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        root = zarr.open_group(tmp, mode="w", zarr_format=2)
        nnz = _write_x(root, ds, progress)
        index = pd.RangeIndex(ds.n_obs).astype(str)
        write_elem(root, "obs", pd.DataFrame(index=index))
        write_elem(root, "var", pd.DataFrame(index=pd.RangeIndex(ds.n_vars).astype(str)))
        root.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        attrs = {
            **asdict(ds),
            "nnz": nnz,
            "sha256": store_sha256(tmp),
            "generator": GENERATOR,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        root.attrs[ATTR] = attrs
        os.replace(tmp, target)
        return attrs
    except Exception as err:
        raise BuildError(f"{ds.name}: cannot build {target} ({type(err).__name__}: {err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_x(root: zarr.Group, ds: ScaleDataset, progress: Callable[[str], None] | None) -> int:
    """Append the preprocessed chunks to X in order, generating the next ones in threads."""
    chunks = _preprocessed_chunks(ds)
    kwargs = {"chunks": (DISK_CHUNK,)}
    x = None
    nnz = rows = 0
    for block in chunks:
        if x is None:
            write_elem(root, "X", block, dataset_kwargs=kwargs)
            x = sparse_dataset(root["X"])
        else:
            x.append(block)
        nnz += block.nnz
        rows += block.shape[0]
        if progress:
            progress(f"{ds.name}: {rows:,} / {ds.n_obs:,} cells")
    return nnz


def _preprocessed_chunks(ds: ScaleDataset) -> Iterator[sparse.csr_matrix]:
    """The chunks of the matrix in order; at most two ahead are made at once (bounded memory)."""
    makers = datasets.negative_binomial_chunks(ds.n_obs, ds.n_vars, ds.seed)
    workers = max(1, min(2, usable_cores()))
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        for make in makers:
            pending.append(pool.submit(_preprocess, make))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _preprocess(make: Callable[[], sparse.csr_matrix]) -> sparse.csr_matrix:
    adata = ad.AnnData(X=make())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets.preprocess_counts(adata)
    x = sparse.csr_matrix(adata.X, dtype=np.float32)
    x.sort_indices()
    return x


def store_sha256(path: Path) -> str:
    """:func:`harness.bench.datasets.matrix_sha256` of the store's X, read in pieces."""
    group = zarr.open_group(path, mode="r")["X"]
    shape = tuple(int(n) for n in group.attrs["shape"])
    indptr = group["indptr"][:]
    data, indices = group["data"], group["indices"]

    def pieces(array) -> Iterator[np.ndarray]:
        for start in range(0, array.shape[0], HASH_BLOCK):
            yield array[start : start + HASH_BLOCK]

    blocks = itertools.chain([indptr], pieces(indices), pieces(data))  # lazily: one at a time
    return datasets.sha256_of_parts("csr_matrix", shape, data.dtype, blocks)


def load_in_memory(name: str) -> sparse.csr_matrix:
    """The whole matrix of a dataset as one in-memory CSR (the in-memory comparison)."""
    return read_matrix(ensure(name))


def read_matrix(path: Path) -> sparse.csr_matrix:
    """The whole X of a store as one in-memory CSR."""
    return sparse.csr_matrix(read_elem(zarr.open_group(path, mode="r")["X"]))


def describe(name: str) -> dict[str, Any]:
    """What inputs.jsonl records of a store: shape, nnz, sha256, where it is, how it was made."""
    path = ensure(name)
    m = meta(path) or {}
    return {
        "dataset": name,
        "layout": "zarr",
        "dtype": DTYPE,
        "shape": [m.get("n_obs"), m.get("n_vars")],
        "nnz": m.get("nnz"),
        "sha256": m.get("sha256"),
        "store": str(path),
        "generator": m.get("generator"),
        "build_seconds": m.get("seconds"),
    }
