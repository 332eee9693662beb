"""Environments of the matrix that have no results, and why: never silently missing.

The study (:mod:`harness.study.driver`) writes one record per environment that did not run, beside
asv's results::

    results/<machine>/harness/study/<commit[:8]>-<env>.jsonl

with ``status`` 'failed to install' (pip or the build failed; the reason is the log's error line)
or 'backend unavailable' (HARNESS_BLAS names an implementation whose libraries are absent). The
tables and the published study read them back with :func:`load`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import io
from harness.bench import store

STATUSES = ("failed to install", "backend unavailable")
FOLDER = "study"
COLUMNS = ("machine", "commit", "environment", "status", "reason")


def path_for(results_dir: Path, machine: str, commit: str, env_name: str) -> Path:
    """Where the record of one environment without results lives."""
    return (
        results_dir
        / machine
        / store.HARNESS_DIR
        / FOLDER
        / f"{commit[:8]}-{store.env_key(env_name)}.jsonl"
    )


def write(results_dir: Path, record: dict[str, Any]) -> None:
    """Record (atomically) that ``record['env_name']`` has no results; ``status`` says why."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {record.get('status')!r}")
    path = path_for(results_dir, record["machine"], record["commit"], record["env_name"])
    io.write_jsonl(path, [record])


def clear(results_dir: Path, machine: str, commit: str, env_name: str) -> None:
    """Forget an earlier failure of an environment that now has results."""
    path_for(results_dir, machine, commit, env_name).unlink(missing_ok=True)


def describe(record: dict[str, Any]) -> str:
    """A readable name of the environment: Python, pinned releases, run-time variables."""
    parts = [f"py{record.get('python', '?')}"]
    parts += [f"{k} {v}" for k, v in sorted((record.get("requirements") or {}).items()) if v]
    env = {**(record.get("env") or {}), **(record.get("env_nobuild") or {})}
    parts += [f"{k}={v}" for k, v in sorted(env.items())]
    return " · ".join(parts)


def load(
    root: str | Path, *, machine: str | None = None, commit: str | None = None
) -> list[dict[str, Any]]:
    """Every record below ``root`` (optionally one machine, one commit prefix), sorted.

    Unreadable files are skipped: a results folder is read, never repaired.
    """
    rows = []
    for path in sorted(Path(root).glob(f"*/{store.HARNESS_DIR}/{FOLDER}/*.jsonl")):
        try:
            lines = path.read_text().splitlines()
            rec = json.loads(lines[0]) if lines else {}
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if rec.get("status") not in STATUSES:
            continue  # e.g. the study's pin, or a foreign file
        if machine and rec.get("machine") != machine:
            continue
        if commit and not str(rec.get("commit", "")).startswith(commit):
            continue
        rows.append(
            {
                "machine": rec.get("machine", path.parts[-4]),
                "commit": str(rec.get("commit", ""))[:8],
                "environment": describe(rec),
                "env_name": rec.get("env_name", ""),
                "status": rec["status"],
                # The first line: a log line can hold a whole escaped message ("...\\n...").
                "reason": str(rec.get("reason", "")).split("\\n")[0].strip(),
            }
        )
    return rows


def to_markdown(rows: list[dict[str, Any]], *, level: int = 2) -> str:
    """A section listing the environments without results ('' when there are none)."""
    from harness.render import formats as render

    if not rows:
        return ""
    headers = ["environment", "machine", "commit", "status", "reason"]
    body = [[r["environment"], r["machine"], r["commit"], r["status"], r["reason"]] for r in rows]
    return (
        f"{'#' * level} Environments without results\n\n"
        + render.md_table(headers, body, ["l"] * len(headers))
        + "\n"
    )


def to_html(rows: list[dict[str, Any]], *, level: int = 2) -> str:
    from harness.render import formats as render

    if not rows:
        return ""
    headers = ["environment", "machine", "commit", "status", "reason"]
    body = [[r["environment"], r["machine"], r["commit"], r["status"], r["reason"]] for r in rows]
    return f"<h{level}>Environments without results</h{level}>\n" + render.html_table(headers, body)
