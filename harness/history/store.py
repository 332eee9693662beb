"""Where a history keeps what it measured, so nothing is built or run twice and a run resumes.

Layout (every file JSON Lines, written atomically; asv reads ``*.json`` below results/)::

    results/history/<env-id>/
        env.jsonl                   the asv environment: name, requirements, Python
        sources/<key>.jsonl         one per distinct source (git.Repo.source_key): a header
                                    (the commit probed, its build) and one row per configuration,
                                    or the failure that made the commit unusable
        runs/<range>--<datasets>.jsonl   one history: commits, change points, builds, time

Blobs of PCA outputs (harness.history.probe) live in the cache, not here: results/ stays small.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import io
from harness.bench.store import cache_dir

DEFAULT_RESULTS = Path("results") / "history"
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def env_id(python: str, requirements: dict[str, str]) -> str:
    """A short, stable folder name for an environment: its Python and a hash of its pins."""
    text = io.dumps({"python": python, "req": requirements})
    return f"py{python}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def key_name(source_key: str) -> str:
    return hashlib.sha256(source_key.encode()).hexdigest()[:16]


def run_name(spec: str, datasets: tuple[str, ...] | list[str]) -> str:
    """A history's file name: its range and datasets (histories over more datasets are kept
    beside those over fewer, so an unfinished larger one never hides a finished smaller one)."""
    return _SAFE.sub("_", f"{spec.replace('..', '__')}--{'+'.join(datasets)}")[:160]


def blob_dir() -> Path:
    """The content-addressed PCA outputs the probes write (harness.history.probe.save_blob)."""
    return cache_dir() / "history" / "blobs"


@dataclass
class Source:
    """What one distinct source gave: unusable (stage, reason) or the rows of its configurations."""

    key: str
    commit: str
    status: str  # "ok" | "failed to build" | "failed to import" | "failed to run"
    reason: str = ""
    build: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    rows: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def header(self) -> dict[str, Any]:
        return {
            "kind": "source",
            "key": self.key,
            "commit": self.commit,
            "status": self.status,
            "reason": self.reason,
            "build": self.build,
            "probe": self.probe,
        }


CONFIG_FIELDS = ("dataset", "layout", "dtype", "svd_solver")


def config_of(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in CONFIG_FIELDS)


def _source(rows: list[dict[str, Any]]) -> Source:
    """A stored source from its file's records (the header, then one row per configuration)."""
    head = rows[0]
    src = Source(
        key=head["key"],
        commit=head["commit"],
        status=head["status"],
        reason=head.get("reason", ""),
        build=head.get("build", {}),
        probe=head.get("probe", {}),
    )
    for row in rows[1:]:
        src.rows[config_of(row)] = row
    return src


class Store:
    """The results of one environment's histories (see the module docstring)."""

    def __init__(self, root: Path, env: str):
        self.root = Path(root) / env

    def _source_path(self, key: str) -> Path:
        return self.root / "sources" / f"{key_name(key)}.jsonl"

    def load_source(self, key: str) -> Source | None:
        path = self._source_path(key)
        return _source(io.read_jsonl(path)) if path.exists() else None

    def save_source(self, src: Source) -> None:
        rows = [src.header(), *(src.rows[c] for c in sorted(src.rows))]
        io.write_jsonl(self._source_path(src.key), rows)

    def save_env(self, record: dict[str, Any]) -> None:
        path = self.root / "env.jsonl"
        if not path.exists():
            io.write_jsonl(path, [record])

    def load_env(self) -> dict[str, Any]:
        path = self.root / "env.jsonl"
        return io.read_jsonl(path)[0] if path.exists() else {}

    def save_run(self, name: str, records: list[dict[str, Any]]) -> Path:
        path = self.root / "runs" / f"{name}.jsonl"
        io.write_jsonl(path, records)
        return path

    def runs(self) -> list[list[dict[str, Any]]]:
        folder = self.root / "runs"
        return [io.read_jsonl(p) for p in sorted(folder.glob("*.jsonl"))] if folder.is_dir() else []

    def sources(self) -> list[Source]:
        folder = self.root / "sources"
        paths = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        return [_source(io.read_jsonl(p)) for p in paths]
