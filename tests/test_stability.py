"""The stability checks on planted non-determinism, in this process and in fresh processes.

A fake solver that adds 1e-7 relative noise on every call must be reported not reproducible by
the repeat and process checks; the deterministic one must be reported bitwise. The noise is
planted in the fresh interpreters through a ``sitecustomize`` module on PYTHONPATH, so the
production code runs unchanged.
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import numpy as np
import pytest

from harness.bench import datasets, pca, stability
from harness.bench.stability import Config

CONFIG = Config("pbmc68k_reduced", "dense", "float64", "arpack")

NOISY = textwrap.dedent(
    """
    import os
    import numpy as np
    import harness.bench.pca as pca

    _real = pca.run_pca

    def _noisy(adata, **kwargs):
        result = _real(adata, **kwargs)
        rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
        bump = lambda a: a * (1 + 1e-7 * rng.standard_normal(a.shape))
        return pca.PCAResult(bump(result.embedding), bump(result.loadings), result.variance, result.variance_ratio)

    pca.run_pca = _noisy
    """
)


def _noisy_run_pca(real):
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))

    def run(adata, **kwargs):
        r = real(adata, **kwargs)
        bump = lambda a: a * (1 + 1e-7 * rng.standard_normal(a.shape))  # noqa: E731
        return pca.PCAResult(bump(r.embedding), bump(r.loadings), r.variance, r.variance_ratio)

    return run


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A private result cache and results folder, so nothing computed elsewhere is reused."""
    monkeypatch.setenv("HARNESS_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("HARNESS_COMMIT", f"{os.getpid():040d}")
    monkeypatch.setenv("ASV_ENV_NAME", f"test-{tmp_path.name}")
    monkeypatch.setenv("HARNESS_MACHINE", "testbox")
    cache = tmp_path / "cache"
    cache.mkdir()
    real = datasets.cache_dir()
    if real.exists():  # reuse the prepared datasets, not the PCA results
        for item in real.iterdir():
            if item.name != "pca":
                (cache / item.name).symlink_to(item)
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    return tmp_path


def test_deterministic_solver_is_bitwise_under_repeat_and_process(isolated):
    stability.run_fresh_processes([CONFIG])
    for check in ("repeat", "process"):
        record = stability.evaluate(check, CONFIG)
        assert record["value"] == 0.0, check
        assert record["comparison"]["bitwise"], check


def test_noisy_solver_is_not_reproducible_under_repeat(isolated, monkeypatch):
    monkeypatch.setattr(stability, "run_pca", _noisy_run_pca(pca.run_pca))
    record = stability.evaluate("repeat", CONFIG)
    assert not record["comparison"]["bitwise"]
    assert 1e-9 < record["value"] < 1e-5
    assert record["n_samples"] == stability.REPEATS


def test_noisy_solver_is_not_reproducible_across_processes(isolated, monkeypatch):
    site = isolated / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NOISY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    stability.run_fresh_processes([CONFIG])
    record = stability.evaluate("process", CONFIG)
    assert not record["comparison"]["bitwise"]
    assert 1e-9 < record["value"] < 1e-5


def test_process_check_leaves_a_cross_environment_artifact(isolated):
    from harness.bench import digests as artifacts

    stability.run_fresh_processes([CONFIG])
    (digest,) = artifacts.load_all(isolated / "results")
    assert digest.params == CONFIG.params()
    assert digest.condition["process"] == "fresh-1"
    result = stability.cached(CONFIG, stability.FRESH[0])
    assert np.array_equal(
        digest.sample.embedding, result.embedding[digest.cells].astype(np.float64)
    )


def test_a_rerun_on_a_warm_cache_still_leaves_its_digest(isolated, monkeypatch):
    """Issue #10 point 4: a second results folder (another asv run) reusing the cached results
    computes nothing, and still gets the digest of every cached result."""
    from harness.bench import digests as artifacts

    stability.run_fresh_processes([CONFIG])
    monkeypatch.setenv("HARNESS_RESULTS", str(isolated / "rerun"))
    stability.run_fresh_processes([CONFIG])  # warm: no child runs
    (digest,) = artifacts.load_all(isolated / "rerun")
    (first,) = artifacts.load_all(isolated / "results")
    assert digest.params == first.params == CONFIG.params()
    assert np.array_equal(digest.sample.embedding, first.sample.embedding)


def test_digests_are_classified_in_the_precision_pca_ran_in(tmp_path):
    """1 vs 2 BLAS threads on float32 input: rounding-level differences, which the calibrated
    verdict must judge with float32's unit roundoff (the precision PCA ran in), even when the
    results are compared in float64; judged as float64 solves, the same pair is beyond rounding."""
    from threadpoolctl import threadpool_limits

    from harness.bench import verdicts

    x = datasets.matrix("pbmc68k_reduced", "dense", "float32")
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            results.append(pca.run_pca(pca.make_anndata(x.copy()), solver="arpack"))
    assert not np.array_equal(results[0].loadings, results[1].loadings)
    problem = verdicts.problem("pbmc68k_reduced", "dense", "float32", tmp_path)
    as64 = [
        pca.PCAResult(*(np.asarray(a, np.float64) for a in r.arrays().values())) for r in results
    ]

    def worst(dtypes: list[str]) -> str:
        side = verdicts.side("arpack", "dense", dtypes, as64[0].loadings)
        return verdicts.judge_pair(problem, as64[0], as64[1], side, side).worst

    assert worst(["float32", "float64"]) in ("within rounding", "explained")
    assert worst(["float64"]) == "beyond rounding"


def test_the_result_cache_is_keyed_by_the_steering_variables(isolated, monkeypatch):
    """One asv environment run again without an ambient OPENBLAS_CORETYPE (issue #10's AMD VM
    exported one) must not read back the results computed under it."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    forced = stability.cache_folder()
    assert forced == stability.cache_folder()  # stable within a run
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    unset = stability.cache_folder()
    assert unset != forced
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert stability.cache_folder() not in (forced, unset)


def test_the_parallel_evaluation_pass_gives_the_in_process_records(isolated):
    """Two children at once (inputs split between them) leave, for every check, the record the
    same check evaluates in this process on the same cached samples."""
    configs = [
        Config("pbmc68k_reduced", layout, "float32", solver)
        for layout in ("dense", "csr")
        for solver in ("arpack", "covariance_eigh")
    ]
    stability.run_fresh_processes(configs)
    checks = ("repeat", "threads", "seed", "layout", "accuracy", "process")
    stability.prepare_evaluations(configs, checks, timeout=600, workers=2)
    for config in configs:
        for check in checks:
            kept = stability._cached_evaluation(check, config)
            assert kept is not None, (check, config)
            assert kept == stability.evaluate(check, config), (check, config)


def test_inputs_stay_whole_and_the_largest_are_spread():
    items = [
        (check, Config(d, layout, "float32", solver))
        for d in ("synthetic_small", "pbmc68k_reduced")
        for layout in ("dense", "csr")
        for solver in ("arpack", "full")
        for check in ("repeat", "seed")
    ]
    groups = stability._by_input(items, 2)
    assert len(groups) == 2 and sum(map(len, groups)) == len(items)
    assert {x for g in groups for x in g} == set(items)
    for g in groups:  # one of the two large inputs (2,000 x 1,000) each
        assert len({c.layout for _, c in g if c.dataset == "synthetic_small"}) == 1
    inputs = [{(c.dataset, c.layout, c.dtype) for _, c in g} for g in groups]
    assert not inputs[0] & inputs[1]
    assert len(stability._by_input(items, 8)) == 4  # no more groups than inputs


def test_children_that_run_out_of_time_are_killed(isolated):
    payload = {"samples": [CONFIG.params()], "threads": "single"}
    with pytest.raises(subprocess.TimeoutExpired):
        stability._run_children([payload, payload], timeout=0.5)
    survivors = subprocess.run(
        ["pgrep", "-f", "-P", str(os.getpid()), "harness.bench.stability"],
        capture_output=True,
        text=True,
    )
    assert survivors.stdout == ""
