"""Pack one study environment's sidecars after asv wrote them, so 28 environments fit in results/.

Measured on the study's first environments (commit 00af3625): 1.5 MB of records and 1.1-3.4 MB
of digests per environment, 11.8 MB of anchors; 28 environments would have needed about 136 MB
against the 100 MB results/ may hold. Two changes, each lossless for what the study reports:

- records are gzip'd (``<params>.jsonl.gz``; the readers take both forms): about 4x smaller;
- the digest of a configuration whose two fresh processes disagree in this environment (lobpcg:
  scipy seeds its start vectors afresh, see analysis.mechanisms) is dropped, with the reason in
  ``artifacts/omitted.jsonl``: any cross-environment difference it showed would be its own noise,
  which the write-up already leaves out, and it cost 0.94 MB per environment (random bits do not
  compress). Anchors no digest of the machine refers to any more go with it.

Only the study driver calls this, on the folders it has just had asv write.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from harness import io
from harness.vocabulary import ANCHORS_DIR

PROCESS_BENCHMARK = "stability.Process.track_process"


def gzip_records(run_folder: Path) -> int:
    """Replace every ``records/*/*.jsonl`` of a run folder by its gzip; how many were packed."""
    n = 0
    for path in sorted((run_folder / "records").glob("*/*.jsonl")):
        # mtime=0: the same record always packs to the same bytes.
        io.write_bytes(
            path.with_name(path.name + ".gz"), gzip.compress(path.read_bytes(), 9, mtime=0)
        )
        path.unlink()
        n += 1
    return n


def _not_reproducible(run_folder: Path) -> dict[str, str]:
    """Params key -> why, for configurations whose fresh processes gave different bits."""
    out = {}
    folder = run_folder / "records" / PROCESS_BENCHMARK
    for path in sorted(folder.glob("*.jsonl*")):
        (rec,) = io.read_jsonl(path)[:1] or [{}]
        cmp = rec.get("comparison") or {}
        if rec.get("status") == "ok" and cmp.get("bitwise") is False:
            key = path.name.split(".jsonl")[0]
            out[key] = (
                "not reproducible across fresh processes in this environment "
                f"(process check: relative deviation {rec.get('value'):.2g})"
            )
    return out


def drop_unreproducible_digests(run_folder: Path) -> list[str]:
    """Drop the digests of configurations the process check found not reproducible here."""
    omitted_path = run_folder / "artifacts" / "omitted.jsonl"
    omitted = io.read_jsonl(omitted_path) if omitted_path.exists() else []
    dropped = []
    for key, reason in _not_reproducible(run_folder).items():
        digest = run_folder / "artifacts" / f"{key}.npz"
        if digest.exists():
            omitted.append({"artifact": digest.name, "reason": reason})
            io.write_jsonl(omitted_path, omitted)  # the reason lands before the file goes
            digest.unlink()
            dropped.append(key)
    return dropped


def drop_unused_anchors(machine_folder: Path) -> list[str]:
    """Anchors (``<config>-<array>-<dtype>-<shape>.npy``) whose config no digest keeps."""
    harness = machine_folder / "harness"
    kept = {p.stem for p in harness.glob("*/artifacts/*.npz")}
    gone = []
    for anchor in sorted((harness / ANCHORS_DIR).glob("*.npy")):
        config = anchor.name.rsplit("-", 3)[0]
        if config not in kept:
            os.unlink(anchor)
            gone.append(anchor.name)
    return gone


def pack(machine_folder: Path, run_folder: Path) -> str:
    """Pack one run folder (idempotent); a one-line summary."""
    records = gzip_records(run_folder)
    dropped = drop_unreproducible_digests(run_folder)
    anchors = drop_unused_anchors(machine_folder)
    return (
        f"packed {run_folder.name}: {records} records gzip'd, {len(dropped)} digests of "
        f"configurations not reproducible across processes dropped, {len(anchors)} anchors unused"
    )
