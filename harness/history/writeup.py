"""results/history/README.md: the numerical history of scanpy's PCA, generated from the stored
histories (``python -m harness history-writeup``); every number comes from the result files.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness import io
from harness.errors import HarnessError
from harness.history.changes import BIT_KINDS
from harness.history.store import CONFIG_FIELDS, Source, Store
from harness.history.text import REVERT_NOTE, change_text

REPO_URL = "https://github.com/scverse/scanpy"


def _cfg(c: dict[str, Any]) -> str:
    return f"{c['dataset']}/{c['layout']}/{c['dtype']}/{c['svd_solver']}"


def _kinds(c: dict[str, Any]) -> list[str]:
    """A configuration's change kinds: its bit change's, and slower/faster."""
    out = [c["bits"]["kind"]] if c.get("bits") else []
    return out + ([c["runtime"]["kind"]] if c.get("runtime") else [])


def _worst(kinds: list[str]) -> str:
    bit = [k for k in kinds if k in BIT_KINDS]
    other = sorted({k for k in kinds if k not in BIT_KINDS})
    worst = [max(bit, key=BIT_KINDS.index)] if bit else []
    return ", ".join(worst + other)


def _size(configs: list[dict[str, Any]]) -> str:
    """The largest relative change per output over a change point's configurations."""
    top: dict[str, float] = {}
    for c in configs:
        for k, v in (c.get("bits") or {}).get("size", {}).items():
            top[k] = max(top.get(k, 0.0), v)
    return ", ".join(f"{k} {v:.2g}" for k, v in sorted(top.items())) or "-"


def _link(sha: str) -> str:
    return f"[`{sha[:9]}`]({REPO_URL}/commit/{sha})"


def _pr(commit: dict[str, Any]) -> str:
    return f"[#{commit['pr']}]({REPO_URL}/pull/{commit['pr']})" if commit.get("pr") else "-"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _seconds(x: float) -> str:
    return f"{x / 60:.1f} min" if x >= 120 else f"{x:.0f} s"


def ends_section(run: list[dict[str, Any]], by_commit: dict[str, Source]) -> list[str]:
    """At the range's first and last probed commit: configurations that raised or gave other
    bits on every call, and solvers whose bits equal another solver's (scanpy ran that one)."""
    probed = [p for p in run[0].get("probed", []) if p["status"] == "ok"]
    if not probed:
        return []
    ends = dict.fromkeys((probed[0]["commit"], probed[-1]["commit"]))
    lines = ["At the ends of the range:", ""]
    for sha in ends:
        src = by_commit.get(sha)
        if src is None:
            continue
        version = src.probe.get("versions", {}).get("scanpy", "?")
        notes = [
            f"{_cfg(dict(zip(CONFIG_FIELDS, c, strict=True)))} {r['state']}"
            + (f" (`{_md(r.get('error', '')[:120])}`)" if r.get("error") else "")
            for c, r in sorted(src.rows.items())
            if r["state"] != "ok"
        ]
        same: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for c, r in sorted(src.rows.items()):
            if r["state"] == "ok":
                same[(*c[:3], r["sha256"])].append(c[3])
        groups = [
            f"{k[0]}/{k[1]}/{k[2]}: {' = '.join(v)}" for k, v in sorted(same.items()) if len(v) > 1
        ]
        lines.append(f"- {_link(sha)} (scanpy {version}):")
        if notes:
            lines.append(f"  not one result: {'; '.join(notes)}.")
        if groups:
            lines.append(f"  identical bits (one solver runs for the others): {'; '.join(groups)}.")
    return [*lines, ""]


def run_section(run: list[dict[str, Any]], by_commit: dict[str, Source]) -> list[str]:
    """One history: its range, cost, change points (table and details), skipped commits."""
    head = run[0]
    found = [r for r in run[1:] if r["kind"] == "change"]
    skipped = [r for r in run[1:] if r["kind"] == "skipped"]
    plan = head["plan"]
    status = head.get("status", "complete")
    first, last = head["first"], head["last"]
    lines = [
        f"## {first['sha'][:9]}..{last['sha'][:9]} ({head['spec']})"
        + (f" - {status.upper()}" if status != "complete" else ""),
        "",
        f"From {_link(first['sha'])} ({first['date'][:10]}, {_md(first['subject'])}) to "
        f"{_link(last['sha'])} ({last['date'][:10]}, {_md(last['subject'])}): "
        f"{head['commits']} first-parent commits, {head['units']} distinct sources (commits "
        f"that build identical code count once). Python {head['python']}; configurations: "
        f"{', '.join(plan['datasets'])} x {', '.join(plan['layouts'])} x "
        f"{', '.join(plan['dtypes'])} x {', '.join(plan['solvers'])} "
        f"({len(plan['datasets']) * len(plan['layouts']) * len(plan['dtypes']) * len(plan['solvers'])}), "
        f"{plan['threads']} BLAS thread, {plan['samples']} timed calls each"
        + (
            f"; runtime changes of {plan['runtime_factor']:g}x or more by asv's test."
            if plan.get("runtime_factor")
            else "; bits only."
        ),
        "",
    ]
    if status != "complete":
        lines += [
            f"**Partial**: this history has not finished ({head['evaluated']} of "
            f"{head['units']} sources evaluated so far). The change points below are those "
            "isolated so far; `make history` (or the command under Reproduce) resumes it.",
            "",
        ]
    lines += _cost(head, by_commit)
    if found:
        lines += [
            "| # | commit | date | PR | title | configurations changed | kind | largest change |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i, c in enumerate(found, 1):
            commit = c["commit"]
            where = "" if c["exact"] else f" (one of {len(c['candidates'])})"
            lines.append(
                f"| {i} | {_link(commit['sha'])}{where} | {commit['date'][:10]} | {_pr(commit)} | "
                f"{_md(commit['subject'])} | {len(c['configs'])} | "
                f"{_worst([k for x in c['configs'] for k in _kinds(x)])} | "
                f"{_size(c['configs'])} |"
            )
        lines += ["", "Per change point, each configuration that changed:", ""]
        for i, c in enumerate(found, 1):
            lines.append(f"{i}. {_link(c['commit']['sha'])} {_md(c['commit']['subject'])}:")
            by_kind: dict[str, list[str]] = defaultdict(list)
            for x in c["configs"]:
                by_kind[change_text(x, markdown=True)].append(_cfg(x))
            for kind, cfgs in sorted(by_kind.items()):
                lines.append(f"   - {kind}: {', '.join(sorted(cfgs))}")
        lines.append("")
    else:
        lines += [
            "No change point isolated yet."
            if status != "complete"
            else "No change point: PCA's outputs (and runtimes) agree at both ends of the range.",
            "",
        ]
    if skipped:
        lines += ["Commits that could not be measured (skipped, like `git bisect skip`):", ""]
        for s in skipped:
            lines.append(
                f"- {_link(s['commit']['sha'])} {_md(s['commit']['subject'])}: {s['status']}: "
                f"`{_md(s['reason'][:300])}`"
            )
        lines.append("")
    return lines


def _cost(head: dict[str, Any], by_commit: dict[str, Source]) -> list[str]:
    probed = head.get("probed", [])
    builds = [p["build"]["seconds"] for p in probed if p.get("build", {}).get("built")]
    probes = [p["probe_wall"] for p in probed if p.get("probe_wall")]
    failed = sum(1 for p in probed if p["status"] != "ok")
    # The checks' own time, summed over every configuration row the sources hold (a source
    # probed twice, to add a dataset, holds both probes' rows).
    checks = sum(
        float(r.get("wall") or 0.0)
        for p in probed
        if (src := by_commit.get(p["commit"])) is not None
        for r in src.rows.values()
    )
    first_builds = sum(p.get("build", {}).get("seconds", 0.0) for p in probed)
    text = f"Cost: {len(probed)} of {head['units']} sources evaluated ({failed} unusable)"
    if builds:
        text += (
            f"; {len(builds)} built (median {statistics.median(builds):.0f} s to build and install)"
        )
    if probes:
        text += f"; the last probe of a commit took a median {statistics.median(probes):.0f} s"
    text += (
        f"; target (k+1)*log2(N)+k = {head['bound']:.1f} evaluations. First builds and installs "
        f"took {_seconds(first_builds)}, the PCA checks {_seconds(checks)} (nice 10, beside the "
        f"study and other jobs on 2 cores); the last run, from stored results where it could, "
        f"{_seconds(head['wall'])}."
    )
    return [text, ""]


def writeup(root: Path) -> str:
    """The Markdown write-up of every history stored under ``root`` (results/history)."""
    envs = sorted(p for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
    sections: list[str] = []
    for folder in envs:
        store = Store(folder.parent, folder.name)
        env = store.load_env()
        versions = next((s.probe["versions"] for s in store.sources() if s.probe), None)
        sections += [f"# Environment `{folder.name}`", "", _env_line(env, versions), ""]
        by_commit = {s.commit: s for s in store.sources()}
        for run in store.runs():
            sections += run_section(run, by_commit) + ends_section(run, by_commit)
    if not sections:
        raise HarnessError(f"{root}: no stored history (run `python -m harness history` first)")
    sections += _reproduce(root)
    intro = [
        "# PCA's numerical history in scanpy's own commits",
        "",
        "Generated by `python -m harness history-writeup` from the files beside it (every number "
        "comes from them). Each history finds every first-parent commit of a range where PCA's "
        "output changes, per configuration, by recursive bisection of the segments whose ends "
        "differ; each change is classified by the calibrated verdicts of "
        "`harness.analysis.rounding` (variance ratio only / sign only / within rounding / "
        "undetermined / beyond rounding) with its size (largest relative change per output, signs "
        "aligned; X_pca over 500 evenly spaced cells). Runtime changes need asv compare's test and the "
        "factor. " + REVERT_NOTE.removeprefix("note: ").capitalize() + ".",
        "",
    ]
    return "\n".join(intro + sections) + "\n"


def command_of(head: dict[str, Any], root: Path) -> str:
    """The command that ran (and resumes) a history, from its record."""
    plan = head["plan"]
    args = [f"python -m harness history $SCANPY_REPO {head['spec']}"]
    if head.get("python"):
        args.append(f"--python {head['python']}")
    args.append(f"--datasets {','.join(plan['datasets'])}")
    args.append(f"--runtime-factor {plan.get('runtime_factor') or 0:g}")
    args.append(f"--results {root}")
    return " ".join(args)


def _reproduce(root: Path) -> list[str]:
    lines = ["## Reproduce", "", "Each history above, resumable (stored results are reused):", ""]
    lines.append("```sh")
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for run in Store(folder.parent, folder.name).runs():
            lines.append(command_of(run[0], root))
    lines += [f"python -m harness history-writeup {root} --out {root}/README.md", "```", ""]
    return lines


def _env_line(env: dict[str, Any], versions: dict[str, Any] | None) -> str:
    text = f"asv environment `{env.get('env_name', '?')}`"
    if versions:
        libs = ", ".join(
            f"{b.get('internal_api')} {b.get('version') or ''} {b.get('architecture') or ''}".strip()
            for b in versions.get("blas", [])
        )
        text += (
            f": Python {versions.get('python')}, numpy {versions.get('numpy')}, scipy "
            f"{versions.get('scipy')}, scikit-learn {versions.get('scikit-learn')}, anndata "
            f"{versions.get('anndata')}; BLAS {libs}; scanpy built from each commit."
        )
    return text


def cli_writeup(args: argparse.Namespace) -> int:
    text = writeup(Path(args.results))
    if args.out:
        io.write_text(args.out, text)
    else:
        print(text, end="")
    return 0
