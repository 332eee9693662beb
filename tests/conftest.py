"""Shared fixtures: one real asv run of the smoke profile, reused by the tests that read it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.study.driver import load_conf

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "testbox"


def _cache_dir(tmp_path_factory) -> Path:
    """Datasets cache: the developer's if set (saves the 10x download), else a session temp dir."""
    return Path(os.environ.get("HARNESS_CACHE") or tmp_path_factory.mktemp("cache"))


def write_bad_inputs(folder: Path) -> dict[str, Path]:
    """User datasets that must be skipped with a reason: not h5ad, holding NaN."""
    import anndata as ad

    folder.mkdir(parents=True, exist_ok=True)
    not_h5ad = folder / "broken.h5ad"
    not_h5ad.write_text("this is not an HDF5 file\n")
    nan_file = folder / "with_nan.h5ad"
    x = np.ones((60, 40), dtype=np.float32)
    x[3, 5] = np.nan
    ad.AnnData(X=x).write_h5ad(nan_file)
    return {"broken": not_h5ad, "with_nan": nan_file}


def run_asv_once(
    cwd: Path, env: dict[str, str], machine: str, commit: str, *extra: str, timeout: float
) -> subprocess.CompletedProcess:
    """Real `asv machine` + `asv run` on this interpreter, one sample a benchmark (-a overrides)."""
    asv = [sys.executable, "-m", "asv"]
    subprocess.run(
        [*asv, "machine", "--yes", "--machine", machine],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
    )
    once = ["-a", "repeat=1", "-a", "warmup_time=0", "-a", "rounds=1"]
    return subprocess.run(
        [
            *asv,
            "run",
            "-E",
            f"existing:{sys.executable}",
            "--set-commit-hash",
            commit,
            "--machine",
            machine,
            *extra,
            *once,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def asv_smoke(tmp_path_factory):
    """Run the real suite with asv on pbmc68k_reduced (plus two bad user files) once per session.

    Timing attributes are overridden (-a) to one sample: the test checks what lands where, not speed.
    """
    work = tmp_path_factory.mktemp("asv")
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
    bad = write_bad_inputs(work / "user")
    env = {
        **os.environ,
        "HOME": str(work),
        "HARNESS_PROFILE": "smoke",
        "HARNESS_MACHINE": MACHINE,
        "HARNESS_RESULTS": str(results),
        "HARNESS_CACHE": str(_cache_dir(tmp_path_factory)),
        "HARNESS_DATASETS": os.pathsep.join(str(p) for p in bad.values()),
    }
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    env["HARNESS_COMMIT"] = commit  # asv sets no ASV_* variables for an existing interpreter
    run = run_asv_once(work, env, MACHINE, commit, "--launch-method", "forkserver", timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return {
        "results": results,
        "commit": commit,
        "env": env,
        "bad": bad,
        "log": run.stdout,
        "work": work,
    }


@pytest.fixture
def chdir_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def has_git() -> bool:
    return shutil.which("git") is not None
