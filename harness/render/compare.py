"""A comparison of two sides (:mod:`harness.analysis.compare`) as Markdown, HTML, JSON or CSV."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.analysis.compare import Comparison
from harness.analysis.runs import date_rank, newest_by
from harness.render import formats as render
from harness.render.formats import Table, is_missing
from harness.results.runs import RunInfo
from harness.vocabulary import CONFIG_COLUMNS


def _runs_text(runs: Sequence[RunInfo], ids: dict[Any, str]) -> list[str]:
    """One entry per (label, machine): its id and commit, or how many commits and the newest."""
    groups: dict[tuple[str, str], list[RunInfo]] = {}
    for r in runs:
        groups.setdefault((r.label, r.machine), []).append(r)
    out = []
    for (label, machine), rs in sorted(groups.items()):
        newest = newest_by(rs, lambda r: 0, lambda r: (date_rank(r.date), r.commit))[0]
        name = f"{ids[newest.key]}: {label}" if newest.key in ids else label
        if len(rs) == 1:
            out.append(f"{name} (machine {machine}, commit {newest.commit[:8]})")
        else:
            used = f"{len(rs)} commits; newest {newest.commit[:8]} used"
            out.append(f"{name} (machine {machine}, {used})")
    return out


def _value(v: Any, err: Any, status: Any, unit: Any) -> str:
    if status == "failed":
        return "failed"
    if is_missing(v):
        return "skipped" if status == "skipped" else "n/a"
    text = render.fmt_value(v, unit)
    if not is_missing(err) and err > 0:
        text += "±" + render.fmt_value(err, unit).replace(" ", "")
    return text


def runtime(result: Comparison) -> Table:
    """asv compare's mark, both values, the ratio and the benchmark, per runtime or memory row."""
    rows = []
    for r in result.runtime.to_dict("records"):
        name = (
            r["benchmark"]
            + (f" ({r['params']})" if r["params"] else "")
            + (f" [{r['machine']}]" if r["machine"] else "")
        )
        rows.append([r["mark"].strip(), _value(r["a"], r["a_err"], r["a_status"], r["unit"]),
                     _value(r["b"], r["b_err"], r["b_status"], r["unit"]), r["ratio"], name])  # fmt: skip
    title = f"Runtime and memory (factor {result.factor:g}; {result.significance})"
    headers = ["", "A", "B", "ratio", "benchmark (parameters)"]
    return Table(headers, rows, ["l", "r", "r", "r", "l"], title=title)


def numerical(result: Comparison) -> Table:
    """Per configuration: did the bits move, by how much, and what kind of change."""
    rows = []
    for r in result.numerical.to_dict("records"):
        name = "/".join(str(r[k]) for k in CONFIG_COLUMNS)
        rows.append([name, "yes" if r["bits_moved"] else "no", render.fmt_float(r["max_abs_diff"]),
                     render.fmt_float(r["deviation"]), str(int(r["sign_flips"] or 0)),
                     r["change"]])  # fmt: skip
    title = f"Numerical change (tolerance {result.tolerance:g}; from the artifacts)"
    headers = ["configuration", "bits moved", "max |Δ|", "aligned Δ (relative)", "sign flips",
               "change"]  # fmt: skip
    return Table(headers, rows, ["l", "l", "r", "r", "r", "l"], title=title)


def checks(result: Comparison) -> Table:
    """The stability checks' values on each side."""
    rows = []
    for r in result.checks.to_dict("records"):
        name = r["benchmark"] + (f" ({r['params']})" if r["params"] else "")
        rows.append([name, _value(r["a"], None, r["a_status"], r["unit"]),
                     _value(r["b"], None, r["b_status"], r["unit"])])  # fmt: skip
    title = "Stability checks (reported, not gated)"
    return Table(["benchmark (parameters)", "A", "B"], rows, ["l", "r", "r"], title=title)


def sections(result: Comparison) -> list[Table]:
    return [runtime(result), numerical(result), checks(result)]


def verdict_line(result: Comparison) -> str:
    """FAIL with the reasons, or OK."""
    if result.failures:
        return "FAIL: " + "; ".join(result.failures) + "."
    return (
        "OK: no significant slowdown beyond the factor, no numerical change beyond the tolerance."
    )


def _sides(result: Comparison) -> list[tuple[str, str, list[str]]]:
    return [
        (side, sel, _runs_text(runs, result.ids))
        for side, sel, runs in (("A", result.a, result.a_runs), ("B", result.b, result.b_runs))
    ]


def to_markdown(result: Comparison) -> str:
    parts = [f"# Compare {result.a} → {result.b}\n\n"]
    for side, sel, texts in _sides(result):
        parts.append(f"{side} `{sel}`: " + "; ".join(texts) + "\n\n")
    for table in sections(result):
        parts.append(f"## {table.title}\n\n")
        parts.append(render.table_md(table) if table.rows else "Nothing to compare.\n")
        parts.append("\n")
    parts.extend(f"Note: {note}.\n\n" for note in result.notes)
    parts.append(verdict_line(result) + "\n")
    return "".join(parts)


def to_html(result: Comparison) -> str:
    body = [f"<h1>Compare {render.esc(result.a)} → {render.esc(result.b)}</h1>\n"]
    for side, sel, texts in _sides(result):
        body.append(
            f"<p>{side} <code>{render.esc(sel)}</code>: {render.esc('; '.join(texts))}</p>\n"
        )
    for table in sections(result):
        body.append(f"<h2>{render.esc(table.title)}</h2>\n")
        body.append(render.table_html(table) if table.rows else "<p>Nothing to compare.</p>\n")
    body.extend(f"<p>Note: {render.esc(note)}.</p>\n" for note in result.notes)
    body.append(f"<p><strong>{render.esc(verdict_line(result))}</strong></p>\n")
    return render.html_page(f"Compare {result.a} → {result.b}", "".join(body))


def to_json(result: Comparison) -> str:
    def runs(rs: Sequence[RunInfo]) -> list[dict[str, Any]]:
        return [
            {
                "id": result.ids.get(r.key),
                "label": r.label,
                "machine": r.machine,
                "commit": r.commit,
                "env_name": r.env_name,
            }
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
    rt = result.runtime.assign(section="runtime")
    num = result.numerical.assign(section="numerical")
    chk = result.checks.assign(section="checks")
    frame = pd.concat([rt, num, chk], ignore_index=True, sort=False)
    cols = ["section", *[c for c in frame.columns if c != "section"]]
    return render.csv_text(frame[cols])


FORMATS = {"md": to_markdown, "json": to_json, "html": to_html, "csv": to_csv}
