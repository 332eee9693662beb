"""Stability tables, cross-environment deviation and compare, on generated results folders."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.analysis import compare, runs, tables
from harness.cli import main
from harness.commands import check_writable
from harness.commands.compare import compare_of
from harness.commands.crossenv import crossenv_of
from harness.errors import HarnessError
from harness.render import compare as render_compare
from harness.render import crossenv as render_crossenv
from harness.results import environments
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
    ("value", "bitwise", "judged", "expected"),
    [
        (0.0, True, None, "bitwise"),
        (0.0, True, "within rounding", "bitwise"),  # equal bits win over any judgement
        (1e-7, False, "within rounding", "within rounding"),
        (2e-6, False, "explained", "explained"),
        (2e-6, False, "beyond rounding", "beyond rounding"),
        (0.0, False, "sign only", "sign only"),
        (2e-6, None, None, "unclassified"),  # a record written before the calibrated verdicts
        (2e-6, False, "not a verdict", "unclassified"),
        (math.nan, None, None, None),
        (math.nan, False, "undetermined", "undetermined"),  # the record judged, asv kept no value
    ],
)
def test_verdict_rules(value, bitwise, judged, expected):
    assert tables.verdict(value, bitwise=bitwise, judged=judged) == expected


def test_vectorized_verdicts_agree_with_the_rule():
    dev = np.array([0.0, 1e-7, 1e-3, 1e-3, np.nan, np.nan, np.nan])
    bit = np.array([1, 0, 0, np.nan, np.nan, np.nan, np.nan])
    judged = np.array(
        [None, "within rounding", "beyond rounding", None, None, None, None], dtype=object
    )
    skipped = np.array([0, 0, 0, 0, 1, 0, 0], bool)
    failed = np.array([0, 0, 0, 0, 0, 1, 0], bool)
    got = tables.verdicts(dev, skipped, failed, bit, judged)
    assert list(got) == [
        "bitwise",
        "within rounding",
        "beyond rounding",
        "unclassified",
        "skipped",
        "failed",
        None,
    ]
    assert tables.worst(["bitwise", None, "skipped", "beyond rounding", "explained"]) == (
        "beyond rounding"
    )
    assert tables.worst(["sign only", "undetermined", "within rounding"]) == "undetermined"
    assert tables.worst([None, "skipped"]) is None


def test_scalar_and_vectorised_verdicts_agree_on_a_grid():
    grid = itertools.product(
        [0.0, 1e-7, 1e-6, 2e-6, 1e-3, math.nan, math.inf],
        [True, False, None],
        [None, "bogus", *tables.VERDICTS],
    )
    cases = list(grid)
    nan = np.nan
    dev = np.array([c[0] for c in cases])
    bit = np.array([1.0 if c[1] else (0.0 if c[1] is False else nan) for c in cases])
    judged = np.array([c[2] for c in cases], dtype=object)
    no = np.zeros(len(cases), dtype=bool)
    vec = tables.verdicts(dev, no, no, bit, judged)
    for case, got in zip(cases, vec, strict=True):
        assert tables.verdict(case[0], bitwise=case[1], judged=case[2]) == got, case


def test_checks_match_the_suite():
    suite = (ROOT / "benchmarks" / "stability.py").read_text()
    assert tuple(re.findall(r"def track_(\w+)\(", suite)) == tables.CHECKS


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
    table = tables.stability_table(loaded.frame, loaded.records)
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
            expected = tables.verdict(r["value"], bitwise=bool(r["bitwise"]), judged=r["verdict"])
            assert row[f"v_{check}"] == expected
            assert row[f"dev_{check}"] == r["value"]
        vc = [row[f"v_{c}"] for c in tables.VERDICT_CHECKS]
        assert row["verdict"] == tables.worst(vc)
    assert checked > 500
    assert set(table["verdict"].dropna()) >= {
        "bitwise",
        "within rounding",
        "explained",
        "beyond rounding",
    }
    with_records = table["verdict"].notna()
    assert table.loc[with_records, "sigdigits"].notna().all()
    assert table.loc[with_records, "knn_jaccard"].between(0, 1).all()


def test_without_records_large_deviations_are_unclassified(loaded):
    table = tables.stability_table(loaded.frame, None)
    assert "bitwise" not in set(table["verdict"].dropna())  # bits need the record
    big = table["dev_threads"] > 1e-6
    assert (table.loc[big, "v_threads"] == "unclassified").all()


def test_verdict_checks_change_the_verdict(loaded):
    repeat_only = tables.stability_table(loaded.frame, loaded.records, verdict_checks=("repeat",))
    assert set(repeat_only["verdict"].dropna()) == {"bitwise"}  # repeats are bitwise in the fixture
    every = tables.stability_table(loaded.frame, loaded.records, verdict_checks=tables.CHECKS)
    assert "beyond rounding" in set(every["verdict"].dropna())


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
        assert re.search(r"^## E\d+: scanpy ", text, re.MULTILINE)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 240 and "dev_threads" in rows[0] and "run" not in rows[0]
    elif fmt == "json":
        obj = json.loads(text)
        assert obj["kind"] == "stability" and len(obj["environments"]) == 10
        assert "tolerance" not in obj
        assert obj["summary"]["result_files"] == 10
        assert "NaN" not in text
    else:
        assert text.startswith("<!DOCTYPE html>") and text.count("<table") == 10


def test_cli_table_stdout_and_bad_checks(folder, capsys):
    assert main(["table", str(folder), "--verdict-checks", "threads"]) == 0
    out = capsys.readouterr().out
    assert "Verdict over threads: the worst of their calibrated verdicts." in out
    assert main(["table", str(folder), "--verdict-checks", "bogus"]) == 2
    assert "unknown check(s) bogus" in capsys.readouterr().err


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


def test_crossenv_pairs(loaded):
    result = crossenv_of(loaded, warn=pytest.fail)
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
            assert row["verdict"] == "sign only" and row["moved"] == ""
        if {a, b} == {"same", "rounding"} and row["dtype"] == "float64":
            assert 0 < row["deviation"] < 1e-12 and row["verdict"] == "within rounding"
            assert row["moved"] == "embedding"  # the loadings kept their bits
        if {a, b} == {"same", "changed"}:
            assert row["deviation"] > 1e-6 and row["verdict"] == "beyond rounding"
    summary = result.summary
    assert len(summary) == 45
    assert (summary[list(tables.VERDICTS)].sum(axis=1) == summary["configurations"]).all()


def _kind(env: dict) -> str:
    gen = generator()
    index = next(i for i, e in enumerate(gen.ENVS) if gen.env_name(e) == env["env_name"])
    return gen.ARTIFACT_KIND.get(index, "same")


def test_crossenv_baseline_and_render(folder, loaded, capsys):
    first = crossenv_of(loaded).envs[0]
    result = crossenv_of(loaded, baseline=f"{first['machine']}/{first['env_name']}")
    assert result.baseline == first["id"]
    assert set(result.pairs["a"]) == {first["id"]} and len(result.pairs) == 9 * 16
    md = render_crossenv.to_markdown(result)
    assert f"Baseline: {first['id']}." in md and f"| {first['id']} |" in md
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
    runs = sorted(p for p in (copy / "machine00" / "harness").iterdir() if p.name != "anchors")
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
    kernel = f",kernel={blas[2]}" if blas[2] else ""
    return (
        f"scanpy={scanpy},sklearn={sklearn},numpy={numpy_},blas={blas[0]}{kernel},threads={threads}"
    )


def test_compare_numerical_change_and_sign_convention(loaded):
    same = compare_of(loaded, _selector(0), _selector(1), machine="machine00")
    assert set(same.numerical["change"]) == {"none (bitwise)"}
    flip = compare_of(loaded, _selector(0), _selector(3), machine="machine00")
    assert set(flip.numerical["change"]) == {"sign convention"}
    assert not any("beyond rounding" in f for f in flip.failures)
    strict = compare_of(loaded, _selector(0), _selector(3), machine="machine00", fail_on_sign=True)
    assert any("sign convention" in f for f in strict.failures)
    changed = compare_of(loaded, _selector(0), _selector(4), machine="machine00")
    assert set(changed.numerical["change"]) == {"beyond rounding"}
    assert "16 configuration(s) changed beyond rounding" in changed.failures
    assert changed.significance.startswith("asv compare's test")
    assert len(changed.runtime) == 96 and len(changed.checks) == 7 * 24


def test_compare_fails_on_the_calibrated_verdict_only(loaded):
    """Known answers from the generated digests (ids machine by machine): E2/E3 differ within
    rounding (no failure), E1/E4 beyond rounding (a numerical failure), E1/E10 in sign only (a
    failure with --fail-on-sign)."""
    texts = {"bitwise": "none (bitwise)", "sign only": "sign convention"}
    rounding = compare_of(loaded, "E2", "E3")
    assert set(rounding.numerical["verdict"]) == {"bitwise", "within rounding"}
    assert rounding.failures == []
    beyond = compare_of(loaded, "E1", "E4")
    assert set(beyond.numerical["verdict"]) == {"beyond rounding"}
    assert beyond.failures == ["16 configuration(s) changed beyond rounding"]
    sign = compare_of(loaded, "E1", "E10")
    assert set(sign.numerical["verdict"]) == {"sign only"}
    assert sign.numerical["sign_convention"].all()
    assert not any("beyond rounding" in f or "sign" in f for f in sign.failures)
    strict = compare_of(loaded, "E1", "E10", fail_on_sign=True)
    assert "16 configuration(s) changed sign convention" in strict.failures
    for result in (rounding, beyond, sign):  # the change column names the pair's verdict
        for r in result.numerical.to_dict("records"):
            assert r["change"] == texts.get(r["verdict"], r["verdict"])
    assert compare.change({"comparable": False}) == ("not comparable (shapes differ)", False)


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
            [value * (1 - spread / 10)],
            [value * (1 + spread / 10)],
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
    result = compare_of(loaded, "scanpy=1.10.4", "scanpy=1.11.5", factor=1.1)
    marks = dict(
        zip(
            result.runtime["benchmark"],
            zip(result.runtime["mark"], result.runtime["ratio"], strict=True),
            strict=True,
        )
    )
    assert marks["pca.PCA.time_pca"] == ("+", "2.00")
    assert marks["pca.PCA.time_wide"] == (" ", "~2.00")
    md = render_compare.to_markdown(result)
    # B's quartiles are 1.998 s and 2.002 s: asv's error, half the IQR, is 2 ms; the legend says so.
    assert "| + | 1 s±1ms | 2 s±2ms | 2.00 |" in md
    assert render_compare.RUNTIME_NOTE in md
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
    assert main(["compare", "sklaern=1.9.1", "scanpy=1.11.5", "--results", str(folder)]) == 2
    assert "no environment has 'sklaern'; known keys:" in capsys.readouterr().err
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
        assert obj["ok"] is False and obj["numerical"][0]["change"] == "beyond rounding"
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
    assert run.returncode == 0 and "--verdict-checks" in run.stdout
    assert "--tolerance" not in run.stdout  # the verdicts are calibrated, not thresholded


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
    assert (tmp_path / "report" / "figures" / "runtime-1-thread.png").is_file()


def test_newest_runs_selection():
    keys = [("m", "c1", "e"), ("m", "c2", "e"), ("m", "c1", "f"), ("n", "c1", "e")]
    dates = {("m", "c1", "e"): 1.0, ("m", "c2", "e"): 2.0, ("m", "c1", "f"): 5.0}
    assert runs.newest(keys, dates) == [
        ("m", "c1", "f"),
        ("m", "c2", "e"),
        ("n", "c1", "e"),
    ]
    assert runs.newest(keys, dates, commit="c1") == [
        ("m", "c1", "e"),
        ("m", "c1", "f"),
        ("n", "c1", "e"),
    ]
    assert runs.newest(keys, dates, machine="n") == [("n", "c1", "e")]
    assert len(runs.newest(keys, dates, all_commits=True)) == 4


def test_one_id_per_environment_in_every_view(folder, loaded, capsys):
    """The table's headings, crossenv's environments and compare's sides use the folder's ids."""
    ids = environments.ids(loaded)
    cross = crossenv_of(loaded)
    assert {e["id"] for e in cross.envs} <= set(ids.values())
    for e in cross.envs:
        assert ids[(e["machine"], e["commit"], e["env_name"])] == e["id"]
    assert main(["table", str(folder), "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    for env in obj["environments"]:
        assert env["id"] == ids[(env["machine"], env["commit"], env["env_name"])]
    numbers = [int(env["id"][1:]) for env in obj["environments"]]
    assert numbers == sorted(numbers)
    result = compare_of(loaded, _selector(0), _selector(4), machine="machine00")
    a = result.a_runs[0]
    assert result.ids[a.key] == ids[a.key]
    assert main(["compare", _selector(0), _selector(4), "--results", str(folder),
                 "--machine", "machine00"]) == 1  # fmt: skip
    assert f"{ids[a.key]}: {a.label}" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["table", "crossenv", "compare", "writeup", "doctor"])
def test_unwritable_out_fails_before_any_work(tmp_path, capsys, command):
    """Issue #16 case 12: --out a directory, or a path under a file: exit 2, one line, and the
    inputs are never read (here they do not even exist)."""
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    args = {
        "compare": ["compare", "a", "b", "--results", str(tmp_path / "none")],
        "doctor": ["doctor", str(tmp_path / "none.h5ad")],
    }.get(command, [command, str(tmp_path / "none")])
    for out in (tmp_path, a_file / "out.md"):
        assert main([*args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert str(out) in err and "none" not in err.replace(str(out), "")
    assert a_file.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_report_outdir_under_a_file_fails_before_any_work(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["report", str(tmp_path / "none"), str(a_file / "report")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "is not a directory" in err


def test_check_writable(tmp_path):
    check_writable(None)
    check_writable(tmp_path / "new" / "deeper" / "out.md")
    check_writable(tmp_path, directory=True)
    with pytest.raises(HarnessError, match="is a directory"):
        check_writable(tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(HarnessError, match="not a directory"):
        check_writable(tmp_path / "f" / "x")
    with pytest.raises(HarnessError, match="not a directory"):
        check_writable(tmp_path / "f", directory=True)


def test_a_cell_whose_embedding_did_not_move_names_the_output_that_did():
    """Issue #10 point 8: '0 !' named nothing; the loadings moved, X_pca is identical."""
    from harness.render import tables as rt

    assert rt._check_cell(0.0, "beyond rounding", "loadings,variance") == "0 (loadings, variance) !"
    assert rt._check_cell(2.5e-4, "beyond rounding", "embedding,loadings") == "2.5e-04 !"
    assert rt._check_cell(0.0, "bitwise", None) == "bitwise"


def test_significant_digits_compare_checks_by_the_raw_error_with_the_sample_count():
    """Issue #10 point 5: the CNH estimate's confidence term depends on the sample count, so the
    fewest digits are picked by the raw -log10 error, and that check's estimate and n shown."""
    import numpy as np

    from harness.analysis import tables as at
    from harness.render import tables as rt

    two = {
        "sigdigits": np.array([1.9]),
        "sigdigits_raw": np.array([3.7]),
        "sigdigits_n": np.array([2.0]),
    }
    five = {
        "sigdigits": np.array([2.4]),
        "sigdigits_raw": np.array([2.9]),
        "sigdigits_n": np.array([5.0]),
    }
    got = at._sigdigits([two, five], 1)
    # The CNH minimum (1.9, 2 samples) is not the fewest digits: the raw error says 2.9 (5).
    assert (
        got["sigdigits_raw"][0] == 2.9 and got["sigdigits"][0] == 2.4 and got["sigdigits_n"][0] == 5
    )
    row = {k: v[0] for k, v in got.items()}
    assert rt._sigdigits_cell(row) == "2.9 (2.4, n=5)"
    old = at._sigdigits([{"sigdigits": np.array([6.0])}], 1)  # records without raw digits
    assert old["sigdigits"][0] == 6.0 and np.isnan(old["sigdigits_raw"][0])


def test_every_marked_verdict_has_its_own_mark():
    from harness.vocabulary import VERDICT_INFO

    marks = [v.mark for v in VERDICT_INFO if v.mark]
    assert len(marks) == len(set(marks)), marks


def test_runtimes_and_sizes_at_a_unit_boundary_take_the_larger_unit():
    """3 significant digits are taken before the unit: half an IQR of 0.999999 ms read
    '1e+03μs' in compare."""
    from harness.render.formats import fmt_bytes, fmt_seconds

    assert fmt_seconds(0.000999999) == "1 ms"
    assert fmt_seconds(0.0123456) == "12.3 ms"
    assert fmt_seconds(150) == "2.5 min"
    assert fmt_bytes(999_960) == "1 MB"
    assert fmt_bytes(999) == "999 B"
