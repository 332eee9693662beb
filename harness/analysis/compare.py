"""Compare two environments, commits or releases: ``python -m harness compare A B``.

A and B are selectors (:func:`harness.results.environments.select`): an id (``E2``),
``scanpy=1.10.4``, ``sklearn=1.9.1,blas=MKL``, a commit hash prefix, an asv environment name, a
machine or an environment label. When the two sides name different environments and either
names several, the closest pair is compared (:func:`closest_pair`): the two environments that
differ only in the factors the selectors name when the folder has them, else the pair with the
fewest other differences, which :class:`Choice` names. Sides that share environments (commit
against commit) compare each environment with itself. When a side has several runs for a
benchmark, the newest is used.

- Runtime and memory (``time_*``, ``peakmem_*``, ``mem_*``, ``timeraw_*``): ratio B/A and
  asv's own decision (``asv.commands.compare._is_result_better``, i.e. the Mann-Whitney U test
  on samples or the 99% confidence intervals from ``asv_runner.statistics``), marked as
  ``asv compare`` marks them: ``+`` slower, ``-`` faster, ``~`` beyond the factor but not
  significant, ``!`` newly failing, ``*`` fixed, ``x`` benchmark version changed.
- Numerical change, from the artifacts (:mod:`harness.bench.digests`): did the bits move, the
  largest |difference|, the sign-aligned relative deviation and the pair's calibrated verdict
  (:func:`harness.analysis.crossenv.pair_verdict`, the stability tables' rule), which names the
  change: bitwise, sign convention, within rounding, explained, undetermined, beyond rounding.
- Stability checks (``track_*``): the value on each side (reported, not gated).
- :class:`Summary`: how many runtimes got faster or slower, how many configurations changed
  bits or only signs, peak memory changes, and how many rows changed, are unchanged or skipped.

The digests are read by :mod:`harness.commands.compare`; the output is rendered by
:mod:`harness.render.compare`, with each run named by its folder-wide id (E3) and label.

Exit status 1 when a slowdown beyond ``--factor`` (significant) or a newly failing benchmark is
found, or a configuration changed beyond rounding or no longer comparable (with
``--fail-on-sign``: a sign-convention change too); else 0. Bad input: 2.
"""

from __future__ import annotations

import math
from collections import Counter
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
from harness.results.runs import RunInfo, run_ids
from harness.vocabulary import (
    BEYOND,
    BITWISE,
    CONFIG_COLUMNS,
    SIGN_ONLY,
    UNCLASSIFIED,
    VERDICTS,
    env_number,
)

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
    runtime: pd.DataFrame
    numerical: pd.DataFrame
    checks: pd.DataFrame
    significance: str
    #: The folder-wide id of every run (:func:`harness.results.environments.ids`).
    ids: dict[Key, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: Which pair of environments was chosen, when a selector named several.
    choice: Choice | None = None
    summary: Summary | None = None


@dataclass(frozen=True)
class Choice:
    """The closest pair of environments two selectors name (:func:`closest_pair`)."""

    a: str  # the chosen environments' ids
    b: str
    #: The factors and packages the selectors name (what the comparison is about).
    named: tuple[str, ...]
    #: The factors in which the pair differs besides those (empty: it isolates the factor).
    also: tuple[str, ...]
    #: The factors in which the pair differs at all.
    differ: tuple[str, ...]
    #: How many environments each side's selector matched.
    candidates: tuple[int, int]


@dataclass(frozen=True)
class Summary:
    """What changed between A and B, counted: the lead of compare's output."""

    runtimes: int
    faster: int  # significantly, beyond the factor (asv's '-')
    slower: int  # significantly, beyond the factor (asv's '+')
    unsure: int  # beyond the factor but not significant (asv's '~')
    newly_failing: int
    fixed: int
    version_changed: int
    memory: int
    memory_larger: int
    memory_smaller: int
    configurations: int
    bits_moved: int
    sign_only: int
    not_comparable: int
    #: Pair verdicts (:data:`harness.vocabulary.VERDICTS` order) over the configurations.
    verdicts: dict[str, int]
    checks: int
    checks_changed: int
    #: Rows of the three sections: changed (listed), unchanged and skipped (counted).
    changed_rows: int
    unchanged_rows: int
    skipped_rows: int


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
    """The runs a side's selector names (on ``machine`` when given); HarnessError when none."""
    pool = [i for i in infos if machine is None or i.machine == machine]
    picked = environments.select(selector, pool)
    if not picked:
        envs = sorted(f"{i.ident}" if i.ident else i.label for i in pool)
        listing = ", ".join(sorted(set(envs), key=lambda e: (env_number(e) or 0, e)))
        raise HarnessError(
            f"{side} {selector!r}: matches no run; environments here: {listing or 'none'} "
            "(`harness envs` lists them)"
        )
    return picked


EnvKey = tuple[str, str]  # (machine, env_name): one environment, over its commits


def _by_environment(runs: Sequence[RunInfo]) -> dict[EnvKey, list[RunInfo]]:
    out: dict[EnvKey, list[RunInfo]] = {}
    for r in runs:
        out.setdefault((r.machine, r.env_name), []).append(r)
    return out


def _newest(runs: Sequence[RunInfo]) -> RunInfo:
    return max(runs, key=lambda r: (date_rank(r.date), r.commit))


def pair_factors(a: RunInfo, b: RunInfo) -> list[str]:
    """The factors (and the machine) in which two runs differ, each cause once."""
    diffs = environments.different(dict(a.attrs), dict(b.attrs))
    return (["machine"] if a.machine != b.machine else []) + diffs


def closest_pair(
    a_runs: Sequence[RunInfo], b_runs: Sequence[RunInfo], named: Sequence[str]
) -> tuple[EnvKey, EnvKey, list[str]]:
    """The pair of environments (one per side, not the same) that differs least besides the
    ``named`` factors, and those other factors.

    Ties go to the pair differing in fewer attributes at all, then to a pair with the folder's
    baseline (E1), then to the lower ids.
    """
    sides = [_by_environment(a_runs), _by_environment(b_runs)]
    best: tuple[Any, ...] | None = None
    for ka, ra in sides[0].items():
        for kb, rb in sides[1].items():
            if ka == kb:
                continue
            a, b = _newest(ra), _newest(rb)
            other = [f for f in pair_factors(a, b) if f not in named]
            attrs_a, attrs_b = dict(a.attrs), dict(b.attrs)
            raw = sum(attrs_a.get(k) != attrs_b.get(k) for k in {*attrs_a, *attrs_b})
            numbers = (env_number(a.ident or "") or 10**9, env_number(b.ident or "") or 10**9)
            rank = (len(other), raw, 1 not in numbers, min(numbers), max(numbers))
            if best is None or rank < best[0]:
                best = (rank, ka, kb, other)
    if best is None:
        raise HarnessError("A and B name the same environment only: nothing to compare")
    return best[1], best[2], best[3]


def sides(
    loaded: Loaded, a: str, b: str, machine: str | None = None
) -> tuple[list[RunInfo], list[RunInfo], Choice | None]:
    """The runs ``a`` and ``b`` select, reduced to the closest pair of environments when either
    names several (and the sides share none); HarnessError when either selects nothing or both
    the same runs."""
    infos = loaded.infos()
    a_runs, b_runs = pick(a, infos, machine, "A"), pick(b, infos, machine, "B")
    if {r.key for r in a_runs} == {r.key for r in b_runs}:
        raise HarnessError(f"A {a!r} and B {b!r} select the same run(s): nothing to compare")
    a_envs, b_envs = _by_environment(a_runs), _by_environment(b_runs)
    if set(a_envs) & set(b_envs):  # commit against commit: each environment with itself
        return a_runs, b_runs, None
    named = tuple(dict.fromkeys([*environments.named_factors(a), *environments.named_factors(b)]))
    ka, kb, other = closest_pair(a_runs, b_runs, named)
    a_pick, b_pick = a_envs[ka], b_envs[kb]
    choice = Choice(
        a=_newest(a_pick).ident or "",
        b=_newest(b_pick).ident or "",
        named=named,
        also=tuple(other),
        differ=tuple(pair_factors(_newest(a_pick), _newest(b_pick))),
        candidates=(len(a_envs), len(b_envs)),
    )
    return a_pick, b_pick, choice


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


#: The change text of the verdicts that are not named by themselves.
CHANGE_TEXT = {BITWISE: "none (bitwise)", SIGN_ONLY: "sign convention"}
NOT_COMPARABLE = "not comparable (shapes differ)"


def change(res: dict[str, Any]) -> tuple[str, bool]:
    """What changed between two digests, named by their calibrated pair verdict, and whether it
    is only the sign convention."""
    if not res.get("comparable", True):
        return NOT_COMPARABLE, False
    v = pair_verdict(res)  # None only when a comparable pair has no deviation: unclassified
    return CHANGE_TEXT.get(v, v or UNCLASSIFIED), v == SIGN_ONLY


def numerical_table(
    a_runs: Sequence[RunInfo],
    b_runs: Sequence[RunInfo],
    digests: Sequence[Digest],
    compare: Callable[[Digest, Digest], dict[str, Any]] = compare_digests,
) -> pd.DataFrame:
    """Per configuration: A's and B's newest digests compared (see module docstring)."""
    a_side, b_side = newest_digests(digests, a_runs), newest_digests(digests, b_runs)
    rows = []
    for config in sorted(set(a_side) & set(b_side), key=lambda c: tuple(str(x) for x in c)):
        res = compare(a_side[config], b_side[config])
        comparable = bool(res.get("comparable", True))
        what, sign_only = change(res)
        rows.append(
            {
                **dict(zip((*CONFIG_COLUMNS, "condition"), config, strict=True)),
                "comparable": comparable,
                "bits_moved": not res.get("bitwise"),
                "max_abs_diff": res.get("max_abs_diff"),
                "deviation": deviation(res),
                "sign_flips": res.get("sign_flips") or 0,
                "sign_convention": sign_only,
                "verdict": pair_verdict(res) if comparable else None,
                "change": what,
            }
        )
    return pd.DataFrame(rows, columns=NUMERICAL_COLUMNS)


def compare_runs(
    loaded: Loaded,
    a: str,
    b: str,
    *,
    digests: Sequence[Digest] = (),
    factor: float = 1.1,
    machine: str | None = None,
    fail_on_sign: bool = False,
) -> Comparison:
    """Compare the runs selected by ``a`` and ``b`` (see the module docstring); ``digests``
    hold at least those of the selected runs (:mod:`harness.commands.compare` reads them)."""
    if factor <= 0:
        raise HarnessError("--factor: must be > 0")
    a_runs, b_runs, choice = sides(loaded, a, b, machine)
    a_keys, b_keys = {r.key for r in a_runs}, {r.key for r in b_runs}
    better, significance = asv_decider()
    pairs = paired(loaded, a_keys, b_keys, {i.key: i.date for i in loaded.infos()})
    result = Comparison(
        a=a,
        b=b,
        a_runs=a_runs,
        b_runs=b_runs,
        factor=factor,
        runtime=runtime_table(pairs, factor, better),
        numerical=numerical_table(a_runs, b_runs, digests),
        checks=checks_table(pairs),
        significance=significance,
        ids=environments.ids(loaded),
        choice=choice,
    )
    if a_keys & b_keys:
        result.notes.append(f"{len(a_keys & b_keys)} run(s) are selected by both A and B")
    if result.numerical.empty:
        result.notes.append("no artifacts shared by A and B: numerical change not assessed")
    result.failures.extend(failures(result, fail_on_sign))
    result.summary = summarize(result)
    return result


# --- the summary ---------------------------------------------------------------------------------

#: asv compare's marks of a runtime or memory row that changed.
CHANGED_MARKS = frozenset("+-!*x")


def runtime_changed(row: dict[str, Any]) -> bool:
    """Whether a runtime or memory row changed (asv marks it, or '~': beyond the factor)."""
    return row["mark"].strip() in CHANGED_MARKS or str(row["ratio"]).startswith("~")


def runtime_skipped(row: dict[str, Any]) -> bool:
    """Whether neither side has a value (skipped or not run on both sides)."""
    return is_missing(row["a"]) and is_missing(row["b"]) and not runtime_changed(row)


def check_changed(row: dict[str, Any]) -> bool:
    """Whether a stability check's value differs between the sides (one missing counts)."""
    a, b = row["a"], row["b"]
    if is_missing(a) or is_missing(b):
        return is_missing(a) != is_missing(b)
    return a != b


def check_skipped(row: dict[str, Any]) -> bool:
    return is_missing(row["a"]) and is_missing(row["b"])


def numerical_changed(row: dict[str, Any]) -> bool:
    """Whether a configuration's result moved: other bits, or not comparable."""
    return bool(row["bits_moved"]) or not bool(row["comparable"])


def summarize(result: Comparison) -> Summary:
    """The counts that lead compare's output (see :class:`Summary`)."""
    rt = result.runtime.to_dict("records")
    time_rows = [r for r in rt if r["unit"] == "seconds"]
    mem_rows = [r for r in rt if r["unit"] == "bytes"]

    def count(rows: list[dict[str, Any]], mark: str) -> int:
        return sum(r["mark"].strip() == mark for r in rows)

    num = result.numerical.to_dict("records")
    chk = result.checks.to_dict("records")
    verdicts = Counter(r["verdict"] for r in num)
    changed = (
        sum(map(runtime_changed, rt))
        + sum(map(numerical_changed, num))
        + sum(map(check_changed, chk))
    )
    skipped = sum(map(runtime_skipped, rt)) + sum(map(check_skipped, chk))
    total = len(rt) + len(num) + len(chk)
    return Summary(
        runtimes=len(time_rows),
        faster=count(time_rows, "-"),
        slower=count(time_rows, "+"),
        unsure=sum(str(r["ratio"]).startswith("~") for r in time_rows),
        newly_failing=count(rt, "!"),
        fixed=count(rt, "*"),
        version_changed=count(rt, "x"),
        memory=len(mem_rows),
        memory_larger=count(mem_rows, "+"),
        memory_smaller=count(mem_rows, "-"),
        configurations=len(num),
        bits_moved=sum(bool(r["bits_moved"]) for r in num),
        sign_only=sum(bool(r["sign_convention"]) for r in num),
        not_comparable=sum(not bool(r["comparable"]) for r in num),
        verdicts={v: int(verdicts.get(v, 0)) for v in VERDICTS},
        checks=len(chk),
        checks_changed=sum(map(check_changed, chk)),
        changed_rows=changed,
        unchanged_rows=total - changed - skipped,
        skipped_rows=skipped,
    )


def failures(result: Comparison, fail_on_sign: bool) -> list[str]:
    """Why the exit status is 1: significant slowdowns, new failures, changes beyond rounding."""
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
        changed = num[(num["verdict"] == BEYOND) | ~num["comparable"].astype(bool)]
        if len(changed):
            out.append(f"{len(changed)} configuration(s) changed beyond rounding")
        signs = num[num["sign_convention"].astype(bool)]
        if fail_on_sign and len(signs):
            out.append(f"{len(signs)} configuration(s) changed sign convention")
    return out
