"""Where the harness keeps its own files beside asv's results, and how they are keyed.

Layout, per (machine, commit, environment)::

    results/<machine>/harness/<commit[:8]>-<env>/
        fingerprint.jsonl            the environment (harness.bench.fingerprint), one line
        inputs.jsonl                 shape, nnz and sha256 of every matrix handed to PCA
        records/<benchmark>/<params>.jsonl   the full comparison behind one track_ value
        artifacts/<key>.npz          compact digests of PCA results, for cross-environment comparison

asv loads every ``*.json`` below ``results/`` as a results file and warns about any it cannot
read, so every harness file is ``.jsonl`` or ``.npz``, which asv leaves alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import io
from harness.vocabulary import HARNESS_DIR, run_folder_name

_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def params_key(params: dict[str, Any]) -> str:
    """A stable, readable, file-safe key for a parameter combination."""
    text = "-".join(f"{v}" for v in params.values())
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{_SAFE.sub('_', text)[:80]}-{digest}"


@dataclass(frozen=True)
class RunKey:
    """The (machine, commit, environment) a benchmark process belongs to."""

    machine: str
    commit: str
    env_name: str

    def folder(self, results_dir: Path) -> Path:
        return (
            results_dir / self.machine / HARNESS_DIR / run_folder_name(self.commit, self.env_name)
        )

    def to_dict(self) -> dict[str, str]:
        return {"machine": self.machine, "commit": self.commit, "env_name": self.env_name}


def cache_dir() -> Path:
    """Datasets, PCA results and built wheels: $HARNESS_CACHE, else ~/.cache/pca-harness.

    (Standard library only: harness.bench.backends needs it before numpy may be imported.)
    """
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "pca-harness")


def machine_name() -> str:
    """asv's machine name: $HARNESS_MACHINE, else the only entry of ~/.asv-machine.json, else the host."""
    if os.environ.get("HARNESS_MACHINE"):
        return os.environ["HARNESS_MACHINE"]
    try:
        machines = json.loads((Path.home() / ".asv-machine.json").read_text())
        names = [k for k in machines if k != "version"]
        if len(names) == 1:
            return names[0]
    except (OSError, ValueError):
        pass
    return platform.node()


def results_dir() -> Path:
    """$HARNESS_RESULTS, else asv.conf.json's results_dir under $ASV_CONF_DIR, else ./results.

    (ASV_CONF_DIR is not set for ``existing`` environments either: pass HARNESS_RESULTS there.)
    """
    if os.environ.get("HARNESS_RESULTS"):
        return Path(os.environ["HARNESS_RESULTS"])
    conf_dir = Path(os.environ.get("ASV_CONF_DIR", "."))
    try:
        text = (conf_dir / "asv.conf.json").read_text()
        conf = json.loads(
            "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        )
        return conf_dir / conf.get("results_dir", "results")
    except (OSError, ValueError):
        return conf_dir / "results"


def current() -> RunKey:
    """The run this process belongs to.

    asv sets ASV_COMMIT and ASV_ENV_NAME for the environments it builds, but not for an
    ``existing`` interpreter (ExistingEnvironment.run passes no ASV_* variables), so there the
    commit comes from $HARNESS_COMMIT (the Makefile passes what it gives --set-commit-hash) and
    the name follows asv's rule for existing environments.
    """
    return RunKey(
        machine=machine_name(),
        commit=os.environ.get("ASV_COMMIT") or os.environ.get("HARNESS_COMMIT") or "0" * 40,
        env_name=os.environ.get("ASV_ENV_NAME")
        or "existing-py" + sys.executable.replace(os.sep, "_"),
    )


def current_folder() -> Path:
    return current().folder(results_dir())


def write_once(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a JSON Lines file unless it already exists (fingerprints are written once)."""
    if not path.exists():
        io.write_jsonl(path, records)


def write_record(
    benchmark: str, params: dict[str, Any], value: float | None, record: dict[str, Any]
) -> Path:
    """Store the full record behind one track_ value, keyed by benchmark and params."""
    folder = current_folder() / "records" / benchmark
    line = {
        **current().to_dict(),
        "benchmark": benchmark,
        "params": params,
        "value": value,
        **record,
    }
    path = folder / f"{params_key(params)}.jsonl"
    io.write_jsonl(path, [line])
    return path
