"""Compact digests of PCA results, so environments can be compared with each other later.

asv keeps one number per benchmark and cannot set environments side by side (asv#370, asv#789).
Each digest keeps, per (machine, commit, environment, configuration):

- exact: sha256 of the full embedding (X_pca), loadings (PCs) and variance, and the full
  variance vector; so "bitwise identical" and the explained-variance difference are exact;
- subsampled: float64 values of X_pca for ``N_CELLS`` evenly spaced cells and of the loadings for
  ``N_GENES`` evenly spaced genes. Deviations, sign flips and the per-component classification
  computed from them are lower bounds on the full-matrix values; principal angles are those of
  the subsampled loading rows, an approximation of the full subspace angles. kNN agreement is not
  available across environments (it needs every cell).

At 12 + 12 rows x 50 components x 8 bytes plus the variance and metadata a digest is about
10 kB compressed: under 1 MB for the quick profile's 96 configurations of one environment.
"""

from __future__ import annotations

import io as stdio
import json
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import io
from harness.analysis import metrics
from harness.analysis.metrics import sha256_array
from harness.bench import store
from harness.bench.pca import PCAResult
from harness.vocabulary import CONFIG_KEYS, HARNESS_DIR

N_CELLS = 12
N_GENES = 12


def spaced(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced indices into ``range(n)`` (all of them when n <= k)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64))


@dataclass(frozen=True)
class Digest:
    """The stored digest of one PCA result; ``sample`` holds the subsampled rows as a PCAResult."""

    key: store.RunKey
    params: dict[str, Any]
    condition: dict[str, Any]
    sha256: dict[str, str]
    shape: dict[str, int]
    sample: PCAResult
    cells: np.ndarray = field(repr=False)
    genes: np.ndarray = field(repr=False)

    @property
    def config(self) -> tuple[Any, ...]:
        return tuple(self.params[k] for k in sorted(self.params))


def make(
    result: PCAResult, key: store.RunKey, params: dict[str, Any], condition: dict[str, Any]
) -> Digest:
    """Digest a full PCA result."""
    cells = spaced(result.embedding.shape[0], N_CELLS)
    genes = spaced(result.loadings.shape[0], N_GENES)
    sample = PCAResult(
        embedding=result.embedding[cells].astype(np.float64),
        loadings=result.loadings[genes].astype(np.float64),
        variance=np.asarray(result.variance, dtype=np.float64),
        variance_ratio=np.asarray(result.variance_ratio, dtype=np.float64),
    )
    return Digest(
        key=key,
        params=dict(params),
        condition=dict(condition),
        sha256={
            "embedding": sha256_array(result.embedding),
            "loadings": sha256_array(result.loadings),
            "variance": sha256_array(np.asarray(result.variance)),
        },
        shape={
            "n_obs": result.embedding.shape[0],
            "n_vars": result.loadings.shape[0],
            "n_comps": result.n_comps,
        },
        sample=sample,
        cells=cells,
        genes=genes,
    )


def save(digest: Digest, path: Path) -> None:
    """Write a digest as compressed .npz (atomically): arrays plus the JSON ``meta`` as bytes.

    Compression matters: X_pca is float32 upcast to float64, so half its bytes are zeros.
    """
    meta = {
        **digest.key.to_dict(),
        "params": digest.params,
        "condition": digest.condition,
        "sha256": digest.sha256,
        "shape": digest.shape,
    }
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            meta=np.frombuffer(io.dumps(meta).encode(), dtype=np.uint8),  # str arrays are UTF-32
            embedding=digest.sample.embedding,
            loadings=digest.sample.loadings,
            variance=digest.sample.variance,
            variance_ratio=digest.sample.variance_ratio,
            cells=digest.cells,
            genes=digest.genes,
        )


#: The most a digest may unpack to. A real one is about 12 kB (24 rows x 50 components of
#: float64 plus the variance and metadata); the bound leaves room for several hundred
#: components while a zip crafted to unpack to gigabytes is refused before it is read.
MAX_UNPACKED_BYTES = 16 << 20
_ARRAYS = ("meta", "embedding", "loadings", "variance", "variance_ratio", "cells", "genes")
#: What :class:`harness.bench.stability.Condition` writes: threads (None: the environment's
#: default), seed, process and the n-th call of a repeat.
_CONDITION = {
    "threads": lambda v: v is None or _is_int(v),
    "random_state": lambda v: _is_int(v),
    "process": lambda v: isinstance(v, str),
    "index": lambda v: _is_int(v),
}
_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def load(path: Path) -> Digest:
    """Read one digest; raises ValueError (with the reason) for anything that is not one.

    Checked once, here: a zip of at most :data:`MAX_UNPACKED_BYTES` holding the arrays
    :func:`save` writes, metadata naming the run, finite float rows whose shapes agree with the
    metadata, integer cell and gene indices.
    """
    arrays = _read_arrays(path)
    try:
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not a harness artifact (metadata is not JSON)") from None
    meta = _checked_meta(meta)
    sample = PCAResult(
        arrays["embedding"], arrays["loadings"], arrays["variance"], arrays["variance_ratio"]
    )
    _check_arrays(sample, arrays["cells"], arrays["genes"], meta["shape"])
    key = store.RunKey(meta["machine"], meta["commit"], meta["env_name"])
    return Digest(
        key,
        meta["params"],
        meta["condition"],
        meta["sha256"],
        meta["shape"],
        sample,
        arrays["cells"],
        arrays["genes"],
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a digest file, checking first what the zip and each header say they hold."""
    try:
        raw = io.read_regular(path, MAX_UNPACKED_BYTES)
    except io.UnreadableError as err:
        raise ValueError(f"not a harness artifact ({err.reason})") from None
    try:
        with zipfile.ZipFile(stdio.BytesIO(raw)) as zf:
            unpacked = sum(m.file_size for m in zf.infolist())
            if unpacked > MAX_UNPACKED_BYTES:
                raise ValueError(
                    f"unpacks to {unpacked:,} bytes, "
                    f"more than the {MAX_UNPACKED_BYTES:,} a digest may hold"
                )
            arrays = {k: _read_member(zf, f"{k}.npy") for k in _ARRAYS}
    except KeyError as err:
        raise ValueError(f"not a harness artifact (no array {err})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"not a harness artifact ({err})") from None
    if arrays["meta"].dtype != np.uint8 or arrays["meta"].ndim != 1:
        raise ValueError("not a harness artifact (metadata is not bytes)")
    return arrays


def _read_member(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """One .npy member; ValueError when its header claims more data than the member stores
    (numpy would allocate the claimed size before reading) or an object array."""
    info = zf.getinfo(name)
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in _HEADERS:
            raise ValueError(f"{name}: .npy format version {version} is not numpy's")
        shape, fortran, dtype = _HEADERS[version](fh)
        size = math.prod(shape) * dtype.itemsize
        if dtype.hasobject or size > info.file_size:
            raise ValueError(f"{name}: the header claims more than the member holds")
        data = fh.read(size)
    if len(data) != size:
        raise ValueError(f"{name}: truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _checked_meta(meta: Any) -> dict[str, Any]:
    """The metadata of a digest, or ValueError naming what is missing or of the wrong type."""
    if not isinstance(meta, dict):
        raise ValueError("not a harness artifact (metadata is not a JSON object)")
    for k in ("machine", "commit", "env_name"):
        if not isinstance(meta.get(k), str) or not meta[k]:
            raise ValueError(f"not a harness artifact (metadata without {k!r})")
    for k in ("params", "condition", "sha256", "shape"):
        if not isinstance(meta.get(k), dict):
            raise ValueError(f"not a harness artifact (metadata without a {k!r} object)")
    params, condition = meta["params"], meta["condition"]
    for k in CONFIG_KEYS:
        if not isinstance(params.get(k), str):
            raise ValueError(f"not a harness artifact (params.{k} is not a name)")
    plain = (str, int, float, bool, type(None))
    if not all(isinstance(v, plain) for v in (*params.values(), *condition.values())):
        raise ValueError("not a harness artifact (a parameter that is not a plain value)")
    for k, check in _CONDITION.items():
        if k not in condition or not check(condition[k]):
            raise ValueError(f"not a harness artifact (condition.{k} missing or of the wrong type)")
    if sorted(meta["sha256"]) != ["embedding", "loadings", "variance"] or not all(
        isinstance(v, str) for v in meta["sha256"].values()
    ):
        raise ValueError("not a harness artifact (sha256 is not three hex digests)")
    shape = meta["shape"]
    if not all(type(shape.get(k)) is int and shape[k] > 0 for k in ("n_obs", "n_vars", "n_comps")):
        raise ValueError("not a harness artifact (shape without positive n_obs, n_vars, n_comps)")
    return meta


def _is_int(v: Any) -> bool:
    return type(v) is int and -(1 << 63) <= v < 1 << 63


def _check_arrays(
    sample: PCAResult, cells: np.ndarray, genes: np.ndarray, shape: dict[str, int]
) -> None:
    """ValueError unless the rows are finite floats whose shapes fit the indices and metadata."""
    k = shape["n_comps"]
    expected = {
        "embedding": (len(cells), k),
        "loadings": (len(genes), k),
        "variance": (k,),
        "variance_ratio": (k,),
    }
    for name, want in expected.items():
        arr = getattr(sample, name)
        if arr.dtype.kind != "f" or arr.shape != want:
            raise ValueError(
                f"not a harness artifact ({name} is {arr.dtype} {arr.shape}, expected float {want})"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"not a harness artifact ({name} holds NaN or infinity)")
    for name, idx, n in (("cells", cells, shape["n_obs"]), ("genes", genes, shape["n_vars"])):
        if (
            idx.dtype.kind not in "iu"
            or idx.ndim != 1
            or (idx.size and not 0 <= idx.min() <= idx.max() < n)
        ):
            raise ValueError(f"not a harness artifact ({name} are not indices below {n})")


def iter_paths(results_dir: Path) -> Iterator[Path]:
    yield from sorted(Path(results_dir).glob(f"*/{HARNESS_DIR}/*/artifacts/*.npz"))


def load_all(results_dir: Path, warn: Callable[[str], None] | None = None) -> list[Digest]:
    """Every readable digest under a results folder; unreadable ones are reported to ``warn``."""
    digests = []
    for path in iter_paths(results_dir):
        try:
            digests.append(load(path))
        except ValueError as err:
            if warn:
                warn(f"{path}: {err}")
    return digests


def compare_digests(a: Digest, b: Digest) -> dict[str, Any]:
    """Compare two digests: exact sha equality plus harness.analysis.metrics on the subsample."""
    exact = {part: a.sha256[part] == b.sha256[part] for part in a.sha256}
    out: dict[str, Any] = {"bitwise": all(exact.values()), "bitwise_parts": exact}
    if (
        a.shape != b.shape
        or not np.array_equal(a.cells, b.cells)
        or not np.array_equal(a.genes, b.genes)
    ):
        out["comparable"] = False
        return out
    # The digest holds float64 copies of a few genes: classify with the precision the PCA ran in
    # (the least precise input dtype) and the size of the eigenproblem it solved.
    dtypes = [np.dtype(d.params.get("dtype", "float64")) for d in (a, b)]
    u = max(float(np.finfo(d).eps) / 2 for d in dtypes)
    n_vars = int(a.shape.get("n_vars") or a.sample.loadings.shape[0])
    cmp = metrics.compare(a.sample, b.sample, unit_roundoff=u, n_vars=n_vars).to_dict()
    cmp.pop("bitwise", None)
    return {**cmp, **out, "comparable": True, "subsampled": True}
