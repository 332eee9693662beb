"""Environments of the matrix that have no results, and why: never silently missing.

The study (:mod:`harness.study.driver`) writes one record per environment that did not run, beside
asv's results::

    results/<machine>/harness/study/<commit[:8]>-<env>.jsonl

with ``status`` 'failed to install' (pip or the build failed; the reason is the log's error line),
'backend unavailable' (HARNESS_BLAS names an implementation whose libraries are absent) or 'timed
out' (asv ran past :data:`harness.study.driver.STEP_TIMEOUT` and was stopped). The
tables and the published study read them back with :func:`load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import io
from harness.render import formats as render
from harness.results.problems import Warn, default_warn
from harness.vocabulary import HARNESS_DIR, STUDY_DIR, run_folder_name

STATUSES = ("failed to install", "backend unavailable", "timed out")

COLUMNS = ("machine", "commit", "environment", "status", "reason")


def path_for(results_dir: Path, machine: str, commit: str, env_name: str) -> Path:
    """Where the record of one environment without results lives."""
    return (
        results_dir
        / machine
        / HARNESS_DIR
        / STUDY_DIR
        / f"{run_folder_name(commit, env_name)}.jsonl"
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

    def mapping(key: str) -> dict[str, Any]:
        value = record.get(key)
        return value if isinstance(value, dict) else {}

    parts = [f"py{record.get('python', '?')}"]
    parts += [f"{k} {v}" for k, v in sorted(mapping("requirements").items()) if v]
    env = {**mapping("env"), **mapping("env_nobuild")}
    parts += [f"{k}={v}" for k, v in sorted(env.items())]
    return " · ".join(parts)


def load(
    root: str | Path,
    *,
    machine: str | None = None,
    commit: str | None = None,
    warn: Warn | None = None,
) -> list[dict[str, Any]]:
    """Every record below ``root`` (optionally one machine, one commit prefix), sorted.

    A file that cannot be read, or whose first line is no failure record, is left out with one
    line to ``warn`` (the pin ``study.jsonl`` and ``timings.jsonl`` are not records: passed over).
    """
    warn = warn or default_warn
    rows = []
    for path in sorted(Path(root).glob(f"*/{HARNESS_DIR}/{STUDY_DIR}/*.jsonl")):
        if path.name in ("study.jsonl", "timings.jsonl"):
            continue
        try:
            lines = io.read_jsonl(path)
        except io.JSONLinesError as err:
            warn(f"{path}: {err.reason}; left out of the environments without results")
            continue
        rec = lines[0] if lines else {}
        if rec.get("status") not in STATUSES:
            warn(f"{path}: not a record of an environment without results; left out")
            continue
        if machine and rec.get("machine") != machine:
            continue
        if commit and not str(rec.get("commit", "")).startswith(commit):
            continue
        rows.append(_row(rec, path))
    return rows


def _row(rec: dict[str, Any], path: Path) -> dict[str, Any]:
    return {
        "machine": str(rec.get("machine", path.parts[-4])),
        "commit": str(rec.get("commit", ""))[:8],
        "environment": describe(rec),
        "env_name": str(rec.get("env_name", "")),
        "status": rec["status"],
        # The first line: a log line can hold a whole escaped message ("...\\n...").
        "reason": str(rec.get("reason", "")).split("\\n")[0].strip(),
    }


def to_markdown(rows: list[dict[str, Any]], *, level: int = 2) -> str:
    """A section listing the environments without results ('' when there are none)."""
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
    if not rows:
        return ""
    headers = ["environment", "machine", "commit", "status", "reason"]
    body = [[r["environment"], r["machine"], r["commit"], r["status"], r["reason"]] for r in rows]
    return f"<h{level}>Environments without results</h{level}>\n" + render.html_table(headers, body)
