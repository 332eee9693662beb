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

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import io
from harness.bench import store
from harness.bench.pca import PCAResult

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
    from harness.analysis.metrics import sha256_array

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


def load(path: Path) -> Digest:
    """Read one digest; raises ValueError (with the reason) for anything that is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = z["meta"]
            meta = json.loads(str(raw) if raw.dtype.kind == "U" else raw.tobytes().decode())
            sample = PCAResult(z["embedding"], z["loadings"], z["variance"], z["variance_ratio"])
            cells, genes = z["cells"], z["genes"]
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ValueError(f"not a harness artifact ({type(err).__name__}: {err})") from None
    key = store.RunKey(meta["machine"], meta["commit"], meta["env_name"])
    return Digest(
        key, meta["params"], meta["condition"], meta["sha256"], meta["shape"], sample, cells, genes
    )


def iter_paths(results_dir: Path) -> Iterator[Path]:
    yield from sorted(Path(results_dir).glob(f"*/{store.HARNESS_DIR}/*/artifacts/*.npz"))


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
    from harness.analysis import metrics

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
