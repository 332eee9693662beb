"""Reading results: asv's result files and the harness's sidecars into pandas and dataclasses."""

from __future__ import annotations

from harness.results.reader import Loaded, load_results, scan

__all__ = ["Loaded", "load_results", "scan"]
