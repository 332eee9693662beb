"""Compare two environments, commits or releases: ``python -m harness compare A B``.

A and B are selectors (:func:`harness.results.runs.matches`): ``scanpy=1.10.4``,
``sklearn=1.9.1,blas=MKL``, a commit hash prefix, an asv environment name, a machine or an
environment label. Runs of the same machine are paired when both sides have that machine;
when a side has several runs for a benchmark, the newest is used.

- Runtime and memory (``time_*``, ``peakmem_*``, ``mem_*``, ``timeraw_*``): ratio B/A and
  asv's own decision (``asv.commands.compare._is_result_better``, i.e. the Mann-Whitney U test
  on samples or the 99% confidence intervals from ``asv_runner.statistics``), marked as
  ``asv compare`` marks them: ``+`` slower, ``-`` faster, ``~`` beyond the factor but not
  significant, ``!`` newly failing, ``*`` fixed, ``x`` benchmark version changed.
- Numerical change, from the artifacts (:mod:`harness.bench.digests`): did the bits move, the
  largest |difference| and the sign-aligned relative deviation, and whether it is only a
  sign-convention change (components flipped, values otherwise within tolerance).
- Stability checks (``track_*``): the value on each side (reported, not gated).

The digests are read by :mod:`harness.commands.compare`; the output is rendered by
:mod:`harness.render.compare`, with each run named by its folder-wide id (E3) and label.

Exit status 1 when a slowdown beyond ``--factor`` (significant) or a newly failing benchmark is
found, or a numerical change beyond ``--tolerance`` (with ``--fail-on-sign``: a sign flip too);
else 0. Bad input: 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from asv_runner.statistics import get_err

from harness.analysis.crossenv import config_of, deviation, pair_verdict
from harness.analysis.runs import date_rank, newest_by
from harness.bench.digests import Digest, compare_digests
from harness.errors import HarnessError
from harness.render.formats import is_missing
from harness.results import environments
from harness.results.environments import Key
from harness.results.reader import Loaded
from harness.results.runs import RunInfo, run_ids, select
from harness.vocabulary import CONFIG_COLUMNS, DEFAULT_TOLERANCE

RUNTIME_UNITS = ("seconds", "bytes")
STAT_COLUMNS = ("ci_99_a", "ci_99_b", "q_25", "q_75", "number", "repeat")


@dataclass
class Comparison:
    """Everything ``compare`` found; ``failures`` lists why the exit status is 1."""

    a: str
    b: str
    a_runs: list[RunInfo]
    b_runs: list[RunInfo]
    factor: float
    tolerance: float
    runtime: pd.DataFrame
    numerical: pd.DataFrame
    checks: pd.DataFrame
    significance: str
    #: The folder-wide id of every run (:func:`harness.results.environments.ids`).
    ids: dict[Key, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --- the asv decision ------------------------------------------------------------------------------


def asv_decider() -> tuple[Callable[..., bool], str]:
    """asv compare's own ``_is_result_better`` (Mann-Whitney U on samples, else 99% CI overlap)."""
    try:
        # asv is optional (not a dependency): imported here, with a fallback below.
        from asv.commands.compare import _is_result_better
    except ImportError:  # asv not installed: the factor alone decides, and the output says so

        def _is_result_better(a, b, a_ss, b_ss, factor, use_stats=True):
            return a < b / factor

        return _is_result_better, "factor only (asv is not installed: no significance test)"
    return _is_result_better, "asv compare's test (Mann-Whitney U on samples, else 99% CI overlap)"


def stats_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """The stats dict asv keeps for one result, None when it kept none."""
    stats = {}
    for k in STAT_COLUMNS:
        v = row.get(k)
        if not is_missing(v):
            stats[k] = int(v) if k in ("number", "repeat") else float(v)
    # asv's test reads both interval ends; a partial record counts as none (factor only).
    return stats if "ci_99_a" in stats and "ci_99_b" in stats else None


def mark(
    a: Any,
    b: Any,
    a_row: dict[str, Any],
    b_row: dict[str, Any],
    factor: float,
    better: Callable[..., bool],
) -> tuple[str, str]:
    """asv compare's mark and ratio text for one benchmark (a: before, b: after)."""
    a_failed, b_failed = a_row.get("status") == "failed", b_row.get("status") == "failed"
    va, vb = a_row.get("version"), b_row.get("version")
    ratio = "n/a"
    if not (is_missing(a) or is_missing(b)) and a != 0:
        ratio = f"{b / a:.2f}"
    if not (is_missing(va) or is_missing(vb)) and va != vb:
        return "x", ratio
    if b_failed and not a_failed:
        return "!", ratio
    if a_failed and not b_failed:
        return "*", ratio
    if is_missing(a) or is_missing(b):
        return " ", ratio
    a_ss = (stats_of(a_row), a_row.get("samples"))
    b_ss = (stats_of(b_row), b_row.get("samples"))
    if better(b, a, b_ss, a_ss, factor):
        return "-", ratio
    if better(a, b, a_ss, b_ss, factor):
        return "+", ratio
    if better(a, b, None, None, factor) or better(b, a, None, None, factor):
        return " ", "~" + ratio
    return " ", ratio


# --- selecting and pairing -------------------------------------------------------------------------


def pick(selector: str, infos: Sequence[RunInfo], machine: str | None, side: str) -> list[RunInfo]:
    pool = [i for i in infos if machine is None or i.machine == machine]
    picked = select(selector, pool)
    if not picked:
        envs = sorted({i.label for i in pool})
        raise HarnessError(
            f"{side} {selector!r}: matches no run; environments here: {'; '.join(envs) or 'none'}"
        )
    return picked


def check_unambiguous(
    selector: str, side: Sequence[RunInfo], other: Sequence[RunInfo], name: str
) -> None:
    """A side may span commits and machines, but only one environment per machine (or the
    environments the other side also has, compared each with itself)."""
    shared = {(r.machine, r.env_name) for r in other}
    per_machine: dict[str, set[str]] = {}
    for r in side:
        if (r.machine, r.env_name) not in shared:
            per_machine.setdefault(r.machine, set()).add(r.label)
    for machine, labels in sorted(per_machine.items()):
        if len(labels) > 1:
            raise HarnessError(
                f"{name} {selector!r}: matches {len(labels)} environments on machine {machine} "
                f"({'; '.join(sorted(labels))}); add e.g. sklearn=... or blas=... to pick one"
            )


def _param_text(row: dict[str, Any], params: Sequence[str]) -> str:
    return ", ".join(f"{p}={row[p]!r}" for p in params if not is_missing(row.get(p)))


def _rows_for(
    frame: pd.DataFrame, ids: Any, runs: pd.DataFrame, keys: set[tuple[str, str, str]]
) -> pd.DataFrame:
    run_keys = list(zip(runs["machine"], runs["commit"], runs["env_name"], strict=True))
    wanted = np.asarray([k in keys for k in run_keys] + [False], dtype=bool)
    return frame[wanted[ids]]


def paired(
    loaded: Loaded, a_keys: set[Key], b_keys: set[Key], dates: dict[Key, float]
) -> list[tuple[tuple[str, ...], dict[str, Any] | None, dict[str, Any] | None]]:
    """(pairing key, A row, B row) per benchmark and parameter combination, newest run per side.

    The key holds the machine when both sides ran on it, and the asv environment when both sides
    have it (commit against commit: each environment with itself).
    """
    frame = loaded.frame
    ids, runs = run_ids(frame)
    params = [p for p in frame.attrs.get("params", []) if p in frame.columns]
    same_machine = {k[0] for k in a_keys} & {k[0] for k in b_keys}
    same_env = {(k[0], k[2]) for k in a_keys} & {(k[0], k[2]) for k in b_keys}

    def group(row: dict[str, Any]) -> tuple[str, ...]:
        machine = row["machine"] if row["machine"] in same_machine else ""
        env = row["env_name"] if (row["machine"], row["env_name"]) in same_env else ""
        return (machine, env, str(row["benchmark"]), _param_text(row, params))

    def order(row: dict[str, Any]) -> float:
        return date_rank(dates.get((row["machine"], row["commit"], row["env_name"])))

    sides = [
        newest_by(_rows_for(frame, ids, runs, keys).to_dict("records"), group, order)
        for keys in (a_keys, b_keys)
    ]
    keys = sorted(set(sides[0]) | set(sides[1]))
    return [(k, sides[0].get(k), sides[1].get(k)) for k in keys]


# --- the three sections ----------------------------------------------------------------------------


def runtime_table(pairs: list[Any], factor: float, better: Callable[..., bool]) -> pd.DataFrame:
    """Runtime and memory benchmarks: both values, their errors, asv's mark and the ratio."""
    rows = []
    for (machine, _env, bench, ptext), a, b in pairs:
        unit = (a or b or {}).get("unit")
        if unit not in RUNTIME_UNITS:
            continue
        va = a.get("value") if a else math.nan
        vb = b.get("value") if b else math.nan
        m, ratio = mark(va, vb, a or {}, b or {}, factor, better)
        rows.append(
            {
                "mark": m,
                "machine": machine,
                "benchmark": bench,
                "params": ptext,
                "unit": unit,
                "a": va,
                "a_err": _err(va, a),
                "a_status": (a or {}).get("status"),
                "b": vb,
                "b_err": _err(vb, b),
                "b_status": (b or {}).get("status"),
                "ratio": ratio,
            }
        )
    cols = [
        "mark",
        "machine",
        "benchmark",
        "params",
        "unit",
        "a",
        "a_err",
        "a_status",
        "b",
        "b_err",
        "b_status",
        "ratio",
    ]
    return pd.DataFrame(rows, columns=cols)


def _err(value: Any, row: dict[str, Any] | None) -> float:
    stats = stats_of(row or {})
    if is_missing(value) or not stats or "q_25" not in stats or "q_75" not in stats:
        return math.nan
    return float(get_err(value, stats))


def checks_table(pairs: list[Any]) -> pd.DataFrame:
    """The ``track_*`` values on each side (reported, not gated)."""
    rows = []
    for (machine, _env, bench, ptext), a, b in pairs:
        if not bench.rsplit(".", 1)[-1].startswith("track_"):
            continue
        rows.append(
            {
                "machine": machine,
                "benchmark": bench,
                "params": ptext,
                "unit": (a or b or {}).get("unit"),
                "a": (a or {}).get("value", math.nan),
                "a_status": (a or {}).get("status"),
                "b": (b or {}).get("value", math.nan),
                "b_status": (b or {}).get("status"),
            }
        )
    return pd.DataFrame(
        rows, columns=["machine", "benchmark", "params", "unit", "a", "a_status", "b", "b_status"]
    )


NUMERICAL_COLUMNS = [*CONFIG_COLUMNS, "condition", "comparable", "bits_moved", "max_abs_diff",
                     "deviation", "sign_flips", "sign_convention", "verdict", "change"]  # fmt: skip


def newest_digests(
    digests: Sequence[Digest], runs: Sequence[RunInfo]
) -> dict[tuple[Any, ...], Digest]:
    """Per configuration, the digest of the newest of ``runs`` that has one."""
    dates = {r.key: date_rank(r.date) for r in runs}
    mine = [d for d in digests if (d.key.machine, d.key.commit, d.key.env_name) in dates]
    return newest_by(
        mine, config_of, lambda d: dates[(d.key.machine, d.key.commit, d.key.env_name)]
    )


def change(res: dict[str, Any], tolerance: float) -> tuple[str, bool]:
    """What changed between two digests, and whether it is only the sign convention."""
    comparable = bool(res.get("comparable", True))
    dev = deviation(res)
    flips = res.get("sign_flips") or 0
    sign_only = comparable and not res.get("bitwise") and flips > 0 and not (dev > tolerance)
    if not comparable:
        return "not comparable (shapes differ)", sign_only
    if res.get("bitwise"):
        return "none (bitwise)", sign_only
    if sign_only:
        return "sign convention", sign_only
    return ("within tolerance" if dev <= tolerance else "values changed"), sign_only


def numerical_table(
    a_runs: Sequence[RunInfo],
    b_runs: Sequence[RunInfo],
    tolerance: float,
    digests: Sequence[Digest],
    compare: Callable[[Digest, Digest], dict[str, Any]] = compare_digests,
) -> pd.DataFrame:
    """Per configuration: A's and B's newest digests compared (see module docstring)."""
    a_side, b_side = newest_digests(digests, a_runs), newest_digests(digests, b_runs)
    rows = []
    for config in sorted(set(a_side) & set(b_side), key=lambda c: tuple(str(x) for x in c)):
        res = compare(a_side[config], b_side[config])
        comparable = bool(res.get("comparable", True))
        what, sign_only = change(res, tolerance)
        rows.append(
            {
                **dict(zip((*CONFIG_COLUMNS, "condition"), config, strict=True)),
                "comparable": comparable,
                "bits_moved": not res.get("bitwise"),
                "max_abs_diff": res.get("max_abs_diff"),
                "deviation": deviation(res),
                "sign_flips": res.get("sign_flips") or 0,
                "sign_convention": sign_only,
                "verdict": pair_verdict(res, tolerance) if comparable else None,
                "change": what,
            }
        )
    return pd.DataFrame(rows, columns=NUMERICAL_COLUMNS)


def sides(
    loaded: Loaded, a: str, b: str, machine: str | None = None
) -> tuple[list[RunInfo], list[RunInfo]]:
    """The runs ``a`` and ``b`` select; HarnessError when either selects none, both the same
    runs, or a side several environments of one machine."""
    infos = loaded.infos()
    a_runs, b_runs = pick(a, infos, machine, "A"), pick(b, infos, machine, "B")
    if {r.key for r in a_runs} == {r.key for r in b_runs}:
        raise HarnessError(f"A {a!r} and B {b!r} select the same run(s): nothing to compare")
    check_unambiguous(a, a_runs, b_runs, "A")
    check_unambiguous(b, b_runs, a_runs, "B")
    return a_runs, b_runs


def compare_runs(
    loaded: Loaded,
    a: str,
    b: str,
    *,
    digests: Sequence[Digest] = (),
    factor: float = 1.1,
    tolerance: float | None = None,
    machine: str | None = None,
    fail_on_sign: bool = False,
) -> Comparison:
    """Compare the runs selected by ``a`` and ``b`` (see the module docstring); ``digests``
    hold at least those of the selected runs (:mod:`harness.commands.compare` reads them)."""
    if factor <= 0:
        raise HarnessError("--factor: must be > 0")
    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    if tolerance < 0:
        raise HarnessError("--tolerance: must be >= 0")
    a_runs, b_runs = sides(loaded, a, b, machine)
    a_keys, b_keys = {r.key for r in a_runs}, {r.key for r in b_runs}
    better, significance = asv_decider()
    pairs = paired(loaded, a_keys, b_keys, {i.key: i.date for i in loaded.infos()})
    result = Comparison(
        a=a,
        b=b,
        a_runs=a_runs,
        b_runs=b_runs,
        factor=factor,
        tolerance=tolerance,
        runtime=runtime_table(pairs, factor, better),
        numerical=numerical_table(a_runs, b_runs, tolerance, digests),
        checks=checks_table(pairs),
        significance=significance,
        ids=environments.ids(loaded),
    )
    if a_keys & b_keys:
        result.notes.append(f"{len(a_keys & b_keys)} run(s) are selected by both A and B")
    if result.numerical.empty:
        result.notes.append("no artifacts shared by A and B: numerical change not assessed")
    result.failures.extend(failures(result, fail_on_sign))
    return result


def failures(result: Comparison, fail_on_sign: bool) -> list[str]:
    """Why the exit status is 1: significant slowdowns, new failures, numerical changes."""
    out = []
    slower = result.runtime[result.runtime["mark"] == "+"]
    broken = result.runtime[result.runtime["mark"] == "!"]
    if len(slower):
        out.append(
            f"{len(slower)} benchmark(s) slower or larger than {result.factor:g}x (significant)"
        )
    if len(broken):
        out.append(f"{len(broken)} benchmark(s) newly failing")
    num = result.numerical
    if len(num):
        changed = num[(num["change"] == "values changed") | ~num["comparable"].astype(bool)]
        if len(changed):
            out.append(
                f"{len(changed)} configuration(s) changed numerically beyond {result.tolerance:g}"
            )
        signs = num[num["sign_convention"].astype(bool)]
        if fail_on_sign and len(signs):
            out.append(f"{len(signs)} configuration(s) changed sign convention")
    return out
