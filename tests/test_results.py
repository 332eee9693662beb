"""harness.results (reader, asvfiles, frame, sidecars, runs): any asv results folder into pandas, bad input skipped with one line each."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.results import problems, runs
from harness.results import reader as results

ROOT = Path(__file__).resolve().parents[1]


def generator():
    """tests/perf/bench_load_results.py: the realistic results generator."""
    name = "bench_load_results"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "perf" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (and the listing), to prove nothing was modified."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_result(folder: Path, name: str, results_: dict, *, commit="a" * 40, env="env-x", **extra):
    data = {
        "commit_hash": commit,
        "env_name": env,
        "date": 1_700_000_000_000,
        "params": {"machine": folder.name, "python": "3.11"},
        "python": "3.11",
        "requirements": {"numpy": "2.4.6"},
        "env_vars": {},
        "result_columns": generator().RESULT_COLUMNS,
        "results": results_,
        "durations": {},
        "version": 2,
        **extra,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "machine.json").write_text(json.dumps({"machine": folder.name, "version": 1}))
    path = folder / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three realistic result files (suite layout, fingerprints, records) on two machines."""
    root = tmp_path_factory.mktemp("res") / "results"
    gen = generator()
    gen.generate(root, 4, profile="smoke", machines=2)
    gen.add_sidecars(root, artifacts=False)
    return root


@pytest.fixture
def copy(folder, tmp_path):
    """A writable copy of the realistic folder."""
    dst = tmp_path / "results"
    shutil.copytree(folder, dst)
    return dst


# --- the frame -------------------------------------------------------------------------------------


def test_one_row_per_combination_with_typed_params(folder):
    loaded = results.scan(folder, warn=pytest.fail)
    df = loaded.frame
    assert loaded.files == 4
    assert df.attrs["files"] == 4
    assert loaded.problems == []
    # 48 runtime combinations x 2 benchmarks + 7 checks x 24 combinations, per file.
    assert len(df) == 4 * (2 * 48 + 7 * 24)
    assert df.attrs["params"] == ["dataset", "layout", "dtype", "svd_solver", "threads"]
    assert df["threads"].dtype == "Int64"
    assert set(df["threads"].dropna()) == {1, 2}
    assert df.loc[df["benchmark"].str.contains("track_"), "threads"].isna().all()
    assert set(df["layout"].astype(str)) == {"dense", "csr"}
    assert df["value"].dtype == float
    assert set(df["unit"].astype(str)) == {"seconds", "bytes", "relative"}
    no_dupes = df.groupby(
        [
            "machine",
            "commit",
            "env_name",
            "benchmark",
            "dataset",
            "layout",
            "dtype",
            "svd_solver",
            "threads",
        ],
        observed=True,
        dropna=False,
    ).size()
    assert (no_dupes == 1).all()


def test_status_null_is_failed_and_nan_is_skipped(folder):
    df = results.load_results(folder, warn=pytest.fail)
    skipped = df["status"] == "skipped"
    failed = df["status"] == "failed"
    assert skipped.any()
    assert df.loc[skipped, "value"].isna().all()
    assert df.loc[failed, "value"].isna().all()
    assert df.loc[df["status"] == "ok", "value"].notna().all()
    # Unsupported solver/layout pairs are NaN in the generator: lobpcg never runs dense.
    dense_lobpcg = (df["layout"] == "dense") & (df["svd_solver"] == "lobpcg")
    assert (df.loc[dense_lobpcg, "status"] == "skipped").all()


def test_values_and_stats_match_asv(folder):
    """Same values, None where asv says failed, NaN where skipped: against asv's own reader."""
    from asv.results import iter_results

    df = results.load_results(folder, warn=pytest.fail)
    ours = {}
    for row in df.itertuples(index=False):
        key = (row.machine, row.commit, row.env_name, row.benchmark)
        ours.setdefault(key, []).append(row)
    n = 0
    for res in iter_results(str(folder)):
        for name in res.get_all_result_keys():
            params = res.get_result_params(name)
            values = res.get_result_value(name, params)
            stats = res.get_result_stats(name, params)
            rows = ours[(res.params["machine"], res.commit_hash, res.env_name, name)]
            assert len(rows) == len(values)
            for row, value, st in zip(rows, values, stats, strict=True):
                n += 1
                if value is None:
                    assert row.status == "failed"
                elif math.isnan(value):
                    assert row.status == "skipped"
                else:
                    assert row.status == "ok"
                    assert row.value == value
                if st:
                    assert row.q_25 == st["q_25"]
                    assert row.repeat == st["repeat"]
    assert n == len(df)


def test_fingerprint_columns(folder):
    df = results.load_results(folder, warn=pytest.fail)
    assert df["fp_label"].notna().all()
    row = df.iloc[0]
    assert row["fp_blas_vendor"] in {"OpenBLAS", "MKL", "BLIS"}
    assert row["fp_threads"] in (1, 2)
    assert row["fp_scanpy"] == row["fp_label"].split(" · ")[0].split()[1]
    assert {"fp_numpy", "fp_scipy", "fp_scikit_learn", "fp_env_vars", "fp_blas_core"} <= set(df)


def test_skip_reasons_from_records(folder):
    df = results.load_results(folder, warn=pytest.fail)
    track = df["benchmark"].str.contains("track_") & (df["status"] == "skipped")
    assert df.loc[track, "reason"].notna().all()
    assert df.loc[df["status"] == "ok", "reason"].isna().all()


def test_params_decoded_with_literal_eval_never_split(tmp_path):
    params = [
        ["'a, b'", "'c'"],
        ["(1, 2)", "None"],
        ["np.float64(1.5)", "2.5"],
        ["'it''s'", "<function f at 0x7f>"],
    ]
    n = 2 * 2 * 2 * 2
    write_result(
        tmp_path / "results" / "m",
        "aaaaaaaa-env-x.json",
        {"mod.T.time_x": [[0.1] * n, params, "v"]},
    )
    df = results.load_results(tmp_path / "results", warn=pytest.fail)
    assert list(df["param1"].unique()) == ["a, b", "c"]
    assert set(map(repr, df["param2"])) == {"(1, 2)", "None"}
    assert set(df["param3"]) == {1.5, 2.5}
    assert "<function f at 0x7f>" in set(df["param4"])
    assert len(df) == n


def test_nan_infinity_literals_null_result_and_trailing_columns(tmp_path):
    folder = tmp_path / "results" / "m"
    folder.mkdir(parents=True)
    text = json.dumps(
        {
            "commit_hash": "b" * 40,
            "env_name": "e",
            "params": {"machine": "m"},
            "result_columns": generator().RESULT_COLUMNS,
            "results": {
                "a.track_inf": [[1.0, float("inf"), float("nan")], [["1", "2", "3"]]],
                "a.time_all_failed": [None, [["1", "2"]]],
                "a.time_plain": [
                    [0.5],
                    [],
                    "v1",
                    1,
                    2.0,
                    [0.4],
                    [0.6],
                    [0.45],
                    [0.55],
                    [1],
                    [10],
                    [[0.5, 0.51]],
                ],
            },
            "version": 2,
        }
    )
    assert "Infinity" in text and "NaN" in text
    (folder / "f.json").write_text(text)
    df = results.load_results(tmp_path / "results", warn=pytest.fail)
    inf = df[df["benchmark"] == "a.track_inf"]
    assert list(inf["status"]) == ["ok", "ok", "skipped"]
    assert math.isinf(inf["value"].iloc[1])
    failed = df[df["benchmark"] == "a.time_all_failed"]
    assert list(failed["status"]) == ["failed", "failed"]
    plain = df[df["benchmark"] == "a.time_plain"].iloc[0]
    assert plain["value"] == 0.5 and plain["unit"] == "seconds"
    assert plain["ci_99_a"] == 0.4 and plain["repeat"] == 10 and plain["samples"] == [0.5, 0.51]
    assert df.loc[df["benchmark"] == "a.track_inf", "unit"].isna().all()


def test_single_file_and_machine_folder(folder):
    one = next(p for p in sorted((folder / "machine00").glob("*.json")) if p.name != "machine.json")
    df = results.load_results(one, warn=pytest.fail)
    assert df["file"].nunique() == 1 and len(df) == 2 * 48 + 7 * 24
    assert df["fp_label"].notna().all()
    assert results.load_results(folder / "machine00", warn=pytest.fail)["machine"].nunique() == 1


def test_empty_folder_gives_empty_frame(tmp_path):
    df = results.load_results(tmp_path, warn=pytest.fail)
    assert df.empty and "value" in df.columns and "fp_label" in df.columns


# --- bad input -------------------------------------------------------------------------------------


def _good_json(folder: Path) -> Path:
    return next(
        p for p in sorted((folder / "machine00").glob("*.json")) if p.name != "machine.json"
    )


BAD_FILES = {
    "truncated": lambda good: good.read_bytes()[: len(good.read_bytes()) // 2],
    "empty": lambda good: b"",
    "binary": lambda good: bytes(range(256)) * 4,
    "not json": lambda good: b"hello, this is not JSON\n",
    "not asv": lambda good: json.dumps({"foo": 1, "version": 2}).encode(),
    "json list": lambda good: b"[1, 2, 3]",
    "api version": lambda good: good.read_bytes().replace(b'"version": 2}', b'"version": 3}'),
}
REASONS = {
    "truncated": "truncated JSON",
    "empty": "empty file",
    "binary": "binary file",
    "not json": "not valid JSON",
    "not asv": "not asv results",
    "json list": "not asv results",
    "api version": "api version 3",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_skipped_with_one_line(copy, kind):
    bad = copy / "machine01" / f"zzzzzzzz-bad-{kind.replace(' ', '_')}.json"
    bad.write_bytes(BAD_FILES[kind](_good_json(copy)))
    before = tree_digest(copy)
    lines = []
    loaded = results.scan(copy, warn=lines.append)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"machine01/{bad.name}: ")
    assert REASONS[kind] in lines[0]
    assert "\n" not in lines[0]
    assert loaded.files == 4 and len(loaded.frame) == 4 * 264  # the good rows are all there
    assert tree_digest(copy) == before


def test_params_changed_between_runs(copy):
    bench = json.loads((copy / "benchmarks.json").read_text())
    bench["pca.PCA.time_pca"]["param_names"] = ["dataset", "layout", "dtype"]  # the suite changed
    (copy / "benchmarks.json").write_text(json.dumps(bench))
    lines = []
    df = results.load_results(copy, warn=lines.append)
    assert len(lines) == 4  # one per file holding the old benchmark
    assert all(
        "pca.PCA.time_pca: params changed between runs (5 in this file, 3 in" in x for x in lines
    )
    assert "pca.PCA.time_pca" not in set(df["benchmark"].astype(str))
    assert len(df) == 4 * (48 + 7 * 24)


def test_result_length_mismatch_and_non_numeric(tmp_path):
    folder = tmp_path / "results" / "m"
    write_result(
        folder,
        "a.json",
        {
            "x.time_a": [[1.0, 2.0], [["1", "2", "3"]]],
            "x.time_b": [["fast"], []],
            "x.time_ok": [[1.0], []],
        },
    )
    lines = []
    df = results.load_results(tmp_path / "results", warn=lines.append)
    assert len(lines) == 2
    assert "x.time_a: 2 results for 3 combinations" in lines[0]
    assert "x.time_b: non-numeric result" in lines[1]
    assert list(df["benchmark"].astype(str)) == ["x.time_ok"]


def test_missing_and_broken_fingerprint(copy):
    runs = sorted(p for p in (copy / "machine00" / "harness").iterdir() if p.name != "anchors")
    (runs[0] / "fingerprint.jsonl").unlink()
    (runs[1] / "fingerprint.jsonl").write_bytes(b"\x00\x01 garbage")
    lines = []
    df = results.load_results(copy, warn=lines.append)
    assert len(df) == 4 * 264
    assert any(x.startswith(f"machine00/harness/{runs[1].name}/fingerprint.jsonl: ") for x in lines)
    missing = [x for x in lines if "no harness fingerprint" in x]
    assert len(missing) == 2  # both runs of machine00 now lack a usable fingerprint
    assert df.loc[df["machine"] == "machine00", "fp_label"].isna().all()
    assert df.loc[df["machine"] == "machine01", "fp_label"].notna().all()


def test_broken_benchmarks_json_and_record(copy):
    (copy / "benchmarks.json").write_text("{ not json")
    rec = next((copy / "machine01" / "harness").rglob("records/*/*.jsonl"))
    rec.write_text("[]\n")
    lines = []
    df = results.load_results(copy, warn=lines.append)
    assert any(x.startswith("benchmarks.json: not valid JSON") for x in lines)
    assert any(x.startswith("machine01/harness/") and "record ignored" in x for x in lines)
    assert {"param1", "param5"} <= set(df.columns)  # names guessed as asv does
    assert len(df) == 4 * 264


def test_default_warning_category(copy):
    (copy / "machine00" / "zz-bad.json").write_text("")
    with pytest.warns(problems.ResultsWarning, match="zz-bad.json: empty file"):
        results.load_results(copy)


# --- runs and selectors ----------------------------------------------------------------------------


def test_run_infos_and_selectors(folder):
    loaded = results.scan(folder, warn=pytest.fail)
    infos = loaded.infos()
    assert len(infos) == 4
    labels = runs.unique_labels(infos)
    assert len(set(labels.values())) == 4
    assert not any("virtualenv-py" in v for v in labels.values())  # never asv's names
    first = infos[0]
    scanpy = dict(first.packages)["scanpy"]
    assert first in runs.select(f"scanpy={scanpy}", infos)
    assert runs.select(first.commit[:8], infos) == [first]
    assert runs.select(f"{first.machine}/{first.env_name}", infos) == [first]
    assert runs.select("sklearn=0.0.0", infos) == []
    assert runs.matches(f"sklearn={dict(first.packages)['scikit-learn']}", first)


def test_label_without_fingerprint_names_what_asv_requested(tmp_path):
    write_result(tmp_path / "results" / "m", "a.json", {"x.time_a": [[1.0], []]})
    loaded = results.scan(tmp_path / "results", warn=pytest.fail)
    (info,) = loaded.infos()
    assert info.label == "python 3.11 · numpy 2.4.6 (requested) (no fingerprint)"
    assert dict(info.packages) == {"numpy": "2.4.6"}


# --- the command line -------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["table"],
        ["table", "results", "--format", "xml"],
        ["table", "results", "--tolerance", "1e-6"],  # removed: the verdicts are calibrated
        ["nonsense"],
        ["compare", "a"],
        ["report", "results"],
        ["crossenv", "results", "--bogus"],
    ],
)
def test_wrong_arguments_print_usage_and_exit_2(args):
    run = _cli(*args)
    assert run.returncode == 2
    assert run.stderr.startswith("usage: harness")
    assert "Traceback" not in run.stderr


def test_missing_folder_is_one_line_exit_2(tmp_path):
    run = _cli("table", str(tmp_path / "nope"))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "no such file or directory" in run.stderr
    run = _cli("table", str(tmp_path))
    assert run.returncode == 2 and "no readable asv results" in run.stderr


def test_cli_bad_files_warn_and_still_show_the_good_rows(copy):
    (copy / "machine00" / "zz-truncated.json").write_text('{"commit_hash": "abc", "res')
    (copy / "machine00" / "zz-binary.json").write_bytes(b"\x89PNG\x00\x00\x00")
    before = tree_digest(copy)
    run = _cli("table", str(copy))
    assert run.returncode == 0, run.stderr
    warnings = [x for x in run.stderr.splitlines() if "warning" in x]
    assert len(warnings) == 2
    assert all(x.startswith("harness table: warning: machine00/zz-") for x in warnings)
    assert "Traceback" not in run.stderr
    assert run.stdout.count("| dataset |") == 4  # every environment's table
    assert "2 file(s) or part(s) skipped or left empty" in run.stdout
    assert tree_digest(copy) == before


def test_frame_values_are_plain(folder):
    df = results.load_results(folder, warn=pytest.fail)
    assert isinstance(df["dataset"].iloc[0], str)
    assert isinstance(df["value"].to_numpy(), np.ndarray)
    assert df["date"].dt.tz is not None
