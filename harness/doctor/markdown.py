"""``harness doctor``'s report as Markdown: verdict, input, call, environment, effects, fixes.

Every table goes through :func:`harness.render.formats.md_table` (pipes in names are escaped);
numbers through the shared formatters of :mod:`harness.render.formats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.doctor.inputs import InputSummary
from harness.doctor.model import N_NEIGHBORS, Effect, pcs
from harness.render.formats import fmt_fixed, fmt_float, fmt_seconds, fmt_value, md_table

if TYPE_CHECKING:  # the report's module imports this one
    from harness.doctor.api import DoctorReport

EFFECT_HEADERS = (
    "variation", "factor", "bits", "kNN Jaccard", "Leiden ARI", "max abs. diff (aligned)",
    "max rel. diff per PC", "angle 10 PCs (deg)", "angle all PCs (deg)", "sig. digits (min)",
    "verdict (PCs)", "time",
)  # fmt: skip


def render(r: DoctorReport) -> str:
    """The whole report."""
    lines = [f"# harness doctor: `{r.input.source}`", "", verdict(r), ""]
    lines += _input(r.input, r.call.n_comps, r.n_neighbors) + _call(r)
    lines += _environment(r.environment)
    lines += _effects("Repeats under identical conditions", r.repeats)
    lines += _effects("What changes the result, ranked by effect on the kNN graph", r.variations)
    lines += _components(r)
    lines += ["## Fixes", ""] + [f"{i}. {f}" for i, f in enumerate(r.fixes, 1)] + [""]
    n_runs = 1 + sum(
        e.skipped is None or e.skipped.startswith("failed") for e in r.repeats + r.variations
    )
    lines.append(f"*{n_runs} PCA runs in 2 new processes; doctor took {fmt_seconds(r.seconds)}.*")
    return "\n".join(lines) + "\n"


def _jaccard(x: float | None) -> str:
    return fmt_fixed(x, 6)


def verdict(r: DoctorReport) -> str:
    """The verdict sentence, with the strongest factors."""
    if r.reproducible:
        head = (
            "**Verdict: reproducible.** The call gave bitwise identical results when repeated in "
            "the same process and in a new process (same input, seed, threads, dtype, layout and "
            "solver)."
        )
    else:
        bad = ", ".join(e.label for e in r.repeats if not e.bitwise)
        head = (
            f"**Verdict: NOT reproducible.** Under identical conditions the result changed ({bad})."
        )
    moved = [e for e in r.factors if e.bitwise is False]
    if not moved:
        return head + " No variation changed the bits."
    top = ", ".join(f"{e.factor} (kNN Jaccard {_jaccard(e.knn_jaccard)})" for e in moved[:3])
    return head + f" Factors that change the result, strongest first: {top}."


def _rank(s: InputSummary) -> str:
    if s.rank is None:
        return "not computed (too many genes)"
    full = min(s.n_obs - 1, s.n_vars) if s.centered else min(s.n_obs, s.n_vars)
    matrix = "the centred matrix" if s.centered else "the matrix"
    return f"{s.rank} of at most {full} ({matrix} PCA decomposes)"


def _input(s: InputSummary, n_comps: int, n_neighbors: int) -> list[str]:
    mask = f"`var[{s.mask_var!r}]` ({s.n_vars} of {s.n_vars_total} genes)" if s.mask_var else "none"
    rows = [
        ("matrix", f"`layers[{s.layer!r}]`" if s.layer else "`X`"),
        ("gene mask", mask),
        ("shape PCA sees", f"{s.n_obs:,} x {s.n_vars:,}"),
        ("storage", f"{s.layout} {s.dtype}, density {fmt_value(s.density, None)}"),
        ("NaN / inf", "none"),
        ("zero-variance genes", str(s.zero_variance_genes)),
        ("numerical rank", _rank(s)),
        ("content", f"{s.kind} ({s.kind_evidence})"),
        ("sha256 of the PCA input", f"`{s.sha256}`"),
    ]
    notes = list(s.notes)
    if s.rank is not None and n_comps > s.rank:
        notes.append(
            f"n_comps={n_comps} exceeds the numerical rank {s.rank}: "
            f"{pcs(list(range(s.rank + 1, n_comps + 1)))} span a null space"
        )
    if n_neighbors < N_NEIGHBORS:
        notes.append(
            f"only {s.n_obs} cells: the kNN comparison uses {n_neighbors} neighbours "
            f"instead of {N_NEIGHBORS}"
        )
    out = ["## Input", "", md_table(["", ""], rows)]
    return out + [f"- {n}" for n in notes] + ([""] if notes else [])


def _call(r: DoctorReport) -> list[str]:
    return [
        "## Your call",
        "",
        f"`{r.call.python()}` (solver that runs: {r.call.resolved_solver})",
        "",
    ]


def _environment(env: dict[str, Any]) -> list[str]:
    out = [
        "## Environment",
        "",
        f"{env['label']}; Python {env.get('python')}; CPU {env.get('cpu')}; "
        f"{env['usable_cores']} usable cores.",
        "",
    ]
    if env["threadpools"]:
        rows = [
            (p["library"], p["internal_api"], p["version"] or "-", p["architecture"] or "-",
             p["num_threads"])
            for p in env["threadpools"]
        ]  # fmt: skip
        out.append(md_table(["library", "BLAS", "version", "kernels", "threads"], rows))
    steer = ", ".join(f"{k}={v}" for k, v in env["env_vars"].items()) or "none set"
    hashseed = env.get("pythonhashseed") or "not set"
    out += [f"Thread and BLAS variables: {steer}. PYTHONHASHSEED: {hashseed}.", ""]
    return out


def _effect_row(e: Effect) -> list[Any]:
    if e.skipped:
        return [e.label, e.factor, f"skipped: {e.skipped}"] + [""] * 9
    return [
        e.label,
        e.factor,
        "identical" if e.bitwise else "differ",
        _jaccard(e.knn_jaccard),
        _jaccard(e.leiden_ari),
        fmt_float(e.aligned_max_abs_diff, 3),
        fmt_float(e.aligned_max_rel_diff, 3),
        fmt_float(e.angle_k10_deg, 3),
        fmt_float(e.angle_all_deg, 3),
        fmt_fixed(e.sig_digits_min, 1),
        verdict_cell(e),
        fmt_seconds(e.seconds),
    ]


def verdict_cell(e: Effect) -> str:
    """The calibrated verdict, with the components per verdict when they differ."""
    if e.verdict is None:
        return "not judged"
    counts = e.verdict_counts or {}
    if len(counts) <= 1:
        return e.verdict
    return f"{e.verdict} ({', '.join(f'{n} {v}' for v, n in counts.items())})"


def _effects(title: str, effects: Sequence[Effect]) -> list[str]:
    return [f"## {title}", "", md_table(EFFECT_HEADERS, [_effect_row(e) for e in effects])]


def _components(r: DoctorReport) -> list[str]:
    out = ["## Components against the exact covariance", ""]
    ex = r.explained_components
    if ex:
        factors = sorted({f for d in ex for f in d["factors"]})
        largest = ", ".join(
            f"PC {d['component']} (sin theta {fmt_float(d['max_sin_theta'])}, "
            f"rel. gap {fmt_float(d['rel_gap'])})"
            for d in sorted(ex, key=lambda d: -d["max_sin_theta"])[:5]
        )
        out.append(
            f"{pcs([d['component'] for d in ex])} lie in clusters of near-equal eigenvalues of "
            f"the exact covariance: under {', '.join(factors)} they rotate inside their "
            "cluster's subspace, which agrees within the rounding bound (explained), so it is "
            f"expected, not a bug. Largest: {largest}."
        )
    else:
        out.append(
            "None explained: no component rotated inside a cluster of near-equal eigenvalues."
        )
    reasons = sorted(
        {e.not_judged for e in r.repeats + r.variations if e.not_judged and not e.skipped}
    )
    if reasons:
        out.append(f"\nNot judged against the exact covariance: {'; '.join(reasons)}.")
    if r.null_components:
        rank = "" if r.input.rank is None else f" ({r.input.rank})"
        out.append(
            f"\n{pcs(r.null_components)} lie beyond the input's numerical rank{rank}: "
            "they span a null space, where any basis is valid, so they are compared bitwise "
            "only and left out of every verdict, per-PC deviation and angle above."
        )
    for comps, names in _grouped(r.undetermined_components):
        out.append(
            f"\n{pcs(comps)} undetermined ({', '.join(names)}): their exact eigengap is at the "
            "rounding level, so the spectrum cannot pin them down and rounding can neither be "
            "confirmed nor ruled out."
        )
    for comps, names in _grouped(r.beyond_rounding_components):
        out.append(
            f"\n{pcs(comps)} beyond rounding ({', '.join(names)}): moved more than rounding "
            "allows, or are not eigenvectors of the exact covariance to within rounding (another "
            "algorithm, seed or an unconverged solver)."
        )
    return [*out, ""]


def _grouped(per_variation: dict[str, list[int]]) -> list[tuple[list[int], list[str]]]:
    """Variations with the same PCs together, in first-seen order."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for name, comps in per_variation.items():
        groups.setdefault(tuple(comps), []).append(name)
    return [(list(c), names) for c, names in groups.items()]
