"""Helpers of the hostile-input tests (``test_hostile_results``, ``test_hostile_sidecars``): a copy
of the committed study in ``tmp_path``, the command line in-process and in a bounded child."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.render.writeup import study_machine
from harness.vocabulary import ANCHORS_DIR, HARNESS_DIR, run_folder_name

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results"
#: The machine whose study is published (results/<machine>/harness/study/study.jsonl).
MACHINE = study_machine(STUDY, lambda line: None)
HUGE = 10**400  # an integer JSON literal beyond float range


def copy_study(dst: Path, n: int = 3) -> Path:
    """The first ``n`` runs of the committed study (results files and sidecars) under ``dst``."""
    harness = dst / MACHINE / HARNESS_DIR
    harness.mkdir(parents=True)
    shutil.copy(STUDY / "benchmarks.json", dst)
    shutil.copy(STUDY / MACHINE / "machine.json", dst / MACHINE)
    shutil.copytree(STUDY / MACHINE / HARNESS_DIR / "study", harness / "study")
    anchors = STUDY / MACHINE / HARNESS_DIR / ANCHORS_DIR  # what format-2 digests decode against
    if anchors.is_dir():
        shutil.copytree(anchors, harness / ANCHORS_DIR)
    pin = (STUDY / MACHINE / HARNESS_DIR / "study" / "study.jsonl").read_text()
    commit8 = json.loads(pin.splitlines()[0])["commit"][:8]  # the study's runs, not the scale run
    files = sorted((STUDY / MACHINE).glob(f"{commit8}-*.json"))
    for p in files[:n]:
        data = json.loads(p.read_text())
        shutil.copy(p, dst / MACHINE)
        name = run_folder_name(data["commit_hash"], data["env_name"])
        shutil.copytree(STUDY / MACHINE / HARNESS_DIR / name, harness / name)
    # The study's records are packed (.jsonl.gz, harness.study.pack); the hostile cases write
    # into plain records, and the gzip cases are tests/test_io.py's.
    for packed in harness.glob("*/records/*/*.jsonl.gz"):
        packed.with_suffix("").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    return dst


def result_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / MACHINE).glob("*.json") if p.name != "machine.json")


def run_folder(path: Path) -> Path:
    """The sidecar folder of one results file."""
    data = json.loads(path.read_text())
    return path.parent / HARNESS_DIR / run_folder_name(data["commit_hash"], data["env_name"])


def env_names(root: Path) -> list[str]:
    return [json.loads(p.read_text())["env_name"] for p in result_files(root)]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (and their names and modes)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "link:" + os.readlink(p)
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The real command line, in this process: (exit code, stdout, stderr)."""
    rc = cli.main(list(args))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err, cap.err
    return rc, cap.out, cap.err


def checked(capsys, root: Path, *args: str, rc: int = 0) -> tuple[str, str]:
    """Run a command on ``root``; the exit code is ``rc`` and ``root`` is left unchanged."""
    before = tree_digest(root)
    code, out, err = run(capsys, *args)
    assert code == rc, err
    assert tree_digest(root) == before
    return out, err


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def first_row(data: dict, bench: str = "pca.PCA.time_pca") -> list:
    return data["results"][bench]


def cli_child(*args: str, timeout: float = 90) -> tuple[int, str]:
    """The command line in a child under a 3 GB memory bound: (exit code, stderr). A reader that
    blocks on a FIFO or reads /dev/zero whole fails here instead of hanging the suite (a hang,
    not a slow read: crossenv of 3 environments took 31 s at load average 4.8 on 2 cores)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *args],
            capture_output=True,
            text=True,
            preexec_fn=limit,
            cwd=ROOT,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"harness {args[0]}: no exit within {timeout} s")
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr


def fingerprint_of(root: Path, i: int = 0) -> Path:
    return run_folder(result_files(root)[i]) / "fingerprint.jsonl"


def edit_first_line(path: Path, change) -> None:
    lines = path.read_text().splitlines()
    data = json.loads(lines[0])
    change(data)
    path.write_text("\n".join([json.dumps(data), *lines[1:]]) + "\n")


def first_record(root: Path, pattern: str = "stability.*/*.jsonl") -> Path:
    return sorted((run_folder(result_files(root)[0]) / "records").glob(pattern))[0]


def lines_naming(err: str, name: str) -> list[str]:
    return [x for x in err.splitlines() if name in x]
