"""Which variations of the user's call doctor runs: repeats, threads, seeds, dtype, layout, solver.

Each factor is changed alone against the baseline; a variation the installed scanpy cannot run as
asked is skipped with the reason (:func:`harness.bench.support.unsupported_reason`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import scipy.linalg  # noqa: F401  (loaded so that threadpoolctl sees the BLAS a child starts with)
from threadpoolctl import threadpool_info

from harness.bench.support import unsupported_reason
from harness.doctor.model import PCA_SOLVERS, TSVD_SOLVERS, Call, Effect, Variation

#: The repeats under identical conditions in the baseline's process, after the baseline itself.
#: Two of them tell a first-call effect (only the first call differs) from calls that all differ.
SAME_PROCESS_REPEATS = ("repeat_same_process", "repeat_same_process_2")
NEW_PROCESS_REPEAT = "repeat_new_process"


def baseline_threads() -> int:
    """BLAS threads a new process starts with (threadpoolctl, after loading numpy and scipy)."""
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else 1


def support_layout(layout: str) -> str:
    """The layout name :func:`unsupported_reason` knows: 'dense', or 'csr' for any sparse one."""
    return "dense" if layout == "dense" else "csr"


def resolved_solver(
    layout: str, svd_solver: str | None, zero_center: bool, extra: dict[str, Any]
) -> str:
    """The solver scanpy >= 1.10 really runs for ``svd_solver`` on ``layout``."""
    if extra.get("chunked"):
        return "incremental (chunked)"
    if not zero_center:
        return svd_solver if svd_solver in TSVD_SOLVERS else "randomized"
    if svd_solver is None or unsupported_reason(svd_solver, support_layout(layout)):
        # scanpy's default, and its fallback (with a warning) for solvers sparse input lacks.
        return "arpack"
    return svd_solver


def variation_solver(call: Call, v: Variation, layout: str) -> str:
    """The solver that runs for variation ``v`` (``layout``: the input's, unless ``v`` changes it)."""
    return resolved_solver(v.layout or layout, v.solver, call.zero_center, call.extra)


def baseline(call: Call) -> Variation:
    """The user's call as given."""
    return Variation("baseline", "baseline", "your call", call.svd_solver, call.random_state)


def new_process_repeat(call: Call) -> Variation:
    """The baseline again, in a process of its own."""
    return _vary(baseline(call), NEW_PROCESS_REPEAT, "repeat", "repeat in a new process")


def _vary(base: Variation, name: str, factor: str, label: str, **changes: Any) -> Variation:
    return dataclasses.replace(base, name=name, factor=factor, label=label, **changes)


def plan(
    call: Call, layout: str, dtype: str, threads: int, cores: int
) -> tuple[list[Variation], list[Effect]]:
    """The variations to run in the baseline's process (baseline first) and those skipped."""
    base = baseline(call)
    labels = ("repeat in the same process", "second repeat in the same process")
    runs = [base] + [
        _vary(base, name, "repeat", label)
        for name, label in zip(SAME_PROCESS_REPEATS, labels, strict=True)
    ]
    runs += [
        _vary(base, f"threads_{n}", "threads", f"{n} BLAS thread{'s' * (n > 1)} (baseline {threads})",
              threads=n)
        for n in sorted({1, 2, cores} - {threads})
    ]  # fmt: skip
    seeds, seed_skips = _seed_runs(base, call)
    layouts, layout_skips = _layout_runs(base, call, layout)
    solvers, solver_skips = _solver_runs(base, call, layout)
    runs += seeds
    runs += [
        _vary(base, f"dtype_{d}", "dtype", f"{d} input (baseline {dtype})", dtype=d)
        for d in ("float32", "float64")
        if d != dtype
    ]
    runs += layouts + solvers
    return runs, seed_skips + layout_skips + solver_skips


def _seed_runs(base: Variation, call: Call) -> tuple[list[Variation], list[Effect]]:
    if call.extra.get("chunked"):
        reason = "chunked PCA ignores the seed"
        return [], [Effect("random_state", "random_state", "other random_state", skipped=reason)]
    seeds = [0, 1] if call.random_state is None else [call.random_state + 1, call.random_state + 2]
    runs = [
        _vary(base, f"random_state_{s}", "random_state", f"random_state={s}", random_state=s)
        for s in seeds
    ]
    return runs, []


def _layout_runs(base: Variation, call: Call, layout: str) -> tuple[list[Variation], list[Effect]]:
    runs, skipped = [], []
    for other in ("dense", "csr"):
        if other == layout:
            continue
        label = f"{other} input (baseline {layout})"
        v = _vary(base, f"layout_{other}", "layout", label, layout=other)
        reason = None
        if call.zero_center and call.svd_solver is not None and not call.extra.get("chunked"):
            reason = unsupported_reason(call.svd_solver, other)
        if reason is None:
            runs.append(v)
        else:
            skipped.append(Effect(v.name, v.factor, v.label, skipped=reason))
    return runs, skipped


def _solver_runs(base: Variation, call: Call, layout: str) -> tuple[list[Variation], list[Effect]]:
    if call.extra.get("chunked"):
        skip = Effect("solver", "solver", "other solvers", skipped="chunked PCA ignores svd_solver")
        return [], [skip]
    runs, skipped = [], []
    for s in PCA_SOLVERS if call.zero_center else TSVD_SOLVERS:
        if s == call.resolved_solver:
            continue
        reason = unsupported_reason(s, support_layout(layout)) if call.zero_center else None
        if reason is not None:
            skipped.append(Effect(f"solver_{s}", "solver", f"svd_solver={s!r}", skipped=reason))
            continue
        label = f"svd_solver={s!r} (baseline {call.resolved_solver})"
        runs.append(_vary(base, f"solver_{s}", "solver", label, solver=s))
    return runs, skipped
