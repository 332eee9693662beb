"""PCA benchmarks for asv.

The BLAS/LAPACK backend named by $HARNESS_BLAS is loaded here, before any benchmark module
imports numpy; an unavailable backend fails the import with the reason (never a silent fallback).
"""

from harness.bench import backends

backends.select_from_env()
