"""The timing-noise figures (harness.analysis.noise) on runtimes with known quartiles."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.analysis import noise

RUN = {"machine": "m", "commit": "c" * 40, "env_name": "e"}


def _runtime(solver: str, value: float, rel_iqr: float, threads: int = 1) -> dict:
    half = value * rel_iqr / 2
    return {
        **RUN,
        "benchmark": "pca.PCA.time_pca",
        "dataset": "d",
        "layout": "csr",
        "dtype": "float32",
        "svd_solver": solver,
        "threads": threads,
        "status": "ok",
        "value": value,
        "q_25": value - half,
        "q_75": value + half,
    }


def _repeat(solver: str, deviation: float) -> dict:
    return {
        **RUN,
        "benchmark": "stability.Repeat.track_repeat",
        "dataset": "d",
        "layout": "csr",
        "dtype": "float32",
        "svd_solver": solver,
        "threads": math.nan,
        "status": "ok",
        "value": deviation,
        "q_25": math.nan,
        "q_75": math.nan,
    }


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _runtime("arpack", 0.100, 0.01),
            _runtime("full", 0.200, 0.02),
            _runtime("covariance_eigh", 0.050, 0.03),
            _runtime("lobpcg", 0.300, 0.30),  # identical calls differ: its work varies
            _runtime("randomized", 0.010, 0.50),  # under 20 ms: left out
            _runtime("arpack", 0.100, 0.90, threads=2),  # all cores: left out
            _repeat("arpack", 0.0),
            _repeat("full", 0.0),
            _repeat("lobpcg", 1.2e-3),
        ]
    )


def test_figures_over_the_runtimes_that_count(frame):
    got = noise.summarize(frame)
    assert got.n == 4
    assert got.within == pytest.approx(0.75)
    assert got.median == pytest.approx(0.025)
    assert got.p90 == pytest.approx(0.03 + 0.7 * (0.30 - 0.03))  # linear, between 3rd and 4th
    assert got.worst == pytest.approx(0.30)
    assert "not met" in got.line()


def test_runtimes_whose_identical_calls_differ_are_also_shown_apart(frame):
    got = noise.summarize(frame)
    assert got.varying == 1
    assert got.steady_median == pytest.approx(0.02)
    assert got.steady_p90 == pytest.approx(0.02 + 0.8 * 0.01)
    assert got.line().endswith(
        "; without the 1 runtime whose identical calls differ in their bits (repeat check), "
        "median 2.0%, p90 2.8%"
    )


def test_without_repeat_checks_nothing_is_set_apart(frame):
    got = noise.summarize(frame[~frame["benchmark"].str.endswith("track_repeat")])
    assert got.varying == 0
    assert (got.steady_median, got.steady_p90) == (got.median, got.p90)
    assert "without the" not in got.line()


def test_a_met_target_says_so():
    tight = pd.DataFrame([_runtime("arpack", 0.1, 0.01), _runtime("full", 0.2, 0.015)])
    assert (
        noise.summarize(tight)
        .line()
        .split("(target")[1]
        .startswith(" median <= 2%, p90 <= 5%: met)")
    )


def test_no_runtime_that_counts_is_one_line():
    assert noise.summarize(pd.DataFrame([_runtime("arpack", 0.01, 0.1)])).line() == (
        "timing noise: no time_pca result of 20 ms or more at 1 thread"
    )
