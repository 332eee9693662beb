"""The cross-environment comparison (:mod:`harness.analysis.crossenv`) as Markdown, HTML, JSON."""

from __future__ import annotations

from typing import Any

from harness.analysis.crossenv import CrossEnv
from harness.render import formats as render
from harness.render.formats import Table
from harness.render.tables import mark
from harness.vocabulary import CONFIG_COLUMNS, VERDICT_INFO, VERDICTS

NO_ARTIFACTS = "No artifacts found: run the stability suite to produce them."


def _cell(row: dict[str, Any]) -> str:
    if row["verdict"] == "not comparable":
        return "n/c"
    if row["bitwise"]:
        return "bitwise"
    text = render.fmt_float(row["deviation"])
    if row.get("sign_flips"):
        text += f" ({int(row['sign_flips'])} flips)"
    return text + mark(row["verdict"])


def environments(result: CrossEnv) -> Table:
    """Id, label, machine and commit of every environment compared."""
    rows = [[e["id"], e["label"], e["machine"], e["commit"][:8]] for e in result.envs]
    return Table(["id", "environment", "machine", "commit"], rows, css="envs")


def matrices(result: CrossEnv) -> list[Table]:
    """Per configuration: its environment x environment matrix, titled with the configuration."""
    out: list[Table] = []
    if result.pairs.empty:
        return out
    ids = [e["id"] for e in result.envs]
    groups = result.pairs.groupby([*CONFIG_COLUMNS, "condition"], sort=True, dropna=False)
    for config, sub in groups:
        cells: dict[tuple[str, str], str] = {}
        for row in sub.to_dict("records"):
            cells[(row["a"], row["b"])] = cells[(row["b"], row["a"])] = _cell(row)
        present = [i for i in ids if any(i in k for k in cells)]
        if result.baseline:
            others = [i for i in present if i != result.baseline]
            headers = ["", *others]
            rows = [[result.baseline, *(cells.get((result.baseline, o), "") for o in others)]]
        else:
            headers = ["", *present]
            rows = [
                [r, *("·" if r == c else cells.get((r, c), "") for c in present)] for r in present
            ]
        title = "/".join(str(x) for x in config[:4]) + (f" ({config[4]})" if config[4] else "")
        align = ["l"] + ["r"] * (len(headers) - 1)
        out.append(Table(headers, rows, align, css="crossenv", title=title))
    return out


def summary(result: CrossEnv) -> Table:
    """Per pair of environments: configurations, verdict counts, worst deviation and where."""
    headers = ["A", "B", "configurations", *VERDICTS, "worst deviation", "where"]
    rows = [
        [
            r["a"],
            r["b"],
            str(r["configurations"]),
            *(str(r[v]) for v in VERDICTS),
            render.fmt_float(r["worst_deviation"]),
            r["worst_configuration"],
        ]
        for r in result.summary.to_dict("records")
    ]
    align = ["l", "l"] + ["r"] * (len(headers) - 3) + ["l"]
    return Table(headers, rows, align, css="crossenv-summary")


def legend(result: CrossEnv) -> str:
    """What the cells mean."""
    return (
        "Deviation: worst sign-aligned relative deviation of X_pca on the digests' 500 cells "
        "(a lower bound), 0 for identical values; bitwise: identical sha256 of the full outputs; "
        "the verdict is judged on the full loadings against the exact covariance: "
        + ", ".join(f"{v.mark.strip()} {v.name}" for v in VERDICT_INFO if v.mark.strip())
        + "."
    )


def to_markdown(result: CrossEnv, *, level: int = 2) -> str:
    """Environments, the summary, one matrix per configuration and the legend."""
    h = "#" * level
    parts = [f"{h} Environments\n\n"]
    if not result.envs:
        return parts[0] + NO_ARTIFACTS + "\n"
    parts.append(render.table_md(environments(result)))
    if result.baseline:
        parts.append(f"\nBaseline: {result.baseline}.\n")
    parts.append(f"\n{h} Summary\n\n")
    table = summary(result)
    if table.rows:
        parts.append(render.table_md(table))
    else:
        parts.append("Fewer than two environments share a configuration: nothing to compare.\n")
    for matrix in matrices(result):
        parts.append(f"\n{h}# {matrix.title}\n\n")
        parts.append(render.table_md(matrix))
    parts.append("\n" + legend(result) + "\n")
    return "".join(parts)


def to_html_body(result: CrossEnv, *, level: int = 2) -> str:
    """:func:`to_markdown` as an HTML fragment."""
    parts = [f"<h{level}>Environments</h{level}>\n"]
    if not result.envs:
        return parts[0] + f"<p>{NO_ARTIFACTS}</p>\n"
    parts.append(render.table_html(environments(result)))
    if result.baseline:
        parts.append(f"<p>Baseline: {render.esc(result.baseline)}.</p>\n")
    table = summary(result)
    parts.append(f"<h{level}>Summary</h{level}>\n")
    parts.append(render.table_html(table) if table.rows else "<p>Nothing to compare.</p>\n")
    for matrix in matrices(result):
        parts.append(f"<h{level + 1}>{render.esc(matrix.title)}</h{level + 1}>\n")
        parts.append(render.table_html(matrix))
    parts.append(f"<p>{render.esc(legend(result))}</p>\n")
    return "".join(parts)


def to_html(result: CrossEnv) -> str:
    """A self-contained HTML page."""
    title = "Cross-environment deviation"
    return render.html_page(title, f"<h1>{title}</h1>\n" + to_html_body(result))


def to_json(result: CrossEnv) -> str:
    """Environments, every pair and the summary, as JSON."""
    return render.json_text(
        {
            "environments": result.envs,
            "baseline": result.baseline,
            "pairs": render.records(result.pairs),
            "summary": render.records(result.summary),
            "problems": len(result.problems),
        }
    )


def to_csv(result: CrossEnv) -> str:
    """Every compared pair, one row each."""
    return render.csv_text(result.pairs)
