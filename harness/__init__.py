"""Benchmark and numerical-stability harness for PCA in scanpy.

``load_results`` reads any asv results folder into pandas; ``doctor`` diagnoses a user's PCA.
Both modules keep their heavy imports (scanpy, pandas) inside functions, so importing
``harness`` stays cheap inside benchmark processes.
"""

from __future__ import annotations

# Bound after the submodule import on purpose: ``harness.doctor`` is the function, not the module.
from harness.doctor import doctor
from harness.results import load_results

__all__ = ["doctor", "load_results"]
