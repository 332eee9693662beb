"""An on-disk index of parsed results files, so a second read of a folder is near-instant (#14).

Kept under the harness cache (``$HARNESS_CACHE``, else ``~/.cache/pca-harness``), in
``results-index/<hash of the folder's real path>/``; never inside the results folder, which
readers only read. ``HARNESS_RESULTS_INDEX=off`` reads without it.

Each entry holds, for one folder:

- ``index.json``: what it was built from: the results files in the order read, each with the
  path of its run's fingerprint (their sizes and mtimes are an array of the arrays file, compared
  at once: a warm read of 5,000 files is mostly its 10,000 ``stat`` calls), ``benchmarks.json``'s,
  the machines that hold sidecars, a hash of the reader's own source (another reader version
  never reuses an entry); the lines reported while parsing; the fingerprints; and where each
  column lies in the arrays file;
- ``arrays-<token>.bin``: the frame, column by column, memory-mapped copy-on-write when read;
  and the per-block tables that, with the frame, give back the parsed files
  (:class:`harness.results.asvfiles.Part`);
- ``blocks.json``: those tables' text (benchmarks, grids, versions, files, problems), read only
  when some files changed;
- ``records.json``: the stability records (:func:`records`).

A read whose files all match gets the frame as it was (:func:`Entry.frame`); one where some
changed, appeared or went reuses the parsed parts of the others (:func:`Entry.parts`) and parses
only those. A damaged or foreign entry is ignored (and replaced); the index never makes a read fail.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import mmap
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from harness import io
from harness.bench import store
from harness.results import asvfiles, sidecars
from harness.results import frame as frames
from harness.results.asvfiles import Part
from harness.vocabulary import HARNESS_DIR, RACY_NS, run_folder_name

#: Turns the index off (``off``, ``0`` or ``no``).
ENV = "HARNESS_RESULTS_INDEX"
FOLDER = "results-index"
ALIGN = 64
#: The modules whose output the index keeps: a change to any of them is a new reader.
SOURCES = (asvfiles, frames, sidecars)
#: The JSON values a cached object column may hold (they come back as they went).
_PLAIN = frozenset({type(None), bool, int, float, str})

#: Entries kept: the most recently used, up to this many and this many bytes in all.
KEEP_ENTRIES = 12
KEEP_BYTES = 6 << 30

Stat = list[int]  # size, mtime_ns
#: In the signatures array: no such file, or no fingerprint known for the run (never an mtime).
NO_STAT = -1


def enabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in ("off", "0", "no", "false")


@functools.cache  # (the modules of a running process do not change)
def _reader_version() -> str:
    digest = hashlib.sha256()
    for path in (*(m.__file__ for m in SOURCES), __file__):  # this module: the entry's layout
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def stat_of(path: str | os.PathLike[str]) -> Stat | None:
    """[size, mtime in ns] of a path, None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


@dataclass
class Context:
    """What a folder's parse depends on besides its files."""

    benchmarks: Stat | None
    sidecar_machines: list[str]
    fp_root: str | None

    def key(self) -> list[Any]:
        return [self.benchmarks, sorted(self.sidecar_machines), self.fp_root is not None]


# --- writing ---------------------------------------------------------------------------------


class _Arrays:
    """Arrays appended to one binary blob, each at an aligned offset."""

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def add(self, arr: Any) -> list[Any]:
        a = np.ascontiguousarray(arr)
        pad = (-self.size) % ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        spec = [self.size, a.dtype.str, list(a.shape)]
        data = memoryview(a).cast("B") if a.size else b""
        self.chunks.append(data)
        self.size += a.nbytes
        return spec


def _column(col: pd.Series, arrays: _Arrays) -> dict[str, Any] | None:
    """How one frame column is kept; None when it cannot be kept exactly."""
    values = col.array
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = list(dtype.categories)
        if not all(type(c) is str for c in cats) or dtype.ordered:
            return None
        return {"kind": "cat", "codes": arrays.add(values.codes), "categories": cats}
    if isinstance(dtype, pd.DatetimeTZDtype):
        if str(dtype.tz) != "UTC":
            return None
        return {"kind": "dt", "ns": arrays.add(values.asi8)}
    if isinstance(values, pd.arrays.IntegerArray):
        data = values.to_numpy(dtype=np.int64, na_value=0)
        return {"kind": "Int", "data": arrays.add(data), "mask": arrays.add(values.isna())}
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return {"kind": "np", "data": arrays.add(col.to_numpy())}
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        kept = col.to_numpy().tolist()
        if not all(type(v) in _PLAIN and _finite(v) for v in kept):
            return None
        return {"kind": "obj", "values": kept}
    return None


def _samples(part: Part, arrays: _Arrays) -> dict[str, Any] | None:
    """The samples column, from the blocks that kept samples (the rest of its rows are None)."""
    rows, values = [], []
    for start, per_row in part.samples:
        if not all(x is None or _plain_list(x) for x in per_row):
            return None
        rows.append(np.arange(start, start + len(per_row), dtype=np.int64))
        values.extend(per_row)
    at = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    starts = np.asarray([[s, len(x)] for s, x in part.samples], dtype=np.int64).reshape(-1, 2)
    return {
        "kind": "sparse",
        "rows": arrays.add(at),
        "values": values,
        "blocks": arrays.add(starts),
    }


def _finite(v: Any) -> bool:
    return type(v) is not float or math.isfinite(v)


def _plain_list(x: Any) -> bool:
    return isinstance(x, list) and all(type(v) in _PLAIN and _finite(v) for v in x)


def _part_spec(part: Part, arrays: _Arrays) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """What the frame does not hold of the parsed files: per-block tables (arrays, and text for
    ``blocks.json``); None when some value would not come back the same."""
    grids: dict[int, int] = {}
    table: list[Any] = []
    for g in part.block_grid:
        if id(g) not in grids:
            grids[id(g)] = len(table)
            table.append([list(g[0]), [list(v) for v in g[1]]])
    versions = [m[0] for m in part.block_meta]
    if not all(v is None or type(v) is str for v in versions):
        return None
    files = [{**f, "date": None if math.isnan(f["date"]) else f["date"]} for f in part.files]
    spec = {
        "block_file": arrays.add(np.asarray(part.block_file, dtype=np.int64)),
        "block_len": arrays.add(np.asarray(part.block_len, dtype=np.int64)),
        "block_grid": arrays.add(np.asarray([grids[id(g)] for g in part.block_grid], np.int64)),
        "started": arrays.add(np.asarray([m[1] for m in part.block_meta], dtype=float)),
        "duration": arrays.add(np.asarray([m[2] for m in part.block_meta], dtype=float)),
        "stats_rows": arrays.add(np.asarray(part.stats_rows, dtype=np.int64).reshape(-1, 2)),
        "n_rows": part.n_rows,
    }
    text = {
        "files": files,
        "block_bench": part.block_bench,
        "grids": table,
        "versions": versions,
        "problems": part.problems,
        "problem_items": part.problem_items,
    }
    return spec, text


def _fps_spec(fps: dict[tuple[str, str, str], dict[str, Any]]) -> dict[str, Any] | None:
    """The fingerprints, each distinct one once; None when one would not come back the same."""
    distinct: dict[int, int] = {}
    table: list[dict[str, Any]] = []
    keys = []
    for key, fp in fps.items():
        if id(fp) not in distinct:
            distinct[id(fp)] = len(table)
            table.append(fp)
        keys.append([*key, distinct[id(fp)]])
    try:
        if orjson.loads(orjson.dumps(table)) != table:
            return None
    except (TypeError, orjson.JSONEncodeError):
        return None
    return {"table": table, "keys": keys}


#: Writers still running, by entry folder (:func:`keep`, :func:`wait`).
_WRITERS: dict[Path, threading.Thread] = {}


def keep(
    entry_dir: Path,
    files: Signatures,
    context: Context,
    part: Part,
    frame: pd.DataFrame,
    reported: Sequence[str],
    root: Path,
) -> bool:
    """Keep a folder's parse; False when it cannot be kept exactly (nothing is written then).

    What is kept is gathered now (so later changes to the frame cannot reach it) and written by
    a thread while the caller goes on with the frame: the arrays go to disk at the speed of
    memory copies, which is what a first read would otherwise wait for. :func:`wait` joins it
    (a later read of the same folder does, and the interpreter does before it exits). The
    arrays and block tables go to files of a name of their own, written before the index that
    names them, so a reader never pairs an index with another writer's arrays.
    """
    arrays = _Arrays()
    part_spec = _part_spec(part, arrays)
    fps_spec = _fps_spec(part.fps)
    columns = {}
    for name in frame.columns:
        spec = _samples(part, arrays) if name == "samples" else _column(frame[name], arrays)
        if spec is None:
            return False
        columns[name] = spec
    if part_spec is None or fps_spec is None:
        return False
    token = secrets.token_hex(8)
    meta = {
        "version": _reader_version(),
        "context": context.key(),
        "root": os.path.realpath(root),
        "written_ns": time.time_ns(),
        "items": files.items,
        "fingerprints": files.fingerprints,
        "signatures": arrays.add(files.stats),
        "part": part_spec[0],
        "fps": fps_spec,
        "frame": {
            "columns": columns,
            "attrs": {"params": list(frame.attrs.get("params", []))},
            "rows": len(frame),
        },
        "reported": list(reported),
        "problems": list(part.problems),
        "n_files": len(part.files),
        "arrays": {"name": f"arrays-{token}.bin", "size": arrays.size},
        "blocks": f"blocks-{token}.json",
    }
    wait(entry_dir)
    writer = threading.Thread(
        target=_write, args=(entry_dir, arrays, meta, part_spec[1]), name="harness-index"
    )
    _WRITERS[entry_dir] = writer
    writer.start()
    return True


def wait(entry_dir: Path | None = None) -> None:
    """Until the index of ``entry_dir`` (of every folder, by default) is written."""
    for where, writer in list(_WRITERS.items()):
        if entry_dir is None or where == entry_dir:
            writer.join()
            _WRITERS.pop(where, None)


def _write(entry_dir: Path, arrays: _Arrays, meta: dict[str, Any], blocks: dict[str, Any]) -> None:
    """The files of :func:`keep`; a cache that cannot be written is left as it is."""
    try:
        entry_dir.mkdir(parents=True, exist_ok=True)
        with io.atomic_path(entry_dir / meta["arrays"]["name"]) as tmp, open(tmp, "wb") as fh:
            for chunk in arrays.chunks:
                fh.write(chunk)
        io.write_bytes(entry_dir / meta["blocks"], orjson.dumps(blocks))
        io.write_bytes(entry_dir / "index.json", orjson.dumps(meta))
        io.write_text(entry_dir / "root", meta["root"])
        _tidy(entry_dir, keep={meta["arrays"]["name"], meta["blocks"]})
    except (OSError, TypeError, orjson.JSONEncodeError):
        pass


def _tidy(entry_dir: Path, keep: set[str]) -> None:
    """Remove this entry's older arrays and tables, then the entries of folders that are gone and
    the least recently used beyond :data:`KEEP_ENTRIES` / :data:`KEEP_BYTES`."""
    for old in [*entry_dir.glob("arrays-*.bin"), *entry_dir.glob("blocks-*.json")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)
    entries = []
    for entry in entry_dir.parent.iterdir():
        try:
            size = sum(p.stat().st_size for p in entry.iterdir())
            used = (entry / "index.json").stat().st_mtime_ns
            gone = not os.path.exists(io.read_regular(entry / "root").decode())
        except (OSError, ValueError):
            used, size, gone = 0, 0, True
        entries.append((used, size, gone, entry))
    total = 0
    for n, (_used, size, gone, entry) in enumerate(sorted(entries, reverse=True)):
        total += size
        if entry != entry_dir and (gone or n >= KEEP_ENTRIES or total > KEEP_BYTES):
            shutil.rmtree(entry, ignore_errors=True)


# --- reading ---------------------------------------------------------------------------------


class Entry:
    """A kept parse of a folder, read back (see the module docstring)."""

    def __init__(self, meta: dict[str, Any], blob: Any) -> None:
        self.meta = meta
        self.blob = blob

    def array(self, spec: list[Any]) -> Any:
        offset, dtype, shape = spec
        count = math.prod(shape)
        return np.frombuffer(self.blob, dtype=np.dtype(dtype), count=count, offset=offset).reshape(
            shape
        )

    @property
    def items(self) -> list[str]:
        """The results files it was built from (relative names), in the order read."""
        return self.meta["items"]

    def fingerprint_paths(self, items: Sequence[str]) -> list[str | None]:
        """Where it found each item's fingerprint (None: no run known for it, or a new item)."""
        if list(items) == self.meta["items"]:
            return self.meta["fingerprints"]
        at = dict(zip(self.meta["items"], self.meta["fingerprints"], strict=True))
        return [at.get(rel) for rel in items]

    def fingerprints(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        spec = self.meta["fps"]
        return {(m, c, e): spec["table"][i] for m, c, e, i in spec["keys"]}

    def frame(self) -> pd.DataFrame:
        """The frame as it was built (memory-mapped columns, copied only where written to)."""
        spec = self.meta["frame"]
        n = spec["rows"]
        out: dict[str, Any] = {}
        for name, col in spec["columns"].items():
            kind = col["kind"]
            if kind == "cat":
                cats = pd.Index(col["categories"], dtype=object)
                out[name] = pd.Categorical.from_codes(
                    self.array(col["codes"]), cats, validate=False
                )
            elif kind == "dt":
                # int64 nanoseconds with tz= are taken as UTC as they are, mapped, not copied
                # (tz_localize of the naive view copied 32 MB a column: 4 ms of a warm read)
                out[name] = pd.DatetimeIndex(self.array(col["ns"]), tz="UTC")
            elif kind == "Int":
                out[name] = pd.arrays.IntegerArray(self.array(col["data"]), self.array(col["mask"]))
            elif kind == "np":
                out[name] = self.array(col["data"])
            elif kind == "sparse":
                arr = np.empty(n, dtype=object)  # (numpy fills object arrays with None)
                rows = self.array(col["rows"])
                if len(rows):
                    values = np.empty(len(rows), dtype=object)
                    values[:] = col["values"]
                    arr[rows] = values
                out[name] = pd.Series(arr, dtype=object)
            else:
                arr = np.empty(n, dtype=object)
                arr[:] = col["values"]
                out[name] = pd.Series(arr, dtype=object)
        frame = pd.DataFrame(out, copy=False)
        frame.attrs["params"] = list(spec["attrs"]["params"])
        return frame

    def parts(self, frame: pd.DataFrame, entry: Path) -> dict[str, Part] | None:
        """Per item (relative name), what parsing its file gave (:func:`asvfiles.split`),
        rebuilt from the frame and the block tables; None when the tables are gone."""
        try:
            text = orjson.loads(io.read_regular(entry / self.meta["blocks"], 1 << 30))
        except (OSError, ValueError, KeyError):
            return None
        p = self.meta["part"]
        grids = [(tuple(names), tuple(tuple(v) for v in values)) for names, values in text["grids"]]
        stats_rows = [(int(r), int(k)) for r, k in self.array(p["stats_rows"]).tolist()]
        at = frames.stats_positions(stats_rows) if stats_rows else np.empty(0, np.int64)
        stats = np.column_stack(
            [frame[c].to_numpy(dtype=float, na_value=np.nan)[at] for c in asvfiles.STATS]
        )
        samples_spec = self.meta["frame"]["columns"].get("samples", {})
        samples, values = [], iter(samples_spec.get("values", []))
        for start, k in self.array(samples_spec["blocks"]).tolist() if samples_spec else []:
            samples.append((int(start), [next(values) for _ in range(k)]))
        started, duration = self.array(p["started"]).tolist(), self.array(p["duration"]).tolist()
        part = Part(
            files=[
                {**f, "date": math.nan if f["date"] is None else f["date"]} for f in text["files"]
            ],
            block_file=self.array(p["block_file"]).tolist(),
            block_bench=text["block_bench"],
            block_len=self.array(p["block_len"]).tolist(),
            block_grid=[grids[i] for i in self.array(p["block_grid"]).tolist()],
            block_meta=list(zip(text["versions"], started, duration, strict=True)),
            values=frame["value"].to_numpy(dtype=float),
            failed=np.flatnonzero(np.asarray(frame["status"] == "failed")).tolist(),
            stats_rows=stats_rows,
            stats=stats if stats_rows else None,
            samples=samples,
            problems=list(text["problems"]),
            problem_items=list(text["problem_items"]),
            n_rows=p["n_rows"],
            fps=self.fingerprints(),
        )
        return asvfiles.split(part)


def entry_dir(root: Path) -> Path:
    """Where a folder's entry lives (outside the folder: the reading side never writes there)."""
    name = hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:24]
    return store.cache_dir() / FOLDER / name


def read(entry: Path, context: Context) -> Entry | None:
    """The entry of a folder, None when absent, damaged, of another reader or context."""
    try:
        meta = orjson.loads(io.read_regular(entry / "index.json", 1 << 30))
        if meta.get("version") != _reader_version() or meta.get("context") != context.key():
            return None
        blob = entry / str(meta["arrays"]["name"])
        fd = os.open(blob, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None
    try:
        size = os.fstat(fd).st_size
        if size != meta["arrays"]["size"]:
            return None
        blob = mmap.mmap(fd, size, access=mmap.ACCESS_COPY) if size else b""
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.utime(entry / "index.json")  # most recently used: kept longest (_tidy)
    return Entry(meta, blob)


@dataclass
class Signatures:
    """What a parse is checked against: per item (relative name, in the order read) the path of
    its run's fingerprint (None when no run is known), and ``stats``, an int64 array of [size,
    mtime of the file, size, mtime of the fingerprint] per item (:data:`NO_STAT` where none)."""

    items: list[str]
    fingerprints: list[str | None]
    stats: Any

    @classmethod
    def of(
        cls, items: Sequence[tuple[str, str, str]], fingerprints: Sequence[str | None]
    ) -> Signatures:
        flat: list[int] = []
        for (path, _, _), fp in zip(items, fingerprints, strict=True):
            flat.extend(_pair(path))
            flat.extend(_pair(fp))
        stats = np.asarray(flat, dtype=np.int64).reshape(-1, 4)
        return cls([rel for _, _, rel in items], list(fingerprints), stats)

    def replace(self, rows: Any, fresh: Signatures) -> Signatures:
        """These signatures with those of ``fresh`` at ``rows`` (positions of its items)."""
        stats = self.stats.copy()
        stats[rows] = fresh.stats
        fps = list(self.fingerprints)
        for i, fp in zip(rows.tolist(), fresh.fingerprints, strict=True):
            fps[i] = fp
        return Signatures(self.items, fps, stats)


def _pair(path: str | None) -> tuple[int, int]:
    """:func:`stat_of` as a pair, (NO_STAT, NO_STAT) without a path or a stat."""
    st = stat_of(path) if path is not None else None
    return (st[0], st[1]) if st is not None else (NO_STAT, NO_STAT)


def unchanged(entry: Entry, now: Signatures) -> Any:
    """Per item of ``now``, whether its file and fingerprint are as the entry saw them, and were
    already old enough then that a change since would have moved their mtime (:data:`RACY_NS`)."""
    stored = entry.array(entry.meta["signatures"])
    if now.items == entry.items:
        same = (now.stats == stored).all(axis=1)
    else:
        pos = {rel: i for i, rel in enumerate(entry.items)}
        at = np.asarray([pos.get(rel, -1) for rel in now.items], dtype=np.int64)
        same = (at >= 0) & (now.stats == stored[np.maximum(at, 0)]).all(axis=1)
    racy = int(entry.meta.get("written_ns", 0)) - RACY_NS
    mtimes = now.stats[:, [1, 3]]
    settled = ((mtimes < racy) | (mtimes == NO_STAT)).all(axis=1)
    return same & settled


def fingerprint_paths(
    items: Sequence[tuple[str, str, str]], fp_root: str | None, runs: dict[str, Any]
) -> list[str | None]:
    """Per item, where the suite writes its run's fingerprint (the layout of
    :meth:`harness.bench.store.RunKey.folder`); None where the run is not known (``runs``: item ->
    (commit, env_name)) or there are no sidecars."""
    out: list[str | None] = []
    for _, machine_dir, rel in items:
        run = runs.get(rel) if fp_root is not None else None
        if run is None:
            out.append(None)
            continue
        folder = os.path.join(fp_root, machine_dir, HARNESS_DIR, run_folder_name(*run))
        out.append(os.path.join(folder, "fingerprint.jsonl"))
    return out


# --- the stability records --------------------------------------------------------------------


class _Unlisted(Exception):
    """A folder of the walk could not be listed: :func:`load_records` reports it."""


def _folders(path: str, missing_ok: bool = True) -> list[os.DirEntry[str]]:
    """The sub-folders of ``path``, sorted by name ([] when it does not exist)."""
    try:
        with os.scandir(path) as it:
            return sorted((e for e in it if e.is_dir()), key=lambda e: e.name)
    except FileNotFoundError:
        if missing_ok:
            return []
        raise _Unlisted(path) from None
    except OSError:
        raise _Unlisted(path) from None


def record_files(root: Path) -> list[list[Any]]:
    """[relative path, size, mtime] of every record file, in the order
    :func:`harness.results.sidecars.load_records` reads them (its walk, with scandir: thousands
    of run folders a read); :class:`_Unlisted` when a folder of it cannot be listed."""
    out: list[list[Any]] = []
    base = str(root)
    for machine in _folders(base, missing_ok=False):
        for run in _folders(os.path.join(machine.path, HARNESS_DIR)):
            records = run.path + os.sep + "records"
            try:  # (a stat: cheaper than listing what is not there; one per run folder)
                if not stat.S_ISDIR(os.stat(records).st_mode):
                    continue
            except OSError:
                continue
            for bench in _folders(records):
                try:
                    with os.scandir(bench.path) as it:
                        names = sorted(
                            e.name
                            for e in it
                            if e.name.endswith((".jsonl", ".jsonl.gz")) and e.name[0] != "."
                        )
                except OSError:
                    raise _Unlisted(bench.path) from None
                for name in names:
                    path = os.path.join(bench.path, name)
                    out.append([os.path.relpath(path, base), *(stat_of(path) or [None, None])])
    return out


def _encode(values: list[Any]) -> list[Any]:
    """An object column's values for JSON: NaN and infinities as objects no record holds."""
    return [{"float": repr(v)} if type(v) is float and not math.isfinite(v) else v for v in values]


def _decode(values: list[Any]) -> list[Any]:
    return [float(v["float"]) if type(v) is dict else v for v in values]


def records(
    root: Path, load: Callable[[Callable[[str], None]], pd.DataFrame], warn: Callable[[str], None]
) -> pd.DataFrame:
    """The records frame ``load`` reads (its warnings to ``warn``), kept beside the folder's
    entry and given back while no record file changed (and none was written within
    :data:`RACY_NS` of keeping them)."""
    if not enabled():
        return load(warn)
    where = entry_dir(root) / "records.json"
    try:
        files = record_files(root)
    except (_Unlisted, OSError):
        return load(warn)  # it says which folder, as it always has
    if not files:
        return sidecars.load_records(None)  # no record anywhere: the empty frame, no walk
    try:
        kept = orjson.loads(io.read_regular(where, 1 << 30))
        racy = kept["written_ns"] - RACY_NS
        if (
            kept["version"] == _reader_version()
            and kept["files"] == files
            and all(f[2] is None or f[2] < racy for f in files)
        ):
            for line in kept["warnings"]:
                warn(line)
            return _records_frame(kept["columns"], kept["rows"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    lines: list[str] = []

    def note(line: str) -> None:
        lines.append(line)
        warn(line)

    frame = load(note)
    columns = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind in "fbi" or col.dtype == np.dtype(object):
            values = col.tolist()
            columns[name] = [col.dtype.str, _encode(values) if col.dtype.kind == "O" else values]
        else:
            return frame  # a column this cannot keep exactly
    meta = {"version": _reader_version(), "written_ns": time.time_ns(), "files": files,
            "warnings": lines, "columns": columns, "rows": len(frame)}  # fmt: skip
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        io.write_bytes(where, orjson.dumps(meta))
    except (OSError, TypeError, orjson.JSONEncodeError):
        pass
    return frame


def _records_frame(columns: dict[str, list[Any]], n: int) -> pd.DataFrame:
    out = {}
    for name, (dtype, values) in columns.items():
        if np.dtype(dtype).kind == "O":
            arr = np.empty(n, dtype=object)
            arr[:] = _decode(values)
            out[name] = arr
        else:
            out[name] = np.asarray(
                [math.nan if v is None else v for v in values], dtype=np.dtype(dtype)
            )
    return pd.DataFrame(out)
