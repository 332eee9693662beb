"""The report: ``python -m harness report RESULTS OUTDIR``.

Writes, as one set (into a temporary folder beside OUTDIR, then renamed onto it, so OUTDIR holds
either the previous report or the new one, whole; files that are not a report's are never
replaced: the report refuses such a folder):

- ``report.md``: summary, figures (linked), stability tables, cross-environment deviation;
- ``report.html``: the same as one self-contained page (inline CSS, figures as base64 PNG);
- ``stability.csv``: the stability tables, long format (another project's suite: its results);
- ``crossenv.csv``: every compared pair of environments, when there are artifacts;
- ``figures/deviation.png``: deviation by environment x configuration (against the baseline
  environment, ``--baseline`` or the first one, from the artifacts when two or more environments
  have them; else the worst verdict-check deviation of the stability tables);
- ``figures/runtime.png``: median runtime at all cores by solver and layout, per run and dataset;
- ``manifest.txt``: the files above, so the next report into OUTDIR knows which files are its own.

Environments are named by the folder's ids (:func:`harness.results.environments.ids`), as in the
tables and the write-up. Figure labels are plain text: a parameter value is never mathtext.

The raw rows are not copied: :func:`harness.load_results` gives them.

Identical inputs give byte-identical outputs: no dates, no absolute paths, sorted rows, PNGs
written by Agg without the Software metadata, SVG hash salt fixed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io as _io
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.analysis import tables
from harness.commands import load, stderr_warn
from harness.commands.crossenv import crossenv_of
from harness.errors import HarnessError
from harness.render import crossenv as render_crossenv
from harness.render import formats as render
from harness.render import tables as render_tables
from harness.results import environments
from harness.results.environments import Key
from harness.results.problems import relative_line
from harness.vocabulary import DEFAULT_TOLERANCE, VERDICT_CHECKS, env_number

if TYPE_CHECKING:  # pragma: no cover
    from harness.analysis.crossenv import CrossEnv
    from harness.results.reader import Loaded

#: Figures show at most this many environments (the first ones in id order).
MAX_ENVS = 8
DPI = 100
#: Lists the files of a report; a folder's other files are not the report's to replace.
MANIFEST = "manifest.txt"
#: What a report wrote before it kept a manifest (those folders are still recognised).
UNLISTED = frozenset(
    {"report.md", "report.html", "stability.csv", "crossenv.csv", "figures/deviation.png",
     "figures/runtime.png"}
)  # fmt: skip


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


def _png(fig: Any) -> tuple[bytes, int, int]:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    width, height = (round(v) for v in fig.get_size_inches() * DPI)
    return buf.getvalue(), width, height


def deviation_matrix(
    table: pd.DataFrame, cross: CrossEnv | None, ids: Mapping[Key, str]
) -> tuple[pd.DataFrame, str]:
    """Environment (id) x configuration deviations for the heatmap, and what they are."""
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
            return pd.DataFrame(), ""
        checks = list(table.attrs.get("verdict_checks", VERDICT_CHECKS))
        worst = table[[f"dev_{c}" for c in checks]].astype(float).max(axis=1, skipna=True)
        frame = pd.DataFrame(
            {
                "environment": row_ids(table, ids),
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
    return matrix.loc[sorted(matrix.index, key=env_number)], what


def row_ids(table: pd.DataFrame, ids: Mapping[Key, str]) -> list[str]:
    """Per table row, the folder-wide id of its run."""
    return [ids[k] for k in zip(table["machine"], table["commit"], table["env_name"], strict=True)]


def run_names(table: pd.DataFrame, ids: Mapping[Key, str]) -> dict[str, str]:
    """id -> description (label, machine, commit) of each run in the table."""
    runs = table.drop_duplicates(["machine", "commit", "env_name"])
    return {
        ids[(m, c, e)]: f"{label} (machine {m}, commit {str(c)[:8]})"
        for label, m, c, e in zip(
            runs["environment"], runs["machine"], runs["commit"], runs["env_name"], strict=True
        )
    }


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


def heatmap(matrix: pd.DataFrame, what: str) -> Figure | None:
    """The deviation heatmap of :func:`deviation_matrix` (None when there is nothing to draw)."""
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
    from matplotlib.colors import ListedColormap  # after _matplotlib() chose the backend

    equal = ListedColormap(["#cfe8c9"]).with_extremes(bad=(0, 0, 0, 0))
    ax.imshow(np.where(exact, 1.0, np.nan), cmap=equal, vmin=0, vmax=1, aspect="auto")
    for (i, j), is_exact in np.ndenumerate(exact):
        if is_exact:
            ax.text(j, i, "=", ha="center", va="center", fontsize=8, color="#2f6b2f")
    ax.set_xticks(range(cols), [plain(c) for c in matrix.columns], rotation=90, fontsize=7)
    ax.set_yticks(range(rows), [plain(i) for i in matrix.index], fontsize=8)
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


def _runtime_panel(
    ax: Any, sub: pd.DataFrame, solvers: list[str], series: list, colors: Any
) -> None:
    """One run's and dataset's bars: median runtime per solver, one bar per layout and dtype."""
    width = 0.8 / max(1, len(series))
    for k, (layout, dtype) in enumerate(series):
        part = sub[(sub["layout"].astype(str) == layout) & (sub["dtype"].astype(str) == dtype)]
        by_solver = part.groupby(part["solver"].astype(str))["time_all_cores_s"].median()
        heights = np.asarray([float(by_solver.get(s, np.nan)) for s in solvers])
        xs = np.arange(len(solvers)) + (k - (len(series) - 1) / 2) * width
        ok = np.isfinite(heights) & (heights > 0)
        ax.bar(xs[ok], heights[ok], width, label=plain(f"{layout} {dtype}"), color=colors(k % 10))


def runtime_figure(table: pd.DataFrame, ids: Mapping[Key, str]) -> Figure | None:
    """Median runtime at all cores by solver and layout, one panel per run (id) and dataset."""
    if table.empty or table["time_all_cores_s"].notna().sum() == 0:
        return None
    plt = _matplotlib()
    names = run_names(table, ids)
    table = table.assign(_run=row_ids(table, ids))
    runs = sorted(set(table["_run"]), key=env_number)
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
    times = table["time_all_cores_s"].astype(float)
    positive = times[times > 0]
    lo = 10 ** math.floor(math.log10(positive.min())) if len(positive) else 1e-3
    hi = 10 ** math.ceil(math.log10(positive.max())) if len(positive) else 1.0
    for i, run in enumerate(runs):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            sub = table[(table["_run"] == run) & (table["dataset"].astype(str) == dataset)]
            _runtime_panel(ax, sub, solvers, series, plt.get_cmap("tab10"))
            ax.set_yscale("log")
            ax.set_ylim(lo, hi * 1.5)
            ax.set_xticks(range(len(solvers)), [plain(s) for s in solvers], rotation=30,
                          fontsize=7, ha="right")  # fmt: skip
            ax.set_ylabel("seconds", fontsize=7)
            ax.set_title(plain(f"{run} · {dataset}"), fontsize=8)
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
    tol = DEFAULT_TOLERANCE if tolerance is None else tolerance
    table = tables.stability_table(
        loaded.frame, loaded.records, tolerance=tol, all_commits=all_commits
    )
    generic = table.empty
    shown = tables.generic_table(loaded.frame, all_commits=all_commits) if generic else table
    problems = list(loaded.problems)
    if cross is None:

        def note(line: str) -> None:
            problems.append(line)
            if warn:
                warn(line)

        cross = crossenv_of(
            loaded, baseline=baseline, tolerance=tol, warn=note, all_commits=all_commits
        )
    problems = sorted({relative_line(p, loaded.root) for p in problems})
    ids = environments.ids(loaded)
    figures = [
        f
        for f in (heatmap(*deviation_matrix(table, cross, ids)), runtime_figure(table, ids))
        if f is not None
    ]
    n_envs = len(shown[["machine", "env_name"]].drop_duplicates()) if len(shown) else 0
    summary = f"{render_tables.summary_line(loaded)} {n_envs} environment(s) tabulated" + (
        f"; {len(cross.envs)} with artifacts."
        if cross.envs
        else "; no artifacts for cross-environment comparison."
    )
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
    return Report(
        _markdown(summary, figures, sections, problems),
        _html(summary, figures, sections, problems),
        stability_csv,
        crossenv_csv,
        figures,
    )


#: A section of the report: its title, as Markdown, as an HTML fragment.
Section = tuple[str, str, str]


def _markdown(
    summary: str, figures: list[Figure], sections: list[Section], problems: list[str]
) -> str:
    """report.md: the summary, the figures (linked), the sections, the problems."""
    md = ["# PCA stability report\n\n", f"{summary}\n\n"]
    if figures:
        md.append("## Figures\n\n")
        md.extend(f"![{f.title}](figures/{f.name}.png)\n\n{f.caption}\n\n" for f in figures)
    for i, (title, text, _) in enumerate(sections):
        md.append(("\n" if i else "") + f"## {title}\n\n{text}")
    if problems:
        md.append(f"\n## Problems ({len(problems)})\n\n")
        md.extend(f"- {p}\n" for p in problems)
    return "".join(md)


def _figure_html(f: Figure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (
        f'<figure id="fig-{f.name}"><img src="data:image/png;base64,{data}" '
        f'alt="{render.esc(f.title)}" width="{f.width}" height="{f.height}">'
        f"<figcaption>{render.esc(f.caption)}</figcaption></figure>\n"
    )


def _html(summary: str, figures: list[Figure], sections: list[Section], problems: list[str]) -> str:
    """report.html: the same content as one self-contained page (figures inline)."""
    body = ["<h1>PCA stability report</h1>\n", f"<p>{render.esc(summary)}</p>\n"]
    if figures:
        body.append("<h2>Figures</h2>\n")
        body.extend(_figure_html(f) for f in figures)
    for title, _, fragment in sections:
        body.append(f"<h2>{render.esc(title)}</h2>\n{fragment}")
    if problems:
        body.append(f'<h2>Problems ({len(problems)})</h2>\n<ul class="problems">\n')
        body.extend(f"<li>{render.esc(p)}</li>\n" for p in problems)
        body.append("</ul>\n")
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
    if args.tolerance is not None and args.tolerance < 0:
        raise HarnessError("--tolerance: must be >= 0")
    out = Path(args.outdir)
    check_outdir(out)  # before any work (``harness.cli`` checked that it can be written)
    loaded = load(args.results, "report")
    report = build(
        loaded,
        baseline=getattr(args, "baseline", None),
        tolerance=args.tolerance,
        all_commits=getattr(args, "all_commits", False),
        warn=stderr_warn("report"),
    )
    with _terminate_as_interrupt():
        paths = write(report, out)
    print(f"harness report: wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
