"""The report: ``python -m harness report RESULTS OUTDIR``.

Writes, as one set (into a temporary folder beside OUTDIR, then renamed onto it, so OUTDIR holds
either the previous report or the new one, whole; files that are not a report's are never
replaced: the report refuses such a folder):

- ``report.md``: summary, the headline (:mod:`harness.render.headline`), the environments (id,
  label, change against the baseline), figures (linked), stability tables, cross-environment
  deviation;
- ``report.html``: the same as one self-contained page (inline CSS and one inline script that
  sorts a table by the column clicked; figures as base64 PNG);
- ``stability.csv``: the stability tables, long format (another project's suite: its results);
- ``crossenv.csv``: every compared pair of environments, when there are artifacts;
- ``figures/deviation.png``: deviation by environment x configuration, every environment a row
  (against the baseline, ``--baseline`` or the folder's (E1), from the artifacts when two or more
  environments have them; else the worst verdict-check deviation of the stability tables);
- ``figures/runtime-1-thread.png`` (and ``runtime-all-cores.png`` where runs timed all cores):
  median runtime by solver, one panel per dataset, one colour per layout and dtype; bars the
  baseline, a dot per other environment;
- ``manifest.txt``: the files above, so the next report into OUTDIR knows which files are its own.

Environments are named by the folder's ids and unique labels
(:func:`harness.results.environments.catalogue`), as in the tables and the write-up. Figure
labels are plain text: a parameter value is never mathtext. Each figure's ``<figure>`` element
carries where its axes are in the image (``data-axes``) and what it draws (``data-rows``,
``data-series``), so a browser test can check that every axes holds data.

The raw rows are not copied: :func:`harness.load_results` gives them.

Identical inputs give byte-identical outputs: no dates, no absolute paths, sorted rows, PNGs
written by Agg without the Software metadata, SVG hash salt fixed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io as _io
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.analysis import headline, tables
from harness.commands import load, stderr_warn
from harness.commands.crossenv import crossenv_of
from harness.commands.table import labelled_table
from harness.errors import HarnessError
from harness.render import crossenv as render_crossenv
from harness.render import formats as render
from harness.render import headline as render_headline
from harness.render import tables as render_tables
from harness.render.formats import Table
from harness.results import environments
from harness.results.problems import relative_line
from harness.vocabulary import RUN_KEY, VERDICT_CHECKS, env_number

if TYPE_CHECKING:  # pragma: no cover
    from harness.analysis.crossenv import CrossEnv
    from harness.results.reader import Loaded

DPI = 100
#: Lists the files of a report; a folder's other files are not the report's to replace.
MANIFEST = "manifest.txt"
#: What a report wrote before it kept a manifest (those folders are still recognised).
UNLISTED = frozenset(
    {"report.md", "report.html", "stability.csv", "crossenv.csv", "figures/deviation.png",
     "figures/runtime.png", "figures/runtime-1-thread.png", "figures/runtime-all-cores.png"}
)  # fmt: skip
#: Heatmaps of at most this many cells mark equal values with '=' as well as with their colour.
MAX_MARKED = 400
#: One colour per series (layout and dtype), colour-blind safe (Okabe-Ito).
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
#: Runtime columns of the stability table, and the figure each gets.
RUNTIMES = (("time_1_thread_s", "1-thread", "at 1 thread"),
            ("time_all_cores_s", "all-cores", "at all cores"))  # fmt: skip


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    png: bytes
    width: int
    height: int
    #: What a browser test reads: ``axes`` (data axes boxes in image pixels, x0, y0, x1, y1
    #: from the top left), ``rows`` (environment ids drawn), ``series`` (legend entries).
    meta: dict[str, Any] = field(default_factory=dict)


# --- figures ---------------------------------------------------------------------------------------


def _matplotlib():
    import matplotlib  # only the figures need matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "pca-harness",
            "text.usetex": False,
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
        }
    )
    return plt


def plain(text: Any) -> str:
    """``text`` as a label matplotlib draws verbatim: an escaped '$' never starts mathtext."""
    return str(text).replace("$", r"\$")


def _png(fig: Any, axes: list[Any]) -> tuple[bytes, int, int, list[list[int]]]:
    """The PNG, its size, and each of ``axes``' box in image pixels (from the top left)."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(v) for v in fig.get_size_inches() * DPI)
    boxes = []
    for ax in axes:
        b = ax.get_window_extent()
        boxes.append([round(b.x0), round(height - b.y1), round(b.x1), round(height - b.y0)])
    return buf.getvalue(), width, height, boxes


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


def row_ids(table: pd.DataFrame) -> list[str]:
    """Per table row, the folder-wide id of its run (the labelled table carries it)."""
    return [str(i) for i in table["id"]]


def deviation_matrix(
    table: pd.DataFrame, cross: CrossEnv | None, envs: pd.DataFrame
) -> tuple[pd.DataFrame, str]:
    """Environment (id) x configuration deviations for the heatmap, and what they are.

    From the artifacts: every environment of ``envs`` but the baseline is a row (a row of
    missing values where it has no artifacts); else from the stability tables, every one.
    """
    if cross is not None and len(cross.pairs):
        base_id = cross.baseline or cross.envs[0]["id"]
        pairs = cross.pairs[(cross.pairs["a"] == base_id) | (cross.pairs["b"] == base_id)]
        other = pairs["b"].where(pairs["a"] == base_id, pairs["a"])
        frame = pd.DataFrame(
            {
                "environment": other,
                "configuration": _config(pairs, "solver"),
                "deviation": pairs["deviation"].astype(float),
            }
        )
        label = dict(zip(envs["id"], envs["label"], strict=True))
        label.update({e["id"]: e["label"] for e in cross.envs})
        what = f"deviation of X_pca from the baseline {base_id} = {label.get(base_id, base_id)} (from the artifacts)"
        rows = [i for i in envs["id"] if i != base_id]
    else:
        if table.empty:
            return pd.DataFrame(), ""
        checks = list(table.attrs.get("verdict_checks", VERDICT_CHECKS))
        worst = table[[f"dev_{c}" for c in checks]].astype(float).max(axis=1, skipna=True)
        frame = pd.DataFrame(
            {"environment": row_ids(table), "configuration": _config(table, "solver"),
             "deviation": worst}
        )  # fmt: skip
        what = f"worst deviation of X_pca over the checks {', '.join(checks)} (stability tables)"
        rows = list(envs["id"])
    matrix = frame.pivot_table(
        index="environment", columns="configuration", values="deviation", aggfunc="max",
        dropna=False,
    )  # fmt: skip
    rows = sorted({*rows, *matrix.index}, key=lambda i: env_number(i) or 0)
    matrix = matrix.reindex(index=rows).sort_index(axis=1)
    return matrix, what


def _row_label(ident: str, change: dict[str, str], measured: bool) -> str:
    text = change.get(ident, "")
    label = f"{ident} · {text}" if text and text != "-" else ident
    return plain(label if measured else f"{label} (not measured)")


def heatmap(matrix: pd.DataFrame, what: str, change: dict[str, str]) -> Figure | None:
    """The deviation heatmap of :func:`deviation_matrix`: every environment a row, labelled
    with its id and what it changes (None when there is nothing to draw)."""
    if matrix.empty or matrix.shape[1] == 0:
        return None
    plt = _matplotlib()
    values = matrix.to_numpy(dtype=float)
    exact = values == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log10(values), np.nan)
    finite = logs[np.isfinite(logs)]
    lo = math.floor(finite.min()) if finite.size else -16
    hi = math.ceil(finite.max()) if finite.size else 0
    hi = max(hi, lo + 1)
    rows, cols = values.shape
    measured = np.isfinite(values).any(axis=1)
    labels = [
        _row_label(str(i), change, bool(m)) for i, m in zip(matrix.index, measured, strict=True)
    ]
    label_in = 0.075 * max((len(str(c)) for c in matrix.columns), default=10)  # rotated labels
    ylabel_in = 0.065 * max((len(t) for t in labels), default=4)
    width = max(7.0, 0.28 * cols + 2.6 + ylabel_in)
    row_in = 0.26 if rows <= 40 else 0.17  # 30+ environments: 8-point labels still fit a row
    height = max(2.6, row_in * rows + 1.4 + label_in)
    fig, ax = plt.subplots(figsize=(width, height))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#f2f2f2")
    im = ax.imshow(np.where(exact, np.nan, logs), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    from matplotlib.colors import ListedColormap  # after _matplotlib() chose the backend

    equal = ListedColormap(["#cfe8c9"]).with_extremes(bad=(0, 0, 0, 0))
    ax.imshow(np.where(exact, 1.0, np.nan), cmap=equal, vmin=0, vmax=1, aspect="auto")
    if exact.size <= MAX_MARKED:  # beyond, the marks cost seconds and the colour says it
        for (i, j), is_exact in np.ndenumerate(exact):
            if is_exact:
                ax.text(j, i, "=", ha="center", va="center", fontsize=7, color="#2f6b2f")
    ax.set_xticks(range(cols), [plain(c) for c in matrix.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(rows), labels, fontsize=8 if rows <= 40 else 7)
    ax.set_xlabel("configuration (dataset/layout/dtype/solver)")
    fig.colorbar(im, ax=ax, label="log10 relative deviation", fraction=0.04, pad=0.02)
    ax.set_title("Deviation by environment and configuration", fontsize=10)
    fig.tight_layout()
    png, width, height, boxes = _png(fig, [ax])
    plt.close(fig)
    caption = (
        f"Heatmap of the {what}; green (marked '=' in small heatmaps): equal values "
        "(deviation 0), grey: not measured. "
        f"Rows: {rows} environments, each with its id and what it changes."
    )
    meta = {"axes": boxes, "rows": [str(i) for i in matrix.index]}
    return Figure(
        "deviation", "Deviation by environment x configuration", caption, png, width, height, meta
    )


def _reference_run(table: pd.DataFrame, envs: pd.DataFrame) -> str:
    """The environment drawn as bars: the folder's baseline where the table has it."""
    shown = set(table["id"])
    base = envs[envs["baseline"] & envs["id"].isin(shown)]
    return str(base.iloc[0]["id"]) if len(base) else sorted(shown, key=env_number)[0]


def runtime_figure(
    table: pd.DataFrame, envs: pd.DataFrame, column: str, slug: str, when: str
) -> Figure | None:
    """Median runtime (``column``) by solver, one panel per dataset that has any; one colour per
    layout and dtype; bars the baseline environment, one dot per other environment."""
    times = pd.to_numeric(table[column], errors="coerce")
    timed = table.assign(_t=times)[times.notna() & (times > 0)]  # (assign to an empty frame
    # would adopt the index of ``times``)
    if timed.empty:
        return None
    plt = _matplotlib()
    from matplotlib.lines import Line2D  # after _matplotlib() chose the backend
    from matplotlib.patches import Patch

    ref = _reference_run(timed, envs)
    datasets = sorted(timed["dataset"].astype(str).unique())
    series = sorted({(str(r.layout), str(r.dtype)) for r in timed.itertuples()})
    colours = {s: SERIES_COLOURS[k % len(SERIES_COLOURS)] for k, s in enumerate(series)}
    n_other = timed.loc[timed["id"] != ref, "id"].nunique()
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(max(6.5, 5.2 * len(datasets)), 4.2), squeeze=False
    )
    lo = 10 ** math.floor(math.log10(timed["_t"].min()))
    hi = 10 ** math.ceil(math.log10(timed["_t"].max()))
    width = 0.8 / max(1, len(series))
    drawn = []
    for ax, dataset in zip(axes[0], datasets, strict=True):
        sub = timed[timed["dataset"].astype(str) == dataset]
        solvers = sorted(sub["solver"].astype(str).unique())
        for k, (layout, dtype) in enumerate(series):
            part = sub[(sub["layout"].astype(str) == layout) & (sub["dtype"].astype(str) == dtype)]
            for s_i, solver in enumerate(solvers):
                cell = part[part["solver"].astype(str) == solver]
                if cell.empty:
                    continue
                x = s_i + (k - (len(series) - 1) / 2) * width
                mine = cell[cell["id"] == ref]["_t"]
                if len(mine):
                    ax.bar(x, float(mine.median()), width, color=colours[(layout, dtype)])
                others = cell[cell["id"] != ref]["_t"].to_numpy(dtype=float)
                if len(others):
                    ax.plot(np.full(len(others), x), others, "o", ms=2.5, color="#222222",
                            alpha=0.6, zorder=3)  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.5, hi * 1.5)
        ax.set_xlim(-0.6, len(solvers) - 0.4)
        ax.set_xticks(range(len(solvers)), [plain(s) for s in solvers], rotation=30, fontsize=8,
                      ha="right")  # fmt: skip
        ax.set_ylabel("seconds (median)", fontsize=8)
        ax.set_title(plain(dataset), fontsize=9)
        drawn.append(ax)
    handles = [Patch(color=colours[s], label=plain(f"{s[0]} {s[1]}")) for s in series]
    if n_other:
        handles.append(Line2D([], [], marker="o", ls="", ms=4, color="#222222",
                              label=f"other environments ({n_other}, one dot each)"))  # fmt: skip
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), fontsize=8,
               bbox_to_anchor=(0.5, 0.945), frameon=False)  # fmt: skip
    fig.suptitle(plain(f"Median runtime {when} by solver; bars: {ref}"), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    png, w, h, boxes = _png(fig, drawn)
    plt.close(fig)
    label = dict(zip(envs["id"], envs["label"], strict=True)).get(ref, ref)
    dots = f" Dots: each of the other {n_other} environments." if n_other else ""
    caption = (
        f"pca.PCA.time_pca {when} (asv's median), one panel per dataset, one colour per layout "
        f"and dtype. Bars: {ref} = {label}.{dots} A missing bar: skipped or failed there."
    )
    meta = {
        "axes": boxes,
        "rows": sorted(set(timed["id"]), key=lambda i: env_number(i) or 0),
        "series": [h.get_label() for h in handles[: len(series)]],
        "colours": [colours[s] for s in series],
    }
    return Figure(f"runtime-{slug}", f"Runtime {when} by solver", caption, png, w, h, meta)


# --- the report ------------------------------------------------------------------------------------


@dataclass
class Report:
    markdown: str
    html: str
    stability_csv: str
    crossenv_csv: str | None
    figures: list[Figure]


#: A section of the report: its title, as Markdown, as an HTML fragment.
Section = tuple[str, str, str]


def shown_envs(loaded: Loaded, table: pd.DataFrame) -> pd.DataFrame:
    """The catalogue rows of the runs the table shows, in id order."""
    envs = environments.catalogue(loaded)
    shown = set(zip(*(table[k] for k in RUN_KEY), strict=True))
    keys = zip(*(envs[k] for k in RUN_KEY), strict=True)
    return envs[[k in shown for k in keys]].reset_index(drop=True)


def environments_table(envs: pd.DataFrame) -> Table:
    """Every environment of the report once: id, label, change against the baseline."""
    rows = [
        [str(r.id), str(r.label), str(r.change), str(r.machine), str(r.commit)[:8]]
        for r in envs.itertuples()
    ]
    headers = ["id", "environment", "against the baseline", "machine", "commit"]
    return Table(headers, rows, ["l"] * len(headers), css="environments")


def _crossenv(
    loaded: Loaded, baseline: str | None, envs: pd.DataFrame, note: Any, **options: Any
) -> CrossEnv:
    """crossenv against ``baseline``, else the folder's (E1) when it has artifacts."""
    if baseline is None and envs["baseline"].any():
        try:
            base = str(envs[envs["baseline"]].iloc[0]["id"])
            return crossenv_of(loaded, baseline=base, warn=note, **options)
        except HarnessError:  # the baseline left no artifacts: every pair, as crossenv does
            pass
    return crossenv_of(loaded, baseline=baseline, warn=note, **options)


def build(
    loaded: Loaded,
    *,
    baseline: str | None = None,
    all_commits: bool = False,
    cross: CrossEnv | None = None,
    warn: Any = None,
) -> Report:
    """Every output of the report, in memory (see the module docstring)."""
    raw = tables.stability_table(loaded.frame, loaded.records, all_commits=all_commits)
    generic = raw.empty
    if generic:
        raw = tables.generic_table(loaded.frame, all_commits=all_commits)
    shown = labelled_table(loaded, raw)
    table = pd.DataFrame(columns=tables.table_columns()) if generic else shown
    envs = shown_envs(loaded, shown) if len(shown) else environments.catalogue(loaded).iloc[:0]
    problems = list(loaded.problems)

    def note(line: str) -> None:
        problems.append(line)
        if warn:
            warn(line)

    if cross is None:
        cross = _crossenv(loaded, baseline, envs, note, all_commits=all_commits)
    problems = sorted({relative_line(p, loaded.root) for p in problems})
    change = dict(zip(envs["id"], envs["change"], strict=True))
    figures = [heatmap(*deviation_matrix(table, cross, envs), change)] if len(envs) else []
    for column, slug, when in RUNTIMES:
        if not table.empty:
            figures.append(runtime_figure(table, envs, column, slug, when))
    figures = [f for f in figures if f is not None]
    head = None if generic else headline.headline(table)
    summary = f"{render_tables.summary_line(loaded)} {len(envs)} environment(s) tabulated" + (
        f"; {len(cross.envs)} with artifacts."
        if cross.envs
        else "; no artifacts for cross-environment comparison."
    )
    env_table = environments_table(envs)
    sections = [
        (
            "Stability tables" if not generic else "Results",
            render_tables.to_markdown(shown, generic=generic, level=3),
            render_tables.to_html_body(shown, generic=generic, level=3),
        ),
        (
            "Cross-environment deviation",
            render_crossenv.to_markdown(cross, level=3),
            render_crossenv.to_html_body(cross, level=3),
        ),
    ]
    stability_csv = render.csv_text(shown.drop(columns=["run"]))
    crossenv_csv = render.csv_text(cross.pairs) if len(cross.pairs) else None
    content = Content(summary, head, env_table, figures, sections, problems)
    return Report(_markdown(content), _html(content), stability_csv, crossenv_csv, figures)


@dataclass
class Content:
    """What report.md and report.html both show, in this order."""

    summary: str
    head: headline.Headline | None
    environments: Table
    figures: list[Figure]
    sections: list[Section]
    problems: list[str]


def _markdown(c: Content) -> str:
    """report.md: summary, headline, environments, figures (linked), sections, problems."""
    md = ["# PCA stability report\n\n", f"{c.summary}\n\n", render_headline.to_markdown(c.head)]
    if c.environments.rows:
        md.append(f"## Environments\n\n{render.table_md(c.environments)}\n")
    if c.figures:
        md.append("## Figures\n\n")
        md.extend(f"![{f.title}](figures/{f.name}.png)\n\n{f.caption}\n\n" for f in c.figures)
    for i, (title, text, _) in enumerate(c.sections):
        md.append(("\n" if i else "") + f"## {title}\n\n{text}")
    if c.problems:
        md.append(f"\n## Problems ({len(c.problems)})\n\n")
        md.extend(f"- {p}\n" for p in c.problems)
    return "".join(md)


def _figure_html(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    attrs = "".join(
        f' data-{k}="{render.esc(json.dumps(v, separators=(",", ":")))}"'
        for k, v in sorted(f.meta.items())
    )
    return (
        f'<figure id="fig-{f.name}"{attrs}><img src="data:image/png;base64,{data}" '
        f'alt="{render.esc(f.title)}" width="{f.width}" height="{f.height}">'
        f"<figcaption>{render.esc(f.caption)}</figcaption></figure>\n"
    )


#: Sorts a table by the column whose header is clicked (again: the other way). Numbers with
#: units (ms, s, MB...) sort by value, 'bitwise' before every deviation, text as text.
SORT_SCRIPT = """
(function () {
  var UNITS = {ns: 1e-9, "\\u03bcs": 1e-6, ms: 1e-3, s: 1, min: 60,
               B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12};
  function key(text) {
    var t = text.trim();
    if (t === "bitwise") return -1;
    var id = t.match(/^E(\\d+)$/);
    if (id) return parseInt(id[1], 10);
    var m = t.match(/^(-?\\d[\\d,]*(?:\\.\\d+)?(?:e[-+]?\\d+)?)\\s*([a-zA-Z\\u03bc]+)?/);
    if (!m) return null;
    var v = parseFloat(m[1].replace(/,/g, ""));
    return v * (m[2] && UNITS[m[2]] ? UNITS[m[2]] : 1);
  }
  function compare(a, b) {
    var ka = key(a), kb = key(b);
    if (ka !== null && kb !== null) return ka - kb;
    if (ka !== null) return -1;
    if (kb !== null) return 1;
    return a.localeCompare(b);
  }
  document.querySelectorAll("table").forEach(function (table) {
    var body = table.tBodies[0];
    if (!body) return;
    Array.prototype.forEach.call(table.querySelectorAll("thead th"), function (th, col) {
      th.classList.add("sortable");
      th.title = "sort by this column";
      th.addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (x, y) {
          var c = compare(x.cells[col].textContent, y.cells[col].textContent);
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""
EXTRA_CSS = (
    "th.sortable { cursor: pointer; } th[aria-sort=ascending]::after { content: ' \\u25b2'; } "
    "th[aria-sort=descending]::after { content: ' \\u25bc'; } "
    "div.headline { background: #f6f8fa; border-left: 4px solid #0072B2; padding: 0.2em 1em; }"
)


def _html(c: Content) -> str:
    """report.html: the same content as one self-contained page (figures inline)."""
    body = ["<h1>PCA stability report</h1>\n", f"<p>{render.esc(c.summary)}</p>\n"]
    body.append(render_headline.to_html(c.head))
    if c.environments.rows:
        table = render.table_html(c.environments)
        body.append(f'<h2 id="environments">Environments</h2>\n{table}')
    if c.figures:
        body.append("<h2>Figures</h2>\n")
        body.extend(_figure_html(f) for f in c.figures)
    for title, _, fragment in c.sections:
        body.append(f"<h2>{render.esc(title)}</h2>\n{fragment}")
    if c.problems:
        body.append(f'<h2>Problems ({len(c.problems)})</h2>\n<ul class="problems">\n')
        body.extend(f"<li>{render.esc(p)}</li>\n" for p in c.problems)
        body.append("</ul>\n")
    body.append(f"<style>{EXTRA_CSS}</style>\n<script>{SORT_SCRIPT}</script>\n")
    return render.html_page("PCA stability report", "".join(body))


# --- writing: the whole set, or nothing ----------------------------------------------------------


def files(report: Report) -> dict[str, bytes]:
    """Every file of the report by its path inside OUTDIR, the manifest included."""
    out: dict[str, bytes] = {
        "report.md": report.markdown.encode(),
        "report.html": report.html.encode(),
        "stability.csv": report.stability_csv.encode(),
    }
    if report.crossenv_csv is not None:
        out["crossenv.csv"] = report.crossenv_csv.encode()
    for f in report.figures:
        out[f"figures/{f.name}.png"] = f.png
    out[MANIFEST] = "".join(f"{name}\n" for name in sorted(out)).encode()
    return dict(sorted(out.items()))


def _owned(outdir: Path) -> set[str]:
    """The files a previous report wrote into ``outdir`` (its manifest, or the fixed names)."""
    manifest = outdir / MANIFEST
    try:
        listed = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return set(UNLISTED)
    return {*listed, MANIFEST}


def check_outdir(outdir: str | Path) -> None:
    """HarnessError (exit 2) unless ``outdir`` is new, empty or holds a previous report only:
    the report replaces the folder whole and must not take other files with it."""
    out = Path(outdir)
    if not out.is_dir():
        return
    if not os.access(out.resolve().parent, os.W_OK | os.X_OK):
        raise HarnessError(f"{out}: cannot be replaced, its parent folder is not writable")
    owned = _owned(out)
    try:
        entries = [p for p in out.rglob("*") if p.is_symlink() or not p.is_dir()]
    except OSError as err:
        raise HarnessError(f"{out}: cannot be listed ({err.strerror or err})") from None
    other = sorted(n for n in (p.relative_to(out).as_posix() for p in entries) if n not in owned)
    if other:
        more = f" and {len(other) - 3} more" if len(other) > 3 else ""
        raise HarnessError(
            f"{out}: holds files that are not a report's ({', '.join(other[:3])}{more}); "
            "pass a new or empty folder"
        )


def write(report: Report, outdir: str | Path) -> list[Path]:
    """Write the report into a temporary folder beside ``outdir`` and rename it onto
    ``outdir`` (a previous report there is replaced whole); returns the paths written."""
    check_outdir(outdir)
    out = Path(outdir)
    target = Path(os.path.realpath(out))  # a symlinked OUTDIR: replace the folder it names
    written = files(report)
    tmp = old = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        for name, data in written.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; OUTDIR is an ordinary folder
        if target.is_dir():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as err:
        raise HarnessError(f"{out}: cannot write the report ({err.strerror or err})") from None
    finally:
        if old is not None and not target.exists():
            os.replace(old, target)  # interrupted between the two renames: the previous report
        for leftover in (tmp, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)
    return [out / name for name in written if name != MANIFEST]


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``) raises KeyboardInterrupt meanwhile, so :func:`write` still cleans up."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cli_report(args: argparse.Namespace) -> int:
    """``python -m harness report RESULTS OUTDIR``."""
    out = Path(args.outdir)
    check_outdir(out)  # before any work (``harness.cli`` checked that it can be written)
    loaded = load(args.results, "report")
    report = build(
        loaded,
        baseline=getattr(args, "baseline", None),
        all_commits=getattr(args, "all_commits", False),
        warn=stderr_warn("report"),
    )
    with _terminate_as_interrupt():
        paths = write(report, out)
    print(f"harness report: wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
