"""The stability tables (:mod:`harness.analysis.tables`) as Markdown, HTML, CSV and JSON.

One section per run: a heading with its folder-wide id (when the table carries them) and label,
a line naming machine, commit and asv environment, and one :class:`~harness.render.formats.Table`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness.analysis import noise
from harness.errors import HarnessError
from harness.render import formats as render
from harness.render.formats import Table
from harness.study import missing
from harness.vocabulary import (
    BITWISE,
    BY_VERDICT,
    CHECKS,
    CONFIG_COLUMNS,
    NO_NUMBER,
    VERDICT_CHECKS,
    VERDICT_INFO,
)

if TYPE_CHECKING:  # pragma: no cover
    from harness.results.reader import Loaded

Row = dict[str, Any]
RUN_COLUMNS = ("environment", "machine", "commit", "env_name")


#: Marks a runtime whose interquartile range exceeds noise.NOISY of its median.
NOISY_MARK = " ±"


def legend(verdict_checks: Sequence[str]) -> str:
    """What the marks and the verdict column mean."""
    marks = ", ".join(f"{v.mark.strip()} {v.name}" for v in VERDICT_INFO if v.mark.strip())
    return (
        f"Runtime{NOISY_MARK}: its interquartile range exceeds {noise.NOISY:.0%} of the median. "
        "Δ: worst sign-aligned relative deviation of X_pca under that change (0 = equal values, "
        f"bitwise = equal bits; {marks}; no mark: within rounding of the exact covariance). "
        f"Verdict over {', '.join(verdict_checks)}: the worst of their calibrated verdicts."
    )


def mark(verdict: Any) -> str:
    """The mark a deviation gets for its verdict (' s', ' ~', ' ?', ' *', ' !' or nothing: one per verdict)."""
    return BY_VERDICT[verdict].mark if verdict in BY_VERDICT else ""


def css(verdict: Any) -> str | None:
    """The CSS class of a verdict's cell (None when it is no verdict)."""
    return BY_VERDICT[verdict].css if verdict in BY_VERDICT else None


def heading(meta: Row) -> str:
    """A run's heading: 'E3: label' when the table carries ids, else the label."""
    ident = meta.get("id")
    return f"{ident}: {meta['environment']}" if isinstance(ident, str) else str(meta["environment"])


def _groups(table: pd.DataFrame) -> list[tuple[Row, list[Row]]]:
    """Rows (plain dicts) of each run, in table order."""
    out: list[tuple[Row, list[Row]]] = []
    current: tuple[Any, ...] | None = None
    for row in render.records(table):
        key = tuple(row[k] for k in RUN_COLUMNS)
        if key != current:
            meta = {k: row[k] for k in RUN_COLUMNS}
            meta["all_cores"], meta["id"] = row.get("all_cores"), row.get("id")
            out.append((meta, []))
            current = key
        out[-1][1].append(row)
    return out


def _check_cell(dev: Any, v: Any, moved: Any = None) -> str:
    """The deviation of X_pca and the verdict's mark; where X_pca did not move but the verdict
    says something did, the outputs that moved (issue #10 point 8: '0 !' named nothing)."""
    if v == BITWISE or v in NO_NUMBER:
        return str(v)
    if render.is_missing(dev):
        return ""
    return render.fmt_deviation(dev, moved) + mark(v)


def _sigdigits_cell(r: Row) -> str:
    """Raw -log10 relative error, then the CNH estimate with its sample count: the estimate's
    confidence term costs ~1.5 digits at 2 samples and ~0.7 at 5 (issue #10 point 5)."""
    raw, cnh, n = r.get("sigdigits_raw"), r.get("sigdigits"), r.get("sigdigits_n")
    if render.is_missing(raw):
        return render.fmt_fixed(cnh, 1)
    return (
        f"{raw:.1f} ({render.fmt_fixed(cnh, 1)}, n={int(n) if not render.is_missing(n) else '?'})"
    )


_STATE_COLUMNS = ("s_time_1_thread", "s_time_all_cores", "s_peakmem", *(f"v_{c}" for c in CHECKS))


def all_skipped(row: Row) -> bool:
    """Whether every benchmark that ran on this configuration skipped it (not supported here)."""
    states = [row[c] for c in _STATE_COLUMNS if row.get(c) is not None]
    return bool(states) and all(s == "skipped" for s in states)


def _runtime_cell(value: Any, state: Any, fmt: Any, rel_iqr: Any = None) -> str:
    if not render.is_missing(value):
        noisy = not render.is_missing(rel_iqr) and rel_iqr > noise.NOISY
        return fmt(value) + (NOISY_MARK if noisy else "")
    return state if state in NO_NUMBER else ""


def _threads_text(all_cores: Any) -> str:
    if render.is_missing(all_cores):
        return "all cores"
    return f"{int(all_cores)} thread" + ("s" if int(all_cores) != 1 else "")


def display(rows_in: list[Row], all_cores: Any = None) -> Table:
    """One run's stability table, formatted."""
    headers = [*CONFIG_COLUMNS, "time 1 thread", f"time {_threads_text(all_cores)}",
               "peak memory", *(f"Δ {c}" for c in CHECKS), "sig. digits: raw (CNH, samples)", "kNN Jaccard",
               "verdict"]  # fmt: skip
    align = ["l"] * 4 + ["r"] * (3 + len(CHECKS) + 2) + ["l"]
    rows, classes = [], []
    for r in rows_in:
        cells = [
            *(r[k] for k in CONFIG_COLUMNS),
            _runtime_cell(
                r["time_1_thread_s"],
                r["s_time_1_thread"],
                render.fmt_seconds,
                r.get("iqr_time_1_thread"),
            ),
            _runtime_cell(
                r["time_all_cores_s"],
                r["s_time_all_cores"],
                render.fmt_seconds,
                r.get("iqr_time_all_cores"),
            ),
            _runtime_cell(r["peakmem_bytes"], r["s_peakmem"], render.fmt_bytes),
            *(_check_cell(r[f"dev_{c}"], r[f"v_{c}"], r.get(f"moved_{c}")) for c in CHECKS),
            _sigdigits_cell(r),
            render.fmt_share(r["knn_jaccard"]),
            r["verdict"] or "",
        ]
        rows.append(["" if c is None else str(c) for c in cells])
        classes.append(
            [None] * 7 + [css(r[f"v_{c}"]) for c in CHECKS] + [None, None, css(r["verdict"])]
        )
    return Table(headers, rows, align, classes, css="stability")


def display_generic(rows_in: list[Row]) -> Table:
    """One run's results of another project's suite, formatted."""
    rows = [
        [
            r["benchmark"],
            r["params"],
            render.fmt_value(r["value"], r["unit"]),
            r["status"] + (f" ({r['reason']})" if isinstance(r["reason"], str) else ""),
        ]
        for r in rows_in
    ]
    return Table(["benchmark", "parameters", "value", "status"], rows, ["l", "l", "r", "l"],
                 css="stability")  # fmt: skip


def _visible(rows: list[Row], generic: bool) -> tuple[list[Row], str]:
    """The rows shown in md/html, and a note on the configurations left out."""
    hidden = [] if generic else [r for r in rows if all_skipped(r)]
    if not hidden:
        return rows, ""
    names = sorted({f"{r['layout']}/{r['solver']}" for r in hidden})
    note = (
        f"{len(hidden)} configuration(s) skipped by every benchmark (not run here): "
        + ", ".join(names)
        + "."
    )
    return [r for r in rows if not all_skipped(r)], note


def _sections(table: pd.DataFrame, generic: bool) -> list[tuple[Row, Table, str]]:
    """Per run: its meta, its formatted table and the note on configurations left out."""
    out = []
    for meta, sub in _groups(table):
        sub, note = _visible(sub, generic)
        shown = display_generic(sub) if generic else display(sub, meta.get("all_cores"))
        out.append((meta, shown, note))
    return out


def _meta_line(meta: Row, code: bool = True) -> str:
    q = (lambda s: f"`{s}`") if code else str
    return f"machine {q(meta['machine'])} · commit {q(str(meta['commit'])[:8])} · asv environment {q(meta['env_name'])}"


def _legend_of(table: pd.DataFrame) -> str:
    return legend(table.attrs.get("verdict_checks", VERDICT_CHECKS))


def to_markdown(
    table: pd.DataFrame, *, generic: bool = False, summary: str = "", level: int = 2
) -> str:
    """Every run's table under its own heading, then the legend and ``summary``."""
    parts = ["No results to tabulate.\n\n"] if table.empty else []
    for meta, shown, note in _sections(table, generic):
        parts.append(f"{'#' * level} {heading(meta)}\n\n{_meta_line(meta)}\n\n")
        parts.append(render.table_md(shown))
        parts.append(f"\n{note}\n\n" if note else "\n")
    if not generic and not table.empty:
        parts.append(_legend_of(table) + "\n\n")
    if summary:
        parts.append(summary + "\n")
    return "".join(parts)


def to_html_body(table: pd.DataFrame, *, generic: bool = False, level: int = 2) -> str:
    """Every run's table under its own heading, then the legend (HTML fragment)."""
    parts = ["<p>No results to tabulate.</p>\n"] if table.empty else []
    for meta, shown, note in _sections(table, generic):
        parts.append(f"<h{level}>{render.esc(heading(meta))}</h{level}>\n")
        parts.append(f'<p class="meta">{render.esc(_meta_line(meta, code=False))}</p>\n')
        parts.append(render.table_html(shown))
        if note:
            parts.append(f'<p class="meta">{render.esc(note)}</p>\n')
    if not generic and not table.empty:
        parts.append(f"<p>{render.esc(_legend_of(table))}</p>\n")
    return "".join(parts)


def to_json(
    table: pd.DataFrame, *, generic: bool = False, summary: dict[str, Any] | None = None
) -> str:
    """Every run (with its id when the table carries them) and its rows, as JSON."""
    envs = []
    drop = {"run", "id", *RUN_COLUMNS}
    for meta, sub in _groups(table):
        rows = [{k: v for k, v in r.items() if k not in drop} for r in sub]
        env = {k: meta[k] for k in RUN_COLUMNS}
        if isinstance(meta.get("id"), str):
            env["id"] = meta["id"]
        envs.append({**env, "rows": rows})
    obj: dict[str, Any] = {
        "kind": "generic" if generic else "stability",
        "environments": envs,
        "summary": summary or {},
    }
    if not generic:
        obj["verdict_checks"] = table.attrs.get("verdict_checks", list(VERDICT_CHECKS))
    return render.json_text(obj)


def to_csv(table: pd.DataFrame, without: list[dict[str, Any]]) -> str:
    """Every row of the table, then the environments without results."""
    frames = [table.drop(columns=["run"], errors="ignore"), pd.DataFrame(without)]
    frames = [f for f in frames if not f.empty]
    return render.csv_text(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def render_table(
    table: pd.DataFrame,
    fmt: str,
    *,
    generic: bool = False,
    summary: str = "",
    summary_obj: dict[str, Any] | None = None,
    without: list[dict[str, Any]] | None = None,
) -> str:
    """The table as md, csv, json or a self-contained html page.

    ``without`` lists the environments that have no results ('failed to install', 'backend
    unavailable'; :mod:`harness.study.missing`), shown after the tables so none is silently missing.
    """
    without = without or []
    if fmt == "md":
        return to_markdown(table, generic=generic, summary=missing.to_markdown(without) + summary)
    if fmt == "csv":
        return to_csv(table, without)
    if fmt == "json":
        summary_all = {**(summary_obj or {}), "without_results": without}
        return to_json(table, generic=generic, summary=summary_all)
    if fmt == "html":
        body = "<h1>Stability tables</h1>\n" + to_html_body(table, generic=generic)
        body += missing.to_html(without)
        if summary:
            body += f"<p>{render.esc(summary)}</p>\n"
        return render.html_page("Stability tables", body)
    raise HarnessError(f"--format: unknown format {fmt!r}")


def summary_obj(loaded: Loaded) -> dict[str, Any]:
    """What was read: result files, rows and problems."""
    return {
        "result_files": loaded.files,
        "rows": len(loaded.frame),
        "problems": len(loaded.problems),
    }


def summary_line(loaded: Loaded) -> str:
    """:func:`summary_obj` as one sentence."""
    s = summary_obj(loaded)
    text = f"Read {s['result_files']} result file(s), {s['rows']} row(s)"
    if s["problems"]:
        text += f"; {s['problems']} file(s) or part(s) skipped or left empty (see the warnings)"
    return text + "."
