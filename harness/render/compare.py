"""A comparison of two sides (:mod:`harness.analysis.compare`) as Markdown, HTML, JSON or CSV.

Markdown and HTML lead with the pair compared and the summary (what got faster or slower, which
configurations changed bits or only signs, peak memory), then list only the rows that changed;
unchanged and skipped rows are counted (``show_all`` lists every row). JSON and CSV hold every
row, with the summary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from harness.analysis import compare as analysis
from harness.analysis.compare import Choice, Comparison, Summary
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


def _shown(
    frame: pd.DataFrame, changed: Callable[[dict[str, Any]], bool], show_all: bool
) -> list[dict[str, Any]]:
    rows = frame.to_dict("records")
    return rows if show_all else [r for r in rows if changed(r)]


def _title(title: str, shown: int, total: int, show_all: bool) -> str:
    return title if show_all or shown == total else f"{title}: {shown} of {total} rows changed"


#: asv compare's marks, as :func:`runtime` prints them.
RUNTIME_NOTE = (
    "A, B: the median, ± half the interquartile range of the samples (asv's get_err). "
    "+: B larger (slower) beyond the factor and significant; -: B smaller; "
    "~ before a ratio: beyond the factor but not significant; x: the benchmark's version "
    "changed; !: B failed where A did not; *: A failed where B did not"
)


def runtime(result: Comparison, show_all: bool = True) -> Table:
    """asv compare's mark, both values, the ratio and the benchmark, per runtime or memory row."""
    rows = []
    shown = _shown(result.runtime, analysis.runtime_changed, show_all)
    for r in shown:
        name = (
            r["benchmark"]
            + (f" ({r['params']})" if r["params"] else "")
            + (f" [{r['machine']}]" if r["machine"] else "")
        )
        rows.append([r["mark"].strip(), _value(r["a"], r["a_err"], r["a_status"], r["unit"]),
                     _value(r["b"], r["b_err"], r["b_status"], r["unit"]), r["ratio"], name])  # fmt: skip
    title = _title(
        f"Runtime and memory (factor {result.factor:g}; {result.significance})",
        len(shown),
        len(result.runtime),
        show_all,
    )
    headers = ["", "A", "B", "ratio", "benchmark (parameters)"]
    return Table(headers, rows, ["l", "r", "r", "r", "l"], title=title, note=RUNTIME_NOTE)


def numerical(result: Comparison, show_all: bool = True) -> Table:
    """Per configuration: did the bits move, by how much, and what kind of change."""
    rows = []
    shown = _shown(result.numerical, analysis.numerical_changed, show_all)
    for r in shown:
        name = "/".join(str(r[k]) for k in CONFIG_COLUMNS)
        rows.append([name, "yes" if r["bits_moved"] else "no", render.fmt_float(r["max_abs_diff"]),
                     render.fmt_float(r["deviation"]), str(int(r["sign_flips"] or 0)),
                     r["change"]])  # fmt: skip
    title = _title(
        "Numerical change (from the artifacts; the pair's calibrated verdict)",
        len(shown),
        len(result.numerical),
        show_all,
    )
    headers = ["configuration", "bits moved", "max |Δ|", "aligned Δ (relative)", "sign flips",
               "change"]  # fmt: skip
    return Table(headers, rows, ["l", "l", "r", "r", "r", "l"], title=title)


def checks(result: Comparison, show_all: bool = True) -> Table:
    """The stability checks' values on each side."""
    rows = []
    shown = _shown(result.checks, analysis.check_changed, show_all)
    for r in shown:
        name = r["benchmark"] + (f" ({r['params']})" if r["params"] else "")
        rows.append([name, _value(r["a"], None, r["a_status"], r["unit"]),
                     _value(r["b"], None, r["b_status"], r["unit"])])  # fmt: skip
    title = _title(
        "Stability checks (reported, not gated)", len(shown), len(result.checks), show_all
    )
    return Table(["benchmark (parameters)", "A", "B"], rows, ["l", "r", "r"], title=title)


def sections(result: Comparison, show_all: bool = True) -> list[Table]:
    return [runtime(result, show_all), numerical(result, show_all), checks(result, show_all)]


def _names(factors: Sequence[str]) -> str:
    return ", ".join(factors)


def choice_line(choice: Choice | None) -> str:
    """Which pair was compared and in what else it differs ('' when the selectors named it)."""
    if choice is None:
        return ""
    pair = f"{choice.a} → {choice.b}"
    if choice.candidates != (1, 1):
        a, b = choice.candidates
        pair = f"the closest pair of the {a} × {b} environments the selectors name, {pair}"
    if not choice.differ:
        return f"Compared {pair}: they differ in no factor the fingerprints record."
    if not choice.named:
        return f"Compared {pair}: they differ in {_names(choice.differ)}."
    if not choice.also:
        return f"Compared {pair}: they differ only in {_names(choice.named)}."
    return (
        f"Compared {pair}: no pair differs only in {_names(choice.named)}; "
        f"these also differ in {_names(choice.also)}."
    )


def summary_lines(result: Comparison) -> list[str]:
    """The summary, one sentence per section, then what is listed and what only counted."""
    s: Summary | None = result.summary
    if s is None:
        return []
    f = f"{result.factor:g}x"
    lines = [
        f"Runtime: {s.faster} of {s.runtimes} faster and {s.slower} slower beyond {f} "
        f"(significant); {s.unsure} more beyond {f} but not significant"
        + (f"; {s.newly_failing} newly failing" if s.newly_failing else "")
        + (f"; {s.fixed} fixed" if s.fixed else "")
        + (f"; {s.version_changed} with another benchmark version" if s.version_changed else "")
        + ".",
        f"Peak memory: {s.memory_larger} of {s.memory} larger and {s.memory_smaller} smaller "
        f"beyond {f}.",
    ]
    if s.configurations:
        verdicts = ", ".join(f"{n} {v}" for v, n in s.verdicts.items() if n)
        lines.append(
            f"Numerical: {s.bits_moved} of {s.configurations} configurations changed bits, "
            f"{s.sign_only} of them only flipped signs"
            + (f", {s.not_comparable} not comparable" if s.not_comparable else "")
            + (f"; verdicts: {verdicts}" if verdicts else "")
            + "."
        )
    else:
        lines.append("Numerical: no artifacts shared by A and B.")
    lines.append(f"Stability checks: {s.checks_changed} of {s.checks} values differ.")
    lines.append(
        f"{s.changed_rows} changed row(s) are listed; {s.unchanged_rows} unchanged and "
        f"{s.skipped_rows} skipped are counted, not listed (--all lists them)."
    )
    return lines


def verdict_line(result: Comparison) -> str:
    """FAIL with the reasons, or OK."""
    if result.failures:
        return "FAIL: " + "; ".join(result.failures) + "."
    return "OK: no significant slowdown beyond the factor, no numerical change beyond rounding."


def _sides(result: Comparison) -> list[tuple[str, str, list[str]]]:
    return [
        (side, sel, _runs_text(runs, result.ids))
        for side, sel, runs in (("A", result.a, result.a_runs), ("B", result.b, result.b_runs))
    ]


def to_markdown(result: Comparison, show_all: bool = False) -> str:
    parts = [f"# Compare {result.a} → {result.b}\n\n"]
    for side, sel, texts in _sides(result):
        parts.append(f"{side} `{sel}`: " + "; ".join(texts) + "\n\n")
    if choice_line(result.choice):
        parts.append(choice_line(result.choice) + "\n\n")
    lines = summary_lines(result)
    if lines:
        parts.append("## Summary\n\n" + "".join(f"- {line}\n" for line in lines) + "\n")
    for table in sections(result, show_all):
        parts.append(f"## {table.title}\n\n")
        parts.append(render.table_md(table) if table.rows else "Nothing to compare.\n")
        parts.append(f"\n{table.note}.\n\n" if table.note and table.rows else "\n")
    parts.extend(f"Note: {note}.\n\n" for note in result.notes)
    parts.append(verdict_line(result) + "\n")
    return "".join(parts)


def to_html(result: Comparison, show_all: bool = False) -> str:
    body = [f"<h1>Compare {render.esc(result.a)} → {render.esc(result.b)}</h1>\n"]
    for side, sel, texts in _sides(result):
        body.append(
            f"<p>{side} <code>{render.esc(sel)}</code>: {render.esc('; '.join(texts))}</p>\n"
        )
    if choice_line(result.choice):
        body.append(f"<p>{render.esc(choice_line(result.choice))}</p>\n")
    lines = summary_lines(result)
    if lines:
        body.append("<h2>Summary</h2>\n<ul>\n")
        body.extend(f"<li>{render.esc(line)}</li>\n" for line in lines)
        body.append("</ul>\n")
    for table in sections(result, show_all):
        body.append(f"<h2>{render.esc(table.title)}</h2>\n")
        body.append(render.table_html(table) if table.rows else "<p>Nothing to compare.</p>\n")
        if table.note and table.rows:
            body.append(f"<p>{render.esc(table.note)}.</p>\n")
    body.extend(f"<p>Note: {render.esc(note)}.</p>\n" for note in result.notes)
    body.append(f"<p><strong>{render.esc(verdict_line(result))}</strong></p>\n")
    return render.html_page(f"Compare {result.a} → {result.b}", "".join(body))


def to_json(result: Comparison, show_all: bool = True) -> str:
    """Every row (``show_all`` is ignored: JSON is for programs), the choice and the summary."""

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
            "significance": result.significance,
            "runtime": render.records(result.runtime),
            "numerical": render.records(result.numerical),
            "checks": render.records(result.checks),
            "notes": result.notes,
            "failures": result.failures,
            "ok": not result.failures,
            "choice": dataclasses.asdict(result.choice) if result.choice else None,
            "summary": dataclasses.asdict(result.summary) if result.summary else None,
        }
    )


def to_csv(result: Comparison, show_all: bool = True) -> str:
    """Every row of the three sections (``show_all`` is ignored)."""
    rt = result.runtime.assign(section="runtime")
    num = result.numerical.assign(section="numerical")
    chk = result.checks.assign(section="checks")
    frame = pd.concat([rt, num, chk], ignore_index=True, sort=False)
    cols = ["section", *[c for c in frame.columns if c != "section"]]
    return render.csv_text(frame[cols])


FORMATS = {"md": to_markdown, "json": to_json, "html": to_html, "csv": to_csv}
