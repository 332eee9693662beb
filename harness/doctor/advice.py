"""The fixes ``harness doctor`` advises: why identical calls differed, then one per factor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.doctor.effects import (
    beyond_rounding_components,
    undetermined_components,
    worst_per_factor,
)
from harness.doctor.inputs import InputSummary
from harness.doctor.model import Call, Effect, pcs
from harness.doctor.plan import NEW_PROCESS_REPEAT, SAME_PROCESS_REPEATS

#: The first scipy whose bundled ARPACK keeps no state between calls. Until scipy/scipy#21110
#: (merged July 2024, first released in 1.15.0) scipy bundled ARPACK-NG 3.3.0, and 3.3-3.5 carry
#: state from one call to the next (scipy/scipy#10374: 3.6.0 is deterministic). That state is the
#: likeliest cause of scipy/scipy#13780 (the first svds call in a process differs from later ones),
#: an issue still open, so the advice is given only when the pattern and the version both fit.
FIRST_CALL_FIXED_IN = Version("1.15")

REPRODUCIBLE = (
    "This call is reproducible on its own: if your results differ between runs, the cause is in the "
    "code around it. Run `python -m harness doctor --pipeline your_script.py` to find the step that "
    "changes its input."
)


def fixes(
    call: Call,
    summary: InputSummary,
    reproducible: bool,
    effects: Sequence[Effect],
    explained: list[dict[str, Any]],
    scipy_version: str | None,
) -> list[str]:
    """Concrete advice: rank and repeat problems first, then one fix per factor that changed the
    bits, strongest first."""
    out = _rank_fix(call, summary)
    by_name = {e.name: e for e in effects}
    if reproducible:
        out.append(REPRODUCIBLE)
    elif call.random_state is None:
        out.append(
            "random_state=None draws a new random start on every call: pass a fixed integer seed."
        )
    elif not out:  # past the rank, the null space explains why identical calls differ
        out += _repeat_fixes(call, by_name, scipy_version)
    for e in worst_per_factor(effects):
        fix = _factor_fix(e.factor, call, summary) if e.bitwise is False else None
        if fix:
            out.append(fix)
    out += _beyond_fix(call, effects)
    if explained:
        comps = [d["component"] for d in explained]
        out.append(
            f"{len(comps)} component(s) ({pcs(comps)}) lie in near-degenerate subspaces: compare "
            "subspaces (`scipy.linalg.subspace_angles` of the loadings) or the kNN graph rather "
            "than individual trailing components, or use fewer components."
        )
    undetermined = sorted({i for c in undetermined_components(effects).values() for i in c})
    if undetermined:
        fewer = f"use n_comps={undetermined[0] - 1} or fewer, or " if undetermined[0] > 1 else ""
        out.append(
            f"{len(undetermined)} component(s) ({pcs(undetermined)}) are undetermined: their "
            "eigenvalues are closer than rounding can resolve, so no run pins them down and "
            f"no comparison can call their difference rounding: {fewer}compare the kNN graph."
        )
    if summary.kind == "raw counts":
        out.append(
            "Normalize (`sc.pp.normalize_total`) and log-transform (`sc.pp.log1p`) before PCA."
        )
    return out


def _rank_fix(call: Call, summary: InputSummary) -> list[str]:
    if summary.rank is None or call.n_comps <= summary.rank:
        return []
    r = summary.rank
    null = pcs(list(range(r + 1, call.n_comps + 1)))
    return [
        f"Use n_comps <= {r}: n_comps={call.n_comps} exceeds the numerical rank of the matrix PCA "
        f"decomposes ({r}), so {null} span its null space. Any basis of it is a valid answer, so "
        "solvers return arbitrary directions there: identical calls can differ in them, and "
        "through them slightly in the other PCs."
    ]


def _null_only(e: Effect | None) -> bool:
    """Whether ``e`` differs from the baseline only in the null-space components."""
    return bool(
        e is not None and e.bitwise is False and e.null_components and e.comparison
        and e.comparison["bitwise"]
    )  # fmt: skip


def _first_call_only(same: Effect | None, later: Effect | None) -> bool:
    """The first call differed from the repeats, and the repeats agree with each other."""
    return bool(same and later and same.bitwise is False and later.same_as_previous)


def _old_arpack(scipy_version: str | None) -> bool:
    try:
        return scipy_version is not None and Version(scipy_version) < FIRST_CALL_FIXED_IN
    except InvalidVersion:
        return False


def _repeat_fixes(call: Call, by_name: dict[str, Effect], scipy_version: str | None) -> list[str]:
    """Why identical seeded conditions gave other bits (within the input's rank), and what to do."""
    same, later = (by_name.get(n) for n in SAME_PROCESS_REPEATS)
    new = by_name.get(NEW_PROCESS_REPEAT)
    out = []
    if same is None or same.bitwise is not False or _null_only(same):
        pass
    elif call.resolved_solver == "arpack" and _first_call_only(same, later):
        if _old_arpack(scipy_version):
            out.append(
                f"The first call in a process differs from the next ones (scipy {scipy_version} "
                "bundles an ARPACK that keeps state between calls, scipy#13780): upgrade scipy "
                f"to {FIRST_CALL_FIXED_IN} or later, or make one warm-up call before the one you keep."
            )
        else:
            out.append(
                "The first call in a process differs from the next ones, which agree: make one "
                "warm-up call before the one you keep, and report it with this output."
            )
    elif call.resolved_solver == "arpack":
        out.append(
            "Identical svd_solver='arpack' calls in one process gave different bits: compare the "
            "kNN graph or subspaces rather than bits, and report it with this output."
        )
    else:
        out.append(
            f"svd_solver={call.resolved_solver!r} draws random numbers that random_state does not "
            "control here: use svd_solver='arpack' (or 'covariance_eigh'), which repeat bitwise."
        )
    new_differs = new is not None and new.bitwise is False and not _null_only(new)
    if new_differs and (same is None or same.bitwise):
        out.append(
            "A new process gives other bits than the first: something outside the call varies "
            "between processes (thread count chosen at start-up, CPU dispatch, PYTHONHASHSEED). "
            "Pin threads and set PYTHONHASHSEED."
        )
    return out


def _beyond_fix(call: Call, effects: Sequence[Effect]) -> list[str]:
    """Advice when the user's own algorithm moved beyond rounding under a change that should be
    rounding only (threads, layout, dtype, seed or a repeat): it did not converge to rounding."""
    if call.resolved_solver in ("randomized", "auto"):
        return []  # the solver fix says it: randomized PCA never converges to rounding level
    beyond = beyond_rounding_components([e for e in effects if e.factor != "solver"])
    if not beyond:
        return []
    comps = sorted({i for c in beyond.values() for i in c})
    return [
        f"With svd_solver={call.resolved_solver!r}, {', '.join(beyond)} moved {pcs(comps)} beyond "
        "rounding: on this input the solver does not reach rounding-level accuracy. Use "
        "svd_solver='covariance_eigh' (few genes) or compare the kNN graph rather than the "
        "components."
    ]


def _factor_fix(factor: str, call: Call, summary: InputSummary) -> str | None:
    seed = call.random_state if call.random_state is not None else 0
    if factor == "threads":
        return (
            "Pin the BLAS thread count and record it with your results: "
            "`from threadpoolctl import threadpool_limits` and `with threadpool_limits(limits=1): "
            "sc.pp.pca(...)`, or `export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1` before Python "
            "starts. Other thread counts (and other machines) give other bits."
        )
    if factor == "random_state":
        return (
            f"Keep the seed fixed: pass `random_state={seed}` in every run (another seed gives "
            "another result)."
        )
    if factor == "dtype" and summary.dtype != "float64":
        return (
            "Use float64 input (`adata.X = adata.X.astype(np.float64)`) for ~16 instead of ~7 "
            "significant digits: the deviations shrink by orders of magnitude (they do not vanish)."
        )
    if factor == "layout":
        return (
            "Keep X in one layout (sparse or dense) in every run: scanpy takes another code path "
            "for each."
        )
    if factor == "solver":
        return _solver_fix(call)
    return None


def _solver_fix(call: Call) -> str:
    if call.resolved_solver in ("randomized", "auto"):
        return (
            "Use svd_solver='arpack' (or 'covariance_eigh' when there are few genes): randomized "
            "PCA is not converged to rounding level."
        )
    return (
        f"Pass svd_solver={call.resolved_solver!r} explicitly: the default (None) resolves "
        "differently across scanpy versions and input types, and each solver gives different bits."
    )
