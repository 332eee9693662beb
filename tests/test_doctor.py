"""``harness doctor DATA.h5ad`` through the real command line and API, on real scanpy runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

PBMC_CELLS, PBMC_GENES, PBMC_HVG = 700, 765, 309
#: Every calibrated verdict but "beyond rounding": what the same exact algorithm must get.
NOT_BEYOND = ("bitwise", "sign only", "within rounding", "explained", "undetermined")


def run_cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m harness doctor ARGS`` in a new process, as a user runs it."""
    cmd = [sys.executable, "-m", "harness", "doctor", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)


def write_h5ad(path: Path, x, **layers) -> Path:
    import anndata as ad

    adata = ad.AnnData(X=x)
    for key, value in layers.items():
        adata.layers[key] = value
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def pbmc(tmp_path_factory) -> Path:
    """scanpy's pbmc68k_reduced as a user's file (scaled X, var['highly_variable'] with 309 genes)."""
    import scanpy as sc

    path = tmp_path_factory.mktemp("pbmc") / "pbmc68k_reduced.h5ad"
    sc.datasets.pbmc68k_reduced().write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def pbmc_all_genes(tmp_path_factory) -> Path:
    """pbmc68k_reduced without the HVG column, so PCA sees all 765 genes (BLAS then uses threads)."""
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    del adata.var["highly_variable"]
    path = tmp_path_factory.mktemp("pbmc_all") / "pbmc_all_genes.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def doctor_run(pbmc_all_genes, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path_factory.mktemp("report") / "report.json"
    proc = run_cli(pbmc_all_genes, "--random-state", 123, "--format", "json", "--out", out)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def test_reproducible_call_exits_0(doctor_run):
    proc, report = doctor_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # --out: the report went to the file
    assert "Traceback" not in proc.stderr
    assert report["reproducible"] is True
    repeats = {e["name"]: e for e in report["repeats"]}
    assert set(repeats) == {"repeat_same_process", "repeat_same_process_2", "repeat_new_process"}
    assert repeats["repeat_same_process_2"]["same_as_previous"] is True
    assert all(e["bitwise"] and e["knn_jaccard"] == 1.0 for e in repeats.values())
    assert report["input"]["n_obs"] == PBMC_CELLS and report["input"]["n_vars"] == PBMC_GENES
    assert report["input"]["kind"] == "scaled"
    assert report["call"]["resolved_solver"] == "arpack"
    assert report["environment"]["packages"]["scanpy"]


def test_thread_dependence_is_found(doctor_run):
    """700 x 765 dense float32 already runs multithreaded BLAS here: 1 vs 2 threads changes the bits."""
    _, report = doctor_run
    if report["environment"]["usable_cores"] < 2:
        pytest.skip("needs at least 2 cores")
    (threads,) = [e for e in report["variations"] if e["factor"] == "threads"]
    assert threads["bitwise"] is False
    assert 0 < threads["aligned_max_rel_diff"] < 1e-2
    assert any("threadpool_limits" in fix for fix in report["fixes"])


def test_calibrated_verdicts_of_threads_and_solvers(doctor_run):
    """Known answers on real data: arpack at 1 vs 2 threads and the other exact solvers are the
    same PCA up to rounding (never beyond it); randomized PCA is not converged, so beyond."""
    from harness.vocabulary import BEYOND, EXACT, VERDICTS

    _, report = doctor_run
    by_name = {e["name"]: e for e in report["variations"] + report["repeats"]}
    for e in by_name.values():
        if e["skipped"] is None:
            assert e["verdict"] in VERDICTS and e["not_judged"] is None, e["name"]
            assert sum(e["verdict_counts"].values()) == 50
            assert e["rounding_level"] == (e["verdict"] in EXACT)
            assert "classification" not in e["comparison"]  # the old Davis-Kahan rule is gone
    threads = [e for e in by_name.values() if e["factor"] == "threads"]
    assert threads and all(e["verdict"] in NOT_BEYOND for e in threads)
    for solver in ("covariance_eigh", "full"):
        assert by_name[f"solver_{solver}"]["verdict"] in NOT_BEYOND, solver
    assert by_name["solver_randomized"]["verdict"] == BEYOND
    assert "solver_randomized" in report["beyond_rounding_components"]
    assert by_name["repeat_same_process"]["verdict"] == "bitwise"


def test_unseeded_randomized_is_beyond_rounding_against_seeded():
    """Known answer through the API: an unseeded randomized PCA against seeded ones (and against
    itself) moves beyond rounding; the markdown and fixes say so, never 'explained'."""
    import scanpy as sc

    from harness.doctor import doctor
    from harness.vocabulary import BEYOND

    adata = sc.datasets.pbmc68k_reduced()
    del adata.var["highly_variable"]
    report = doctor(adata, n_comps=20, svd_solver="randomized", random_state=None, progress=False)
    seeded = [e for e in report.variations if e.factor == "random_state"]
    assert {e.name for e in seeded} == {"random_state_0", "random_state_1"}
    assert all(e.verdict == BEYOND and e.rounding_level is False for e in seeded)
    assert all(e.verdict == BEYOND for e in report.repeats)
    assert {"random_state_0", "random_state_1"} <= set(report.beyond_rounding_components)
    md = report.to_markdown()
    assert "beyond rounding (" in md and "random_state_0" in md
    assert any("randomized PCA is not converged" in f for f in report.fixes)


def test_uncentred_call_is_judged_against_the_second_moment():
    """zero_center=False: truncated SVD's loadings are eigenvectors of X^T X / (n - 1), the exact
    problem then; seeded arpack runs agree within rounding, randomized moves beyond it."""
    import scanpy as sc

    from harness.doctor import doctor
    from harness.vocabulary import BEYOND

    adata = sc.datasets.pbmc68k_reduced()[:300, :150].copy()
    report = doctor(adata, n_comps=10, zero_center=False, svd_solver="arpack", mask_var=False,
                    progress=False)  # fmt: skip
    ran = {e.name: e for e in report.repeats + report.variations if e.skipped is None}
    assert all(e.verdict is not None and e.not_judged is None for e in ran.values())
    for name in ("random_state_1", "layout_csr", "dtype_float64"):
        assert ran[name].verdict in NOT_BEYOND, name
    assert ran["solver_randomized"].verdict == BEYOND


def test_factors_are_ranked_by_knn_effect(doctor_run):
    _, report = doctor_run
    ran = [e for e in report["variations"] if e["skipped"] is None]
    keys = [(1 - e["knn_jaccard"], e["aligned_max_rel_diff"]) for e in ran]
    assert keys == sorted(keys, reverse=True)
    assert {e["factor"] for e in ran} >= {"threads", "random_state", "dtype", "layout", "solver"}
    assert report["factors"][0]["name"] == "solver_randomized"  # the only non-converged solver
    assert len({e["factor"] for e in report["factors"]}) == len(report["factors"])


def test_api_finds_an_unseeded_call_not_reproducible():
    """The API on an in-memory AnnData: random_state=None draws a new arpack start vector per call.

    scanpy's default HVG mask is the one reported and hashed.
    """
    import scanpy as sc

    from harness.bench.datasets import matrix_sha256
    from harness.doctor import doctor

    adata = sc.datasets.pbmc68k_reduced()[:300, :150].copy()
    hvg = adata.var["highly_variable"].to_numpy()
    report = doctor(adata, n_comps=10, random_state=None, progress=False)
    assert report.reproducible is False
    assert {e.name: e.bitwise for e in report.repeats} == {
        "repeat_same_process": False,
        "repeat_same_process_2": False,
        "repeat_new_process": False,
    }
    assert "random_state=None" in report.fixes[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.reproducible = True  # type: ignore[misc]
    md = report.to_markdown()
    assert "**Verdict: NOT reproducible.**" in md
    assert f"`var['highly_variable']` ({hvg.sum()} of 150 genes)" in md
    assert (
        "sc.pp.pca(adata, n_comps=10, svd_solver=None, random_state=None, mask_var='highly_variable')"
        in md
    )
    assert "## What changes the result, ranked by effect on the kNN graph" in md
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["reproducible"] is False
    assert d["input"]["sha256"] == matrix_sha256(adata.X[:, hvg])
    assert d["input"]["n_vars"] == hvg.sum()


def test_harness_doctor_is_callable_whatever_was_imported_first():
    import importlib

    import harness

    module = importlib.import_module("harness.doctor")
    assert callable(harness.doctor)
    assert callable(module)
    assert harness.doctor.__name__ in ("doctor", "harness.doctor")


@pytest.mark.slow
def test_thread_dependence_on_synthetic_counts(tmp_path):
    """2,000 x 500 normalized log counts, dense: the smallest size tried here where 1 vs 2 threads differ."""
    import anndata as ad

    from harness.bench.datasets import negative_binomial_counts, preprocess_counts
    from harness.doctor import doctor

    adata = ad.AnnData(X=negative_binomial_counts(2_000, 500, 0))
    preprocess_counts(adata)
    adata.X = adata.X.toarray()
    report = doctor(adata, n_comps=30, progress=False)
    assert report.reproducible
    (threads,) = [e for e in report.variations if e.factor == "threads"]
    assert threads.bitwise is False and threads.verdict in NOT_BEYOND
    assert report.input.kind == "log-normalized"


# --- bad input: one line, exit 2, no traceback -----------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "text.h5ad").write_text("this is not HDF5\n")
    (d / "table.csv").write_text("cell,g1,g2\nc1,1,2\n")
    x = np.ones((20, 10), np.float32)
    nan, inf = x.copy(), x.copy()
    nan[3, 4] = np.nan
    inf[5, 6] = np.inf
    return {
        "text": d / "text.h5ad",
        "csv": d / "table.csv",
        "nan": write_h5ad(d / "nan.h5ad", nan),
        "inf": write_h5ad(d / "inf.h5ad", inf),
        "empty": write_h5ad(d / "empty.h5ad", np.zeros((0, 10), np.float32)),
        "nan_layer": write_h5ad(d / "nan_layer.h5ad", x, counts=nan),
    }


BAD = [
    ("missing file", lambda f, p: [p.parent / "missing.h5ad"], "no such file"),
    ("text named .h5ad", lambda f, p: [f["text"]], "cannot be read as .h5ad"),
    ("csv", lambda f, p: [f["csv"]], "not an .h5ad file"),
    ("missing layer", lambda f, p: [p, "--layer", "counts"], "layer 'counts' does not exist"),
    (
        "missing mask key",
        lambda f, p: [p, "--mask-var", "nope"],
        "mask key 'nope' is not a column of var",
    ),
    ("NaN", lambda f, p: [f["nan"]], "1 NaN and 0 inf"),
    ("inf", lambda f, p: [f["inf"]], "0 NaN and 1 inf"),
    (
        "NaN in a layer",
        lambda f, p: [f["nan_layer"], "--layer", "counts", "--n-comps", 5],
        "layer 'counts': the matrix holds 1 NaN",
    ),
    ("empty", lambda f, p: [f["empty"]], "the matrix is empty (0 x 10)"),
    (
        "n_comps = min(shape)",
        lambda f, p: [p, "--n-comps", PBMC_HVG],
        f"n_comps={PBMC_HVG} is not below min(n_obs, n_vars)={PBMC_HVG}",
    ),
    ("n_comps above", lambda f, p: [p, "--n-comps", 5000], "n_comps=5000 is not below"),
    (
        "unknown solver",
        lambda f, p: [p, "--svd-solver", "magic"],
        "svd_solver='magic' is not one of",
    ),
    ("no data", lambda f, p: [], "give an .h5ad file"),
    ("--out is a folder", lambda f, p: [p, "--out", p.parent], "is a directory, not a file"),
    ("--out under a file", lambda f, p: [p, "--out", p / "r.md"], "h5ad is not a directory"),
    # checked before anything else: the missing input is not even looked at
    ("--out before work", lambda f, p: [p.parent / "nope.h5ad", "--out", p.parent], "directory"),
    ("timeout not positive", lambda f, p: [p, "--timeout", 0], "positive number of seconds"),
    ("data and pipeline", lambda f, p: [p, "--pipeline", "x.py"], "not both"),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line(case, args, message, bad_files, pbmc):
    proc = run_cli(*args(bad_files, pbmc))
    assert proc.returncode == 2, (case, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("harness doctor: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_debug_shows_the_traceback(bad_files):
    cmd = [sys.executable, "-m", "harness", "--debug", "doctor", str(bad_files["nan"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "HarnessError" in proc.stderr


def test_cli_takes_an_unseeded_call_and_no_gene_mask(tmp_path):
    """--random-state none and --mask-var none reach scanpy as random_state=None, no mask."""
    import scanpy as sc

    path = tmp_path / "small.h5ad"
    sc.datasets.pbmc68k_reduced()[:300, :150].copy().write_h5ad(path)
    out = tmp_path / "report.json"
    proc = run_cli(path, "--n-comps", 10, "--random-state", "none", "--mask-var", "none",
                   "--format", "json", "--out", out)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # unseeded arpack: not reproducible
    report = json.loads(out.read_text())
    assert report["call"]["random_state"] is None
    assert report["input"]["n_vars"] == 150  # every gene, not the HVG subset
    bad = run_cli(path, "--random-state", "abc")
    assert bad.returncode == 2 and "expected an integer or 'none'" in bad.stderr


def test_pca_child_that_runs_too_long_is_stopped(pbmc, tmp_path):
    """--timeout applies to the PCA child processes too: exit 2, one line, nothing left behind."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = run_cli(pbmc, "--timeout", 0.5, env={**os.environ, "TMPDIR": str(tmpdir)})
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(pbmc) in line and "did not finish within 0.5 s" in line
    assert list(tmpdir.iterdir()) == []  # the temporary folder (and the plan in it) is removed
    if Path("/proc/self/cmdline").exists():
        time.sleep(0.5)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    assert str(tmpdir).encode() not in (entry / "cmdline").read_bytes()


# --- tiny and rank-deficient input -------------------------------------------------------------


def test_fewer_than_16_cells_shrinks_the_knn_comparison():
    """kNN with 15 neighbours needs 16 cells: 10 cells compare 9 neighbours, and say so."""
    import anndata as ad

    from harness.doctor import doctor

    x = np.random.default_rng(0).normal(size=(10, 30)).astype(np.float32)
    report = doctor(ad.AnnData(X=x), n_comps=5, progress=False)
    assert report.n_neighbors == 9
    assert all(
        e.knn_jaccard is not None for e in report.repeats + report.variations if not e.skipped
    )
    assert (
        "only 10 cells: the kNN comparison uses 9 neighbours instead of 15" in report.to_markdown()
    )


RANK, N_COMPS = 20, 30


@pytest.fixture(scope="module")
def rank_deficient():
    """200 cells x 60 genes of which 40 are constant (rank 20 once centred), n_comps=30; the
    matrix sits in a layer and the mask in a column whose names hold a '|'."""
    import anndata as ad

    from harness.doctor import doctor

    rng = np.random.default_rng(0)
    x = np.full((200, 60), 1.5, dtype=np.float32)
    x[:, :RANK] = rng.normal(size=(200, RANK))
    adata = ad.AnnData(X=np.zeros_like(x))
    adata.layers["log|norm"] = x
    adata.var["use|me"] = np.ones(60, dtype=bool)
    return doctor(adata, layer="log|norm", mask_var="use|me", n_comps=N_COMPS, progress=False)


def test_rank_deficient_input_advises_fewer_components(rank_deficient):
    report = rank_deficient
    assert report.input.rank == RANK
    assert report.null_components == list(range(RANK + 1, N_COMPS + 1))
    assert f"n_comps <= {RANK}" in report.fixes[0]
    assert not any("scipy#13780" in fix for fix in report.fixes)  # this scipy bundles ARPACK-NG 3.9
    md = report.to_markdown()
    assert f"| numerical rank | {RANK} of at most {60}" in md
    assert f"PCs {RANK + 1}-{N_COMPS} lie beyond the input's numerical rank ({RANK})" in md
    numbers = [float(v) for v in re.findall(r"\d+(?:\.\d+)?e[+-]\d+", md)]
    assert numbers and max(numbers) < 1e3, max(numbers)
    for e in report.repeats + report.variations:
        assert e.skipped or (e.null_components == N_COMPS - RANK and e.aligned_max_rel_diff < 1e3)
        # only the range components are judged, on the masked genes' loadings
        assert e.skipped or len(e.judgement["components"]["verdict"]) == RANK


def test_markdown_tables_escape_pipes_in_names(rank_deficient):
    md = rank_deficient.to_markdown()
    assert "`layers['log\\|norm']`" in md and "`var['use\\|me']`" in md
    tables: dict[int, set[int]] = {}
    block = 0
    for line in md.splitlines():
        if not line.startswith("|"):
            block += 1
            continue
        tables.setdefault(block, set()).add(len(re.findall(r"(?<!\\)\|", line)))
    assert len(tables) >= 3 and all(len(counts) == 1 for counts in tables.values()), tables


def test_numerical_rank_of_dense_sparse_and_large_matrices(monkeypatch):
    from scipy import sparse

    from harness.doctor import inputs

    rng = np.random.default_rng(1)
    x = np.zeros((300, 50))
    x[:, :12] = rng.normal(size=(300, 12))
    x[:, 12:24] = x[:, :12] @ rng.normal(size=(12, 12))  # dependent genes add no rank
    x[:, 24:30] = 3.0  # constant genes: zero once centred
    assert inputs.numerical_rank(x) == 12
    assert inputs.numerical_rank(x, center=False) == 13  # the constant direction counts
    assert inputs.numerical_rank(sparse.csr_matrix(x)) == 12
    monkeypatch.setattr(inputs, "RANK_SVD_MAX_ELEMENTS", 0)  # the gene-covariance path
    assert inputs.numerical_rank(x) == 12
    assert inputs.numerical_rank(sparse.csr_matrix(x)) == 12
    monkeypatch.setattr(inputs, "RANK_MAX_VARS", 10)
    assert inputs.numerical_rank(x) is None


# --- which repeat fix (no processes) -----------------------------------------------------------


def _advice(scipy_version: str, later_agree: bool) -> list[str]:
    from harness.doctor import advice
    from harness.doctor.model import Call, Effect

    call = Call(10, "arpack", "arpack", 0, True, None, None)
    summary = SimpleNamespace(rank=None, kind="scaled", dtype="float32")
    effects = [
        Effect(
            "repeat_same_process", "repeat", "repeat", bitwise=False, comparison={"bitwise": False}
        ),
        Effect(
            "repeat_same_process_2",
            "repeat",
            "repeat 2",
            bitwise=False,
            same_as_previous=later_agree,
        ),
        Effect("repeat_new_process", "repeat", "new", bitwise=False),
    ]
    return advice.fixes(call, summary, False, effects, [], scipy_version)


def test_first_call_arpack_fix_needs_the_pattern_and_an_old_scipy():
    assert "scipy#13780" in _advice("1.10.1", later_agree=True)[0]
    assert not any("scipy#13780" in f for f in _advice("1.17.1", later_agree=True))
    assert not any("scipy#13780" in f for f in _advice("1.10.1", later_agree=False))


def _judged(name: str, factor: str, verdicts: list[str]):
    from harness.doctor.model import Effect

    judgement = {"components": {"verdict": verdicts}}
    return Effect(name, factor, name, bitwise=False, judgement=judgement)


def test_advice_names_undetermined_and_beyond_rounding_components():
    """'undetermined' is advised as such (never as explained); 'beyond rounding' under a change
    that keeps the algorithm says the solver did not converge."""
    from harness.doctor import advice
    from harness.doctor.model import Call

    call = Call(4, "arpack", "arpack", 0, True, None, None)
    summary = SimpleNamespace(rank=None, kind="scaled", dtype="float64")
    rounding = ["within rounding", "within rounding", "undetermined", "undetermined"]
    effects = [
        _judged("threads_1", "threads", rounding),
        _judged("solver_randomized", "solver", ["within rounding"] + ["beyond rounding"] * 3),
    ]
    fixes = advice.fixes(call, summary, True, effects, [], None)
    (undetermined,) = [f for f in fixes if "undetermined" in f]
    assert "PCs 3-4" in undetermined and "n_comps=2" in undetermined
    assert "explained" not in undetermined
    assert not any("beyond rounding" in f for f in fixes)  # another algorithm moves by design
    effects.append(_judged("layout_csr", "layout", ["within rounding"] * 3 + ["beyond rounding"]))
    (beyond,) = [f for f in advice.fixes(call, summary, True, effects, [], None) if "beyond" in f]
    assert "layout_csr moved PC 4 beyond rounding" in beyond
