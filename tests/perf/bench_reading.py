"""Targets of issue #14, measured side by side in one run:

1. ``harness report`` and ``harness writeup`` over 100 environments (the committed study copied
   under new asv environment names into a temporary folder: results files, fingerprints,
   records, inputs and artifacts, every ``env_name`` rewritten): each <= 30 s, as a user runs
   them (a fresh process each). Measured twice: with an empty index (cold) and then again
   (warm: the index the first run left).
2. 5,000 realistic result files (:func:`bench_load_results.generate`): ``reader.scan`` with an
   empty index (cold, until it returns the frame; the index goes to disk in a thread meanwhile,
   and when it was there is printed too) <= 0.5x asv's ``iter_results`` + ``get_result_value``
   over the same files in this process, and again (warm) <= 0.05x.
   Repeated ``--repeat`` times, alternating; the best of each is compared (CPU time of this
   process, the steadier clock on a shared machine; wall time printed beside it).

Run::

    .venv/bin/python tests/perf/bench_reading.py                 # both
    .venv/bin/python tests/perf/bench_reading.py --skip-study    # the 5,000 files only
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.results import index, reader  # noqa: E402
from harness.vocabulary import HARNESS_DIR, run_folder_name  # noqa: E402

STUDY = ROOT / "results"
TIMEOUT = 1800


@functools.cache
def _generator():
    """tests/perf/bench_load_results.py: the realistic results generator and asv's timing."""
    spec = importlib.util.spec_from_file_location(
        "bench_load_results", Path(__file__).with_name("bench_load_results.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# --- 100 environments from the committed study ---------------------------------------------------


def _rewrite_jsonl(src: Path, dst: Path, env: str, new_env: str) -> None:
    lines = []
    for line in src.read_text().splitlines():
        if line.strip():
            obj = json.loads(line)
            if obj.get("env_name") == env:
                obj["env_name"] = new_env
            lines.append(json.dumps(obj, sort_keys=True))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(f"{x}\n" for x in lines))


def _rename_digest(src: Path, dst: Path, new_env: str) -> None:
    """A digest (harness.bench.digests) of another environment: its metadata names ``new_env``;
    its arrays stay as they are (byte planes against the machine's anchors, which copies share)."""
    with np.load(src, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["env_name"] = new_env
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def copy_run(machine_dir: Path, result: Path, suffix: str) -> None:
    """One environment of the study again, as asv environment ``<name>-<suffix>``."""
    data = json.loads(result.read_text())
    env, commit = data["env_name"], data["commit_hash"]
    new_env = f"{env}-{suffix}"
    data["env_name"] = new_env
    (machine_dir / f"{commit[:8]}-{new_env}.json").write_text(json.dumps(data))
    src = machine_dir / HARNESS_DIR / run_folder_name(commit, env)
    dst = machine_dir / HARNESS_DIR / run_folder_name(commit, new_env)
    if not src.is_dir():
        return
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir():
            continue
        if path.suffix == ".jsonl":
            _rewrite_jsonl(path, dst / rel, env, new_env)
        elif path.suffix == ".npz":
            _rename_digest(path, dst / rel, new_env)


def study_of(n_envs: int, where: Path) -> Path:
    """The committed study with copies of its environments until it has ``n_envs``."""
    root = where / "results"
    shutil.copytree(STUDY, root)
    machines = [p for p in root.iterdir() if (p / "machine.json").is_file()]
    originals = [
        (m, p)
        for m in machines
        for p in sorted(m.glob("*.json"))
        if p.name not in ("machine.json", "benchmarks.json")
    ]
    have, k = len(originals), 0
    while have < n_envs:
        m, p = originals[k % len(originals)]
        copy_run(m, p, f"copy{k // len(originals) + 1}")
        have, k = have + 1, k + 1
    return root


def run_cli(args: list[str], cache: Path) -> tuple[float, int, str]:
    """Wall seconds, exit status and the last stderr line of ``python -m harness ARGS``."""
    env = {**os.environ, "HARNESS_CACHE": str(cache)}
    env.pop(index.ENV, None)
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    last = (run.stderr.strip().splitlines() or [""])[-1]
    return time.perf_counter() - t0, run.returncode, last


def bench_study(n_envs: int, tmp: Path) -> list[str]:
    t0 = time.perf_counter()
    root = study_of(n_envs, tmp)
    runs = len([p for p in root.glob("*/*.json") if p.name not in ("machine.json",)])
    lines = [
        f"{runs} result files ({n_envs} environments) ready in {time.perf_counter() - t0:.0f} s"
    ]
    cache = tmp / "cache"
    for phase in ("cold", "warm"):
        if phase == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        for name, args in (
            ("report", ["report", str(root), str(tmp / f"report-{phase}")]),
            ("writeup", ["writeup", str(root), "--out", str(tmp / f"README-{phase}.md")]),
        ):
            if phase == "cold":
                shutil.rmtree(cache, ignore_errors=True)  # each command with an empty index
            wall, code, last = run_cli(args, cache)
            verdict = "met" if code == 0 and wall <= 30 else "NOT met"
            note = "" if code == 0 else f" (exit {code}: {last})"
            lines.append(
                f"harness {name} ({phase} index): {wall:.1f} s; target <= 30 s {verdict}{note}"
            )
    return lines


# --- 5,000 result files ------------------------------------------------------------------------


def time_asv(root: Path) -> tuple[float, float, int]:
    """CPU and wall seconds of asv's own reader (bench_load_results.time_asv)."""
    wall, cpu, n = _generator().time_asv(root)
    return cpu, wall, n


#: Wall seconds from each cold read's start until its index was on disk (written meanwhile).
WRITTEN: list[float] = []


def time_scan(root: Path) -> tuple[float, float, int]:
    """CPU and wall seconds of one read, until it returns the frame (the index it writes goes to
    disk in a thread meanwhile: :func:`harness.results.index.keep`; waited for, untimed)."""
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = reader.scan(root, warn=lambda line: None)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    index.wait()
    WRITTEN.append(time.perf_counter() - t0)
    return cpu, wall, len(loaded.frame)


def bench_files(n_files: int, repeat: int, tmp: Path) -> list[str]:
    t0 = time.perf_counter()
    root = _generator().generate(tmp / "files" / "results", n_files)
    old = time.time() - 3600  # written an hour ago: no file is "racy" for the index
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))
    for p in root.rglob("*"):  # every file in the page cache, for both sides (as after any read)
        if p.is_file():
            p.read_bytes()
    size = sum(p.stat().st_size for p in root.glob("*/*.json"))
    lines = [
        f"{n_files} result files ({size / 1e6:.0f} MB) ready in {time.perf_counter() - t0:.0f} s"
    ]
    best = {"asv": (1e9, 1e9), "off": (1e9, 1e9), "cold": (1e9, 1e9), "warm": (1e9, 1e9)}
    counts, written = set(), []
    for r in range(repeat):
        os.environ["HARNESS_CACHE"] = str(tmp / f"cache-{r}")  # an empty index each round
        for name, fn in (("asv", time_asv), ("off", time_scan), ("cold", time_scan),
                         ("warm", time_scan)):  # fmt: skip
            if name == "off":
                os.environ[index.ENV] = "off"
            else:
                os.environ.pop(index.ENV, None)
            cpu, wall, n = fn(root)
            counts.add(n)
            best[name] = min(best[name], (cpu, wall))
            if name == "cold":
                written.append(WRITTEN[-1])
    assert len(counts) == 1, counts  # the same rows on every side
    (a_cpu, a_wall), (c_cpu, c_wall), (w_cpu, w_wall) = best["asv"], best["cold"], best["warm"]
    o_cpu, o_wall = best["off"]
    lines += [
        f"asv iter_results + get_result_value: {a_cpu:.2f} s CPU ({a_wall:.2f} s wall); "
        f"{counts.pop():,} values",
        f"harness load without the index (HARNESS_RESULTS_INDEX=off): {o_cpu:.2f} s CPU "
        f"({o_wall:.2f} s wall) = {o_cpu / a_cpu:.2f}x asv",
        f"harness cold load (empty index): {c_cpu:.2f} s CPU ({c_wall:.2f} s wall) = "
        f"{c_cpu / a_cpu:.2f}x asv; target <= 0.5x {'met' if c_cpu <= 0.5 * a_cpu else 'NOT met'}"
        f"; the index it wrote meanwhile was on disk {min(written):.2f} s after the start",
        f"harness warm load (unchanged files): {w_cpu:.3f} s CPU ({w_wall:.3f} s wall) = "
        f"{w_cpu / a_cpu:.3f}x asv; target <= 0.05x {'met' if w_cpu <= 0.05 * a_cpu else 'NOT met'}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-study", action="store_true")
    parser.add_argument("--skip-files", action="store_true")
    args = parser.parse_args(argv)
    import asv.results  # noqa: F401  (imported before any timing, for both sides)

    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-reading-") as tmp:
        if not args.skip_study:
            lines += bench_study(args.envs, Path(tmp) / "study")
        if not args.skip_files:
            lines += bench_files(args.files, args.repeat, Path(tmp))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines.append(f"load average {load:.1f} on {os.cpu_count()} cores")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
