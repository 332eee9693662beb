"""PCA on dask arrays (issue #13): a real asv run of the dask suite on a 2-worker LocalCluster,
the scheduler and chunking rules, worker deaths and interrupted dataset builds."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from conftest import MACHINE, ROOT, run_asv_once
from scipy import sparse

import harness
from harness import commands
from harness.analysis import rounding, scaling
from harness.analysis.rounding import VERDICTS
from harness.bench import (
    dask_arrays,
    dask_stability,
    datasets,
    fingerprint,
    scale_data,
    stability,
    support,
    verdicts,
)
from harness.bench.pca import N_COMPS, make_anndata
from harness.io import read_jsonl
from harness.render import scaling as render_scaling
from harness.render import writeup
from harness.render.formats import fmt_bytes, fmt_seconds
from harness.results.sidecars import read_inputs
from harness.study.driver import load_conf

#: What a known-answer comparison of rounding-level differences may read (never beyond rounding).
NOT_BEYOND = ("bitwise", "sign only", "within rounding", "explained", "undetermined")
#: Nothing listens here: connecting is refused, and the client gives up after its timeout.
UNREACHABLE = "tcp://127.0.0.1:9"
TINY = "dask_tiny"
SCHEDS = ("threaded", "local")


def _values(data: dict, name: str) -> dict[tuple, float | None]:
    row = dict(zip(data["result_columns"], data["results"][name], strict=False))
    params = [[eval(v) for v in p] for p in row["params"]]  # asv stores repr() strings
    return dict(zip(itertools.product(*params), row["result"], strict=True))


def _run_suite(work: Path, bench: str) -> dict:
    """One real `asv run` of the dask-smoke profile's benchmarks matching ``bench``, with an
    unreachable external scheduler."""
    results = work / "results"
    conf = load_conf(ROOT / "asv.conf.json")
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(ROOT / "benchmarks"),
        results_dir=str(results),
        env_dir=str(work / "env"),
        html_dir=str(work / "html"),
    )
    (work / "asv.conf.json").write_text(json.dumps(conf))
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {
        **os.environ,
        "HOME": str(work),
        "HARNESS_PROFILE": "dask-smoke",
        "HARNESS_MACHINE": MACHINE,
        "HARNESS_RESULTS": str(results),
        "HARNESS_CACHE": str(work / "cache"),
        "HARNESS_COMMIT": commit,
        "HARNESS_DASK_SCHEDULER": UNREACHABLE,
    }
    env.pop("HARNESS_DATASETS", None)
    run = run_asv_once(
        work, env, MACHINE, commit, "--bench", bench, "--launch-method", "forkserver", timeout=900
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    (path,) = [p for p in results.glob(f"{MACHINE}/*.json") if p.name != "machine.json"]
    (folder,) = (results / MACHINE / "harness").iterdir()
    return {"data": json.loads(path.read_text()), "folder": folder, "log": run.stdout}


@pytest.fixture(scope="module")
def dask_smoke(tmp_path_factory):
    """Runtime and memory benchmarks (threaded, LocalCluster, external) and the in-memory ones."""
    return _run_suite(tmp_path_factory.mktemp("asv-dask"), r"^dask\.(Dask|InMemory)")


@pytest.fixture(scope="module")
def dask_stability_run(tmp_path_factory):
    """The whole dask suite, the stability checks included (two fresh interpreters, clusters)."""
    return _run_suite(tmp_path_factory.mktemp("asv-dask-all"), r"^dask\.")


def _records(folder: Path, benchmark: str) -> list[dict]:
    return [read_jsonl(p)[0] for p in sorted((folder / "records" / benchmark).glob("*.jsonl"))]


def test_runtime_and_memory_on_a_two_worker_local_cluster(dask_smoke):
    data, folder = dask_smoke["data"], dask_smoke["folder"]
    times = _values(data, "dask.DaskPCA.time_pca")
    for scheduler, shape in [("threaded", "1x2"), ("local", "1x2"), ("local", "2x1")]:
        assert times[(TINY, "dask-csr", "float32", "covariance_eigh", scheduler, shape)] > 0
    # The threaded scheduler runs in one process: no 2-worker shape (skipped, NaN).
    assert math.isnan(times[(TINY, "dask-csr", "float32", "covariance_eigh", "threaded", "2x1")])
    memory = _values(data, "dask.DaskPeakMemory.track_peakmem_total")
    total = memory[(TINY, "dask-csr", "float32", "covariance_eigh", "local", "2x1")]
    (record,) = [
        r
        for r in _records(folder, "dask.DaskPeakMemory.track_peakmem_total")
        if (r["params"]["scheduler"], r["params"]["workers"]) == ("local", "2x1")
    ]
    assert (
        len(record["worker_bytes"]) == 2
    )  # two worker processes, each measured through the client
    assert (
        record["total_bytes"]
        == total
        == record["driver_bytes"] + sum(record["worker_bytes"].values())
    )
    assert all(b > 50e6 for b in record["worker_bytes"].values())  # each imported scanpy
    in_memory = _values(data, "dask.InMemoryPCA.time_pca")
    assert in_memory[(TINY, "csr", "float32", "covariance_eigh")] > 0


def test_fingerprint_names_the_schedulers_and_each_workers_blas(dask_smoke):
    (fp,) = read_jsonl(dask_smoke["folder"] / "fingerprint.jsonl")
    assert fp["packages"]["dask"] and fp["packages"]["distributed"]
    by_kind = {(s["scheduler"], s["shape"]): s for s in fp["dask"]["schedulers"]}
    local = by_kind[("local", "2x1")]
    assert (local["workers"], local["threads_per_worker"]) == (2, 1)
    assert len(local["worker_blas"]) == 2 and all(
        "OpenBLAS" in b for b in local["worker_blas"].values()
    )
    # distributed's workers run one BLAS thread each; every pool of each worker says so.
    assert all(t == [1] for t in local["worker_blas_threads"].values())
    assert {r["pid"] for r in local["worker_reports"].values()}.isdisjoint({os.getpid()})
    assert by_kind[("local", "1x2")]["threads_per_worker"] == 2
    assert by_kind[("threaded", "1x2")]["worker_blas_threads"] == {"driver": [1]}
    assert UNREACHABLE in by_kind[("external", "1x2")]["unavailable"]
    (row,) = [r for r in read_jsonl(dask_smoke["folder"] / "inputs.jsonl") if r["dataset"] == TINY]
    store = Path(row["store"])
    x = scale_data.read_matrix(store)
    assert row["sha256"] == datasets.matrix_sha256(x) and row["shape"] == list(x.shape)


def test_unreachable_scheduler_is_skipped_with_its_address(dask_smoke):
    times = _values(dask_smoke["data"], "dask.DaskPCA.time_pca")
    assert math.isnan(times[(TINY, "dask-csr", "float32", "covariance_eigh", "external", "1x2")])
    (record,) = [
        r
        for r in _records(dask_smoke["folder"], "dask.DaskPCA")
        if r["params"]["scheduler"] == "external"
    ]
    assert record["status"] == "skipped"
    assert record["reason"].startswith(f"dask scheduler {UNREACHABLE} unreachable")


@pytest.mark.slow
def test_stability_checks_on_dask(dask_stability_run):
    data, folder = dask_stability_run["data"], dask_stability_run["folder"]
    found = {}
    for check in ("repeat", "process", "chunks", "scheduler", "workers", "memory"):
        name = f"dask.Stability{check.capitalize()}.track_{check}"
        for key, value in _values(data, name).items():
            params = dict(zip(dask_stability.CONFIG_PARAMS, key, strict=True))
            records = [r for r in _records(folder, name) if r["params"] == params]
            if value is None or math.isnan(value):
                assert all(r["status"] == "skipped" for r in records)
                continue
            assert len(records) == 1, (name, key, [r["params"] for r in _records(folder, name)])
            (record,) = records
            assert record["value"] == pytest.approx(value, rel=1e-12, abs=0)
            assert record["comparison"]["bitwise"] == (value == 0.0)
            found[(check, key[-1])] = record
    # Every check on each scheduler it applies to: a threaded check whose baseline ran after a
    # LocalCluster in the same process once found none of its results (the cache key moved).
    expected = {
        *((check, s) for check in ("repeat", "process", "chunks", "memory") for s in SCHEDS),
        ("scheduler", "threaded"),
        ("workers", "local"),
    }
    assert expected <= set(found)
    # Identical calls on the same scheduler: the graph fixes every reduction's order.
    assert found[("repeat", "local")]["value"] == 0.0
    assert found[("process", "local")]["value"] == 0.0
    assert found[("chunks", "local")]["runs"] == [
        "local-2x1-r1000-main-0",
        "local-2x1-r2500-main-0",
    ]
    # Every record carries the calibrated verdict, as the in-memory suite's do (issue #10).
    for record in found.values():
        _assert_judged(record)
        if record["value"] == 0.0:
            assert record["judgement"]["verdict"] == "bitwise" and record["moved"] == []
    # The same covariance + eigh on one scheduler or another, on dask or in memory: rounding.
    for case in [("scheduler", "threaded"), ("workers", "local"), ("memory", "local")]:
        assert found[case]["judgement"]["verdict"] in NOT_BEYOND, case


def _assert_judged(record: dict) -> None:
    j = record["judgement"]
    assert j["verdict"] in VERDICTS
    assert sum(j["counts"].values()) == N_COMPS == len(j["components"]["verdict"])
    assert j["paths"] == ["gram", "gram"]  # covariance + eigh on dask-csr, and in memory
    assert set(record["outputs"]) == {"embedding", "loadings", "variance"}
    assert record["moved"] == [n for n, o in record["outputs"].items() if o["max_rel_diff"] > 0]
    assert "knn_jaccard" in record["downstream"]  # 4,000 cells: computed


# --- the calibrated verdict of dask records ----------------------------------------------------


def test_the_chunk_wise_exact_problem_is_the_in_memory_one(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    folder = tmp_path / "problems"
    chunked = verdicts.problem(TINY, "dask-csr", "float32", folder)
    exact = rounding.problem_of(scale_data.load_in_memory(TINY))
    np.testing.assert_allclose(chunked.values, exact.values, rtol=1e-12, atol=0)
    assert chunked.gram_scale == pytest.approx(exact.gram_scale, rel=1e-12)
    assert chunked.n_obs == exact.n_obs == 4_000
    # Kept on disk under the store's sha256, shared by both dask layouts.
    sha = scale_data.meta(scale_data.ensure(TINY))["sha256"]
    assert [p.name for p in folder.iterdir()] == [f"problem-{sha[:16]}.npz"]
    again = verdicts.problem(TINY, "dask-dense", "float32", folder)
    assert np.array_equal(again.cov, chunked.cov)


def test_problem_of_blocks_is_problem_of_the_stacked_rows():
    x = sparse.random(900, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    for m in (x, x.toarray() - 0.05 * (np.arange(900) > 600)[:, None]):  # negatives at the end
        blocks = [m[i : i + 250] for i in range(0, 900, 250)]
        a, b = rounding.problem_of_blocks(blocks), rounding.problem_of(m)
        np.testing.assert_allclose(a.cov, b.cov, rtol=0, atol=1e-13 * np.abs(b.cov).max())
        assert a.gram_scale == pytest.approx(b.gram_scale, rel=1e-12)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """dask_tiny's covariance_eigh on the threaded scheduler in row chunks of 1,000 and 2,500,
    and in memory (CSR)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv(dask_arrays.CHUNKS_ENV, raising=False)
        config = dask_stability.DaskConfig(
            TINY, "dask-csr", "float32", "covariance_eigh", "threaded"
        )
        session = dask_arrays.start("threaded", dask_arrays.Shape(1, 2))
        try:
            out = {
                rows: dask_stability._compute(
                    session, config, dask_stability.Run("threaded", "1x2", rows)
                )
                for rows in (1_000, 2_500)
            }
        finally:
            session.close()
        out["memory"] = dask_stability._compute(
            None, config, dask_stability.Run(dask_stability.MEMORY, "-", 0)
        )
        yield config, out


def test_dask_records_carry_the_calibrated_verdict(tiny_runs, monkeypatch):
    config, out = tiny_runs
    same = dask_stability.summarize("repeat", config, [out[1_000], out[1_000]])
    _assert_judged(same)
    assert same["judgement"]["verdict"] == "bitwise" and same["moved"] == []
    assert same["downstream"]["identical"]
    for check, other in [("chunks", 2_500), ("memory", "memory")]:
        record = dask_stability.summarize(check, config, [out[1_000], out[other]])
        _assert_judged(record)
        assert record["value"] > 0 and record["judgement"]["verdict"] in NOT_BEYOND, check
    # Over DOWNSTREAM_MAX_CELLS (the scale datasets) no kNN is built, and the record says why.
    monkeypatch.setattr(dask_stability, "DOWNSTREAM_MAX_CELLS", 1_000)
    record = dask_stability.summarize("chunks", config, [out[1_000], out[2_500]])
    assert record["downstream"] == {
        "unavailable": "kNN and Leiden over 4,000 cells are out of this suite's budget "
        "(exact kNN up to 1,000 cells)"
    }
    assert record["judgement"]["verdict"] in NOT_BEYOND


# --- rules without asv -----------------------------------------------------------------------


def _scanpy_runs(x, solver: str, random_state) -> bool:
    adata = ad.AnnData(X=x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.pp.pca(adata, n_comps=10, svd_solver=solver, random_state=random_state)
            np.asarray(adata.obsm["X_pca"])
    except (ValueError, TypeError, NotImplementedError):
        return False
    return True


@pytest.mark.parametrize("shape", [(200, 60), (600, 60)])  # dask-ml auto: full, randomized
def test_chunking_rule_agrees_with_scanpy(shape):
    """support.dask_input_reason refuses exactly what scanpy refuses (threaded scheduler)."""
    x = sparse.random(*shape, density=0.2, format="csr", dtype=np.float32, random_state=0)
    for layout, solver in [
        ("dask-csr", "covariance_eigh"),
        ("dask-dense", "covariance_eigh"),
        ("dask-dense", "randomized"),
        ("dask-dense", "full"),
        ("dask-dense", "auto"),
    ]:
        for chunks in [(shape[0] // 3, shape[1]), (shape[0] // 3, shape[1] // 2)]:
            for random_state in (0, np.random.RandomState(0)):
                dense = da.from_array(x.toarray(), chunks=chunks)
                lazy = dense if layout == "dask-dense" else dense.map_blocks(sparse.csr_matrix)
                reason = support.dask_input_reason(
                    layout, solver, lazy.chunks, random_state, n_comps=10
                )
                case = (layout, solver, chunks, type(random_state).__name__, reason)
                assert (reason is None) == _scanpy_runs(lazy, solver, random_state), case


def test_harness_chunks_span_all_genes_and_bad_chunks_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv(dask_arrays.CHUNKS_ENV, "1000,50")
    rows, cols = dask_arrays.chunk_shape(TINY)
    x = dask_arrays.lazy_matrix(TINY, "dask-csr", (rows, cols))
    with pytest.raises(dask_arrays.BadInput, match="do not span all 200 genes"):
        dask_arrays.check_input(x, "dask-csr", "covariance_eigh", 0)
    with pytest.raises(dask_arrays.BadInput, match="needs an int random_state"):
        dask_arrays.check_input(x, "dask-csr", "covariance_eigh", np.int64(0))
    monkeypatch.setenv(dask_arrays.CHUNKS_ENV, "ten")
    with pytest.raises(datasets.DatasetUnavailable, match="HARNESS_DASK_CHUNKS='ten'"):
        dask_arrays.chunk_shape(TINY)
    monkeypatch.delenv(dask_arrays.CHUNKS_ENV)
    default = dask_arrays.lazy_matrix(TINY, "dask-dense", dask_arrays.chunk_shape(TINY))
    assert default.chunks[1] == (200,) and len(default.chunks[0]) == 4


def test_a_local_cluster_leaves_this_process_environment_as_it_was(monkeypatch):
    """distributed's nanny writes OMP_NUM_THREADS=1 and the like into the parent's os.environ;
    the benchmark process must keep its own (the result cache is keyed by those variables)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    before, folder = dict(os.environ), stability.cache_folder()
    session = dask_arrays.start("local", dask_arrays.Shape(1, 1))
    try:
        assert dict(os.environ) == before
        assert stability.cache_folder() == folder
        # The worker itself runs one BLAS thread, as distributed sets it up.
        (report,) = session.client.run(fingerprint.process_report).values()
        assert report["env_vars"]["OMP_NUM_THREADS"] == "1"
    finally:
        session.close()
    assert dict(os.environ) == before


def test_unreachable_scheduler_fails_fast_naming_the_address(monkeypatch):
    monkeypatch.setenv(dask_arrays.SCHEDULER_ENV, UNREACHABLE)
    started = time.monotonic()
    with pytest.raises(dask_arrays.SchedulerUnavailable, match=f"^dask scheduler {UNREACHABLE}"):
        dask_arrays.start("external", dask_arrays.Shape(1, 1))
    assert time.monotonic() - started < dask_arrays.CONNECT_TIMEOUT_S + 10
    monkeypatch.delenv(dask_arrays.SCHEDULER_ENV)
    with pytest.raises(dask_arrays.SchedulerUnavailable, match="HARNESS_DASK_SCHEDULER is not set"):
        dask_arrays.start("external", dask_arrays.Shape(1, 1))


def test_the_store_holds_the_in_memory_pipelines_matrix(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    path = scale_data.ensure(TINY)
    spec = scale_data.SCALE_DATASETS[TINY]
    adata = ad.AnnData(X=datasets.negative_binomial_counts(spec.n_obs, spec.n_vars, spec.seed))
    datasets.preprocess_counts(adata)
    expected = sparse.csr_matrix(adata.X, dtype=np.float32)
    expected.sort_indices()
    assert scale_data.meta(path)["sha256"] == datasets.matrix_sha256(expected)
    assert ad.read_zarr(path).shape == (spec.n_obs, spec.n_vars)  # a plain AnnData store


# --- failures in the middle --------------------------------------------------------------------


def _die_in_a_worker(block):
    from distributed import get_worker

    get_worker()  # raises outside a worker: the driver never dies
    os._exit(1)


@pytest.mark.slow
def test_a_worker_dying_mid_run_fails_the_call_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    session = dask_arrays.start("local", dask_arrays.Shape(2, 1))
    try:
        x = dask_arrays.lazy_matrix(TINY, "dask-csr", dask_arrays.chunk_shape(TINY))
        poisoned = x.map_blocks(_die_in_a_worker, dtype=x.dtype, meta=x._meta)
        with pytest.raises(dask_arrays.WorkerDied, match="a dask worker died during the PCA") as e:
            dask_arrays.run(session, make_anndata(poisoned), "dask-csr", "covariance_eigh")
        assert "\n" not in str(e.value) and "KilledWorker" in str(e.value)
    finally:
        session.close()
    # What comes next is not disturbed: asv's next benchmark starts its own cluster.
    session = dask_arrays.start("local", dask_arrays.Shape(2, 1))
    try:
        result = dask_arrays.run(session, make_anndata(x), "dask-csr", "covariance_eigh")
        assert result.embedding.shape == (4_000, 50)
    finally:
        session.close()


@pytest.mark.slow
def test_a_killed_build_leaves_no_dataset(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    code = (
        "from harness.bench import scale_data as s;"
        "s.SCALE_DATASETS['big'] = s.ScaleDataset('big', 400_000, 300, 9, (1000,), ());"
        "s.ensure('big')"
    )
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    folder = tmp_path / "scale"
    deadline = time.monotonic() + 120
    while not list(folder.glob(".big.zarr.*.tmp/X")) and time.monotonic() < deadline:
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert list(folder.glob(".big.zarr.*.tmp")), "the build never started"
    assert not (folder / "big.zarr").exists()
    small = scale_data.ScaleDataset("big", 3_000, 300, 9, (1000,), ())
    monkeypatch.setitem(scale_data.SCALE_DATASETS, "big", small)
    path = scale_data.ensure("big")  # the next build removes the leftover first
    assert scale_data.meta(path)["n_obs"] == 3_000
    assert not list(folder.glob(".big.zarr.*.tmp"))


# --- the scaling table -----------------------------------------------------------------------


def test_growth_exponent_is_the_log_log_slope():
    n = [100_000, 300_000, 1_000_000]
    assert scaling.growth_exponent(n, [2.0 * x for x in n]) == pytest.approx(1.0)
    assert scaling.growth_exponent(n, [x**1.5 for x in n]) == pytest.approx(1.5)
    assert scaling.growth_exponent(n[:1], [1.0]) is None  # one size: nothing to fit
    assert scaling.growth_exponent(n, [None, 1.0, float("nan")]) is None


def test_scaling_table_from_real_results(dask_smoke):
    results = dask_smoke["folder"].parents[2]
    frame = harness.load_results(results)
    n_obs = scaling.n_obs_by_dataset(read_inputs(dask_smoke["folder"]))
    assert n_obs == {TINY: 4_000}
    table = scaling.scaling_table(frame, n_obs)
    by_label = {p.label: p for p in table.paths}
    local = by_label["dask-csr · covariance_eigh · local 2x1"]
    (point,) = local.points
    assert point.n_obs == 4_000 and point.seconds > 0 and point.peak_bytes > 0
    assert local.time_exponent is None  # one size only in the smoke profile
    assert "in-memory csr · covariance_eigh" in by_label
    text = render_scaling.scaling_markdown(table)
    assert "| dask-csr · covariance_eigh · local 2x1 |" in text and "time 4k" in text


def test_the_writeup_states_the_dask_run(dask_smoke):
    """The write-up's dask section, from a real run: its run, each scheduler of the fingerprint,
    the memory target's line with the measured numbers, the scaling table."""
    results = dask_smoke["folder"].parents[2]
    loaded = commands.load(str(results), "writeup")
    warned = []
    sr = writeup.load_scale(results, loaded, warned.append)
    assert sr.run[0] == MACHINE and not sr.others and not warned
    text = "".join(writeup.scale_markdown(sr))
    (local,) = [p for p in sr.table.paths if p.label == "dask-csr · covariance_eigh · local 2x1"]
    (point,) = local.points
    assert (
        f"4,000 cells ({TINY}), dask-csr covariance_eigh on a LocalCluster of 2 workers x 1 "
        f"thread: {fmt_seconds(point.seconds)}, {fmt_bytes(point.peak_bytes)}"
    ) in text
    assert "local 2x1: 2 x 1 (worker processes)" in text
    assert f"external 1x2: not run (dask scheduler {UNREACHABLE} unreachable" in text
    assert "| dask-csr · covariance_eigh · local 2x1 |" in text
    # This selection ran no stability benchmark: the questions say so instead of answering.
    assert "- Do row-chunk sizes change the bits: not measured in this run." in text


def test_dask_findings_count_identical_bits_per_scheduler():
    """Known answers: three worker-count comparisons, one of them moved; chunks on two
    schedulers; a skipped configuration counted apart."""
    rows = [
        ("workers", "local", "ok", 0.0, "bitwise"),
        ("workers", "local", "ok", 0.0, "bitwise"),
        ("workers", "local", "ok", 2.5e-5, "within rounding"),
        ("chunks", "threaded", "ok", 0.0, "bitwise"),
        ("chunks", "local", "ok", 1e-4, "explained"),
        ("chunks", "local", "skipped", None, None),
    ]
    stab = pd.DataFrame(
        [
            {
                "check": c,
                "dataset": "d",
                "layout": "dask-csr",
                "svd_solver": "covariance_eigh",
                "scheduler": s,
                "status": st,
                "value": v,
                "verdict": vd,
            }
            for c, s, st, v, vd in rows
        ]
    )
    found = scaling.check_findings(stab, ["workers", "chunks", "repeat"])
    got = {(f.check, f.scheduler): (f.configurations, f.bitwise, f.worst, f.skipped) for f in found}
    assert got == {
        ("workers", "local"): (3, 2, 2.5e-5, 0),
        ("chunks", "local"): (1, 0, 1e-4, 1),
        ("chunks", "threaded"): (1, 1, 0.0, 0),
    }
    line = render_scaling.answer(found, "workers", "Same bits whatever the worker count")
    assert line == (
        "- Same bits whatever the worker count? local: identical bits in 2 of 3 configurations, "
        "worst deviation 2.5e-05 (bitwise 2, within rounding 1).\n"
    )
    assert "not measured" in render_scaling.answer(found, "repeat", "Repeat")
    detail = render_scaling.stability_detail(stab, ["workers", "chunks"])
    cells = {tuple(r[:3]): r[3:] for r in detail.rows}
    assert cells[("d", "dask-csr · covariance_eigh", "local")] == [
        "2.5e-05 within rounding",
        "skipped",
    ]


def test_dask_ml_on_a_matrix_too_large_for_this_machine_is_skipped(monkeypatch):
    reason = dask_arrays.size_reason("scale_1m", "dask-dense", "randomized")
    assert reason.startswith("scale_1m: dask-ml's svd_solver='randomized' would hold a 8.0 GB")
    assert dask_arrays.size_reason("scale_1m", "dask-dense", "covariance_eigh") is None
    assert dask_arrays.size_reason("scale_1m", "dask-csr", "covariance_eigh") is None
    monkeypatch.setenv(dask_arrays.DASK_ML_LIMIT_ENV, "1e10")
    assert dask_arrays.size_reason("scale_1m", "dask-dense", "randomized") is None
