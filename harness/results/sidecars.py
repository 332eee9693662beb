"""The harness's files beside asv's results (``results/<machine>/harness/``), read and validated.

Per run folder (:mod:`harness.bench.store`): ``fingerprint.jsonl`` (the environment),
``inputs.jsonl`` (every matrix handed to PCA) and ``records/<benchmark>/<params>.jsonl`` (the
comparison behind each ``track_`` value); ``study/study.jsonl`` pins the study's commit. Every
file is read only when it is a regular file of at most :data:`harness.io.MAX_SIDECAR_BYTES` and
validated once, here: wrong-typed fingerprint fields are dropped, a record's numbers that
no float holds become missing, and each problem is one line to ``warn`` naming the file, so the
views downstream see well-typed dicts and frames only.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness import io
from harness.analysis.metrics import leading_trailing
from harness.analysis import rounding
from harness.analysis.rounding import VERDICTS as ROUNDING_VERDICTS
from harness.bench import fingerprint
from harness.errors import HarnessError
from harness.results.problems import Warn, default_warn, relpath, subfolders
from harness.vocabulary import (
    ANCHORS_DIR,
    CONFIG_KEYS,
    HARNESS_DIR,
    RECORD_PARAMS,
    RUN_KEY,
    STUDY_DIR,
    run_folder_name,
)

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
#: Counts (threads, cores) beyond this are not counts: the field is dropped.
MAX_COUNT = 1 << 20


def column_name(dist: str) -> str:
    """The fingerprint column of a package's version: ``fp_scikit_learn`` for scikit-learn."""
    return "fp_" + re.sub(r"[^0-9A-Za-z]+", "_", dist).strip("_").lower()


def canonical_params(params: dict[str, Any]) -> str:
    """One string per parameter combination (sorted keys), for joining records onto rows."""
    return json.dumps(params, sort_keys=True, default=str)


def number(x: Any) -> float:
    """``x`` as a float; NaN for anything else, including integers beyond float range."""
    if isinstance(x, float):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        try:
            return float(x)
        except OverflowError:
            return math.nan
    return math.nan


# --- fingerprints ----------------------------------------------------------------------------


def _is_count(x: Any) -> bool:
    return type(x) is int and 0 <= x < MAX_COUNT


def _is_text(x: Any) -> bool:
    return isinstance(x, str)


def _text_or_none(x: Any) -> bool:
    return x is None or isinstance(x, str)


#: What each field of a fingerprint line must be; others are kept as they are (no view uses them).
_FIELDS = {
    "blas": _text_or_none,
    "blas_loaded": _text_or_none,
    "python": _text_or_none,
    "commit": _is_text,
    "env_name": _is_text,
    "machine": _is_text,
    "env_vars": lambda x: isinstance(x, dict),
    "packages": lambda x: isinstance(x, dict),
    "cpu": lambda x: isinstance(x, dict),
    "threadpools": lambda x: isinstance(x, list),
}
_CPU_FIELDS = {"model": _text_or_none, "count": _is_count, "usable": _is_count}
_POOL_FIELDS = {
    "num_threads": _is_count,
    "user_api": _text_or_none,
    "internal_api": _text_or_none,
    "version": _text_or_none,
    "architecture": _text_or_none,
}


def _kind(x: Any) -> str:
    return {dict: "object", list: "list", str: "string"}.get(type(x), type(x).__name__)


#: Fields the suite always writes (:func:`harness.bench.fingerprint.collect`) that labels and
#: columns read: a fingerprint without one is still used, and the missing field named.
_REQUIRED = ("packages", "threadpools", "blas", "python", "cpu", "env_vars")
#: The packages every environment of the suite has and labels name.
_REQUIRED_PACKAGES = ("scanpy", "scikit-learn", "numpy", "scipy")
#: What threadpoolctl reports of every pool; a pool without them is dropped.
_POOL_REQUIRED = ("num_threads", "user_api")


def normalise_fingerprint(fp: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of a fingerprint line with every wrong-typed field dropped, and those fields named
    (and the fields the suite always writes that are missing, as ``name (missing)``).

    Packages and environment variables must map names to strings; a thread pool with a bad
    or missing field is dropped whole (its thread count is what the labels read).
    """
    bad: list[str] = [f"{key} (missing)" for key in _REQUIRED if key not in fp]
    if isinstance(fp.get("packages"), dict):
        bad += [f"packages.{d} (missing)" for d in _REQUIRED_PACKAGES if d not in fp["packages"]]
    out = {}
    for key, value in fp.items():
        check = _FIELDS.get(key)
        if check is not None and not check(value):
            bad.append(f"{key} ({_kind(value)})")
            continue
        out[key] = value
    for key in ("packages", "env_vars"):
        if key in out:
            out[key] = _text_values(out[key], key, bad)
    if "cpu" in out:
        out["cpu"] = _checked(out["cpu"], _CPU_FIELDS, "cpu", bad)
    if "threadpools" in out:
        out["threadpools"] = _pools(out["threadpools"], bad)
    return out, bad


def _pools(pools: list[Any], bad: list[str]) -> list[dict[str, Any]]:
    """The thread pools whose every field has its type and which have the required ones."""
    kept = []
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict):
            bad.append(f"threadpools[{i}] ({_kind(pool)})")
            continue
        missing = [f"threadpools[{i}].{k} (missing)" for k in _POOL_REQUIRED if k not in pool]
        bad.extend(missing)
        if len(_checked(pool, _POOL_FIELDS, f"threadpools[{i}]", bad)) == len(pool) and not missing:
            kept.append(pool)
    return kept


def _text_values(d: dict[str, Any], key: str, bad: list[str]) -> dict[str, str]:
    kept = {str(k): v for k, v in d.items() if isinstance(v, str)}
    bad.extend(f"{key}.{k} ({_kind(v)})" for k, v in d.items() if not isinstance(v, str))
    return kept


def _checked(d: dict[str, Any], checks: dict[str, Any], where: str, bad: list[str]) -> dict:
    kept = {k: v for k, v in d.items() if k not in checks or checks[k](v)}
    bad.extend(f"{where}.{k} ({_kind(v)})" for k, v in d.items() if k not in kept)
    return kept


def parse_fingerprint(
    raw: bytes, path: str | os.PathLike[str]
) -> tuple[dict[str, Any], str | None]:
    """The normalised first line of a fingerprint file's content, and the problem line, if any.

    Raises :class:`harness.io.JSONLinesError` when there is no readable first line.
    """
    lines = io.parse_jsonl(raw, path)
    if not lines:
        raise io.JSONLinesError(path, "empty file")
    fp, bad = normalise_fingerprint(lines[0])
    why = f"fingerprint fields left out or missing: {', '.join(bad)}" if bad else None
    return fp, why


def read_fingerprint(path: Path, root: Path, warn: Warn) -> dict[str, Any] | None:
    """One fingerprint file, normalised; None (and one line to ``warn``) when unreadable."""
    try:
        fp, why = parse_fingerprint(io.read_regular(path), path)
    except io.UnreadableError as err:
        warn(f"{relpath(path, root)}: {err.reason}; fingerprint ignored")
        return None
    if why:
        warn(f"{relpath(path, root)}: {why}")
    return fp


def slim(fp: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint without what no column or label uses (CPU flags, mapped libraries), so a
    worker process sends little back; :func:`load_fingerprints` keeps the whole lines."""
    drop = ("mapped_libraries", "platform", "hostname", "machine", "commit", "env_name")
    out = {k: v for k, v in fp.items() if k not in drop}
    if "cpu" in out:
        out["cpu"] = {k: v for k, v in out["cpu"].items() if k != "flags"}
    if "threadpools" in out:
        out["threadpools"] = [p for p in out["threadpools"] if p.get("user_api") == "blas"]
    return out


def blas_parts(fp: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(vendor, version, kernel) of the BLAS a normalised fingerprint reports."""
    pools = [p for p in fp.get("threadpools") or [] if p.get("user_api") == "blas"]
    if pools:
        p = pools[0]
        vendor = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(
            str(p.get("internal_api") or ""), p.get("internal_api")
        )
        return vendor, p.get("version"), p.get("architecture")
    text = fp.get("blas")
    if text:
        parts = text.split()
        if len(parts) >= 2 and parts[1][:1].isdigit():
            return parts[0], parts[1], " ".join(parts[2:]) or None
        return text, None, None
    return None, None, None


def fingerprint_columns(fp: dict[str, Any] | None) -> dict[str, Any]:
    """The ``fp_*`` values of one normalised fingerprint line (all None for None)."""
    if not fp:
        return dict.fromkeys(FP_COLUMNS)
    vendor, version, core = blas_parts(fp)
    cpu = fp.get("cpu") or {}
    env = fp.get("env_vars") or {}
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


def iter_run_folders(root: Path, warn: Warn | None = None) -> Iterable[Path]:
    """Every results/<machine>/harness/<run>/ folder (not the study's pin nor the digests'
    anchors); folders that cannot be listed are reported."""
    sink = warn or (lambda line: None)
    for machine in subfolders(root, root, sink):
        h = machine / HARNESS_DIR
        if h.is_dir():
            yield from (f for f in subfolders(h, root, sink) if f.name not in NOT_RUNS)


def run_key(fp: dict[str, Any]) -> tuple[str, str, str]:
    """The (machine, commit, env_name) a fingerprint line names ('' where it names none)."""
    return tuple(str(fp.get(k) or "") for k in RUN_KEY)  # type: ignore[return-value]


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
    warn = warn or default_warn
    root = Path(path)
    out = Fingerprints()
    if not root.is_dir():
        return out
    for folder in iter_run_folders(root, warn):
        out.machines_with_sidecars.add(folder.parent.parent.name)
        fp_path = folder / "fingerprint.jsonl"
        if not os.path.lexists(fp_path):
            continue
        fp = read_fingerprint(fp_path, root, warn)
        if fp is None:
            continue
        key = run_key(fp)
        if not key[1] or not key[2]:
            warn(f"{relpath(fp_path, root)}: fingerprint without commit or env_name; ignored")
            continue
        out.by_key[key] = fp
    return out


def fingerprint_of_run(
    root: str, machine_dir: str, commit: str, env_name: str, cache: dict[bytes, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """The slimmed fingerprint of one run, from where the suite writes it, and a problem line.

    Runs of one environment differ only in the commit, so content is parsed once (``cache``)
    and the runs share one dict, which the frame then labels once. (None, None) when the run
    has no folder here; a problem line when its folder has no readable fingerprint or one that
    names another run (the folder is named after the run). The caller then looks among all.
    """
    path = os.path.join(root, machine_dir, HARNESS_DIR, run_folder_name(commit, env_name))
    path = os.path.join(path, "fingerprint.jsonl")

    def rel() -> str:  # only a problem line names it (pathlib for 5,000 runs costs 0.1 s)
        return relpath(Path(path), Path(root))

    if not os.path.lexists(path):  # the suite writes it first: a run folder without it is damaged
        gone = os.path.isdir(os.path.dirname(path))
        return None, f"{rel()}: no such file; fingerprint columns left empty" if gone else None
    try:
        raw = io.read_regular(path)
    except io.UnreadableError as err:
        return None, f"{rel()}: {err.reason}; fingerprint ignored"
    content = raw.replace(commit.encode(), b"")
    if content not in cache:
        try:
            fp, why = parse_fingerprint(raw, path)
        except io.JSONLinesError as err:
            return None, f"{rel()}: {err.reason}; fingerprint columns left empty"
        if fp.get("commit") != commit or fp.get("env_name") != env_name:
            return None, f"{rel()}: names another run; fingerprint ignored"
        cache[content] = (slim(fp), why)
    fp, why = cache[content]
    return fp, f"{rel()}: {why}" if why else None


# --- inputs.jsonl and the study's pin ----------------------------------------------------------

_INPUT_FIELDS = {"dataset": _is_text, "layout": _is_text, "dtype": _is_text}


def _is_input(line: dict[str, Any]) -> bool:
    if not all(check(line.get(k)) for k, check in _INPUT_FIELDS.items()):
        return False
    shape = line.get("shape")
    if shape is not None and not (
        isinstance(shape, list) and len(shape) == 2 and all(type(n) is int and n > 0 for n in shape)
    ):
        return False
    return line.get("nnz") is None or type(line.get("nnz")) is int


def read_inputs(folder: Path, *, warn: Warn | None = None) -> list[dict[str, Any]]:
    """The lines of a run folder's ``inputs.jsonl`` that describe a matrix ([] when absent).

    A line needs string ``dataset``, ``layout`` and ``dtype``; ``shape`` (two positive ints)
    and ``nnz`` (an int) when present. Other lines are left out with one line to ``warn``.
    """
    warn = warn or default_warn
    path = folder / "inputs.jsonl"
    if not path.is_file():
        return []
    try:
        lines = io.read_jsonl(path)
    except io.JSONLinesError as err:
        warn(f"{path}: {err.reason}; inputs ignored")
        return []
    bad = [i + 1 for i, line in enumerate(lines) if not _is_input(line)]
    if bad:
        warn(f"{path}: line {', '.join(map(str, bad))}: not a description of an input; left out")
    return [line for line in lines if _is_input(line)]


def study_pin_path(results_dir: Path, machine: str) -> Path:
    """Where the commit of ``machine``'s study is kept (not .json: asv would read it)."""
    return results_dir / machine / HARNESS_DIR / STUDY_DIR / "study.jsonl"


def read_study_pin(results_dir: Path, machine: str) -> str | None:
    """The commit ``machine``'s study is pinned to, None before a study started.

    Raises HarnessError naming the file when it exists but holds no commit.
    """
    path = study_pin_path(results_dir, machine)
    if not path.exists():
        return None
    try:
        lines = io.read_jsonl(path)
    except io.JSONLinesError as err:
        raise HarnessError(f'{path}: {err.reason}; expected one line {{"commit": ...}}') from None
    commit = lines[0].get("commit") if lines else None
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-fA-F]{7,64}", commit):
        what = "empty file" if not lines else f"no commit hash (commit: {commit!r})"
        raise HarnessError(f'{path}: {what}; expected one line {{"commit": ...}}')
    return commit


# --- records -----------------------------------------------------------------------------------

#: Folders beside the run folders under <machine>/harness/.
NOT_RUNS = (STUDY_DIR, ANCHORS_DIR)

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
)
#: Derived from the per-component deviations: the worst of the first and of the last ten.
RECORD_COMPONENTS = ("lead_rel_diff", "trail_rel_diff")
#: From the calibrated judgement (issue #10): the verdict, which outputs moved and by how much,
#: and Leiden's own sensitivity on the same graph (lowest ARI of other seeds / one edge moved).
RECORD_JUDGED = (
    "verdict",
    "moved",
    "embedding_rel_diff",
    "loadings_rel_diff",
    "variance_rel_diff",
    "knn_jaccard",
    "leiden_ari",
    "ari_other_seed",
    "ari_one_edge",
    "downstream_unavailable",
    "beyond_cause",
)
RECORD_COLUMNS = (
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
    *RECORD_JUDGED,
    "sigdigits",
    "sigdigits_raw",
    "sigdigits_n",
    "file",
)


def load_records(path: str | os.PathLike[str] | None, *, warn: Warn | None = None) -> pd.DataFrame:
    """The sidecar records (``records/<benchmark>/<params>.jsonl``), one row each.

    Columns (:data:`RECORD_COLUMNS`): machine, commit, env_name, benchmark, check, the
    parameters, value, unit, status, reason, ``params_key`` (canonical JSON of the parameters),
    the comparison's metrics (:data:`RECORD_METRICS`) and ``sigdigits`` (the minimum over
    components). ``path=None`` gives the empty frame.
    """
    warn = warn or default_warn
    rows = []
    root = Path(path) if path is not None else None
    if root is not None and root.is_dir():
        for folder in iter_run_folders(root, warn):
            records = folder / "records"
            if not records.is_dir():
                continue
            for bench in subfolders(records, root, warn):
                for file in sorted([*bench.glob("*.jsonl"), *bench.glob("*.jsonl.gz")]):
                    try:
                        rows.append(
                            {**record_row(read_first_line(file)), "file": relpath(file, root)}
                        )
                    except ValueError as err:
                        why = err.reason if isinstance(err, io.JSONLinesError) else err
                        warn(f"{relpath(file, root)}: {why}; record ignored")
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def read_first_line(path: Path) -> dict[str, Any]:
    """The first line of a JSON Lines file (:class:`harness.io.JSONLinesError` when none)."""
    lines = io.read_jsonl(path)
    if not lines:
        raise io.JSONLinesError(path, "empty file")
    return lines[0]


def _scalar(x: Any) -> Any:
    """A record's value as a column may hold it: a bool, str, None or float-sized number."""
    if x is None or isinstance(x, (bool, str, float)):
        return x
    if isinstance(x, int):
        return x if abs(x) < 2**53 else math.nan
    return None


def record_row(rec: dict[str, Any]) -> dict[str, Any]:
    """The row of one record line (ValueError when it names no run, benchmark or parameters, or
    a configuration key is missing or not a string); ``file`` is left to the caller."""
    params = rec.get("params")
    if not isinstance(params, dict):
        raise ValueError("record without a params object")
    for key in CONFIG_KEYS:  # what joins a record onto its table row
        if not isinstance(params.get(key), str):
            what = "without" if key not in params else f"with a {_kind(params[key])} as"
            raise ValueError(f"record {what} params.{key}")
    for key in (*RUN_KEY, "benchmark"):
        if not isinstance(rec.get(key), str):
            raise ValueError(f"record without {key!r}")
    params = {str(k): v if _scalar(v) is v else str(v) for k, v in params.items()}
    cmp = rec.get("comparison") if isinstance(rec.get("comparison"), dict) else {}
    sig = rec.get("sigdigits") if isinstance(rec.get("sigdigits"), dict) else {}
    check = rec.get("check") if isinstance(rec.get("check"), str) else None
    if not check:
        name = rec["benchmark"].rsplit(".", 1)[-1]
        check = name.split("_", 1)[1] if name.startswith("track_") else None
    raw_value = rec.get("value")
    value = number(raw_value)
    has_value = isinstance(raw_value, (int, float)) and not isinstance(raw_value, bool)
    components = cmp.get("component_rel_diff")
    if not isinstance(components, list):
        components = None
    else:
        components = [number(v) if v is not None else None for v in components]
    text = {k: rec.get(k) if isinstance(rec.get(k), str) else None for k in ("unit", "status")}
    return {
        **{k: rec[k] for k in RUN_KEY},
        "benchmark": rec["benchmark"],
        "check": check,
        **{k: params.get(k) for k in RECORD_PARAMS},
        "value": value,
        "unit": text["unit"],
        "status": text["status"] or ("ok" if has_value else "skipped"),
        "reason": rec.get("reason") if isinstance(rec.get("reason"), str) else None,
        "params_key": canonical_params(params),
        **{k: _scalar(cmp.get(k)) for k in RECORD_METRICS},
        **dict(zip(RECORD_COMPONENTS, leading_trailing(components), strict=True)),
        **judged_fields(rec),
        "sigdigits": _opt_number(sig.get("minimum")),
        # Raw -log10 relative error beside the CNH estimate, whose confidence term depends on
        # the sample count (issue #10 point 5).
        "sigdigits_raw": _opt_number(sig.get("raw_minimum")),
        "sigdigits_n": _opt_number(sig.get("n_samples")),
    }


def _opt_number(x: Any) -> float | None:
    return None if x is None else number(x)


def _beyond_cause(j: dict[str, Any]) -> str | None:
    """rounding.beyond_cause of a record's judgement (None when its components are malformed)."""
    comps = j.get("components") if isinstance(j.get("components"), dict) else {}
    cols = [comps.get(k) for k in ("verdict", "residual_a", "residual_b")]
    if not all(isinstance(c, list) for c in cols) or len({len(c) for c in cols}) != 1:
        return None
    ratios = [[number(x) if isinstance(x, (int, float)) else None for x in c] for c in cols[1:]]
    return rounding.beyond_cause(cols[0], *ratios)


def judged_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """The :data:`RECORD_JUDGED` columns of a record (None where it has no judgement), the
    downstream block's kNN Jaccard and Leiden ARI among them."""
    j = rec.get("judgement") if isinstance(rec.get("judgement"), dict) else {}
    outs = rec.get("outputs") if isinstance(rec.get("outputs"), dict) else {}
    down = rec.get("downstream") if isinstance(rec.get("downstream"), dict) else {}
    moved = rec.get("moved")
    verdict = j.get("verdict")
    out: dict[str, Any] = {
        "verdict": verdict if verdict in ROUNDING_VERDICTS else None,
        "moved": ",".join(m for m in moved if isinstance(m, str))
        if isinstance(moved, list)
        else None,
        "downstream_unavailable": _scalar(down.get("unavailable"))
        if isinstance(down.get("unavailable"), str)
        else None,
    }
    out["beyond_cause"] = _beyond_cause(j) if verdict == "beyond rounding" else None
    for name in ("embedding", "loadings", "variance"):
        o = outs.get(name) if isinstance(outs.get(name), dict) else {}
        out[f"{name}_rel_diff"] = (
            number(o.get("max_rel_diff")) if o.get("max_rel_diff") is not None else None
        )
    for name in ("other_seed", "one_edge"):
        vals = down.get(f"ari_{name}")
        vals = [number(v) for v in vals] if isinstance(vals, list) else []
        vals = [v for v in vals if v is not None and not math.isnan(v)]
        out[f"ari_{name}"] = min(vals) if vals else None
    for name in ("knn_jaccard", "leiden_ari"):  # scanpy's graph (harness.analysis.downstream)
        value = down.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        out[name] = float(value) if ok else None
    return out
