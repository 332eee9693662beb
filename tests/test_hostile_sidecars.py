"""Hostile results folders (issue #16), the harness's side: sidecar folders, result digests, JSON
lines and the study's files (pin, failure records, inputs). Same method as
``test_hostile_results``; helpers in ``hostile_helpers``.
"""

from __future__ import annotations

import io as stdio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import (
    MACHINE,
    ROOT,
    checked,
    copy_study,
    env_names,
    fingerprint_of,
    lines_naming,
    result_files,
    run,
    run_folder,
    tree_digest,
)

from harness.errors import HarnessError
from harness.results import scan
from harness.vocabulary import HARNESS_DIR


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return copy_study(tmp_path / "results")


# --- 5: an unreadable sidecar folder ------------------------------------------------------------


def test_unreadable_sidecar_folder(tmp_path):
    """Run as an unprivileged user (root reads everything); skipped where that is impossible."""
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is missing: cannot make a folder unreadable")
    base = Path(tempfile.mkdtemp(prefix="hostile-")) if as_root else tmp_path
    try:
        os.chmod(base, 0o755)
        root = copy_study(base / "results")
        folder = run_folder(result_files(root)[0])
        os.chmod(folder / "records", 0)
        before = tree_digest(root)
        prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        env = {**os.environ, "HOME": str(base), "MPLCONFIGDIR": str(base)}
        probe = subprocess.run([*prefix, "true"], capture_output=True) if as_root else None
        if probe is not None and probe.returncode != 0:
            pytest.skip(f"setpriv cannot switch to nobody here: {probe.stderr.decode().strip()}")
        if as_root:  # a checkout in a 0700 folder (mktemp -d) is closed to nobody
            imports = subprocess.run(
                [*prefix, sys.executable, "-c", "import harness"], capture_output=True, cwd=ROOT
            )
            if imports.returncode != 0:
                pytest.skip(f"nobody cannot import harness from {ROOT}: the checkout is closed")
        proc = subprocess.run(
            [*(prefix if as_root else []), sys.executable, "-m", "harness", "table", str(root)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        os.chmod(folder / "records", 0o755)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [x for x in proc.stderr.splitlines() if "records" in x and folder.name in x]
        assert len(lines) == 1, proc.stderr
        assert tree_digest(root) == before
    finally:
        if as_root:
            for p in base.rglob("*"):
                if p.is_dir() and not p.is_symlink():
                    os.chmod(p, 0o755)
            shutil.rmtree(base)


# --- 7: bad digests ----------------------------------------------------------------------------


def _npz(**arrays) -> bytes:
    buf = stdio.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _spoiled_digest(path: Path, how: str) -> None:
    raw = path.read_bytes()
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "npy":
        buf = stdio.BytesIO()
        np.save(buf, arrays["embedding"])
        path.write_bytes(buf.getvalue())
    elif how == "empty meta":
        path.write_bytes(_npz(**{**arrays, "meta": np.zeros(0, dtype=np.uint8)}))
    elif how == "list meta":
        meta = np.frombuffer(b"[1, 2]", dtype=np.uint8)
        path.write_bytes(_npz(**{**arrays, "meta": meta}))
    elif how == "nan":
        path.write_bytes(_npz(**{**arrays, "embedding": arrays["embedding"] * np.nan}))
    elif how == "inf":
        path.write_bytes(_npz(**{**arrays, "loadings": arrays["loadings"] + np.inf}))
    elif how == "shape":
        path.write_bytes(_npz(**{**arrays, "embedding": arrays["embedding"][:, :3]}))
    elif how == "strings":
        path.write_bytes(_npz(**{**arrays, "variance": np.array(["a"] * 50)}))
    elif how == "bomb":
        # A few MB of zip that unpacks to 400 MB.
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, arr in arrays.items():
                buf = stdio.BytesIO()
                np.save(buf, arr)
                zf.writestr(f"{name}.npy", buf.getvalue())
            with zf.open("padding.npy", "w", force_zip64=True) as fh:
                chunk = bytes(1 << 20)
                for _ in range(400):
                    fh.write(chunk)


DIGEST_CASES = ["truncated", "npy", "empty meta", "list meta", "nan", "inf", "shape", "strings"]


@pytest.mark.parametrize("how", [*DIGEST_CASES, "bomb"])
def test_bad_digest_is_skipped(study, capsys, how):
    path = sorted((run_folder(result_files(study)[0]) / "artifacts").glob("*.npz"))[0]
    _spoiled_digest(path, how)
    _, err = checked(capsys, study, "crossenv", str(study))
    warned = [x for x in err.splitlines() if path.name in x]
    assert len(warned) == 1, err


def test_bad_digest_in_compare_and_report(study, capsys, tmp_path):
    folder = run_folder(result_files(study)[0]) / "artifacts"
    for path, how in zip(sorted(folder.glob("*.npz")), DIGEST_CASES, strict=False):
        _spoiled_digest(path, how)
    a, b = env_names(study)[:2]
    before = tree_digest(study)
    code, _, err = run(capsys, "compare", a, b, "--results", str(study))
    assert code in (0, 1) and "artifacts" in err
    code, _, err = run(capsys, "report", str(study), str(tmp_path / "report"))
    assert code == 0 and "artifacts" in err
    assert tree_digest(study) == before


# --- 9: the study's pin and inputs.jsonl -------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff\xfe binary", b"[1, 2]\n", b'{"commit": 12}\n', b'{"commit": "ab'],
)
def test_corrupt_study_pin(study, capsys, content):
    from harness.study import driver, missing

    pin = study / MACHINE / HARNESS_DIR / "study" / "study.jsonl"
    pin.write_bytes(content)
    with pytest.raises(HarnessError, match=r"study\.jsonl"):
        driver.pinned_commit(study, MACHINE)
    missing.load(study)  # the pin is not a failure record: left alone
    _, err = checked(capsys, study, "writeup", str(study), rc=2)
    assert "study.jsonl" in err


def test_failure_record_that_is_a_list(study, capsys):
    from harness.study import missing

    # Where the driver writes a failure record (an environment that did not install).
    record = study / MACHINE / HARNESS_DIR / "study" / "00af3625-virtualenv-py3.11-x.jsonl"
    record.write_text("[1, 2]\n")
    lines: list[str] = []
    assert missing.load(study, warn=lines.append) == []
    assert len(lines) == 1 and record.name in lines[0]


def test_inputs_line_without_fields(study, capsys):
    from harness.results import sidecars

    folder = run_folder(result_files(study)[0])
    inputs = folder / "inputs.jsonl"
    inputs.write_text("{}\n" + inputs.read_text())
    lines: list[str] = []
    rows = sidecars.read_inputs(folder, warn=lines.append)
    assert rows and all("dataset" in r for r in rows)
    assert len(lines) == 1 and "inputs.jsonl" in lines[0] and "line 1" in lines[0]
    _, err = checked(capsys, study, "writeup", str(study))
    assert "inputs.jsonl" in err


# --- found by tests/test_fuzz.py ----------------------------------------------------------------


def test_sidecar_larger_than_the_limit(study):
    """Fuzz finding 2: sidecar reads are bounded (a fingerprint is a few kB)."""
    from harness import io

    path = fingerprint_of(study)
    path.write_bytes(path.read_bytes() + b" " * (io.MAX_SIDECAR_BYTES + 1))
    lines: list[str] = []
    scan(study, warn=lines.append)
    (line,) = lines_naming("\n".join(lines), "fingerprint.jsonl")
    assert "larger than" in line


def _npz_with_meta(path: Path, change) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.write_bytes(_npz(**arrays))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["condition"].__setitem__("index", "$x^$"),
        lambda m: m["condition"].pop("process"),
        lambda m: m["condition"].__setitem__("threads", "many"),
        lambda m: m["params"].pop("layout"),
        lambda m: m["params"].__setitem__("dtype", 64),
    ],
    ids=["index-text", "no-process", "threads-text", "no-layout", "dtype-int"],
)
def test_digest_metadata_of_the_wrong_type(study, capsys, change):
    """Fuzz finding 11: the metadata's values were used whatever their type."""
    from harness.bench import digests

    path = sorted((run_folder(result_files(study)[0]) / "artifacts").glob("*.npz"))[0]
    _npz_with_meta(path, change)
    with pytest.raises(ValueError, match="not a harness artifact"):
        digests.load(path)
    _, err = checked(capsys, study, "crossenv", str(study))
    assert len(lines_naming(err, path.name)) == 1, err


def test_digest_linked_to_a_proc_file_in_the_writeup(study, capsys, tmp_path):
    """Fuzz finding 12: the writeup left the digest out silently."""
    path = sorted((run_folder(result_files(study)[0]) / "artifacts").glob("*.npz"))[0]
    path.unlink()
    path.symlink_to("/proc/self/status")
    out = str(tmp_path / "w.json")
    _, err = checked(capsys, study, "writeup", str(study), "--format", "json", "--out", out)
    assert len(lines_naming(err, path.name)) == 1, err
