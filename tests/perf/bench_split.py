"""Where ``make bench``'s time goes, from the asv results it wrote (a script, not a test).

    .venv/bin/python tests/perf/bench_split.py results --commit C [--total SECONDS]

asv records when each benchmark started and how long it ran, and how long each ``setup_cache``
took (dataset preparation, the fresh-process results): the script sums them per suite. With
``--total`` (the wall time of the whole ``make bench``), the rest is set-up (venv, install) and
the final table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from harness.results import load_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--commit", required=True)
    parser.add_argument("--total", type=float, help="wall seconds of the whole make bench")
    args = parser.parse_args()
    df = load_results(args.results)
    df = df[df["commit"].str.startswith(args.commit) & df["started_at"].notna()]
    end = df["started_at"] + pd.to_timedelta(df["duration"].fillna(0), unit="s")
    suite = df["benchmark"].str.split(".").str[0]
    spans = {}
    for name in sorted(set(suite)):
        s = suite == name
        spans[name] = (end[s].max() - df.loc[s, "started_at"].min()).total_seconds()
    by_bench = df.groupby("benchmark", observed=True)["duration"].first()
    caches = {}
    for path in Path(args.results).glob(f"*/{args.commit[:8]}-*.json"):
        caches.update(json.loads(path.read_text()).get("durations", {}))
    asv = (end.max() - df["started_at"].min()).total_seconds()
    for name, sec in spans.items():
        print(f"{name} suite: {sec:.0f} s (first start to last end)")
    for name, sec in sorted(caches.items()):
        print(f"  {name}: {sec:.0f} s")
    for name, sec in by_bench.sort_values(ascending=False).head(6).items():
        print(f"  {name}: {sec:.0f} s")
    print(f"asv in all: {asv:.0f} s")
    if args.total:
        print(
            f"set-up, dataset download and the final table: {args.total - asv:.0f} s of {args.total:.0f} s"
        )


if __name__ == "__main__":
    main()
