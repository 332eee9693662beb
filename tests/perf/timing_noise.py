"""Timing-noise target of the runtime suite, measured from a results folder (a script, not a test).

For ``time_pca`` results of 20 ms or more at threads=1: the median IQR/median at most 2% and the
90th percentile at most 5% (harness.analysis.noise):

    .venv/bin/python tests/perf/timing_noise.py results [--machine M] [--commit C]
"""

from __future__ import annotations

import argparse

from harness.analysis import noise
from harness.results import load_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--machine")
    parser.add_argument("--commit")
    args = parser.parse_args()
    df = load_results(args.results)
    if args.machine:
        df = df[df.machine == args.machine]
    if args.commit:
        df = df[df.commit.str.startswith(args.commit)]
    print(noise.summarize(df).line())
    worst = noise.runtimes(df).nlargest(8, "rel_iqr")
    print(
        worst[["dataset", "layout", "dtype", "svd_solver", "value", "rel_iqr"]].to_string(
            index=False
        )
    )


if __name__ == "__main__":
    main()
