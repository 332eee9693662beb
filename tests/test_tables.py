"""Stability tables, cross-environment deviation and compare, on generated results folders."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.analysis import compare, crossenv, tables
from harness.cli import main
from harness.results import reader as results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_results import generator, tree_digest, write_result  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two machines x three environments (fingerprints, records, artifacts), smoke profile."""
    root = tmp_path_factory.mktemp("tab") / "results"
    gen = generator()
    gen.generate(root, 10, profile="smoke", machines=2)
    gen.add_sidecars(root)
    return root


@pytest.fixture(scope="module")
def loaded(folder):
    return results.scan(folder, warn=pytest.fail)


# --- verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bitwise", "unexplained", "expected"),
    [
        (0.0, True, 0, "bitwise"),
        (0.0, None, None, "within tolerance"),
        (1e-6, False, 3, "within tolerance"),
        (2e-6, False, 0, "explained by the spectrum"),
        (2e-6, False, 1, "unstable"),
        (2e-6, None, None, "unclassified"),
        (math.nan, None, None, None),
    ],
)
def test_verdict_rules(value, bitwise, unexplained, expected):
    assert tables.verdict(value, bitwise=bitwise, n_unexplained=unexplained) == expected


def test_identical_calls_that_differ_are_unstable_whatever_the_spectrum():
    kw = {"bitwise": False, "n_unexplained": 0, "tolerance": 1e-6}
    assert tables.verdict(2e-6, **kw, check="threads") == "explained by the spectrum"
    assert tables.verdict(2e-6, **kw, check="repeat") == "unstable"
    assert tables.verdict(2e-6, **kw, check="process") == "unstable"
    assert tables.verdict(1e-7, **kw, check="repeat") == "within tolerance"


def test_vectorized_verdicts_agree_with_the_rule():
    dev = np.array([0.0, 0.0, 1e-7, 1e-3, 1e-3, 1e-3, np.nan, np.nan, np.nan])
    bit = np.array([1, np.nan, 0, 0, 0, np.nan, np.nan, np.nan, np.nan])
    une = np.array([0, np.nan, 2, 0, 1, np.nan, np.nan, np.nan, np.nan])
    skipped = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0], bool)
    failed = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0], bool)
    got = tables.verdicts(dev, skipped, failed, bit, une, 1e-6)
    assert list(got) == [
        "bitwise",
        "within tolerance",
        "within tolerance",
        "explained by the spectrum",
        "unstable",
        "unclassified",
        "skipped",
        "failed",
        None,
    ]
    assert tables.worst(["bitwise", None, "skipped", "unstable", "within tolerance"]) == "unstable"
    assert tables.worst([None, "skipped"]) is None


def test_checks_match_the_suite():
    from harness.bench import stability

    assert tables.CHECKS == stability.CHECKS


# --- the stability table ---------------------------------------------------------------------------


def test_table_rows_and_columns(loaded):
    table = tables.stability_table(loaded.frame, loaded.records)
    assert list(table.columns) == tables.table_columns()
    assert table.groupby(["machine", "env_name"]).ngroups == 10  # newest commit of each
    assert len(table) == 10 * 24
    row = table[
        (table["layout"] == "dense") & (table["solver"] == "arpack") & (table["dtype"] == "float64")
    ].iloc[0]
    frame = loaded.frame
    sel = (
        (frame["machine"] == row["machine"])
        & (frame["commit"] == row["commit"])
        & (frame["benchmark"] == "pca.PCA.time_pca")
        & (frame["layout"] == "dense")
        & (frame["svd_solver"] == "arpack")
        & (frame["dtype"] == "float64")
    )
    by_threads = dict(zip(frame.loc[sel, "threads"], frame.loc[sel, "value"], strict=True))
    for threads, column in ((1, "time_1_thread_s"), (2, "time_all_cores_s")):
        if math.isnan(by_threads[threads]):
            assert math.isnan(row[column])
        else:
            assert row[column] == by_threads[threads]
    assert row["all_cores"] == 2


def test_table_verdicts_follow_the_records(loaded):
    table = tables.stability_table(loaded.frame, loaded.records, tolerance=1e-6)
    rec = loaded.records.set_index(
        ["machine", "commit", "env_name", "check", "dataset", "layout", "dtype", "svd_solver"]
    )
    checked = 0
    for row in table.to_dict("records"):
        for check in tables.CHECKS:
            key = (
                row["machine"],
                row["commit"],
                row["env_name"],
                check,
                row["dataset"],
                row["layout"],
                row["dtype"],
                row["solver"],
            )
            if key not in rec.index:
                continue
            r = rec.loc[key]
            if r["status"] == "skipped":
                assert row[f"v_{check}"] == "skipped"
                continue
            checked += 1
            expected = tables.verdict(
                r["value"],
                bitwise=bool(r["bitwise"]),
                n_unexplained=r["n_unexplained"],
                tolerance=1e-6,
                check=check,
            )
            assert row[f"v_{check}"] == expected
            assert row[f"dev_{check}"] == r["value"]
        vc = [row[f"v_{c}"] for c in tables.VERDICT_CHECKS]
        assert row["verdict"] == tables.worst(vc)
    assert checked > 500
    assert set(table["verdict"].dropna()) >= {
        "bitwise",
        "within tolerance",
        "explained by the spectrum",
        "unstable",
    }
    with_records = table["verdict"].notna()
    assert table.loc[with_records, "sigdigits"].notna().all()
    assert table.loc[with_records, "knn_jaccard"].between(0, 1).all()


def test_without_records_large_deviations_are_unclassified(loaded):
    table = tables.stability_table(loaded.frame, None, tolerance=1e-6)
    assert "bitwise" not in set(table["verdict"].dropna())  # bits need the record
    big = table["dev_threads"] > 1e-6
    assert (table.loc[big, "v_threads"] == "unclassified").all()


def test_tolerance_and_verdict_checks_change_the_verdict(loaded):
    strict = tables.stability_table(loaded.frame, loaded.records, tolerance=0.0)
    loose = tables.stability_table(loaded.frame, loaded.records, tolerance=1.0)
    assert "within tolerance" not in set(strict[[f"v_{c}" for c in tables.CHECKS]].stack())
    assert set(loose["verdict"].dropna()) <= {"bitwise", "within tolerance"}
    repeat_only = tables.stability_table(loaded.frame, loaded.records, verdict_checks=("repeat",))
    assert set(repeat_only["verdict"].dropna()) == {"bitwise"}  # repeats are bitwise in the fixture


def test_commit_selection(loaded):
    all_commits = tables.stability_table(loaded.frame, loaded.records, all_commits=True)
    newest = tables.stability_table(loaded.frame, loaded.records)
    assert len(all_commits) == len(newest) == 240  # one commit per environment in the fixture
    commit = newest["commit"].iloc[0]
    only = tables.stability_table(loaded.frame, loaded.records, commit=commit[:7])
    assert set(only["commit"]) == {commit}
    assert set(
        tables.stability_table(loaded.frame, loaded.records, machine="machine01")["machine"]
    ) == {"machine01"}


def test_newest_commit_per_environment(tmp_path):
    folder = tmp_path / "results" / "m"
    bench = {
        "pca.PCA.time_pca": [
            [0.1, 0.2],
            [["'d'"], ["'dense'"], ["'float32'"], ["'arpack'"], ["1", "2"]],
        ]
    }
    write_result(folder, "old.json", bench, commit="1" * 40, date=1)
    newer = {"pca.PCA.time_pca": [[0.3, 0.4], bench["pca.PCA.time_pca"][1]]}
    write_result(folder, "new.json", newer, commit="2" * 40, date=2)
    names = ["dataset", "layout", "dtype", "svd_solver", "threads"]
    bench_json = {"pca.PCA.time_pca": {"param_names": names, "unit": "seconds"}, "version": 2}
    (tmp_path / "results" / "benchmarks.json").write_text(json.dumps(bench_json))
    loaded = results.scan(tmp_path / "results", warn=pytest.fail)
    table = tables.stability_table(loaded.frame, loaded.records)
    assert list(table["commit"]) == ["2" * 40]
    assert table["time_1_thread_s"].iloc[0] == 0.3 and table["time_all_cores_s"].iloc[0] == 0.4
    assert len(tables.stability_table(loaded.frame, loaded.records, all_commits=True)) == 2


@pytest.mark.parametrize("fmt", ["md", "csv", "json", "html"])
def test_cli_table_formats(folder, tmp_path, capsys, fmt):
    before = tree_digest(folder)
    out = tmp_path / f"table.{fmt}"
    assert main(["table", str(folder), "--format", fmt, "--out", str(out)]) == 0
    text = out.read_text()
    assert tree_digest(folder) == before
    assert not list(tmp_path.glob(".*.tmp"))
    if fmt == "md":
        assert text.count("| dataset | layout | dtype | solver |") == 10
        assert "Δ threads" in text and "verdict" in text and "virtualenv-py" in text
        assert "## scanpy " in text
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 240 and "dev_threads" in rows[0] and "run" not in rows[0]
    elif fmt == "json":
        obj = json.loads(text)
        assert obj["kind"] == "stability" and len(obj["environments"]) == 10
        assert obj["tolerance"] == tables.DEFAULT_TOLERANCE
        assert obj["summary"]["result_files"] == 10
        assert "NaN" not in text
    else:
        assert text.startswith("<!DOCTYPE html>") and text.count("<table") == 10


def test_cli_table_stdout_and_bad_tolerance(folder, capsys):
    assert main(["table", str(folder), "--tolerance", "0.5", "--verdict-checks", "threads"]) == 0
    out = capsys.readouterr().out
    assert "Verdict over threads; tolerance 0.5." in out
    assert main(["table", str(folder), "--tolerance", "-1"]) == 2
    assert main(["table", str(folder), "--verdict-checks", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "--tolerance: must be >= 0" in err and "unknown check(s) bogus" in err


def test_generic_table_for_other_suites(tmp_path, capsys):
    folder = tmp_path / "results" / "m"
    write_result(
        folder,
        "a.json",
        {"sub.mod.Suite.time_x": [[0.001, None, float("nan")], [["1", "'a, b'", "3"]]]},
    )
    assert main(["table", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "sub.mod.Suite.time_x" in out and "param1='a, b'" in out
    assert "| failed |" in out and "| skipped |" in out and "1 ms" in out


# --- cross-environment ----------------------------------------------------------------------------


def test_crossenv_pairs(folder):
    result = crossenv.crossenv(folder, warn=pytest.fail)
    assert len(result.envs) == 10
    assert all("virtualenv" not in e["label"] for e in result.envs)
    assert len({e["label"] for e in result.envs}) == 10  # disambiguated by machine
    pairs = result.pairs
    assert len(pairs) == 45 * 16  # every pair, every supported configuration
    kinds = {e["id"]: _kind(e) for e in result.envs}
    for row in pairs.to_dict("records"):
        a, b = kinds[row["a"]], kinds[row["b"]]
        if a == b and a != "rounding":
            assert row["bitwise"] and row["deviation"] == 0 and row["verdict"] == "bitwise"
        if {a, b} == {"same", "signflip"}:
            assert not row["bitwise"] and row["sign_flips"] == 1 and row["deviation"] == 0
            assert row["verdict"] == "within tolerance"
        if {a, b} == {"same", "rounding"} and row["dtype"] == "float64":
            assert 0 < row["deviation"] < 1e-12 and row["verdict"] == "within tolerance"
        if {a, b} == {"same", "changed"}:
            assert row["deviation"] > 1e-6 and row["verdict"] == "unstable"
    summary = result.summary
    assert len(summary) == 45
    assert (summary[list(tables.VERDICTS)].sum(axis=1) == summary["configurations"]).all()


def _kind(env: dict) -> str:
    gen = generator()
    index = next(i for i, e in enumerate(gen.ENVS) if gen.env_name(e) == env["env_name"])
    return gen.ARTIFACT_KIND.get(index, "same")


def test_crossenv_baseline_and_render(folder, capsys):
    result = crossenv.crossenv(
        folder, baseline="machine00/" + crossenv.crossenv(folder).envs[0]["env_name"]
    )
    assert result.baseline == "E1"
    assert set(result.pairs["a"]) == {"E1"} and len(result.pairs) == 9 * 16
    md = crossenv.to_markdown(result)
    assert "Baseline: E1." in md and "| E1 |" in md
    assert main(["crossenv", str(folder), "--baseline", "no-such-env"]) == 2
    assert "matches no environment" in capsys.readouterr().err
    assert main(["crossenv", str(folder), "--baseline", "scanpy=1.11.5"]) == 2
    assert "be more specific" in capsys.readouterr().err
    assert main(["crossenv", str(folder), "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert len(obj["pairs"]) == 45 * 16 and obj["environments"][0]["id"] == "E1"


def test_crossenv_bad_and_missing_artifacts(folder, tmp_path, capsys):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    runs = sorted((copy / "machine00" / "harness").iterdir())
    bad = sorted((runs[0] / "artifacts").glob("*.npz"))[0]
    bad.write_bytes(b"not a zip")
    shutil.rmtree(runs[1] / "artifacts")
    assert main(["crossenv", str(copy)]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if ": warning: " in x]
    assert len(lines) == 2
    assert any(
        x.startswith(
            f"harness crossenv: warning: machine00/harness/{runs[0].name}/artifacts/{bad.name}: not a harness artifact"
        )
        for x in lines
    )
    assert any(
        f"machine00/harness/{runs[1].name}: stability records but no artifacts" in x for x in lines
    )
    assert "Traceback" not in err


# --- compare --------------------------------------------------------------------------------------


def _selector(env_index: int) -> str:
    gen = generator()
    scanpy, sklearn, numpy_, _, blas, threads = gen.ENVS[env_index]
    return f"scanpy={scanpy},sklearn={sklearn},numpy={numpy_},blas={blas[2] or blas[0]},threads={threads}"


def test_compare_numerical_change_and_sign_convention(loaded):
    same = compare.compare_runs(loaded, _selector(0), _selector(1), machine="machine00")
    assert set(same.numerical["change"]) == {"none (bitwise)"}
    flip = compare.compare_runs(loaded, _selector(0), _selector(3), machine="machine00")
    assert set(flip.numerical["change"]) == {"sign convention"}
    assert not any("numerically" in f for f in flip.failures)
    strict = compare.compare_runs(
        loaded, _selector(0), _selector(3), machine="machine00", fail_on_sign=True
    )
    assert any("sign convention" in f for f in strict.failures)
    changed = compare.compare_runs(loaded, _selector(0), _selector(4), machine="machine00")
    assert set(changed.numerical["change"]) == {"values changed"}
    assert any("changed numerically beyond 1e-06" in f for f in changed.failures)
    assert changed.significance.startswith("asv compare's test")
    assert len(changed.runtime) == 96 and len(changed.checks) == 7 * 24


def test_compare_slowdown_gates(tmp_path):
    """B is 2x slower with tight intervals: significant; with wide intervals: only '~'."""
    folder = tmp_path / "results" / "m"
    params = [["'d'"], ["'dense'"], ["'float32'"], ["'arpack'"], ["1"]]

    def row(value, spread):
        return [
            [value],
            params,
            "v",
            1,
            1.0,
            [value * (1 - spread)],
            [value * (1 + spread)],
            [value],
            [value],
            [1],
            [10],
        ]

    write_result(
        folder,
        "a.json",
        {"pca.PCA.time_pca": row(1.0, 0.01), "pca.PCA.time_wide": row(1.0, 5)},
        env="env-a",
        requirements={"scanpy": "1.10.4"},
    )
    write_result(
        folder,
        "b.json",
        {"pca.PCA.time_pca": row(2.0, 0.01), "pca.PCA.time_wide": row(2.0, 5)},
        env="env-b",
        requirements={"scanpy": "1.11.5"},
    )
    loaded = results.scan(tmp_path / "results", warn=pytest.fail)
    result = compare.compare_runs(loaded, "scanpy=1.10.4", "scanpy=1.11.5", factor=1.1)
    marks = dict(
        zip(
            result.runtime["benchmark"],
            zip(result.runtime["mark"], result.runtime["ratio"], strict=True),
            strict=True,
        )
    )
    assert marks["pca.PCA.time_pca"] == ("+", "2.00")
    assert marks["pca.PCA.time_wide"] == (" ", "~2.00")
    assert result.failures == ["1 benchmark(s) slower or larger than 1.1x (significant)"]
    assert (
        main(["compare", "scanpy=1.10.4", "scanpy=1.11.5", "--results", str(tmp_path / "results")])
        == 1
    )
    assert (
        main(
            [
                "compare",
                "scanpy=1.10.4",
                "scanpy=1.11.5",
                "--results",
                str(tmp_path / "results"),
                "--factor",
                "3",
            ]
        )
        == 0
    )
    assert (
        main(["compare", "scanpy=1.11.5", "scanpy=1.10.4", "--results", str(tmp_path / "results")])
        == 0
    )


def test_compare_bad_selectors(folder, capsys):
    assert main(["compare", "scanpy=9.9", "scanpy=1.11.5", "--results", str(folder)]) == 2
    assert "A 'scanpy=9.9': matches no run" in capsys.readouterr().err
    assert main(["compare", "scanpy=1.11.5", "scanpy=1.10.4", "--results", str(folder)]) == 2
    assert "add e.g. sklearn=... or blas=... to pick one" in capsys.readouterr().err
    sel = _selector(0)
    assert main(["compare", sel, sel, "--results", str(folder)]) == 2
    assert "select the same run(s)" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["md", "json", "csv", "html"])
def test_compare_formats(folder, capsys, fmt):
    rc = main(
        [
            "compare",
            _selector(0),
            _selector(4),
            "--results",
            str(folder),
            "--machine",
            "machine01",
            "--format",
            fmt,
        ]
    )
    assert rc == 1
    out = capsys.readouterr().out
    if fmt == "json":
        obj = json.loads(out)
        assert obj["ok"] is False and obj["numerical"][0]["change"] == "values changed"
    elif fmt == "md":
        assert "## Numerical change" in out and "FAIL:" in out
    elif fmt == "csv":
        assert out.startswith("section,")
    else:
        assert out.startswith("<!DOCTYPE html>")


def test_cli_help_runs():
    run = subprocess.run(
        [sys.executable, "-m", "harness", "table", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0 and "--tolerance" in run.stdout and "1e-6" in run.stdout


@pytest.mark.slow
def test_real_suite_results(asv_smoke, tmp_path):
    """The real suite's results (conftest's asv run): tables with verdicts, crossenv, report."""
    loaded = results.scan(asv_smoke["results"], warn=lambda line: None)
    assert loaded.files == 1
    assert loaded.frame["fp_label"].notna().all()
    table = tables.stability_table(loaded.frame, loaded.records)
    ran = table[table["time_1_thread_s"].notna()]
    assert len(ran) > 0
    assert ran["verdict"].isin(tables.VERDICTS).all()
    assert ran["sigdigits"].notna().all()
    assert "virtualenv" not in " ".join(table["environment"])
    assert main(["report", str(asv_smoke["results"]), str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "figures" / "runtime.png").is_file()


def test_newest_runs_selection():
    keys = [("m", "c1", "e"), ("m", "c2", "e"), ("m", "c1", "f"), ("n", "c1", "e")]
    dates = {("m", "c1", "e"): 1.0, ("m", "c2", "e"): 2.0, ("m", "c1", "f"): 5.0}
    assert crossenv.newest_runs(keys, dates) == [
        ("m", "c1", "f"),
        ("m", "c2", "e"),
        ("n", "c1", "e"),
    ]
    assert crossenv.newest_runs(keys, dates, commit="c1") == [
        ("m", "c1", "e"),
        ("m", "c1", "f"),
        ("n", "c1", "e"),
    ]
    assert crossenv.newest_runs(keys, dates, machine="n") == [("n", "c1", "e")]
    assert len(crossenv.newest_runs(keys, dates, all_commits=True)) == 4
