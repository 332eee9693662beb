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
  give the same numbers again, here"): the worst, in :data:`harness.vocabulary.VERDICT_INFO`
  order, of each check's calibrated verdict (its record's judgement of every sample against the
  exact covariance of the input: bitwise, sign only, within rounding, explained, undetermined,
  beyond rounding; "unclassified" where the outputs differ and no record judged them).

A results folder without these benchmarks (another project's suite) gets a plain table per
environment instead: benchmark, parameters, value, status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import runs as runs_
from harness.errors import HarnessError
from harness.render.formats import is_missing
from harness.results.environments import Key
from harness.results.frame import codes_of, combine
from harness.results.runs import run_ids
from harness.vocabulary import (
    BEYOND,
    BITWISE,
    CHECKS,
    CONFIG_COLUMNS,
    CONFIG_KEYS,
    PEAKMEM,
    RUNTIME,
    UNCLASSIFIED,
    VERDICT_CHECKS,
    VERDICTS,
    env_number,
)

# --- selecting runs -------------------------------------------------------------------------------


def select_runs(
    runs: pd.DataFrame,
    *,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> np.ndarray:
    """Boolean mask over runs: the newest commit of each (machine, environment) unless told
    otherwise (:func:`harness.analysis.runs.newest`)."""
    keys = list(zip(runs["machine"], runs["commit"], runs["env_name"], strict=True))
    dates = dict(zip(keys, _dates(runs), strict=True))
    chosen = set(runs_.newest(keys, dates, commit=commit, machine=machine, all_commits=all_commits))
    return np.fromiter((k in chosen for k in keys), dtype=bool, count=len(keys))


def _dates(runs: pd.DataFrame) -> list[float]:
    if "date" not in runs:
        return [np.nan] * len(runs)
    return [np.nan if is_missing(d) else float(pd.Timestamp(d).value) for d in runs["date"]]


# --- verdicts -------------------------------------------------------------------------------------


def verdicts(
    dev: np.ndarray,
    skipped: np.ndarray,
    failed: np.ndarray,
    bitwise: np.ndarray | None,
    judged: np.ndarray | None,
) -> np.ndarray:
    """The verdict rule, vectorised: per element a verdict, "skipped"/"failed", or None.

    A check's verdict is its record's calibrated judgement (:mod:`harness.bench.verdicts`:
    every sample against the exact covariance, per component); "unclassified" when the outputs
    differ and no record judged them (records written before issue #10).
    """
    n = len(dev)
    bitwise = np.full(n, np.nan) if bitwise is None else bitwise
    judged = np.full(n, None, dtype=object) if judged is None else judged
    has_judgement = np.fromiter((v in VERDICTS for v in judged), dtype=bool, count=n)
    missing = np.isnan(dev)
    with np.errstate(invalid="ignore"):
        rules = (
            (bitwise == 1, np.full(n, BITWISE, dtype=object)),
            (failed, np.full(n, "failed", dtype=object)),
            (missing & skipped, np.full(n, "skipped", dtype=object)),
            (missing & ~has_judgement, np.full(n, None, dtype=object)),
            (has_judgement, judged),
        )
    out = np.full(n, UNCLASSIFIED, dtype=object)
    done = np.zeros(n, dtype=bool)
    for cond, choice in rules:
        sel = cond & ~done
        out[sel] = choice[sel]
        done |= sel
    return out


def verdict(
    value: float | None, *, bitwise: bool | None = None, judged: str | None = None
) -> str | None:
    """The verdict of one check from its deviation and (when there is one) its record:
    :func:`verdicts` on one element, so the two cannot disagree."""

    def one(x: Any) -> np.ndarray:
        return np.array([np.nan if is_missing(x) else float(x)])

    no = np.zeros(1, dtype=bool)
    out = verdicts(
        one(value), no, no, one(1 if bitwise else None), np.array([judged], dtype=object)
    )
    return out[0]


def worst(verdicts: Sequence[str | None]) -> str | None:
    """The worst verdict among ``verdicts`` (None when none is a verdict)."""
    ranked = [VERDICTS.index(v) for v in verdicts if v in VERDICTS]
    return VERDICTS[max(ranked)] if ranked else None


def parse_checks(text: str | None) -> tuple[str, ...]:
    """``--verdict-checks``: comma-separated check names (default: the verdict checks)."""
    if not text:
        return VERDICT_CHECKS
    checks = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise HarnessError(
            f"--verdict-checks: unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}"
        )
    return checks


# --- the stability table --------------------------------------------------------------------------


def _kinds(categories: pd.Index) -> np.ndarray:
    """Per benchmark name: 0 other, 1 runtime, 2 peak memory, 3 + i the i-th check."""
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
    columns = table_columns()
    if frame.empty or not set(CONFIG_KEYS) <= set(frame.columns):
        return pd.DataFrame(columns=columns)
    ids, runs = run_ids(frame)
    chosen = select_runs(runs, commit=commit, machine=machine, all_commits=all_commits)
    g = _Grouped.of(frame, ids, runs, chosen)
    if g is None:
        return pd.DataFrame(columns=columns)
    out = _config_columns(g, runs)
    row_keys = list(
        zip(out["run"].tolist(), *(out[k].tolist() for k in CONFIG_COLUMNS), strict=True)
    )
    rec = _record_arrays(records, runs, row_keys) if records is not None and len(records) else {}
    vc = [c for c in verdict_checks if c in CHECKS]
    out.update(_check_columns(g, rec, vc))
    table = pd.DataFrame(out)
    order = ["environment", "machine", "commit", "env_name", *CONFIG_COLUMNS]
    table = table.sort_values(order, kind="stable", key=_sort_key).reset_index(drop=True)[columns]
    table.attrs["verdict_checks"] = list(vc)
    return table


@dataclass
class _Grouped:
    """The selected asv rows of the table's benchmarks, grouped by (run, configuration)."""

    rows: np.ndarray  # positions in the frame
    kind: np.ndarray  # per row: see _kinds
    rid: np.ndarray  # per row: its run
    uid: np.ndarray  # per row: its table row
    first: np.ndarray  # per table row: its first asv row
    key_codes: list[np.ndarray]
    key_values: list[pd.Index]
    values: np.ndarray
    status: np.ndarray
    status_names: list[str]
    threads: np.ndarray
    run_max: np.ndarray  # per run: its largest thread count timed
    rel_iqr: np.ndarray  # per row: asv's interquartile range over its value (NaN if not kept)

    @property
    def n(self) -> int:
        return len(self.first)

    @classmethod
    def of(
        cls, frame: pd.DataFrame, ids: np.ndarray, runs: pd.DataFrame, chosen: np.ndarray
    ) -> _Grouped | None:
        bench_codes, bench_cats = codes_of(frame["benchmark"])
        kind = _kinds(bench_cats)[bench_codes]
        rows = np.flatnonzero((kind > 0) & chosen[ids])
        if not len(rows):
            return None
        kind, rid = kind[rows], ids[rows]
        key_codes, key_values = [], []
        for k in CONFIG_KEYS:
            c, v = codes_of(frame[k])
            key_codes.append(c[rows])
            key_values.append(v)
        uid, ukeys = pd.factorize(combine([rid, *key_codes]))
        first = np.full(len(ukeys), len(rows), dtype=np.int64)
        np.minimum.at(first, uid, np.arange(len(rows), dtype=np.int64))
        if isinstance(frame["status"].dtype, pd.CategoricalDtype):
            status = np.asarray(codes_of(frame["status"])[0])[rows]
            status_names = list(frame["status"].cat.categories)
        else:
            status = _status_codes(frame["status"].to_numpy()[rows])
            status_names = ["ok", "skipped", "failed"]
        threads = _threads(frame, rows)
        run_max = np.full(len(runs), -1, dtype=np.int64)
        np.maximum.at(run_max, rid[kind == 1], threads[kind == 1])
        values = frame["value"].to_numpy(dtype=float)[rows]
        rel_iqr = _rel_iqr(frame, rows, values)
        return cls(rows, kind, rid, uid, first, key_codes, key_values, values, status,
                   status_names, threads, run_max, rel_iqr)  # fmt: skip

    def code(self, name: str) -> int:
        return self.status_names.index(name) if name in self.status_names else -9

    def place(
        self, sel: np.ndarray, reduce: str | None = None, values: np.ndarray | None = None
    ) -> np.ndarray:
        """Per table row: the value (or ``values``) of the selected asv rows that ran (the
        largest with "max")."""
        values = self.values if values is None else values
        out = np.full(self.n, np.nan)
        sel = sel & (self.status == self.code("ok"))
        if reduce == "max":
            np.fmax.at(out, self.uid[sel], values[sel])
        else:
            out[self.uid[sel]] = values[sel]
        return out

    def state(self, sel: np.ndarray) -> np.ndarray:
        """Per table row: the status of the selected asv rows (the best one when several)."""
        none = len(self.status_names)
        st = np.full(self.n, none, dtype=np.int64)
        np.minimum.at(st, self.uid[sel], np.where(self.status[sel] < 0, none, self.status[sel]))
        return np.asarray([*self.status_names, None], dtype=object)[st]


def _config_columns(g: _Grouped, runs: pd.DataFrame) -> dict[str, Any]:
    """The run, configuration, all-cores thread count, runtime and memory columns."""
    out: dict[str, Any] = {"run": g.rid[g.first]}
    for k in ("machine", "commit", "env_name", "label"):
        out[k if k != "label" else "environment"] = runs[k].to_numpy()[g.rid[g.first]]
    for k, c, v in zip(CONFIG_COLUMNS, g.key_codes, g.key_values, strict=True):
        out[k] = _take(v, c[g.first])
    all_cores = g.run_max[g.rid[g.first]]
    # A run timed at 1 thread only (the study profile) has no all-cores column, not a copy.
    out["all_cores"] = np.where(all_cores > 1, all_cores, np.nan)
    is_time, run_max = g.kind == 1, g.run_max[g.rid]
    multi = (g.threads == run_max) & (run_max > 1)
    runtime = {
        "time_1_thread": (is_time & (g.threads == 1), "_s", None),
        "time_all_cores": (is_time & (multi | (g.threads < 0)), "_s", None),
        "peakmem": (g.kind == 2, "_bytes", "max"),
    }
    for name, (sel, suffix, reduce) in runtime.items():
        out[name + suffix] = g.place(sel, reduce)
        out["s_" + name] = g.state(sel)
    for name in ("time_1_thread", "time_all_cores"):
        out["iqr_" + name] = g.place(runtime[name][0], values=g.rel_iqr)
    return out


def _rel_iqr(frame: pd.DataFrame, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    if "q_25" not in frame or "q_75" not in frame:
        return np.full(len(rows), np.nan)
    q25 = frame["q_25"].to_numpy(dtype=float)[rows]
    q75 = frame["q_75"].to_numpy(dtype=float)[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (q75 - q25) / values


#: The record fields the table reads as numbers (records of older suites may lack some).
NUMERIC_RECORD_FIELDS = (
    "bitwise",
    "sigdigits",
    "sigdigits_raw",
    "sigdigits_n",
    "knn_jaccard",
    "leiden_ari",
    "ari_other_seed",
)


def _check_columns(
    g: _Grouped, rec: dict[str, dict[str, np.ndarray]], vc: Sequence[str]
) -> dict[str, Any]:
    """Per check its deviation and verdict; then sigdigits, knn_jaccard and the verdict."""
    out: dict[str, Any] = {}
    ranks = []
    for i, check in enumerate(CHECKS):
        sel = g.kind == 3 + i
        dev = g.place(sel)
        st = np.full(g.n, -1, dtype=np.int64)
        st[g.uid[sel]] = g.status[sel]
        r = rec.get(check, {})
        if "value" in r:  # a record whose asv row is missing or has no value
            dev = np.where(np.isnan(dev) & ~np.isnan(r["value"]), r["value"], dev)
        skipped, failed = st == g.code("skipped"), st == g.code("failed")
        v = verdicts(dev, skipped, failed, r.get("bitwise"), r.get("verdict"))
        out[f"dev_{check}"] = dev
        out[f"v_{check}"] = v
        cause = r.get("beyond_cause", np.full(g.n, None, dtype=object))
        out[f"cause_{check}"] = np.where(v == BEYOND, cause, None)
        out[f"moved_{check}"] = r.get("moved", np.full(g.n, None, dtype=object))
        if check in vc:
            ranks.append(_rank(v))
    out |= _sigdigits([rec.get(c, {}) for c in vc], g.n)
    out["knn_jaccard"] = _nanmin([rec.get(c, {}).get("knn_jaccard") for c in vc], g.n)
    best = np.max(np.vstack(ranks), axis=0) if ranks else np.full(g.n, -1)
    names = np.asarray([*VERDICTS, None], dtype=object)
    out["verdict"] = names[np.where(best < 0, len(VERDICTS), best)]
    return out


def _sigdigits(recs: list[dict[str, np.ndarray]], n: int) -> dict[str, np.ndarray]:
    """The fewest significant digits over the checks, by the raw -log10 relative error (no
    confidence term, so checks with different sample counts compare), with that check's CNH
    estimate and sample count beside it; the CNH minimum where no record has a raw value."""

    def stack(field: str) -> np.ndarray:
        return np.vstack([r.get(field, np.full(n, np.nan)) for r in recs] or [np.full(n, np.nan)])

    raw, cnh, count = stack("sigdigits_raw"), stack("sigdigits"), stack("sigdigits_n")
    has_raw = ~np.isnan(raw).all(axis=0)
    pick = np.argmin(np.where(np.isnan(raw), np.inf, raw), axis=0)
    cols = np.arange(n)
    return {
        "sigdigits": np.where(has_raw, cnh[pick, cols], _nanmin(list(cnh), n)),
        "sigdigits_raw": np.where(has_raw, raw[pick, cols], np.nan),
        "sigdigits_n": np.where(has_raw, count[pick, cols], np.nan),
    }


def _sort_key(col: pd.Series) -> pd.Series:
    """Sort mixed or missing values as text, so any parameter values order deterministically."""
    return col.map(lambda v: "" if is_missing(v) else str(v))


def _rank(v: np.ndarray) -> np.ndarray:
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
        "iqr_time_1_thread",
        "iqr_time_all_cores",
        "peakmem_bytes",
        "s_peakmem",
    ]
    for c in CHECKS:
        cols += [f"dev_{c}", f"v_{c}", f"cause_{c}", f"moved_{c}"]
    return [*cols, "sigdigits", "sigdigits_raw", "sigdigits_n", "knn_jaccard", "verdict"]


def _status_codes(values: np.ndarray) -> np.ndarray:
    lookup = {"ok": 0, "skipped": 1, "failed": 2}
    return np.asarray([lookup.get(str(v), -1) for v in values], dtype=np.int64)


def _threads(frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    if "threads" not in frame.columns:
        return np.full(len(rows), -1, dtype=np.int64)
    col = pd.to_numeric(frame["threads"].take(rows), errors="coerce")
    return col.fillna(-1).to_numpy(dtype=np.int64)


def _take(values: pd.Index, codes: np.ndarray) -> np.ndarray:
    arr = np.empty(len(values) + 1, dtype=object)
    arr[: len(values)] = list(values)
    arr[len(values)] = None
    return arr[np.where(codes < 0, len(values), codes)]


def _nanmin(arrays: list[np.ndarray | None], n: int) -> np.ndarray:
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
    """Per check, the records' bitwise, verdict, sigdigits, knn_jaccard and value, by table row."""
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
                *(rec[k] for k in ("machine", "commit", "env_name", *CONFIG_KEYS)), strict=True
            )
        ],
        dtype=np.int64,
    )
    checks = rec["check"].to_numpy()
    fields = {
        f: pd.to_numeric(rec[f].astype(object), errors="coerce").to_numpy(dtype=float)
        for f in (*NUMERIC_RECORD_FIELDS, "value")
        if f in rec
    }
    text = {
        f: rec[f].astype(object).to_numpy() if f in rec else np.full(len(rec), None, dtype=object)
        for f in ("verdict", "moved", "beyond_cause")
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
        for f, vals in text.items():
            obj = np.full(n, None, dtype=object)
            obj[pos[sel]] = vals[sel]
            d[f] = obj
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
            ", ".join(f"{p}={v!r}" for p, v in zip(params, rec, strict=True) if not is_missing(v))
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


def with_ids(
    table: pd.DataFrame, ids: Mapping[Key, str], labels: Mapping[Key, str] | None = None
) -> pd.DataFrame:
    """The table (stability or generic) with each run's folder-wide id in an ``id`` column,
    ordered by id, and its ``environment`` replaced by ``labels`` where given (labels that tell
    runs apart: :func:`harness.results.runs.unique_labels`)."""
    keys = list(zip(table["machine"], table["commit"], table["env_name"], strict=True))
    out = table.copy()
    if labels:
        out["environment"] = [
            labels.get(k, e) for k, e in zip(keys, out["environment"], strict=True)
        ]
    out.insert(out.columns.get_loc("run") + 1, "id", [ids.get(k) for k in keys])
    number = out["id"].map(lambda i: env_number(i) if isinstance(i, str) else None)
    out = out.assign(_n=number.fillna(float("inf"))).sort_values("_n", kind="stable")
    out = out.drop(columns="_n").reset_index(drop=True)
    out.attrs.update(table.attrs)
    return out
