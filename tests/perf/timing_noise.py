"""Timing-noise target of the runtime suite, measured from a results folder (a script, not a test).

For ``time_pca`` results of 20 ms or more at threads=1, the interquartile range should be at
most 5% of the median for 90% of them:

    .venv/bin/python tests/perf/timing_noise.py results [--machine M] [--commit C]
"""

from __future__ import annotations

import argparse

from harness.results.reader import load_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--machine")
    parser.add_argument("--commit")
    args = parser.parse_args()
    df = load_results(args.results)
    df = df[
        (df.benchmark == "pca.PCA.time_pca")
        & (df.status == "ok")
        & (df.threads == 1)
        & (df.value >= 0.020)
    ]
    if args.machine:
        df = df[df.machine == args.machine]
    if args.commit:
        df = df[df.commit.str.startswith(args.commit)]
    rel_iqr = (df.q_75 - df.q_25) / df.value
    ok = (rel_iqr <= 0.05).mean()
    print(
        f"{len(df)} time_pca results >= 20 ms at threads=1; IQR <= 5% of the median for {ok:.0%} of them"
    )
    print(
        f"relative IQR: median {rel_iqr.median():.2%}, 90th percentile {rel_iqr.quantile(0.9):.2%}, max {rel_iqr.max():.2%}"
    )
    worst = df.assign(rel_iqr=rel_iqr).nlargest(5, "rel_iqr")[
        ["dataset", "layout", "dtype", "svd_solver", "value", "rel_iqr"]
    ]
    print(worst.to_string(index=False))


if __name__ == "__main__":
    main()
