"""The scaling table (harness.analysis.scaling) as one display table per run."""

from __future__ import annotations

from collections.abc import Callable

from harness.analysis.scaling import Path, ScalingTable
from harness.render.formats import MISSING, Table, fmt_bytes, fmt_seconds, table_md


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
