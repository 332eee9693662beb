"""Any asv results folder (api version 2) as one pandas DataFrame, with the harness's sidecars.

asv has no pandas loader (asv#846) and keeps neither what was installed (asv#931) nor which BLAS
ran. :func:`load_results` reads the JSON files itself (orjson plus ``ast.literal_eval`` for the
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
(no per-row Python objects), in this process.

Bad input never raises: an unreadable file, an entry that is not a regular file (a FIFO, a device,
a folder: never opened, see :func:`harness.io.read_regular`), JSON that is not asv results, an unknown
api version, or a benchmark whose parameters no longer fit is left out with one line to ``warn``
naming the file and why; the frame's ``attrs`` keep ``files`` (result files read) and ``problems`` (those lines).

This module is the entry point; the work is done in :mod:`.asvfiles` (asv's files, parsed and
validated), :mod:`.sidecars` (the harness's files), :mod:`.frame` (the DataFrame) and :mod:`.runs`
(runs, labels, selectors).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import HarnessError
from harness.results import environments, index
from harness.results.asvfiles import (
    BenchmarkInfo,
    iter_result_files,
    merge,
    parse_files,
    read_benchmarks,
    split,
)
from harness.results.frame import build_frame, join_records
from harness.results.problems import Warn, default_warn, relpath, subfolders
from harness.results.runs import RunInfo, run_infos
from harness.results.sidecars import Fingerprints, load_fingerprints, load_records
from harness.vocabulary import HARNESS_DIR

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass
class Loaded:
    """A loaded results folder: the frame, the files read, and every problem reported."""

    frame: pd.DataFrame
    files: int
    problems: list[str]
    root: Path
    records: pd.DataFrame
    fingerprints: Fingerprints = field(default_factory=Fingerprints)

    def base_infos(self) -> list[RunInfo]:
        """Every run with its fingerprint's label (:func:`harness.results.runs.run_infos`)."""
        return run_infos(self.frame, self.fingerprints)

    def infos(self) -> list[RunInfo]:
        """Every run with its folder-wide id, unique label and factors
        (:func:`harness.results.environments.labelled`); cached."""
        cached = getattr(self, "_infos", None)
        if cached is None:
            cached = environments.labelled(self)
            object.__setattr__(self, "_infos", cached)
        return list(cached)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a folder is read.

    A read allocates hundreds of thousands of lists and dicts that form no cycle (the index's
    JSON, parsed files); the collections they trigger walk every one of them again, which cost a
    warm read of 5,000 files 5 to 50 ms of its 90 (issue #14; measured with
    ``tests/perf/bench_reading.py``). Nothing read here is a cycle, so pausing loses nothing.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def scan(
    path: str | os.PathLike[str],
    *,
    warn: Warn | None = None,
    records: bool = True,
) -> Loaded:
    """Read a results folder (see :func:`load_results`); also return the count of files read.

    HarnessError when ``path`` is neither a folder nor a file (absent, a FIFO, a device).
    """
    with _collector_paused():
        return _scan(path, warn, records)


def _scan(path: str | os.PathLike[str], warn: Warn | None, records: bool) -> Loaded:
    problems: list[str] = []
    seen: set[str] = set()
    sink = warn or default_warn

    def report(line: str) -> None:
        if line not in seen:  # a folder listed twice (results files, sidecars) warns once
            seen.add(line)
            problems.append(line)
            sink(line)

    root = Path(path)
    if not root.exists():
        raise HarnessError(f"{root}: no such file or directory")
    if not root.is_dir() and not root.is_file():
        raise HarnessError(f"{root}: not a results folder, machine folder or results file")
    base = root if root.is_dir() else root.parent
    bench_root = (
        base
        if (base / "benchmarks.json").is_file()
        or (root.is_dir() and not (root / "machine.json").is_file())
        else base.parent
    )
    benches = read_benchmarks(bench_root, report)
    fps_root = bench_root if bench_root.is_dir() else base
    sidecars = {p.name for p in subfolders(fps_root, fps_root, report) if _has_sidecars(p)}
    base_text = str(bench_root) + os.sep
    items = [
        (f, m, f[len(base_text) :] if f.startswith(base_text) else relpath(Path(f), bench_root))
        for f, m in iter_result_files(root, report)
    ]
    fp_root = str(fps_root) if sidecars else None
    frame, fps, n_files = _parsed(root, bench_root, items, benches, fp_root, sidecars, report)
    if records and sidecars:
        recs = index.records(fps_root, lambda sink: load_records(fps_root, warn=sink), report)
    else:
        recs = load_records(None, warn=report)
    join_records(frame, recs, report)
    frame.attrs["files"] = n_files
    frame.attrs["problems"] = list(problems)
    return Loaded(frame, n_files, problems, bench_root, recs, fps)


def _parsed(
    root: Path,
    bench_root: Path,
    items: list[tuple[str, str, str]],
    benches: dict[str, BenchmarkInfo],
    fp_root: str | None,
    sidecars: set[str],
    report: Warn,
) -> tuple[pd.DataFrame, Fingerprints, int]:
    """The frame, fingerprints and number of files read of ``items``: from the on-disk index
    where every file is as it saw it (:mod:`harness.results.index`), else parsed (only the
    files that changed, where it has the others), and then kept there."""
    use = index.enabled()
    context = index.Context(
        index.stat_of(bench_root / "benchmarks.json"), sorted(sidecars), fp_root
    )
    where = index.entry_dir(root)
    index.wait(where)  # a read of this folder still writing its index
    entry = index.read(where, context) if use else None
    sigs, keep = None, set()
    if entry is not None:
        sigs = index.Signatures.of(items, entry.fingerprint_paths([rel for _, _, rel in items]))
        same = index.unchanged(entry, sigs)
        if same.all() and len(same) == len(entry.items):
            fps = Fingerprints(entry.fingerprints(), sidecars)
            for line in [*entry.meta["problems"], *entry.meta["reported"]]:
                report(line)
            return entry.frame(), fps, entry.meta["n_files"]
        keep = {rel for rel, ok in zip(sigs.items, same.tolist(), strict=True) if ok}
    kept = entry.parts(entry.frame(), where) if entry is not None and keep else None
    keep = keep if kept is not None else set()
    part = parse_files([it for it in items if it[2] not in keep], benches, fp_root=fp_root)
    if kept is not None:  # the kept files' parts, and the new ones, in the order of the folder
        parts = {**{rel: kept[rel] for rel in keep if rel in kept}, **split(part)}
        part = merge([parts[rel] for _, _, rel in items if rel in parts])
    for line in part.problems:
        report(line)
    fps = Fingerprints(dict(part.fps), sidecars)
    missing = sidecars and any(
        (f["machine"], f["commit"], f["env_name"]) not in fps.by_key for f in part.files
    )
    if missing:
        # Some run's fingerprint is not where the suite puts it (another machine name): look it up
        # among all of them (problems with those files were reported above).
        everything = load_fingerprints(fp_root, warn=lambda line: None)  # type: ignore[arg-type]
        fps.by_key = {**everything.by_key, **fps.by_key}
    built: list[str] = []

    def note(line: str) -> None:
        built.append(line)
        report(line)

    frame = build_frame(part, benches, fps, note)
    if use and not missing:  # (fingerprints found elsewhere have no signature to check)
        runs = {f["file"]: (f["commit"], f["env_name"]) for f in part.files}
        fps_at = index.fingerprint_paths(items, fp_root, runs)
        # The kept files' signatures are those checked before their parts were reused; the
        # parsed ones are taken now (a change since is caught as racy next time).
        rows = np.asarray([i for i, it in enumerate(items) if it[2] not in keep], dtype=np.int64)
        fresh = index.Signatures.of([items[i] for i in rows], [fps_at[i] for i in rows])
        sigs = fresh if sigs is None or len(rows) == len(items) else sigs.replace(rows, fresh)
        index.keep(where, sigs, context, part, frame, built, root)
    return frame, fps, len(part.files)


def _has_sidecars(machine: Path) -> bool:
    try:
        return (machine / HARNESS_DIR).is_dir()
    except OSError:  # an unreadable machine folder: its results files report it
        return False


def load_results(path: str | os.PathLike[str], *, warn: Warn | None = None) -> pd.DataFrame:
    """Any asv results folder (api version 2) as a DataFrame; see the module docstring.

    ``warn`` receives one line per file (or benchmark) left out, naming it and why; by default
    each becomes a :class:`harness.results.problems.ResultsWarning`. ``frame.attrs['files']`` is
    the number of result files read, ``frame.attrs['problems']`` the lines reported.
    """
    return scan(path, warn=warn).frame
