"""Cost of one history step on this machine: build + install scanpy at one commit, then the
history's PCA checks on it (issue #12, README "Maintainers").

    .venv/bin/python tests/perf/history_cost.py [--repo ../scanpy] [--commit 1.11.0]
        [--datasets pbmc68k_reduced,10x_10k] [--python 3.11]

Uses the same asv environment as ``harness history`` (created first if missing, timed apart);
the commit's wheel is removed from asv's build cache first, so the build is really timed. The
checks run in a scratch results folder (nothing under results/ changes). Prints one table, with
the load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
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
from harness.history.git import Repo  # noqa: E402
from harness.history.run import Plan, Prober  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=default_repo())
    ap.add_argument("--commit", default="1.11.0")
    ap.add_argument("--datasets", default="pbmc68k_reduced,10x_10k")
    ap.add_argument("--python")
    args = ap.parse_args()
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
    inst = env.install(sha)
    assert inst.ok, inst.reason
    rows = [("create the environment (once)", created), ("build + install scanpy", inst.seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets.split(","):
            plan = Plan(datasets=(dataset,), layouts=LAYOUTS, dtypes=DTYPES, solvers=SOLVERS)
            prober = Prober(repo, plan, python=args.python, results=Path(tmp), refs=(sha,))
            prober.env = env  # the environment already holds the commit
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            status, reason, got, _ = prober._probe(plan.configs())
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert status == "ok", reason
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
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
