"""asv's own files, read and validated: results files (api version 2) and ``benchmarks.json``.

Parsing yields a :class:`Part`: compact per-block and per-row arrays that :mod:`.frame` turns
into the DataFrame. Everything is checked here, once: a file that is not asv results, a benchmark
whose parameters no longer fit, a grid larger than its results, a number no float holds, a
parameter value that is not a plain scalar (kept as asv's text). Each problem is one line naming
the file (and benchmark) and why; the rest of the folder still loads.

Files are parsed with orjson, in this process (issue #14: no fork pool). asv writes skipped
results as the bare token ``NaN``, which JSON (and orjson) does not allow. The fast way
(:func:`loads` with ``sentinel``) writes each ``NaN`` as the number :data:`SENTINEL`, counts
them, and after parsing turns every sentinel among the numbers read back into NaN; when the
counts differ (a ``NaN`` inside a string, or where no number is read) or a file holds the
sentinel's text already, the folder is parsed again the exact way: every ``NaN`` quoted (see
:func:`loads`). A file orjson refuses is parsed by the standard library, which accepts ``NaN``
and ``Infinity`` and says exactly what is wrong with a bad file.
"""

from __future__ import annotations

import ast
import bisect
import json
import math
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harness import io
from harness.results import sidecars
from harness.results.problems import Warn, relpath, subfolders
from harness.vocabulary import HARNESS_DIR

API_VERSION = 2
SKIP_FILES = frozenset({"machine.json", "benchmarks.json"})
STATS = ("ci_99_a", "ci_99_b", "q_25", "q_75", "number", "repeat")
#: A benchmark stored as null ("every combination failed") with a larger grid is not expanded:
#: asv itself could not have run it, and expanding 10^9 combinations takes gigabytes.
MAX_COMBINATIONS = 1_000_000
_UNIT_BY_PREFIX = (
    ("time_", "seconds"),
    ("timeraw_", "seconds"),
    ("peakmem_", "bytes"),
    ("mem_", "bytes"),
)
_NUMPY_SCALAR = re.compile(r"^np\.\w+\((.*)\)$", re.DOTALL)
_NUMERIC = frozenset({float, int, type(None)})
#: What :func:`loads` turns asv's bare ``NaN`` token into (JSON has no NaN): quoted, or the
#: number :data:`SENTINEL` (no benchmark result or stat is -91, and a file whose text holds
#: "-91" anywhere is read the quoted way).
NAN_TEXT = "NaN"
SENTINEL = -91
_NAN_TOKEN, _NAN_QUOTED, _SENTINEL_TOKEN = b"NaN", b'"NaN"', b"-91"
_NO_STATS = [None] * len(STATS)
_MAX_FLOAT_INT = int(sys.float_info.max)
_INT64 = 1 << 63
#: The largest results file read: a grid of MAX_COMBINATIONS with every stat is about 200 MB.
MAX_RESULTS_BYTES = 1 << 30


def decode_param(text: Any) -> Any:
    """A parameter value from asv's repr() string: a Python literal, else the string itself.

    numpy 2 writes scalars as ``np.float64(1.5)``: the literal inside is used. Unhashable values
    (lists, dicts) and integers beyond int64 stay text, so every value can be grouped on.
    """
    if not isinstance(text, str):
        return text
    for literal in (text, *(m.group(1) for m in [_NUMPY_SCALAR.match(text.strip())] if m)):
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if type(value) is int:
            return value if -_INT64 <= value < _INT64 else text
        try:
            hash(value)
        except TypeError:
            return text
        return value
    return text


def unit_for(benchmark: str, declared: str | None = None) -> str | None:
    """The unit benchmarks.json declares, else the one asv implies by the benchmark's prefix."""
    if declared:
        return declared
    name = benchmark.rsplit(".", 1)[-1]
    for prefix, unit in _UNIT_BY_PREFIX:
        if name.startswith(prefix):
            return unit
    return None


class Quote(Exception):
    """A file the sentinel cannot be used for: the folder is read the quoted way."""


def loads(raw: bytes, sentinel: bool = False) -> tuple[Any, int]:
    """JSON with asv's ``NaN`` tokens as the string :data:`NAN_TEXT` (``sentinel``: as the
    number :data:`SENTINEL`, and how many there were); ValueError when not JSON, :class:`Quote`
    when the sentinel cannot be used.

    Quoting every ``NaN`` is exact: one inside a string would end that string early and leave a
    bare ``NaN`` after it, which no JSON allows, so such a file fails here and is parsed by the
    standard library instead (:func:`read_json`). The sentinel is exact once counted
    (:func:`parse_files`).
    """
    if b"Infinity" in raw:  # -Infinity would need its minus moved: the standard library reads it
        raise ValueError("Infinity")
    n = raw.count(_NAN_TOKEN)
    if sentinel and n and _SENTINEL_TOKEN in raw:
        raise Quote
    token = _SENTINEL_TOKEN if sentinel else _NAN_QUOTED
    try:
        return orjson.loads(raw.replace(_NAN_TOKEN, token) if n else raw), (n if sentinel else 0)
    except orjson.JSONDecodeError as err:
        raise ValueError(str(err)) from None


def read_json(path: str | os.PathLike[str], sentinel: bool = False) -> Any:
    """Parse one JSON file; ValueError with a short reason for empty, binary or malformed files,
    and for what is not a regular file (see :func:`harness.io.read_regular`).

    Numbers asv wrote as ``NaN`` come back as :data:`NAN_TEXT` from orjson, or as float NaN
    from the standard library; every reader of numbers here takes both. With ``sentinel``,
    (data, count of sentinels written), the count None where the standard library read it
    (see :func:`loads`).
    """
    try:
        raw = io.read_regular(path, MAX_RESULTS_BYTES)
    except io.UnreadableError as err:
        raise ValueError(err.reason) from None
    if not raw.strip():
        raise ValueError("empty file")
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("binary file, not JSON")
    try:
        data, n = loads(raw, sentinel)
        return (data, n) if sentinel else data
    except ValueError:
        pass  # NaN in a string, Infinity, UTF-16, huge integers: the standard library decides
    return (_stdlib(raw), None) if sentinel else _stdlib(raw)  # None: its NaN are floats


def _stdlib(raw: bytes) -> Any:
    """The standard library's parse, its errors as short reasons."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ValueError("binary file, not UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        text = raw.rstrip()
        if err.pos >= len(text) or err.msg.startswith("Unterminated string"):
            raise ValueError(f"truncated JSON (the file ends inside {_inside(err)})") from None
        where = f"line {err.lineno} column {err.colno}"
        raise ValueError(f"not valid JSON ({err.msg}: {where})") from None
    except (ValueError, RecursionError) as err:  # an integer of 4300+ digits, nesting too deep
        raise ValueError(f"not valid JSON ({err or 'nested too deeply'})") from None


def _inside(err: json.JSONDecodeError) -> str:
    return "a string" if err.msg.startswith("Unterminated string") else "a value"


# --- benchmarks.json ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkInfo:
    """What benchmarks.json says of one benchmark (both may be missing)."""

    param_names: tuple[str, ...] | None
    unit: str | None


def read_benchmarks(root: Path, warn: Warn) -> dict[str, BenchmarkInfo]:
    """benchmarks.json of a results folder: param names and units; {} when absent or unreadable."""
    path = root / "benchmarks.json"
    if not os.path.lexists(path):
        return {}
    guessed = "parameter names and units are guessed"
    try:
        data = read_json(path)
    except ValueError as err:
        warn(f"{relpath(path, root)}: {err}; {guessed}")
        return {}
    if not isinstance(data, dict):
        warn(f"{relpath(path, root)}: not an asv benchmarks.json; {guessed}")
        return {}
    out = {}
    for name, entry in data.items():
        if name == "version":  # asv's own: the file's format version
            continue
        info, why = _benchmark_info(entry)
        if why:
            warn(f"{relpath(path, root)}: {name}: {why}; {guessed}")
        if info is not None:
            out[name] = info
    return out


def _benchmark_info(entry: Any) -> tuple[BenchmarkInfo | None, str | None]:
    """What one entry of benchmarks.json says, and what is wrong with it (None when nothing)."""
    if not isinstance(entry, dict):
        return None, f"not a benchmark description (a {type(entry).__name__})"
    names = entry.get("param_names")
    unit = entry.get("unit")
    problems = []
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        problems.append("param_names " + ("missing" if names is None else "not a list of names"))
        names = None
    if not isinstance(unit, str):
        problems.append("unit " + ("missing" if unit is None else "not a string"))
        unit = None
    return BenchmarkInfo(tuple(names) if names is not None else None, unit), (
        ", ".join(problems) or None
    )


# --- the results files -------------------------------------------------------------------------


def iter_result_files(root: Path, warn: Warn) -> Iterable[tuple[str, str]]:
    """(file path, machine folder name) of every results file: ``<root>/<machine>/*.json``.

    ``root`` may also be one machine folder or one results file. Folders that cannot be listed
    are reported to ``warn`` and left out.
    """
    if root.is_file():
        yield str(root), root.parent.name
        return
    if (root / "machine.json").is_file():
        folders = [root]
    else:
        folders = [p for p in subfolders(root, root, warn) if p.name != HARNESS_DIR]
    for folder in folders:
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if e.name.endswith(".json")), key=lambda e: e.name)
        except OSError as err:
            warn(f"{relpath(folder, root)}: cannot list ({err.strerror or err}); skipped")
            continue
        # Every other entry is a results file: what is not a regular one (a folder, a FIFO, a
        # link loop) is named by read_json when it is parsed, and never opened.
        yield from ((e.path, folder.name) for e in entries if e.name not in SKIP_FILES)


def check_file(data: Any) -> str | None:
    """Why ``data`` is not asv results of api version 2, or None."""
    if not isinstance(data, dict):
        return "not asv results (not a JSON object)"
    if "results" not in data or "result_columns" not in data:
        return "not asv results (no 'results' and 'result_columns')"
    version = data.get("version")
    if version != API_VERSION:
        return f"asv results api version {version!r}, this reader knows {API_VERSION}"
    columns = data.get("result_columns")
    if (
        not isinstance(data.get("results"), dict)
        or not isinstance(columns, list)
        or "result" not in columns
        or "params" not in columns
    ):
        return "not asv results (malformed 'results' or 'result_columns')"
    if not isinstance(data.get("commit_hash"), str) or not isinstance(data.get("env_name"), str):
        return "not asv results (no commit_hash or env_name)"
    return None


def file_row(data: dict[str, Any], rel: str, machine_dir: str) -> dict[str, Any]:
    """What one checked results file says of its run: machine, commit, env_name, date (ms, NaN
    when missing), python, requirements and env_vars (as text), and ``file`` (``rel``)."""
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    reqs = data.get("requirements") if isinstance(data.get("requirements"), dict) else {}
    env_vars = data.get("env_vars") if isinstance(data.get("env_vars"), dict) else {}
    return {
        "machine": params.get("machine") if isinstance(params.get("machine"), str) else machine_dir,
        "commit": data["commit_hash"],
        "env_name": data["env_name"],
        "date": sidecars.number(data.get("date")),
        "python": str(data.get("python") or params.get("python") or "") or None,
        "requirements": " ".join(f"{k}=={v}" if v else str(k) for k, v in sorted(reqs.items()))
        or None,
        "env_vars": " ".join(f"{k}={v}" for k, v in sorted(env_vars.items())) or None,
        "file": rel,
    }


@dataclass
class Part:
    """What parsing a run of files yields: compact arrays, cheap to send between processes.

    Per block (one benchmark of one file): ``block_file``, ``block_bench``, ``block_len``,
    ``block_grid`` (param names and asv's repr strings, shared between equal grids), ``block_meta``
    (version, started_at, duration). Per row: ``values``. Sparse: ``failed`` (row offsets of nulls),
    ``stats_rows`` ((row offset, n) of the blocks with stats; their rows, in order, in ``stats``,
    an array m x 6), ``samples`` ((row offset, list)).
    """

    files: list[dict[str, Any]] = field(default_factory=list)
    block_file: list[int] = field(default_factory=list)
    block_bench: list[str] = field(default_factory=list)
    block_len: list[int] = field(default_factory=list)
    block_grid: list[tuple[Any, ...]] = field(default_factory=list)
    block_meta: list[tuple[Any, float, float]] = field(default_factory=list)
    values: Any = None
    failed: list[int] = field(default_factory=list)
    stats_rows: list[tuple[int, int]] = field(default_factory=list)
    stats: Any = None  # None when no block kept stats
    samples: list[tuple[int, list[Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    n_rows: int = 0
    fps: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    #: Per problem line, the item (relative name) it is about: a part splits by file.
    problem_items: list[str] = field(default_factory=list)

    def problem(self, item: str, line: str) -> None:
        self.problems.append(line)
        self.problem_items.append(item)


@dataclass
class _Pending:
    """Values gathered while parsing, converted to arrays once at the end; and what every file
    of a folder shares (its result columns, each benchmark's grid), worked out once."""

    values: list[Any] = field(default_factory=list)
    stats: list[list[Any]] = field(default_factory=lambda: [[] for _ in STATS])
    grids: dict[str, Any] = field(default_factory=dict)
    columns: dict[tuple[str, ...], _Columns] = field(default_factory=dict)

    def columns_of(self, columns: list[Any]) -> _Columns:
        key = tuple(columns) if all(type(c) is str for c in columns) else None
        cols = self.columns.get(key) if key is not None else None
        if cols is None:
            cols = _Columns.of(columns)
            if key is not None:
                self.columns[key] = cols
        return cols


def parse_files(
    items: list[tuple[str, str, str]],
    benches: dict[str, BenchmarkInfo],
    strict: bool = False,
    fp_root: str | None = None,
    quoted: bool = False,
) -> Part:
    """Parse (path, machine folder, relative name) files into a :class:`Part`.

    Values are converted to float once per column; should that fail (a benchmark stored something
    that is not a number), the files are parsed again checking every benchmark (``strict``), so
    the bad ones are reported and left out while the rest still loads. With ``fp_root``, each
    run's fingerprint is read from where the suite writes it (:mod:`harness.bench.store`). NaN is
    read through the sentinel unless ``quoted`` (see the module docstring).
    """
    part, acc, fp_cache = Part(), _Pending(), {}
    written, float_nan = 0, quoted  # float_nan: some NaN came as floats (not a null)
    for file, machine_dir, rel in items:
        try:
            data, n = read_json(file, sentinel=True) if not quoted else (read_json(file), 0)
        except Quote:
            return parse_files(items, benches, strict, fp_root, quoted=True)
        except ValueError as err:
            part.problem(rel, f"{rel}: {err}; skipped")
            continue
        why = check_file(data)
        if why:
            part.problem(rel, f"{rel}: {why}; skipped")
            continue
        if n is None:
            float_nan = True
        else:
            written += n
        _parse_file(part, acc, data, rel, machine_dir, benches, strict)
        if fp_root is not None:
            row = part.files[-1]
            fp, why = sidecars.fingerprint_of_run(
                fp_root, machine_dir, row["commit"], row["env_name"], fp_cache
            )
            if why:
                part.problem(rel, why)
            if fp is not None:
                part.fps[(row["machine"], row["commit"], row["env_name"])] = fp
    try:
        part.values = np.array(acc.values, dtype=float) if acc.values else np.empty(0)
        part.stats = (
            np.column_stack([np.array(c, dtype=float) for c in acc.stats]) if acc.stats[0] else None
        )
        if part.values.ndim != 1 or len(part.values) != part.n_rows:
            raise ValueError("inconsistent result rows")
    except (TypeError, ValueError, OverflowError):
        if strict:
            raise
        return parse_files(items, benches, strict=True, fp_root=fp_root, quoted=quoted)
    if float_nan:
        part.failed = _failed_rows(acc.values, part.values)
    else:
        part.failed = np.flatnonzero(np.isnan(part.values)).tolist()  # only nulls are NaN yet
    if not quoted and not _unmark(part, written):
        return parse_files(items, benches, strict, fp_root, quoted=True)
    nan = NAN_TEXT if quoted else SENTINEL
    part.samples = [(start, [_sample(x, nan) for x in s]) for start, s in part.samples]
    return part


def _unmark(part: Part, written: int) -> bool:
    """Every sentinel among the numbers read back as NaN; False (nothing changed) unless there
    are exactly as many as were written, i.e. every ``NaN`` was a number we read."""
    values_at = part.values == SENTINEL
    stats_at = part.stats == SENTINEL if part.stats is not None else np.zeros((0, len(STATS)), bool)
    meta = [(i, j) for i, m in enumerate(part.block_meta) for j in (1, 2) if m[j] == SENTINEL]
    dates = [i for i, f in enumerate(part.files) if f["date"] == SENTINEL]
    samples = sum(
        v == SENTINEL for _, s in part.samples for x in s if isinstance(x, list) for v in x
    )
    if int(values_at.sum()) + int(stats_at.sum()) + len(meta) + len(dates) + samples != written:
        return False
    part.values[values_at] = math.nan
    if part.stats is not None:
        part.stats[stats_at] = math.nan
    for i, j in meta:
        m = list(part.block_meta[i])
        m[j] = math.nan
        part.block_meta[i] = tuple(m)  # type: ignore[assignment]
    for i in dates:
        part.files[i]["date"] = math.nan
    return True


def _failed_rows(raw: list[Any], values: Any) -> list[int]:
    """The rows asv stored as null (failed): among the NaN, those whose raw value is None."""
    nan = np.flatnonzero(np.isnan(values)).tolist() if values.ndim == 1 else []
    return [i for i in nan if raw[i] is None]


def _numbers(values: list[Any]) -> bool:
    """Whether a list holds only numbers a float holds, nulls and :data:`NAN_TEXT` (what becomes
    a float column)."""
    types = set(map(type, values))
    if str in types and all(v == NAN_TEXT for v in values if type(v) is str):
        types.discard(str)
    if not types <= _NUMERIC:
        return False
    return int not in types or all(type(v) is not int or abs(v) <= _MAX_FLOAT_INT for v in values)


@dataclass(frozen=True)
class _Columns:
    """Where asv's result columns sit in one file's rows."""

    width: int
    result: int
    params: int
    stats: tuple[int | None, ...]
    samples: int | None
    meta: tuple[int | None, int | None, int | None]  # version, started_at, duration

    @classmethod
    def of(cls, columns: list[Any]) -> _Columns:
        pos = {c: i for i, c in enumerate(columns) if type(c) is str}  # (check_file saw the two)
        return cls(
            width=len(columns),
            result=pos["result"],
            params=pos["params"],
            stats=tuple(pos.get(f"stats_{s}") for s in STATS),
            samples=pos.get("samples"),
            meta=(pos.get("version"), pos.get("started_at"), pos.get("duration")),
        )


def _parse_file(
    part: Part,
    acc: _Pending,
    data: dict[str, Any],
    rel: str,
    machine_dir: str,
    benches: dict[str, BenchmarkInfo],
    strict: bool,
) -> None:
    file_index = len(part.files)
    part.files.append(file_row(data, rel, machine_dir))
    cols = acc.columns_of(data["result_columns"])
    results = data["results"]
    for bench in sorted(results):
        try:
            block = _block(results[bench], bench, cols, benches, acc.grids, strict)
        except ValueError as err:
            part.problem(rel, f"{rel}: benchmark {bench}: {err}; skipped")
            continue
        _append(part, acc, file_index, bench, cols, *block)


def _block(
    row: Any,
    bench: str,
    cols: _Columns,
    benches: dict[str, BenchmarkInfo],
    grids: dict[str, Any],
    strict: bool,
) -> tuple[list[Any], int, Any, list[Any], Any]:
    """(row, n, grid, results, stats columns) of one benchmark; ValueError says why not."""
    if not isinstance(row, list):
        raise ValueError("not a result row")
    if len(row) < cols.width:
        row = row + [None] * (cols.width - len(row))
    n, grid = _grid(bench, row[cols.params], benches, grids)
    result = row[cols.result]
    if result is None:
        if n > MAX_COMBINATIONS:
            raise ValueError(f"no results for a grid of {n:,} parameter combinations")
        result = [None] * n  # asv compresses "every combination failed" to null
    elif not isinstance(result, list):
        result = [result]
    if len(result) != n:
        raise ValueError(f"{len(result)} results for {n:,} combinations")
    if strict and not _numbers(result):
        raise ValueError("non-numeric result")
    return row, n, grid, result, _stats_cols(row, cols.stats, n, strict)


def _grid(
    bench: str, p: Any, benches: dict[str, BenchmarkInfo], grids: dict[str, Any]
) -> tuple[int, Any]:
    """(number of combinations, (names, repr strings)) of a benchmark's parameters."""
    if p is None:
        p = []
    cached = grids.get(bench)
    if cached is not None and cached[0] == p:  # the usual case: same grid as the last file
        return cached[1], cached[2]
    if not isinstance(p, list) or not all(isinstance(x, list) for x in p):
        raise ValueError("malformed params")
    info = benches.get(bench)
    names = _param_names(len(p), info)
    if names is None:
        raise ValueError(
            f"params changed between runs ({len(p)} in this file, {len(info.param_names)} in "
            f"benchmarks.json: {', '.join(info.param_names)})"
        )
    n = math.prod(map(len, p))
    grid = (names, tuple(tuple(str(v) for v in x) for x in p))
    grids[bench] = (p, n, grid)
    return n, grid


def _param_names(n: int, info: BenchmarkInfo | None) -> tuple[str, ...] | None:
    if info is not None and info.param_names is not None:
        return info.param_names if len(info.param_names) == n else None
    return tuple(f"param{i + 1}" for i in range(n))


def _stats_cols(row: list[Any], i_stats: tuple[int | None, ...], n: int, strict: bool) -> Any:
    """The six stats lists of one block, None when asv kept none; ValueError when malformed."""
    cols = [row[i] if i is not None else None for i in i_stats]
    if cols == _NO_STATS:
        return None
    for c in cols:
        if c is not None and not (isinstance(c, list) and len(c) == n):
            raise ValueError("stats do not match the parameter grid")
        if strict and c is not None and not _numbers(c):
            raise ValueError("non-numeric stats")
    return cols


def _append(
    part: Part,
    acc: _Pending,
    file_index: int,
    bench: str,
    cols: _Columns,
    row: list[Any],
    n: int,
    grid: Any,
    result: list[Any],
    stat_cols: Any,
) -> None:
    """Add one checked benchmark block to ``part``."""
    start = part.n_rows
    part.block_file.append(file_index)
    part.block_bench.append(bench)
    part.block_len.append(n)
    part.block_grid.append(grid)
    i_version, i_started, i_duration = cols.meta
    started = row[i_started] if i_started is not None else math.nan
    duration = row[i_duration] if i_duration is not None else math.nan
    part.block_meta.append(
        (
            row[i_version] if i_version is not None else None,
            started if type(started) is float else sidecars.number(started),
            duration if type(duration) is float else sidecars.number(duration),
        )
    )
    acc.values.extend(result)  # a null (failed) is found among the NaN once: _failed_rows
    if stat_cols is not None:
        part.stats_rows.append((start, n))
        nones = None
        for store, c in zip(acc.stats, stat_cols, strict=True):
            if c is None:
                nones = nones or [None] * n
                c = nones
            store.extend(c)
    if cols.samples is not None:
        samples = row[cols.samples]
        if isinstance(samples, list) and len(samples) == n and samples.count(None) != n:
            part.samples.append((start, samples))  # (NaN in them: parse_files)
    part.n_rows += n


def _sample(x: Any, nan: Any) -> Any:
    """One benchmark's samples (a list of numbers) with ``nan`` (:data:`NAN_TEXT`, or the
    sentinel once counted) as float NaN."""
    if isinstance(x, list):
        return [math.nan if v == nan else v for v in x]
    return x


# --- merging parts ------------------------------------------------------------------------------


def merge(parts: list[Part]) -> Part:
    """One part from several, in order (blocks, rows and file indices renumbered)."""
    out = Part()
    for part in parts:
        files, rows = len(out.files), out.n_rows
        out.files.extend(part.files)
        out.problems.extend(part.problems)
        out.problem_items.extend(part.problem_items)
        out.block_file.extend(f + files for f in part.block_file)
        out.block_bench.extend(part.block_bench)
        out.block_len.extend(part.block_len)
        out.block_grid.extend(part.block_grid)
        out.block_meta.extend(part.block_meta)
        out.failed.extend(r + rows for r in part.failed)
        out.stats_rows.extend((r + rows, n) for r, n in part.stats_rows)
        out.samples.extend((r + rows, s) for r, s in part.samples)
        out.fps.update(part.fps)
        out.n_rows += part.n_rows
    out.values = np.concatenate([p.values for p in parts]) if parts else np.empty(0)
    kept = [p.stats for p in parts if p.stats is not None and len(p.stats)]
    out.stats = np.vstack(kept) if kept else None
    return out


def split(part: Part) -> dict[str, Part]:
    """Per item (relative name) the part its file contributed: its rows, blocks, fingerprint and
    problems (only problems for a file that was skipped). :func:`merge` puts them back."""
    out: dict[str, Part] = {}
    lens = np.asarray(part.block_len, dtype=np.int64)
    row_start = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    block_file = np.asarray(part.block_file, dtype=np.int64)
    stats_starts = [s for s, _ in part.stats_rows]
    stats_taken = np.concatenate([[0], np.cumsum([n for _, n in part.stats_rows])]).astype(int)
    sample_starts = [s for s, _ in part.samples]
    for f, row in enumerate(part.files):
        b0, b1 = (int(x) for x in np.searchsorted(block_file, [f, f + 1]))
        r0, r1 = int(row_start[b0]), int(row_start[b1])
        s0, s1 = bisect.bisect_left(stats_starts, r0), bisect.bisect_left(stats_starts, r1)
        m0, m1 = bisect.bisect_left(sample_starts, r0), bisect.bisect_left(sample_starts, r1)
        f0, f1 = bisect.bisect_left(part.failed, r0), bisect.bisect_left(part.failed, r1)
        key = (row["machine"], row["commit"], row["env_name"])
        out[row["file"]] = Part(
            files=[row],
            block_file=[0] * (b1 - b0),
            block_bench=part.block_bench[b0:b1],
            block_len=part.block_len[b0:b1],
            block_grid=part.block_grid[b0:b1],
            block_meta=part.block_meta[b0:b1],
            values=part.values[r0:r1],
            failed=[r - r0 for r in part.failed[f0:f1]],
            stats_rows=[(r - r0, n) for r, n in part.stats_rows[s0:s1]],
            stats=None if part.stats is None else part.stats[stats_taken[s0] : stats_taken[s1]],
            samples=[(r - r0, x) for r, x in part.samples[m0:m1]],
            n_rows=r1 - r0,
            fps={key: part.fps[key]} if key in part.fps else {},
        )
    for item, line in zip(part.problem_items, part.problems, strict=True):
        out.setdefault(item, Part(values=np.empty(0))).problem(item, line)
    return out
