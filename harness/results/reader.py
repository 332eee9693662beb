"""Any asv results folder (api version 2) as one pandas DataFrame, with the harness's sidecars.

asv has no pandas loader (asv#846) and keeps neither what was installed (asv#931) nor which BLAS
ran. :func:`load_results` reads the JSON files itself (``json`` plus ``ast.literal_eval`` for the
parameter values, never string splitting: values may hold commas) and joins the environment
fingerprints that the harness's suite writes beside them (:mod:`harness.bench.store`). A folder written by
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

Text columns are Categoricals, integer parameters int64 (nullable Int64 where a benchmark lacks
them), numbers float64, times UTC datetimes. The frame is built column-wise from compact arrays
(no per-row Python objects); folders of 800+ files are read by one process per core when the
cores are idle (``$HARNESS_WORKERS`` sets the number).

Bad input never raises: an unreadable file, JSON that is not asv results, an unknown api version, or
a benchmark whose parameters no longer fit is left out with one line to ``warn`` naming the file and
why; the frame's ``attrs`` keep ``files`` (result files read) and ``problems`` (those lines).
"""

from __future__ import annotations

import ast
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
HARNESS_DIR = "harness"  # harness.bench.store.HARNESS_DIR, repeated to keep this import light
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


def relative_line(line: str, root: Path) -> str:
    """A warning line with the results folder's own path left out (outputs stay relocatable)."""
    for prefix in sorted({str(root.resolve()) + os.sep, str(root) + os.sep}, key=len, reverse=True):
        line = line.replace(prefix, "")
    return line


def relpath(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse one JSON file; ValueError with a short reason for empty, binary or malformed files."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
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


# --- fingerprints and records (the harness's sidecars, see harness.bench.store) ----------------------


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
    from harness.bench import fingerprint

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
#: Derived from the per-component deviations: the worst of the first and of the last ten.
RECORD_COMPONENTS = ("lead_rel_diff", "trail_rel_diff")
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
        *RECORD_COMPONENTS,
        "sigdigits",
        "file",
    ]
    return pd.DataFrame(rows, columns=columns)


def _record_row(rec: dict[str, Any]) -> dict[str, Any]:
    from harness.analysis.metrics import leading_trailing  # scipy: only where records are read

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
        **dict(
            zip(RECORD_COMPONENTS, leading_trailing(cmp.get("component_rel_diff")), strict=True)
        ),
        "sigdigits": sig.get("minimum"),
    }


# --- the results files -------------------------------------------------------------------------


def iter_result_files(root: Path) -> Iterable[tuple[str, str]]:
    """(file path, machine folder name) of every results file: ``<root>/<machine>/*.json``.

    ``root`` may also be one machine folder or one results file.
    """
    if root.is_file():
        yield str(root), root.parent.name
        return
    if (root / "machine.json").is_file():
        folders = [str(root)]
    else:
        with os.scandir(root) as it:
            folders = sorted(e.path for e in it if e.is_dir() and e.name != HARNESS_DIR)
    for folder in folders:
        machine = os.path.basename(folder)
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.name.endswith(".json") and e.is_file())
        for name in names:
            if name not in SKIP_FILES:
                yield os.path.join(folder, name), machine


@dataclass
class _Part:
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


_NUMERIC = frozenset({float, int, type(None)})


def _number(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def _parse_files(
    items: list[tuple[str, str, str]],
    benches: dict[str, BenchmarkInfo],
    strict: bool = False,
    fp_root: str | None = None,
) -> _Part:
    """Parse result files into a :class:`_Part` (runs in a worker process for large folders).

    Values are converted to float once per column; should that fail (a benchmark stored something
    that is not a number), the files are parsed again checking every benchmark (``strict``), so
    the bad ones are reported and left out while the rest still loads. With ``fp_root``, each
    run's fingerprint is read from where the suite writes it (:mod:`harness.bench.store`).
    """
    import numpy as np

    part = _Part()
    values: list[Any] = []
    stats: list[list[Any]] = [[] for _ in STATS]
    grids: dict[Any, Any] = {}
    fp_cache: dict[str, Any] = {}
    for file, machine_dir, rel in items:
        try:
            data = read_json(file)
        except ValueError as err:
            part.problems.append(f"{rel}: {err}; skipped")
            continue
        why = _check_file(data)
        if why:
            part.problems.append(f"{rel}: {why}; skipped")
            continue
        _parse_file(part, data, rel, machine_dir, benches, values, stats, grids, strict)
        if fp_root is not None:
            _attach_fingerprint(part, fp_root, machine_dir, fp_cache)
    try:
        part.values = np.array(values, dtype=float) if values else np.empty(0)
        part.stats = (
            np.column_stack([np.array(c, dtype=float) for c in stats]) if stats[0] else None
        )
    except (TypeError, ValueError):
        if strict:
            raise
        return _parse_files(items, benches, strict=True, fp_root=fp_root)
    if part.values.ndim != 1 or len(part.values) != part.n_rows:
        if strict:
            raise ValueError("inconsistent result rows")
        return _parse_files(items, benches, strict=True, fp_root=fp_root)
    return part


def _attach_fingerprint(part: _Part, root: str, machine_dir: str, cache: dict[Any, Any]) -> None:
    """The fingerprint of the file just parsed, from ``<machine>/harness/<commit8>-<env>/``.

    Runs of one environment differ only in the commit, so lines are parsed once per content and
    the runs share one (slimmed) dict: :func:`_file_fingerprints` then labels it once.
    """
    from harness.bench.store import env_key

    row = part.files[-1]
    commit, env_name = row["commit"], row["env_name"]
    path = os.path.join(
        root, machine_dir, HARNESS_DIR, f"{commit[:8]}-{env_key(env_name)}", "fingerprint.jsonl"
    )
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return  # not there: scan() looks among all fingerprints, then warns
    content = raw.replace(commit.encode(), b"")
    fp = cache.get(content)
    if fp is None:
        try:
            line = _first_json_line(raw)
        except ValueError as err:
            part.problems.append(
                f"{relpath(Path(path), Path(root))}: {err}; fingerprint columns left empty"
            )
            return
        if line.get("commit") != commit or line.get("env_name") != env_name:
            return
        fp = cache[content] = _slim(line)
    part.fps[(row["machine"], commit, env_name)] = fp


def _first_json_line(raw: bytes) -> dict[str, Any]:
    """The first line of a JSON Lines file as an object (ValueError with the reason)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ValueError("binary file, not JSON Lines") from None
    lines = [x for x in text.splitlines() if x.strip()]
    if not lines:
        raise ValueError("empty file")
    try:
        first = json.loads(lines[0])
    except ValueError as err:
        raise ValueError(f"not valid JSON Lines ({err})") from None
    if not isinstance(first, dict):
        raise ValueError("first line is not a JSON object")
    return first


def _slim(fp: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint without what no column or label uses (CPU flags, mapped libraries), so a
    worker process sends little back; :func:`load_fingerprints` reads the whole lines."""
    drop = ("mapped_libraries", "platform", "hostname", "machine", "commit", "env_name")
    out = {k: v for k, v in fp.items() if k not in drop}
    if isinstance(out.get("cpu"), dict):
        out["cpu"] = {k: v for k, v in out["cpu"].items() if k != "flags"}
    pools = out.get("threadpools")
    if isinstance(pools, list):
        out["threadpools"] = [
            p for p in pools if isinstance(p, dict) and p.get("user_api") == "blas"
        ]
    return out


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


def _numbers(values: list[Any]) -> bool:
    """Whether a list holds only numbers and nulls (what becomes a float column)."""
    return set(map(type, values)) <= _NUMERIC


def _stats_cols(row: list[Any], i_stats: list[int | None], n: int, strict: bool) -> Any:
    """The six stats lists of one block, None when asv kept none; ValueError when malformed."""
    cols = [row[i] if i is not None else None for i in i_stats]
    if cols.count(None) == len(cols):
        return None
    for c in cols:
        if c is not None and not (isinstance(c, list) and len(c) == n):
            raise ValueError("stats do not match the parameter grid")
        if strict and c is not None and not _numbers(c):
            raise ValueError("non-numeric stats")
    return cols


def _parse_file(
    part: _Part,
    data: dict[str, Any],
    rel: str,
    machine_dir: str,
    benches: dict[str, BenchmarkInfo],
    values: list[Any],
    stats: list[list[Any]],
    grids: dict[Any, Any],
    strict: bool,
) -> None:
    file_index = len(part.files)
    part.files.append(_file_row(data, rel, machine_dir))
    columns = data["result_columns"]
    pos = {c: i for i, c in enumerate(columns)}
    i_result, i_params = pos["result"], pos["params"]
    i_stats = [pos.get(f"stats_{s}") for s in STATS]
    has_stats = [i for i in i_stats if i is not None]
    i_samples = pos.get("samples")
    i_version, i_started, i_duration = (pos.get(k) for k in ("version", "started_at", "duration"))
    width = len(columns)
    results = data["results"]
    problems = part.problems
    for bench in sorted(results):
        row = results[bench]
        if not isinstance(row, list):
            problems.append(f"{rel}: benchmark {bench}: not a result row; skipped")
            continue
        if len(row) < width:
            row = row + [None] * (width - len(row))
        p = row[i_params]
        if p is None:
            p = []
        cached = grids.get(bench)
        if cached is not None and cached[0] == p:  # the usual case: same grid as the last file
            n, grid = cached[1], cached[2]
        else:
            if not isinstance(p, list) or not all(isinstance(x, list) for x in p):
                problems.append(f"{rel}: benchmark {bench}: malformed params; skipped")
                continue
            info = benches.get(bench)
            names = _param_names(len(p), info)
            if names is None:
                problems.append(
                    f"{rel}: benchmark {bench}: params changed between runs ({len(p)} in this "
                    f"file, {len(info.param_names)} in benchmarks.json: "
                    f"{', '.join(info.param_names)}); skipped"
                )
                continue
            n = math.prod(map(len, p))
            grid = (names, tuple(tuple(str(v) for v in x) for x in p))
            grids[bench] = (p, n, grid)
        result = row[i_result]
        if result is None:
            result = [None] * n  # asv compresses "every combination failed" to null
        elif not isinstance(result, list):
            result = [result]
        if len(result) != n:
            problems.append(
                f"{rel}: benchmark {bench}: {len(result)} results for {n} combinations; skipped"
            )
            continue
        if strict and not _numbers(result):
            problems.append(f"{rel}: benchmark {bench}: non-numeric result; skipped")
            continue
        stat_cols = None
        if has_stats and [row[i] for i in has_stats].count(None) != len(has_stats):
            try:
                stat_cols = _stats_cols(row, i_stats, n, strict)
            except ValueError as err:
                problems.append(f"{rel}: benchmark {bench}: {err}; skipped")
                continue
        start = part.n_rows
        part.block_file.append(file_index)
        part.block_bench.append(bench)
        part.block_len.append(n)
        part.block_grid.append(grid)
        part.block_meta.append(
            (
                row[i_version] if i_version is not None else None,
                _number(row[i_started]) if i_started is not None else math.nan,
                _number(row[i_duration]) if i_duration is not None else math.nan,
            )
        )
        values.extend(result)
        if None in result:
            part.failed.extend(start + j for j, v in enumerate(result) if v is None)
        if stat_cols is not None:
            part.stats_rows.append((start, n))
            nones = [None] * n
            for acc, c in zip(stats, stat_cols, strict=True):
                acc.extend(nones if c is None else c)
        if i_samples is not None:
            samples = row[i_samples]
            if isinstance(samples, list) and len(samples) == n and samples.count(None) != n:
                part.samples.append((start, samples))
        part.n_rows += n


def _param_names(n: int, info: BenchmarkInfo | None) -> tuple[str, ...] | None:
    if info is not None and info.param_names is not None:
        return info.param_names if len(info.param_names) == n else None
    return tuple(f"param{i + 1}" for i in range(n))


def _safe_name(name: str) -> str:
    return f"param_{name}" if name in RESERVED or name.startswith("fp_") else name


#: Folders with fewer result files than this per worker process are read in this process.
PARALLEL_MIN_FILES = 400


def _workers(n_files: int) -> int:
    """Processes to read ``n_files`` with: $HARNESS_WORKERS, else one per core when the cores are
    idle, else 1. Reading is CPU bound: on a busy machine more processes only add overhead."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    forced = os.environ.get("HARNESS_WORKERS", "")
    if forced.isdigit() and int(forced) > 0:
        return min(int(forced), max(1, n_files))
    if cpus < 2 or n_files < 2 * PARALLEL_MIN_FILES or _cpu_contended(cpus):
        return 1
    return max(1, min(cpus, 8, n_files // PARALLEL_MIN_FILES))


def _cpu_contended(cpus: int) -> bool:
    """Whether runnable tasks wait for CPU (Linux pressure stall information, else load average)."""
    try:
        with open("/proc/pressure/cpu") as fh:
            some = fh.readline().split()  # some avg10=12.34 avg60=... avg300=... total=...
        return float(some[1].split("=")[1]) > 25.0
    except (OSError, IndexError, ValueError):
        pass
    try:
        return os.getloadavg()[0] > cpus - 0.5
    except OSError:
        return False


def _parse_parallel(
    items: list[tuple[str, str, str]],
    benches: dict[str, BenchmarkInfo],
    workers: int,
    fp_root: str | None = None,
) -> list[_Part]:
    """Parse contiguous chunks of ``items``, this process taking the first (order is kept)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        return [_parse_files(items, benches, fp_root=fp_root)]
    size = math.ceil(len(items) / workers)
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    try:
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(chunks) - 1, mp_context=ctx) as pool:
            futures = [pool.submit(_parse_files, c, benches, False, fp_root) for c in chunks[1:]]
            first = _parse_files(chunks[0], benches, fp_root=fp_root)
            return [first, *(f.result() for f in futures)]
    except (OSError, RuntimeError):  # no processes here (sandbox, limits): read serially
        return [_parse_files(items, benches, fp_root=fp_root)]


def _merge(parts: list[_Part]) -> _Part:
    import numpy as np

    if len(parts) == 1:
        return parts[0]
    out = _Part()
    for part in parts:
        files, rows = len(out.files), out.n_rows
        out.files.extend(part.files)
        out.problems.extend(part.problems)
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
    out.values = np.concatenate([p.values for p in parts])
    kept = [p.stats for p in parts if p.stats is not None]
    out.stats = np.vstack(kept) if kept else None
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
        """The typed column: int64 (Int64 with gaps), float64, Categorical of strings, objects."""
        return _typed(self.decoded, _small_codes(codes, len(self.decoded)))


def _small_codes(codes: Any, n_values: int) -> Any:
    """Codes in the narrowest integer type (a 4-million-row take moves less memory)."""
    import numpy as np

    dtype = np.int8 if n_values < 127 else np.int16 if n_values < 32_767 else np.int32
    return codes.astype(dtype, copy=False)


def _typed(vals: list[Any], codes: Any, lens: Any = None) -> Any:
    """``vals[codes]`` (code -1: missing) as the narrowest fitting column.

    With ``lens``, ``codes`` are per block and each block's value is repeated ``lens`` times.
    """
    import numpy as np
    import pandas as pd

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


def _factorize(values: list[Any]) -> tuple[Any, list[Any]]:
    """Codes (-1 for None/NaN) and distinct values; strings sorted, so order never leaks in."""
    import numpy as np
    import pandas as pd

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
    import numpy as np
    import pandas as pd

    arr = np.asarray(ms, dtype=float)
    if block_item is not None:
        arr = arr[block_item]
    ns = np.where(
        np.isnan(arr), np.iinfo(np.int64).min, (np.nan_to_num(arr) * 1e6).astype(np.int64)
    )
    return pd.DatetimeIndex(np.repeat(ns, lens).view("datetime64[ns]")).tz_localize("UTC")


def _frame(
    part: _Part, benches: dict[str, BenchmarkInfo], fps: Fingerprints, warn: Warn
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    lens = np.asarray(part.block_len, dtype=np.int64)
    n_rows = part.n_rows
    block_file = np.asarray(part.block_file, dtype=np.int64)
    out: dict[str, Any] = {}
    for key in RUN_KEY:
        out[key] = _spread([f[key] for f in part.files], lens, block_file)
    out["benchmark"] = _spread(part.block_bench, lens)

    params: dict[str, _ParamColumn] = {}
    grid_codes: dict[int, dict[str, Any]] = {}
    grids = []
    for g in part.block_grid:
        codes = grid_codes.get(id(g))
        if codes is None:
            codes = grid_codes[id(g)] = _grid_codes(g, params)
        grids.append(codes)
    gaps: dict[int, Any] = {}
    for name in params:
        pieces = []
        for g, n in zip(grids, part.block_len, strict=True):
            if name in g:
                pieces.append(g[name])
            else:
                if n not in gaps:
                    gaps[n] = np.full(n, -1, dtype=np.int32)
                pieces.append(gaps[n])
        out[_safe_name(name)] = params[name].build(np.concatenate(pieces))

    values = part.values
    out["value"] = values
    bench_units = {
        b: unit_for(b, benches[b].unit if b in benches else None) for b in set(part.block_bench)
    }
    out["unit"] = _spread([bench_units[b] for b in part.block_bench], lens)
    status = np.where(np.isnan(values), 1, 0).astype(np.int8)
    status[np.asarray(part.failed, dtype=np.int64)] = 2
    out["status"] = pd.Categorical.from_codes(status, ["ok", "skipped", "failed"])
    out["reason"] = pd.Categorical.from_codes(
        np.full(n_rows, -1, dtype=np.int8), [], validate=False
    )
    for j, name in enumerate(STATS):
        if part.stats is not None and len(part.stats) == n_rows:
            col = part.stats[:, j].copy()  # every block kept stats: already in row order
        else:
            col = np.full(n_rows, np.nan)
            taken = 0
            for start, n in part.stats_rows:
                col[start : start + n] = part.stats[taken : taken + n, j]
                taken += n
        if name in ("number", "repeat"):
            mask = np.isnan(col)
            col[mask] = 0
            out[name] = pd.arrays.IntegerArray(col.astype(np.int64), mask)
        else:
            out[name] = col
    samples = np.full(n_rows, None, dtype=object)
    for start, smp in part.samples:
        samples[start : start + len(smp)] = smp
    out["samples"] = pd.Series(samples, dtype=object)
    meta = part.block_meta
    out["version"] = _spread([m[0] if isinstance(m[0], str) else None for m in meta], lens)
    out["started_at"] = _timestamps([m[1] for m in meta], lens)
    out["duration"] = np.repeat(np.asarray([m[2] for m in meta], dtype=float), lens)
    out["date"] = _timestamps([f["date"] for f in part.files], lens, block_file)
    for key in ("python", "requirements", "env_vars", "file"):
        out[key] = _spread([f[key] for f in part.files], lens, block_file)

    fp_rows = _file_fingerprints(part, fps, warn)
    names = {column_name(d) for d in FP_PACKAGES} | {k for row in fp_rows for k in row}
    fp_names = [*FP_COLUMNS, *sorted(names - set(FP_COLUMNS))]
    for k in fp_names:
        col = _spread([row.get(k) for row in fp_rows], lens, block_file)
        if k in ("fp_threads", "fp_cpu_count") and not isinstance(col, pd.arrays.IntegerArray):
            col = _int_column(col, n_rows)
        out[k] = col

    param_cols = [_safe_name(n) for n in params]
    order = (*HEAD, *param_cols, *TAIL, *fp_names)
    frame = pd.DataFrame({k: out[k] for k in order}, copy=False)
    frame.attrs["params"] = param_cols
    return frame


def _int_column(col: Any, n: int) -> Any:
    """A nullable Int64 column from an int64 array, or an all-missing one from anything else."""
    import numpy as np
    import pandas as pd

    if isinstance(col, np.ndarray) and col.dtype.kind == "i":
        return pd.arrays.IntegerArray(col, np.zeros(n, dtype=bool))
    return pd.arrays.IntegerArray(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))


def _file_fingerprints(part: _Part, fps: Fingerprints, warn: Warn) -> list[dict[str, Any]]:
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
    from harness.render.formats import is_missing

    reasons = []
    for d in sub.to_dict("records"):
        pk = canonical_params({_orig(p): _plain(d[p]) for p in params if not is_missing(d[p])})
        reasons.append(lookup.get((d["machine"], d["commit"], d["env_name"], d["benchmark"], pk)))
    import numpy as np
    import pandas as pd

    categories = sorted({r for r in reasons if r is not None})
    index = {r: i for i, r in enumerate(categories)}
    codes = np.full(len(frame), -1, dtype=np.int32)
    codes[np.flatnonzero(mask)] = [index.get(r, -1) if r is not None else -1 for r in reasons]
    frame["reason"] = pd.Categorical.from_codes(codes, categories)


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (so they serialize as the records did)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


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
    fingerprints: Fingerprints = field(default_factory=Fingerprints)

    def infos(self) -> list[RunInfo]:
        """Every run, labelled (see :func:`run_infos`)."""
        return run_infos(self.frame, self.fingerprints)


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
    sidecars = {p.name for p in fps_root.iterdir() if (p / HARNESS_DIR).is_dir()}
    base_text = str(bench_root) + os.sep
    items = [
        (f, m, f[len(base_text) :] if f.startswith(base_text) else relpath(Path(f), bench_root))
        for f, m in iter_result_files(root)
    ]
    fp_root = str(fps_root) if sidecars else None
    workers = _workers(len(items)) if parallel else 1
    part = _merge(_parse_parallel(items, benches, workers, fp_root))
    for line in part.problems:
        report(line)
    fps = Fingerprints(dict(part.fps), sidecars)
    if sidecars and any(
        (f["machine"], f["commit"], f["env_name"]) not in fps.by_key for f in part.files
    ):
        # Some run's fingerprint is not where the suite puts it (another machine name): look it up
        # among all of them (problems with those files were reported above).
        everything = load_fingerprints(fps_root, warn=lambda line: None)
        fps.by_key = {**everything.by_key, **fps.by_key}
    files = len(part.files)
    frame = _frame(part, benches, fps, report)
    recs = load_records(fps_root, warn=report) if records and sidecars else load_records(None)
    attach_reasons(frame, recs)
    frame.attrs["files"] = files
    frame.attrs["problems"] = list(problems)
    return Loaded(frame, files, problems, bench_root, recs, fps)


def load_results(path: str | os.PathLike[str], *, warn: Warn | None = None) -> pd.DataFrame:
    """Any asv results folder (api version 2) as a DataFrame; see the module docstring.

    ``warn`` receives one line per file (or benchmark) left out, naming it and why; by default
    each becomes a :class:`ResultsWarning`. ``frame.attrs['files']`` is the number of result
    files read, ``frame.attrs['problems']`` the lines reported.
    """
    return scan(path, warn=warn).frame


def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (machine, commit, env_name) with its label and fingerprint columns, sorted."""
    _, table = run_ids(frame)
    return table.sort_values(list(RUN_KEY), kind="stable").reset_index(drop=True)


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


# --- naming and selecting runs -------------------------------------------------------------------

#: Short names accepted in selectors such as ``sklearn=1.9.1``.
ALIASES = {"sklearn": "scikit-learn", "scikit_learn": "scikit-learn", "sc": "scanpy", "np": "numpy"}


@dataclass(frozen=True)
class RunInfo:
    """One run (machine, commit, environment) with what a person or a selector needs of it."""

    machine: str
    commit: str
    env_name: str
    label: str
    packages: tuple[tuple[str, str], ...] = ()
    blas: str | None = None
    threads: int | None = None
    python: str | None = None
    date: float = math.nan

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.machine, self.commit, self.env_name)


def run_info(
    key: tuple[str, str, str],
    fp: dict[str, Any] | None,
    *,
    requirements: str | None = None,
    python: str | None = None,
    date: float = math.nan,
) -> RunInfo:
    """A :class:`RunInfo` from the fingerprint, else from what asv recorded as requested."""
    from harness.bench import fingerprint

    if fp:
        packages = tuple(sorted((str(k), str(v)) for k, v in (fp.get("packages") or {}).items()))
        return RunInfo(
            *key,
            label=fingerprint.label(fp),
            packages=packages,
            blas=fp.get("blas"),
            threads=fingerprint.threads(fp),
            python=fp.get("python"),
            date=date,
        )
    reqs = tuple(sorted(tuple(r.split("==", 1)) for r in (requirements or "").split() if "==" in r))
    label = run_label({"python": python, "requirements": requirements})
    return RunInfo(*key, label=label, packages=reqs, python=python, date=date)


def run_infos(frame: pd.DataFrame, fps: Fingerprints | None = None) -> list[RunInfo]:
    """Every run of a results frame, sorted by (machine, commit, env_name)."""
    _, table = run_ids(frame)
    out = []
    for r in table.sort_values(list(RUN_KEY), kind="stable").to_dict("records"):
        key = (r["machine"], r["commit"], r["env_name"])
        fp = fps.find(*key) if fps is not None else None
        stamp = r.get("date")
        date = stamp.value / 1e6 if stamp is not None and not render_missing(stamp) else math.nan
        out.append(
            run_info(key, fp, requirements=r.get("requirements"), python=r.get("python"), date=date)
        )
    return out


def render_missing(x: Any) -> bool:
    from harness.render.formats import is_missing

    return is_missing(x)


# --- fast grouping of millions of rows -----------------------------------------------------------


def codes_of(series: pd.Series) -> tuple[Any, pd.Index]:
    """Integer codes (-1 for missing) and the values they stand for."""
    import numpy as np
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        return np.asarray(series.cat.codes, dtype=np.int64), series.cat.categories
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.int64), pd.Index(uniques)


def combine(codes: list[Any]) -> Any:
    """One int64 key per row from several code arrays (mixed radix; -1 stays distinct)."""
    import numpy as np

    key = np.zeros(len(codes[0]) if codes else 0, dtype=np.int64)
    for c in codes:
        card = int(c.max(initial=-1)) + 2
        key = key * card + (c + 1)
    return key


def run_ids(frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """Per row, the index of its run in the returned runs table (first-seen order).

    The runs table holds machine, commit, env_name (as str), date, python, requirements, the
    ``fp_*`` columns and ``label`` (:func:`run_label`).
    """
    import numpy as np
    import pandas as pd

    cols = [
        c
        for c in frame.columns
        if c in (*RUN_KEY, "date", "python", "requirements") or c.startswith("fp_")
    ]
    if frame.empty:
        return np.empty(0, dtype=np.int64), pd.DataFrame(columns=[*cols, "label"])
    key = combine([codes_of(frame[c])[0] for c in RUN_KEY])
    ids, uniq = pd.factorize(key)
    first = np.full(len(uniq), len(key), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(key), dtype=np.int64))
    table = frame[cols].take(first).reset_index(drop=True)
    for c in RUN_KEY:
        table[c] = table[c].astype(str)
    labels = (
        table["fp_label"].astype(object) if "fp_label" in table else pd.Series([None] * len(table))
    )
    missing = labels.isna().to_numpy()
    if missing.any():
        fallback = table.loc[missing, ["python", "requirements"]].to_dict("records")
        labels = labels.to_numpy(dtype=object)
        labels[missing] = [run_label(r) for r in fallback]
    table["label"] = list(labels)
    return ids.astype(np.int64), table


def unique_labels(infos: Iterable[RunInfo]) -> dict[tuple[str, str, str], str]:
    """Labels that tell runs apart: the readable label, then machine, then commit, if needed."""
    infos = list(infos)
    out = {i.key: i.label for i in infos}
    for extra in (lambda i: i.machine, lambda i: f"commit {i.commit[:8]}", lambda i: i.env_name):
        counts: dict[str, int] = {}
        for i in infos:
            counts[out[i.key]] = counts.get(out[i.key], 0) + 1
        for i in infos:
            if counts[out[i.key]] > 1:
                out[i.key] = f"{out[i.key]} · {extra(i)}"
    return out


def matches(selector: str, info: RunInfo) -> bool:
    """Whether a run matches a selector.

    ``dist=version[,dist=version...]`` (``scanpy=1.11.5``, ``sklearn=1.9.1``; also ``machine=``,
    ``commit=``, ``env=``, ``blas=``, ``threads=``, ``python=``): every part must hold, versions
    from the fingerprint (or what asv was asked to install when there is none). Otherwise the
    selector is a commit hash prefix (4+ hex digits), a machine, an asv environment name,
    ``machine/env_name`` or the environment's label (exactly, or a unique substring: see
    :func:`select`).
    """
    if "=" in selector:
        return all(
            _matches_part(part.strip(), info) for part in selector.split(",") if part.strip()
        )
    if selector in (info.label, info.env_name, info.machine, f"{info.machine}/{info.env_name}"):
        return True
    return (
        len(selector) >= 4
        and all(c in "0123456789abcdef" for c in selector.lower())
        and (info.commit.lower().startswith(selector.lower()))
    )


def _matches_part(part: str, info: RunInfo) -> bool:
    key, _, value = part.partition("=")
    key = key.strip().lower()
    value = value.strip().lstrip("=")
    if key in ("machine",):
        return info.machine == value
    if key in ("commit",):
        return info.commit.startswith(value)
    if key in ("env", "env_name"):
        return info.env_name == value
    if key == "blas":
        return bool(info.blas) and value.lower() in str(info.blas).lower()
    if key == "threads":
        return str(info.threads) == value
    if key == "python":
        return bool(info.python) and str(info.python).startswith(value)
    dist = ALIASES.get(key, key)
    packages = {k.lower(): v for k, v in info.packages}
    return packages.get(dist) == value


def select(selector: str, infos: Iterable[RunInfo]) -> list[RunInfo]:
    """The runs a selector picks (see :func:`matches`); a label substring if nothing else does."""
    infos = list(infos)
    picked = [i for i in infos if matches(selector, i)]
    if picked or "=" in selector:
        return picked
    by_label = [i for i in infos if selector.lower() in i.label.lower()]
    return by_label
