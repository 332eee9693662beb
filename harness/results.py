"""Any asv results folder (api version 2) as one pandas DataFrame, with the harness's sidecars.

asv has no pandas loader (asv#846) and keeps neither what was installed (asv#931) nor which BLAS
ran. :func:`load_results` reads the JSON files itself (``json`` plus ``ast.literal_eval`` for the
parameter values, never string splitting: values may hold commas) and joins the environment
fingerprints that the harness's suite writes beside them (:mod:`harness.store`). A folder written by
another project's suite loads the same way; its fingerprint columns are empty.

Columns of the frame, one row per (machine, commit, environment, benchmark, parameter combination):

- ``machine, commit, env_name, benchmark``; one column per benchmark parameter (names from
  ``benchmarks.json``, else asv's ``param1``, ``param2``...; a name that clashes with a fixed column
  becomes ``param_<name>``);
- ``value`` (float), ``unit``, ``status`` ("ok"; "failed" where asv stored null; "skipped" where it
  stored NaN), ``reason`` (a skip's reason when the harness recorded one);
- the stats asv keeps: ``ci_99_a, ci_99_b, q_25, q_75, number, repeat``; ``samples`` (a list, when
  asv was run with ``--record-samples``); ``version, started_at, duration`` of the benchmark;
- per file: ``date, python, requirements, env_vars`` (asv's, i.e. what was requested) and ``file``
  (the path relative to the results folder);
- the fingerprint, ``fp_*``: ``fp_label`` (a readable environment name), ``fp_blas``,
  ``fp_blas_vendor``, ``fp_blas_version``, ``fp_blas_core``, ``fp_threads``, ``fp_cpu``,
  ``fp_cpu_count``, ``fp_python``, ``fp_env_vars`` and ``fp_<package>`` versions.

Bad input never raises: an unreadable file, JSON that is not asv results, an unknown api version, or
a benchmark whose parameters no longer fit is left out with one line to ``warn`` naming the file and
why; the frame's ``attrs`` keep ``files`` (result files read) and ``problems`` (those lines).
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

API_VERSION = 2
HARNESS_DIR = "harness"  # harness.store.HARNESS_DIR, repeated to keep this import light
SKIP_FILES = frozenset({"machine.json", "benchmarks.json"})
STATS = ("ci_99_a", "ci_99_b", "q_25", "q_75", "number", "repeat")
RUN_KEY = ("machine", "commit", "env_name")
#: Fingerprint columns always present (empty for foreign suites), before the per-package ones.
FP_COLUMNS = (
    "fp_label",
    "fp_blas",
    "fp_blas_vendor",
    "fp_blas_version",
    "fp_blas_core",
    "fp_threads",
    "fp_cpu",
    "fp_cpu_count",
    "fp_python",
    "fp_env_vars",
)
#: Packages whose version columns exist even when no fingerprint names them.
FP_PACKAGES = ("scanpy", "anndata", "scikit-learn", "numpy", "scipy", "threadpoolctl")
HEAD = ("machine", "commit", "env_name", "benchmark")
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
_UNIT_BY_PREFIX = (
    ("time_", "seconds"),
    ("timeraw_", "seconds"),
    ("peakmem_", "bytes"),
    ("mem_", "bytes"),
)
_NUMPY_SCALAR = re.compile(r"^np\.\w+\((.*)\)$", re.DOTALL)

Warn = Callable[[str], None]


class ResultsWarning(UserWarning):
    """A results file, or part of one, was left out; the message names it and says why."""


def _default_warn(line: str) -> None:
    import warnings

    warnings.warn(line, ResultsWarning, stacklevel=4)


# --- small pieces ------------------------------------------------------------------------------


def decode_param(text: Any) -> Any:
    """A parameter value from asv's repr() string: a Python literal, else the string itself.

    numpy 2 writes scalars as ``np.float64(1.5)``: the literal inside is used.
    """
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    m = _NUMPY_SCALAR.match(text.strip())
    if m:
        try:
            return ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
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


def column_name(dist: str) -> str:
    """The fingerprint column of a package's version: ``fp_scikit_learn`` for scikit-learn."""
    return "fp_" + re.sub(r"[^0-9A-Za-z]+", "_", dist).strip("_").lower()


def canonical_params(params: dict[str, Any]) -> str:
    """One string per parameter combination (sorted keys), for joining records onto rows."""
    return json.dumps(params, sort_keys=True, default=str)


def relpath(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_json(path: Path) -> Any:
    """Parse one JSON file; ValueError with a short reason for empty, binary or malformed files."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read ({err.strerror or err})") from None
    if not raw.strip():
        raise ValueError("empty file")
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("binary file, not JSON")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ValueError("binary file, not UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        at_end = err.pos >= len(raw.rstrip())
        hint = "truncated JSON" if at_end else "not valid JSON"
        raise ValueError(f"{hint} ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None


# --- benchmarks.json ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkInfo:
    """What benchmarks.json says of one benchmark (both may be missing)."""

    param_names: tuple[str, ...] | None
    unit: str | None


def read_benchmarks(root: Path, warn: Warn) -> dict[str, BenchmarkInfo]:
    """benchmarks.json of a results folder: param names and units; {} when absent or unreadable."""
    path = root / "benchmarks.json"
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except ValueError as err:
        warn(f"{relpath(path, root)}: {err}; parameter names and units are guessed")
        return {}
    if not isinstance(data, dict):
        warn(
            f"{relpath(path, root)}: not an asv benchmarks.json; parameter names and units are guessed"
        )
        return {}
    out = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            continue
        names = entry.get("param_names")
        names = tuple(str(n) for n in names) if isinstance(names, list) else None
        unit = entry.get("unit") if isinstance(entry.get("unit"), str) else None
        out[name] = BenchmarkInfo(names, unit)
    return out


# --- fingerprints and records (the harness's sidecars, see harness.store) ----------------------


def _blas_parts(fp: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    pools = [
        p
        for p in fp.get("threadpools") or []
        if isinstance(p, dict) and p.get("user_api") == "blas"
    ]
    if pools:
        p = pools[0]
        vendor = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(
            str(p.get("internal_api") or ""), p.get("internal_api")
        )
        return vendor, p.get("version"), p.get("architecture")
    text = fp.get("blas")
    if isinstance(text, str) and text:
        parts = text.split()
        if len(parts) >= 2 and parts[1][:1].isdigit():
            return parts[0], parts[1], " ".join(parts[2:]) or None
        return text, None, None
    return None, None, None


def fingerprint_columns(fp: dict[str, Any] | None) -> dict[str, Any]:
    """The ``fp_*`` values of one fingerprint line (all None for None)."""
    from harness import fingerprint

    if not fp:
        return dict.fromkeys(FP_COLUMNS)
    vendor, version, core = _blas_parts(fp)
    cpu = fp.get("cpu") if isinstance(fp.get("cpu"), dict) else {}
    env = fp.get("env_vars") if isinstance(fp.get("env_vars"), dict) else {}
    out: dict[str, Any] = {
        "fp_label": fingerprint.label(fp),
        "fp_blas": fp.get("blas"),
        "fp_blas_vendor": vendor,
        "fp_blas_version": version,
        "fp_blas_core": core,
        "fp_threads": fingerprint.threads(fp),
        "fp_cpu": cpu.get("model"),
        "fp_cpu_count": cpu.get("usable") or cpu.get("count"),
        "fp_python": fp.get("python"),
        "fp_env_vars": " ".join(f"{k}={v}" for k, v in sorted(env.items())) or None,
    }
    for dist, ver in sorted((fp.get("packages") or {}).items()):
        out[column_name(dist)] = ver
    return out


def iter_run_folders(root: Path) -> Iterable[Path]:
    """Every results/<machine>/harness/<run>/ folder."""
    for machine in sorted(p for p in root.iterdir() if p.is_dir()):
        h = machine / HARNESS_DIR
        if h.is_dir():
            yield from sorted(p for p in h.iterdir() if p.is_dir())


def _read_jsonl_first(path: Path) -> dict[str, Any]:
    from harness import io

    try:
        lines = io.read_jsonl(path)
    except UnicodeDecodeError:
        raise ValueError("binary file, not JSON Lines") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"not valid JSON Lines ({err})") from None
    if not lines:
        raise ValueError("empty file")
    if not isinstance(lines[0], dict):
        raise ValueError("first line is not a JSON object")
    return lines[0]


@dataclass
class Fingerprints:
    """Fingerprint lines by run key, plus the machines whose folders hold harness sidecars."""

    by_key: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    machines_with_sidecars: set[str] = field(default_factory=set)

    def find(self, machine: str, commit: str, env_name: str) -> dict[str, Any] | None:
        fp = self.by_key.get((machine, commit, env_name))
        if fp is not None:
            return fp
        # The suite names its machine folder itself (store.machine_name); asv may use another.
        others = [v for (m, c, e), v in self.by_key.items() if c == commit and e == env_name]
        return others[0] if len(others) == 1 else None


def load_fingerprints(path: str | os.PathLike[str], *, warn: Warn | None = None) -> Fingerprints:
    """Every ``fingerprint.jsonl`` under a results folder, keyed by (machine, commit, env_name)."""
    warn = warn or _default_warn
    root = Path(path)
    out = Fingerprints()
    if not root.is_dir():
        return out
    for folder in iter_run_folders(root):
        out.machines_with_sidecars.add(folder.parent.parent.name)
        fp_path = folder / "fingerprint.jsonl"
        if not fp_path.is_file():
            continue
        try:
            fp = _read_jsonl_first(fp_path)
        except ValueError as err:
            warn(f"{relpath(fp_path, root)}: {err}; fingerprint columns left empty")
            continue
        key = tuple(str(fp.get(k) or "") for k in RUN_KEY)
        if not key[1] or not key[2]:
            warn(f"{relpath(fp_path, root)}: fingerprint without commit or env_name; ignored")
            continue
        out.by_key[key] = fp
    return out


#: Fields of a record's comparison that become columns of :func:`load_records`.
RECORD_METRICS = (
    "bitwise",
    "max_abs_diff",
    "sign_flips",
    "aligned_max_abs_diff",
    "aligned_max_rel_diff",
    "angle_k10_deg",
    "angle_all_deg",
    "variance_max_rel_diff",
    "n_explained",
    "n_unexplained",
    "norm_e_rel",
    "knn_jaccard",
    "leiden_ari",
)
RECORD_PARAMS = ("dataset", "layout", "dtype", "svd_solver", "threads")


def load_records(path: str | os.PathLike[str] | None, *, warn: Warn | None = None) -> pd.DataFrame:
    """The sidecar records (``records/<benchmark>/<params>.jsonl``), one row each.

    Columns: machine, commit, env_name, benchmark, check, the parameters (dataset, layout, dtype,
    svd_solver, threads when present), value, unit, status, reason, ``params_key`` (canonical
    JSON of the parameters), the comparison's metrics (:data:`RECORD_METRICS`) and ``sigdigits``
    (the minimum over components). ``path=None`` gives the empty frame.
    """
    import pandas as pd

    warn = warn or _default_warn
    rows = []
    root = Path(path) if path is not None else None
    if root is not None and root.is_dir():
        for folder in iter_run_folders(root):
            records = folder / "records"
            if not records.is_dir():
                continue
            for file in sorted(records.glob("*/*.jsonl")):
                try:
                    rec = _read_jsonl_first(file)
                    rows.append(_record_row(rec))
                except (ValueError, TypeError, AttributeError) as err:
                    warn(f"{relpath(file, root)}: {err}; record ignored")
    columns = [
        *RUN_KEY,
        "benchmark",
        "check",
        *RECORD_PARAMS,
        "value",
        "unit",
        "status",
        "reason",
        "params_key",
        *RECORD_METRICS,
        "sigdigits",
        "file",
    ]
    return pd.DataFrame(rows, columns=columns)


def _record_row(rec: dict[str, Any]) -> dict[str, Any]:
    params = rec.get("params")
    if not isinstance(params, dict):
        raise ValueError("record without a params object")
    for key in (*RUN_KEY, "benchmark"):
        if not isinstance(rec.get(key), str):
            raise ValueError(f"record without {key!r}")
    cmp = rec.get("comparison") if isinstance(rec.get("comparison"), dict) else {}
    sig = rec.get("sigdigits") if isinstance(rec.get("sigdigits"), dict) else {}
    check = rec.get("check")
    if not check:
        name = rec["benchmark"].rsplit(".", 1)[-1]
        check = name.split("_", 1)[1] if name.startswith("track_") else None
    value = rec.get("value")
    return {
        **{k: rec[k] for k in RUN_KEY},
        "benchmark": rec["benchmark"],
        "check": check,
        **{k: params.get(k) for k in RECORD_PARAMS},
        "value": float(value) if isinstance(value, (int, float)) else math.nan,
        "unit": rec.get("unit"),
        "status": rec.get("status") or ("ok" if isinstance(value, (int, float)) else "skipped"),
        "reason": rec.get("reason"),
        "params_key": canonical_params(params),
        **{k: cmp.get(k) for k in RECORD_METRICS},
        "sigdigits": sig.get("minimum"),
    }


# --- the results files -------------------------------------------------------------------------


def iter_result_files(root: Path) -> Iterable[tuple[Path, str]]:
    """(file, machine folder name) of every results file: ``<root>/<machine>/*.json``.

    ``root`` may also be one machine folder or one results file.
    """
    if root.is_file():
        yield root, root.parent.name
        return
    if (root / "machine.json").is_file():
        folders = [root]
    else:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != HARNESS_DIR)
    for folder in folders:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.name.endswith(".json") and e.is_file())
        for name in names:
            if name not in SKIP_FILES:
                yield folder / name, folder.name


@dataclass
class _Block:
    """One benchmark of one file: where its rows come from."""

    file: int  # index into the part's files
    bench: str
    n: int
    grid: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]  # param names, asv's repr strings
    version: Any
    started_at: float
    duration: float
    stats: int  # index into the part's stats arrays, -1 when asv kept none
    samples: list[Any] | None


@dataclass
class _Part:
    """What parsing a run of files yields: compact arrays, cheap to send between processes."""

    files: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[_Block] = field(default_factory=list)
    values: Any = None  # float64, NaN where asv stored NaN or null
    failed: Any = None  # bool, True where asv stored null
    stats: Any = None  # float64 (n_stats_rows, 6)
    problems: list[str] = field(default_factory=list)
    n_stats: int = 0


def _number(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def _parse_files(items: list[tuple[Path, str, str]], benches: dict[str, BenchmarkInfo]) -> _Part:
    """Parse result files into a :class:`_Part` (runs in a worker process for large folders)."""
    import numpy as np

    part = _Part()
    values: list[Any] = []
    failed: list[Any] = []
    stats: list[Any] = []
    for file, machine_dir, rel in items:
        try:
            data = read_json(file)
        except ValueError as err:
            part.problems.append(f"{rel}: {err}; skipped")
            continue
        _parse_file(part, data, rel, machine_dir, benches, values, failed, stats)
    part.values = np.concatenate(values) if values else np.empty(0)
    part.failed = np.concatenate(failed) if failed else np.empty(0, dtype=bool)
    part.stats = np.vstack(stats) if stats else np.empty((0, len(STATS)))
    return part


def _file_row(data: dict[str, Any], rel: str, machine_dir: str) -> dict[str, Any]:
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    reqs = data.get("requirements") if isinstance(data.get("requirements"), dict) else {}
    env_vars = data.get("env_vars") if isinstance(data.get("env_vars"), dict) else {}
    return {
        "machine": params.get("machine") if isinstance(params.get("machine"), str) else machine_dir,
        "commit": data["commit_hash"],
        "env_name": data["env_name"],
        "date": _number(data.get("date")),
        "python": str(data.get("python") or params.get("python") or "") or None,
        "requirements": " ".join(f"{k}=={v}" if v else str(k) for k, v in sorted(reqs.items()))
        or None,
        "env_vars": " ".join(f"{k}={v}" for k, v in sorted(env_vars.items())) or None,
        "file": rel,
    }


def _check_file(data: Any) -> str | None:
    """Why ``data`` is not asv results of api version 2, or None."""
    if not isinstance(data, dict) or "results" not in data or "result_columns" not in data:
        what = "a JSON object" if not isinstance(data, dict) else "'results' and 'result_columns'"
        return f"not asv results (no {what})"
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


def _parse_file(
    part: _Part,
    data: Any,
    rel: str,
    machine_dir: str,
    benches: dict[str, BenchmarkInfo],
    values: list[Any],
    failed: list[Any],
    stats: list[Any],
) -> None:
    import numpy as np

    why = _check_file(data)
    if why:
        part.problems.append(f"{rel}: {why}; skipped")
        return
    file_index = len(part.files)
    part.files.append(_file_row(data, rel, machine_dir))
    columns = data["result_columns"]
    pos = {c: i for i, c in enumerate(columns)}
    i_result, i_params = pos["result"], pos["params"]
    i_stats = [pos.get(f"stats_{s}") for s in STATS]
    i_samples, i_version, i_started, i_duration = (
        pos.get(k) for k in ("samples", "version", "started_at", "duration")
    )
    width = len(columns)
    results = data["results"]
    for bench in sorted(results):
        row = results[bench]
        where = f"{rel}: benchmark {bench}"
        if not isinstance(row, list):
            part.problems.append(f"{where}: not a result row; skipped")
            continue
        if len(row) < width:
            row = row + [None] * (width - len(row))
        p = row[i_params]
        p = [] if p is None else p
        if not isinstance(p, list) or not all(isinstance(x, list) for x in p):
            part.problems.append(f"{where}: malformed params; skipped")
            continue
        n = math.prod(len(x) for x in p)
        info = benches.get(bench)
        names = _param_names(len(p), info)
        if names is None:
            part.problems.append(
                f"{where}: params changed between runs ({len(p)} in this file, "
                f"{len(info.param_names)} in benchmarks.json: {', '.join(info.param_names)}); skipped"
            )
            continue
        result = row[i_result]
        if result is None:
            result = [None] * n  # asv compresses "every combination failed" to null
        elif not isinstance(result, list):
            result = [result]
        if len(result) != n:
            part.problems.append(
                f"{where}: {len(result)} results for {n} parameter combinations; skipped"
            )
            continue
        try:
            value_array = np.array(result, dtype=float)
            stat_cols = [row[i] if i is not None else None for i in i_stats]
            stat_array = None
            if any(c is not None for c in stat_cols):
                if not all(c is None or (isinstance(c, list) and len(c) == n) for c in stat_cols):
                    raise ValueError("stats do not match the parameter grid")
                stat_array = np.column_stack(
                    [
                        np.full(n, np.nan) if c is None else np.array(c, dtype=float)
                        for c in stat_cols
                    ]
                )
        except (TypeError, ValueError) as err:
            reason = str(err) if "stats" in str(err) else "non-numeric result"
            part.problems.append(f"{where}: {reason}; skipped")
            continue
        samples = row[i_samples] if i_samples is not None else None
        if not isinstance(samples, list) or len(samples) != n or all(x is None for x in samples):
            samples = None
        grid = (names, tuple(tuple(str(v) for v in x) for x in p))
        meta = [row[i] if i is not None else None for i in (i_version, i_started, i_duration)]
        stats_index = -1
        if stat_array is not None:
            stats_index = part.n_stats
            part.n_stats += n
            stats.append(stat_array)
        part.blocks.append(
            _Block(
                file_index,
                bench,
                n,
                grid,
                meta[0],
                _number(meta[1]),
                _number(meta[2]),
                stats_index,
                samples,
            )
        )
        values.append(value_array)
        failed.append(
            np.fromiter((v is None for v in result), bool, n)
            if None in result
            else np.zeros(n, bool)
        )


def _param_names(n: int, info: BenchmarkInfo | None) -> tuple[str, ...] | None:
    if info is not None and info.param_names is not None:
        return info.param_names if len(info.param_names) == n else None
    return tuple(f"param{i + 1}" for i in range(n))


def _safe_name(name: str) -> str:
    return f"param_{name}" if name in RESERVED or name.startswith("fp_") else name


def _workers(n_files: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, 8, n_files // PARALLEL_MIN_FILES))


#: Folders with fewer files than this per worker are read in this process.
PARALLEL_MIN_FILES = 400


def _parse_parallel(
    items: list[tuple[Path, str, str]], benches: dict[str, BenchmarkInfo], workers: int
) -> list[_Part]:
    """Parse contiguous chunks of ``items`` in worker processes (order is kept)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        return [_parse_files(items, benches)]
    size = math.ceil(len(items) / workers)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    try:
        with ProcessPoolExecutor(
            max_workers=len(chunks), mp_context=mp.get_context("fork")
        ) as pool:
            futures = [pool.submit(_parse_files, c, benches) for c in chunks[1:]]
            first = _parse_files(chunks[0], benches)  # this process does a share too
            return [first, *(f.result() for f in futures)]
    except (OSError, RuntimeError):  # no processes here (sandbox, limits): read serially
        return [_parse_files(items, benches)]


def _merge(parts: list[_Part]) -> _Part:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    out = _Part()
    stats_offset = 0
    for part in parts:
        file_offset = len(out.files)
        out.files.extend(part.files)
        out.problems.extend(part.problems)
        for b in part.blocks:
            b.file += file_offset
            if b.stats >= 0:
                b.stats += stats_offset
            out.blocks.append(b)
        stats_offset += len(part.stats)
    out.values = np.concatenate([p.values for p in parts])
    out.failed = np.concatenate([p.failed for p in parts])
    out.stats = np.vstack([p.stats for p in parts])
    return out


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
        """The typed column: int64/Int64, float64, bool, a Categorical of strings, else objects."""
        import numpy as np
        import pandas as pd

        vals = self.decoded
        missing = codes < 0
        if vals and all(type(v) is int for v in vals):
            data = np.asarray(vals, dtype=np.int64)[np.where(missing, 0, codes)]
            return pd.arrays.IntegerArray(data, missing) if missing.any() else data
        if vals and all(type(v) in (int, float) for v in vals):
            return np.where(
                missing, np.nan, np.asarray(vals, dtype=float)[np.where(missing, 0, codes)]
            )
        if vals and all(type(v) is str for v in vals):
            return (
                pd.Categorical.from_codes(codes, pd.Index(vals, dtype=object))
                if len(set(vals)) == len(vals)
                else _objects(vals, codes)
            )
        return _objects(vals, codes)


def _objects(vals: list[Any], codes: Any) -> Any:
    import numpy as np

    arr = np.empty(len(vals) + 1, dtype=object)
    arr[: len(vals)] = vals
    arr[len(vals)] = None
    return arr[np.where(codes < 0, len(vals), codes)]


def _grid_codes(
    grid: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], params: dict[str, _ParamColumn]
) -> dict[str, Any]:
    """Per parameter name, the codes of every combination of a grid, in itertools.product order."""
    import numpy as np

    names, values = grid
    if not names:
        return {}
    per_dim = [
        np.asarray([params.setdefault(nm, _ParamColumn()).code(v) for v in vs], dtype=np.int32)
        for nm, vs in zip(names, values, strict=True)
    ]
    idx = np.indices([len(v) for v in values]).reshape(len(values), -1)
    return {nm: per_dim[d][idx[d]] for d, nm in enumerate(names)}


def _per_file(values: list[Any], file_codes: Any) -> Any:
    """A per-file value spread over the rows: Categorical for strings, float for numbers."""
    import numpy as np
    import pandas as pd

    if all(v is None or isinstance(v, str) for v in values):
        cat = pd.Categorical(values)
        return pd.Categorical.from_codes(np.asarray(cat.codes)[file_codes], cat.categories)
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)[file_codes]
        if all(v is None or isinstance(v, int) for v in values):
            mask = np.isnan(arr)
            return pd.arrays.IntegerArray(np.where(mask, 0, arr).astype(np.int64), mask)
        return arr
    return _objects(values, np.asarray(file_codes))


def _frame(
    part: _Part, benches: dict[str, BenchmarkInfo], fps: Fingerprints, warn: Warn
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    blocks = part.blocks
    lens = np.asarray([b.n for b in blocks], dtype=np.int64)
    n_rows = int(lens.sum())
    block_of_row = np.repeat(np.arange(len(blocks)), lens)
    file_codes = np.asarray([b.file for b in blocks], dtype=np.int64)[block_of_row]
    out: dict[str, Any] = {}
    for key in RUN_KEY:
        out[key] = _per_file([f[key] for f in part.files], file_codes)
    bench_list = sorted({b.bench for b in blocks})
    bench_index = {b: i for i, b in enumerate(bench_list)}
    bench_codes = np.asarray([bench_index[b.bench] for b in blocks], dtype=np.int64)[block_of_row]
    out["benchmark"] = pd.Categorical.from_codes(bench_codes, bench_list)

    params: dict[str, _ParamColumn] = {}
    grid_cache: dict[Any, dict[str, Any]] = {}
    grids = [
        grid_cache.get(b.grid) or grid_cache.setdefault(b.grid, _grid_codes(b.grid, params))
        for b in blocks
    ]
    for name in params:
        parts = [
            g.get(name) if name in g else np.full(b.n, -1, dtype=np.int32)
            for g, b in zip(grids, blocks, strict=True)
        ]
        codes = np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
        out[_safe_name(name)] = params[name].build(codes)

    values = part.values
    out["value"] = values
    units = [unit_for(b, benches[b].unit if b in benches else None) for b in bench_list]
    unit_cats = sorted({u for u in units if u})
    lookup = np.asarray([unit_cats.index(u) if u else -1 for u in units] + [-1], dtype=np.int64)
    out["unit"] = pd.Categorical.from_codes(
        lookup[bench_codes] if n_rows else np.empty(0, np.int64), unit_cats
    )
    status = np.where(part.failed, 2, np.where(np.isnan(values), 1, 0))
    out["status"] = pd.Categorical.from_codes(status, ["ok", "skipped", "failed"])
    out["reason"] = np.full(n_rows, None, dtype=object)
    stats = np.full((n_rows, len(STATS)), np.nan)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]) if len(blocks) else np.empty(0, np.int64)
    for b, start in zip(blocks, starts, strict=True):
        if b.stats >= 0:
            stats[start : start + b.n] = part.stats[b.stats : b.stats + b.n]
    for j, s in enumerate(STATS):
        col = stats[:, j]
        if s in ("number", "repeat"):
            mask = np.isnan(col)
            out[s] = pd.arrays.IntegerArray(np.where(mask, 0, col).astype(np.int64), mask)
        else:
            out[s] = col
    samples = np.full(n_rows, None, dtype=object)
    for b, start in zip(blocks, starts, strict=True):
        if b.samples is not None:
            samples[start : start + b.n] = b.samples
    out["samples"] = samples
    out["version"] = _per_file(
        [b.version if isinstance(b.version, str) else None for b in blocks], block_of_row
    )
    out["started_at"] = pd.to_datetime(
        np.asarray([b.started_at for b in blocks], dtype=float)[block_of_row], unit="ms", utc=True
    )
    out["duration"] = np.asarray([b.duration for b in blocks], dtype=float)[block_of_row]
    out["date"] = pd.to_datetime(
        np.asarray([f["date"] for f in part.files] + [np.nan], dtype=float)[file_codes],
        unit="ms",
        utc=True,
    )
    for key in ("python", "requirements", "env_vars", "file"):
        out[key] = _per_file([f[key] for f in part.files], file_codes)

    fp_rows = _file_fingerprints(part, fps, warn)
    names = {column_name(d) for d in FP_PACKAGES} | {k for row in fp_rows for k in row}
    fp_names = [*FP_COLUMNS, *sorted(names - set(FP_COLUMNS))]
    for k in fp_names:
        out[k] = _per_file([row.get(k) for row in fp_rows], file_codes)

    param_cols = [_safe_name(n) for n in params]
    frame = pd.DataFrame({k: out[k] for k in (*HEAD, *param_cols, *TAIL, *fp_names)}, copy=False)
    frame.attrs["params"] = param_cols
    return frame


def _file_fingerprints(part: _Part, fps: Fingerprints, warn: Warn) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cache: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in part.files:
        key = (f["machine"], f["commit"], f["env_name"])
        if key not in cache:
            fp = fps.find(*key)
            if fp is None and key[0] in fps.machines_with_sidecars:
                warn(
                    f"{f['file']}: no harness fingerprint for this run; fingerprint columns left empty"
                )
            cache[key] = fingerprint_columns(fp)
        rows.append(cache[key])
    return rows


def attach_reasons(frame: pd.DataFrame, records: pd.DataFrame) -> None:
    """Fill ``reason`` of skipped rows from the harness's records (in place)."""
    if records.empty or frame.empty:
        return
    rec = records[records["reason"].notna()]
    if rec.empty:
        return
    lookup = {
        (m, c, e, b, k): r
        for m, c, e, b, k, r in zip(
            rec["machine"],
            rec["commit"],
            rec["env_name"],
            rec["benchmark"],
            rec["params_key"],
            rec["reason"],
            strict=True,
        )
    }
    benches = set(rec["benchmark"])
    mask = (frame["status"] != "ok").to_numpy() & frame["benchmark"].isin(benches).to_numpy()
    if not mask.any():
        return
    params = [p for p in frame.attrs.get("params", []) if p in frame.columns]
    sub = frame.loc[mask, [*RUN_KEY, "benchmark", *params]]
    reasons = []
    for row in sub.itertuples(index=False):
        d = row._asdict()
        pk = canonical_params({_orig(p): d[p] for p in params if d[p] is not None})
        reasons.append(lookup.get((d["machine"], d["commit"], d["env_name"], d["benchmark"], pk)))
    frame.loc[mask, "reason"] = reasons


def _orig(name: str) -> str:
    return (
        name[len("param_") :]
        if name.startswith("param_") and name[len("param_") :] in RESERVED
        else name
    )


# --- the entry point ---------------------------------------------------------------------------


@dataclass
class Loaded:
    """A loaded results folder: the frame, the files read, and every problem reported."""

    frame: pd.DataFrame
    files: int
    problems: list[str]
    root: Path
    records: pd.DataFrame


def scan(
    path: str | os.PathLike[str],
    *,
    warn: Warn | None = None,
    records: bool = True,
    parallel: bool = True,
) -> Loaded:
    """Read a results folder (see :func:`load_results`); also return the count of files read."""
    problems: list[str] = []
    sink = warn or _default_warn

    def report(line: str) -> None:
        problems.append(line)
        sink(line)

    root = Path(path)
    if not root.exists():
        from harness.errors import HarnessError

        raise HarnessError(f"{root}: no such file or directory")
    base = root if root.is_dir() else root.parent
    bench_root = (
        base
        if (base / "benchmarks.json").is_file()
        or (root.is_dir() and not (root / "machine.json").is_file())
        else base.parent
    )
    benches = read_benchmarks(bench_root, report)
    fps_root = bench_root if bench_root.is_dir() else base
    fps = load_fingerprints(fps_root, warn=report)
    items = [(f, m, relpath(f, bench_root)) for f, m in iter_result_files(root)]
    part = _merge(_parse_parallel(items, benches, _workers(len(items)) if parallel else 1))
    for line in part.problems:
        report(line)
    files = len(part.files)
    frame = _frame(part, benches, fps, report)
    recs = (
        load_records(fps_root, warn=report)
        if records and fps.machines_with_sidecars
        else load_records(None)
    )
    attach_reasons(frame, recs)
    frame.attrs["files"] = files
    frame.attrs["problems"] = list(problems)
    return Loaded(frame, files, problems, bench_root, recs)


def load_results(path: str | os.PathLike[str], *, warn: Warn | None = None) -> pd.DataFrame:
    """Any asv results folder (api version 2) as a DataFrame; see the module docstring.

    ``warn`` receives one line per file (or benchmark) left out, naming it and why; by default
    each becomes a :class:`ResultsWarning`. ``frame.attrs['files']`` is the number of result
    files read, ``frame.attrs['problems']`` the lines reported.
    """
    return scan(path, warn=warn).frame


def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (machine, commit, env_name) with its label and fingerprint columns, sorted."""
    fp_cols = [c for c in frame.columns if c.startswith("fp_")]
    cols = [*RUN_KEY, "date", "python", "requirements", *fp_cols]
    if frame.empty:
        return frame[cols].iloc[0:0].assign(label=[])
    first = frame[cols].drop_duplicates(subset=list(RUN_KEY))
    first = first.astype({k: str for k in RUN_KEY})
    first = first.sort_values(list(RUN_KEY), kind="stable").reset_index(drop=True)
    first["label"] = [run_label(r) for r in first.to_dict("records")]
    return first


def run_label(run: dict[str, Any]) -> str:
    """The readable label of a run: the fingerprint's, else what asv says was requested."""
    label = run.get("fp_label")
    if isinstance(label, str) and label and label != "unknown environment":
        return label
    parts = []
    python = run.get("python")
    if isinstance(python, str) and python:
        ver = re.search(r"(\d+\.\d+(?:\.\d+)?)", python)
        parts.append(f"python {ver.group(1)}" if ver else "python (existing interpreter)")
    reqs = run.get("requirements")
    if isinstance(reqs, str) and reqs:
        parts.append(reqs.replace(" ", " · ").replace("==", " ") + " (requested)")
    return (
        " · ".join(parts) + " (no fingerprint)" if parts else "unknown environment (no fingerprint)"
    )
