"""harness history and harness gate on a planted scanpy repository (issue #12).

The repository is built here from scanpy 1.11.5's real source distribution (from the package
registry): a base commit, neutral commits, one that flips the sparse path's sign convention, one
that changes its numerics (ARPACK's tolerance), one whose pyproject.toml does not parse (it fails
to build) and its fix, and one that slows the sparse path down. Commit dates and authors are
fixed, so the hashes, and asv's build cache of them, are the same in every session; the asv
environment lives in the dataset cache (built once, about 3 minutes), the results in a session
folder, so every session really probes each commit.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from harness import io
from harness.analysis import rounding
from harness.bench.datasets import SCANPY_SDIST, matrix
from harness.bench.pca import PCAResult
from harness.bench.store import cache_dir
from harness.cli import main
from harness.history import changes, probe
from harness.history import run as runner
from harness.history.arguments import GATE_FAIL_ON
from harness.history.asvenv import ENV_DIR_VAR
from harness.history.bisect import bisect
from harness.history.changes import BIT_KINDS
from harness.history.git import Repo

ROOT = Path(__file__).resolve().parents[1]
PCA_FILE = "src/scanpy/preprocessing/_pca/__init__.py"
FIT = "            x_pca = pca_.fit_transform(x)\n"
SKLEARN_PCA = """                pca_ = PCA(
                    n_components=n_comps,
                    svd_solver=svd_solver,
                    random_state=random_state,
                )
"""
#: The planted history: (commit message, edit, the kind the history must report or None).
PLANTED = (
    ("neutral: a comment", "comment", None),
    ("sign: the sparse path's sign convention flipped", "sign", "sign only"),
    ("neutral: another comment", "comment", None),
    ("numerics: ARPACK stops at tol=0.5 on sparse input", "numerics", "beyond rounding"),
    ("broken: pyproject.toml does not parse", "break", None),
    ("fix the build", "fix", None),
    ("slow: the sparse path burns 1 s of CPU", "slow", "slower"),
)
ARGS = ["--datasets", "pbmc68k_reduced", "--layouts", "dense,csr", "--dtypes", "float32"]
ARGS += ["--solvers", "arpack", "--samples", "3"]
#: The build requirements line of 1.11.5's pyproject.toml, and the same without its bracket.
GOOD = 'requires = [ "hatchling", "hatch-vcs" ]'
BROKEN = 'requires = [ "hatchling", "hatch-vcs"'
FACTOR = "2"  # the planted slowdown is about 3.5x; 2x keeps CPU-time noise out of the verdicts


def _git(repo: Path, *args: str, date: int = 0) -> str:
    stamp = f"2025-01-01T{date:02d}:00:00+00:00"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "planted",
        "GIT_AUTHOR_EMAIL": "planted@example.org",
        "GIT_COMMITTER_NAME": "planted",
        "GIT_COMMITTER_EMAIL": "planted@example.org",
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _sdist() -> Path:
    """scanpy 1.11.5's sdist from the registry, kept in the dataset cache."""
    folder = cache_dir() / "history-test"
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob("scanpy-*.tar.gz"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*cmd, SCANPY_SDIST, "-d", str(folder)], check=True, timeout=600)
        found = sorted(folder.glob("scanpy-*.tar.gz"))
    return found[0]


def _edit(repo: Path, what: str, n: int) -> None:
    pca = repo / PCA_FILE
    text = pca.read_text()
    if what == "comment":
        text += f"# a neutral change ({n})\n"
    elif what == "sign":
        assert FIT in text
        flip = "            if isinstance(x, CSBase):  # planted: the sign convention flipped\n"
        flip += "                x_pca, pca_.components_ = -x_pca, -pca_.components_\n"
        text = text.replace(FIT, FIT + flip, 1)
    elif what == "numerics":
        assert SKLEARN_PCA in text
        tol = SKLEARN_PCA.replace(
            "random_state=random_state,\n",
            "random_state=random_state,\n"
            "                    tol=0.5 if isinstance(x, CSBase) else 0.0,\n",
        )
        text = text.replace(SKLEARN_PCA, tol, 1)
    elif what == "slow":
        burn = "            if isinstance(x, CSBase):  # planted: 1 s of CPU burnt\n"
        burn += "                import time as _t\n"
        burn += "                _end = _t.process_time() + 1.0\n"
        burn += "                while _t.process_time() < _end:\n"
        burn += "                    pass\n"
        text = text.replace(FIT, burn + FIT, 1)
    elif what == "raise":
        boom = "            if isinstance(x, CSBase):\n"
        boom += "                raise ValueError('planted: sparse PCA broken')\n"
        text = text.replace(FIT, boom + FIT, 1)
    if what in ("break", "fix"):
        py = repo / "pyproject.toml"
        body = py.read_text()
        py.write_text(body.replace(GOOD, BROKEN) if what == "break" else body.replace(BROKEN, GOOD))
    else:
        pca.write_text(text)


def make_planted(folder: Path) -> dict[str, object]:
    """Build the planted repository in ``folder``: its path and commit hashes by name."""
    repo = folder / "scanpy"
    staging = folder / "sdist"
    with tarfile.open(_sdist()) as tar:
        tar.extractall(staging, filter="data")
    (top,) = staging.iterdir()
    repo.mkdir()
    for name in ("pyproject.toml", "hatch.toml", "README.md", "LICENSE", ".gitmodules", "src"):
        src = top / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / name)
    shutil.rmtree(staging)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base: scanpy 1.11.5's sdist", date=0)
    _git(repo, "tag", "1.11.5")
    shas = {"base": _git(repo, "rev-parse", "HEAD")}
    for i, (message, what, _kind) in enumerate(PLANTED, 1):
        _edit(repo, what, i)
        _git(repo, "commit", "-q", "-a", "-m", message, date=i)
        shas[f"c{i}"] = _git(repo, "rev-parse", "HEAD")
    # A side branch off the first neutral commit whose sparse PCA raises (for the gate).
    _git(repo, "checkout", "-q", "-b", "raises", shas["c1"])
    _edit(repo, "raise", 0)
    _git(repo, "commit", "-q", "-a", "-m", "raise: sparse PCA raises", date=20)
    shas["raises"] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    return {"repo": repo, "shas": shas}


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> dict[str, object]:
    """The planted repository: commit hashes by name, its path, the raising side branch."""
    return make_planted(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def history_env(tmp_path_factory):
    """The asv environment in the dataset cache (created once), results in a session folder."""
    saved = os.environ.get(ENV_DIR_VAR)
    os.environ[ENV_DIR_VAR] = str(cache_dir() / "history-test" / "env")
    matrix("pbmc68k_reduced", "csr", "float32")  # the dataset cache, before any probe reads it
    yield tmp_path_factory.mktemp("history-results")
    if saved is None:
        os.environ.pop(ENV_DIR_VAR, None)
    else:
        os.environ[ENV_DIR_VAR] = saved


def _cli(args: list[str], cwd: Path = ROOT, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.fixture(scope="session")
def history_run(planted, history_env):
    """The history over the planted range, interrupted once during its first probes and resumed."""
    repo, shas = planted["repo"], planted["shas"]
    spec = f"{shas['base']}..{shas[f'c{len(PLANTED)}']}"
    args = ["history", str(repo), spec, *ARGS, "--results", str(history_env)]
    args += ["--runtime-factor", FACTOR]
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt once the second commit is being measured: the first is stored by then.
    lines = []
    deadline = time.monotonic() + 900
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if len([x for x in lines if x.rstrip().endswith("PCA checks")]) >= 2:
            proc.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(lines)
    _out, err = proc.communicate(timeout=300)
    interrupted = {"code": proc.returncode, "stderr": "".join(lines) + err}
    done = _cli(args)
    return {"interrupted": interrupted, "done": done, "spec": spec, "results": history_env}


def test_interrupted_history_resumes(history_run):
    first = history_run["interrupted"]
    assert first["code"] == 130, first["stderr"]
    assert re.search(r"interrupted while measuring [0-9a-f]{9} \(", first["stderr"])
    assert "run the same command again to resume" in first["stderr"]
    done = history_run["done"]
    assert done.returncode == 0, done.stderr
    # The commit measured before the interruption came back from the store.
    assert re.search(r"evaluated, [1-9]\d* from stored results", done.stdout), done.stdout


def test_history_names_exactly_the_planted_commits(history_run, planted):
    out = history_run["done"].stdout
    shas = planted["shas"]
    found = re.findall(r"^change \d+/\d+: ([0-9a-f]{9}) ", out, re.M)
    expected = {shas[f"c{i}"][:9]: kind for i, (_m, _w, kind) in enumerate(PLANTED, 1) if kind}
    assert found == list(expected), out
    for sha, kind in expected.items():
        block = out.split(f": {sha} ", 1)[1].split("\nchange ", 1)[0].split("\nbuilt ", 1)[0]
        lines = [x for x in block.splitlines() if x.startswith("    ")]
        # Only the sparse configuration moved; the dense control never does.
        assert len(lines) == 1 and "pbmc68k_reduced csr float32 arpack" in lines[0], block
        assert kind in lines[0], block
    assert "50 PCs flipped" in out
    # The build failure is recorded with its reason and skipped like git bisect skip.
    broken = shas["c5"][:9]
    assert re.search(rf"^skipped {broken}: failed to build: .*TOMLDecodeError", out, re.M), out
    # The count of builds, against the target.
    m = re.search(r"N=(\d+) sources, k=(\d+) change points: target .* = ([\d.]+)", out)
    assert m and int(m.group(1)) == len(PLANTED) + 1 and int(m.group(2)) == 3, out
    assert "a later commit reverts" in out


def test_history_results_are_stored(history_run):
    runs = list(Path(history_run["results"]).glob("*/runs/*.jsonl"))
    assert len(runs) == 1
    records = io.read_jsonl(runs[0])
    head = records[0]
    assert head["kind"] == "history" and head["commits"] == len(PLANTED) + 1
    assert [r["kind"] for r in records[1:]].count("change") == 3
    assert [r["kind"] for r in records[1:]].count("skipped") == 1
    sources = list(Path(history_run["results"]).glob("*/sources/*.jsonl"))
    # The fix restores the numerics commit's source exactly: one stored source serves both.
    assert len(sources) == len(PLANTED)


@pytest.mark.parametrize(
    ("base", "head", "code", "text"),
    [
        ("base", "c1", 0, "gate: PASS: bits identical in all 2"),
        ("c1", "c2", 1, "bits sign only"),
        ("c3", "c4", 1, "bits beyond rounding"),
        ("c6", "c7", 1, "slower"),
        ("c1", "raises", 1, "ok -> raised: ValueError: planted: sparse PCA broken"),
    ],
)
def test_gate(history_run, planted, capsys, base, head, code, text):
    shas = planted["shas"]
    args = ["gate", shas[base], shas[head], "--repo", str(planted["repo"]), *ARGS]
    assert main([*args, "--factor", FACTOR, "--results", str(history_run["results"])]) == code
    out = capsys.readouterr().out
    assert text in out, out


def test_gate_on_a_commit_that_fails_to_build(history_run, planted, capsys):
    shas = planted["shas"]
    args = ["gate", shas["c4"], shas["c5"], "--repo", str(planted["repo"]), *ARGS]
    assert main([*args, "--results", str(history_run["results"])]) == 2
    err = capsys.readouterr().err
    assert f"({shas['c5'][:9]}): failed to build:" in err
    assert "Traceback" not in err


def test_bad_arguments(tmp_path, capsys, planted):
    cases = [
        (["history", str(tmp_path), "a..b"], "not a git repository"),
        (["history", str(tmp_path / "nope"), "a..b"], "not a directory"),
        (["history", str(planted["repo"]), "nope..main"], "'nope' does not name a commit"),
        (["history", str(planted["repo"]), "main"], "expected A..B"),
        (["history", str(planted["repo"]), "main..1.11.5"], "not on 1.11.5's first-parent line"),
        (["history", str(planted["repo"]), "1.11.5..main", "--solvers", "svd"], "--solvers"),
        (["gate", "1.11.5", "nope", "--repo", str(planted["repo"])], "'nope' does not name"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)


# --- the bisection on its own ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(3, 300),
    data=st.data(),
)
def test_bisect_finds_every_change_point(n, data):
    """Every planted change of a step sequence, within (k+1)*log2(n)+k+2 evaluations, and each
    unusable unit skipped (never reported as a change of its own)."""
    k = data.draw(st.integers(0, min(6, n - 1)))
    points = sorted(data.draw(st.sets(st.integers(1, n - 1), min_size=k, max_size=k)))
    broken = data.draw(st.sets(st.integers(1, n - 2), max_size=3)) - set(points)
    value = [sum(1 for p in points if p <= i) for i in range(n)]
    calls = []

    def evaluate(i):
        calls.append(i)
        return None if i in broken else value[i]

    out = bisect(n, evaluate, lambda a, b: a != b)
    assert len(calls) == len(set(calls))  # no unit evaluated twice
    found = [c.after for c in out.changes]
    # A change at a broken unit is reported at the next usable one, with the skipped in between.
    expected = sorted({next(j for j in range(p, n) if j not in broken) for p in points})
    assert found == expected
    for c in out.changes:
        assert all(j in broken for j in range(c.before + 1, c.after))
    assert len(calls) <= (k + 1) * math.log2(n) + k + 2 + 2 * len(broken)


def test_gate_default_fails_on_any_bit_change():
    assert BIT_KINDS[0] == GATE_FAIL_ON


def test_source_keys_ignore_what_does_not_build(planted):
    """Commits with equal keys build the same wheel: the fix restores the numerics commit's key."""
    repo = Repo(planted["repo"])
    shas = planted["shas"]
    keys = {name: repo.source_key(sha) for name, sha in shas.items()}
    assert keys["c6"] == keys["c4"]
    assert len({keys[f"c{i}"] for i in range(1, 6)}) == 5


def test_bits_change_kinds(tmp_path):
    """Each kind from real PCA outputs: identical, sign flips, the variance ratio alone, a
    rounding-level perturbation, an algorithm change, and a state change."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40)) @ np.diag(np.linspace(3, 0.5, 40))
    problem = rounding.problem_of(x)

    def result(solver: str, data: np.ndarray = x, **kw) -> PCAResult:
        pca = PCA(n_components=10, svd_solver=solver, random_state=0, **kw)
        emb = pca.fit_transform(data)
        return PCAResult(
            emb, pca.components_.T, pca.explained_variance_, pca.explained_variance_ratio_
        )

    base = result("full")
    flipped = dataclasses.replace(base, embedding=-base.embedding, loadings=-base.loadings)
    ratio = dataclasses.replace(base, variance_ratio=base.variance_ratio * (1 + 1e-12))
    randomized = result("randomized", iterated_power=1)
    # The same algorithm on an input perturbed in its last bits: rounding, nothing more.
    nudged = result("full", x * (1 + 4e-16 * rng.standard_normal(x.shape)))
    named = {"base": base, "flipped": flipped, "ratio": ratio, "rand": randomized, "nudged": nudged}
    rows = {}
    for name, r in named.items():
        sha = probe.result_sha(r)
        probe.save_blob(tmp_path, sha, r)
        rows[name] = {"state": "ok", "sha256": sha}
    config = ("data", "dense", "float64", "full")

    def kind(a: str, b: dict) -> str | None:
        got = changes.bits_change(config, rows[a], b, lambda *_: problem, tmp_path)
        return got and got.to_dict()

    assert kind("base", rows["base"]) is None
    assert kind("base", rows["flipped"]) == {"kind": "sign only", "flipped": 10}
    assert kind("base", rows["ratio"])["kind"] == "variance ratio only"
    assert kind("base", rows["rand"])["kind"] == "beyond rounding"
    assert kind("base", rows["nudged"])["kind"] == "within rounding"
    raised = {"state": "raised", "error": "ValueError: boom"}
    assert kind("base", raised) == {"kind": "ok -> raised", "detail": "ValueError: boom"}


def test_a_probe_child_gives_its_status_and_stderr_tail_or_times_out():
    code, tail = runner._run_child(["sh", "-c", "echo first >&2; echo oops >&2; exit 3"], 30)
    assert (code, tail) == (3, "first | oops")
    t0 = time.monotonic()
    code, tail = runner._run_child(["sh", "-c", "sleep 300"], 1)
    assert (code, tail) == (124, "PCA checks timed out after 1 s")
    assert time.monotonic() - t0 < 30
