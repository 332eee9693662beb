"""What runs inside asv's benchmark processes: BLAS selection, datasets, the PCA call, the
stability checks, the environment fingerprint, digests and the shared result cache.

Nothing is imported here: :mod:`harness.bench.backends` must pick the BLAS before numpy loads.
"""
