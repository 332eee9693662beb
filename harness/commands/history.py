"""The I/O edge of ``harness history`` and ``harness gate``: arguments in, text out, exit codes.

history: 0 done; 2 unusable arguments (not a git clone, a range that does not resolve, unknown
names); 130 interrupted (everything measured is kept: the same command resumes).
gate: 0 pass; 1 a change that fails; 2 unusable arguments, or a commit that cannot be measured
(it fails to build, import or run: the message names the commit and the reason).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.bench.datasets import DATASETS
from harness.bench.pca import DTYPES, LAYOUTS, SOLVERS
from harness.errors import HarnessError
from harness.history import gate as gates
from harness.history.asvenv import default_repo
from harness.history.git import Repo
from harness.history.run import History, Interrupted, Plan, check_python
from harness.history.text import gate_text, history_text


def _names(text: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if text is None:
        return allowed
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise HarnessError(f"--{what} {text!r}: expected names from {', '.join(allowed)}")
    return names


def plan_of(args: argparse.Namespace, factor: float | None) -> Plan:
    """The configurations and sampling the arguments ask for (HarnessError on unknown names)."""
    if args.samples < 1:
        raise HarnessError(f"--samples {args.samples}: at least 1")
    return Plan(
        datasets=_names(args.datasets, tuple(DATASETS), "datasets"),
        layouts=_names(args.layouts, LAYOUTS, "layouts"),
        dtypes=_names(args.dtypes, DTYPES, "dtypes"),
        solvers=_names(args.solvers, SOLVERS, "solvers"),
        samples=args.samples,
        runtime_factor=factor if factor and factor > 1 else None,
    )


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _setup(args: argparse.Namespace, repo: str, factor: float | None) -> tuple[Repo, Plan]:
    """The clone and the plan, or HarnessError (exit 2) before any work."""
    plan = plan_of(args, factor)
    check_python(args.python)
    return Repo(repo), plan


def cli_history(args: argparse.Namespace) -> int:
    repo, plan = _setup(args, args.repo, args.runtime_factor)
    history = History(
        repo,
        args.range,
        plan,
        python=args.python,
        results=Path(args.results),
        retry_failed=args.retry_failed,
        probe_timeout=args.timeout,
        log=_log,
    )
    try:
        result = history.run()
    except Interrupted as err:
        print(f"harness history: {err}", file=sys.stderr)
        return 130
    sys.stdout.write(history_text(result))
    return 0


def cli_gate(args: argparse.Namespace) -> int:
    if args.fail_on not in gates.FAIL_ON:
        raise HarnessError(
            f"--fail-on {args.fail_on!r}: expected one of {', '.join(gates.FAIL_ON)}"
        )
    repo, plan = _setup(args, args.repo or default_repo(), None)
    verdict = gates.gate(
        repo,
        args.base,
        args.head,
        plan,
        python=args.python,
        results=Path(args.results),
        factor=args.factor,
        fail_on=args.fail_on,
        probe_timeout=args.timeout,
        log=_log,
    )
    sys.stdout.write(gate_text(verdict))
    return 1 if verdict.failed else 0
