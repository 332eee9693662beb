"""Digests of format 2 (issue #10 points 3 and 4): full loadings, 500 cells, XOR anchors, and the
calibrated verdict across environments, on real PCA results with known relations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from harness.analysis import rounding
from harness.bench import datasets, pca, store, verdicts
from harness.bench import digests as artifacts
from harness.bench.pca import PCAResult

KEY = store.RunKey("m", "c" * 40, "env")


@pytest.fixture(scope="module")
def case():
    """pbmc68k_reduced dense float64: its exact problem, arpack at 1 and 2 threads, randomized."""
    x = datasets.matrix("pbmc68k_reduced", "dense", "float64")
    problem = rounding.problem_of(x)
    runs = {}
    for name, solver, threads in (
        ("t1", "arpack", 1),
        ("t2", "arpack", 2),
        ("rand", "randomized", 1),
    ):
        with threadpool_limits(limits=threads):
            runs[name] = pca.run_pca(pca.make_anndata(x.copy()), solver=solver)
    return problem, runs


def _digest(problem, result: PCAResult, solver: str, env: str):
    side = verdicts.side(solver, "dense", ["float64", result.loadings.dtype], result.loadings)
    params = {
        "dataset": "pbmc68k_reduced",
        "layout": "dense",
        "dtype": "float64",
        "svd_solver": solver,
    }
    key = replace(KEY, env_name=env)
    return artifacts.make(
        result,
        key,
        params,
        {"threads": 1, "random_state": 0, "process": "fresh-1", "index": 0},
        problem=problem,
        rho=side.rho(problem),
        path=side.path,
    )


def _save_load(tmp_path: Path, digest, env: str) -> artifacts.Digest:
    path = tmp_path / "vm" / "harness" / env / "artifacts" / "pbmc.npz"
    artifacts.save(digest, path)
    return artifacts.load(path)


def _flipped(r: PCAResult, i: int) -> PCAResult:
    emb, load = r.embedding.copy(), r.loadings.copy()
    emb[:, i] *= -1
    load[:, i] *= -1
    return PCAResult(emb, load, r.variance, r.variance_ratio)


def test_round_trip_keeps_full_loadings_and_500_cells(case, tmp_path):
    problem, runs = case
    d = _save_load(tmp_path, _digest(problem, runs["t1"], "arpack", "e1"), "e1")
    assert d.sample.loadings.shape == runs["t1"].loadings.shape  # every gene
    assert d.sample.loadings.dtype == runs["t1"].loadings.dtype  # as scanpy returned it
    assert d.sample.embedding.shape == (500, 50)
    assert np.array_equal(d.sample.loadings, runs["t1"].loadings)
    assert d.judging is not None and d.judging.spectrum.shape == (51,)


def test_verdicts_across_digests_match_known_relations(case, tmp_path):
    """Same result: bitwise. One column negated: sign only there. Another thread count:
    rounding. randomized against arpack: beyond rounding (its residuals are not rounding)."""
    problem, runs = case
    base = _save_load(tmp_path, _digest(problem, runs["t1"], "arpack", "e1"), "e1")
    same = _save_load(tmp_path, _digest(problem, runs["t1"], "arpack", "e2"), "e2")
    flip = _save_load(tmp_path, _digest(problem, _flipped(runs["t1"], 3), "arpack", "e3"), "e3")
    threads = _save_load(tmp_path, _digest(problem, runs["t2"], "arpack", "e4"), "e4")
    assert artifacts.compare_digests(base, same)["verdict"] == "bitwise"
    c = artifacts.compare_digests(base, flip)
    assert c["verdict"] == "sign only" and c["component_verdicts"].count("sign only") == 1
    c = artifacts.compare_digests(base, threads)
    if not c["bitwise"]:
        assert c["verdict"] in rounding.ROUNDING
    # The same call in the table's own judge gives the same verdicts as the digest's judge.
    j = rounding.judge(
        problem,
        (runs["t1"].loadings, runs["t1"].embedding),
        (runs["t2"].loadings, runs["t2"].embedding),
        base.judging.rho,
        threads.judging.rho,
    )
    assert j.verdicts == c.get("component_verdicts", j.verdicts)


def test_randomized_against_arpack_is_beyond_rounding(case, tmp_path):
    problem, runs = case
    a = _save_load(tmp_path, _digest(problem, runs["t1"], "arpack", "e1"), "e1")
    # Another configuration key would get another anchor; here the same file name shares it.
    b = _save_load(tmp_path, _digest(problem, runs["rand"], "arpack", "e5"), "e5")
    assert artifacts.compare_digests(a, b)["verdict"] == "beyond rounding"


def test_a_tampered_anchor_is_refused_with_the_reason(case, tmp_path):
    problem, runs = case
    path = tmp_path / "vm" / "harness" / "e1" / "artifacts" / "pbmc.npz"
    artifacts.save(_digest(problem, runs["t1"], "arpack", "e1"), path)
    anchor = next((tmp_path / "vm" / "harness" / "anchors").glob("*loadings*"))
    arr = np.load(anchor)
    arr[0, 0] += 1.0
    np.save(anchor, arr)
    with pytest.raises(ValueError, match="sha256"):
        artifacts.load(path)
    anchor.unlink()
    with pytest.raises(ValueError, match="anchor"):
        artifacts.load(path)


def test_anchor_is_the_first_writer_and_stays(case, tmp_path):
    problem, runs = case
    _save_load(tmp_path, _digest(problem, runs["t1"], "arpack", "e1"), "e1")
    anchor = next((tmp_path / "vm" / "harness" / "anchors").glob("*loadings*"))
    before = anchor.read_bytes()
    d = _save_load(tmp_path, _digest(problem, runs["t2"], "arpack", "e2"), "e2")
    assert anchor.read_bytes() == before
    assert np.array_equal(d.sample.loadings, runs["t2"].loadings)
    # Nothing but the anchors themselves is left beside them (no temporary or link source).
    assert all(p.suffix == ".npy" and not p.name.startswith(".") for p in anchor.parent.iterdir())


def test_references_a_rounding_apart_still_judge_and_others_do_not(case, tmp_path):
    """Each environment computes the exact problem with its own BLAS: spectra a rounding apart
    (another kernel) are the same problem; spectra 1% apart are another input."""
    problem, runs = case
    a = _save_load(tmp_path, _digest(problem, runs["t1"], "arpack", "e1"), "e1")
    eps = float(np.finfo(np.float64).eps)
    near = replace(problem, values=problem.values * (1 + 8 * eps))
    far = replace(problem, values=problem.values * 1.01)
    b = _save_load(tmp_path, _digest(near, runs["t2"], "arpack", "e2"), "e2")
    c = _save_load(tmp_path, _digest(far, runs["t2"], "arpack", "e3"), "e3")
    assert not np.array_equal(a.judging.spectrum, b.judging.spectrum)
    got = artifacts.compare_digests(a, b)
    assert got["verdict"] in (*rounding.ROUNDING, "bitwise"), got.get("verdict_reason")
    got = artifacts.compare_digests(a, c)
    assert got["verdict"] is None and "beyond their rounding" in got["verdict_reason"]
