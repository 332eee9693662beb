"""Where the study's time goes, per environment, from its driver's wall times (a script).

    .venv/bin/python tests/perf/study_split.py results --machine M [--commit C]

``python -m harness.study`` appends each environment's wall time (creation, installation and
the asv run) to ``results/<machine>/harness/study/timings.jsonl``. This prints one Markdown row
per environment of asv.conf.json's matrix, in its order (described as ``python -m harness.study
--list`` does; the last completed run of the study's commit), and the median, range and total.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness import io
from harness.study import driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--commit", help="the study's commit (default: every commit, latest run)")
    parser.add_argument("--config", type=Path, default=Path("asv.conf.json"))
    args = parser.parse_args()
    last: dict[str, float] = {}
    for row in io.read_jsonl(driver.timings_path(args.results, args.machine)):
        if row.get("outcome") != "done":
            continue
        if args.commit and not str(row.get("commit", "")).startswith(args.commit):
            continue
        last[str(row["env_name"])] = float(row["seconds"])
    print("| environment | minutes |\n|---|---|")
    minutes = []
    for step in driver.steps(args.config):
        seconds = last.get(step.env_name)
        if seconds is not None:
            minutes.append(seconds / 60)
            print(f"| {step.describe()} | {seconds / 60:.1f} |")
    if not minutes:
        raise SystemExit("no environment of the matrix has a completed run in the timings")
    print(
        f"\n{len(minutes)} environments: median {statistics.median(minutes):.1f} min "
        f"({min(minutes):.1f} to {max(minutes):.1f}), {sum(minutes) / 60:.2f} h in all"
    )


if __name__ == "__main__":
    main()
