"""Hostile results folders (issue #16), asv's side: results files, benchmarks.json, fingerprints
and records. Every bad file is named on one line, the rest still read.

Each test copies a few files of the committed study into ``tmp_path`` (``results/`` itself is never
touched), spoils one file with a few lines of Python, runs the real command line and checks: no
traceback, the expected exit code, the bad file named on stderr, the good files still read, and
the input tree byte-for-byte unchanged. Helpers: ``hostile_helpers``; digests, JSON lines and the
study's files: ``test_hostile_sidecars``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hostile_helpers import (
    HUGE,
    MACHINE,
    ROOT,
    checked,
    cli_child,
    copy_study,
    edit_first_line,
    edit_json,
    env_names,
    fingerprint_of,
    first_record,
    first_row,
    lines_naming,
    result_files,
    run,
    run_folder,
    tree_digest,
)

from harness.results import scan
from harness.vocabulary import HARNESS_DIR


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return copy_study(tmp_path / "results")


# --- 1: integers beyond float range ------------------------------------------------------------


def _col(data: dict, name: str) -> int:
    return data["result_columns"].index(name)


@pytest.mark.parametrize(
    "where",
    ["result", "date", "started_at", "stats", "duration"],
)
def test_integer_beyond_float_range_in_a_results_file(study, capsys, where):
    bad = result_files(study)[0]

    def spoil(data):
        row = first_row(data)
        if where == "result":
            row[0][0] = HUGE
        elif where == "date":
            data["date"] = HUGE
        elif where == "stats":
            row[_col(data, "stats_q_25")][0] = HUGE
        else:
            row[_col(data, where)] = HUGE

    edit_json(bad, spoil)
    _out, err = checked(capsys, study, "table", str(study))
    loaded = scan(study, warn=lambda line: None)
    assert loaded.files == 3  # the file itself is read; only the bad value is left out
    if where in ("result", "stats"):
        assert bad.name in err and "time_pca" in err
        rows = loaded.frame[loaded.frame["file"] == f"{MACHINE}/{bad.name}"]
        assert "pca.PCA.time_pca" not in set(rows["benchmark"])
        assert "pca.PCA.peakmem_pca" in set(rows["benchmark"])
    else:
        rows = loaded.frame[loaded.frame["file"] == f"{MACHINE}/{bad.name}"]
        column = "date" if where == "date" else where
        if where == "date":
            assert rows["date"].isna().all()
        else:
            assert rows[rows["benchmark"] == "pca.PCA.time_pca"][column].isna().all()


def test_integer_beyond_float_range_in_a_record(study, capsys):
    record = next((run_folder(result_files(study)[0]) / "records").glob("stability.*/*.jsonl"))
    line = json.loads(record.read_text().splitlines()[0])
    line["value"] = HUGE
    line.setdefault("comparison", {})["max_abs_diff"] = HUGE
    record.write_text(json.dumps(line) + "\n")
    checked(capsys, study, "table", str(study))
    loaded = scan(study, warn=lambda line: None)
    assert loaded.files == 3
    assert len(loaded.records) > 100


@pytest.mark.parametrize("date", [1e300, -1e300, 1e17])
def test_absurd_dates_are_missing_without_numpy_warnings(study, date):
    bad = result_files(study)[0]
    edit_json(bad, lambda d: d.update(date=date))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = scan(study, warn=lambda line: None)
    rows = loaded.frame[loaded.frame["file"] == f"{MACHINE}/{bad.name}"]
    assert len(rows) and rows["date"].isna().all()


# --- 2: parameter grids far larger than the file ------------------------------------------------


@pytest.mark.parametrize(("lists", "values"), [(9, 10), (10, 100)])
def test_parameter_grid_larger_than_its_results_is_skipped(study, lists, values):
    bad = result_files(study)[0]

    def spoil(data):  # a benchmark benchmarks.json does not know: its parameters are guessed
        row = [None] * len(data["result_columns"])
        row[_col(data, "params")] = [[repr(f"v{i}") for i in range(values)]] * lists
        row[_col(data, "result")] = None  # asv's "every combination failed"
        data["results"]["pca.PCA.time_grid"] = row

    edit_json(bad, spoil)
    before = tree_digest(study)

    def limit():  # the code before the fix allocated 7.8 GB: fail fast instead
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "harness", "table", str(study)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "time_grid" in x]
    assert bad.name in line and "combinations" in line
    assert tree_digest(study) == before


# --- 3 and 4: what is not a folder; symlink loops -------------------------------------------------


def test_fifo_as_results_folder(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "table", str(fifo))
    assert code == 2 and str(fifo) in err


def test_dev_null_as_results_folder(capsys):
    code, _, err = run(capsys, "table", os.devnull)
    assert code == 2 and os.devnull in err


def test_symlink_loops_inside_results(study, capsys):
    (study / MACHINE / "loop.json").symlink_to("loop.json")
    (study / "loopdir").symlink_to("loopdir")
    (study / MACHINE / HARNESS_DIR / "looprun").symlink_to("looprun")
    records = run_folder(result_files(study)[0]) / "records"
    (records / "looped").symlink_to("looped")
    _out, err = checked(capsys, study, "table", str(study))
    lines = [x for x in err.splitlines() if "loop" in x]
    assert lines and all("Traceback" not in x for x in lines)
    assert "loop.json" in err
    assert scan(study, warn=lambda line: None).files == 3


# --- 6: fingerprint fields of the wrong type ----------------------------------------------------

WRONG_FIELDS = {
    "env_vars": "OMP_NUM_THREADS=1",
    "packages": ["numpy", "2.0"],
    "packages.numpy": ["2", "0"],
    "threadpools": "openblas",
    "threadpools.num_threads": "many",
    "blas": ["OpenBLAS", "0.3"],
    "cpu": "AMD",
    "python": 3.11,
}


@pytest.mark.parametrize("field", sorted(WRONG_FIELDS))
def test_fingerprint_fields_of_the_wrong_type(study, capsys, field):
    fp_path = run_folder(result_files(study)[0]) / "fingerprint.jsonl"
    fp = json.loads(fp_path.read_text().splitlines()[0])
    top, _, sub = field.partition(".")
    if top == "threadpools" and sub:
        for pool in fp["threadpools"]:
            pool[sub] = WRONG_FIELDS[field]
    elif sub:
        fp[top][sub] = WRONG_FIELDS[field]
    else:
        fp[top] = WRONG_FIELDS[field]
    fp_path.write_text(json.dumps(fp) + "\n")
    a, b = env_names(study)[:2]
    _, err = checked(capsys, study, "table", str(study))
    warned = [x for x in err.splitlines() if "fingerprint.jsonl" in x]
    assert len(warned) == 1 and top in warned[0], err
    checked(capsys, study, "crossenv", str(study))
    code, _, err = run(capsys, "compare", a, b, "--results", str(study))
    assert code in (0, 1), err


# --- 14: records that contradict asv -----------------------------------------------------------


def test_records_contradicting_asv_are_reported_once_per_run(study, capsys):
    folder = run_folder(result_files(study)[0])
    changed = 0
    for record in sorted((folder / "records").glob("stability.Repeat.*/*.jsonl")):
        line = json.loads(record.read_text().splitlines()[0])
        if line.get("value") == 0.0:
            line["value"] = 2.2e-4
            record.write_text(json.dumps(line) + "\n")
            changed += 1
        if changed == 3:
            break
    assert changed == 3
    _, err = checked(capsys, study, "table", str(study))
    warned = [x for x in err.splitlines() if "contradict" in x]
    assert len(warned) == 1 and folder.name in warned[0], err


# --- 15: unhashable parameter values -----------------------------------------------------------


def test_list_as_parameter_value(study, capsys):
    bad = result_files(study)[0]
    edit_json(bad, lambda d: first_row(d)[_col(d, "params")][0].__setitem__(0, "[1, 2]"))
    _out, _ = checked(capsys, study, "table", str(study))
    loaded = scan(study, warn=lambda line: None)
    assert "[1, 2]" in set(loaded.frame["dataset"].astype(str))


# --- smaller: messages ---------------------------------------------------------------------------


def test_truncated_results_file_says_truncated(study, capsys):
    bad = result_files(study)[0]
    raw = bad.read_bytes()
    cut = raw.index(b'"pca.PCA.time_pca"') + 5  # inside a string
    bad.write_bytes(raw[:cut])
    _, err = checked(capsys, study, "table", str(study))
    (line,) = [x for x in err.splitlines() if bad.name in x]
    assert "truncated" in line and "at at" not in line


def test_results_file_that_is_a_list(study, capsys):
    bad = result_files(study)[0]
    bad.write_text("[1, 2]")
    _, err = checked(capsys, study, "table", str(study))
    (line,) = [x for x in err.splitlines() if bad.name in x]
    assert "no a " not in line and "not a JSON object" in line


# --- found by tests/test_fuzz.py ----------------------------------------------------------------


def test_thread_pool_without_num_threads(study, capsys, tmp_path):
    """Fuzz finding 1: a KeyError in fingerprint.threads()."""
    path = fingerprint_of(study)
    edit_first_line(path, lambda fp: [p.pop("num_threads") for p in fp["threadpools"]])
    out = str(tmp_path / "table.html")
    _, err = checked(capsys, study, "table", str(study), "--format", "html", "--out", out)
    (line,) = lines_naming(err, "fingerprint.jsonl")
    assert "num_threads" in line


@pytest.mark.parametrize("special", ["devzero", "fifo", "loop", "dir"])
def test_fingerprint_that_is_not_a_regular_file(study, special):
    """Fuzz findings 2, 6 and 7: /dev/zero read whole, a FIFO that blocks, a loop never named."""
    path = fingerprint_of(study)
    path.unlink()
    if special == "devzero":
        path.symlink_to("/dev/zero")
    elif special == "fifo":
        os.mkfifo(path)
    elif special == "loop":
        path.symlink_to(path.name)
    else:
        path.mkdir()
    before = tree_digest(study)
    for args in (["table", str(study)], ["crossenv", str(study), "--format", "csv"]):
        code, err = cli_child(*args)
        assert code == 0, err
        assert len(lines_naming(err, "fingerprint.jsonl")) == 1, err
    lines: list[str] = []
    scan(study, warn=lines.append)
    (line,) = lines_naming("\n".join(lines), "fingerprint.jsonl")
    reason = "symbolic links" if special == "loop" else "not a regular file"
    assert reason in line and path.parent.name in line
    assert tree_digest(study) == before


def test_record_that_is_a_fifo(study):
    """Fuzz finding 3: a FIFO among the records blocked the reader forever."""
    record = first_record(study)
    record.unlink()
    os.mkfifo(record)
    code, err = cli_child("table", str(study))
    assert code == 0, err
    (line,) = lines_naming(err, record.name)
    assert "not a regular file" in line


@pytest.mark.parametrize("special", ["fifo", "dir"])
def test_results_file_that_is_not_a_regular_file(study, special):
    """Fuzz finding 4: left out silently."""
    bad = result_files(study)[0]
    bad.unlink()
    os.mkfifo(bad) if special == "fifo" else bad.mkdir()
    lines: list[str] = []
    loaded = scan(study, warn=lines.append)
    assert loaded.files == 2
    (line,) = lines_naming("\n".join(lines), bad.name)
    assert "not a regular file" in line


@pytest.mark.parametrize("how", ["int", "list", "empty", "no unit", "names not strings"])
def test_benchmarks_json_entry_of_the_wrong_kind(study, how):
    """Fuzz finding 5: an entry the reader cannot use changed the frame without a word."""
    name = "pca.PCA.time_pca"
    change = {
        "int": lambda d: d.__setitem__(name, 7),
        "list": lambda d: d.__setitem__(name, [1, 2]),
        "empty": lambda d: d.__setitem__(name, {}),
        "no unit": lambda d: d[name].pop("unit"),
        "names not strings": lambda d: d[name].__setitem__("param_names", [1, 2, 3, 4]),
    }[how]
    edit_json(study / "benchmarks.json", change)
    lines: list[str] = []
    scan(study, warn=lines.append)
    (line,) = [x for x in lines if "benchmarks.json" in x and name in x]
    assert "guessed" in line


@pytest.mark.parametrize(
    "change", ["packages list", "no threadpools", "threadpools of ints", "no numpy", "deleted"]
)
def test_fingerprint_field_problems_in_crossenv_and_table(study, capsys, change):
    """Fuzz finding 8: the label changed with no warning (crossenv reads fingerprints itself)."""
    path = fingerprint_of(study)
    edit = {
        "packages list": lambda fp: fp.__setitem__("packages", ["scanpy"]),
        "no threadpools": lambda fp: fp.pop("threadpools"),
        "threadpools of ints": lambda fp: fp.__setitem__("threadpools", [1, 2]),
        "no numpy": lambda fp: fp["packages"].pop("numpy"),
        "deleted": None,
    }[change]
    if edit is None:
        path.unlink()
    else:
        edit_first_line(path, edit)
    field = {"packages list": "packages", "no numpy": "packages.numpy", "deleted": "no such"}
    field = field.get(change, "threadpools")
    for args in (["table", str(study)], ["crossenv", str(study)]):
        _, err = checked(capsys, study, *args)
        (line,) = lines_naming(err, "fingerprint.jsonl")
        assert field in line and path.parent.name in line


def test_contradicting_record_is_named(study, capsys):
    """Fuzz finding 9: the warning named the run's records folder, not a record file."""
    record = first_record(study, "stability.Repeat.*/*.jsonl")
    edit_first_line(record, lambda r: r.__setitem__("value", 0.123))
    _, err = checked(capsys, study, "table", str(study))
    (line,) = [x for x in err.splitlines() if "contradict" in x]
    assert record.name in line and "1 record" in line


def test_markdown_cells_escape_markup_and_bidi_controls(study, capsys):
    """Fuzz finding 10: a bidi override and raw <script> reached the Markdown table."""
    from harness.render.formats import md_cell

    assert md_cell("a<b>&c|d") == "a&lt;b&gt;&amp;c\\|d"
    assert md_cell("\u202ex\u2066y\u2069\u200e\u200f") == "\\u202ex\\u2066y\\u2069\\u200e\\u200f"
    assert md_cell("1.2 μs · 3") == "1.2 μs · 3"
    bad = result_files(study)[0]
    text = "\u202e<script>alert(1)</script>|"
    edit_json(bad, lambda d: first_row(d)[_col(d, "params")][0].__setitem__(0, repr(text)))
    out, _ = checked(capsys, study, "table", str(study))
    assert "<script>" not in out and "\u202e" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|" in out


@pytest.mark.parametrize("change", ["no layout", "layout a number", "no params"])
def test_record_without_a_configuration_key(study, capsys, change):
    """Fuzz finding 13: a record missing params.layout was joined as layout None."""
    record = first_record(study)
    edit = {
        "no layout": lambda r: r["params"].pop("layout"),
        "layout a number": lambda r: r["params"].__setitem__("layout", 5),
        "no params": lambda r: r.pop("params"),
    }[change]
    edit_first_line(record, edit)
    _, err = checked(capsys, study, "table", str(study), "--format", "json", "--all-commits")
    (line,) = lines_naming(err, record.name)
    assert "record ignored" in line
