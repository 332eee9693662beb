"""Where a cold read of 5,000 result files spends its time, against what parsing alone costs.

Issue #14 asks the cold load (empty index) for <= 0.5x asv's ``iter_results`` +
``get_result_value``. This measures, in one process over the same files (``bench_load_results``'s
generator), best of ``--repeat`` rounds alternating, CPU time of the process:

- asv, and the harness's cold load (``reader.scan`` with an empty index; the index is written in
  a thread meanwhile) and its load without the index; each split into user and system time, with
  its minor page faults; and the reader's parse alone (the files into arrays, their fingerprints
  read), so that the rest (the frame, the records, the index) is the difference;
- the floors under any reader of these files that builds nothing: reading the bytes; reading and
  parsing them with orjson (asv's bare ``NaN`` overwritten first, as the reader does; the cyclic
  collector paused, as the reader does); the numbers of every result and stats list of those
  parsed files turned into float arrays;
- with msgspec installed (not a dependency: ``.venv/bin/pip install msgspec``), the same with
  msgspec's parser;
- with pysimdjson installed (not a dependency: ``.venv/bin/pip install pysimdjson``), the floor
  of parsing each file with simdjson and copying its lists of numbers into buffers of doubles,
  no Python object per number (``NaN`` and ``null`` overwritten by number tokens first, since
  neither fits a buffer of doubles).

Run::

    .venv/bin/python tests/perf/cold_floor.py [--files 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.results import asvfiles, index, reader  # noqa: E402

#: The numeric columns of an asv results row (asv's result_columns order).
NUMERIC = (0, 5, 6, 7, 8, 9, 10)


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_load_results", Path(__file__).with_name("bench_load_results.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _files(root: Path) -> list[Path]:
    skip = {"machine.json", "benchmarks.json"}
    return sorted(p for p in root.glob("*/*.json") if p.name not in skip)


def read_bytes(files: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in files]


def orjson_parse(files: list[Path]) -> list[Any]:
    return [orjson.loads(raw.replace(b"NaN", b"-91")) for raw in read_bytes(files)]


def msgspec_parse(files: list[Path]) -> list[Any]:
    import msgspec  # (optional: see the module docstring)

    decode = msgspec.json.Decoder().decode
    return [decode(raw.replace(b"NaN", b"-91")) for raw in read_bytes(files)]


def as_arrays(parsed: list[Any]) -> int:
    """Every result and stats list of parsed files as one float array per column."""
    columns: list[list[Any]] = [[] for _ in NUMERIC]
    for data in parsed:
        for row in data["results"].values():
            for store, i in zip(columns, NUMERIC, strict=True):
                if i < len(row) and isinstance(row[i], list):
                    store.extend(row[i])
    return sum(len(np.array(c, dtype=float)) for c in columns)


def simdjson_buffers(files: list[Path]) -> int:
    """Each file's tokens overwritten, parsed by simdjson, its number lists copied as doubles."""
    import simdjson  # (optional: see the module docstring)

    parser = simdjson.Parser()
    buffers = []
    for raw in read_bytes(files):
        doc = parser.parse(raw.replace(b"NaN", b"-91").replace(b"null", b"-929"))
        results = doc["results"]
        for key in results:
            row = results[key]
            for i in NUMERIC:
                x = row[i] if i < len(row) else None
                if type(x) is simdjson.Array:
                    buffers.append(x.as_buffer(of_type="d"))
            del row
        del results, doc
    return len(np.frombuffer(b"".join(buffers), dtype=float))


def harness_cold(root: Path, caches: Path | None) -> int:
    """A read with an empty index (a new folder under ``caches``; None: without the index)."""
    if caches is None:
        os.environ[index.ENV] = "off"
    else:
        os.environ.pop(index.ENV, None)
        os.environ["HARNESS_CACHE"] = tempfile.mkdtemp(dir=caches)
    try:
        return len(reader.scan(root, warn=lambda line: None).frame)
    finally:
        os.environ.pop(index.ENV, None)


def harness_parse(root: Path) -> int:
    """The reader's parse alone (:func:`harness.results.asvfiles.parse_files`: the files into
    compact arrays, each run's fingerprint read), no frame, no index, no records."""
    items = [
        (path, machine, os.path.relpath(path, root))
        for path, machine in asvfiles.iter_result_files(root, lambda line: None)
    ]
    benches = asvfiles.read_benchmarks(root, lambda line: None)
    return asvfiles.parse_files(items, benches, fp_root=str(root)).n_rows


def timed(fn: Callable[[], Any], paused: bool) -> tuple[float, float, float, int]:
    """(CPU, user, system seconds, minor faults) of ``fn()``, the collector paused if asked."""
    if paused:
        gc.disable()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        fn()
    finally:
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        gc.enable()
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return user + system, user, system, r1.ru_minflt - r0.ru_minflt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    gen = _generator()
    import asv.results  # (imported before any timing)

    optional = {
        name: importlib.util.find_spec(name) is not None for name in ("msgspec", "simdjson")
    }
    with tempfile.TemporaryDirectory(prefix="cold-floor-") as tmp:
        root = gen.generate(Path(tmp) / "results", args.files)
        old = time.time() - 3600  # no file "racy" for the index
        for p in root.rglob("*"):
            if p.is_file():
                os.utime(p, (old, old))
                p.read_bytes()  # every file in the page cache, for every side
        files = _files(root)
        sides: dict[str, tuple[Callable[[], Any], bool]] = {
            "asv iter_results + get_result_value": (lambda: gen.time_asv(root), False),
            # (the reader pauses the collector itself)
            "harness cold load (empty index)": (lambda: harness_cold(root, Path(tmp)), False),
            "harness load without the index": (lambda: harness_cold(root, None), False),
            "harness parse alone (no frame, index or records)": (
                lambda: harness_parse(root),
                True,
            ),
            "read the bytes": (lambda: read_bytes(files), True),
            "read + orjson parse": (lambda: orjson_parse(files), True),
            "read + orjson parse + numbers to float arrays": (
                lambda: as_arrays(orjson_parse(files)),
                True,
            ),
        }
        if optional["msgspec"]:
            sides["read + msgspec parse + numbers to float arrays"] = (
                lambda: as_arrays(msgspec_parse(files)),
                True,
            )
        if optional["simdjson"]:
            sides["read + simdjson parse + numbers as doubles"] = (
                lambda: simdjson_buffers(files),
                True,
            )
        best: dict[str, tuple[float, float, float, int]] = {}
        for _ in range(args.repeat):
            for name, (fn, paused) in sides.items():
                got = timed(fn, paused)
                index.wait()
                best[name] = min(best.get(name, got), got)
    asv = best["asv iter_results + get_result_value"][0]
    print(f"{len(files)} result files; CPU seconds, best of {args.repeat} (user + system, faults)")
    for name, (cpu, user, system, faults) in best.items():
        print(f"{name}: {cpu:.3f} s = {cpu / asv:.2f}x asv ({user:.3f} + {system:.3f}; {faults:,})")
    for name, package in (("msgspec", "msgspec"), ("simdjson", "pysimdjson")):
        if not optional[name]:
            print(f"{name}: not installed (.venv/bin/pip install {package} to measure it)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
