"""What ``harness history`` and ``harness gate`` print: one line per change, then the verdict."""

from __future__ import annotations

from typing import Any

from harness.history.gate import GateVerdict
from harness.history.run import HistoryResult

REVERT_NOTE = (
    "note: a change that a later commit reverts inside one bisected segment is not seen "
    "(the segment's ends agree)"
)


def config_text(c: dict[str, Any]) -> str:
    return f"{c['dataset']} {c['layout']} {c['dtype']} {c['svd_solver']}"


def change_text(c: dict[str, Any], markdown: bool = False) -> str:
    """One configuration's change: the kind of its bit change (per-component verdict counts,
    size, flipped components, the error), and the runtime ratio; ``markdown`` quotes the error."""
    parts = []
    if bits := c.get("bits"):
        text = bits["kind"]
        if counts := bits.get("counts"):
            text += " (" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")"
        if size := bits.get("size"):
            text += "; max rel. change " + ", ".join(f"{k} {v:.2g}" for k, v in size.items())
        if bits.get("flipped"):
            text += f", {bits['flipped']} PCs flipped"
        if detail := bits.get("detail"):
            text += f": `{detail[:200].replace('|', '/')}`" if markdown else f": {detail[:160]}"
        parts.append(text)
    if rt := c.get("runtime"):
        parts.append(
            f"{rt['kind']} {rt['ratio']:.2f}x ({rt['before']:.3g} s -> {rt['after']:.3g} s)"
        )
    return "; ".join(parts)


def commit_line(commit: dict[str, Any]) -> str:
    pr = f"#{commit['pr']} " if commit.get("pr") else ""
    return f"{commit['sha'][:9]} {commit['date'][:10]} {pr}{commit['subject']}"


def history_text(r: HistoryResult) -> str:
    n, k = len(r.commits), len(r.changes)
    lines = [
        f"history {r.spec}: {n} commits, {len(r.units)} distinct sources, "
        f"environment {r.store.root.name}"
    ]
    for i, c in enumerate(r.changes, 1):
        where = "" if c["exact"] else f" (in one of {len(c['candidates'])} commits up to here)"
        lines.append(f"change {i}/{k}: {commit_line(c['commit'])}{where}")
        lines += [f"    {config_text(x)}: {change_text(x)}" for x in c["configs"]]
    for s in r.skipped:
        lines.append(
            f"skipped {s['commit']['sha'][:9]}: {s['status']}: {s['reason'][:200]} "
            "(like git bisect skip)"
        )
    if not r.changes:
        lines.append("no change: PCA's outputs (and runtimes) agree at both ends")
    lines.append(
        f"built {r.counters.built} commits this run ({r.evaluated} of {len(r.units)} sources "
        f"evaluated, {r.counters.reused} from stored results); N={len(r.units)} sources, "
        f"k={k} change points: target (k+1)*log2(N)+k = {r.bound:.1f}; {r.wall:.0f} s"
    )
    lines += [REVERT_NOTE, f"results: {r.run_path}"]
    return "\n".join(lines) + "\n"


def gate_text(v: GateVerdict) -> str:
    """Every changed configuration, then the one verdict line (and what fails)."""
    lines = [f"gate {v.base} -> {v.head}: {v.configs} configurations"]
    lines += [f"    {' '.join(c)}: {change_text(d)}" for c, d in sorted(v.diff.items())]
    bits = sorted({d["bits"]["kind"] for d in v.diff.values() if "bits" in d})
    n_bits = sum(1 for d in v.diff.values() if "bits" in d)
    slower = [r["ratio"] for d in v.diff.values() if (r := d.get("runtime")) and r["ratio"] > 1]
    bits_text = (
        f"bits changed in {n_bits} of {v.configs} ({', '.join(bits)})"
        if bits
        else f"bits identical in all {v.configs}"
    )
    time_text = (
        f"{len(slower)} slower (up to {max(slower):.2f}x; factor {v.factor:g})"
        if slower
        else f"no significant slowdown of {v.factor:g}x or more"
    )
    lines.append(f"gate: {'FAIL' if v.failed else 'PASS'}: {bits_text}; runtime: {time_text}")
    lines += [f"  fails: {f}" for f in v.failures]
    return "\n".join(lines) + "\n"
