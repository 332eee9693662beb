"""Does a change in PCA matter downstream? The kNN graph and Leiden clusters the way users build
them, each ARI reported beside its own calibration (issue #10 point 6).

Leiden is far more sensitive than PCA: on 10x_10k, replacing 1 edge of ~119,000 moves the ARI
against the unperturbed clustering to 0.83-0.99, and another Leiden seed on the identical graph to
0.52-0.82. An ARI means little without those two numbers measured on the same graph, so
:func:`compare` returns them with it.

The graph is scanpy's own (``pp.neighbors``: weighted UMAP connectivities, then ``tl.leiden``
with the igraph flavour), with an exact kNN (``transformer='sklearn'``) so that only PCA's effect
is measured, not pynndescent's approximation.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _metadata_version

import anndata as ad
import numpy as np
import scanpy as sc
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

from harness.analysis import metrics


def _dist_version(dist: str) -> str:
    try:
        return _metadata_version(dist)
    except PackageNotFoundError:
        return "none"


N_NEIGHBORS = 15  # scanpy's pp.neighbors default
OTHER_SEEDS = (1, 2, 3, 4)
EDGE_TRIALS = 4


@dataclass(frozen=True)
class Calibration:
    """How much Leiden moves on one graph with nothing changed in PCA."""

    other_seed: list[float]  # ARI of seeds OTHER_SEEDS against seed 0, same graph
    one_edge: list[float]  # ARI after replacing one random edge, seed 0


@dataclass(frozen=True)
class Downstream:
    """Agreement of the kNN graphs and Leiden clusterings of two embeddings."""

    knn_jaccard: float  # exact kNN sets (metrics.knn_jaccard)
    leiden_ari: float
    n_cells: int
    n_edges: int
    calibration: Calibration = field(default_factory=lambda: Calibration([], []))


def _adata(embedding: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.AnnData(X=np.asarray(embedding, dtype=np.float32))


def graph(embedding: np.ndarray, n_neighbors: int = N_NEIGHBORS) -> sparse.csr_matrix:
    """scanpy's weighted connectivities of an embedding, from an exact kNN."""
    adata = _adata(embedding)
    n = min(n_neighbors, adata.n_obs - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.neighbors(adata, use_rep="X", n_neighbors=n, transformer="sklearn")
    return sparse.csr_matrix(adata.obsp["connectivities"])


def leiden(connectivities: sparse.csr_matrix, seed: int = 0) -> np.ndarray:
    """``sc.tl.leiden`` (igraph flavour, 2 iterations, undirected) on given connectivities."""
    adata = _adata(np.zeros((connectivities.shape[0], 1)))
    adata.obsp["connectivities"] = connectivities
    adata.uns["neighbors"] = {"connectivities_key": "connectivities", "params": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False, random_state=seed)
    return adata.obs["leiden"].to_numpy()


def replace_one_edge(g: sparse.csr_matrix, rng: np.random.Generator) -> sparse.csr_matrix:
    """The graph with one random undirected edge moved to a random non-edge (same weight)."""
    upper = sparse.triu(g, k=1).tocoo()
    i = int(rng.integers(upper.nnz))
    weight = upper.data[i]
    lil = g.tolil(copy=True)
    lil[upper.row[i], upper.col[i]] = lil[upper.col[i], upper.row[i]] = 0
    n = g.shape[0]
    while True:
        a, b = (int(v) for v in rng.integers(n, size=2))
        if a != b and g[a, b] == 0:
            break
    lil[a, b] = lil[b, a] = weight
    out = lil.tocsr()
    out.eliminate_zeros()
    return out


_CALIBRATIONS: dict[str, Calibration] = {}


def calibrate(g: sparse.csr_matrix, seed: int = 0) -> Calibration:
    """Leiden's own sensitivity on ``g``: other seeds, and one edge replaced (cached per graph)."""
    key = hashlib.sha256(f"{_graph_key(g)}-{seed}-{_VERSIONS}".encode()).hexdigest()
    if key in _CALIBRATIONS:
        return _CALIBRATIONS[key]
    disk = metrics.DISK_CACHE / f"calibration-{key[:24]}.npz" if metrics.DISK_CACHE else None
    if disk is not None and disk.is_file():
        with np.load(disk) as z:
            cal = Calibration(other_seed=z["other_seed"].tolist(), one_edge=z["one_edge"].tolist())
        _CALIBRATIONS[key] = cal
        return cal
    base = cached_leiden(g, seed)
    rng = np.random.default_rng(seed)
    cal = Calibration(
        other_seed=[float(adjusted_rand_score(base, leiden(g, s))) for s in OTHER_SEEDS],
        one_edge=[
            float(adjusted_rand_score(base, leiden(replace_one_edge(g, rng), seed)))
            for _ in range(EDGE_TRIALS)
        ],
    )
    _CALIBRATIONS[key] = cal
    if disk is not None:
        disk.parent.mkdir(parents=True, exist_ok=True)
        tmp = disk.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, other_seed=cal.other_seed, one_edge=cal.one_edge)
        os.replace(tmp, disk)
    return cal


def warm() -> str | None:
    """Compile what pp.neighbors and tl.leiden JIT-compile (umap's numba code, about 8 s here)
    on a tiny graph, so that processes forked afterwards (asv's forkserver) inherit it; the
    reason, when this scanpy cannot build the graph this way (< 1.10), else None."""
    try:
        leiden(graph(np.random.default_rng(0).standard_normal((40, 4))))
    except (TypeError, AttributeError, ValueError) as err:
        return f"{type(err).__name__}: {err}"
    return None


#: What the graph and the clustering depend on besides their input: a disk cache shared by
#: environments keys on it, so identical embeddings are clustered once per set of versions.
_VERSIONS = "-".join(
    f"{d}{_dist_version(d)}"
    for d in ("scanpy", "umap-learn", "igraph", "leidenalg", "scikit-learn")
)


def _graph_key(g: sparse.csr_matrix) -> str:
    return hashlib.sha256(g.indptr.tobytes() + g.indices.tobytes() + g.data.tobytes()).hexdigest()


def cached_graph(embedding: np.ndarray, n_neighbors: int = N_NEIGHBORS) -> sparse.csr_matrix:
    """:func:`graph`, kept on disk (``metrics.DISK_CACHE``) by the embedding's bits and versions."""
    if metrics.DISK_CACHE is None:
        return graph(embedding, n_neighbors)
    e = np.ascontiguousarray(embedding)
    shape = (e.dtype, e.shape) if n_neighbors == N_NEIGHBORS else (e.dtype, e.shape, n_neighbors)
    key = hashlib.sha256(e.tobytes() + str(shape).encode() + _VERSIONS.encode())
    path = metrics.DISK_CACHE / f"graph-{key.hexdigest()[:24]}.npz"
    if path.is_file():
        return sparse.load_npz(path).tocsr()
    g = graph(embedding, n_neighbors)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    sparse.save_npz(tmp, g)
    os.replace(tmp, path)
    return g


def cached_leiden(g: sparse.csr_matrix, seed: int = 0) -> np.ndarray:
    """:func:`leiden`, kept on disk by the graph's bits, the seed and the versions."""
    if metrics.DISK_CACHE is None:
        return leiden(g, seed)
    key = hashlib.sha256(f"{_graph_key(g)}-{seed}-{_VERSIONS}".encode()).hexdigest()[:24]
    path = metrics.DISK_CACHE / f"leiden-{key}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    labels = np.asarray(leiden(g, seed)).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, labels)
    os.replace(tmp, path)
    return labels


def compare(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    *,
    calibrated: bool = True,
    n_neighbors: int = N_NEIGHBORS,
) -> Downstream:
    """kNN Jaccard and Leiden ARI of ``emb_b`` against ``emb_a``, with ``emb_a``'s calibration
    (``n_neighbors`` at most the cells less one)."""
    n = min(n_neighbors, emb_a.shape[0] - 1)
    ga = cached_graph(emb_a, n)
    gb = ga if np.array_equal(emb_a, emb_b) else cached_graph(emb_b, n)
    ari = 1.0 if gb is ga else float(adjusted_rand_score(cached_leiden(ga), cached_leiden(gb)))
    return Downstream(
        knn_jaccard=1.0 if gb is ga else metrics.knn_jaccard(emb_a, emb_b, n),
        leiden_ari=ari,
        n_cells=int(ga.shape[0]),
        n_edges=int(sparse.triu(ga, k=1).nnz),
        calibration=calibrate(ga) if calibrated else Calibration([], []),
    )


def default_neighbors_problem(n_cells: int = 5000, n_dims: int = 50) -> str | None:
    """Whether scanpy's *default* ``pp.neighbors`` (pynndescent) runs on ``n_cells`` cells here:
    None, or the exception it raised (scanpy 1.11.5 with scipy 1.17.1 was seen to fail above
    4,096 cells: pynndescent returned a sparse array without ``getnnz``)."""
    adata = _adata(np.random.default_rng(0).standard_normal((n_cells, n_dims)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.pp.neighbors(adata, use_rep="X", n_neighbors=N_NEIGHBORS)
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None
