"""``harness doctor --pipeline SCRIPT.py``: run a user's analysis twice and find what differs.

Each run is a new process (:mod:`harness.doctor.tracer`) that records every ``sc.pp.*`` and
``sc.tl.*`` call with fingerprints of its AnnData before and after. The report names the first
call whose input or output differs between the runs, and every call that changed the input of
``sc.pp.pca`` in place between two PCA calls on the same object within one run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.doctor.process import (
    DEFAULT_TIMEOUT,
    check_timeout,
    progress_bar,
    run_child,
    stop_on_sigterm,
)
from harness.errors import HarnessError
from harness.render.formats import fmt_float, fmt_seconds, md_table

RUNS = 2


@dataclass(frozen=True)
class Difference:
    """The first call at which the two runs disagree."""

    index: int
    function: str
    line: int
    file: str
    where: str
    keys: list[str]
    message: str


@dataclass(frozen=True)
class InPlaceChange:
    """A call that changed the PCA input in place between two PCA calls on one object."""

    runs: list[int]
    function: str
    file: str
    line: int
    keys: list[str]
    pca_before_line: int
    pca_after_line: int
    x_pca_change: float | None
    message: str


@dataclass(frozen=True)
class PipelineReport:
    """What ``--pipeline`` found: the run-to-run difference, in-place changes, the calls."""

    script: str
    reproducible: bool
    n_calls: list[int]
    difference: Difference | None
    in_place: list[InPlaceChange]
    calls: list[dict[str, Any]]
    fixes: list[str]
    pythonhashseed: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        """The report as Markdown."""
        return _markdown(self)


# --- running -----------------------------------------------------------------------------------


def run_pipeline(
    script: str | os.PathLike[str],
    *,
    progress: bool = True,
    debug: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> PipelineReport:
    """Run ``script`` twice in new processes and compare the recorded scanpy calls.

    ``debug`` prints the script's own traceback to stderr when it raises; each run may take
    ``timeout`` seconds, then it is stopped with every process it started.
    """
    started = time.perf_counter()
    path = Path(script)
    if not path.is_file():
        raise HarnessError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.suffix != ".py":
        raise HarnessError(f"{path}: not a Python script (.py)")
    timeout = check_timeout(timeout)
    records = []
    with (
        stop_on_sigterm(),
        tempfile.TemporaryDirectory(prefix="harness-pipeline-") as tmp,
        progress_bar(RUNS, "harness doctor --pipeline", "run", progress) as bar,
    ):
        for i in range(RUNS):
            bar.set_postfix_str(f"run {i + 1} of {RUNS}")
            records.append(_run_once(path, Path(tmp), i, timeout, debug))
            bar.update(1)
    return analyze(str(path), records, time.perf_counter() - started)


def _run_once(script: Path, tmp: Path, i: int, timeout: float, debug: bool) -> dict[str, Any]:
    """One run of ``script`` under the tracer; its record (HarnessError if it failed)."""
    out = tmp / f"run{i}.json"
    cmd = [sys.executable, "-m", "harness.doctor.tracer", str(script.resolve()), str(out)]
    # The script's own output is not part of the report: it goes to files, not pipes, so a
    # process the script leaves behind holding them open cannot keep doctor waiting.
    with open(tmp / f"run{i}.stdout", "w") as stdout, open(tmp / f"run{i}.stderr", "w+") as err:
        rc = run_child(cmd, what=str(script), timeout=timeout, stdout=stdout, stderr=err)
        err.seek(0)
        stderr = err.read()
    if rc != 0 or not out.exists():
        tail = [line for line in stderr.splitlines() if line.strip()][-1:] or ["no message"]
        raise HarnessError(f"{script}: the pipeline runner failed (exit {rc}): {tail[0]}")
    record = json.loads(out.read_text())
    err_info = record.get("error")
    if err_info:
        if debug and err_info.get("traceback"):
            sys.stderr.write(err_info["traceback"])
        at = f" at line {err_info['line']}" if err_info.get("line") else ""
        raise HarnessError(
            f"{script}: the script raised {err_info['type']}{at}: {err_info['message']}"
        )
    return record


# --- analysis ----------------------------------------------------------------------------------


def analyze(script: str, records: list[dict[str, Any]], seconds: float = 0.0) -> PipelineReport:
    """Compare the runs and look for in-place changes between PCA calls."""
    runs = [r["calls"] for r in records]
    difference = first_difference(runs[0], runs[1]) if len(runs) > 1 else None
    in_place = [c for i, calls in enumerate(runs) for c in in_place_changes(calls, i + 1)]
    in_place = _dedupe(in_place)
    return PipelineReport(
        script=script,
        reproducible=difference is None and not in_place,
        n_calls=[len(c) for c in runs],
        difference=difference,
        in_place=in_place,
        calls=[_call_row(c, runs) for c in runs[0]],
        fixes=_fixes(difference, in_place, records[0].get("pythonhashseed")),
        pythonhashseed=records[0].get("pythonhashseed"),
        seconds=seconds,
    )


def _where(call: dict[str, Any]) -> str:
    return f"{Path(call['file']).name}:{call['line']}"


def _changed(a: dict[str, str] | None, b: dict[str, str] | None) -> list[str]:
    a, b = a or {}, b or {}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def first_difference(run1: list[dict[str, Any]], run2: list[dict[str, Any]]) -> Difference | None:
    """The first call whose name, place, input or output differs between two runs."""
    for i, (a, b) in enumerate(zip(run1, run2, strict=False)):
        if (a["function"], a["line"]) != (b["function"], b["line"]):
            msg = f"run 1 called `sc.{a['function']}` at {_where(a)}, run 2 `sc.{b['function']}` at {_where(b)}: the script took another path"
            return Difference(i, a["function"], a["line"], a["file"], "call", [], msg)
        keys = _changed(a["before"], b["before"])
        if keys:
            msg = (
                f"the input of `sc.{a['function']}` at {_where(a)} differs between the runs ({', '.join(keys)}): "
                "something before it that is not a scanpy pp/tl call (loading, your own code) is not reproducible"
            )
            return Difference(i, a["function"], a["line"], a["file"], "input", keys, msg)
        keys = _changed(a["after"], b["after"]) + [
            f"returned {k}" for k in _changed(a["returned"], b["returned"])
        ]
        if keys:
            msg = f"`sc.{a['function']}` at {_where(a)} got the same input in both runs but its output differs ({', '.join(keys)})"
            return Difference(i, a["function"], a["line"], a["file"], "output", keys, msg)
    if len(run1) != len(run2):
        i = min(len(run1), len(run2))
        extra = (run1 if len(run1) > len(run2) else run2)[i]
        msg = f"run 1 made {len(run1)} scanpy calls, run 2 {len(run2)}; the first unmatched is `sc.{extra['function']}` at {_where(extra)}"
        return Difference(i, extra["function"], extra["line"], extra["file"], "call", [], msg)
    return None


def in_place_changes(calls: list[dict[str, Any]], run: int) -> list[InPlaceChange]:
    """Calls that changed what ``sc.pp.pca`` reads between two PCA calls on the same object."""
    out: list[InPlaceChange] = []
    last_pca: dict[int, dict[str, Any]] = {}
    for call in calls:
        if call["function"] != "pp.pca":
            continue
        prev = last_pca.get(call["object"])
        last_pca[call["object"]] = call
        if prev is None or not _same_setting(prev, call) or prev["pca_input"] == call["pca_input"]:
            continue
        out += _culprits(calls, prev, call, run)
    return out


def _culprits(
    calls: list[dict[str, Any]], prev: dict[str, Any], call: dict[str, Any], run: int
) -> list[InPlaceChange]:
    """The recorded calls between two PCA calls that changed the PCA input (or 'your code')."""
    keys = _changed(prev["pca_input"], call["pca_input"])
    moved = call.get("x_pca_change")
    effect = f"; X_pca moved by up to {fmt_float(moved, 3)}" if moved else ""
    between = [c for c in calls[prev["index"] + 1 : call["index"]] if c["object"] == call["object"]]
    out = []
    for c in between:
        changed = sorted(set(keys) & set(_changed(c["before"], c["after"])))
        if changed:
            msg = (
                f"`sc.{c['function']}` at {_where(c)} changed {', '.join(changed)} in place between "
                f"`sc.pp.pca` at line {prev['line']} and at line {call['line']}{effect}"
            )
            args = (c["function"], c["file"], c["line"], changed)
            out.append(InPlaceChange([run], *args, prev["line"], call["line"], moved, msg))
    if not out:
        msg = (
            f"{', '.join(keys)} changed between `sc.pp.pca` at {_where(prev)} and at "
            f"{_where(call)} outside scanpy's pp/tl functions (your own code assigned to it){effect}"
        )
        args = ("(your code)", call["file"], call["line"], keys)
        out.append(InPlaceChange([run], *args, prev["line"], call["line"], moved, msg))
    return out


def _same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two PCA calls read the same matrix and mask (a different layer is no in-place change)."""
    pick = ("layer", "mask_var")
    return {k: a["pca_params"].get(k) for k in pick} == {k: b["pca_params"].get(k) for k in pick}


def _dedupe(changes: list[InPlaceChange]) -> list[InPlaceChange]:
    """One entry per (function, place, PCA pair), listing the runs it happened in."""
    merged: dict[tuple[Any, ...], InPlaceChange] = {}
    for c in changes:
        key = (c.function, c.file, c.line, c.pca_before_line, c.pca_after_line)
        if key in merged:
            c = dataclasses.replace(merged[key], runs=merged[key].runs + c.runs)
        merged[key] = c
    return list(merged.values())


def _call_row(call: dict[str, Any], runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "index": call["index"],
        "function": call["function"],
        "file": call["file"],
        "line": call["line"],
        "object": call["object"],
        "changed": _changed(call["before"], call["after"]),
        "same_in_all_runs": all(
            len(r) > call["index"]
            and r[call["index"]]["after"] == call["after"]
            and r[call["index"]]["before"] == call["before"]
            for r in runs
        ),
    }


def _fixes(
    diff: Difference | None, in_place: list[InPlaceChange], hashseed: str | None
) -> list[str]:
    """Concrete advice for each finding."""
    out = [_in_place_fix(c) for c in in_place]
    if diff is not None and diff.where == "input":
        out.append(
            "Make the steps before that call deterministic: seed every random draw (numpy, "
            "random) and sort anything built from sets or dicts."
        )
    if diff is not None and diff.where == "output":
        out.append(
            f"Pass a fixed `random_state` to `sc.{diff.function}` and pin BLAS threads; then run "
            "`harness doctor` on its input."
        )
    if diff is not None and hashseed is None:
        out.append(
            "PYTHONHASHSEED is not set: set it (e.g. `PYTHONHASHSEED=0`) so set and dict order "
            "is the same in every run."
        )
    if not out:
        out.append("Nothing to fix: both runs gave identical data at every scanpy step.")
    return list(dict.fromkeys(out))


def _in_place_fix(c: InPlaceChange) -> str:
    lines = f"lines {c.pca_before_line} and {c.pca_after_line}"
    if c.function == "(your code)":
        return f"Work on a copy (`adata = adata.copy()`) before changing the data between the PCA calls at {lines}."
    return (
        f"`sc.{c.function}` at line {c.line} modifies the AnnData in place: call it on a copy "
        f"(`bdata = sc.{c.function}(adata, copy=True)`), or run it before the first PCA, so the "
        f"PCA calls at {lines} see the same data."
    )


# --- Markdown ----------------------------------------------------------------------------------


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _runs(runs: list[int]) -> str:
    return "both runs" if len(runs) == RUNS else f"run {runs[0]}"


IN_PLACE_HEADERS = (
    "function", "line", "changed", "between pp.pca at lines",
    "max abs. X_pca change (sign-aligned)", "runs",
)  # fmt: skip
CALL_HEADERS = ("#", "function", "line", "object", "changed", "same in both runs")


def _markdown(r: PipelineReport) -> str:
    lines = [f"# harness doctor --pipeline: `{r.script}`", "", _verdict(r)]
    lines += ["", "## Run-to-run difference", ""]
    none = f"None: the {RUNS} runs agree at every recorded step."
    lines.append(_sentence(r.difference.message) if r.difference else none)
    lines += ["", "## Data changed in place between two PCA calls", ""]
    lines.append(
        md_table(IN_PLACE_HEADERS, map(_in_place_row, r.in_place)) if r.in_place else "None.\n"
    )
    lines += [
        "## Recorded scanpy calls (run 1)",
        "",
        md_table(CALL_HEADERS, map(_call_md_row, r.calls)),
    ]
    lines += ["## Fixes", ""] + [f"{i}. {f}" for i, f in enumerate(r.fixes, 1)]
    hashseed = r.pythonhashseed or "not set"
    lines += [
        "",
        f"*{RUNS} runs in new processes; PYTHONHASHSEED {hashseed}; {fmt_seconds(r.seconds)}.*",
    ]
    return "\n".join(lines) + "\n"


def _verdict(r: PipelineReport) -> str:
    if r.reproducible:
        return (
            f"**Verdict: reproducible.** {RUNS} runs in new processes gave identical data at all "
            f"{r.n_calls[0]} scanpy steps, and no PCA input changed in place."
        )
    found = [r.difference.message] if r.difference else []
    found += [f"{c.message} ({_runs(c.runs)})" for c in r.in_place]
    return "**Verdict: NOT reproducible.** " + " ".join(map(_sentence, found))


def _in_place_row(c: InPlaceChange) -> list[str]:
    return [
        f"`{c.function}`",
        f"{Path(c.file).name}:{c.line}",
        ", ".join(c.keys),
        f"{c.pca_before_line} and {c.pca_after_line}",
        fmt_float(c.x_pca_change, 3) if c.x_pca_change is not None else "-",
        _runs(c.runs),
    ]


def _call_md_row(c: dict[str, Any]) -> list[Any]:
    return [
        c["index"],
        f"`{c['function']}`",
        f"{Path(c['file']).name}:{c['line']}",
        c["object"],
        ", ".join(c["changed"]) or "-",
        "yes" if c["same_in_all_runs"] else "no",
    ]
