"""Compare two environments, commits or releases: ``python -m harness compare A B``.

A and B are selectors (:func:`harness.results.reader.matches`): ``scanpy=1.10.4``,
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

Exit status 1 when a slowdown beyond ``--factor`` (significant) or a newly failing benchmark is
found, or a numerical change beyond ``--tolerance`` (with ``--fail-on-sign``: a sign flip too);
else 0. Bad input: 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.render import formats as render

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from harness.results.reader import Loaded, RunInfo

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
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --- the asv decision ------------------------------------------------------------------------------


def asv_decider() -> tuple[Callable[..., bool], str]:
    """asv compare's own ``_is_result_better`` (Mann-Whitney U on samples, else 99% CI overlap)."""
    try:
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
        if not render.is_missing(v):
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
    if not (render.is_missing(a) or render.is_missing(b)) and a != 0:
        ratio = f"{b / a:.2f}"
    if not (render.is_missing(va) or render.is_missing(vb)) and va != vb:
        return "x", ratio
    if b_failed and not a_failed:
        return "!", ratio
    if a_failed and not b_failed:
        return "*", ratio
    if render.is_missing(a) or render.is_missing(b):
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
    from harness.results import reader as results

    pool = [i for i in infos if machine is None or i.machine == machine]
    picked = results.select(selector, pool)
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
    return ", ".join(f"{p}={row[p]!r}" for p in params if not render.is_missing(row.get(p)))


def _rows_for(
    frame: pd.DataFrame, ids: Any, runs: pd.DataFrame, keys: set[tuple[str, str, str]]
) -> pd.DataFrame:
    import numpy as np

    run_keys = list(zip(runs["machine"], runs["commit"], runs["env_name"], strict=True))
    wanted = np.asarray([k in keys for k in run_keys] + [False], dtype=bool)
    return frame[wanted[ids]]


def paired(
    loaded: Loaded,
    a_keys: set[tuple[str, str, str]],
    b_keys: set[tuple[str, str, str]],
    dates: dict[tuple[str, str, str], float],
) -> list[tuple[tuple[str, ...], dict[str, Any] | None, dict[str, Any] | None]]:
    """(pairing key, A row, B row) per benchmark and parameter combination, newest run per side.

    The key holds the machine when both sides ran on it, and the asv environment when both sides
    have it (commit against commit: each environment with itself).
    """
    from harness.results import reader as results

    frame = loaded.frame
    ids, runs = results.run_ids(frame)
    params = [p for p in frame.attrs.get("params", []) if p in frame.columns]
    same_machine = {k[0] for k in a_keys} & {k[0] for k in b_keys}
    same_env = {(k[0], k[2]) for k in a_keys} & {(k[0], k[2]) for k in b_keys}
    sides: list[dict[tuple[str, ...], tuple[float, dict[str, Any]]]] = []
    for keys in (a_keys, b_keys):
        best: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}
        sub = _rows_for(frame, ids, runs, keys)
        for row in sub.to_dict("records"):
            run = (row["machine"], row["commit"], row["env_name"])
            machine = row["machine"] if row["machine"] in same_machine else ""
            env = row["env_name"] if (row["machine"], row["env_name"]) in same_env else ""
            key = (machine, env, str(row["benchmark"]), _param_text(row, params))
            date = dates.get(run, math.nan)
            date = -math.inf if math.isnan(date) else date
            if key not in best or date > best[key][0]:
                best[key] = (date, row)
        sides.append(best)
    keys = sorted(set(sides[0]) | set(sides[1]))
    return [(k, sides[0].get(k, (0, None))[1], sides[1].get(k, (0, None))[1]) for k in keys]


# --- the three sections ----------------------------------------------------------------------------


def runtime_table(pairs: list[Any], factor: float, better: Callable[..., bool]) -> pd.DataFrame:
    import pandas as pd

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
    from asv_runner.statistics import get_err

    stats = stats_of(row or {})
    if render.is_missing(value) or not stats or "q_25" not in stats or "q_75" not in stats:
        return math.nan
    return float(get_err(value, stats))


def checks_table(pairs: list[Any]) -> pd.DataFrame:
    import pandas as pd

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


def numerical_table(
    root: Any,
    a_runs: Sequence[RunInfo],
    b_runs: Sequence[RunInfo],
    tolerance: float,
    warn: Callable[[str], None],
    digests: list[Any] | None = None,
    compare: Callable[..., dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Per configuration: A's and B's newest digests compared (see module docstring)."""
    import pandas as pd

    from harness.analysis.crossenv import config_of, deviation, pair_verdict
    from harness.bench import digests as artifacts

    cols = [
        "dataset",
        "layout",
        "dtype",
        "solver",
        "condition",
        "comparable",
        "bits_moved",
        "max_abs_diff",
        "deviation",
        "sign_flips",
        "sign_convention",
        "verdict",
        "change",
    ]
    if digests is None:
        from pathlib import Path

        from harness.analysis.crossenv import artifact_folders, load_digests

        files = artifact_folders(Path(root), warn)
        digests = load_digests(files, sorted({r.key for r in (*a_runs, *b_runs)}), warn)
    compare = compare or artifacts.compare_digests
    sides = []
    for runs in (a_runs, b_runs):
        order = {r.key: (-math.inf if math.isnan(r.date) else r.date) for r in runs}
        best: dict[tuple[Any, ...], tuple[float, Any]] = {}
        for d in digests:
            key = (d.key.machine, d.key.commit, d.key.env_name)
            if key in order:
                c = config_of(d)
                if c not in best or order[key] > best[c][0]:
                    best[c] = (order[key], d)
        sides.append(best)
    rows = []
    for config in sorted(set(sides[0]) & set(sides[1]), key=lambda c: tuple(str(x) for x in c)):
        res = compare(sides[0][config][1], sides[1][config][1])
        comparable = bool(res.get("comparable", True))
        dev = deviation(res)
        flips = res.get("sign_flips") or 0
        sign_only = comparable and not res.get("bitwise") and flips > 0 and not (dev > tolerance)
        if not comparable:
            change = "not comparable (shapes differ)"
        elif res.get("bitwise"):
            change = "none (bitwise)"
        elif sign_only:
            change = "sign convention"
        elif dev <= tolerance:
            change = "within tolerance"
        else:
            change = "values changed"
        rows.append(
            {
                "dataset": config[0],
                "layout": config[1],
                "dtype": config[2],
                "solver": config[3],
                "condition": config[4],
                "comparable": comparable,
                "bits_moved": not res.get("bitwise"),
                "max_abs_diff": res.get("max_abs_diff"),
                "deviation": dev,
                "sign_flips": flips,
                "sign_convention": sign_only,
                "verdict": pair_verdict(res, tolerance) if comparable else None,
                "change": change,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def compare_runs(
    loaded: Loaded,
    a: str,
    b: str,
    *,
    factor: float = 1.1,
    tolerance: float | None = None,
    machine: str | None = None,
    fail_on_sign: bool = False,
    warn: Callable[[str], None] | None = None,
    digests: list[Any] | None = None,
) -> Comparison:
    """Compare the runs selected by ``a`` and ``b`` (see the module docstring)."""
    from harness.analysis import tables

    if factor <= 0:
        raise HarnessError("--factor: must be > 0")
    tolerance = tables.DEFAULT_TOLERANCE if tolerance is None else tolerance
    if tolerance < 0:
        raise HarnessError("--tolerance: must be >= 0")
    from harness.results.reader import relative_line

    sink = warn or (lambda line: None)

    def warn(line: str) -> None:
        sink(relative_line(line, loaded.root))

    infos = loaded.infos()
    a_runs, b_runs = pick(a, infos, machine, "A"), pick(b, infos, machine, "B")
    a_keys, b_keys = {r.key for r in a_runs}, {r.key for r in b_runs}
    if a_keys == b_keys:
        raise HarnessError(f"A {a!r} and B {b!r} select the same run(s): nothing to compare")
    check_unambiguous(a, a_runs, b_runs, "A")
    check_unambiguous(b, b_runs, a_runs, "B")
    dates = {i.key: i.date for i in infos}
    better, significance = asv_decider()
    pairs = paired(loaded, a_keys, b_keys, dates)
    result = Comparison(
        a=a,
        b=b,
        a_runs=a_runs,
        b_runs=b_runs,
        factor=factor,
        tolerance=tolerance,
        runtime=runtime_table(pairs, factor, better),
        numerical=numerical_table(loaded.root, a_runs, b_runs, tolerance, warn, digests=digests),
        checks=checks_table(pairs),
        significance=significance,
    )
    if a_keys & b_keys:
        result.notes.append(f"{len(a_keys & b_keys)} run(s) are selected by both A and B")
    if result.numerical.empty:
        result.notes.append("no artifacts shared by A and B: numerical change not assessed")
    slower = result.runtime[result.runtime["mark"] == "+"]
    broken = result.runtime[result.runtime["mark"] == "!"]
    if len(slower):
        result.failures.append(
            f"{len(slower)} benchmark(s) slower or larger than {factor:g}x (significant)"
        )
    if len(broken):
        result.failures.append(f"{len(broken)} benchmark(s) newly failing")
    num = result.numerical
    if len(num):
        changed = num[(num["change"] == "values changed") | ~num["comparable"].astype(bool)]
        if len(changed):
            result.failures.append(
                f"{len(changed)} configuration(s) changed numerically beyond {tolerance:g}"
            )
        signs = num[num["sign_convention"].astype(bool)]
        if fail_on_sign and len(signs):
            result.failures.append(f"{len(signs)} configuration(s) changed sign convention")
    return result


# --- rendering -------------------------------------------------------------------------------------


def _runs_text(runs: Sequence[RunInfo]) -> list[str]:
    """One entry per (label, machine): its commit, or how many commits and the newest."""
    groups: dict[tuple[str, str], list[RunInfo]] = {}
    for r in runs:
        groups.setdefault((r.label, r.machine), []).append(r)
    out = []
    for (label, machine), rs in sorted(groups.items()):
        if len(rs) == 1:
            out.append(f"{label} (machine {machine}, commit {rs[0].commit[:8]})")
        else:
            newest = max(rs, key=lambda r: (-math.inf if math.isnan(r.date) else r.date, r.commit))
            out.append(
                f"{label} (machine {machine}, {len(rs)} commits; newest {newest.commit[:8]} used)"
            )
    return out


def _value(v: Any, err: Any, status: Any, unit: Any) -> str:
    if status == "failed":
        return "failed"
    if render.is_missing(v):
        return "skipped" if status == "skipped" else "n/a"
    text = render.fmt_value(v, unit)
    if not render.is_missing(err) and err > 0:
        text += "±" + render.fmt_value(err, unit).replace(" ", "")
    return text


def sections(result: Comparison) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, headers, rows, alignments) of each section."""
    out = []
    headers = ["", "A", "B", "ratio", "benchmark (parameters)"]
    rows = []
    for r in result.runtime.to_dict("records"):
        name = (
            r["benchmark"]
            + (f" ({r['params']})" if r["params"] else "")
            + (f" [{r['machine']}]" if r["machine"] else "")
        )
        rows.append(
            [
                r["mark"].strip(),
                _value(r["a"], r["a_err"], r["a_status"], r["unit"]),
                _value(r["b"], r["b_err"], r["b_status"], r["unit"]),
                r["ratio"],
                name,
            ]
        )
    out.append(
        (
            f"Runtime and memory (factor {result.factor:g}; {result.significance})",
            headers,
            rows,
            ["l", "r", "r", "r", "l"],
        )
    )
    headers = [
        "configuration",
        "bits moved",
        "max |Δ|",
        "aligned Δ (relative)",
        "sign flips",
        "change",
    ]
    rows = []
    for r in result.numerical.to_dict("records"):
        name = "/".join(str(r[k]) for k in ("dataset", "layout", "dtype", "solver"))
        rows.append(
            [
                name,
                "yes" if r["bits_moved"] else "no",
                render.fmt_float(r["max_abs_diff"]),
                render.fmt_float(r["deviation"]),
                str(int(r["sign_flips"] or 0)),
                r["change"],
            ]
        )
    out.append(
        (
            f"Numerical change (tolerance {result.tolerance:g}; from the artifacts)",
            headers,
            rows,
            ["l", "l", "r", "r", "r", "l"],
        )
    )
    headers = ["benchmark (parameters)", "A", "B"]
    rows = []
    for r in result.checks.to_dict("records"):
        name = r["benchmark"] + (f" ({r['params']})" if r["params"] else "")
        rows.append(
            [
                name,
                _value(r["a"], None, r["a_status"], r["unit"]),
                _value(r["b"], None, r["b_status"], r["unit"]),
            ]
        )
    out.append(("Stability checks (reported, not gated)", headers, rows, ["l", "r", "r"]))
    return out


def verdict_line(result: Comparison) -> str:
    if result.failures:
        return "FAIL: " + "; ".join(result.failures) + "."
    return (
        "OK: no significant slowdown beyond the factor, no numerical change beyond the tolerance."
    )


def to_markdown(result: Comparison) -> str:
    parts = [f"# Compare {result.a} → {result.b}\n\n"]
    for side, sel, runs in (("A", result.a, result.a_runs), ("B", result.b, result.b_runs)):
        parts.append(f"{side} `{sel}`: " + "; ".join(_runs_text(runs)) + "\n\n")
    for title, headers, rows, align in sections(result):
        parts.append(f"## {title}\n\n")
        parts.append(render.md_table(headers, rows, align) if rows else "Nothing to compare.\n")
        parts.append("\n")
    for note in result.notes:
        parts.append(f"Note: {note}.\n\n")
    parts.append(verdict_line(result) + "\n")
    return "".join(parts)


def to_html(result: Comparison) -> str:
    body = [f"<h1>Compare {render.esc(result.a)} → {render.esc(result.b)}</h1>\n"]
    for side, sel, runs in (("A", result.a, result.a_runs), ("B", result.b, result.b_runs)):
        body.append(
            f"<p>{side} <code>{render.esc(sel)}</code>: {render.esc('; '.join(_runs_text(runs)))}</p>\n"
        )
    for title, headers, rows, align in sections(result):
        body.append(f"<h2>{render.esc(title)}</h2>\n")
        body.append(
            render.html_table(headers, rows, numeric=[a == "r" for a in align])
            if rows
            else "<p>Nothing to compare.</p>\n"
        )
    for note in result.notes:
        body.append(f"<p>Note: {render.esc(note)}.</p>\n")
    body.append(f"<p><strong>{render.esc(verdict_line(result))}</strong></p>\n")
    return render.html_page(f"Compare {result.a} → {result.b}", "".join(body))


def to_json(result: Comparison) -> str:
    def runs(rs: Sequence[RunInfo]) -> list[dict[str, Any]]:
        return [
            {"label": r.label, "machine": r.machine, "commit": r.commit, "env_name": r.env_name}
            for r in sorted(rs, key=lambda r: r.key)
        ]

    return render.json_text(
        {
            "a": {"selector": result.a, "runs": runs(result.a_runs)},
            "b": {"selector": result.b, "runs": runs(result.b_runs)},
            "factor": result.factor,
            "tolerance": result.tolerance,
            "significance": result.significance,
            "runtime": render.records(result.runtime),
            "numerical": render.records(result.numerical),
            "checks": render.records(result.checks),
            "notes": result.notes,
            "failures": result.failures,
            "ok": not result.failures,
        }
    )


def to_csv(result: Comparison) -> str:
    import pandas as pd

    rt = result.runtime.assign(section="runtime")
    num = result.numerical.assign(section="numerical")
    chk = result.checks.assign(section="checks")
    frame = pd.concat([rt, num, chk], ignore_index=True, sort=False)
    cols = ["section", *[c for c in frame.columns if c != "section"]]
    return render.csv_text(frame[cols])


def cli_compare(args: argparse.Namespace) -> int:
    from harness.commands import load, output, stderr_warn

    warn = stderr_warn("compare")
    loaded = load(args.results, "compare")
    result = compare_runs(
        loaded,
        args.a,
        args.b,
        factor=args.factor,
        tolerance=args.tolerance,
        machine=getattr(args, "machine", None),
        fail_on_sign=getattr(args, "fail_on_sign", False),
        warn=warn,
    )
    render_fn = {"md": to_markdown, "json": to_json, "html": to_html, "csv": to_csv}[args.format]
    output(render_fn(result), getattr(args, "out", None))
    if args.format != "md" or getattr(args, "out", None):
        print(verdict_line(result), file=sys.stderr)
    return 1 if result.failures else 0
