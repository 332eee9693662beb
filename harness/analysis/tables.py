"""Stability tables per environment: ``python -m harness table RESULTS``.

One table per environment (machine x asv environment, at its newest commit unless told
otherwise), one row per configuration (dataset, layout, dtype, svd_solver), with:

- median runtime at 1 thread and at all cores (``pca.PCA.time_pca``), peak memory
  (``pca.PCA.peakmem_pca``, the larger over thread counts);
- one deviation per stability check (repeat, process, threads, seed, layout, dtype, accuracy):
  the value of ``track_<check>``, the worst sign-aligned relative deviation of X_pca
  (0 when bitwise identical), with that check's verdict from the sidecar record;
- significant digits and kNN Jaccard: the worst over the verdict checks' records;
- a verdict over the verdict checks (by default repeat, process and threads: "does the same call
  give the same numbers again, here"): the worst of

  ``bitwise``                    every compared output has identical bits (from the record);
  ``within tolerance``           the deviation is at most ``--tolerance`` (default
                                 :data:`DEFAULT_TOLERANCE` = 1e-6, relative to each component's
                                 largest |value|; about 8 float32 ulps);
  ``explained by the spectrum``  larger, but every component moved no more than the Davis-Kahan
                                 bound of rounding allows (record: ``n_unexplained == 0``);
  ``unclassified``               larger, and no record says whether the spectrum explains it;
  ``unstable``                   larger than rounding explains for at least one component.

A results folder without these benchmarks (another project's suite) gets a plain table per
environment instead: benchmark, parameters, value, status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.commands import load, output
from harness.errors import HarnessError
from harness.render import formats as render
from harness.results.reader import codes_of, combine, run_ids

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from harness.results.reader import Loaded

#: Default of ``--tolerance``: relative deviation still "within tolerance".
DEFAULT_TOLERANCE = 1e-6
CHECKS = ("repeat", "process", "threads", "seed", "layout", "dtype", "accuracy")
#: Checks the verdict is taken over (reproducibility of the same call in the same environment).
VERDICT_CHECKS = ("repeat", "process", "threads")
#: Verdicts from best to worst; "skipped"/"failed" describe a check that produced no number.
VERDICTS = ("bitwise", "within tolerance", "explained by the spectrum", "unclassified", "unstable")
KEYS = ("dataset", "layout", "dtype", "svd_solver")
#: Checks that repeat the very same call: any deviation beyond tolerance is "unstable".
IDENTICAL_CALLS = ("repeat", "process")
RUNTIME = "time_pca"
PEAKMEM = "peakmem_pca"
_CSS = {
    "bitwise": "v-bitwise",
    "within tolerance": "v-tol",
    "explained by the spectrum": "v-spectrum",
    "unclassified": "v-unclassified",
    "unstable": "v-unstable",
}
_MARK = {"explained by the spectrum": " ~", "unclassified": " ?", "unstable": " !"}


# --- codes: fast grouping of millions of rows ----------------------------------------------------


def select_runs(
    runs: pd.DataFrame,
    *,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> np.ndarray:
    """Boolean mask over runs: the newest commit of each (machine, environment) unless told otherwise."""
    import numpy as np

    keep = np.ones(len(runs), dtype=bool)
    if machine:
        keep &= (runs["machine"] == machine).to_numpy()
    if commit:
        keep &= runs["commit"].str.startswith(commit).to_numpy()
    if commit or all_commits or runs.empty:
        return keep
    order = runs.assign(_keep=keep, _i=np.arange(len(runs)))[keep]
    order = order.sort_values(
        ["machine", "env_name", "date", "commit"], kind="stable", na_position="first"
    )
    newest = order.groupby(["machine", "env_name"], sort=False)["_i"].last()
    out = np.zeros(len(runs), dtype=bool)
    out[newest.to_numpy()] = True
    return out


# --- verdicts -------------------------------------------------------------------------------------


def verdict(
    value: float | None,
    *,
    bitwise: bool | None = None,
    n_unexplained: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    check: str | None = None,
) -> str | None:
    """The verdict of one check from its deviation and (when there is one) its record."""
    if bitwise:
        return "bitwise"
    if render.is_missing(value):
        return None
    if value <= tolerance:
        return "within tolerance"
    if check in IDENTICAL_CALLS:
        return "unstable"
    if render.is_missing(n_unexplained):
        return "unclassified"
    return "explained by the spectrum" if int(n_unexplained) == 0 else "unstable"


def worst(verdicts: Sequence[str | None]) -> str | None:
    """The worst verdict among ``verdicts`` (None when none is a verdict)."""
    ranked = [VERDICTS.index(v) for v in verdicts if v in VERDICTS]
    return VERDICTS[max(ranked)] if ranked else None


# --- the stability table --------------------------------------------------------------------------


def _kinds(categories: pd.Index) -> np.ndarray:
    """Per benchmark name: 0 other, 1 runtime, 2 peak memory, 3 + i the i-th check."""
    import numpy as np

    out = np.zeros(len(categories) + 1, dtype=np.int64)  # the last entry: missing (code -1)
    for i, name in enumerate(categories):
        last = str(name).rsplit(".", 1)[-1]
        if last == RUNTIME:
            out[i] = 1
        elif last == PEAKMEM:
            out[i] = 2
        elif last.startswith("track_") and last[6:] in CHECKS:
            out[i] = 3 + CHECKS.index(last[6:])
    return out


def stability_table(
    frame: pd.DataFrame,
    records: pd.DataFrame | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    verdict_checks: Sequence[str] = VERDICT_CHECKS,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> pd.DataFrame:
    """The stability table of every selected environment, one row per configuration.

    Columns: machine, commit, env_name, environment (the readable label), dataset, layout, dtype,
    solver, all_cores (thread count of the all-cores runtime), time_1_thread_s, time_all_cores_s,
    peakmem_bytes, then per check ``dev_<check>`` (deviation) and ``v_<check>`` (its verdict, or
    "skipped"/"failed"), sigdigits, knn_jaccard, verdict. Empty (same columns) when the folder
    holds none of these benchmarks.
    """
    import numpy as np
    import pandas as pd

    columns = table_columns()
    if frame.empty or not set(KEYS) <= set(frame.columns):
        return pd.DataFrame(columns=columns)
    ids, runs = run_ids(frame)
    chosen = select_runs(runs, commit=commit, machine=machine, all_commits=all_commits)
    bench_codes, bench_cats = codes_of(frame["benchmark"])
    kind = _kinds(bench_cats)[bench_codes]
    mask = (kind > 0) & chosen[ids]
    rows = np.flatnonzero(mask)
    if not len(rows):
        return pd.DataFrame(columns=columns)
    kind, rid = kind[rows], ids[rows]
    key_codes = []
    key_values = []
    for k in KEYS:
        c, v = codes_of(frame[k])
        key_codes.append(c[rows])
        key_values.append(v)
    key = combine([rid, *key_codes])
    uid, ukeys = pd.factorize(key)
    n = len(ukeys)
    first = np.full(n, len(rows), dtype=np.int64)
    np.minimum.at(first, uid, np.arange(len(rows), dtype=np.int64))

    values = frame["value"].to_numpy(dtype=float)[rows]
    status = (
        np.asarray(codes_of(frame["status"])[0])[rows]
        if isinstance(frame["status"].dtype, pd.CategoricalDtype)
        else _status_codes(frame["status"].to_numpy()[rows])
    )
    status_names = (
        list(frame["status"].cat.categories)
        if isinstance(frame["status"].dtype, pd.CategoricalDtype)
        else ["ok", "skipped", "failed"]
    )
    ok = status == status_names.index("ok") if "ok" in status_names else np.zeros(len(rows), bool)
    threads = _threads(frame, rows)
    run_max = np.full(len(runs), -1, dtype=np.int64)
    is_time = kind == 1
    np.maximum.at(run_max, rid[is_time], threads[is_time])

    def place(sel: np.ndarray, reduce: str | None = None) -> np.ndarray:
        out = np.full(n, np.nan)
        sel = sel & ok
        if reduce == "max":
            np.fmax.at(out, uid[sel], values[sel])
        else:
            out[uid[sel]] = values[sel]
        return out

    all_cores = run_max[rid[first]]
    status_text = np.asarray([*status_names, None], dtype=object)

    def state(sel: np.ndarray) -> np.ndarray:
        """Per table row: the status of the selected asv rows (the best one when several)."""
        st = np.full(n, len(status_names), dtype=np.int64)
        np.minimum.at(st, uid[sel], np.where(status[sel] < 0, len(status_names), status[sel]))
        return status_text[st]

    out: dict[str, Any] = {}
    out["run"] = rid[first]
    for k in ("machine", "commit", "env_name", "label"):
        out[k if k != "label" else "environment"] = runs[k].to_numpy()[rid[first]]
    for k, c, v in zip(KEYS, key_codes, key_values, strict=True):
        out["solver" if k == "svd_solver" else k] = _take(v, c[first])
    # A run timed at 1 thread only (the study profile) has no all-cores column, not a copy.
    out["all_cores"] = np.where(all_cores > 1, all_cores, np.nan)
    multi = (threads == run_max[rid]) & (run_max[rid] > 1)
    runtime = {
        "time_1_thread": (is_time & (threads == 1), "_s", None),
        "time_all_cores": (is_time & (multi | (threads < 0)), "_s", None),
        "peakmem": (kind == 2, "_bytes", "max"),
    }
    for name, (sel, suffix, reduce) in runtime.items():
        out[name + suffix] = place(sel, reduce)
        out["s_" + name] = state(sel)

    row_keys = list(
        zip(
            out["run"].tolist(),
            *(out[k].tolist() for k in ("dataset", "layout", "dtype", "solver")),
            strict=True,
        )
    )
    rec = _record_arrays(records, runs, row_keys) if records is not None and len(records) else {}
    skipped_code = status_names.index("skipped") if "skipped" in status_names else -9
    failed_code = status_names.index("failed") if "failed" in status_names else -9
    ranks = []
    for i, check in enumerate(CHECKS):
        sel = kind == 3 + i
        dev = place(sel)
        st = np.full(n, -1, dtype=np.int64)
        st[uid[sel]] = status[sel]
        r = rec.get(check, {})
        if "value" in r:  # a record whose asv row is missing or has no value
            dev = np.where(np.isnan(dev) & ~np.isnan(r["value"]), r["value"], dev)
        # Identical calls that differ beyond tolerance are non-deterministic, whatever the
        # spectrum says of the size: it explains how far a perturbation moves PCA, not why any
        # perturbation exists.
        unexplained = np.ones(n) if check in IDENTICAL_CALLS else r.get("n_unexplained")
        v = verdicts(
            dev, st == skipped_code, st == failed_code, r.get("bitwise"), unexplained, tolerance
        )
        out[f"dev_{check}"] = dev
        out[f"v_{check}"] = v
        if check in verdict_checks:
            ranks.append(_rank(v))
    vc = [c for c in verdict_checks if c in CHECKS]
    out["sigdigits"] = _nanmin([rec.get(c, {}).get("sigdigits") for c in vc], n)
    out["knn_jaccard"] = _nanmin([rec.get(c, {}).get("knn_jaccard") for c in vc], n)
    best = np.max(np.vstack(ranks), axis=0) if ranks else np.full(n, -1)
    names = np.asarray([*VERDICTS, None], dtype=object)
    out["verdict"] = names[np.where(best < 0, len(VERDICTS), best)]
    table = pd.DataFrame(out)
    order = ["environment", "machine", "commit", "env_name", "dataset", "layout", "dtype", "solver"]
    table = table.sort_values(order, kind="stable", key=_sort_key).reset_index(drop=True)[columns]
    table.attrs["tolerance"] = tolerance
    table.attrs["verdict_checks"] = list(vc)
    return table


def _sort_key(col: pd.Series) -> pd.Series:
    """Sort mixed or missing values as text, so any parameter values order deterministically."""
    return col.map(lambda v: "" if render.is_missing(v) else str(v))


def verdicts(
    dev: np.ndarray,
    skipped: np.ndarray,
    failed: np.ndarray,
    bitwise: np.ndarray | None,
    n_unexplained: np.ndarray | None,
    tolerance: float,
) -> np.ndarray:
    """Vectorized :func:`verdict` (plus "skipped"/"failed"), an object array of strings or None."""
    import numpy as np

    n = len(dev)
    bitwise = np.full(n, np.nan) if bitwise is None else bitwise
    n_unexplained = np.full(n, np.nan) if n_unexplained is None else n_unexplained
    missing = np.isnan(dev)
    with np.errstate(invalid="ignore"):
        conds = [
            bitwise == 1,
            failed,
            missing & skipped,
            missing,
            dev <= tolerance,
            np.isnan(n_unexplained),
            n_unexplained == 0,
        ]
    choices = [
        "bitwise",
        "failed",
        "skipped",
        None,
        "within tolerance",
        "unclassified",
        "explained by the spectrum",
    ]
    out = np.empty(n, dtype=object)
    out[:] = "unstable"
    done = np.zeros(n, dtype=bool)
    for cond, choice in zip(conds, choices, strict=True):
        sel = cond & ~done
        out[sel] = choice
        done |= sel
    return out


def _rank(v: np.ndarray) -> np.ndarray:
    import numpy as np

    lookup = {name: i for i, name in enumerate(VERDICTS)}
    return np.fromiter((lookup.get(x, -1) for x in v), dtype=np.int64, count=len(v))


def table_columns() -> list[str]:
    cols = [
        "run",
        "machine",
        "commit",
        "env_name",
        "environment",
        "dataset",
        "layout",
        "dtype",
        "solver",
        "all_cores",
        "time_1_thread_s",
        "s_time_1_thread",
        "time_all_cores_s",
        "s_time_all_cores",
        "peakmem_bytes",
        "s_peakmem",
    ]
    for c in CHECKS:
        cols += [f"dev_{c}", f"v_{c}"]
    return [*cols, "sigdigits", "knn_jaccard", "verdict"]


def _status_codes(values: np.ndarray) -> np.ndarray:
    import numpy as np

    lookup = {"ok": 0, "skipped": 1, "failed": 2}
    return np.asarray([lookup.get(str(v), -1) for v in values], dtype=np.int64)


def _threads(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if "threads" not in frame.columns:
        return np.full(len(rows), -1, dtype=np.int64)
    col = pd.to_numeric(frame["threads"].take(rows), errors="coerce")
    return col.fillna(-1).to_numpy(dtype=np.int64)


def _take(values: pd.Index, codes: np.ndarray) -> np.ndarray:
    import numpy as np

    arr = np.empty(len(values) + 1, dtype=object)
    arr[: len(values)] = list(values)
    arr[len(values)] = None
    return arr[np.where(codes < 0, len(values), codes)]


def _nanmin(arrays: list[np.ndarray | None], n: int) -> np.ndarray:
    import numpy as np

    present = [a for a in arrays if a is not None]
    if not present:
        return np.full(n, np.nan)
    stack = np.vstack(present)
    with np.errstate(all="ignore"):
        out = np.where(
            np.isnan(stack).all(axis=0),
            np.nan,
            np.nanmin(np.where(np.isnan(stack), np.inf, stack), axis=0),
        )
    return out


def _record_arrays(
    records: pd.DataFrame, runs: pd.DataFrame, row_keys: list[tuple[Any, ...]]
) -> dict[str, dict[str, np.ndarray]]:
    """Per check, the records' bitwise, n_unexplained, sigdigits, knn_jaccard and value, by table row."""
    import numpy as np
    import pandas as pd

    n = len(row_keys)
    index = {k: j for j, k in enumerate(row_keys)}
    run_index = {
        (m, c, e): i
        for i, (m, c, e) in enumerate(
            zip(runs["machine"], runs["commit"], runs["env_name"], strict=True)
        )
    }
    rec = records[records["check"].isin(CHECKS)]
    out: dict[str, dict[str, np.ndarray]] = {}
    if rec.empty:
        return out
    pos = np.asarray(
        [
            index.get((run_index.get((m, c, e), -1), d, lay, t, s), -1)
            for m, c, e, d, lay, t, s in zip(
                *(rec[k] for k in ("machine", "commit", "env_name", *KEYS)), strict=True
            )
        ],
        dtype=np.int64,
    )
    checks = rec["check"].to_numpy()
    fields = {
        f: pd.to_numeric(rec[f].astype(object), errors="coerce").to_numpy(dtype=float)
        for f in ("bitwise", "n_unexplained", "sigdigits", "knn_jaccard", "value")
    }
    for check in CHECKS:
        sel = (pos >= 0) & (checks == check)
        if not sel.any():
            continue
        d = {}
        for f, vals in fields.items():
            arr = np.full(n, np.nan)
            arr[pos[sel]] = vals[sel]
            d[f] = arr
        out[check] = d
    return out


# --- the generic table (another project's suite) --------------------------------------------------


def generic_table(
    frame: pd.DataFrame,
    *,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> pd.DataFrame:
    """Per selected run: benchmark, parameters (as text), value, unit, status, reason."""
    import numpy as np
    import pandas as pd

    cols = [
        "run",
        "machine",
        "commit",
        "env_name",
        "environment",
        "benchmark",
        "params",
        "value",
        "unit",
        "status",
        "reason",
    ]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    ids, runs = run_ids(frame)
    chosen = select_runs(runs, commit=commit, machine=machine, all_commits=all_commits)
    rows = np.flatnonzero(chosen[ids])
    sub = frame.take(rows)
    params = [p for p in frame.attrs.get("params", []) if p in frame.columns]
    text = []
    for rec in sub[params].itertuples(index=False, name=None):
        text.append(
            ", ".join(
                f"{p}={v!r}" for p, v in zip(params, rec, strict=True) if not render.is_missing(v)
            )
        )
    out = pd.DataFrame(
        {
            "run": ids[rows],
            "machine": runs["machine"].to_numpy()[ids[rows]],
            "commit": runs["commit"].to_numpy()[ids[rows]],
            "env_name": runs["env_name"].to_numpy()[ids[rows]],
            "environment": runs["label"].to_numpy()[ids[rows]],
            "benchmark": sub["benchmark"].astype(str).to_numpy(),
            "params": text,
            "value": sub["value"].to_numpy(dtype=float),
            "unit": sub["unit"].astype(object).to_numpy(),
            "status": sub["status"].astype(str).to_numpy(),
            "reason": sub["reason"].to_numpy(),
        }
    )
    return out.sort_values(
        ["environment", "machine", "commit", "env_name", "benchmark", "params"], kind="stable"
    ).reset_index(drop=True)


# --- rendering ------------------------------------------------------------------------------------

CHECK_HEADERS = {c: f"Δ {c}" for c in CHECKS}


def legend(tolerance: float, verdict_checks: Sequence[str]) -> str:
    return (
        "Δ: worst sign-aligned relative deviation of X_pca under that change (0 = equal values, "
        "bitwise = equal bits; ~ explained by the spectrum, ? no record to classify it, "
        f"! unstable; under {' and '.join(IDENTICAL_CALLS)}, identical calls, any deviation over "
        f"the tolerance is unstable). Verdict over {', '.join(verdict_checks)}; tolerance {tolerance:g}."
    )


Row = dict[str, Any]


def _groups(table: pd.DataFrame) -> list[tuple[Row, list[Row]]]:
    """Rows (plain dicts) of each run, in table order (sorted by environment, machine, commit)."""
    out: list[tuple[Row, list[Row]]] = []
    if table.empty:
        return out
    keys = ("environment", "machine", "commit", "env_name")
    current: tuple[Any, ...] | None = None
    for row in render.records(table):
        key = tuple(row[k] for k in keys)
        if key != current:
            meta = {k: row[k] for k in keys}
            meta["all_cores"] = row.get("all_cores")
            out.append((meta, []))
            current = key
        out[-1][1].append(row)
    return out


def _check_cell(dev: Any, v: Any) -> str:
    if v in ("bitwise", "skipped", "failed"):
        return str(v)
    if render.is_missing(dev):
        return ""
    return render.fmt_float(dev) + _MARK.get(v, "")


_STATE_COLUMNS = ("s_time_1_thread", "s_time_all_cores", "s_peakmem", *(f"v_{c}" for c in CHECKS))


def all_skipped(row: Row) -> bool:
    """Whether every benchmark that ran on this configuration skipped it (not supported here)."""
    states = [row[c] for c in _STATE_COLUMNS if row.get(c) is not None]
    return bool(states) and all(s == "skipped" for s in states)


def _runtime_cell(value: Any, state: Any, fmt: Any) -> str:
    if not render.is_missing(value):
        return fmt(value)
    return state if state in ("failed", "skipped") else ""


Display = tuple[list[str], list[list[str]], list[list[str | None]], list[bool]]


def display(rows_in: list[Row], all_cores: Any = None) -> Display:
    """Headers, formatted rows, CSS classes and numeric flags of one environment's table."""
    n = (
        "all cores"
        if render.is_missing(all_cores)
        else f"{int(all_cores)} thread" + ("s" if int(all_cores) != 1 else "")
    )
    headers = [
        "dataset",
        "layout",
        "dtype",
        "solver",
        "time 1 thread",
        f"time {n}",
        "peak memory",
        *CHECK_HEADERS.values(),
        "sig. digits",
        "kNN Jaccard",
        "verdict",
    ]
    numeric = [False] * 4 + [True] * (3 + len(CHECKS) + 2) + [False]
    rows, classes = [], []
    for r in rows_in:
        cells = [
            r["dataset"],
            r["layout"],
            r["dtype"],
            r["solver"],
            _runtime_cell(r["time_1_thread_s"], r["s_time_1_thread"], render.fmt_seconds),
            _runtime_cell(r["time_all_cores_s"], r["s_time_all_cores"], render.fmt_seconds),
            _runtime_cell(r["peakmem_bytes"], r["s_peakmem"], render.fmt_bytes),
        ]
        cls: list[str | None] = [None] * 7
        for c in CHECKS:
            cells.append(_check_cell(r[f"dev_{c}"], r[f"v_{c}"]))
            cls.append(_CSS.get(r[f"v_{c}"]))
        cells += [
            render.fmt_fixed(r["sigdigits"], 1),
            render.fmt_fixed(r["knn_jaccard"], 3),
            r["verdict"] or "",
        ]
        cls += [None, None, _CSS.get(r["verdict"])]
        rows.append(["" if c is None else str(c) for c in cells])
        classes.append(cls)
    return headers, rows, classes, numeric


def _visible(rows: list[Row], generic: bool) -> tuple[list[Row], str]:
    """The rows shown in md/html, and a note on the configurations left out."""
    if generic:
        return rows, ""
    hidden = [r for r in rows if all_skipped(r)]
    if not hidden:
        return rows, ""
    names = sorted({f"{r['layout']}/{r['solver']}" for r in hidden})
    note = (
        f"{len(hidden)} configuration(s) skipped by every benchmark (not run here): "
        + ", ".join(names)
        + "."
    )
    return [r for r in rows if not all_skipped(r)], note


def display_generic(rows_in: list[Row]) -> Display:
    headers = ["benchmark", "parameters", "value", "status"]
    rows = [
        [
            r["benchmark"],
            r["params"],
            render.fmt_value(r["value"], r["unit"]),
            r["status"] + (f" ({r['reason']})" if isinstance(r["reason"], str) else ""),
        ]
        for r in rows_in
    ]
    return headers, rows, [[None] * 4 for _ in rows], [False, False, True, False]


def _meta_line(meta: dict[str, Any], code: bool = True) -> str:
    q = (lambda s: f"`{s}`") if code else str
    return f"machine {q(meta['machine'])} · commit {q(str(meta['commit'])[:8])} · asv environment {q(meta['env_name'])}"


def to_markdown(
    table: pd.DataFrame, *, generic: bool = False, summary: str = "", level: int = 2
) -> str:
    parts = []
    if table.empty:
        parts.append("No results to tabulate.\n\n")
    for meta, sub in _groups(table):
        sub, note = _visible(sub, generic)
        headers, rows, _, numeric = (
            display_generic(sub) if generic else display(sub, meta.get("all_cores"))
        )
        parts.append(f"{'#' * level} {meta['environment']}\n\n{_meta_line(meta)}\n\n")
        parts.append(render.md_table(headers, rows, ["r" if x else "l" for x in numeric]))
        parts.append(f"\n{note}\n\n" if note else "\n")
    if not generic and not table.empty:
        parts.append(
            legend(
                table.attrs.get("tolerance", DEFAULT_TOLERANCE),
                table.attrs.get("verdict_checks", VERDICT_CHECKS),
            )
            + "\n\n"
        )
    if summary:
        parts.append(summary + "\n")
    return "".join(parts)


def to_html_body(table: pd.DataFrame, *, generic: bool = False, level: int = 2) -> str:
    parts = []
    if table.empty:
        parts.append("<p>No results to tabulate.</p>\n")
    for meta, sub in _groups(table):
        sub, note = _visible(sub, generic)
        headers, rows, classes, numeric = (
            display_generic(sub) if generic else display(sub, meta.get("all_cores"))
        )
        parts.append(f"<h{level}>{render.esc(meta['environment'])}</h{level}>\n")
        parts.append(f'<p class="meta">{render.esc(_meta_line(meta, code=False))}</p>\n')
        parts.append(
            render.html_table(
                headers, rows, numeric=numeric, classes=classes, table_class="stability"
            )
        )
        if note:
            parts.append(f'<p class="meta">{render.esc(note)}</p>\n')
    if not generic and not table.empty:
        parts.append(
            f"<p>{render.esc(legend(table.attrs.get('tolerance', DEFAULT_TOLERANCE), table.attrs.get('verdict_checks', VERDICT_CHECKS)))}</p>\n"
        )
    return "".join(parts)


def to_json(
    table: pd.DataFrame, *, generic: bool = False, summary: dict[str, Any] | None = None
) -> str:
    envs = []
    drop = {"run", "machine", "commit", "env_name", "environment"}
    for meta, sub in _groups(table):
        rows = [{k: v for k, v in r.items() if k not in drop} for r in sub]
        envs.append(
            {**{k: meta[k] for k in ("environment", "machine", "commit", "env_name")}, "rows": rows}
        )
    obj = {
        "kind": "generic" if generic else "stability",
        "environments": envs,
        "summary": summary or {},
    }
    if not generic:
        obj["tolerance"] = table.attrs.get("tolerance", DEFAULT_TOLERANCE)
        obj["verdict_checks"] = table.attrs.get("verdict_checks", list(VERDICT_CHECKS))
    return render.json_text(obj)


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
    from harness.study import missing

    without = without or []
    if fmt == "md":
        return to_markdown(table, generic=generic, summary=missing.to_markdown(without) + summary)
    if fmt == "csv":
        import pandas as pd

        frames = [table.drop(columns=["run"], errors="ignore"), pd.DataFrame(without)]
        frames = [f for f in frames if not f.empty]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return render.csv_text(frame)
    if fmt == "json":
        return to_json(
            table, generic=generic, summary={**(summary_obj or {}), "without_results": without}
        )
    if fmt == "html":
        body = "<h1>Stability tables</h1>\n" + to_html_body(table, generic=generic)
        body += missing.to_html(without)
        if summary:
            body += f"<p>{render.esc(summary)}</p>\n"
        return render.html_page("Stability tables", body)
    raise HarnessError(f"--format: unknown format {fmt!r}")


def summary_obj(loaded: Loaded) -> dict[str, Any]:
    return {
        "result_files": loaded.files,
        "rows": len(loaded.frame),
        "problems": len(loaded.problems),
    }


def summary_line(loaded: Loaded) -> str:
    s = summary_obj(loaded)
    text = f"Read {s['result_files']} result file(s), {s['rows']} row(s)"
    if s["problems"]:
        text += f"; {s['problems']} file(s) or part(s) skipped or left empty (see the warnings)"
    return text + "."


def parse_checks(text: str | None) -> tuple[str, ...]:
    if not text:
        return VERDICT_CHECKS
    checks = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise HarnessError(
            f"--verdict-checks: unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}"
        )
    return checks


def build(loaded: Loaded, args: argparse.Namespace) -> tuple[pd.DataFrame, bool]:
    """The stability table, or the generic one when the folder has no PCA benchmarks."""
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if tolerance < 0:
        raise HarnessError("--tolerance: must be >= 0")
    select = {
        "commit": args.commit,
        "machine": args.machine,
        "all_commits": getattr(args, "all_commits", False),
    }
    table = stability_table(
        loaded.frame,
        loaded.records,
        tolerance=tolerance,
        verdict_checks=parse_checks(getattr(args, "verdict_checks", None)),
        **select,
    )
    if len(table):
        return table, False
    return generic_table(loaded.frame, **select), True


def cli_table(args: argparse.Namespace) -> int:
    from harness.study import missing

    without = missing.load(args.results, machine=args.machine, commit=args.commit)
    try:
        loaded = load(args.results, "table")
    except HarnessError:
        if not without:
            raise
        import pandas as pd

        output(render_table(pd.DataFrame(), args.format, without=without), args.out)
        return 0
    table, generic = build(loaded, args)
    text = render_table(
        table,
        args.format,
        generic=generic,
        summary=summary_line(loaded),
        summary_obj=summary_obj(loaded),
        without=without,
    )
    output(text, args.out)
    if args.format in ("csv", "json") or args.out:
        print(summary_line(loaded), file=sys.stderr)
    return 0
