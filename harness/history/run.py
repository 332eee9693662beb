"""``python -m harness history REPO A..B``: every commit of a first-parent range where PCA's output
(or, beyond a factor, its runtime) changes, per configuration, with the kind of each change.

Commits that build identical code (same package tree and build settings: git.Repo.source_key)
are one unit; the units are bisected recursively (harness.history.bisect). Each unit is built and
installed through asv (its build cache) and probed once (harness.history.probe); what a unit gave
is stored before the next starts (harness.history.store), so an interrupted history resumes and
a second history over an overlapping range re-runs nothing.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from harness import io, processes
from harness.analysis import rounding
from harness.bench import verdicts
from harness.bench.pca import DTYPES, LAYOUTS, SOLVERS
from harness.bench.store import cache_dir
from harness.errors import HarnessError
from harness.history import changes
from harness.history.asvenv import ScanpyEnv
from harness.history.bisect import ChangePoint, bisect
from harness.history.git import Commit, Repo
from harness.history.store import Source, Store, blob_dir, config_of, env_id, run_name

#: A probe (every configuration of one commit) that runs longer is stopped and recorded.
PROBE_TIMEOUT = 3600.0
#: Exit code of the probe when scanpy does not import (harness.history.probe.EXIT_IMPORT).
EXIT_IMPORT = 3


@dataclass(frozen=True)
class Plan:
    """What is checked at each commit: the configurations, timed samples, the runtime factor."""

    datasets: tuple[str, ...] = ("pbmc68k_reduced",)
    layouts: tuple[str, ...] = LAYOUTS
    dtypes: tuple[str, ...] = DTYPES
    solvers: tuple[str, ...] = SOLVERS
    samples: int = 3
    threads: int = 1
    #: A runtime change needs asv's significance and at least this ratio (None: bits only).
    runtime_factor: float | None = None

    def configs(self) -> list[tuple[str, ...]]:
        return [
            (d, lay, t, s)
            for d in self.datasets
            for lay in self.layouts
            for t in self.dtypes
            for s in self.solvers
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "datasets": list(self.datasets),
            "layouts": list(self.layouts),
            "dtypes": list(self.dtypes),
            "solvers": list(self.solvers),
            "samples": self.samples,
            "threads": self.threads,
            "runtime_factor": self.runtime_factor,
        }


@dataclass(frozen=True)
class Unit:
    """Consecutive commits that build identical code; probed once, at its first commit."""

    start: int  # index into the range's commits
    stop: int  # exclusive
    key: str


def target(n: int, k: int) -> float:
    """(k + 1) log2(N) + k: the evaluations issue #12 allows for N units and k change points."""
    return (k + 1) * math.log2(max(n, 2)) + k


def units_of(keys: list[str]) -> list[Unit]:
    out: list[Unit] = []
    for i, key in enumerate(keys):
        if out and out[-1].key == key:
            out[-1] = Unit(out[-1].start, i + 1, key)
        else:
            out.append(Unit(i, i + 1, key))
    return out


@dataclass
class Counters:
    built: int = 0  # wheels asv built in this run
    installed: int = 0  # commits installed in this run
    probed: int = 0  # probes run in this run
    reused: int = 0  # units whose results came from the store


@dataclass
class HistoryResult:
    spec: str
    commits: list[Commit]
    units: list[Unit]
    changes: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    evaluated: int
    counters: Counters
    wall: float
    env: str
    store: Store
    run_path: Path | None = None
    sources: dict[int, Source] = field(default_factory=dict)

    @property
    def bound(self) -> float:
        return target(len(self.units), len(self.changes))


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: what was measured is stored; the same command resumes."""


class Prober:
    """One environment's measurements: a commit's results from the store, else built and probed
    now (and stored before anything else happens). Shared by the history and the gate."""

    def __init__(
        self,
        repo: Repo,
        plan: Plan,
        *,
        python: str | None,
        results: Path,
        refs: tuple[str, ...],
        retry_failed: bool = False,
        probe_timeout: float = PROBE_TIMEOUT,
        log: Callable[[str], None] = print,
    ):
        self.repo, self.plan, self.log = repo, plan, log
        self.retry_failed, self.probe_timeout = retry_failed, probe_timeout
        self.env = ScanpyEnv(repo, python, refs=refs)
        self.python = python or self.env.conf.pythons[0]
        self.store = Store(results, env_id(self.python, self.env.requirements))
        self.counters = Counters()
        self.current: Commit | None = None  # the commit being measured (for an interruption)

    def start(self) -> None:
        """Hold and (once) create the environment; record it beside the results."""
        self.env.lock()
        created = self.env.create()
        if created > 1:
            self.log(f"history: environment {self.env.name} created in {created:.0f} s")
        self.store.save_env(
            {
                "env_name": self.env.name,
                "python": self.python,
                "requirements": self.env.requirements,
                "created": _now(),
            }
        )

    def source(self, commit: Commit, key: str) -> Source:
        """What ``commit`` (whose source key is ``key``) gives for the plan's configurations."""
        src = self.store.load_source(key)
        wanted = self.plan.configs()
        if src is not None and not src.ok and not self.retry_failed:
            self.counters.reused += 1
            return src
        if src is not None and src.ok and all(c in src.rows for c in wanted):
            self.counters.reused += 1
            return src
        missing = [c for c in wanted if src is None or not src.ok or c not in src.rows]
        src = self._measure(commit, key, missing, src if src and src.ok else None)
        self.store.save_source(src)
        return src

    def _measure(
        self, commit: Commit, key: str, configs: list[tuple[str, ...]], old: Source | None
    ) -> Source:
        label = f"{commit.short} {commit.subject[:60]}"
        self.current = commit
        self.log(f"history: {label}: install")
        inst = self.env.install(commit.sha)
        self.counters.installed += 1
        self.counters.built += int(inst.built)
        build = {"seconds": round(inst.seconds, 2), "built": inst.built}
        spent = round(inst.seconds + (old.build.get("seconds_total", 0.0) if old else 0.0), 2)
        if not inst.ok:
            self.log(f"history: {label}: failed to {inst.stage}: {inst.reason[:200]}")
            return Source(key, commit.sha, f"failed to {inst.stage}", inst.reason, build=build)
        self.log(f"history: {label}: {len(configs)} PCA checks")
        status, reason, rows, probe = self._probe(configs)
        self.counters.probed += 1
        if status != "ok":
            self.log(f"history: {label}: {status}: {reason[:200]}")
            return Source(key, commit.sha, status, reason, build=build, probe=probe)
        src = old or Source(key, commit.sha, "ok", build=build)
        # The first build is the one reported; every install and probe adds to the totals.
        src.build["seconds_total"] = spent
        wall_total = round(
            src.probe.get("wall_total", src.probe.get("wall", 0.0)) + probe["wall"], 2
        )
        src.probe = {**src.probe, **probe, "configs": len(src.rows) + len(rows)}
        src.probe["wall_total"] = wall_total
        for row in rows:
            src.rows[config_of(row)] = row
        return src

    def _probe(
        self, configs: list[tuple[str, ...]]
    ) -> tuple[str, str, list[dict[str, Any]], dict[str, Any]]:
        """Run harness.history.probe in the environment for ``configs``."""
        with tempfile.TemporaryDirectory(prefix="history-probe-") as tmp:
            spec_path, out = Path(tmp) / "spec.json", Path(tmp) / "out.jsonl"
            rows: list[dict[str, Any]] = []
            # One probe per dataset keeps its (dataset, layout, dtype) grid whole.
            t0 = time.perf_counter()
            for group in _by_grid(configs):
                wanted = group.pop("set")
                spec = {**group, "samples": self.plan.samples, "threads": self.plan.threads}
                spec["blobs"] = str(blob_dir())
                io.write_text(spec_path, io.dumps(spec))
                code, err = _run_child(
                    [str(self.env.python), "-m", "harness.history.probe", str(spec_path), str(out)],
                    self.probe_timeout,
                )
                if code == EXIT_IMPORT:
                    return "failed to import", err, [], {}
                if code != 0:
                    return "failed to run", err, [], {}
                got = io.read_jsonl(out)
                header = next(r for r in got if r["kind"] == "header")
                rows += [r for r in got if r["kind"] == "config" and config_of(r) in wanted]
            probe = {
                "wall": round(time.perf_counter() - t0, 2),
                "versions": header["versions"],
                "at": _now(),
            }
            for r in rows:
                r.pop("kind", None)
            return "ok", "", rows, probe


class History:
    """One history run over a range; see the module docstring."""

    def __init__(
        self,
        repo: Repo,
        spec: str,
        plan: Plan,
        *,
        python: str | None = None,
        results: Path,
        retry_failed: bool = False,
        probe_timeout: float = PROBE_TIMEOUT,
        log: Callable[[str], None] = print,
    ):
        self.repo, self.spec, self.plan, self.log = repo, spec, plan, log
        self.commits = repo.first_parent_range(spec)
        self.keys = [repo.source_key(c.sha) for c in self.commits]
        self.units = units_of(self.keys)
        self.prober = Prober(
            repo,
            plan,
            python=python,
            results=results,
            refs=(self.commits[0].sha, self.commits[-1].sha),
            retry_failed=retry_failed,
            probe_timeout=probe_timeout,
            log=log,
        )
        self.store = self.prober.store
        self.run_name = run_name(spec, plan.datasets)
        self.counters = self.prober.counters
        self.sources: dict[int, Source] = {}

    def evaluate(self, u: int) -> Source | None:
        """The unit's results; None when its commit is unusable (skipped like git bisect skip)."""
        unit = self.units[u]
        src = self.prober.source(self.commits[unit.start], unit.key)
        self.sources[u] = src
        return src if src.ok else None

    # --- the range -----------------------------------------------------------------------------

    def differs(self, a: Source, b: Source) -> dict[tuple[str, ...], dict[str, Any]]:
        """Per configuration present in both, what changed from ``a`` to ``b`` (empty: nothing)."""
        return differences(a, b, self.plan.configs(), self.plan.runtime_factor)

    def run(self) -> HistoryResult:
        with _signals_as_interrupt():
            try:
                return self._run()
            except KeyboardInterrupt:
                raise Interrupted(self._interrupted()) from None
            finally:
                self.prober.env.unlock()

    def _run(self) -> HistoryResult:
        self.prober.start()
        n = len(self.commits)
        self.log(
            f"history: {self.spec}: {n} commits ({n - 1} after {self.commits[0].short}), "
            f"{len(self.units)} distinct sources, {len(self.plan.configs())} configurations"
        )
        t0 = time.perf_counter()
        started = _now()

        def progress(found: list[ChangePoint], evaluated: list[int]) -> None:
            # A partial record after every step: an interrupted history still shows its findings.
            records = self._run_records(
                [self._change_record(c) for c in found],
                self._skips(evaluated),
                len(evaluated),
                time.perf_counter() - t0,
                started,
                "partial",
            )
            self.store.save_run(self.run_name, records)

        outcome = bisect(len(self.units), self.evaluate, self.differs, progress)
        wall = time.perf_counter() - t0
        found = [self._change_record(c) for c in outcome.changes]
        skipped = self._skips(outcome.evaluated)
        result = HistoryResult(
            self.spec,
            self.commits,
            self.units,
            found,
            skipped,
            len(outcome.evaluated),
            self.counters,
            wall,
            self.prober.env.name,
            self.store,
            sources=self.sources,
        )
        result.run_path = self.store.save_run(
            self.run_name,
            self._run_records(found, skipped, len(outcome.evaluated), wall, started, "complete"),
        )
        return result

    def _skips(self, evaluated: list[int]) -> list[dict[str, Any]]:
        return [
            self._skip_record(u)
            for u in sorted(evaluated)
            if u in self.sources and not self.sources[u].ok
        ]

    def _interrupted(self) -> str:
        now = self.prober.current
        where = f"while measuring {now.short} ({now.subject[:60]})" if now else "before any build"
        return (
            f"interrupted {where}; {self.counters.probed} commits probed this run, "
            f"{sum(1 for s in self.sources.values() if s is not None)} known; everything measured "
            f"is stored under {self.store.root}: run the same command again to resume"
        )

    def _commit_of(self, u: int) -> Commit:
        return self.commits[self.units[u].start]

    def _change_record(self, c: ChangePoint) -> dict[str, Any]:
        after = self._commit_of(c.after)
        rec: dict[str, Any] = {
            "kind": "change",
            "commit": after.to_dict(),
            "before": self._commit_of(c.before).sha,
            "exact": c.exact,
            "configs": [
                {**dict(zip(CONFIG_NAMES, k, strict=True)), **v} for k, v in c.diff.items()
            ],
        }
        if not c.exact:
            rec["candidates"] = [
                self.commits[i].sha
                for u in range(c.before + 1, c.after + 1)
                for i in range(self.units[u].start, self.units[u].stop)
            ]
        return rec

    def _skip_record(self, u: int) -> dict[str, Any]:
        src = self.sources[u]
        return {
            "kind": "skipped",
            "commit": self._commit_of(u).to_dict(),
            "status": src.status,
            "reason": src.reason[:1000],
        }

    def _run_records(
        self,
        found: list[dict[str, Any]],
        skipped: list[dict[str, Any]],
        evaluated: int,
        wall: float,
        started: str,
        status: str,
    ) -> list[dict[str, Any]]:
        probed = [
            {
                "commit": self._commit_of(u).sha,
                "index": self.units[u].start,
                "status": s.status,
                "build": s.build,
                "probe_wall": s.probe.get("wall"),
                "probe_wall_total": s.probe.get("wall_total", s.probe.get("wall")),
            }
            for u, s in sorted(self.sources.items())
        ]
        n, k = len(self.units), len(found)
        head = {
            "kind": "history",
            "status": status,
            "spec": self.spec,
            "first": self.commits[0].to_dict(),
            "last": self.commits[-1].to_dict(),
            "commits": len(self.commits),
            "units": n,
            "plan": self.plan.to_dict(),
            "env_name": self.prober.env.name,
            "python": self.prober.python,
            "started": started,
            "finished": _now(),
            "wall": round(wall, 1),
            "evaluated": evaluated,
            "built_this_run": self.counters.built,
            "probed_this_run": self.counters.probed,
            "reused": self.counters.reused,
            "bound": round(target(n, k), 1),
            "probed": probed,
        }
        return [head, *found, *skipped]


CONFIG_NAMES = ("dataset", "layout", "dtype", "svd_solver")


def differences(
    a: Source, b: Source, configs: list[tuple[str, ...]], factor: float | None
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Per configuration in both sources: how its bits and (at ``factor``) its runtime changed."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for config in configs:
        ra, rb = a.rows.get(config), b.rows.get(config)
        if ra is None or rb is None:
            continue
        bits = changes.bits_change(config, ra, rb, _problem, blob_dir())
        when = None
        if factor and ra.get("state") == rb.get("state") == "ok":
            when = changes.time_change(ra["times"], rb["times"], factor)
        if bits or when:
            out[config] = {
                **({"bits": bits.to_dict()} if bits else {}),
                **({"runtime": when.to_dict()} if when else {}),
            }
    return out


def _by_grid(configs: list[tuple[str, ...]]) -> list[dict[str, Any]]:
    """Configurations as probe specs, one per dataset (each probe runs its full grid)."""
    out = []
    for dataset in dict.fromkeys(c[0] for c in configs):
        mine = [c for c in configs if c[0] == dataset]
        out.append(
            {
                "datasets": [dataset],
                "layouts": list(dict.fromkeys(c[1] for c in mine)),
                "dtypes": list(dict.fromkeys(c[2] for c in mine)),
                "solvers": list(dict.fromkeys(c[3] for c in mine)),
                "set": set(mine),
            }
        )
    return out


@cache
def _problem(dataset: str, layout: str, dtype: str) -> rounding.Problem:
    return verdicts.problem(dataset, layout, dtype, cache_dir() / "history" / "problems")


def _run_child(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; (exit code, the tail of its stderr).

    On timeout or interrupt the whole group is killed, so no probe outlives the history.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryFile() as err:
        code = processes.run_in_group(cmd, timeout, stdout=subprocess.DEVNULL, stderr=err, env=env)
        if code is None:
            return 124, f"PCA checks timed out after {timeout:g} s"
        err.seek(0)
        text = err.read().decode(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    return code, " | ".join(lines[-8:])[-2000:]


class _signals_as_interrupt:
    """SIGINT and SIGTERM raise KeyboardInterrupt while a history runs, so it stops as Ctrl-C
    does. SIGINT too: a process started in the background by a non-interactive shell (``cmd &``
    in a script, CI) inherits SIGINT ignored, and Python then installs no handler for it, so an
    interrupt was silently lost and the history ran to the end."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> None:
        self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    @staticmethod
    def _handle(signum: int, frame: object) -> None:
        raise KeyboardInterrupt


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_python(python: str | None) -> None:
    """HarnessError (exit 2) for a --python asv cannot run (missing, or a pyenv shim that
    refuses: set PYENV_VERSION to include it)."""
    if not python:
        return
    try:
        done = subprocess.run(
            [f"python{python}", "-c", "pass"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise HarnessError(f"--python {python}: python{python} does not run ({err})") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise HarnessError(f"--python {python}: python{python} does not run: {first}")
