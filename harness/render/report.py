"""The report: ``python -m harness report RESULTS OUTDIR``.

Writes, each atomically (:mod:`harness.io`):

- ``report.md``: summary, figures (linked), stability tables, cross-environment deviation;
- ``report.html``: the same as one self-contained page (inline CSS, figures as base64 PNG);
- ``stability.csv``: the stability tables, long format (another project's suite: its results);
- ``crossenv.csv``: every compared pair of environments, when there are artifacts;
- ``figures/deviation.png``: deviation by environment x configuration (against the baseline
  environment, ``--baseline`` or the first one, from the artifacts when two or more environments
  have them; else the worst verdict-check deviation of the stability tables);
- ``figures/runtime.png``: median runtime at all cores by solver and layout, per run and dataset.

The raw rows are not copied: :func:`harness.load_results` gives them.

Identical inputs give byte-identical outputs: no dates, no absolute paths, sorted rows, PNGs
written by Agg without the Software metadata, SVG hash salt fixed.
"""

from __future__ import annotations

import argparse
import base64
import io as _io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.render import formats as render

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from harness.analysis.crossenv import CrossEnv
    from harness.results.reader import Loaded

#: Figures show at most this many environments (the first ones in label order).
MAX_ENVS = 8
DPI = 100


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    png: bytes
    width: int
    height: int


# --- figures ---------------------------------------------------------------------------------------


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "pca-harness",
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
        }
    )
    return plt


def _png(fig: Any) -> tuple[bytes, int, int]:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(v) for v in fig.get_size_inches() * DPI)
    return buf.getvalue(), width, height


def deviation_matrix(
    table: pd.DataFrame, cross: CrossEnv | None
) -> tuple[pd.DataFrame, str, dict[str, str]]:
    """Environment x configuration deviations for the heatmap, what they are, and id -> label."""
    import pandas as pd

    from harness.analysis.tables import VERDICT_CHECKS

    if cross is not None and len(cross.pairs):
        base_id = cross.baseline or cross.envs[0]["id"]
        pairs = cross.pairs[(cross.pairs["a"] == base_id) | (cross.pairs["b"] == base_id)]
        other = pairs["b"].where(pairs["a"] == base_id, pairs["a"])
        names = {e["id"]: e["label"] for e in cross.envs}
        frame = pd.DataFrame(
            {
                "environment": other,
                "configuration": _config(pairs, "solver"),
                "deviation": pairs["deviation"].astype(float),
            }
        )
        what = (
            f"deviation of X_pca from the baseline {base_id} = {names.get(base_id, base_id)} "
            "(from the artifacts)"
        )
    else:
        if table.empty:
            return pd.DataFrame(), "", {}
        checks = list(table.attrs.get("verdict_checks", VERDICT_CHECKS))
        worst = table[[f"dev_{c}" for c in checks]].astype(float).max(axis=1, skipna=True)
        row_ids, names = run_ids(table)
        frame = pd.DataFrame(
            {
                "environment": row_ids,
                "configuration": _config(table, "solver"),
                "deviation": worst,
            }
        )
        what = f"worst deviation of X_pca over the checks {', '.join(checks)} (stability tables)"
    matrix = frame.pivot_table(
        index="environment",
        columns="configuration",
        values="deviation",
        aggfunc="max",
        dropna=False,
    )
    matrix = matrix.sort_index(axis=1)
    matrix = matrix.loc[sorted(matrix.index, key=lambda i: int(str(i)[1:]))]
    return matrix, what, names


def run_ids(table: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Per table row, the id (R1, R2, ...) of its run in sorted order, and id -> description."""
    runs = table[["environment", "machine", "commit", "env_name"]].astype(str).to_numpy().tolist()
    keys = sorted(set(map(tuple, runs)))
    ids = {k: f"R{i + 1}" for i, k in enumerate(keys)}
    names = {ids[k]: f"{k[0]} (machine {k[1]}, commit {k[2][:8]})" for k in keys}
    return [ids[tuple(r)] for r in runs], names


def _config(frame: pd.DataFrame, solver: str) -> pd.Series:
    return (
        frame["dataset"].astype(str)
        + "/"
        + frame["layout"].astype(str)
        + "/"
        + frame["dtype"].astype(str)
        + "/"
        + frame[solver].astype(str)
    )


def heatmap(matrix: pd.DataFrame, what: str, names: dict[str, str]) -> Figure | None:
    import numpy as np

    if matrix.empty:
        return None
    plt = _matplotlib()
    n_all = len(matrix)
    matrix = matrix.iloc[:MAX_ENVS]
    values = matrix.to_numpy(dtype=float)
    exact = values == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log10(values), np.nan)
    finite = logs[np.isfinite(logs)]
    lo = math.floor(finite.min()) if finite.size else -16
    hi = math.ceil(finite.max()) if finite.size else 0
    hi = max(hi, lo + 1)
    rows, cols = values.shape
    label_in = 0.075 * max((len(str(c)) for c in matrix.columns), default=10)  # rotated labels
    width, height = max(6.0, 0.3 * cols + 3.0), 0.35 * rows + 1.6 + label_in
    fig, ax = plt.subplots(figsize=(width, height))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#f2f2f2")
    im = ax.imshow(np.where(exact, np.nan, logs), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    from matplotlib.colors import ListedColormap

    equal = ListedColormap(["#cfe8c9"]).with_extremes(bad=(0, 0, 0, 0))
    ax.imshow(np.where(exact, 1.0, np.nan), cmap=equal, vmin=0, vmax=1, aspect="auto")
    for (i, j), is_exact in np.ndenumerate(exact):
        if is_exact:
            ax.text(j, i, "=", ha="center", va="center", fontsize=8, color="#2f6b2f")
    ax.set_xticks(range(cols), [str(c) for c in matrix.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(rows), [str(i) for i in matrix.index], fontsize=8)
    ax.set_xlabel("configuration (dataset/layout/dtype/solver)")
    fig.colorbar(im, ax=ax, label="log10 relative deviation")
    ax.set_title("Deviation by environment and configuration", fontsize=10)
    fig.tight_layout()
    png, width, height = _png(fig)
    plt.close(fig)
    more = f" Showing {MAX_ENVS} of {n_all} environments." if n_all > MAX_ENVS else ""
    caption = (
        f"Heatmap of the {what}; green '=': equal values (deviation 0), grey: not measured.{more}"
    )
    return Figure(
        "deviation", "Deviation by environment x configuration", caption, png, width, height
    )


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def runtime_figure(table: pd.DataFrame) -> Figure | None:
    import numpy as np

    if table.empty or table["time_all_cores_s"].notna().sum() == 0:
        return None
    plt = _matplotlib()
    row_ids, names = run_ids(table)
    table = table.assign(_run=row_ids)
    runs = sorted(set(row_ids), key=lambda i: int(i[1:]))
    n_all = len(runs)
    runs = runs[:MAX_ENVS]
    datasets = sorted(table["dataset"].astype(str).unique().tolist())
    solvers = sorted(table["solver"].astype(str).unique().tolist())
    series = sorted({(str(r.layout), str(r.dtype)) for r in table.itertuples()})
    fig, axes = plt.subplots(
        len(runs),
        len(datasets),
        figsize=(max(6.0, 4.2 * len(datasets)), 2.4 * len(runs) + 1.0),
        squeeze=False,
    )
    width = 0.8 / max(1, len(series))
    colors = plt.get_cmap("tab10")
    times = table["time_all_cores_s"].astype(float)
    positive = times[times > 0]
    lo = 10 ** math.floor(math.log10(positive.min())) if len(positive) else 1e-3
    hi = 10 ** math.ceil(math.log10(positive.max())) if len(positive) else 1.0
    for i, run in enumerate(runs):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            sub = table[(table["_run"] == run) & (table["dataset"].astype(str) == dataset)]
            for k, (layout, dtype) in enumerate(series):
                part = sub[
                    (sub["layout"].astype(str) == layout) & (sub["dtype"].astype(str) == dtype)
                ]
                by_solver = part.groupby(part["solver"].astype(str))["time_all_cores_s"].median()
                heights = np.asarray([float(by_solver.get(s, np.nan)) for s in solvers])
                xs = np.arange(len(solvers)) + (k - (len(series) - 1) / 2) * width
                ok = np.isfinite(heights) & (heights > 0)
                ax.bar(
                    xs[ok],
                    heights[ok],
                    width,
                    label=f"{layout} {dtype}",
                    color=colors(k % 10),
                )
            ax.set_yscale("log")
            ax.set_ylim(lo, hi * 1.5)
            ax.set_xticks(range(len(solvers)), solvers, rotation=30, fontsize=7, ha="right")
            ax.set_ylabel("seconds", fontsize=7)
            ax.set_title(f"{run} · {dataset}", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=7, ncol=max(1, len(series)))
    fig.suptitle("Median runtime at all cores by solver and layout", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    png, w, h = _png(fig)
    plt.close(fig)
    more = f" Showing {MAX_ENVS} of {n_all} runs." if n_all > MAX_ENVS else ""
    legend = "; ".join(f"{r} = {names[r]}" for r in runs)
    caption = (
        "pca.PCA.time_pca at all cores (asv's median), one panel per run and dataset; "
        f"missing bars: skipped or failed.{more} {legend}."
    )
    return Figure("runtime", "Runtime by solver and layout", caption, png, w, h)


# --- the report ------------------------------------------------------------------------------------


@dataclass
class Report:
    markdown: str
    html: str
    stability_csv: str
    crossenv_csv: str | None
    figures: list[Figure]


def build(
    loaded: Loaded,
    *,
    baseline: str | None = None,
    tolerance: float | None = None,
    all_commits: bool = False,
    cross: CrossEnv | None = None,
    warn: Any = None,
) -> Report:
    """Every output of the report, in memory (see the module docstring)."""
    from harness.analysis import crossenv, tables
    from harness.results import reader as results

    tol = tables.DEFAULT_TOLERANCE if tolerance is None else tolerance
    table = tables.stability_table(
        loaded.frame, loaded.records, tolerance=tol, all_commits=all_commits
    )
    generic = table.empty
    table_shown = tables.generic_table(loaded.frame, all_commits=all_commits) if generic else table
    problems = list(loaded.problems)
    if cross is None:

        def note(line: str) -> None:
            problems.append(line)
            if warn:
                warn(line)

        cross = crossenv.crossenv(
            loaded.root,
            baseline=baseline,
            tolerance=tol,
            warn=note,
            loaded=loaded,
            all_commits=all_commits,
        )
    problems = sorted({results.relative_line(p, loaded.root) for p in problems})
    figures = [
        f
        for f in (heatmap(*deviation_matrix(table, cross)), runtime_figure(table))
        if f is not None
    ]
    summary = tables.summary_line(loaded)
    n_envs = (
        int(table_shown[["machine", "env_name"]].drop_duplicates().shape[0])
        if len(table_shown)
        else 0
    )

    md = ["# PCA stability report\n\n", f"{summary} {n_envs} environment(s) tabulated"]
    md.append(
        f"; {len(cross.envs)} with artifacts.\n\n"
        if cross.envs
        else "; no artifacts for cross-environment comparison.\n\n"
    )
    if figures:
        md.append("## Figures\n\n")
        for f in figures:
            md.append(f"![{f.title}](figures/{f.name}.png)\n\n{f.caption}\n\n")
    md.append("## Stability tables\n\n" if not generic else "## Results\n\n")
    md.append(tables.to_markdown(table_shown, generic=generic, level=3))
    md.append("\n## Cross-environment deviation\n\n")
    md.append(crossenv.to_markdown(cross, level=3))
    if problems:
        md.append(f"\n## Problems ({len(problems)})\n\n")
        md.extend(f"- {p}\n" for p in problems)

    body = ["<h1>PCA stability report</h1>\n", f"<p>{render.esc(''.join(md[1:3]).strip())}</p>\n"]
    if figures:
        body.append("<h2>Figures</h2>\n")
        for f in figures:
            data = base64.b64encode(f.png).decode("ascii")
            body.append(
                f'<figure id="fig-{f.name}"><img src="data:image/png;base64,{data}" alt="{render.esc(f.title)}" '
                f'width="{f.width}" height="{f.height}"><figcaption>{render.esc(f.caption)}</figcaption></figure>\n'
            )
    body.append("<h2>Stability tables</h2>\n" if not generic else "<h2>Results</h2>\n")
    body.append(tables.to_html_body(table_shown, generic=generic, level=3))
    body.append("<h2>Cross-environment deviation</h2>\n")
    body.append(crossenv.to_html_body(cross, level=3))
    if problems:
        body.append(f'<h2>Problems ({len(problems)})</h2>\n<ul class="problems">\n')
        body.extend(f"<li>{render.esc(p)}</li>\n" for p in problems)
        body.append("</ul>\n")
    html = render.html_page("PCA stability report", "".join(body))
    stability_csv = render.csv_text(table_shown.drop(columns=["run"]))
    crossenv_csv = render.csv_text(cross.pairs) if len(cross.pairs) else None
    return Report("".join(md), html, stability_csv, crossenv_csv, figures)


def write(report: Report, outdir: str | Path) -> list[Path]:
    """Write every output atomically; returns the paths written (sorted)."""
    from harness import io

    out = Path(outdir)
    paths = []
    files: dict[str, bytes] = {
        "report.md": report.markdown.encode(),
        "report.html": report.html.encode(),
        "stability.csv": report.stability_csv.encode(),
    }
    if report.crossenv_csv is not None:
        files["crossenv.csv"] = report.crossenv_csv.encode()
    for f in report.figures:
        files[f"figures/{f.name}.png"] = f.png
    for name, data in sorted(files.items()):
        io.write_bytes(out / name, data)
        paths.append(out / name)
    return paths


def cli_report(args: argparse.Namespace) -> int:
    from harness.commands import load, stderr_warn
    from harness.errors import HarnessError

    if args.tolerance is not None and args.tolerance < 0:
        raise HarnessError("--tolerance: must be >= 0")
    out = Path(args.outdir)
    if out.exists() and not out.is_dir():
        raise HarnessError(f"{out}: exists and is not a directory")
    loaded = load(args.results, "report")
    report = build(
        loaded,
        baseline=getattr(args, "baseline", None),
        tolerance=args.tolerance,
        all_commits=getattr(args, "all_commits", False),
        warn=stderr_warn("report"),
    )
    paths = write(report, out)
    print(f"harness report: wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
