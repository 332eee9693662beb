"""``harness doctor``: is a user's PCA call reproducible, and which factors change its result?

The call runs in fresh child processes (:mod:`~harness.doctor.child`): the baseline and its
repeats, then one controlled variation at a time (:mod:`~harness.doctor.plan`); each run is
compared with the baseline (:mod:`~harness.doctor.effects`), and the report holds the fixes
(:mod:`~harness.doctor.advice`) and renders as Markdown (:mod:`~harness.doctor.markdown`).
``--pipeline`` lives in :mod:`harness.doctor.pipeline`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from harness import io
from harness.bench.fingerprint import label
from harness.bench.pca import PCAResult
from harness.bench.verdicts import Side
from harness.doctor import advice, child, effects, inputs, markdown, plan
from harness.doctor.inputs import InputSummary
from harness.doctor.model import KNOWN_SOLVERS, Call, Effect, Variation, n_neighbors
from harness.doctor.pipeline import run_pipeline
from harness.doctor.process import DEFAULT_TIMEOUT, check_timeout, progress_bar, stop_on_sigterm
from harness.errors import HarnessError
from harness.vocabulary import usable_cores

__all__ = ["Call", "DoctorReport", "Effect", "Variation", "cli_doctor", "doctor"]


@dataclass(frozen=True)
class DoctorReport:
    """The diagnosis: input, call, environment, verdict, ranked factors, explained PCs, fixes.

    ``explained_components``: PCs some variation moved inside a cluster of near-equal exact
    eigenvalues, within the rounding bound; ``beyond_rounding_components`` and
    ``undetermined_components``: per variation, the PCs with that calibrated verdict.
    ``n_neighbors``: the kNN comparison's neighbours (fewer than 15 only on tiny data).
    ``null_components``: PCs beyond the input's numerical rank (compared bitwise only).
    """

    input: InputSummary
    call: Call
    environment: dict[str, Any]
    reproducible: bool
    repeats: list[Effect]
    variations: list[Effect]
    factors: list[Effect]
    explained_components: list[dict[str, Any]]
    beyond_rounding_components: dict[str, list[int]]
    undetermined_components: dict[str, list[int]]
    fixes: list[str]
    seconds: float
    n_neighbors: int
    null_components: list[int]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        d = dataclasses.asdict(self)
        d["call"]["python"] = self.call.python()
        return json.loads(io.dumps(d))

    def to_markdown(self) -> str:
        """The report as Markdown."""
        return markdown.render(self)


# --- the API -----------------------------------------------------------------------------------


def doctor(
    adata: Any,
    *,
    layer: str | None = None,
    mask_var: Any = None,
    n_comps: int = 50,
    svd_solver: str | None = None,
    random_state: int | None = 0,
    zero_center: bool = True,
    progress: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    **pca_kwargs: Any,
) -> DoctorReport:
    """Diagnose ``sc.pp.pca(adata, ...)``: reproducible or not, and what changes its result.

    ``adata`` is an AnnData or a path to an .h5ad file. ``mask_var=None`` means scanpy's default
    (``var['highly_variable']`` when present); ``mask_var=False`` means no mask. ``timeout``: the
    seconds each child process may run.
    """
    started = time.perf_counter()
    timeout = check_timeout(timeout)
    if isinstance(adata, (str, os.PathLike)):
        source, adata = str(adata), inputs.read_h5ad(adata)
    else:
        source = "<AnnData in memory>"
    what = source if layer is None else f"{source} layer {layer!r}"
    x_full = inputs.source_matrix(adata, layer, what)
    mask_name, mask = inputs.resolve_mask(adata, mask_var, what)
    inputs.check_values(inputs.masked(x_full, mask), what, n_comps)
    _check_call(svd_solver, pca_kwargs)
    summary = inputs.summarize(
        x_full, mask_name, mask, source=source, layer=layer, center=zero_center
    )
    call = _resolve_call(
        summary.layout, n_comps, svd_solver, random_state, zero_center, layer, mask_name, pca_kwargs
    )
    with stop_on_sigterm(), tempfile.TemporaryDirectory(prefix="harness-doctor-") as tmp:
        data = _write_input(Path(tmp), x_full, mask)
        ex = effects.exact(x_full, mask, zero_center)
        ran, env = _run_all(Path(tmp), data, call, summary, ex, progress, timeout)
    return _build_report(summary, call, env, ran, time.perf_counter() - started)


def _check_call(svd_solver: str | None, pca_kwargs: dict[str, Any]) -> None:
    if svd_solver is not None and svd_solver not in KNOWN_SOLVERS:
        raise HarnessError(f"svd_solver={svd_solver!r} is not one of {', '.join(KNOWN_SOLVERS)}")
    for key in ("adata", "data", "copy", "return_info", "key_added"):
        if key in pca_kwargs:
            raise HarnessError(f"doctor sets {key!r} itself; leave it out")
    try:
        json.dumps(pca_kwargs)
    except TypeError:
        raise HarnessError(
            "extra pca keyword arguments must be plain values (str, int, float, bool)"
        ) from None


def _resolve_call(
    layout: str,
    n_comps: int,
    svd_solver: str | None,
    random_state: int | None,
    zero_center: bool,
    layer: str | None,
    mask_name: str | None,
    extra: dict[str, Any],
) -> Call:
    """The call, with the solver scanpy >= 1.10 really runs for it."""
    resolved = plan.resolved_solver(layout, svd_solver, zero_center, extra)
    return Call(
        n_comps, svd_solver, resolved, random_state, zero_center, layer, mask_name, dict(extra)
    )


def _write_input(tmp: Path, x_full, mask: np.ndarray | None) -> Path:
    """A minimal h5ad with the exact source matrix (bits, dtype, layout) and the mask column."""
    var = pd.DataFrame(index=[f"g{i}" for i in range(x_full.shape[1])])
    if mask is not None:
        var["mask"] = mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = ad.AnnData(X=x_full, var=var)
    target = tmp / "input.h5ad"
    with io.atomic_path(target) as path:
        small.write_h5ad(path)
    return target


def _run_all(
    tmp: Path,
    data: Path,
    call: Call,
    summary: InputSummary,
    ex: effects.Exact,
    progress: bool,
    timeout: float,
) -> tuple[list[Effect], dict[str, Any]]:
    """Run the plan in two new processes, compare every run with the baseline."""
    threads, cores = plan.baseline_threads(), usable_cores()
    runs, skipped = plan.plan(call, summary.layout, summary.dtype, threads, cores)
    fresh = plan.new_process_repeat(call)
    # Steps: each PCA run (main process, plus the new-process repeat), then each comparison.
    with progress_bar(2 * len(runs) + 1, "harness doctor", "step", progress) as bar:
        meta = child.spawn(tmp, "main", runs, data, call, bar, what=summary.source, timeout=timeout)
        meta2 = child.spawn(
            tmp, "fresh", [fresh], data, call, bar, what=summary.source, timeout=timeout
        )
        errors = {**meta["errors"], **meta2["errors"]}
        if "baseline" in errors:
            raise HarnessError(f"sc.pp.pca failed on {summary.source}: {errors['baseline']}")
        seconds = {**meta["seconds"], **meta2["seconds"]}
        # One thread for the comparisons: the many small SVDs and kNN searches run several times
        # faster than with a thread pool, and the metrics' own bits do not depend on the machine.
        with threadpool_limits(limits=1):
            ran = _compare_all(tmp, [*runs[1:], fresh], call, summary, ex, errors, seconds, bar)
    env = _environment(meta.get("fingerprint") or {}, threads, cores, seconds.get("baseline"))
    return ran + skipped, env


def _compare_all(
    tmp: Path,
    runs: list[Variation],
    call: Call,
    summary: InputSummary,
    ex: effects.Exact,
    errors: dict[str, str],
    seconds: dict[str, float],
    bar: Any,
) -> list[Effect]:
    """Each run against the baseline; a later same-process repeat also against the one before."""
    base = child.load(tmp / "baseline.npz")
    base_side = _side(call, plan.baseline(call), summary, base)
    k = n_neighbors(summary.n_obs)
    out, previous = [], None
    for v in runs:
        bar.set_postfix_str(f"compare {v.name}")
        if v.name in errors:
            out.append(effects.failed(v, errors[v.name], seconds.get(v.name)))
        else:
            result = child.load(tmp / f"{v.name}.npz")
            e = effects.effect(
                base, result, v, ex=ex, sides=(base_side, _side(call, v, summary, result)),
                rank=summary.rank, n_neighbors=k, seconds=seconds.get(v.name),
            )  # fmt: skip
            if v.name == plan.SAME_PROCESS_REPEATS[1] and previous is not None:
                e = dataclasses.replace(e, same_as_previous=effects.bitwise_equal(previous, result))
            previous = result if v.name == plan.SAME_PROCESS_REPEATS[0] else previous
            out.append(e)
        bar.update(1)
    return out


def _side(call: Call, v: Variation, summary: InputSummary, result: PCAResult) -> Side:
    """How variation ``v`` was computed: the solver that ran, its layout and dtype."""
    layout = v.layout or summary.layout
    return effects.side(
        plan.variation_solver(call, v, summary.layout), layout, v.dtype or summary.dtype, result
    )


def _environment(
    fp: dict[str, Any], threads: int, cores: int, baseline_seconds: float | None
) -> dict[str, Any]:
    """The child's environment as the report shows it: versions, BLAS pools, CPU, variables."""
    pools = [
        {
            k: p.get(k)
            for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")
        }
        | {"library": Path(p.get("filepath", "")).name}
        for p in fp.get("threadpools") or []
    ]
    return {
        "label": label(fp) if fp else "unknown",
        "python": fp.get("python"),
        "packages": fp.get("packages", {}),
        "blas": fp.get("blas"),
        "threadpools": pools,
        "cpu": (fp.get("cpu") or {}).get("model"),
        "usable_cores": cores,
        "baseline_threads": threads,
        "env_vars": fp.get("env_vars", {}),
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
        "baseline_seconds": baseline_seconds,
    }


def _build_report(
    summary: InputSummary, call: Call, env: dict[str, Any], ran: list[Effect], seconds: float
) -> DoctorReport:
    repeats = [e for e in ran if e.factor == "repeat"]
    variations = [e for e in ran if e.factor != "repeat"]
    reproducible = all(e.bitwise for e in repeats)
    explained = effects.explained_components(ran)
    scipy_version = env.get("packages", {}).get("scipy")
    return DoctorReport(
        input=summary,
        call=call,
        environment=env,
        reproducible=reproducible,
        repeats=repeats,
        variations=effects.ranked(variations) + [e for e in variations if e.skipped],
        factors=effects.worst_per_factor(variations),
        explained_components=explained,
        beyond_rounding_components=effects.beyond_rounding_components(ran),
        undetermined_components=effects.undetermined_components(ran),
        fixes=advice.fixes(call, summary, reproducible, ran, explained, scipy_version),
        seconds=seconds,
        n_neighbors=n_neighbors(summary.n_obs),
        null_components=effects.null_components(ran, call.n_comps),
    )


# --- command line ------------------------------------------------------------------------------


def cli_doctor(args) -> int:
    """``python -m harness doctor``: 0 reproducible, 1 not (or a pipeline difference), 2 bad input."""
    # harness.cli checked before this that --out can be written (harness.commands.check_writable).
    timeout = check_timeout(args.timeout)
    if args.pipeline:
        if args.data:
            raise HarnessError("give either DATA.h5ad or --pipeline SCRIPT.py, not both")
        report = run_pipeline(
            args.pipeline, progress=True, debug=getattr(args, "debug", False), timeout=timeout
        )
    else:
        if not args.data:
            raise HarnessError("give an .h5ad file to diagnose, or --pipeline SCRIPT.py")
        report = doctor(
            args.data,
            layer=args.layer,
            # 'none' asks for every gene; no --mask-var keeps scanpy's default (highly_variable).
            mask_var=False if (args.mask_var or "").lower() == "none" else args.mask_var,
            n_comps=args.n_comps,
            svd_solver=args.svd_solver,
            random_state=args.random_state,
            zero_center=not args.no_zero_center,
            timeout=timeout,
        )
    text = report.to_markdown() if args.format == "md" else io.dumps(report.to_dict()) + "\n"
    if args.out:
        io.write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0 if report.reproducible else 1
