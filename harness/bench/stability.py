"""The stability checks: which factor moves PCA's output, by how much, and whether it matters.

Each check compares PCA results of one configuration (dataset, layout, dtype, svd_solver) under
two or more conditions and reduces them with :mod:`harness.analysis.metrics`:

========  ===================================================================================
repeat    ``REPEATS`` calls in one process (threads=1, seed 123; the runtime suite's samples)
process   the same call in two fresh interpreters of the same environment (default threads)
threads   1 vs 2 vs all cores, in-process through threadpoolctl
seed      random_state 123 vs 0
layout    CSR vs dense of the same data
dtype     float32 vs float64 input
accuracy  against a float64 reference: eigh of the exact covariance of the same input, 1 thread
========  ===================================================================================

No wasted work: every (configuration, condition) result is computed once per environment and
commit and kept in a disk cache keyed by the input's sha256, so the checks share their baselines
(threads=1, seed 123 feeds repeat, threads, seed, layout, dtype and accuracy).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from harness import io, processes
from harness.analysis import metrics
from harness.bench import datasets, fingerprint, store, support, verdicts
from harness.bench import digests as artifacts
from harness.bench.pca import (
    N_COMPS,
    RANDOM_STATE,
    PCAResult,
    load_results,
    make_anndata,
    run_pca,
    save_results,
)
from harness.vocabulary import REPEATS, THREAD_COUNTS, usable_cores

UNIT = "relative"
OTHER_SEED = 0


class Skip(Exception):
    """This check does not apply to this configuration; the message says why."""


@dataclass(frozen=True)
class Config:
    """One benchmark parameter combination of the stability suite."""

    dataset: str
    layout: str
    dtype: str
    svd_solver: str

    def params(self) -> dict[str, str]:
        return asdict(self)

    def unsupported(self) -> str | None:
        return support.unsupported_reason(self.svd_solver, self.layout)


@dataclass(frozen=True)
class Condition:
    """How one PCA was run: BLAS threads (None = the environment's default), seed, process."""

    threads: int | None = 1
    random_state: int = RANDOM_STATE
    process: str = "main"
    index: int = 0  # the n-th call of a repeat

    def tag(self) -> str:
        return f"t{self.threads or 'env'}-s{self.random_state}-{self.process}-{self.index}"


BASELINE = Condition()
FRESH = (Condition(threads=None, process="fresh-1"), Condition(threads=None, process="fresh-2"))


# --- computing and caching results -----------------------------------------------------------


def _input(config: Config):
    x = datasets.matrix(config.dataset, config.layout, config.dtype)
    datasets.check_matrix(x, config.dataset, N_COMPS)
    return x


def compute(config: Config, condition: Condition) -> PCAResult:
    """Run the configuration's PCA under ``condition`` in this process."""
    x = _input(config)
    with threadpool_limits(limits=condition.threads):
        return run_pca(
            make_anndata(x), solver=config.svd_solver, random_state=condition.random_state
        )


def cache_folder() -> Path:
    """Results cache of this environment and commit (asv env name, commit, installed versions
    and the variables that steer BLAS and threads)."""
    ident = {
        "run": store.current().to_dict(),
        # The same asv environment under another OPENBLAS_CORETYPE runs other kernels: a rerun
        # after an ambient variable was removed must not read the first run's results back.
        "steering": fingerprint.steering_env(),
        "versions": {
            d: support.installed_version(d) for d in ("scanpy", "scikit-learn", "numpy", "scipy")
        },
        "python": sys.version,
    }
    digest = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return datasets.cache_dir() / "pca" / digest


def _cache_path(config: Config, condition: Condition) -> Path:
    x_sha = datasets.describe(config.dataset, config.layout, config.dtype)["sha256"][:16]
    return cache_folder() / f"{x_sha}-{config.svd_solver}-{condition.tag()}.npz"


def keep(config: Config, condition: Condition, result: PCAResult) -> None:
    """Offer a result computed elsewhere (the runtime suite's call) to the cache."""
    path = _cache_path(config, condition)
    if not path.exists():
        save_results(path, [result])


#: The runtime suite's timed calls at threads=1 in this benchmark process, per configuration:
#: identical calls in one process, i.e. the repeat check's samples (see :func:`offer_timed`).
_TIMED: dict[Config, list[PCAResult]] = {}


def offer_timed(config: Config, threads: int, result: PCAResult) -> None:
    """Hand a call the runtime suite just timed to the stability cache (no wasted work).

    The timed call is the stability suite's baseline (threads=1) or its all-cores condition, and
    the samples at threads=1 are the repeat check's identical calls, so none is computed twice.
    asv runs each parameter combination in its own process, so ``_TIMED`` holds one
    configuration's samples.
    """
    if threads not in THREAD_COUNTS:
        return
    keep(config, replace(BASELINE, threads=threads), result)
    if threads == 1:
        _TIMED.setdefault(config, []).append(result)
        keep_repeats(config, _TIMED[config])


def _repeats_path(config: Config) -> Path:
    return _cache_path(config, replace(BASELINE, process="repeats"))


def keep_repeats(config: Config, results: list[PCAResult]) -> None:
    """Offer REPEATS results of identical calls made in one process (the runtime suite's samples)."""
    path = _repeats_path(config)
    if len(results) >= REPEATS and not path.exists():
        save_results(path, results[:REPEATS])


def repeats(config: Config) -> list[PCAResult]:
    """REPEATS identical calls from one process: the runtime suite's, else computed here."""
    path = _repeats_path(config)
    if path.exists():
        return load_results(path)
    return [compute(config, replace(BASELINE, index=i)) for i in range(REPEATS)]


def cached(config: Config, condition: Condition = BASELINE) -> PCAResult:
    """The result of ``config`` under ``condition``, computed at most once per environment."""
    path = _cache_path(config, condition)
    if path.exists():
        return load_results(path)[0]
    if condition.process != "main":
        raise Skip(
            f"no fresh-process result for {config.params()} (setup_cache did not produce it)"
        )
    result = compute(config, condition)
    save_results(path, [result])
    return result


# --- fresh processes -------------------------------------------------------------------------


def run_fresh_processes(configs: list[Config], timeout: float = 1500) -> None:
    """Compute every configuration in two fresh interpreters (the 'process' check).

    The first one also leaves the cross-environment artifacts. Children inherit the environment,
    so their thread count is the environment's default, as in a user's fresh session.
    """
    todo = [c for c in configs if not c.unsupported()]
    for condition in FRESH:
        missing = [c for c in todo if not _cache_path_or_none(c, condition)]
        if not missing:
            continue
        _run_child(
            {"configs": [c.params() for c in missing], "condition": asdict(condition)}, timeout
        )
    save_missing_artifacts(todo)


def _run_child(payload: dict[str, Any], timeout: float) -> None:
    """This module in a fresh interpreter on ``payload`` (killed when ``timeout`` runs out)."""
    _run_children([payload], timeout)


def _run_children(payloads: list[dict[str, Any]], timeout: float) -> None:
    run_module_children("harness.bench.stability", payloads, timeout)


def run_module_children(module: str, payloads: list[dict[str, Any]], timeout: float) -> None:
    """``python -m module`` in one fresh interpreter per payload (JSON on stdin), all at once;
    every child is killed with its process group (dask workers included) when ``timeout`` runs
    out or one fails, and the first failure is raised (CalledProcessError or TimeoutExpired)."""
    cmd = [sys.executable, "-m", module]
    children = []
    try:
        for payload in payloads:
            child = subprocess.Popen(cmd, stdin=subprocess.PIPE, text=True, start_new_session=True)
            children.append(child)
            child.stdin.write(json.dumps(payload))  # type: ignore[union-attr]
            child.stdin.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        for child in children:
            returncode = child.wait(timeout=max(deadline - time.monotonic(), 0))
            if returncode:
                raise subprocess.CalledProcessError(returncode, cmd)
    except subprocess.TimeoutExpired:
        raise subprocess.TimeoutExpired(cmd, timeout) from None
    finally:
        for child in children:  # the whole group: a dask worker may outlive its parent
            processes.kill_group(child)


def _cache_path_or_none(config: Config, condition: Condition) -> Path | None:
    try:
        path = _cache_path(config, condition)
    except datasets.DatasetUnavailable:
        return Path()  # nothing to compute: the check will skip with the dataset's reason
    return path if path.exists() else None


def _child(payload: dict[str, Any]) -> None:
    condition = Condition(**payload["condition"])
    for params in payload["configs"]:
        config = Config(**params)
        try:
            result = compute(config, condition)
        except datasets.DatasetUnavailable:
            continue
        save_results(_cache_path(config, condition), [result])
        if condition == FRESH[0]:
            save_artifact(config, condition, result)


def _artifact_path(config: Config) -> Path:
    return store.current_folder() / "artifacts" / f"{store.params_key(config.params())}.npz"


def save_artifact(config: Config, condition: Condition, result: PCAResult) -> None:
    """Keep the cross-environment digest of one result beside asv's results, with what the
    calibrated verdict needs (the exact problem, the result's residuals and rounding level)."""
    problem = verdicts.problem(config.dataset, config.layout, config.dtype, cache_folder())
    side = verdicts.side(
        config.svd_solver, config.layout, [config.dtype, result.loadings.dtype], result.loadings
    )
    digest = artifacts.make(
        result,
        store.current(),
        config.params(),
        asdict(condition),
        problem=problem,
        rho=side.rho(problem),
        path=side.path,
    )
    artifacts.save(digest, _artifact_path(config))


def save_missing_artifacts(configs: list[Config]) -> None:
    """A digest for every cached fresh-process result that has none in this results folder (a
    rerun with a warm result cache computes nothing, yet its folder needs digests: issue #10)."""
    for config in configs:
        path = _cache_path_or_none(config, FRESH[0])
        if path and path.is_file() and not _artifact_path(config).exists():
            save_artifact(config, FRESH[0], load_results(path)[0])


# --- the checks ------------------------------------------------------------------------------


def _sibling(config: Config, **change: str) -> Config:
    other = replace(config, **change)
    if reason := other.unsupported():
        raise Skip(reason)
    return other


def reference(config: Config) -> PCAResult:
    """float64 reference of the configuration's input (shared by all its solvers; cached)."""
    x_sha = datasets.describe(config.dataset, config.layout, config.dtype)["sha256"][:16]
    path = cache_folder() / f"{x_sha}-reference.npz"
    if path.exists():
        return load_results(path)[0]
    result = exact_pca(_input(config))
    save_results(path, [result])
    return result


def exact_pca(x, n_comps: int = N_COMPS) -> PCAResult:
    """eigh of the exact float64 covariance of ``x`` (dense or sparse) on one BLAS thread."""
    with threadpool_limits(limits=1):
        x64 = x.astype(np.float64)
        mean = np.asarray(x64.mean(axis=0)).ravel()
        gram = (x64.T @ x64).toarray() if sparse.issparse(x64) else x64.T @ x64
        cov = (gram - x.shape[0] * np.outer(mean, mean)) / (x.shape[0] - 1)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:n_comps]
        loadings = vectors[:, order]
        embedding = np.asarray(x64 @ loadings) - mean @ loadings
    variance = values[order]
    return PCAResult(embedding, loadings, variance, variance / values.clip(min=0).sum())


def not_applicable(check: str, config: Config) -> str | None:
    """Why ``check`` cannot run on ``config`` (unsupported solver or sibling), else None.

    Raises DatasetUnavailable when the input itself cannot be had.
    """
    if reason := config.unsupported():
        return reason
    _input(config)
    if check == "layout":
        return replace(config, layout=_other_layout(config)).unsupported()
    if check == "dtype":
        return replace(config, dtype=_other_dtype(config)).unsupported()
    return None


def _other_layout(config: Config) -> str:
    return "csr" if config.layout == "dense" else "dense"


def _other_dtype(config: Config) -> str:
    return "float64" if config.dtype == "float32" else "float32"


def samples(check: str, config: Config) -> list[PCAResult]:
    """The results a check compares, the baseline first."""
    if check == "repeat":
        return repeats(config)
    if check == "process":
        return [cached(config, c) for c in FRESH]
    if check == "threads":
        return [cached(config, replace(BASELINE, threads=n)) for n in THREAD_COUNTS]
    if check == "seed":
        return [cached(config), cached(config, replace(BASELINE, random_state=OTHER_SEED))]
    if check == "layout":
        return [cached(config), cached(_sibling(config, layout=_other_layout(config)))]
    if check == "dtype":
        return [cached(config), cached(_sibling(config, dtype=_other_dtype(config)))]
    if check == "accuracy":
        return [cached(config), reference(config)]
    raise ValueError(f"unknown check {check!r}")


def _with_common_dtype(results: list[PCAResult]) -> list[PCAResult]:
    """Cast to float64 when dtypes differ, so the comparison is of values, not of bit patterns."""
    if len({r.embedding.dtype for r in results} | {r.loadings.dtype for r in results}) == 1:
        return results
    return [
        PCAResult(*(np.asarray(a, dtype=np.float64) for a in asdict(r).values())) for r in results
    ]


def sides(check: str, config: Config, raw: list[PCAResult]) -> list[verdicts.Side]:
    """How each sample of a check was computed (the rounding model it is judged with)."""
    out = []
    for i, r in enumerate(raw):
        layout, dtype, solver = config.layout, config.dtype, config.svd_solver
        if i and check == "layout":
            layout = _other_layout(config)
        if i and check == "dtype":
            dtype = _other_dtype(config)
        if i and check == "accuracy":  # exact_pca: eigh of a float64 Gram
            out.append(verdicts.side("covariance_eigh", "csr", [np.float64], r.loadings))
            continue
        out.append(verdicts.side(solver, layout, [dtype, r.loadings.dtype], r.loadings))
    return out


def _shortened(d: dict[str, Any]) -> dict[str, Any]:
    """Per-component lists of a record at 4 significant digits (the verdicts are computed from
    the full values; the record only reports them)."""
    return {
        k: [verdicts.short(x) if isinstance(x, float) else x for x in v]
        if isinstance(v, list)
        else v
        for k, v in d.items()
    }


def summary(check: str, raw: list[PCAResult]) -> tuple[dict[str, Any], list[PCAResult]]:
    """The record fields every check shares (value, comparison, significant digits), and the
    samples cast to a common dtype; the in-memory and the dask suites both build on it."""
    results = _with_common_dtype(raw)
    worst = metrics.compare_many(results)
    # Capped at the outputs' own precision (X_pca is float32 by default even for float64 input).
    digits = metrics.significant_digits(
        results, dtype=metrics.least_precise([r.embedding.dtype for r in raw])
    )
    record = {
        "check": check,
        "unit": UNIT,
        "value": 0.0 if worst.bitwise else worst.aligned_max_rel_diff,
        "status": "ok",
        "reason": None,
        "n_samples": len(results),
        "comparison": _shortened(worst.to_dict()),
        "sigdigits": _shortened(digits.to_dict()),
    }
    return record, results


def evaluate(check: str, config: Config) -> dict[str, Any]:
    """Run one check: the track_ value and the full record kept beside asv's results."""
    # Shared by the checks' processes and by environments: entries are keyed by their inputs'
    # bits and the versions of what computes them (harness.analysis.downstream).
    metrics.DISK_CACHE = datasets.cache_dir() / "downstream"
    raw = samples(check, config)  # each computed under its own condition's thread count
    # The analysis at 1 BLAS thread: under load, a multithreaded OpenBLAS spins for a busy core
    # (subspace_angles of 1,000 x 50 loadings took 0.53 s at 2 threads beside another job, 10 ms
    # at 1). The samples are compared, not computed, here: their bits do not depend on it.
    with threadpool_limits(limits=1):
        return _analysed(check, config, raw)


def _analysed(check: str, config: Config, raw: list[PCAResult]) -> dict[str, Any]:
    record, results = summary(check, raw)
    # The calibrated verdict: every sample against the first, on the exact problem (issue #10).
    problem = verdicts.problem(config.dataset, config.layout, config.dtype, cache_folder())
    return {**record, **verdicts.calibrated(problem, results, sides(check, config, raw))}


# --- one process evaluates every check ------------------------------------------------------
#
# asv runs each track_ combination in its own process, and the first kNN graph a process builds
# pays numba's load of umap's compiled code (3.6 s here, even from numba's disk cache): 336
# checks of the study profile paid it 336 times. Running that code in asv's forkserver to share
# it deadlocked the forked children (numba's threads do not survive fork), so setup_cache
# evaluates every check in fresh children instead (one per core, inputs split between them:
# issue #15, the study's cost), and each track_ reads its evaluation back.


def _evaluation_path(check: str, config: Config) -> Path:
    return cache_folder() / "evaluations" / f"{check}-{store.params_key(config.params())}.json"


def prepare_evaluations(
    configs: list[Config], checks: tuple[str, ...], timeout: float, workers: int | None = None
) -> None:
    """Evaluate every applicable check of every configuration in ``workers`` child processes
    at once (default: one per usable core).

    Three passes, each input (dataset, layout, dtype) in one child so that nothing is computed
    twice: the samples at 1 BLAS thread (in parallel), the samples at more threads (one child:
    they would compete for the cores), then the analysis of every check (in parallel, at 1 BLAS
    thread, reading the samples back). Bits do not depend on what runs beside a call, only
    its thread count. A child that fails or runs out of time costs nothing but time: each
    track_ then evaluates what is missing in its own process, where asv reports any error.
    """
    todo = [
        (check, c)
        for c in configs
        for check in checks
        if not c.unsupported() and not _cached_evaluation(check, c)
    ]
    if not todo:
        return
    groups = _by_input(todo, workers or usable_cores())
    deadline = time.monotonic() + timeout
    passes = [
        [{"samples": _params_of(g), "threads": "single"} for g in groups],
        [{"samples": _params_of(todo), "threads": "multi"}],
        [{"evaluate": [[check, c.params()] for check, c in g]} for g in groups],
    ]
    try:
        for payloads in passes:
            _run_children(payloads, max(deadline - time.monotonic(), 1))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        print(f"stability: the evaluation pass stopped ({err}); checks run in their own process")


def _params_of(items: list[tuple[str, Config]]) -> list[dict[str, str]]:
    return [c.params() for c in dict.fromkeys(c for _, c in items)]


def _by_input(items: list[tuple[str, Config]], n: int) -> list[list[tuple[str, Config]]]:
    """``items`` in at most ``n`` groups of whole inputs (their solvers share a reference and
    the sibling baselines), balanced by the input's size (largest first, to the lightest group)."""
    inputs: dict[tuple[str, str, str], list[tuple[str, Config]]] = {}
    for check, c in items:
        inputs.setdefault((c.dataset, c.layout, c.dtype), []).append((check, c))

    def size(key: tuple[str, str, str]) -> int:
        try:
            rows, cols = datasets.describe(*key)["shape"]
        except datasets.DatasetUnavailable:
            return 0
        return rows * cols * len(inputs[key])

    groups: list[list[tuple[str, Config]]] = [[] for _ in range(max(1, min(n, len(inputs))))]
    loads = [0] * len(groups)
    for key in sorted(inputs, key=size, reverse=True):
        i = loads.index(min(loads))
        groups[i] += inputs[key]
        loads[i] += size(key)
    return groups


def _samples_child(params: list[dict[str, str]], threads: str) -> None:
    """Compute (into the result cache) what the checks of these configurations compare:
    at 1 BLAS thread (``single``: baseline, other seed, reference) or more (``multi``)."""
    for p in params:
        config = Config(**p)
        try:
            if threads == "single":
                cached(config)
                cached(config, replace(BASELINE, random_state=OTHER_SEED))
                reference(config)
            else:
                for n in THREAD_COUNTS[1:]:
                    cached(config, replace(BASELINE, threads=n))
        except (Skip, datasets.DatasetUnavailable):
            continue
        except Exception as err:  # the check that needs it raises it again, where asv shows it
            print(f"stability: samples of {p}: {type(err).__name__}: {err}", file=sys.stderr)


def is_evaluated(check: str, config: Config) -> bool:
    """Whether the evaluation pass left this check's record (so the check applies)."""
    return _cached_evaluation(check, config) is not None


def _cached_evaluation(check: str, config: Config) -> dict[str, Any] | None:
    try:
        path = _evaluation_path(check, config)
    except datasets.DatasetUnavailable:
        return None
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _evaluate_child(items: list[list[Any]]) -> None:
    for check, params in items:
        config = Config(**params)
        try:
            if not_applicable(check, config):
                continue
            record = evaluate(check, config)
        except (Skip, datasets.DatasetUnavailable):
            continue  # the track_ skips with the reason itself
        except Exception as err:  # the track_ raises it again, where asv shows it
            print(f"stability: {check} {params}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        io.write_text(_evaluation_path(check, config), io.dumps(record))


def track(check: str, config: Config, benchmark: str) -> float:
    """What a ``track_`` benchmark returns; the full record goes to the sidecar store."""
    try:
        record = _cached_evaluation(check, config) or evaluate(check, config)
    except (Skip, datasets.DatasetUnavailable) as err:
        store.write_record(
            benchmark,
            config.params(),
            None,
            {"check": check, "status": "skipped", "reason": str(err)},
        )
        raise NotImplementedError(str(err)) from None
    store.write_record(benchmark, config.params(), record["value"], record)
    return record["value"]


if __name__ == "__main__":
    _payload = json.loads(sys.stdin.read())
    if "evaluate" in _payload:
        _evaluate_child(_payload["evaluate"])
    elif "samples" in _payload:
        _samples_child(_payload["samples"], _payload["threads"])
    else:
        _child(_payload)
