"""The results frame: a parsed :class:`~harness.results.asvfiles.Part` as one pandas DataFrame.

The frame is built column-wise from compact arrays (no per-row Python objects): parameter grids
become integer codes into each parameter's distinct values, per-file and per-block values are
factorized once and repeated over their rows. Also here: fast grouping of millions of rows
(:func:`codes_of`, :func:`combine`) and joining the harness's records onto the rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from harness.render.formats import is_missing
from harness.results.asvfiles import STATS, BenchmarkInfo, Part, decode_param, unit_for
from harness.results.problems import Warn
from harness.results.sidecars import (
    FP_COLUMNS,
    FP_PACKAGES,
    Fingerprints,
    canonical_params,
    column_name,
    fingerprint_columns,
)
from harness.vocabulary import RUN_KEY, run_folder_name

HEAD = (*RUN_KEY, "benchmark")
TAIL = (
    "value",
    "unit",
    "status",
    "reason",
    *STATS,
    "samples",
    "version",
    "started_at",
    "duration",
    "date",
    "python",
    "requirements",
    "env_vars",
    "file",
)
RESERVED = frozenset(HEAD + TAIL + FP_COLUMNS) | {"params"}
#: Times (ms since 1970) pandas cannot hold in nanoseconds are missing (about 1677 to 2262).
_MAX_MS = 9.2e12


def safe_name(name: str) -> str:
    """The column of a benchmark parameter: ``param_<name>`` where it clashes with a fixed one."""
    return f"param_{name}" if name in RESERVED or name.startswith("fp_") else name


class _ParamColumn:
    """One parameter's values: codes into the distinct asv repr strings, decoded once each."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.decoded: list[Any] = []

    def code(self, text: str) -> int:
        c = self.codes.get(text)
        if c is None:
            c = self.codes[text] = len(self.decoded)
            self.decoded.append(decode_param(text))
        return c

    def build(self, codes: Any) -> Any:
        """The typed column: int64 (Int64 with gaps), float64, Categorical of strings, objects."""
        return _typed(self.decoded, _small_codes(codes, len(self.decoded)))


def _small_codes(codes: Any, n_values: int) -> Any:
    """Codes in the narrowest integer type (a 4-million-row take moves less memory)."""
    dtype = np.int8 if n_values < 127 else np.int16 if n_values < 32_767 else np.int32
    return codes.astype(dtype, copy=False)


def _typed(vals: list[Any], codes: Any, lens: Any = None) -> Any:
    """``vals[codes]`` (code -1: missing) as the narrowest fitting column.

    With ``lens``, ``codes`` are per block and each block's value is repeated ``lens`` times.
    """

    def rows(a: Any) -> Any:
        return a if lens is None else np.repeat(a, lens)

    if all(type(v) is str for v in vals) and len(set(vals)) == len(vals):
        small = _small_codes(codes, len(vals))
        return pd.Categorical.from_codes(rows(small), pd.Index(vals, dtype=object), validate=False)
    missing = codes < 0
    if vals and all(type(v) is int for v in vals):
        data = np.asarray([*vals, 0], dtype=np.int64)[codes]  # code -1 takes the trailing 0
        if missing.any():
            return pd.arrays.IntegerArray(rows(data), rows(missing))
        return rows(data)
    if vals and all(type(v) in (int, float) for v in vals):
        return rows(np.asarray([*vals, math.nan], dtype=float)[codes])
    arr = np.empty(len(vals) + 1, dtype=object)
    arr[: len(vals)] = vals
    arr[len(vals)] = None
    return pd.Series(rows(arr[codes]), dtype=object)


def _grid_codes(grid: tuple[Any, ...], params: dict[str, _ParamColumn]) -> dict[str, Any]:
    """Per parameter name, the codes of every combination of a grid, in itertools.product order."""
    names, values = grid
    if not names:
        return {}
    per_dim = [
        np.asarray([params.setdefault(nm, _ParamColumn()).code(v) for v in vs], dtype=np.int32)
        for nm, vs in zip(names, values, strict=True)
    ]
    idx = np.indices([len(v) for v in values]).reshape(len(values), -1)
    return {nm: per_dim[d][idx[d]] for d, nm in enumerate(names)}


def _factorize(values: list[Any]) -> tuple[Any, list[Any]]:
    """Codes (-1 for None/NaN) and distinct values; strings sorted, so order never leaks in."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    vals = list(uniques)
    if vals and all(type(v) is str for v in vals):
        order = sorted(range(len(vals)), key=vals.__getitem__)
        remap = np.empty(len(vals) + 1, dtype=np.int64)
        remap[np.asarray(order, dtype=np.int64)] = np.arange(len(vals))
        remap[-1] = -1
        codes = remap[codes]
        vals = [vals[i] for i in order]
    return np.asarray(codes, dtype=np.int64), vals


def _spread(values: list[Any], lens: Any, block_item: Any = None) -> Any:
    """Per-file values (``block_item`` maps blocks to files) or per-block ones, over the rows."""
    codes, vals = _factorize(values)
    if block_item is not None:
        codes = codes[block_item]
    return _typed(vals, codes, lens)


def _timestamps(ms: list[float], lens: Any, block_item: Any = None) -> Any:
    """UTC datetimes from milliseconds since 1970; NaN and times pandas cannot hold are NaT."""
    arr = np.asarray(ms, dtype=float)
    if block_item is not None:
        arr = arr[block_item]
    ok = np.abs(arr) < _MAX_MS  # NaN is not
    ns = np.full(len(arr), np.iinfo(np.int64).min, dtype=np.int64)
    ns[ok] = (arr[ok] * 1e6).astype(np.int64)
    # Localised per block, then repeated: localising millions of rows costs more than the rest.
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").repeat(lens)


def build_frame(
    part: Part, benches: dict[str, BenchmarkInfo], fps: Fingerprints, warn: Warn
) -> pd.DataFrame:
    """The DataFrame of a parsed folder (columns: see :mod:`harness.results.reader`)."""
    lens = np.asarray(part.block_len, dtype=np.int64)
    block_file = np.asarray(part.block_file, dtype=np.int64)
    out: dict[str, Any] = {}
    for key in RUN_KEY:
        out[key] = _spread([f[key] for f in part.files], lens, block_file)
    out["benchmark"] = _spread(part.block_bench, lens)
    params = _param_columns(part)
    out.update(params)
    out.update(_value_columns(part, benches, lens))
    meta = part.block_meta
    out["version"] = _spread([m[0] if isinstance(m[0], str) else None for m in meta], lens)
    out["started_at"] = _timestamps([m[1] for m in meta], lens)
    out["duration"] = np.repeat(np.asarray([m[2] for m in meta], dtype=float), lens)
    out["date"] = _timestamps([f["date"] for f in part.files], lens, block_file)
    for key in ("python", "requirements", "env_vars", "file"):
        out[key] = _spread([f[key] for f in part.files], lens, block_file)
    fp_cols = _fingerprint_columns(part, fps, warn, lens, block_file)
    out.update(fp_cols)
    order = (*HEAD, *params, *TAIL, *fp_cols)
    frame = pd.DataFrame({k: out[k] for k in order}, copy=False)
    frame.attrs["params"] = list(params)
    return frame


def _param_columns(part: Part) -> dict[str, Any]:
    """One typed column per benchmark parameter (missing where a benchmark lacks it).

    Each distinct grid's codes are worked out once; the rows then take them through one index
    (grid offset + position in the block), so millions of rows cost a few numpy gathers.
    """
    params: dict[str, _ParamColumn] = {}
    grid_index: dict[int, int] = {}
    grids: list[dict[str, Any]] = []
    sizes: list[int] = []
    block_grid = np.empty(len(part.block_grid), dtype=np.int64)
    for b, (g, n) in enumerate(zip(part.block_grid, part.block_len, strict=True)):
        gi = grid_index.get(id(g))
        if gi is None:
            gi = grid_index[id(g)] = len(grids)
            grids.append(_grid_codes(g, params))
            sizes.append(n)
        block_grid[b] = gi
    if not params:
        return {}
    lens = np.asarray(part.block_len, dtype=np.int64)
    starts = np.cumsum(lens) - lens
    row_block = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    within = np.arange(int(lens.sum()), dtype=np.int64) - starts[row_block]
    row_grid = block_grid[row_block]
    grid_start = np.cumsum(sizes, dtype=np.int64) - np.asarray(sizes, dtype=np.int64)
    at = grid_start[row_grid] + within  # each row's place in a table of every grid's codes
    out = {}
    for name in params:
        table = np.concatenate(
            [g.get(name, np.full(n, -1, dtype=np.int32)) for g, n in zip(grids, sizes, strict=True)]
        )
        out[safe_name(name)] = params[name].build(table[at])
    return out


def _value_columns(part: Part, benches: dict[str, BenchmarkInfo], lens: Any) -> dict[str, Any]:
    """value, unit, status, reason (empty until records are joined), the stats and samples."""
    n_rows = part.n_rows
    values = part.values
    out: dict[str, Any] = {"value": values}
    units = {
        b: unit_for(b, benches[b].unit if b in benches else None) for b in set(part.block_bench)
    }
    out["unit"] = _spread([units[b] for b in part.block_bench], lens)
    status = np.where(np.isnan(values), 1, 0).astype(np.int8)
    status[np.asarray(part.failed, dtype=np.int64)] = 2
    out["status"] = pd.Categorical.from_codes(status, ["ok", "skipped", "failed"])
    out["reason"] = pd.Categorical.from_codes(
        np.full(n_rows, -1, dtype=np.int8), [], validate=False
    )
    full = part.stats is not None and len(part.stats) == n_rows
    where = None if full or part.stats is None else stats_positions(part.stats_rows)
    for j, name in enumerate(STATS):
        if full:
            col = part.stats[:, j].copy()  # every block kept stats: already in row order
        else:
            col = np.full(n_rows, np.nan)
            if where is not None:
                col[where] = part.stats[:, j]
        if name in ("number", "repeat"):
            mask = ~(np.abs(col) < 2.0**62)  # NaN is not
            col[mask] = 0
            out[name] = pd.arrays.IntegerArray(col.astype(np.int64), mask)
        else:
            out[name] = col
    samples = np.empty(n_rows, dtype=object)  # (numpy fills object arrays with None)
    for start, smp in part.samples:
        samples[start : start + len(smp)] = smp
    out["samples"] = pd.Series(samples, dtype=object)
    return out


def stats_positions(stats_rows: list[tuple[int, int]]) -> Any:
    """The rows of the blocks that kept stats, in order (``stats_rows``: (start, n) each)."""
    starts = np.asarray([s for s, _ in stats_rows], dtype=np.int64)
    lens = np.asarray([n for _, n in stats_rows], dtype=np.int64)
    offsets = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    return np.repeat(starts, lens) + offsets


def _fingerprint_columns(
    part: Part, fps: Fingerprints, warn: Warn, lens: Any, block_file: Any
) -> dict[str, Any]:
    """The ``fp_*`` columns: fixed ones first, then one per package version, sorted (each over
    the distinct fingerprints, then spread over their files' rows)."""
    fp_rows = _file_fingerprints(part, fps, warn)
    distinct: dict[int, int] = {}
    file_fp = np.fromiter(
        (distinct.setdefault(id(r), len(distinct)) for r in fp_rows), np.int64, len(fp_rows)
    )
    uniq = list({id(r): r for r in fp_rows}.values())
    names = {column_name(d) for d in FP_PACKAGES} | {k for row in uniq for k in row}
    out = {}
    rows_fp = file_fp[block_file] if len(fp_rows) else file_fp
    for k in [*FP_COLUMNS, *sorted(names - set(FP_COLUMNS))]:
        codes, vals = _factorize([row.get(k) for row in uniq])
        col = _typed(vals, codes[rows_fp] if len(codes) else codes, lens)
        if k in ("fp_threads", "fp_cpu_count") and not isinstance(col, pd.arrays.IntegerArray):
            col = _int_column(col, part.n_rows)
        out[k] = col
    return out


def _int_column(col: Any, n: int) -> Any:
    """A nullable Int64 column from an int64 array, or an all-missing one from anything else."""
    if isinstance(col, np.ndarray) and col.dtype.kind == "i":
        return pd.arrays.IntegerArray(col, np.zeros(n, dtype=bool))
    return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))


def _file_fingerprints(part: Part, fps: Fingerprints, warn: Warn) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str, str], dict[str, Any]] = {}
    by_fp: dict[int, dict[str, Any]] = {}  # runs sharing one fingerprint dict share its columns
    for f in part.files:
        key = (f["machine"], f["commit"], f["env_name"])
        if key not in by_key:
            fp = fps.find(*key)
            if fp is None:
                if (
                    key[0] in fps.machines_with_sidecars
                    or f["file"].split("/")[0] in fps.machines_with_sidecars
                ):
                    warn(
                        f"{f['file']}: no harness fingerprint for this run; fingerprint columns empty"
                    )
                by_key[key] = fingerprint_columns(None)
            else:
                if id(fp) not in by_fp:
                    by_fp[id(fp)] = fingerprint_columns(fp)
                by_key[key] = by_fp[id(fp)]
        rows.append(by_key[key])
    return rows


def join_records(frame: pd.DataFrame, records: pd.DataFrame, warn: Warn) -> None:
    """Fill ``reason`` of skipped rows from the harness's records (in place), and report, one line
    per run, records whose value contradicts asv's (the tables show the records' details)."""
    if records.empty or frame.empty:
        return
    mask = frame["benchmark"].isin(set(records["benchmark"])).to_numpy()
    if not mask.any():
        return
    columns = (*RUN_KEY, "benchmark", "params_key", "reason", "value", "file")
    lookup = {
        (m, c, e, b, k): (r, v, f)
        for m, c, e, b, k, r, v, f in zip(*(records[c] for c in columns), strict=True)
    }
    rows = np.flatnonzero(mask)
    keys = zip(
        *(frame[c].to_numpy(dtype=object)[rows] for c in HEAD),
        _params_keys(frame, rows),
        strict=False,
    )
    not_ok = (frame["status"] != "ok").to_numpy()[rows]
    values = frame["value"].to_numpy()[rows]
    reasons: list[str | None] = []
    contradictions: dict[tuple[str, str, str], list[tuple[Any, str]]] = {}
    for key, skipped, value in zip(keys, not_ok, values, strict=True):
        reason, recorded, file = lookup.get(key, (None, math.nan, None))
        reasons.append(reason if skipped and isinstance(reason, str) else None)
        if not skipped and _contradicts(recorded, value):
            what = f"{key[3]} {key[4]}: record {recorded:.3g}, asv {value:.3g}"
            contradictions.setdefault(key[:3], []).append((file, what))
    for (machine, commit, env), found in contradictions.items():
        file, what = found[0]
        where = file or f"{machine}/harness/{run_folder_name(commit, env)}/records"
        n = len(found)
        warn(
            f"{where}: {n} record{'s' if n != 1 else ''} of this run contradict"
            f"{'s' if n == 1 else ''} asv's results (this one first: {what}); "
            "their comparisons are shown as recorded"
        )
    categories = sorted({r for r in reasons if r is not None})
    index = {r: i for i, r in enumerate(categories)}
    codes = np.full(len(frame), -1, dtype=np.int32)
    codes[rows] = [index[r] if r is not None else -1 for r in reasons]
    frame["reason"] = pd.Categorical.from_codes(codes, categories)


def _contradicts(recorded: Any, value: float) -> bool:
    if is_missing(recorded) or math.isnan(value):
        return False
    return not math.isclose(recorded, value, rel_tol=1e-9, abs_tol=0.0)


def _params_keys(frame: pd.DataFrame, rows: Any) -> list[str]:
    """The canonical parameter string (as records key them) of each of ``rows``."""
    params = [p for p in frame.attrs.get("params", []) if p in frame.columns]
    if not params:
        return [canonical_params({})] * len(rows)
    key = combine([codes_of(frame[p])[0][rows] for p in params])
    ids, uniq = pd.factorize(key)
    first = np.full(len(uniq), len(key), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(key), dtype=np.int64))
    sub = frame[params].take(rows[first]).to_dict("records")
    texts = [
        canonical_params({_orig(p): _plain(d[p]) for p in params if not is_missing(d[p])})
        for d in sub
    ]
    return [texts[i] for i in ids]


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (so they serialize as the records did)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def _orig(name: str) -> str:
    return (
        name[len("param_") :]
        if name.startswith("param_") and name[len("param_") :] in RESERVED
        else name
    )


# --- fast grouping of millions of rows -----------------------------------------------------------


def codes_of(series: pd.Series) -> tuple[Any, pd.Index]:
    """Integer codes (-1 for missing) and the values they stand for."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return np.asarray(series.cat.codes, dtype=np.int64), series.cat.categories
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.int64), pd.Index(uniques)


def combine(codes: list[Any]) -> Any:
    """One int64 key per row from several code arrays (mixed radix; -1 stays distinct)."""
    key = np.zeros(len(codes[0]) if codes else 0, dtype=np.int64)
    for c in codes:
        card = int(c.max(initial=-1)) + 2
        key = key * card + (c + 1)
    return key
