"""The ``history`` and ``gate`` subcommands' arguments (harness.cli registers them).

Standard library only, like harness.cli: ``--help`` loads neither asv nor numpy. Unset
configuration lists mean the suite's own (harness.bench.pca), resolved by
harness.commands.history.plan_of.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: The mildest bit change that fails a gate, by default: any change of the bits (the first of
#: harness.history.changes.BIT_KINDS; a test checks the two agree).
GATE_FAIL_ON = "variance ratio only"
#: Measured here (tests/perf/history_cost.py --noise): between probes of identical code, asv's
#: test called 4.4% of configurations changed at 1.2x, 1.6% at 1.5x and none at 2x.
GATE_FACTOR = 2.0
HISTORY_RUNTIME_FACTOR = GATE_FACTOR

Lazy = Callable[[str, str], Callable[[argparse.Namespace], int]]


def add(sub: Any, lazy: Lazy) -> None:
    p = sub.add_parser(
        "history", help="every commit of a scanpy range that changed PCA's output or speed"
    )
    p.add_argument("repo", help="a git clone of scanpy")
    p.add_argument("range", help="A..B: A, then the first-parent commits after A up to B")
    _plan(p, samples=3)
    p.add_argument(
        "--runtime-factor",
        type=float,
        default=HISTORY_RUNTIME_FACTOR,
        help="also bisect runtime changes of at least this ratio, by asv's test "
        f"(default {HISTORY_RUNTIME_FACTOR:g}; 0: bits only)",
    )
    p.add_argument("--retry-failed", action="store_true", help="build again commits that failed")
    p.set_defaults(func=lazy("harness.commands.history", "cli_history"))

    p = sub.add_parser("gate", help="does HEAD change PCA's bits or speed against BASE? (exit 1)")
    p.add_argument("base")
    p.add_argument("head")
    p.add_argument("--repo", help="a git clone of scanpy (default $SCANPY_REPO, else ../scanpy)")
    _plan(p, samples=5)
    p.add_argument(
        "--factor",
        type=float,
        default=GATE_FACTOR,
        help=f"a significant slowdown of this ratio fails (default {GATE_FACTOR:g})",
    )
    p.add_argument(
        "--fail-on",
        default=GATE_FAIL_ON,
        help="the mildest bit change that fails: 'variance ratio only' (default: any change of "
        "the bits), 'sign only', 'within rounding', 'undetermined' or 'beyond rounding'",
    )
    p.set_defaults(func=lazy("harness.commands.history", "cli_gate"))

    p = sub.add_parser(
        "history-writeup", help="results/history/README.md from the stored histories"
    )
    p.add_argument("results", nargs="?", default="results/history", help="the histories' folder")
    p.add_argument("--out", help="write here (atomically) instead of stdout")
    p.set_defaults(func=lazy("harness.history.writeup", "cli_writeup"))


def _plan(p: argparse.ArgumentParser, samples: int) -> None:
    p.add_argument("--datasets", default="pbmc68k_reduced", help="comma-separated dataset names")
    p.add_argument("--layouts", help="comma-separated (default: dense,csr)")
    p.add_argument("--dtypes", help="comma-separated (default: float32,float64)")
    p.add_argument("--solvers", help="comma-separated (default: every solver of the suite)")
    p.add_argument("--samples", type=int, default=samples, help="timed calls per configuration")
    p.add_argument("--python", help="the environment's Python (default: the config's, 3.11)")
    p.add_argument("--results", default="results/history", help="where histories are kept")
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds for one commit's PCA checks"
    )
