"""A user's script that fails before it reaches PCA."""

import scanpy as sc

adata = sc.datasets.pbmc68k_reduced()
raise ValueError("min_genes must be positive")
