"""A user's script whose input changes between runs: noise drawn without a seed before PCA."""

import numpy as np
import scanpy as sc

adata = sc.datasets.pbmc68k_reduced()
noise = np.random.default_rng().normal(0.0, 1e-3, adata.X.shape)
adata.X = adata.X + noise.astype(np.float32)
sc.pp.pca(adata, random_state=123, svd_solver="arpack")
