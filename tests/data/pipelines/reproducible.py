"""A user's script that is reproducible: PCA, then a kNN graph and clustering on a copy."""

import scanpy as sc

adata = sc.datasets.pbmc68k_reduced()
sc.pp.pca(adata, random_state=123, svd_solver="arpack")
scaled = sc.pp.scale(adata, copy=True)
sc.pp.pca(adata, random_state=123, svd_solver="arpack")
sc.pp.neighbors(adata, n_neighbors=15, method="gauss")
sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=0)
