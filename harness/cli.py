"""``python -m harness``: tables, cross-environment and release comparison, reports, doctor.

Each subcommand's work lives in the module named for it; this file only parses arguments.
Bad input raises :class:`harness.errors.HarnessError`: one line on stderr and exit code 2,
with the traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.history import arguments as history_arguments
from harness.vocabulary import DOCTOR_TIMEOUT, VERDICT_CHECKS

FORMATS = ("md", "csv", "json", "html")


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), func)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and its arguments; each runs its module's ``cli_*`` function."""
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _views(sub)
    _outputs(sub)
    p = sub.add_parser("doctor", help="diagnose non-reproducible PCA on your own data or pipeline")
    p.set_defaults(func=_lazy("harness.doctor.api", "cli_doctor"))
    _doctor_arguments(p)
    history_arguments.add(sub, _lazy)  # history and gate over scanpy's own commits (#12)
    return parser


#: What ``add_subparsers`` returns (argparse gives its class no public name).
Subparsers = Any


def _views(sub: Subparsers) -> None:
    """table, crossenv and compare."""
    p = sub.add_parser("table", help="stability tables per environment from an asv results folder")
    p.add_argument("results", help="asv results folder")
    p.add_argument("--format", choices=FORMATS, default="md")
    p.add_argument("--commit", help="only this commit (hash prefix)")
    p.add_argument("--machine", help="only this machine")
    p.add_argument(
        "--all-commits",
        action="store_true",
        help="a table per commit (default: the newest commit of each environment)",
    )
    p.add_argument(
        "--verdict-checks",
        metavar="CHECK,...",
        help=f"checks the verdict is taken over (default: {','.join(VERDICT_CHECKS)})",
    )
    p.add_argument("--out", help="write here (atomically) instead of stdout")
    p.set_defaults(func=_lazy("harness.commands.table", "cli_table"))

    p = sub.add_parser(
        "crossenv", help="pairwise deviation between environments, from the artifacts"
    )
    p.add_argument("results")
    p.add_argument(
        "--baseline", help="environment (name, label or fingerprint key) to compare against"
    )
    p.add_argument("--format", choices=FORMATS, default="md")
    p.add_argument(
        "--commit", help="environments side by side at this commit (default: each one's newest)"
    )
    p.add_argument("--machine", help="only this machine")
    p.add_argument("--all-commits", action="store_true", help="every run, not the newest only")
    p.add_argument("--out")
    p.set_defaults(func=_lazy("harness.commands.crossenv", "cli_crossenv"))

    p = sub.add_parser(
        "compare", help="compare two environments, commits or releases (e.g. scanpy=1.10.4)"
    )
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--results", default="results")
    p.add_argument(
        "--factor", type=float, default=1.1, help="slowdown ratio that fails (default 1.1)"
    )
    p.add_argument("--format", choices=FORMATS, default="md")
    p.add_argument("--machine", help="only runs of this machine")
    p.add_argument(
        "--fail-on-sign",
        action="store_true",
        help="also fail on a sign-convention change (signs flipped, values otherwise equal)",
    )
    p.add_argument(
        "--all", action="store_true", help="list unchanged and skipped rows too (md, html)"
    )
    p.add_argument("--out", help="write here (atomically) instead of stdout")
    p.set_defaults(func=_lazy("harness.commands.compare", "cli_compare"))

    p = sub.add_parser(
        "envs", help="the environments with their ids, labels and what each changes (issue #14)"
    )
    p.add_argument("results", nargs="?", default="results", help="asv results folder")
    p.add_argument("select", nargs="?", help="only the environments this selector names")
    p.add_argument("--format", choices=("md", "csv", "json"), default="md")
    p.add_argument("--out", help="write here (atomically) instead of stdout")
    p.set_defaults(func=_lazy("harness.commands.envs", "cli_envs"))


def _outputs(sub: Subparsers) -> None:
    """report and writeup."""
    p = sub.add_parser("report", help="Markdown, CSV and a self-contained HTML report with figures")
    p.add_argument("results")
    p.add_argument("outdir")
    p.add_argument("--baseline", help="environment the deviation heatmap is measured against")
    p.add_argument(
        "--all-commits",
        action="store_true",
        help="tables per commit (default: the newest commit of each environment)",
    )
    p.set_defaults(func=_lazy("harness.render.report", "cli_report"))

    p = sub.add_parser(
        "writeup", help="the published study (results/README.md) from a results folder"
    )
    p.add_argument("results", help="asv results folder holding a study (make study)")
    p.add_argument("--machine", help="the study's machine (default: the only one with a study)")
    p.add_argument("--commit", help="the study's commit (default: the one it is pinned to)")
    p.add_argument("--format", choices=("md", "json"), default="md")
    p.add_argument("--out", help="write here (atomically) instead of stdout")
    p.set_defaults(func=_lazy("harness.render.writeup", "cli_writeup"))

    p = sub.add_parser(
        "calibrate", help="the verdicts' validation grid (planted spectra, known answers)"
    )
    p.add_argument(
        "--out", required=True, help="JSON Lines file (the study keeps results/calibration.jsonl)"
    )
    p.add_argument("--seeds", type=int, default=5, help="random matrices per spectrum (default 5)")
    p.set_defaults(func=_lazy("harness.commands.calibrate", "cli_calibrate"))


def _doctor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", help="an .h5ad file")
    p.add_argument(
        "--pipeline",
        metavar="SCRIPT.py",
        help="run your analysis script twice and find the first difference",
    )
    p.add_argument("--layer")
    p.add_argument(
        "--mask-var",
        help="var column of genes to use; 'none' for all genes (default: scanpy's, highly_variable)",
    )
    p.add_argument("--n-comps", type=int, default=50)
    p.add_argument("--svd-solver", default=None)
    p.add_argument(
        "--random-state",
        type=_seed,
        default=0,
        help="an integer, or 'none' for unseeded calls (default 0, as sc.pp.pca)",
    )
    p.add_argument("--no-zero-center", action="store_true")
    p.add_argument("--format", choices=("md", "json"), default="md")
    p.add_argument("--out")
    p.add_argument(
        "--timeout",
        type=float,
        default=DOCTOR_TIMEOUT,
        metavar="SECONDS",
        help="stop any child process (a PCA run, a run of your script) after this long "
        f"(default {DOCTOR_TIMEOUT:g})",
    )


def _seed(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', not {text!r}") from None


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    # Imported here, not at the top: it loads the results reader, which ``--help`` never needs.
    from harness.commands import check_writable

    check_writable(getattr(args, "out", None))
    if args.command == "report":
        check_writable(args.outdir, directory=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_outputs(args)
        return int(args.func(args) or 0)
    except HarnessError as err:
        if args.debug:
            raise
        print(f"harness {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
