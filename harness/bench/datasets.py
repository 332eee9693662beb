"""The datasets PCA is measured on: real, synthetic and the user's own, cached on disk.

Count data goes through one fixed preprocessing (normalize_total to 1e4, log1p) once, and the
result is stored as h5ad in the cache, so every environment (whatever its scanpy) reads the same
input bits. Loaders return copies; the exact matrix handed to PCA is hashed with :func:`matrix_sha256`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np
from scipy import sparse

from harness import io
from harness.bench.pca import DType, Layout, as_layout
from harness.bench.store import cache_dir

# smoke: the smallest real dataset only, for tests; study: the real datasets, for the matrix study.
# scale: the chunked on-disk datasets of harness.bench.scale_data on dask (benchmarks/dask.py);
# the in-memory suite has no dataset there. dask-smoke: the same suite on a tiny store, for tests.
PROFILES = ("smoke", "study", "quick", "full", "scale", "dask-smoke")
#: The profiles the in-memory suite's smallest dataset runs in (every one but the dask ones).
IN_MEMORY_PROFILES = ("smoke", "study", "quick", "full")
#: The profiles that run benchmarks/dask.py (they need dask, distributed and zarr installed).
DASK_PROFILES = ("scale", "dask-smoke")
SCANPY_SDIST = "scanpy==1.11.5"
TENX_MEMBER = "tests/_data/10x-10k-subset.zarr"
USER_PREFIX = "user:"
_CHUNK = 5_000


def _ad():
    """anndata, imported on first use: the results readers import this module for
    :data:`DATASETS` alone, and anndata takes about 1 s to import."""
    import anndata

    return anndata


class DatasetUnavailable(Exception):
    """A dataset cannot be used here; the message names it and says why (benchmarks skip on it)."""


@dataclass(frozen=True)
class Dataset:
    """A named input: how to obtain it, whether it holds counts, in which profiles it runs."""

    name: str
    description: str
    source: Callable[[], object]
    counts: bool
    profiles: tuple[str, ...]


# --- sources ---------------------------------------------------------------------------------


def _pbmc68k_reduced():
    import scanpy as sc  # seconds to import; only this source and preprocessing need it

    # X is scanpy's scaled matrix, the input scanpy's own benchmark suite times PCA on.
    return sc.datasets.pbmc68k_reduced()


def _tenx_10k():
    store = cache_dir() / "10x-10k-subset.zarr"
    if not store.exists():
        _fetch_tenx(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = _ad().read_zarr(store)
    adata.var_names_make_unique()
    return adata


def _fetch_tenx(store: Path) -> None:
    """Download scanpy's sdist with pip and extract only the 10x zarr folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:"]
        cmd += ["--no-deps", "--disable-pip-version-check", SCANPY_SDIST, "-d", tmp]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as err:
            raise DatasetUnavailable(
                f"10x_10k: cannot download {SCANPY_SDIST} with pip ({err})"
            ) from None
        (sdist,) = Path(tmp).glob("scanpy-*.tar.gz")
        staging = Path(tempfile.mkdtemp(dir=store.parent, prefix=".10x-"))
        try:
            with tarfile.open(sdist) as tar:
                members = [m for m in tar.getmembers() if TENX_MEMBER in m.name and m.isfile()]
                if not members:
                    raise DatasetUnavailable(f"10x_10k: {sdist.name} has no {TENX_MEMBER}")
                for m in members:
                    m.name = m.name.split(TENX_MEMBER, 1)[1].lstrip("/")
                    tar.extract(m, staging, filter="data")
            os.replace(staging, store)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _synthetic(n_obs: int, n_vars: int, seed: int) -> Callable[[], object]:
    def make():
        return _ad().AnnData(X=negative_binomial_counts(n_obs, n_vars, seed))

    return make


def negative_binomial_counts(n_obs: int, n_vars: int, seed: int) -> sparse.csr_matrix:
    """Negative-binomial counts with log-normal gene means and library sizes (~90% zeros).

    Generated in chunks of cells from one SeedSequence, so memory stays bounded and the matrix
    depends only on (n_obs, n_vars, seed).
    """
    return sparse.vstack(
        [make() for make in negative_binomial_chunks(n_obs, n_vars, seed)], format="csr"
    )


def negative_binomial_chunks(
    n_obs: int, n_vars: int, seed: int
) -> Iterator[Callable[[], sparse.csr_matrix]]:
    """The chunks of :func:`negative_binomial_counts` in order, each as a call that makes it.

    Each chunk has its own generator spawned from the one SeedSequence, so the calls may run in
    any order or in parallel threads (numpy's samplers release the GIL) and give the same rows.
    """
    root = np.random.SeedSequence(seed)
    gene_seq, *cell_seqs = root.spawn(1 + -(-n_obs // _CHUNK))
    gene_rng = np.random.default_rng(gene_seq)
    gene_mean = gene_rng.lognormal(mean=-3.0, sigma=1.4, size=n_vars)
    gene_theta = gene_rng.uniform(0.5, 5.0, size=n_vars)  # per-gene inverse dispersion

    def chunk(i: int) -> sparse.csr_matrix:
        rng = np.random.default_rng(cell_seqs[i])
        rows = min(_CHUNK, n_obs - i * _CHUNK)
        library = rng.lognormal(mean=0.0, sigma=0.5, size=(rows, 1))
        mu = library * gene_mean
        p = gene_theta / (gene_theta + mu)
        return sparse.csr_matrix(rng.negative_binomial(gene_theta, p).astype(np.float32))

    return (partial(chunk, i) for i in range(len(cell_seqs)))


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "pbmc68k_reduced",
            "scanpy's pbmc68k_reduced, scaled X (700 x 765)",
            _pbmc68k_reduced,
            False,
            IN_MEMORY_PROFILES,
        ),
        Dataset(
            "10x_10k",
            "10x counts from scanpy's sdist (10,000 x 1,000)",
            _tenx_10k,
            True,
            ("study", "quick", "full"),
        ),
        Dataset(
            "synthetic_small",
            "NB counts, 2,000 x 1,000",
            _synthetic(2_000, 1_000, 0),
            True,
            ("quick", "full"),
        ),
        Dataset(
            "synthetic_medium",
            "NB counts, 20,000 x 2,000",
            _synthetic(20_000, 2_000, 1),
            True,
            ("full",),
        ),
        Dataset(
            "synthetic_large",
            "NB counts, 100,000 x 2,000",
            _synthetic(100_000, 2_000, 2),
            True,
            ("full",),
        ),
    )
}


# --- user datasets ---------------------------------------------------------------------------


def user_files() -> dict[str, Path]:
    """Files named in $HARNESS_DATASETS (colon-separated .h5ad paths), keyed 'user:<stem>'."""
    spec = os.environ.get("HARNESS_DATASETS", "")
    return {f"{USER_PREFIX}{Path(p).stem}": Path(p) for p in spec.split(os.pathsep) if p.strip()}


def profile() -> str:
    """The active profile from $HARNESS_PROFILE (quick by default)."""
    value = os.environ.get("HARNESS_PROFILE", "quick")
    if value not in PROFILES:
        raise ValueError(f"HARNESS_PROFILE={value!r}: expected one of {PROFILES}")
    return value


def names(active_profile: str | None = None) -> list[str]:
    """Dataset names for a profile, the user's files last."""
    active_profile = active_profile or profile()
    built_in = [n for n, d in DATASETS.items() if active_profile in d.profiles]
    return built_in + list(user_files())


# --- loading ---------------------------------------------------------------------------------


def preprocess_counts(adata) -> None:
    """The one fixed preprocessing for count data: normalize_total(1e4) then log1p, in place."""
    import scanpy as sc  # seconds to import; only this source and preprocessing need it

    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)


def _read_user(name: str, path: Path):
    if path.suffix != ".h5ad":
        raise DatasetUnavailable(f"{path}: not an .h5ad file")
    try:
        return _ad().read_h5ad(path)
    except FileNotFoundError:
        raise DatasetUnavailable(f"{path}: no such file") from None
    except Exception as err:  # h5py/anndata raise many types for a bad file
        raise DatasetUnavailable(
            f"{path}: cannot read as h5ad ({type(err).__name__}: {err})"
        ) from None


def _cached_h5ad(name: str) -> Path:
    """Build (once) and return the preprocessed h5ad of a built-in dataset."""
    spec = DATASETS[name]
    target = cache_dir() / f"{name}.h5ad"
    if target.exists():
        return target
    adata = spec.source()
    if spec.counts:
        preprocess_counts(adata)
    x = adata.X.astype(np.float32)
    if spec.counts and not sparse.issparse(x):
        x = sparse.csr_matrix(x)  # counts are ~90% zeros: smaller file, faster reads
    clean = _ad().AnnData(X=x, obs=adata.obs[[]], var=adata.var[[]])
    with io.atomic_path(target) as tmp:
        clean.write_h5ad(tmp)
    return target


@cache
def _load(name: str):
    if name.startswith(USER_PREFIX):
        files = user_files()
        if name not in files:
            raise DatasetUnavailable(f"{name}: not named in HARNESS_DATASETS")
        adata = _read_user(name, files[name])
    elif name in DATASETS:
        adata = _ad().read_h5ad(_cached_h5ad(name))
    else:
        raise DatasetUnavailable(f"unknown dataset {name!r}")
    check_matrix(adata.X, name)
    return adata


def load(name: str):
    """The preprocessed AnnData of ``name`` (a copy; raises DatasetUnavailable with the reason)."""
    return _load(name).copy()


@cache
def _matrix(name: str, layout: Layout, dtype: DType):
    if name not in DATASETS:  # the user's files may change between runs: never cached
        return as_layout(_load(name).X, layout, dtype)
    # Each benchmark process starts cold, and reading an h5ad and converting it costs up to
    # seconds per process; the exact matrices are kept as .npy/.npz, which load in milliseconds.
    path = (
        cache_dir()
        / "matrices"
        / f"{name}-{layout}-{dtype}.{'npy' if layout == 'dense' else 'npz'}"
    )
    if path.exists():
        return np.load(path) if layout == "dense" else sparse.load_npz(path).tocsr()
    x = as_layout(_load(name).X, layout, dtype)
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, x) if layout == "dense" else sparse.save_npz(fh, x, compressed=False)
    return x


def matrix(name: str, layout: Layout, dtype: DType):
    """The exact matrix PCA sees for (dataset, layout, dtype); a copy the caller may keep."""
    return _matrix(name, layout, dtype).copy()


def check_matrix(x, name: str, n_comps: int | None = None) -> None:
    """Raise DatasetUnavailable for an empty matrix, NaN/inf, or n_comps >= min(shape)."""
    if min(x.shape) == 0:
        raise DatasetUnavailable(f"{name}: the matrix is empty ({x.shape[0]} x {x.shape[1]})")
    values = x.data if sparse.issparse(x) else np.asarray(x)
    if not np.isfinite(values).all():
        raise DatasetUnavailable(f"{name}: the matrix holds NaN or inf")
    if n_comps is not None and n_comps >= min(x.shape):
        raise DatasetUnavailable(
            f"{name}: n_comps={n_comps} is not below min(n_obs, n_vars)={min(x.shape)}"
        )


def matrix_sha256(x) -> str:
    """sha256 over shape, dtype and the raw buffers of a C-order array or a CSR matrix."""
    parts = (x.indptr, x.indices, x.data) if sparse.issparse(x) else (x,)
    return sha256_of_parts(type(x).__name__, x.shape, x.dtype, parts)


def sha256_of_parts(kind: str, shape: tuple[int, ...], dtype, blocks: Iterable[np.ndarray]) -> str:
    """:func:`matrix_sha256` from the matrix's buffers given in pieces, in order (indptr, then
    indices, then data for CSR), so a matrix on disk is hashed without holding it in memory."""
    h = hashlib.sha256()
    h.update(f"{kind}|{tuple(shape)}|{np.dtype(dtype)}".encode())
    for block in blocks:
        h.update(np.ascontiguousarray(block).tobytes())
    return h.hexdigest()


@cache
def describe(name: str, layout: Layout, dtype: DType) -> dict[str, object]:
    """What is recorded beside the results for one input: shape, nnz, sha256 (once per process)."""
    x = _matrix(name, layout, dtype)
    nnz = int(x.nnz) if sparse.issparse(x) else int(np.count_nonzero(x))
    return {
        "dataset": name,
        "layout": layout,
        "dtype": dtype,
        "shape": list(x.shape),
        "nnz": nnz,
        "sha256": matrix_sha256(x),
    }
