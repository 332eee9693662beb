"""Keep ``benchmarks.json`` describing every benchmark a results folder holds results of.

``asv run`` rewrites ``<results>/benchmarks.json`` with the benchmarks it discovered in that run
only. The dask suite (benchmarks/dask.py) exists only in the dask profiles, so a study run after
``make bench PROFILE=scale`` dropped its entries, and the readers then named its parameters
``param1``, ``param2``... (the write-up said "No dask scaling results" over committed results).
Around each asv run the harness saves the file and afterwards adds back what asv dropped.

    python -m harness.results.keep_benchmarks save RESULTS_DIR SNAPSHOT
    python -m harness.results.keep_benchmarks restore RESULTS_DIR SNAPSHOT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness import io

NAME = "benchmarks.json"


def read_entries(results_dir: Path) -> dict[str, Any]:
    """The raw entries of ``benchmarks.json`` ({} when absent or not an asv benchmarks file)."""
    try:
        data = json.loads((results_dir / NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def restore(results_dir: Path, before: dict[str, Any]) -> list[str]:
    """Add back the entries of ``before`` that the folder's ``benchmarks.json`` lacks now (what
    asv's rewrite dropped); entries asv wrote win. Returns the names added back."""
    now = read_entries(results_dir)
    dropped = sorted(k for k in before if k not in now)
    if not dropped:
        return []
    merged = {**now, **{k: before[k] for k in dropped}}
    io.write_text(results_dir / NAME, json.dumps(merged, indent=4, sort_keys=True) + "\n")
    return dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.results.keep_benchmarks")
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("snapshot", type=Path)
    args = parser.parse_args(argv)
    if args.action == "save":
        io.write_text(args.snapshot, json.dumps(read_entries(args.results_dir)))
        return 0
    try:
        before = json.loads(args.snapshot.read_text())
    except (OSError, ValueError):
        return 0  # nothing was saved: nothing to add back
    added = restore(args.results_dir, before if isinstance(before, dict) else {})
    if added:
        print(
            f"{args.results_dir / NAME}: kept {len(added)} benchmark(s) this run did not "
            f"discover (their results stay in the folder)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
