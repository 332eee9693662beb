"""A user's script: PCA, scale in place, PCA again (the pattern behind scverse/scanpy#3628)."""

import scanpy as sc

adata = sc.datasets.pbmc68k_reduced()
sc.pp.pca(adata, random_state=123, svd_solver="arpack")
first = adata.obsm["X_pca"].copy()
sc.pp.scale(adata)
sc.pp.pca(adata, random_state=123, svd_solver="arpack")
print("max |X_pca change|:", abs(adata.obsm["X_pca"] - first).max())
