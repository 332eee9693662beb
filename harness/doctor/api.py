"""``harness doctor``: is a user's PCA call reproducible, and which factors change its result?

The call runs in fresh child processes (the baseline and its repeats, then one controlled
variation at a time: threads, seed, dtype, layout, solver); each variation is compared with the
baseline by :mod:`harness.analysis.metrics`. ``--pipeline`` lives in :mod:`harness.doctor.pipeline`.
Module-level imports stay light: ``harness/__init__`` imports this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.doctor.inputs import InputSummary
from harness.errors import HarnessError
from harness.render import formats as render

if TYPE_CHECKING:
    from harness.bench.pca import PCAResult

PCA_SOLVERS = ("arpack", "randomized", "full", "covariance_eigh")
TSVD_SOLVERS = ("arpack", "randomized")
KNOWN_SOLVERS = (*PCA_SOLVERS, "auto", "lobpcg")
#: Relative eigengap below which a component counts as part of a near-degenerate subspace.
NEAR_DEGENERATE = 1e-3
#: ||E|| / lambda_1 up to this multiple of sqrt(n_vars) * u counts as a rounding-level perturbation.
ROUNDING_SLACK = 10.0
N_NEIGHBORS = 15
_MARK = "@@doctor "
_CHILD = (
    "import sys; from harness.doctor.api import _child_main; sys.exit(_child_main(sys.argv[1]))"
)


# --- what runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variation:
    """One run of the user's call: the baseline, a repeat, or one factor changed."""

    name: str
    factor: str
    label: str
    solver: str | None
    random_state: int | None
    threads: int | None = None
    dtype: str | None = None
    layout: str | None = None


@dataclass(frozen=True)
class Call:
    """The user's ``sc.pp.pca`` arguments, and the solver scanpy resolves them to."""

    n_comps: int
    svd_solver: str | None
    resolved_solver: str
    random_state: int | None
    zero_center: bool
    layer: str | None
    mask_var: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def python(self) -> str:
        """The call as the user would type it."""
        args = [
            f"n_comps={self.n_comps}",
            f"svd_solver={self.svd_solver!r}",
            f"random_state={self.random_state!r}",
        ]
        if not self.zero_center:
            args.append("zero_center=False")
        if self.layer is not None:
            args.append(f"layer={self.layer!r}")
        if self.mask_var is not None:
            args.append(f"mask_var={self.mask_var!r}")
        args += [f"{k}={v!r}" for k, v in self.extra.items()]
        return f"sc.pp.pca(adata, {', '.join(args)})"


@dataclass(frozen=True)
class Effect:
    """One variation compared with the baseline (``skipped`` says why it has no numbers)."""

    name: str
    factor: str
    label: str
    bitwise: bool | None = None
    knn_jaccard: float | None = None
    leiden_ari: float | None = None
    max_abs_diff: float | None = None
    aligned_max_abs_diff: float | None = None
    aligned_max_rel_diff: float | None = None
    angle_k10_deg: float | None = None
    angle_all_deg: float | None = None
    sig_digits_min: float | None = None
    n_explained: int | None = None
    n_unexplained: int | None = None
    rounding_level: bool | None = None
    seconds: float | None = None
    skipped: str | None = None
    comparison: dict[str, Any] | None = None

    @property
    def knn_effect(self) -> float:
        """1 - kNN Jaccard (0 when bitwise or not run)."""
        return 0.0 if self.knn_jaccard is None else 1.0 - self.knn_jaccard


@dataclass(frozen=True)
class DoctorReport:
    """The diagnosis: input, call, environment, verdict, ranked factors, explained PCs, fixes."""

    input: InputSummary
    call: Call
    environment: dict[str, Any]
    reproducible: bool
    repeats: list[Effect]
    variations: list[Effect]
    factors: list[Effect]
    explained_components: list[dict[str, Any]]
    unexplained_components: dict[str, list[int]]
    fixes: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        d = dataclasses.asdict(self)
        d["call"]["python"] = self.call.python()
        return json.loads(_json_dumps(d))

    def to_markdown(self) -> str:
        """The report as Markdown."""
        return _markdown(self)


def _json_dumps(obj: Any) -> str:
    from harness import io

    return io.dumps(obj)


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
    **pca_kwargs: Any,
) -> DoctorReport:
    """Diagnose ``sc.pp.pca(adata, ...)``: reproducible or not, and what changes its result.

    ``adata`` is an AnnData or a path to an .h5ad file. ``mask_var=None`` means scanpy's default
    (``var['highly_variable']`` when present); ``mask_var=False`` means no mask.
    """
    from harness.doctor import inputs as checks

    started = time.perf_counter()
    if isinstance(adata, (str, os.PathLike)):
        source, adata = str(adata), checks.read_h5ad(adata)
    else:
        source = "<AnnData in memory>"
    what = source if layer is None else f"{source} layer {layer!r}"
    x_full = checks.source_matrix(adata, layer, what)
    mask_name, mask = checks.resolve_mask(adata, mask_var, what)
    checks.check_values(checks.masked(x_full, mask), what, n_comps)
    _check_call(svd_solver, pca_kwargs)
    summary = checks.summarize(x_full, mask_name, mask, source=source, layer=layer)
    call = _resolve_call(
        summary.layout, n_comps, svd_solver, random_state, zero_center, layer, mask_name, pca_kwargs
    )
    with tempfile.TemporaryDirectory(prefix="harness-doctor-") as tmp:
        data = _write_input(Path(tmp), x_full, mask)
        effects, env = _run_all(Path(tmp), data, call, summary, progress)
    return _build_report(summary, call, env, effects, time.perf_counter() - started)


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
    from harness.bench.support import unsupported_reason

    if extra.get("chunked"):
        resolved = "incremental (chunked)"
    elif not zero_center:
        resolved = svd_solver if svd_solver in TSVD_SOLVERS else "randomized"
    elif svd_solver is None or unsupported_reason(svd_solver, _support_layout(layout)):
        # scanpy's default, and its fallback (with a warning) for solvers sparse input lacks.
        resolved = "arpack"
    else:
        resolved = svd_solver
    return Call(
        n_comps, svd_solver, resolved, random_state, zero_center, layer, mask_name, dict(extra)
    )


def _support_layout(layout: str) -> str:
    return "dense" if layout == "dense" else "csr"


def _write_input(tmp: Path, x_full, mask: np.ndarray | None) -> Path:
    """A minimal h5ad with the exact source matrix (bits, dtype, layout) and the mask column."""
    import warnings

    import anndata as ad
    import pandas as pd

    from harness import io

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


# --- planning ----------------------------------------------------------------------------------


def baseline_threads() -> int:
    """BLAS threads a new process starts with (threadpoolctl, after loading numpy and scipy)."""
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else 1


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan(
    call: Call, layout: str, dtype: str, threads: int, cores: int
) -> tuple[list[Variation], list[Effect]]:
    """The variations to run (baseline first) and those skipped, with the reason."""
    base = Variation("baseline", "baseline", "your call", call.svd_solver, call.random_state)
    runs = [
        base,
        dataclasses.replace(
            base, name="repeat_same_process", factor="repeat", label="repeat in the same process"
        ),
    ]
    runs += [
        dataclasses.replace(
            base,
            name=f"threads_{n}",
            factor="threads",
            label=f"{n} BLAS thread{'s' * (n > 1)} (baseline {threads})",
            threads=n,
        )
        for n in sorted({1, 2, cores} - {threads})
    ]
    skipped: list[Effect] = []
    if call.extra.get("chunked"):
        skipped.append(
            Effect(
                "random_state",
                "random_state",
                "other random_state",
                skipped="chunked PCA ignores the seed",
            )
        )
    else:
        runs += [
            dataclasses.replace(
                base,
                name=f"random_state_{s}",
                factor="random_state",
                label=f"random_state={s}",
                random_state=s,
            )
            for s in _other_seeds(call.random_state)
        ]
    runs += [
        dataclasses.replace(
            base, name=f"dtype_{d}", factor="dtype", label=f"{d} input (baseline {dtype})", dtype=d
        )
        for d in ("float32", "float64")
        if d != dtype
    ]
    for other in ("dense", "csr"):
        if other == layout:
            continue
        reason = _layout_reason(call, other)
        v = dataclasses.replace(
            base,
            name=f"layout_{other}",
            factor="layout",
            label=f"{other} input (baseline {layout})",
            layout=other,
        )
        if reason is None:
            runs.append(v)
        else:
            skipped.append(Effect(v.name, v.factor, v.label, skipped=reason))
    solvers, solver_skips = _other_solvers(call, layout)
    runs += [
        dataclasses.replace(
            base,
            name=f"solver_{s}",
            factor="solver",
            label=f"svd_solver={s!r} (baseline {call.resolved_solver})",
            solver=s,
        )
        for s in solvers
    ]
    return runs, skipped + solver_skips


def _other_seeds(random_state: int | None) -> list[int]:
    return [0, 1] if random_state is None else [random_state + 1, random_state + 2]


def _layout_reason(call: Call, layout: str) -> str | None:
    from harness.bench.support import unsupported_reason

    if not call.zero_center or call.svd_solver is None or call.extra.get("chunked"):
        return None
    return unsupported_reason(call.svd_solver, layout)


def _other_solvers(call: Call, layout: str) -> tuple[list[str], list[Effect]]:
    from harness.bench.support import unsupported_reason

    if call.extra.get("chunked"):
        return [], [
            Effect("solver", "solver", "other solvers", skipped="chunked PCA ignores svd_solver")
        ]
    candidates = PCA_SOLVERS if call.zero_center else TSVD_SOLVERS
    runs, skipped = [], []
    for s in candidates:
        if s == call.resolved_solver:
            continue
        reason = unsupported_reason(s, _support_layout(layout)) if call.zero_center else None
        if reason is None:
            runs.append(s)
        else:
            skipped.append(Effect(f"solver_{s}", "solver", f"svd_solver={s!r}", skipped=reason))
    return runs, skipped


# --- child processes ---------------------------------------------------------------------------


def _child_main(plan_path: str) -> int:
    """Entry point of a child: run each planned variation, write one .npz each and a meta JSON."""
    import warnings

    import anndata as ad

    from harness import io

    spec = json.loads(Path(plan_path).read_text())
    out = Path(spec["out"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = ad.read_h5ad(spec["data"])
    import scanpy  # noqa: F401  (imported before timing, so the first run's time is PCA only)

    meta: dict[str, Any] = {"seconds": {}, "errors": {}}
    for raw in spec["variations"]:
        v = Variation(**raw)
        print(f"{_MARK}start {v.name}", flush=True)
        t0 = time.perf_counter()
        try:
            _save(out / f"{v.name}.npz", _run_variation(adata, spec, v))
        except Exception as err:  # reported per variation; the parent decides what is fatal
            meta["errors"][v.name] = f"{type(err).__name__}: {err}"
        meta["seconds"][v.name] = time.perf_counter() - t0
        print(f"{_MARK}done {v.name}", flush=True)
    if spec.get("fingerprint"):
        from harness.bench.fingerprint import collect

        meta["fingerprint"] = collect()
    io.write_text(out / f"{spec['process']}.json", io.dumps(meta))
    return 0


def _run_variation(adata: Any, spec: dict[str, Any], v: Variation) -> PCAResult:
    import anndata as ad
    from threadpoolctl import threadpool_limits

    from harness.bench.pca import run_pca

    x = _convert(adata.X, v.layout, v.dtype)
    run = ad.AnnData(X=x, var=adata.var.copy())
    mask = "mask" if "mask" in run.var.columns else None
    limits = threadpool_limits(limits=v.threads) if v.threads else contextlib.nullcontext()
    with limits:
        return run_pca(
            run,
            solver=v.solver,
            n_comps=spec["n_comps"],
            random_state=v.random_state,
            zero_center=spec["zero_center"],
            mask_var=mask,
            **spec["extra"],
        )


def _convert(x, layout: str | None, dtype: str | None):
    """A copy of ``x`` in another layout and/or dtype (same layout and dtype when both are None)."""
    from scipy import sparse

    from harness.bench.pca import as_layout

    if layout is not None:
        return as_layout(x, layout, dtype or x.dtype)
    if sparse.issparse(x):
        return x.astype(dtype or x.dtype, copy=True)
    return np.array(x, dtype=dtype or x.dtype, order="K", copy=True)


def _save(path: Path, result: PCAResult) -> None:
    from harness import io

    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **dataclasses.asdict(result))


def _load(path: Path) -> PCAResult:
    from harness.bench.pca import PCAResult

    with np.load(path) as z:
        return PCAResult(**{k: z[k] for k in z.files})


def _spawn(
    tmp: Path, process: str, runs: Sequence[Variation], data: Path, call: Call, bar
) -> dict[str, Any]:
    """Run ``runs`` in one new process, advancing ``bar`` as each finishes; returns its meta."""
    from harness import io

    spec = {
        "process": process,
        "data": str(data),
        "out": str(tmp),
        "n_comps": call.n_comps,
        "zero_center": call.zero_center,
        "extra": call.extra,
        "fingerprint": process == "main",
        "variations": [dataclasses.asdict(v) for v in runs],
    }
    plan_path = tmp / f"{process}-plan.json"
    io.write_text(plan_path, json.dumps(spec))
    with open(tmp / f"{process}.stderr", "w+") as err:
        rc = _stream(plan_path, err, bar)
        if rc != 0:
            err.seek(0)
            tail = [line for line in err.read().splitlines() if line.strip()][-1:] or ["no message"]
            raise HarnessError(f"the PCA child process failed (exit {rc}): {tail[0]}")
    return json.loads((tmp / f"{process}.json").read_text())


def _stream(plan_path: Path, err: Any, bar: Any) -> int:
    from harness.doctor.pipeline import child_env

    cmd = [sys.executable, "-c", _CHILD, str(plan_path)]
    # stderr goes to a file: a full stderr pipe would block the child while we read stdout.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env())
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(_MARK):
                state, name = line[len(_MARK) :].split(maxsplit=1)
                bar.set_postfix_str(f"pca {name.strip()}")
                if state == "done":
                    bar.update(1)
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Any]:
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only when stderr is a terminal.
    with tqdm(
        total=total,
        desc="harness doctor",
        unit="step",
        file=sys.stderr,
        disable=None if enabled else True,
        leave=False,
    ) as bar:
        yield bar


def _run_all(
    tmp: Path, data: Path, call: Call, summary: InputSummary, progress: bool
) -> tuple[list[Effect], dict[str, Any]]:
    """Run the plan in two new processes, compare every run with the baseline."""
    from threadpoolctl import threadpool_limits

    threads = baseline_threads()
    cores = usable_cores()
    runs, skipped = plan(call, summary.layout, summary.dtype, threads, cores)
    fresh = Variation(
        "repeat_new_process",
        "repeat",
        "repeat in a new process",
        call.svd_solver,
        call.random_state,
    )
    # Steps: each PCA run (main process, plus the new-process repeat), then each comparison.
    with _progress(2 * len(runs) + 1, progress) as bar:
        meta = _spawn(tmp, "main", runs, data, call, bar)
        meta2 = _spawn(tmp, "fresh", [fresh], data, call, bar)
        errors = {**meta["errors"], **meta2["errors"]}
        if "baseline" in errors:
            raise HarnessError(f"sc.pp.pca failed on {summary.source}: {errors['baseline']}")
        seconds = {**meta["seconds"], **meta2["seconds"]}
        base = _load(tmp / "baseline.npz")
        effects = []
        # One thread for the comparisons: the many small SVDs and kNN searches run several times
        # faster than with a thread pool, and the metrics' own bits do not depend on the machine.
        with threadpool_limits(limits=1):
            for v in [*runs[1:], fresh]:
                bar.set_postfix_str(f"compare {v.name}")
                effects.append(
                    _effect(base, tmp, v, summary.dtype, errors.get(v.name), seconds.get(v.name))
                )
                bar.update(1)
    env = _environment(meta.get("fingerprint") or {}, threads, cores, seconds.get("baseline"))
    return effects + skipped, env


def _effect(
    base: PCAResult,
    tmp: Path,
    v: Variation,
    base_dtype: str,
    error: str | None,
    seconds: float | None,
) -> Effect:
    """Compare one run with the baseline (kNN and Leiden only when the bits differ)."""
    from harness.analysis import metrics

    if error is not None:
        return Effect(v.name, v.factor, v.label, seconds=seconds, skipped=f"failed: {error}")
    other = _load(tmp / f"{v.name}.npz")
    # Loadings come back float64 when a mask is used, whatever the computation ran in: take the
    # unit roundoff from the input dtypes instead.
    u = max(_unit_roundoff(base_dtype), _unit_roundoff(v.dtype or base_dtype))
    c = metrics.compare(base, other, unit_roundoff=u)
    jaccard = (
        1.0 if c.bitwise else metrics.knn_jaccard(base.embedding, other.embedding, N_NEIGHBORS)
    )
    # metrics builds the Leiden graph from the kNN sets alone: identical sets, identical clusters.
    ari = (
        1.0 if jaccard == 1.0 else metrics.leiden_ari(base.embedding, other.embedding, N_NEIGHBORS)
    )
    c = dataclasses.replace(c, knn_jaccard=jaccard, leiden_ari=ari)
    return Effect(
        name=v.name,
        factor=v.factor,
        label=v.label,
        bitwise=c.bitwise,
        knn_jaccard=c.knn_jaccard,
        leiden_ari=c.leiden_ari,
        max_abs_diff=c.max_abs_diff,
        aligned_max_abs_diff=c.aligned_max_abs_diff,
        aligned_max_rel_diff=c.aligned_max_rel_diff,
        angle_k10_deg=c.angle_k10_deg,
        angle_all_deg=c.angle_all_deg,
        sig_digits_min=metrics.significant_digits([base, other]).minimum,
        n_explained=c.n_explained,
        n_unexplained=c.n_unexplained,
        rounding_level=c.norm_e_rel <= ROUNDING_SLACK * math.sqrt(base.loadings.shape[0]) * u,
        seconds=seconds,
        comparison=c.to_dict(),
    )


def _unit_roundoff(dtype: str) -> float:
    """u = eps/2 of the dtype scikit-learn computes in: float32 stays float32, all else float64."""
    return float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps) / 2


def _environment(
    fp: dict[str, Any], threads: int, cores: int, baseline_seconds: float | None
) -> dict[str, Any]:
    from harness.bench.fingerprint import label

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


# --- the verdict -------------------------------------------------------------------------------


def rank(effects: Sequence[Effect]) -> list[Effect]:
    """Effects ordered by their effect on the kNN graph (1 - Jaccard), then aligned max rel. deviation."""
    ran = [e for e in effects if e.skipped is None]
    return sorted(ran, key=lambda e: (e.knn_effect, e.aligned_max_rel_diff or 0.0), reverse=True)


def worst_per_factor(effects: Sequence[Effect]) -> list[Effect]:
    """The strongest variation of each factor (repeats excluded), strongest factor first."""
    seen: dict[str, Effect] = {}
    for e in rank(effects):
        if e.factor != "repeat":
            seen.setdefault(e.factor, e)
    return list(seen.values())


def explained_components(effects: Sequence[Effect]) -> list[dict[str, Any]]:
    """PCs in near-degenerate subspaces whose deviation under rounding-level changes is explained."""
    found: dict[int, dict[str, Any]] = {}
    for e in effects:
        if not e.rounding_level or e.bitwise or e.comparison is None:
            continue
        c = e.comparison
        for i, (lab, gap, rel) in enumerate(
            zip(c["classification"], c["rel_gap"], c["component_rel_diff"], strict=True)
        ):
            if lab != "explained" or gap is None or gap >= NEAR_DEGENERATE or not rel:
                continue
            entry = found.setdefault(
                i + 1, {"component": i + 1, "rel_gap": gap, "max_rel_diff": 0.0, "factors": []}
            )
            entry["max_rel_diff"] = max(entry["max_rel_diff"], rel)
            if e.factor not in entry["factors"]:
                entry["factors"].append(e.factor)
    return [found[k] for k in sorted(found)]


def unexplained_components(effects: Sequence[Effect]) -> dict[str, list[int]]:
    """Per variation, the PCs that moved more than rounding explains."""
    out = {}
    for e in effects:
        if e.comparison and e.n_unexplained:
            out[e.name] = [
                i + 1
                for i, lab in enumerate(e.comparison["classification"])
                if lab == "unexplained"
            ]
    return out


def fixes(
    call: Call,
    summary: InputSummary,
    reproducible: bool,
    effects: Sequence[Effect],
    explained: list[dict[str, Any]],
) -> list[str]:
    """Concrete advice: repeat problems first, then one fix per factor that changed the bits, strongest first."""
    by_name = {e.name: e for e in effects}
    out = _repeat_fixes(call, by_name) if not reproducible else [_REPRODUCIBLE_FIX]
    for e in worst_per_factor(effects):
        fix = _factor_fix(e.factor, call, summary) if e.bitwise is False else None
        if fix:
            out.append(fix)
    if explained:
        comps = [d["component"] for d in explained]
        out.append(
            f"{len(comps)} component(s) ({_ranges(comps)}) lie in near-degenerate subspaces: compare subspaces "
            "(`scipy.linalg.subspace_angles` of the loadings) or the kNN graph rather than individual "
            "trailing components, or use fewer components."
        )
    if summary.kind == "raw counts":
        out.append(
            "Normalize (`sc.pp.normalize_total`) and log-transform (`sc.pp.log1p`) before PCA."
        )
    return out


_REPRODUCIBLE_FIX = (
    "This call is reproducible on its own: if your results differ between runs, the cause is in the "
    "code around it. Run `python -m harness doctor --pipeline your_script.py` to find the step that "
    "changes its input."
)


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
        return "Keep X in one layout (sparse or dense) in every run: scanpy takes another code path for each."
    if factor == "solver":
        return _solver_fix(call)
    return None


def _repeat_fixes(call: Call, by_name: dict[str, Effect]) -> list[str]:
    """Why identical conditions gave other bits, and what to do."""
    same, new = by_name.get("repeat_same_process"), by_name.get("repeat_new_process")
    out = []
    if call.random_state is None:
        out.append(
            "random_state=None draws a new random start on every call: pass a fixed integer seed."
        )
    elif same is not None and same.bitwise is False and call.resolved_solver == "arpack":
        out.append(
            "The first call in a process differs from the next one (old ARPACK state, "
            "scipy#13780): upgrade scipy, or make one warm-up call before the one you keep."
        )
    elif same is not None and same.bitwise is False:
        out.append(
            f"svd_solver={call.resolved_solver!r} draws random numbers that random_state does not "
            "control here: use svd_solver='arpack' (or 'covariance_eigh'), which repeat bitwise."
        )
    if new is not None and new.bitwise is False and (same is None or same.bitwise):
        out.append(
            "A new process gives other bits than the first: something outside the call varies "
            "between processes (thread count chosen at start-up, CPU dispatch, PYTHONHASHSEED). "
            "Pin threads and set PYTHONHASHSEED."
        )
    return out


def _solver_fix(call: Call) -> str:
    if call.resolved_solver in ("randomized", "auto"):
        return "Use svd_solver='arpack' (or 'covariance_eigh' when there are few genes): randomized PCA is not converged to rounding level."
    return f"Pass svd_solver={call.resolved_solver!r} explicitly: the default (None) resolves differently across scanpy versions and input types, and each solver gives different bits."


def _ranges(values: Sequence[int]) -> str:
    """'PCs 3-5, 9' for [3, 4, 5, 9]."""
    return ("PC " if len(values) == 1 else "PCs ") + render.ranges(values)


def _build_report(
    summary: InputSummary, call: Call, env: dict[str, Any], effects: list[Effect], seconds: float
) -> DoctorReport:
    repeats = [e for e in effects if e.factor == "repeat"]
    variations = [e for e in effects if e.factor != "repeat"]
    reproducible = all(e.bitwise for e in repeats)
    explained = explained_components(effects)
    return DoctorReport(
        input=summary,
        call=call,
        environment=env,
        reproducible=reproducible,
        repeats=repeats,
        variations=rank(variations) + [e for e in variations if e.skipped],
        factors=worst_per_factor(variations),
        explained_components=explained,
        unexplained_components=unexplained_components(effects),
        fixes=fixes(call, summary, reproducible, effects, explained),
        seconds=seconds,
    )


# --- Markdown ----------------------------------------------------------------------------------


def _g(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def _jac(x: float | None) -> str:
    return "-" if x is None else f"{x:.6f}".rstrip("0").rstrip(".") if x != 1 else "1"


def _markdown(r: DoctorReport) -> str:
    lines = [f"# harness doctor: `{r.input.source}`", "", _verdict(r), ""]
    lines += _md_input(r.input) + _md_call(r) + _md_environment(r.environment)
    lines += _md_table("Repeats under identical conditions", r.repeats)
    lines += _md_table("What changes the result, ranked by effect on the kNN graph", r.variations)
    lines += _md_components(r)
    lines += ["## Fixes", ""] + [f"{i}. {f}" for i, f in enumerate(r.fixes, 1)] + [""]
    n_runs = 1 + sum(
        e.skipped is None or e.skipped.startswith("failed") for e in r.repeats + r.variations
    )
    lines.append(f"*{n_runs} PCA runs in 2 new processes; doctor took {r.seconds:.0f} s.*")
    return "\n".join(lines) + "\n"


def _verdict(r: DoctorReport) -> str:
    if r.reproducible:
        head = (
            "**Verdict: reproducible.** The call gave bitwise identical results when repeated in the same process "
            "and in a new process (same input, seed, threads, dtype, layout and solver)."
        )
    else:
        bad = ", ".join(e.label for e in r.repeats if not e.bitwise)
        head = (
            f"**Verdict: NOT reproducible.** Under identical conditions the result changed ({bad})."
        )
    moved = [e for e in r.factors if e.bitwise is False]
    if not moved:
        return head + " No variation changed the bits."
    top = ", ".join(f"{e.factor} (kNN Jaccard {_jac(e.knn_jaccard)})" for e in moved[:3])
    return head + f" Factors that change the result, strongest first: {top}."


def _md_input(s) -> list[str]:
    mask = f"`var[{s.mask_var!r}]` ({s.n_vars} of {s.n_vars_total} genes)" if s.mask_var else "none"
    rows = [
        ("matrix", f"`layers[{s.layer!r}]`" if s.layer else "`X`"),
        ("gene mask", mask),
        ("shape PCA sees", f"{s.n_obs:,} x {s.n_vars:,}"),
        ("storage", f"{s.layout} {s.dtype}, density {s.density:.3g}"),
        ("NaN / inf", "none"),
        ("zero-variance genes", str(s.zero_variance_genes)),
        ("content", f"{s.kind} ({s.kind_evidence})"),
        ("sha256 of the PCA input", f"`{s.sha256}`"),
    ]
    out = ["## Input", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]
    return out + [f"- {n}" for n in s.notes] + ([""] if s.notes else [])


def _md_call(r: DoctorReport) -> list[str]:
    return [
        "## Your call",
        "",
        f"`{r.call.python()}` (solver that runs: {r.call.resolved_solver})",
        "",
    ]


def _md_environment(env: dict[str, Any]) -> list[str]:
    out = [
        "## Environment",
        "",
        f"{env['label']}; Python {env.get('python')}; CPU {env.get('cpu')}; {env['usable_cores']} usable cores.",
        "",
    ]
    if env["threadpools"]:
        out += ["| library | BLAS | version | kernels | threads |", "|---|---|---|---|---|"]
        out += [
            f"| {p['library']} | {p['internal_api']} | {p['version'] or '-'} | {p['architecture'] or '-'} | {p['num_threads']} |"
            for p in env["threadpools"]
        ]
        out.append("")
    steer = ", ".join(f"{k}={v}" for k, v in env["env_vars"].items()) or "none set"
    out += [
        f"Thread and BLAS variables: {steer}. PYTHONHASHSEED: {env.get('pythonhashseed') or 'not set'}.",
        "",
    ]
    return out


_HEADER = (
    "| variation | factor | bits | kNN Jaccard | Leiden ARI | max abs. diff (aligned) | max rel. diff per PC | "
    "angle 10 PCs (deg) | angle all PCs (deg) | sig. digits (min) | PCs explained / unexplained | time (s) |"
)


def _md_table(title: str, effects: Sequence[Effect]) -> list[str]:
    out = [f"## {title}", "", _HEADER, "|" + "---|" * 12]
    for e in effects:
        if e.skipped:
            out.append(f"| {e.label} | {e.factor} | skipped: {e.skipped} |" + " |" * 9)
            continue
        bits = "identical" if e.bitwise else "differ"
        out.append(
            f"| {e.label} | {e.factor} | {bits} | {_jac(e.knn_jaccard)} | {_jac(e.leiden_ari)} | {_g(e.aligned_max_abs_diff)} | "
            f"{_g(e.aligned_max_rel_diff)} | {_g(e.angle_k10_deg)} | {_g(e.angle_all_deg)} | {_g(e.sig_digits_min)} | "
            f"{e.n_explained} / {e.n_unexplained} | {_g(e.seconds, 2)} |"
        )
    return [*out, ""]


def _md_components(r: DoctorReport) -> list[str]:
    out = ["## Components the near-degenerate spectrum explains", ""]
    ex = r.explained_components
    if ex:
        factors = sorted({f for d in ex for f in d["factors"]})
        out.append(
            f"{_ranges([d['component'] for d in ex])} have a relative eigengap below {NEAR_DEGENERATE:g}; their deviation under "
            f"rounding-level changes ({', '.join(factors)}) is within the Davis-Kahan bound, so it is expected, not a bug. "
            f"Largest: "
            + ", ".join(
                f"PC {d['component']} ({_g(d['max_rel_diff'], 2)} rel., gap {_g(d['rel_gap'], 2)})"
                for d in sorted(ex, key=lambda d: -d["max_rel_diff"])[:5]
            )
            + "."
        )
    else:
        out.append(
            "None: no component with a relative eigengap below 1e-3 moved under a rounding-level change."
        )
    for name, comps in r.unexplained_components.items():
        out.append(
            f"\n{name}: {_ranges(comps)} moved more than rounding explains (a different algorithm, seed or an unconverged solver)."
        )
    return [*out, ""]


# --- command line ------------------------------------------------------------------------------


def cli_doctor(args) -> int:
    """``python -m harness doctor``: 0 reproducible, 1 not (or a pipeline difference), 2 bad input."""
    from harness import io

    if args.pipeline:
        if args.data:
            raise HarnessError("give either DATA.h5ad or --pipeline SCRIPT.py, not both")
        from harness.doctor.pipeline import run_pipeline

        report = run_pipeline(args.pipeline, progress=True, debug=getattr(args, "debug", False))
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
        )
    text = report.to_markdown() if args.format == "md" else io.dumps(report.to_dict()) + "\n"
    if args.out:
        io.write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0 if report.reproducible else 1
