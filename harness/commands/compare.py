"""``python -m harness compare A B``: the reading edge of :mod:`harness.analysis.compare`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from harness.analysis.compare import Comparison, compare_runs, sides
from harness.commands import load, output, stderr_warn
from harness.commands.crossenv import digests_of
from harness.render import compare as render_compare
from harness.results.problems import relative_line
from harness.results.reader import Loaded


def compare_of(
    loaded: Loaded,
    a: str,
    b: str,
    *,
    machine: str | None = None,
    warn: Callable[[str], None] | None = None,
    **options: object,
) -> Comparison:
    """:func:`compare_runs` with the digests of the selected runs read from the folder;
    unreadable digests go to ``warn``."""
    sink = warn or (lambda line: None)
    a_runs, b_runs, _ = sides(loaded, a, b, machine)
    keys = sorted({r.key for r in (*a_runs, *b_runs)})
    digests = digests_of(loaded, keys, lambda line: sink(relative_line(line, loaded.root)))
    return compare_runs(loaded, a, b, digests=digests, machine=machine, **options)  # type: ignore[arg-type]


def cli_compare(args: argparse.Namespace) -> int:
    loaded = load(args.results, "compare")
    result = compare_of(
        loaded,
        args.a,
        args.b,
        factor=args.factor,
        machine=getattr(args, "machine", None),
        fail_on_sign=getattr(args, "fail_on_sign", False),
        warn=stderr_warn("compare"),
    )
    text = render_compare.FORMATS[args.format](result, show_all=getattr(args, "all", False))
    output(text, getattr(args, "out", None))
    if args.format != "md" or getattr(args, "out", None):
        print(render_compare.verdict_line(result), file=sys.stderr)
    return 1 if result.failures else 0
