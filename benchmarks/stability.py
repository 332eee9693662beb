"""Run-to-run deviation of ``sc.pp.pca`` for every source of variation (see harness.bench.stability).

One class per check. Each ``track_`` returns the worst aligned relative deviation of its check
(0.0 when bitwise identical); asv keeps one number per benchmark (asv#543), so the full
comparison (every metric of harness.analysis.metrics) goes to a sidecar record beside asv's results.
"""

from __future__ import annotations

import itertools

from harness.bench import datasets, stability
from harness.bench.stability import Config
from harness.vocabulary import CHECKS

from .common import DATASETS, PCAParams, record_environment, skip


class _Check:
    """dataset x layout x dtype x svd_solver; a check that does not apply is skipped in setup."""

    check: str
    param_names = ["dataset", "layout", "dtype", "svd_solver"]
    params = PCAParams.params[:4]
    unit = stability.UNIT
    timeout = 1200

    # Shared by every check (asv keys setup_cache by its source): the fresh-process results.
    def setup_cache(self):
        record_environment()
        configs = [Config(*p) for p in itertools.product(*self.params) if p[0] in DATASETS]
        stability.run_fresh_processes(configs)
        stability.prepare_evaluations(configs, CHECKS, timeout=2400)

    setup_cache.timeout = 5400

    def setup(self, *params):
        self.config = Config(*params)
        # The evaluation pass keeps only checks that apply: no need to read the input again
        # (0.3-0.4 s a process for 10x_10k dense, 84 processes in the quick profile).
        if stability.is_evaluated(self.check, self.config):
            return
        try:
            reason = stability.not_applicable(self.check, self.config)
        except datasets.DatasetUnavailable as err:
            skip(str(err), self.benchmark, self.config.params())
        if reason:
            skip(reason)

    @property
    def benchmark(self) -> str:
        return f"stability.{type(self).__name__}.track_{self.check}"

    def _track(self):
        return stability.track(self.check, self.config, self.benchmark)


class Repeat(_Check):
    check = "repeat"

    def track_repeat(self, *params):
        return self._track()


class Process(_Check):
    check = "process"

    def track_process(self, *params):
        return self._track()


class Threads(_Check):
    check = "threads"

    def track_threads(self, *params):
        return self._track()


class Seed(_Check):
    check = "seed"

    def track_seed(self, *params):
        return self._track()


class Layout(_Check):
    check = "layout"

    def track_layout(self, *params):
        return self._track()


class DType(_Check):
    check = "dtype"

    def track_dtype(self, *params):
        return self._track()


class Accuracy(_Check):
    check = "accuracy"

    def track_accuracy(self, *params):
        return self._track()
