"""The headline (:mod:`harness.analysis.headline`) as a few sentences: counts, ratios and sizes.

``harness table`` (and so ``make bench``) and the report start with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.analysis.headline import Fastest, Headline, Moved
from harness.render import formats as render
from harness.vocabulary import CHECK_INFO

#: Solvers named per check; the rest are counted.
MAX_SOLVERS = 3
_VARIES = {c.name: c.varies for c in CHECK_INFO}
_AS = {"repeat": "run to run", "process": "across processes", "threads": "across thread counts"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def reproduced(h: Headline) -> str:
    """How many configurations each within-environment check left bitwise identical."""
    parts = [
        f"{r.bitwise} of {r.ran} {_AS.get(r.check, r.check)} ({_VARIES.get(r.check, r.check)})"
        for r in h.reproduced
        if r.ran
    ]
    where = f"in {_plural(h.environments, 'environment')}" if h.environments > 1 else "in this run"
    return (
        f"Of {_plural(h.configurations, 'configuration')} {where}, bitwise reproducible: "
        + ("; ".join(parts) if parts else "no check ran")
        + "."
    )


def _solver_text(m: Moved) -> str:
    if m.worst != m.worst:
        size = "deviation not recorded"
    elif m.worst == 0:
        size = "0: equal values, other bits"
    else:
        size = render.fmt_float(m.worst)
    return f"{m.solver} {m.moved}/{m.ran} ({size}; {m.where})"


def moved_items(h: Headline) -> list[str]:
    """Per check that moved bits: the solvers it moved (worst first) and by how much."""
    by_check: dict[str, list[Moved]] = {}
    for m in h.moved:
        by_check.setdefault(m.check, []).append(m)
    items = []
    for check, ms in by_check.items():
        shown = ", ".join(_solver_text(m) for m in ms[:MAX_SOLVERS])
        more = f", {_plural(len(ms) - MAX_SOLVERS, 'more solver')}" if len(ms) > MAX_SOLVERS else ""
        items.append(f"{check} ({_VARIES.get(check, check)}): {shown}{more}")
    return items


def moved(h: Headline) -> str:
    """The lead of :func:`moved_items`."""
    if not h.moved:
        return "No check moved any bit."
    return (
        "Bits moved, per check: solver, configurations moved of those run (worst sign-aligned "
        "relative deviation of X_pca; where):"
    )


def _in(env: str) -> str:
    return f" in {env}" if env else ""


def fastest_one(f: Fastest) -> str:
    text = (
        f"{f.dataset}: {f.configuration}{_in(f.env)} takes {render.fmt_seconds(f.seconds)} at "
        f"{f.threads}, the fastest of the {f.reproducible} of {f.timed} timed configurations "
        "that are reproducible at a fixed thread count"
    )
    if (f.overall_configuration, f.overall_env) == (f.configuration, f.env) or not f.seconds:
        return text + ", and the fastest overall"
    ratio = f.seconds / f.overall_seconds if f.overall_seconds else float("nan")
    return (
        text + f"; the fastest overall, {f.overall_configuration}{_in(f.overall_env)}, takes "
        f"{render.fmt_seconds(f.overall_seconds)} ({_times(ratio)} less)"
    )


def fastest(h: Headline) -> str:
    if not h.fastest:
        return "No configuration is both timed and reproducible at a fixed thread count."
    return (
        "Fastest reproducible configuration per dataset: "
        + "; ".join(fastest_one(f) for f in h.fastest)
        + "."
    )


#: One paragraph of the headline and its list items (none for most).
Block = tuple[str, list[str]]


def blocks(h: Headline | None) -> list[Block]:
    """The headline's paragraphs (none for a table without the stability checks)."""
    if h is None:
        return []
    return [(reproduced(h), []), (moved(h), moved_items(h)), (fastest(h), [])]


def sentences(h: Headline | None) -> list[str]:
    """Every paragraph and list item of the headline as plain lines, in order."""
    return [line for text, items in blocks(h) for line in (text, *items)]


def to_markdown(h: Headline | None) -> str:
    """The headline as Markdown paragraphs and lists ('' when there is none)."""
    out = []
    for text, items in blocks(h):
        out.append(
            text + "\n\n" + "".join(f"- {item}\n" for item in items) + ("\n" if items else "")
        )
    return "".join(out)


def to_html(h: Headline | None) -> str:
    """The headline as an HTML fragment (``<div class="headline" id="headline">``)."""
    parts = []
    for text, items in blocks(h):
        parts.append(f"<p>{render.esc(text)}</p>\n")
        if items:
            parts.append(
                "<ul>\n" + "".join(f"<li>{render.esc(i)}</li>\n" for i in items) + "</ul>\n"
            )
    if not parts:
        return ""
    return '<div class="headline" id="headline">\n' + "".join(parts) + "</div>\n"


def to_obj(h: Headline | None) -> dict[str, Any] | None:
    """The headline's numbers and sentences, for JSON."""
    if h is None:
        return None
    return {**dataclasses.asdict(h), "sentences": sentences(h)}
