"""Small deterministic renderers shared by the commands: numbers, Markdown, CSV, JSON, HTML.

Every function is pure: the same input gives the same text, with no dates, paths or locale, so
reports built from identical results are byte-identical.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness import io

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MISSING = ""


def is_missing(x: Any) -> bool:
    """None, NaN and pandas' NA/NaT count as missing."""
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN, NaT
    except (TypeError, ValueError):
        return type(x).__name__ in ("NAType", "NaTType")


def fmt_seconds(x: Any) -> str:
    """Runtime the way asv prints it: 3 significant digits with a unit (ns .. s, then minutes)."""
    if is_missing(x):
        return MISSING
    if float(x) >= 120:
        return f"{float(x) / 60:.3g} min"
    x = float(f"{float(x):.3g}")  # rounded first: 0.9999999 ms is "1 ms", not "1e+03 μs"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("μs", 1e-6), ("ns", 1e-9)):
        if abs(x) >= scale or unit == "ns":
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} s"  # pragma: no cover


def fmt_bytes(x: Any) -> str:
    """Memory in decimal units (as asv does): 3 significant digits, B .. GB."""
    if is_missing(x):
        return MISSING
    x = float(f"{float(x):.3g}")  # rounded first: 999.96 kB is "1 MB", not "1e+03 kB"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def fmt_float(x: Any, digits: int = 2) -> str:
    """A deviation or other small float: '0' for zero, else scientific with ``digits`` digits."""
    if is_missing(x):
        return MISSING
    x = float(x)
    if x == 0:
        return "0"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits - 1}e}"


def fmt_deviation(dev: Any, moved: Any = None) -> str:
    """X_pca's deviation; where it is 0 but other outputs moved, those outputs ('0 (loadings)'):
    issue #10 point 8, a '0' beside 'not reproducible' named nothing."""
    if is_missing(dev):
        return MISSING
    outputs = "" if is_missing(moved) or not moved else str(moved).replace(",", ", ")
    return fmt_float(dev) + (f" ({outputs})" if dev == 0 and outputs else "")


def fmt_fixed(x: Any, decimals: int = 3) -> str:
    return MISSING if is_missing(x) else f"{float(x):.{decimals}f}"


def fmt_share(x: Any) -> str:
    """A share kept or an agreement (kNN Jaccard, ARI): 4 decimals below 1, never rounded up to
    1 (0.99978 is not '1.000', issue #10 point 6), '1' when all."""
    if is_missing(x):
        return MISSING
    return "1" if x == 1 else f"{min(x, 0.9999):.4f}"


def fmt_value(x: Any, unit: str | None) -> str:
    """A benchmark value in its unit (seconds, bytes, anything else as a short number)."""
    if is_missing(x):
        return MISSING
    if unit == "seconds":
        return fmt_seconds(x)
    if unit == "bytes":
        return fmt_bytes(x)
    return f"{float(x):.4g}"


# --- Markdown ----------------------------------------------------------------------------------


def ranges(values: Sequence[int], label: Callable[[int], str] = str) -> str:
    """Consecutive runs joined: [3, 4, 5, 9] -> '3-5, 9' (``label`` formats each endpoint)."""
    parts, start = [], None
    for i, v in enumerate(values):
        start = v if start is None else start
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(label(start) if start == v else f"{label(start)}-{label(v)}")
            start = None
    return ", ".join(parts)


#: Bidirectional controls (embeddings, overrides, isolates, marks): they reorder the text
#: around them when shown, so a cell shows their escapes instead.
_BIDI = {c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
_MD_CELL = {
    ord("\\"): "\\\\",
    ord("|"): "\\|",
    ord("\n"): " ",
    ord("\r"): " ",
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    **_BIDI,
}


def md_cell(x: Any) -> str:
    """A value as one Markdown table cell: pipes and backslashes escaped, no line breaks, HTML
    markup as entities (GitHub renders raw HTML in tables), bidi controls as their escapes."""
    text = MISSING if is_missing(x) else str(x)
    return text.translate(_MD_CELL)


def md_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None
) -> str:
    """A GitHub-flavoured Markdown table; ``align`` holds 'l' or 'r' per column."""
    align = align or ["l"] * len(headers)
    lines = [
        "| " + " | ".join(md_cell(h) for h in headers) + " |",
        "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|",
    ]
    lines.extend("| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


# --- the table model ---------------------------------------------------------------------------


@dataclass
class Table:
    """One display table, rendered by :func:`table_md` or :func:`table_html`.

    ``align`` holds 'l' or 'r' per column ('r': a number, right-aligned in both formats);
    ``classes`` a CSS class per cell (or None) for HTML; ``css`` the table's own class.
    """

    headers: list[str]
    rows: list[list[str]]
    align: list[str] = field(default_factory=list)
    classes: list[list[str | None]] | None = None
    css: str = ""
    title: str = ""
    #: What the table's marks mean, printed under it.
    note: str = ""

    @property
    def numeric(self) -> list[bool]:
        return [a == "r" for a in self.align] if self.align else [False] * len(self.headers)


def table_md(table: Table) -> str:
    """The table as GitHub-flavoured Markdown."""
    return md_table(table.headers, table.rows, table.align or None)


def table_html(table: Table) -> str:
    """The table as an HTML ``<table>``."""
    return html_table(
        table.headers,
        table.rows,
        numeric=table.numeric,
        classes=table.classes,
        table_class=table.css,
    )


# --- CSV and JSON ------------------------------------------------------------------------------


def csv_text(frame: pd.DataFrame) -> str:
    """CSV with '\\n' line ends and full float precision (round-trips, deterministic)."""
    return frame.to_csv(index=False, lineterminator="\n")


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts (numpy scalars to Python, missing to None) for :func:`harness.io.dumps`."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if is_missing(v) else _plain(v)) for k, v in row.items()})
    return out


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return str(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def json_text(obj: Any) -> str:
    """Canonical JSON (sorted keys, NaN as null), indented for people, newline-terminated."""
    return (
        json.dumps(json.loads(io.dumps(obj)), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    )


# --- HTML --------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 110em;
       padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.v-bitwise { background: #e3f4e1; } td.v-tol { background: #eef7df; }
td.v-spectrum { background: #fff6d6; } td.v-unstable { background: #fbd9d3; }
td.v-unclassified { background: #f1e6f7; }
p.meta { color: #555; font-size: 0.9em; margin-top: -0.4em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9em; }
code { background: #f5f5f5; padding: 0 0.2em; }
ul.problems { color: #8a3b00; font-size: 0.9em; }
"""


def esc(x: Any) -> str:
    return html.escape(MISSING if is_missing(x) else str(x), quote=True)


def html_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[bool] | None = None,
    classes: Iterable[Sequence[str | None]] | None = None,
    table_class: str = "",
) -> str:
    """An HTML table; ``classes`` gives a CSS class per cell (or None)."""
    numeric = numeric or [False] * len(headers)
    rows = list(rows)
    cls_rows = list(classes) if classes is not None else [[None] * len(headers)] * len(rows)
    attr = f' class="{esc(table_class)}"' if table_class else ""
    out = [
        f"<table{attr}>",
        "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>",
        "<tbody>",
    ]
    for row, cls in zip(rows, cls_rows, strict=True):
        cells = []
        for value, num, c in zip(row, numeric, cls, strict=True):
            names = " ".join(n for n in ("num" if num else None, c) if n)
            cells.append(
                f'<td class="{names}">{esc(value)}</td>' if names else f"<td>{esc(value)}</td>"
            )
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"


def html_page(title: str, body: str) -> str:
    """A self-contained page: inline CSS, no scripts, no external resources."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
