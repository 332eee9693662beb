"""The scaling table (harness.analysis.scaling) as one display table per run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from harness.analysis.scaling import CheckFinding, Path, ScalingTable
from harness.render.formats import (
    MISSING,
    Table,
    fmt_bytes,
    fmt_float,
    fmt_seconds,
    is_missing,
    table_md,
)


def _size(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 1_000 else str(n)


def _exponent(x: float | None) -> str:
    return MISSING if x is None else f"{x:.2f}"


def scaling_tables(
    table: ScalingTable, run_label: Callable[[tuple[str, str, str]], str] | None = None
) -> list[Table]:
    """One :class:`~harness.render.formats.Table` per run: a row per path, time and peak memory
    at each size, then the fitted growth exponents. ``run_label`` names a run (machine, commit,
    environment) in the title; by default its commit and environment."""
    label = run_label or (lambda run: f"{run[1][:8]} · {run[2]}")
    out = []
    for run in sorted({p.run for p in table.paths}):
        paths = [p for p in table.paths if p.run == run]
        headers = ["path"]
        headers += [f"time {_size(n)}" for n in table.sizes]
        headers += [f"peak memory {_size(n)}" for n in table.sizes]
        headers += ["time exponent", "memory exponent"]
        rows = [_row(p, table.sizes) for p in paths]
        align = ["l"] + ["r"] * (len(headers) - 1)
        out.append(Table(headers, rows, align, title=f"Scaling: {label(run)}", css="scaling"))
    return out


def _row(path: Path, sizes: list[int]) -> list[str]:
    by_size = {p.n_obs: p for p in path.points}
    times = [fmt_seconds(by_size[n].seconds) if n in by_size else MISSING for n in sizes]
    peaks = [fmt_bytes(by_size[n].peak_bytes) if n in by_size else MISSING for n in sizes]
    return [
        path.label,
        *times,
        *peaks,
        _exponent(path.time_exponent),
        _exponent(path.memory_exponent),
    ]


def scaling_markdown(
    table: ScalingTable, run_label: Callable[[tuple[str, str, str]], str] | None = None
) -> str:
    """The scaling tables as Markdown, each under its title, with what the columns mean."""
    if not table.paths:
        return "No dask scaling results.\n"
    parts = []
    for t in scaling_tables(table, run_label):
        parts.append(f"#### {t.title}\n\n{table_md(t)}")
    parts.append(
        "Time: median of the timed samples (the PCA call and the compute of its outputs; the "
        "input graph is setup). Peak memory: the driver and every dask worker, each process's "
        "peak summed (in memory: the one process). Exponents: least-squares slope of log(value) "
        "against log(n_obs).\n"
    )
    return "\n".join(parts)


# --- the write-up's dask section (issue #13) ---------------------------------------------------


def schedulers_text(fp: dict[str, Any]) -> list[str]:
    """One line per scheduler the run's fingerprint names: workers x threads, each worker's BLAS
    and its thread count, or why the scheduler could not be had."""
    out = []
    for s in (fp.get("dask") or {}).get("schedulers") or []:
        kind, shape = s.get("scheduler", "?"), s.get("shape", "?")
        if s.get("unavailable"):
            out.append(f"{kind} {shape}: not run ({s['unavailable']})")
            continue
        blas = sorted({str(b) for b in (s.get("worker_blas") or {}).values()})
        threads = sorted({t for ts in (s.get("worker_blas_threads") or {}).values() for t in ts})
        where = "tasks in the benchmark process" if kind == "threaded" else "worker processes"
        out.append(
            f"{kind} {shape}: {s.get('workers')} x {s.get('threads_per_worker')} "
            f"({where}); BLAS {', '.join(blas) or 'unknown'}, "
            f"{'/'.join(str(t) for t in threads) or '?'} BLAS thread(s) each"
        )
    return out


def target_text(table: ScalingTable, limit_bytes: float) -> str | None:
    """The issue's target, as the run measured it: the largest dask-csr covariance_eigh call on
    a 2-worker LocalCluster, its time and summed peak memory against ``limit_bytes``."""
    paths = [
        p
        for p in table.paths
        if (p.layout, p.svd_solver, p.scheduler, p.workers)
        == ("dask-csr", "covariance_eigh", "local", "2x1")
    ]
    points = [pt for p in paths for pt in p.points if pt.seconds is not None]
    if not points:
        return None
    pt = max(points, key=lambda p: p.n_obs)
    memory = (
        f"{fmt_bytes(pt.peak_bytes)} of peak memory summed over the driver and both workers, "
        f"{pt.peak_bytes / limit_bytes:.2f}x the {fmt_bytes(limit_bytes)} target"
        if pt.peak_bytes is not None
        else "no peak memory recorded"
    )
    return (
        f"{pt.n_obs:,} cells ({pt.dataset}), dask-csr covariance_eigh on a LocalCluster of 2 "
        f"workers x 1 thread: {fmt_seconds(pt.seconds)}, {memory}."
    )


def _cell(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return str(row["status"])
    value = row["value"]
    if is_missing(value):
        return MISSING
    if float(value) == 0.0:
        return "bitwise"
    return f"{fmt_float(value)} {row['verdict'] or ''}".strip()


def _verdicts(f: CheckFinding) -> str:
    return ", ".join(f"{v} {n}" for v, n in sorted(f.verdicts.items()))


def stability_detail(stab: pd.DataFrame, checks: Sequence[str]) -> Table:
    """One row per (dataset, layout, solver, scheduler), one column per check: 'bitwise', or
    the worst deviation and its verdict, or why it did not run ('skipped', 'failed')."""
    keys = ["dataset", "layout", "svd_solver", "scheduler"]
    cells: dict[tuple, dict[str, str]] = {}
    for row in stab.to_dict("records"):
        cells.setdefault(tuple(row[k] for k in keys), {})[row["check"]] = _cell(row)
    rows = [
        [dataset, f"{layout} · {solver}", scheduler, *(got.get(c, MISSING) for c in checks)]
        for (dataset, layout, solver, scheduler), got in sorted(cells.items())
    ]
    headers = ["dataset", "path", "run on", *checks]  # not "scheduler": a check of that name
    return Table(headers, rows, ["l"] * len(headers), title="dask stability", css="dask")


def findings_table(findings: Sequence[CheckFinding], varies: dict[str, str]) -> Table:
    """Per check: what varies, configurations measured, identical bits, worst deviation, the
    verdicts given."""
    rows = [
        [
            f.check,
            varies.get(f.check, ""),
            f.scheduler,
            str(f.configurations),
            f"{f.bitwise} of {f.configurations}",
            fmt_float(f.worst),
            _verdicts(f),
            str(f.skipped),
        ]
        for f in findings
    ]
    headers = ["check", "what varies", "run on", "configurations", "bitwise equal"]
    headers += ["worst deviation", "verdicts", "skipped"]
    return Table(headers, rows, ["l", "l", "l", "r", "r", "r", "l", "r"], title="dask checks")


def answer(findings: Sequence[CheckFinding], check: str, what: str) -> str:
    """One line: does ``what`` (the check ``check``) change the bits, scheduler by scheduler."""
    mine = [f for f in findings if f.check == check and f.configurations]
    if not mine:
        return f"- {what}: not measured in this run.\n"
    parts = []
    for f in mine:
        worst = "" if f.bitwise == f.configurations else f", worst deviation {fmt_float(f.worst)}"
        parts.append(
            f"{f.scheduler}: identical bits in {f.bitwise} of {f.configurations} "
            f"configurations{worst} ({_verdicts(f)})"
        )
    return f"- {what}? {'; '.join(parts)}.\n"
