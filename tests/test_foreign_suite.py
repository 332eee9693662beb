"""A results folder written by another project's suite: loads, with empty fingerprint columns.

A tiny asv project in a temporary git repository, with its own benchmark tree
(``benchmarks/sub/mod.py``, ``benchmarks/other.py``), a parameterized benchmark whose values hold
commas, a benchmark that raises (failed: null) and one whose setup raises NotImplementedError
(skipped: NaN), run by the real ``asv run``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import run_asv_once

from harness.cli import main
from harness.results import reader as results

MOD = '''
"""Another project's benchmarks (nothing to do with PCA)."""


class Suite:
    params = ([1, 2], ["a, b", "c"])
    param_names = ["n", "label"]

    def time_loop(self, n, label):
        sum(range(100 * n))

    def track_value(self, n, label):
        return n * 1.5 + len(label)


class Skipping:
    def setup(self):
        raise NotImplementedError("not on this platform")

    def time_skipped(self):
        pass


def time_fails():
    raise RuntimeError("boom")
'''

OTHER = """
def track_plain():
    return 42.0


track_plain.unit = "widgets"


def peakmem_list():
    return [0] * 100000
"""


def _git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    run = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return run.stdout.strip()


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proj = tmp_path_factory.mktemp("foreign")
    (proj / "benchmarks" / "sub").mkdir(parents=True)
    (proj / "benchmarks" / "__init__.py").write_text("")
    (proj / "benchmarks" / "sub" / "__init__.py").write_text("")
    (proj / "benchmarks" / "sub" / "mod.py").write_text(textwrap.dedent(MOD))
    (proj / "benchmarks" / "other.py").write_text(textwrap.dedent(OTHER))
    conf = {
        "version": 1,
        "project": "foreign",
        "repo": ".",
        "branches": ["main"],
        "dvcs": "git",
        "environment_type": "virtualenv",
        "benchmark_dir": "benchmarks",
        "results_dir": "results",
        "env_dir": ".asv/env",
        "html_dir": ".asv/html",
    }
    (proj / "asv.conf.json").write_text(json.dumps(conf, indent=2))
    _git("init", "-q", "-b", "main", cwd=proj)
    _git("add", ".", cwd=proj)
    _git("commit", "-q", "-m", "foreign suite", cwd=proj)
    commit = _git("rev-parse", "HEAD", cwd=proj)
    env = {**os.environ, "HOME": str(proj)}  # asv machine writes ~/.asv-machine.json
    run = run_asv_once(proj, env, "m", commit, timeout=600)
    assert run.returncode in (0, 2), (
        run.stdout[-3000:] + run.stderr[-3000:]
    )  # 2: a benchmark failed
    assert list((proj / "results" / "m").glob("*.json")), run.stdout[-3000:]
    return {"results": proj / "results", "commit": commit}


def test_loads_with_statuses_and_empty_fingerprints(foreign):
    lines = []
    loaded = results.scan(foreign["results"], warn=lines.append)
    assert lines == []
    df = loaded.frame
    assert loaded.files == 1
    assert set(df["commit"]) == {foreign["commit"]}
    assert set(df["machine"]) == {"m"}
    by = {name: sub for name, sub in df.groupby(df["benchmark"].astype(str))}
    assert set(by) == {
        "sub.mod.Suite.time_loop",
        "sub.mod.Suite.track_value",
        "sub.mod.Skipping.time_skipped",
        "sub.mod.time_fails",
        "other.track_plain",
        "other.peakmem_list",
    }
    loop = by["sub.mod.Suite.time_loop"]
    assert len(loop) == 4 and set(loop["status"]) == {"ok"}
    assert set(loop["n"]) == {1, 2} and set(loop["label"]) == {"a, b", "c"}  # never split
    assert set(loop["unit"]) == {"seconds"} and loop["repeat"].notna().all()
    value = by["sub.mod.Suite.track_value"]
    for row in value.itertuples():
        assert row.value == row.n * 1.5 + len(row.label)
    assert list(by["sub.mod.time_fails"]["status"]) == ["failed"]
    assert math.isnan(by["sub.mod.time_fails"]["value"].iloc[0])
    assert list(by["sub.mod.Skipping.time_skipped"]["status"]) == ["skipped"]
    assert by["other.track_plain"]["unit"].iloc[0] == "widgets"
    assert by["other.track_plain"]["value"].iloc[0] == 42.0
    assert by["other.peakmem_list"]["unit"].iloc[0] == "bytes"
    fp = [c for c in df.columns if c.startswith("fp_")]
    assert {"fp_label", "fp_blas_vendor", "fp_threads", "fp_scanpy"} <= set(fp)
    assert df[fp].isna().all().all()


def test_commands_on_a_foreign_folder(foreign, tmp_path, capsys):
    assert main(["table", str(foreign["results"])]) == 0
    out = capsys.readouterr().out
    assert "sub.mod.Suite.time_loop" in out and "label='a, b'" in out
    assert "| failed |" in out and "| skipped |" in out
    assert "(no fingerprint)" in out
    assert main(["crossenv", str(foreign["results"])]) == 0
    assert "No artifacts found" in capsys.readouterr().out
    assert main(["report", str(foreign["results"]), str(tmp_path / "report")]) == 0
    assert "sub.mod.Suite.time_loop" in (tmp_path / "report" / "report.md").read_text()
