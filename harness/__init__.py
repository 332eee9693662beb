"""Benchmark and numerical-stability harness for PCA in scanpy.

``load_results`` reads any asv results folder into pandas; ``doctor`` diagnoses a user's PCA.
Nothing is imported eagerly: benchmark processes import ``harness`` before numpy so that a BLAS
backend can still be selected (harness.backends), and the CLI stays quick to start.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["doctor", "load_results"]


def __getattr__(name: str) -> Any:
    if name == "load_results":
        return importlib.import_module("harness.results").load_results
    if name == "doctor":
        function = importlib.import_module("harness.doctor").doctor
        # Importing the submodule bound ``harness.doctor`` to the module; the API is the function.
        globals()["doctor"] = function
        return function
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
