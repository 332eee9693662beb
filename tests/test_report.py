"""The report: Markdown, CSV and one self-contained HTML page; deterministic (the page in headless
Chromium: tests/test_report_browser.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.render import report
from harness.results import environments
from harness.results import reader as results

sys.path.insert(0, str(Path(__file__).parent))
from test_results import generator, tree_digest, write_result


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep") / "results"
    gen = generator()
    gen.generate(root, 5, profile="smoke", machines=1)
    gen.add_sidecars(root)
    return root


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "report"
    assert main(["report", str(folder), str(out)]) == 0
    return out


def test_report_files(built):
    names = sorted(str(p.relative_to(built)) for p in built.rglob("*") if p.is_file())
    assert names == [
        "crossenv.csv",
        "figures/deviation.png",
        "figures/runtime-1-thread.png",
        "figures/runtime-all-cores.png",
        "manifest.txt",
        "report.html",
        "report.md",
        "stability.csv",
    ]
    md = (built / "report.md").read_text()
    assert "![Deviation by environment x configuration](figures/deviation.png)" in md
    assert "## Stability tables" in md and "## Cross-environment deviation" in md
    assert md.count("| dataset | layout | dtype | solver |") == 5
    assert "from the baseline E1 = " in md  # the heatmap compares the artifacts
    for png in built.glob("figures/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"Software" not in png.read_bytes()[:4096]


def test_html_is_self_contained(built):
    html = (built / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count('<img src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing external
    assert html.count("<script") == 1 and "<script>" in html  # the inline table sorter
    assert html.count("<table") >= 5 + 3  # stability tables, environments (x2), summary, matrices


def test_identical_inputs_give_identical_bytes(folder, built, tmp_path):
    copy = tmp_path / "elsewhere" / "results"
    shutil.copytree(folder, copy)  # a different path: outputs must not depend on it
    again = tmp_path / "again"
    assert main(["report", str(copy), str(again)]) == 0
    assert tree_digest(again) == tree_digest(built)


def test_results_folder_untouched_and_writes_atomic(folder, tmp_path):
    before = tree_digest(folder)
    out = tmp_path / "r"
    assert main(["report", str(folder), str(out)]) == 0
    assert tree_digest(folder) == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_report_of_a_foreign_suite(tmp_path, capsys):
    write_result(
        tmp_path / "results" / "m", "a.json", {"x.Suite.time_a": [[0.25, None], [["1", "2"]]]}
    )
    assert main(["report", str(tmp_path / "results"), str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Results" in md and "x.Suite.time_a" in md and "| failed |" in md
    assert "No artifacts found" in md
    assert not (tmp_path / "out" / "figures").exists()


def test_report_lists_problems(folder, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    (copy / "machine00" / "zz-empty.json").write_text("")
    loaded = results.scan(copy, warn=lambda line: None)
    rep = report.build(loaded)
    assert "## Problems (1)" in rep.markdown
    assert "- machine00/zz-empty.json: empty file; skipped" in rep.markdown


def test_report_bad_outdir(folder, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["report", str(folder), str(target)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


# --- ids, plain-text figure labels, the output folder (issues #11, #16) ------------------------------


def _hostile_copy(folder: Path, tmp_path: Path, value: str) -> Path:
    """The results with the dataset parameter renamed to ``value`` and no artifacts (the heatmap
    then draws the stability tables' configurations, parameter values included)."""
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    for art in copy.glob("*/harness/*/artifacts"):
        shutil.rmtree(art)
    quoted = json.dumps(repr(value)[1:-1])[1:-1]  # asv keeps repr(value) as a JSON string
    for path in copy.rglob("*.json"):
        path.write_text(path.read_text().replace("pbmc68k_reduced", quoted))
    return copy


def test_mathtext_in_a_parameter_is_drawn_as_plain_text(folder, tmp_path, capsys):
    copy = _hostile_copy(folder, tmp_path, "$\\foo{$")
    out = tmp_path / "out"
    assert main(["report", str(copy), str(out)]) == 0, capsys.readouterr().err
    assert (out / "figures" / "deviation.png").is_file()
    assert (out / "figures" / "runtime-1-thread.png").is_file()
    assert "$\\foo{$" in (out / "stability.csv").read_text()


def test_figures_use_the_folders_environment_ids(folder, tmp_path):
    copy = _hostile_copy(folder, tmp_path, "pbmc68k_reduced")  # the table heatmap, no artifacts
    out = tmp_path / "out"
    assert main(["report", str(copy), str(out)]) == 0
    md = (out / "report.md").read_text()
    ids = set(environments.ids(results.scan(copy, warn=lambda line: None)).values())
    runtime = md.split("![Runtime at 1 thread by solver]")[1].split("\n\n")[1]
    shown = set(re.findall(r"\b([A-Z]\d+) = ", runtime))
    assert shown and shown <= ids


def _report_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_a_reused_folder_holds_only_the_new_report(built, tmp_path):
    out = tmp_path / "reused"
    shutil.copytree(built, out)
    write_result(
        tmp_path / "foreign" / "m", "a.json", {"x.Suite.time_a": [[0.25, None], [["1", "2"]]]}
    )
    assert main(["report", str(tmp_path / "foreign"), str(out)]) == 0
    assert "crossenv.csv" not in _report_files(out) and not (out / "figures").exists()
    assert "x.Suite.time_a" in (out / "report.html").read_text()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_folder_with_other_files_is_refused(folder, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["report", str(folder), str(out)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "Traceback" not in err
    assert _report_files(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_an_outdir_below_a_file_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    missing = tmp_path / "no-results"  # reading it would fail: the output check comes first
    assert main(["report", str(missing), str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err
    assert "file" in err and "no-results" not in err


def _in_report_tmp(path: Path) -> bool:
    return any(p.name.endswith(".tmp") for p in path.parents)


def test_a_failed_write_leaves_the_previous_report_whole(
    folder, built, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "previous"
    shutil.copytree(built, out)
    before = tree_digest(out)
    real, calls = Path.write_bytes, []

    def failing(self, data):
        # Only the report's own temporary folder counts: the results index writes its cache
        # from a background thread, so counting every write would race with it.
        if _in_report_tmp(self):
            calls.append(self)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    assert main(["report", str(folder), str(out)]) == 2
    monkeypatch.undo()
    assert "No space left" in capsys.readouterr().err
    assert tree_digest(out) == before
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_report_without_a_manifest_is_still_replaced(folder, built, tmp_path):
    """Reports written before the manifest existed are recognised by their file names."""
    out = tmp_path / "older"
    shutil.copytree(built, out)
    (out / "manifest.txt").unlink()
    assert main(["report", str(folder), str(out)]) == 0
    assert tree_digest(out) == tree_digest(built)


def test_a_killed_report_leaves_no_temporary_files(folder, built, tmp_path):
    """SIGTERM in the middle of writing: the previous report stays whole, nothing is left over."""
    out = tmp_path / "previous"
    shutil.copytree(built, out)
    before = tree_digest(out)
    script = f"""
import os, signal, sys
from pathlib import Path
real, calls = Path.write_bytes, []
def killing(self, data):
    if any(p.name.endswith(".tmp") for p in self.parents):
        calls.append(self)  # the report's temporary folder only, not the index's cache
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    return real(self, data)
Path.write_bytes = killing
from harness.cli import main
sys.exit(main(["report", {str(folder)!r}, {str(out)!r}]))
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 130, run.stderr
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]
