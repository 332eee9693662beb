"""Benchmark and numerical-stability harness for PCA in scanpy.

``load_results`` reads any asv results folder into pandas; ``doctor`` diagnoses a user's PCA.
Nothing is imported eagerly: benchmark processes import ``harness`` before numpy so that a BLAS
backend can still be selected (harness.bench.backends), and the CLI stays quick to start.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["doctor", "load_results"]


def __getattr__(name: str) -> Any:
    if name == "load_results":
        return importlib.import_module("harness.results").load_results
    if name == "doctor":
        # The doctor package is callable as its diagnosis function (harness.doctor.__init__).
        return importlib.import_module("harness.doctor")
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
