"""The study driver on a real clone: environments that cannot run are recorded and tabulated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from harness.study import driver as study_driver
from harness.study.driver import load_conf, missing, pinned_commit, steps

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "studybox"


def _clone_with_matrix(tmp_path: Path, matrix: dict, include: list[dict]) -> Path:
    """A clone of this repository whose asv.conf.json builds only ``matrix`` and ``include``."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    conf = load_conf(repo / "asv.conf.json")
    conf.update(matrix=matrix, include=include, exclude=[])
    (repo / "asv.conf.json").write_text(json.dumps(conf, indent=1))
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "ASV_"))}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_unloadable_backend_and_failed_install_show_in_the_table(tmp_path):
    baseline = load_conf(ROOT / "asv.conf.json")["matrix"]["req"]
    req = {k: v[0] for k, v in baseline.items()}
    repo = _clone_with_matrix(
        tmp_path,
        # A release that does not exist: pip fails inside a real asv environment.
        {"req": {**{k: [v] for k, v in req.items()}, "scanpy": ["0.0.1"]}},
        # HARNESS_BLAS names no implementation: no environment is built for it.
        [{"python": "3.11", "req": req, "env_nobuild": {"HARNESS_BLAS": "nonesuch"}}],
    )
    assert len(steps(repo / "asv.conf.json")) == 2

    run = _run(repo, "harness.study", "--machine", MACHINE)
    assert run.returncode == 0, run.stderr
    assert "0 of 2 environments have results" in run.stdout

    results = repo / "results"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert pinned_commit(results, MACHINE) == head
    rows = {r["status"]: r for r in missing.load(results, machine=MACHINE)}
    assert set(rows) == {"backend unavailable", "failed to install"}
    assert "unknown backend 'nonesuch'" in rows["backend unavailable"]["reason"]
    assert "HARNESS_BLAS=nonesuch" in rows["backend unavailable"]["environment"]
    assert "scanpy 0.0.1" in rows["failed to install"]["environment"]
    assert "No matching distribution found for scanpy==0.0.1" in rows["failed to install"]["reason"]

    listing = _run(repo, "harness.study", "--machine", MACHINE, "--list").stdout
    assert "backend unavailable" in listing and "failed to install" in listing

    table = _run(repo, "harness", "table", "results", "--machine", MACHINE)
    assert table.returncode == 0, table.stderr
    assert "Environments without results" in table.stdout
    assert "unknown backend 'nonesuch'" in table.stdout
    assert "| failed to install |" in table.stdout

    as_json = json.loads(_run(repo, "harness", "table", "results", "--format", "json").stdout)
    assert {r["status"] for r in as_json["summary"]["without_results"]} == set(rows)


def test_failure_reason_names_the_exception_not_asv():
    from harness.study.driver import failure_reason

    log = """·· Error running python benchmark.py discover (exit status 1)
       File "scanpy/metrics/_morans_i.py", line 131, in <module>
   AttributeError: `np.float_` was removed in the NumPy 2.0 release. Use `np.float64` instead.
·· Last error: Command 'python benchmark.py discover' returned non-zero exit status 1
asv.util.ProcessError: Command 'python benchmark.py discover' returned non-zero exit status 1
"""
    assert failure_reason(log, 1).startswith("AttributeError: `np.float_` was removed")
    assert failure_reason("ERROR: No matching distribution found for x==0\n", 1).startswith("No ")
    assert failure_reason("nothing useful\n", 3) == "asv exited 3"


def test_interpreters_pyenv_does_not_expose_are_found(tmp_path, monkeypatch):
    from harness.study.driver import interpreter_dirs

    bin_dir = tmp_path / "versions" / "3.99.1" / "bin"
    bin_dir.mkdir(parents=True)
    exe = bin_dir / "python3.99"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    assert interpreter_dirs({"3.99"}) == [str(bin_dir)]
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")  # now it runs as is
    assert interpreter_dirs({"3.99"}) == []


def test_every_module_the_asv_config_runs_exists():
    """asv.conf.json's build and install commands name modules by path; a module that moved
    (harness.setup_backends became harness.study.setup_backends) fails every environment."""
    import importlib.util

    conf = load_conf(Path(__file__).resolve().parents[1] / "asv.conf.json")
    commands = [*conf["build_command"], *conf["install_command"]]
    modules = [m for c in commands for m in re.findall(r"python -m ?(\S+)", c) if m != "pip"]
    assert "harness.study.setup_backends" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module


def test_a_resumed_study_runs_the_pinned_commits_benchmarks(tmp_path):
    """asv imports the benchmarks from the folder it is given: a study pinned to an older commit
    and resumed from a newer checkout must run the older files (a worktree of the pin)."""
    from harness.study.driver import source_tree

    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    pinned = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    pinned = pinned.strip()
    (repo / "benchmarks" / "pca.py").write_text("# changed after the pin\n")
    subprocess.run([*git, "commit", "-qam", "later"], check=True)

    assert source_tree(repo, pinned) == repo / ".asv" / "study-src" / pinned[:12]
    tree = source_tree(repo, pinned)  # a second call reuses the worktree
    at_pin = subprocess.run(
        [*git, "show", f"{pinned}:benchmarks/pca.py"], capture_output=True, text=True, check=True
    ).stdout
    assert (tree / "benchmarks" / "pca.py").read_text() == at_pin != "# changed after the pin\n"
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert source_tree(repo, head.strip()) == repo


def test_a_study_is_never_resumed_on_another_cpu(tmp_path):
    """The asv machine name defaults to the hostname, which VMs of other CPUs share: resuming a
    study there would blame CPU differences on each environment's factor. The driver refuses,
    before `asv machine` rewrites the folder's machine.json, and names the way out."""
    from harness.bench.fingerprint import cpu_info
    from harness.study.driver import cpu_problem
    from harness.vocabulary import run_folder_name

    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    results = repo / "results"
    env_name = "virtualenv-py3.11-elsewhere"
    run = results / MACHINE / "harness" / run_folder_name(head, env_name)
    run.mkdir(parents=True)
    fp = {"machine": MACHINE, "commit": head, "env_name": env_name, "schema": 1,
          "cpu": {"model": "Some Other CPU 9000", "count": 2}}  # fmt: skip
    (run / "fingerprint.jsonl").write_text(json.dumps(fp) + "\n")
    here = cpu_info()["model"]

    assert cpu_problem(results, MACHINE, head, "Some Other CPU 9000") is None
    assert cpu_problem(results, "elsewhere", head, here) is None  # a name of its own
    why = cpu_problem(results, MACHINE, head, here)
    assert why and "Some Other CPU 9000 (1 environments)" in why and f"is {here}" in why

    done = _run(repo, "harness.study", "--machine", MACHINE, "--commit", head)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "across CPUs" in line and "make study MACHINE=NAME" in line
    assert not (results / MACHINE / "machine.json").exists()  # nothing was written
    assert pinned_commit(results, MACHINE) is None
    listing = _run(repo, "harness.study", "--machine", MACHINE, "--commit", head, "--list")
    assert listing.returncode == 0 and "across CPUs" in listing.stderr


def test_ambient_steering_variables_are_the_matrixs_only():
    """An AMD VM here exports OPENBLAS_CORETYPE=Haswell: inherited, it forced the kernel of every
    environment that leaves the variable unset (the null control read 0/28 bitwise)."""
    from harness.study.driver import ambient_steering

    study = steps(ROOT / "asv.conf.json")
    environ = {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "4", "OPENBLAS_L2_SIZE": "512",
               "HOME": "/root", "MKL_CBWR": "AVX2"}  # fmt: skip
    assert ambient_steering(study, environ) == {
        "MKL_CBWR": "AVX2",
        "OMP_NUM_THREADS": "4",
        "OPENBLAS_CORETYPE": "Haswell",
    }
    assert ambient_steering(study, {"HOME": "/root"}) == {}


def test_benchmarks_json_keeps_what_an_asv_run_of_another_profile_dropped(tmp_path):
    """asv rewrites benchmarks.json with the benchmarks of its own profile; the entries of the
    others come back (the committed study once dropped the dask suite's names)."""
    from harness.results import keep_benchmarks

    kept = {"name": "dask.DaskPCA.time_pca", "param_names": ["dataset", "layout"]}
    old = {"name": "pca.PCA.time_pca", "param_names": ["dataset"], "version": "old"}
    (tmp_path / "benchmarks.json").write_text(
        json.dumps({"dask.DaskPCA.time_pca": kept, "pca.PCA.time_pca": old, "version": 2})
    )
    snapshot = tmp_path / "before.json"
    assert keep_benchmarks.main(["save", str(tmp_path), str(snapshot)]) == 0
    new = {**old, "version": "new"}  # what asv discovered this time
    (tmp_path / "benchmarks.json").write_text(json.dumps({"pca.PCA.time_pca": new, "version": 2}))
    assert keep_benchmarks.main(["restore", str(tmp_path), str(snapshot)]) == 0
    after = json.loads((tmp_path / "benchmarks.json").read_text())
    assert after == {"dask.DaskPCA.time_pca": kept, "pca.PCA.time_pca": new, "version": 2}


def test_committed_benchmarks_json_names_every_benchmark_with_results():
    """Every benchmark of every committed results file has its parameter names in
    benchmarks.json (without them the readers fall back to param1, param2...)."""
    results = ROOT / "results"
    described = set(json.loads((results / "benchmarks.json").read_text()))
    for path in results.glob("*/*.json"):
        if path.name == "machine.json":
            continue
        names = set(json.loads(path.read_text().replace("NaN", "null"))["results"])
        assert names <= described, f"{path.name}: {sorted(names - described)}"


def test_an_asv_run_past_its_time_is_stopped_and_recorded(tmp_path, monkeypatch):
    """The study's asv run has a timeout (it had none): past it, asv and everything it started
    are killed, and the environment is recorded 'timed out' with the reason."""
    req = {k: [v[0]] for k, v in load_conf(ROOT / "asv.conf.json")["matrix"]["req"].items()}
    repo = _clone_with_matrix(tmp_path, {"req": req}, [])
    (step,) = steps(repo / "asv.conf.json")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(study_driver, "STEP_TIMEOUT", 3)
    monkeypatch.chdir(repo)
    conf = load_conf(repo / "asv.conf.json")
    status = study_driver.run_step(step, conf, head, MACHINE, repo, tmp_path / "logs")
    assert status == "timed out"
    (row,) = missing.load(repo / "results", machine=MACHINE)
    assert row["status"] == "timed out"
    assert "did not finish within 3 s" in row["reason"]
