"""Cost of one history step on this machine: build + install scanpy at one commit, then the
history's PCA checks on it (issue #12, README "Maintainers").

    .venv/bin/python tests/perf/history_cost.py [--repo ../scanpy] [--commit 1.11.0]
        [--datasets pbmc68k_reduced,10x_10k] [--python 3.11]
    .venv/bin/python tests/perf/history_cost.py --noise results/history/py3.11-6abcf7b5

``--noise`` measures what the runtime factor must absorb: over every pair of stored probes whose
dense outputs are bitwise identical (the same code path, probed minutes or hours apart), the
ratio of their median CPU times, and how often asv's test with each factor calls it a change.

Uses the same asv environment as ``harness history`` (created first if missing, timed apart);
the commit's wheel is removed from asv's build cache first, so the build is really timed. The
checks run in a scratch results folder (nothing under results/ changes). Prints one table, with
the load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.bench.pca import DTYPES, LAYOUTS, SOLVERS  # noqa: E402 - after the path set-up
from harness.history.asvenv import ScanpyEnv, default_repo  # noqa: E402
from harness.history.changes import median, time_change  # noqa: E402
from harness.history.git import Repo  # noqa: E402
from harness.history.run import Plan, Prober  # noqa: E402
from harness.history.store import Store  # noqa: E402


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def noise(folder: Path) -> int:
    """Runtime ratios between probes of identical dense code, and asv's verdicts on them."""
    store = Store(folder.parent, folder.name)
    sources = [s for s in store.sources() if s.ok]
    ratios, flagged = [], dict.fromkeys((1.2, 1.5, 2.0), 0)
    for a, b in itertools.combinations(sources, 2):
        for config, ra in a.rows.items():
            rb = b.rows.get(config)
            if config[1] != "dense" or not rb or {ra.get("state"), rb.get("state")} != {"ok"}:
                continue
            if ra.get("sha256") != rb.get("sha256"):
                continue
            r = median(rb["times"]) / median(ra["times"])
            ratios.append(max(r, 1 / r))
            for f in flagged:
                flagged[f] += time_change(ra["times"], rb["times"], f) is not None
    ratios.sort()
    n = len(ratios)
    q = {p: ratios[round(p * (n - 1))] for p in (0.5, 0.9, 0.99, 1.0)} if n else {}
    print(f"{len(sources)} stored probes, {n} pairs of a dense configuration with identical bits")
    print(
        "ratio of medians (larger / smaller): " + ", ".join(f"q{p:g} {v:.2f}" for p, v in q.items())
    )
    print(
        "asv's test: "
        + ", ".join(
            f"factor {f:g} flags {k} ({100 * k / max(n, 1):.1f}%)" for f, k in flagged.items()
        )
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=Path, help="a history environment folder: timing noise only")
    ap.add_argument("--repo", default=default_repo())
    ap.add_argument("--commit", default="1.11.0")
    ap.add_argument("--datasets", default="pbmc68k_reduced,10x_10k")
    ap.add_argument("--python")
    args = ap.parse_args()
    if args.noise:
        return noise(args.noise)
    repo = Repo(args.repo)
    sha = repo.resolve(args.commit)
    load0 = os.getloadavg()
    env = ScanpyEnv(repo, args.python, refs=(sha,))
    env.lock()
    created = env.create()
    # Forget this commit's wheel, so the build is timed (asv keeps one folder per commit).
    cached = Path(env.env._path) / "asv-build-cache" / sha
    shutil.rmtree(cached, ignore_errors=True)
    env.env._set_installed_commit_hash(None)
    cpu0 = _children_cpu()
    inst = env.install(sha)
    assert inst.ok, inst.reason
    rows = [("create the environment (once)", created), ("build + install scanpy", inst.seconds)]
    rows.append(("  of which CPU time (build + install)", _children_cpu() - cpu0))
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            plan = Plan(datasets=(dataset,), layouts=LAYOUTS, dtypes=DTYPES, solvers=SOLVERS)
            prober = Prober(repo, plan, python=args.python, results=Path(tmp), refs=(sha,))
            prober.env = env  # the environment already holds the commit
            cpu0 = _children_cpu()
            t0 = time.perf_counter()
            status, reason, got, _ = prober._probe(plan.configs())
            wall = time.perf_counter() - t0
            assert status == "ok", reason
            cpu = _children_cpu() - cpu0
            rows.append((f"PCA checks, {dataset} ({len(got)} configurations)", wall))
            rows.append((f"  of which CPU time of the probe ({dataset})", cpu))
    print(f"commit {sha[:9]} ({args.commit}), environment {env.name}")
    print("| step | seconds |\n|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.1f} |")
    print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
