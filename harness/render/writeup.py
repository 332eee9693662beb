"""The published study: ``results/README.md``, generated from the committed results.

    python -m harness writeup results [--machine NAME] [--commit REV] [--out results/README.md]

Every number in it comes from :mod:`harness.analysis.study`, over what :func:`load` read from
the results folder; the prose around the numbers is chosen from them, never typed in. The
environments are compared with a baseline: the one that has the most common value of every
factor, i.e. the centre of the study's one-factor-at-a-time design (asv.conf.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from harness import commands, io
from harness.analysis import calibration, scaling, tables
from harness.analysis import study as analysis
from harness.analysis.metrics import K_LEADING, N_NEIGHBORS
from harness.analysis.study import Study
from harness.bench import datasets
from harness.bench.digests import N_CELLS
from harness.bench.pca import N_COMPS, RANDOM_STATE
from harness.bench.store import RunKey
from harness.commands.calibrate import GRID_FILE
from harness.commands.crossenv import crossenv_of
from harness.errors import HarnessError
from harness.render import formats as render
from harness.render import scaling as render_scaling
from harness.render import tables as stability_tables
from harness.results import sidecars
from harness.results.reader import Loaded
from harness.study import driver, missing
from harness.vocabulary import (
    BITWISE,
    DASK_CHECK_INFO,
    REPEATS,
    THREAD_COUNTS,
    UNCLASSIFIED,
    VERDICT_INFO,
    VERDICTS,
    WITHIN_ENV,
    env_id,
    env_number,
)

COMMAND = "make writeup"


# --- reading (the one I/O edge) ------------------------------------------------------------------


def load(
    root: str | Path,
    machine: str | None = None,
    commit: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Study:
    """Read the study of ``machine`` (default: the only one with a pinned study) from ``root``."""
    warn = warn or commands.stderr_warn("writeup")
    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"{root}: not a directory")
    machine = machine or study_machine(root, warn)
    commit = commit or sidecars.read_study_pin(root, machine)
    loaded = commands.load(str(root), "writeup")
    table = tables.stability_table(loaded.frame, loaded.records, machine=machine, commit=commit)
    if table.empty:
        raise HarnessError(f"{root}: no stability results for machine {machine!r}, commit {commit}")
    envs = analysis.environments(loaded, table)
    base = envs[envs["baseline"]].iloc[0]["env_name"]
    cross = (
        crossenv_of(loaded, baseline=base, machine=machine, commit=commit, warn=warn)
        if len(envs) > 1
        else None
    )
    without = missing.load(root, machine=machine, commit=(commit or "")[:8] or None, warn=warn)
    per_env = [
        sidecars.read_inputs(RunKey(e.machine, e.commit, e.env_name).folder(root), warn=warn)
        for e in envs.itertuples()
    ]
    conf = root.parent / "asv.conf.json"
    steps = driver.steps(conf) if conf.is_file() else []
    grid = root / GRID_FILE
    cal = pd.DataFrame(io.read_jsonl(grid)) if grid.is_file() else None
    return analysis.assemble(
        root,
        machine,
        commit,
        loaded,
        table,
        envs,
        cross,
        without,
        per_env,
        steps,
        cal,
        timings=_timings(root, machine, warn),
        scale=load_scale(root, loaded, warn),
    )


def load_scale(root: Path, loaded: Loaded, warn: Callable[[str], None]) -> scaling.ScaleRun | None:
    """The dask suite's run of the folder (the scale profile), if any: the one that timed the
    most configurations; the others are named."""
    runs = scaling.dask_runs(loaded.frame)
    run = scaling.pick_run(runs)
    if run is None:
        return None
    others = {r: n for r, n in runs.items() if r != run}
    if others:
        names = ", ".join(f"{m}/{c[:8]}/{e} ({n})" for (m, c, e), n in sorted(others.items()))
        warn(f"{root}: writing the dask results of {run[0]}/{run[1][:8]}; also here: {names}")
    inputs = sidecars.read_inputs(RunKey(*run).folder(root), warn=warn)
    fp = loaded.fingerprints.find(*run) or {}
    checks = [c.name for c in DASK_CHECK_INFO]
    return scaling.scale_run(run, loaded.frame, loaded.records, inputs, fp, checks, others)


def _timings(root: Path, machine: str, warn: Callable[[str], None]) -> list[dict[str, Any]]:
    path = driver.timings_path(root, machine)
    if not path.exists():
        return []
    try:
        return io.read_jsonl(path)
    except ValueError as err:
        warn(f"{err}; the study's wall times left out")
        return []


def study_machine(root: Path, warn: Callable[[str], None]) -> str:
    """The machine whose study is written: the only one pinned, else the one with the most
    environments run at its pinned commit (another VM's study can sit beside it: issue #10)."""
    pins = root.glob(str(sidecars.study_pin_path(Path(), "*")))
    pinned = sorted(p.parts[-4] for p in pins)
    if len(pinned) == 1:
        return pinned[0]
    if not pinned:
        raise HarnessError(
            f"{root}: no study found (no */harness/study/study.jsonl); run make study"
        )
    done = {m: _environments_run(root, m) for m in pinned}
    ranked = sorted(pinned, key=lambda m: -done[m])
    if done[ranked[0]] == done[ranked[1]]:
        raise HarnessError(
            f"{root}: studies of several machines ({', '.join(pinned)}); pass --machine"
        )
    others = ", ".join(f"{m} ({done[m]})" for m in ranked[1:])
    warn(
        f"{root}: writing the study of {ranked[0]} ({done[ranked[0]]} environments run), the "
        f"most complete; also here: {others} (--machine picks one)"
    )
    return ranked[0]


def _environments_run(root: Path, machine: str) -> int:
    """How many asv result files the machine's study has at its pinned commit."""
    commit = sidecars.read_study_pin(root, machine) or ""
    return len(list((root / machine).glob(f"{commit[:8]}-*.json"))) if commit else 0


# --- numbers and lists as the prose writes them -----------------------------------------------


def _sci(x: Any) -> str:
    if render.is_missing(x):
        return render.MISSING
    return "0" if x == 0 else f"{x:.1e}"


def _frac(k: int, n: int) -> str:
    return f"{k}/{n}" if n else render.MISSING


def _times(ratio: float) -> str:
    """A ratio to two significant digits: 7584 -> '7,600x'."""
    return f"{float(f'{ratio:.2g}'):,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def _threads_text() -> str:
    return " vs ".join(str(n) for n in THREAD_COUNTS) + " BLAS threads"


def _lead() -> str:
    return f"PCs 1-{K_LEADING}"


def _trail() -> str:
    return f"PCs {N_COMPS - K_LEADING + 1}-{N_COMPS}"


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _list(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _id_ranges(ids: list[str]) -> str:
    """E1, E2, E3, E5 -> 'E1-E3, E5'."""
    return render.ranges([env_number(i) for i in ids], lambda n: env_id(n - 1))


def _env(ident: str, change: str) -> str:
    return f"{ident} ({change})"


def _across_names(across: dict[str, dict[str, Any]], keys: list[str]) -> list[str]:
    return [_env(k, across[k]["change"]) for k in keys]


#: How the write-up names each within-environment check and each kind of "fastest".
SOURCES = {
    "repeat": "run to run (same process)",
    "process": "fresh process",
    "threads": "thread count ({threads}, in-process)",
}
FASTEST = dict(zip(analysis.FASTEST_KINDS, ("fastest bitwise reproducible and exact up to rounding",
                 "fastest bitwise reproducible", "fastest"), strict=True))  # fmt: skip


# --- tables ------------------------------------------------------------------------------------


def _env_table(study: Study) -> str:
    headers = ["id", "differs from the baseline in", "change",
               "environment (from its fingerprint)", "BLAS loaded"]  # fmt: skip
    rows = [[e.id, e.factor, e.change, e.label, (e.fp or {}).get("blas_loaded") or render.MISSING]
            for e in study.envs.itertuples()]  # fmt: skip
    return render.md_table(headers, rows)


def _source(r: dict[str, Any]) -> str:
    if r["across"]:
        return f"{r['source']} (vs baseline)"
    return SOURCES[r["source"]].format(threads=_threads_text())


def _judged(frame: pd.DataFrame) -> list[str]:
    """The verdict columns a table shows: every verdict but bitwise, 'unclassified' only where
    some row has it (records written before the calibrated verdicts)."""
    out = [v for v in VERDICTS if v != BITWISE]
    if UNCLASSIFIED in frame and not frame[UNCLASSIFIED].fillna(0).any():
        out.remove(UNCLASSIFIED)
    return out


#: The column splitting "beyond rounding" by its cause (rounding.beyond_cause, issue #10).
APPROXIMATE_HEADER = "of which both approximate (worst dev.)"


def _approximate_cell(r: dict[str, Any]) -> str:
    n = int(r.get("approximate") or 0)
    return f"{n} ({_sci(r['approximate_worst'])})" if n else "0"


def _factor_table(b: pd.DataFrame) -> str:
    judged = _judged(b)
    headers = ["what changes", "environments", "bitwise equal", "worst deviation", *judged,
               APPROXIMATE_HEADER]  # fmt: skip
    rows = [[_source(r), r["envs"], _frac(r["bitwise"], r["n"]), _sci(r["worst"]),
             *(r.get(v, 0) for v in judged), _approximate_cell(r)]
            for r in b.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l"] + ["r"] * (4 + len(judged)))


def _within_table(w: pd.DataFrame) -> str:
    headers = ["id", "change"]
    for c in WITHIN_ENV:
        headers += [f"{c}: bitwise", f"{c}: worst"]
    rows = []
    for r in w.to_dict("records"):
        row = [r["id"], r["change"]]
        for c in WITHIN_ENV:
            row += [_frac(r[f"{c}_bitwise"], r[f"{c}_n"]), _sci(r[f"{c}_worst"])]
        rows.append(row)
    return render.md_table(headers, rows, ["l", "l"] + ["r"] * (2 * len(WITHIN_ENV)))


def _not_reproducible_table(bad: pd.DataFrame, n_envs: int) -> str:
    headers = ["configuration", "environments", "worst repeat", "worst process"]
    rows = [[" ".join(r["config"]), f"{len(r['ids'])}/{n_envs} ({_id_ranges(r['ids'])})",
             render.fmt_deviation(r["worst_repeat"], r.get("moved_repeat")),
             render.fmt_deviation(r["worst_process"], r.get("moved_process"))]
            for r in bad.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l", "l", "r", "r"])


def _moved_cell(r: dict[str, Any]) -> str:
    """How many configurations moved each output: 'embedding 3, loadings 5, variance 2'."""
    parts = [f"{o} {r[f'moved_{o}']}" for o in analysis.OUTPUTS if r.get(f"moved_{o}")]
    return ", ".join(parts) or "none"


def _across_table(a: pd.DataFrame) -> str:
    judged = _judged(a)
    headers = ["id", "differs in", "bitwise equal", *judged, APPROXIMATE_HEADER, "outputs moved",
               "worst dev.", "median dev.", _lead(), _trail()]  # fmt: skip
    rows = [[r["id"], r["change"], _frac(r["bitwise"], r["n"]), *(r.get(v, 0) for v in judged),
             _approximate_cell(r), _moved_cell(r), _sci(r["worst"]), _sci(r["median"]),
             _sci(r["lead"]), _sci(r["trail"])]
            for r in a.to_dict("records")]  # fmt: skip
    return render.md_table(
        headers, rows, ["l", "l"] + ["r"] * (2 + len(judged)) + ["l"] + ["r"] * 4
    )


def _downstream_table(d: pd.DataFrame) -> str:
    headers = ["check", "moved results", "solvers", "kNN Jaccard min", "kNN median",
               "Leiden ARI min", "ARI median", "ARI, other Leiden seed (min)",
               "ARI, one edge moved (min)", "ARI within its graph's one-edge ARI",
               f"{_lead()} (median)", f"{_trail()} (median)"]  # fmt: skip
    agree = render.fmt_share
    rows = [[r["check"], r["moved"], ", ".join(r["solvers"]), render.fmt_share(r["knn_min"]),
             render.fmt_share(r["knn_median"]), agree(r["ari_min"]), agree(r["ari_median"]),
             agree(r.get("ari_seed_min")), agree(r.get("ari_edge_min")), _paired(r),
             _sci(r["lead"]), _sci(r["trail"])] for r in d.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l", "r", "l"] + ["r"] * 9)


def _paired(r: dict[str, Any]) -> str:
    """'k/n': of the n moved results whose graph was calibrated, the k whose ARI is at least the
    lowest ARI that moving one edge of the same graph gives (issue #10 point 6)."""
    n = int(r.get("calibrated") or 0)
    return _frac(int(r.get("within_one_edge") or 0), n) if n else render.MISSING


def _validation_table(rates: pd.DataFrame) -> str:
    headers = ["verdict", "given", "false positives", "false negatives",
               "share of rounding-level changes", "share of changes beyond rounding"]  # fmt: skip

    def pct(x: Any) -> str:
        return render.MISSING if render.is_missing(x) else f"{100 * x:.1f}%"

    rows = [[r["verdict"], f"{r['given']:,}", pct(r["false_positive"]), pct(r["false_negative"]),
             pct(r["of_rounding"]), pct(r["of_beyond"])] for r in rates.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l"] + ["r"] * 5)


def _fastest_table(f: pd.DataFrame) -> str:
    headers = ["dataset", "", "env", "solver", "layout", "dtype", "1 thread", "vs exact"]
    rows = [[r["dataset"], FASTEST[r["kind"]], _env(r["id"], r["change"]), r["solver"], r["layout"],
             r["dtype"], render.fmt_seconds(r["time_s"]), _sci(r["accuracy"])]
            for r in f.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l"] * 6 + ["r", "r"])


def _appendix(study: Study) -> str:
    """The harness's stability table of every environment (as ``harness table`` prints them)."""
    ordered = study.envs["env_name"].tolist()
    t = study.table.assign(_o=study.table["env_name"].map(ordered.index))
    t = t.sort_values("_o", kind="stable").drop(columns="_o")
    t["environment"] = t["env_name"].map(analysis.ids(study)) + ": " + t["environment"]
    return stability_tables.to_markdown(t, level=3)


# --- advice ------------------------------------------------------------------------------------


def _where(scope: str, envs: list[tuple[str, str]]) -> str:
    """Where a solver was not reproducible (:func:`harness.analysis.study.noisy_solvers`)."""
    named = _list([_env(i, c) for i, c in envs])
    if scope == "all":
        return "in every environment"
    return f"in every environment but {named}" if scope == "all but" else f"in {named}"


def _reproducibility(f: dict[str, Any]) -> str:
    rb, rn = f["repeat_bitwise"]
    pb, pn = f["process_bitwise"]
    solvers = f["noisy_solvers"]
    last_bits = f["last_bits"]
    return (
        f"With the environment and the thread count fixed, {rb} of {rn} (environment, configuration) "
        f"pairs gave bitwise identical PCA run to run and {pb} of {pn} across fresh processes"
        + (". Identical calls disagreed in a way rounding does not explain (beyond rounding) "
           "or the spectrum cannot decide (undetermined) only with svd_solver "
           + _or([f"{s!r} ({_where(scope, envs)})" for s, scope, envs in solvers])
           + ": avoid those where you need identical coordinates" if solvers else "")
        + (". Elsewhere identical calls differed within rounding of the exact covariance: "
           + _list([f"{_env(i, c)} with {s!r}" for i, c, s in last_bits]) if last_bits else "")
        + "."
    )  # fmt: skip


def _threads(f: dict[str, Any]) -> list[str]:
    if not f.get("baseline_threads"):
        return []
    tb, tn, worst = f["baseline_threads"]
    if tb >= tn:
        return []
    return [
        f"Fix the BLAS thread count (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS, or threadpoolctl): "
        f"in the baseline environment, {_threads_text()} changed the bits of {tn - tb} of {tn} "
        f"otherwise reproducible configurations (worst relative deviation {_sci(worst)})."
    ]


def _lead_trail(lt: tuple[float, float] | None) -> list[str]:
    if not lt or min(lt) <= 0:
        return []
    lead, trail = lt
    return [
        f"Where results moved across environments, the median worst deviation of {_trail()} was "
        f"{_times(trail / lead)} that of {_lead()} ({_sci(trail)} vs {_sci(lead)})."
    ]


def _downstream(ds: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for check in ("threads", "process", "repeat"):
        if check in ds and not render.is_missing(ds[check]["knn_min"]):
            r = ds[check]
            line = (
                f"Downstream, where the {check} check moved PCA (svd_solver "
                f"{', '.join(r['solvers'])}), the {N_NEIGHBORS}-nearest-neighbour graph kept "
                f"{render.fmt_share(r['knn_min'])} of its edges at worst (Jaccard) and Leiden clusters "
                f"agreed with ARI {render.fmt_share(r['ari_min'])} at worst"
            )
            if not render.is_missing(r.get("ari_seed_min")):
                line += (
                    f"; on the same graphs, with PCA unchanged, another Leiden seed gives ARI "
                    f"{render.fmt_share(r['ari_seed_min'])} and moving one edge "
                    f"{render.fmt_share(r['ari_edge_min'])} at worst"
                )
            if r.get("calibrated"):
                line += (
                    f"; paired graph by graph, {r['within_one_edge']} of {r['calibrated']} ARIs "
                    "are at least what moving one edge of the same graph gives"
                )
            out.append(line + ".")
    return out


def _for_analysts(f: dict[str, Any], s: analysis.Across) -> list[str]:
    across = f.get("across", {})
    lines = [_reproducibility(f), *_threads(f)]
    single, combos = f.get("single_factor_moved", []), f.get("combinations_moved", [])
    if single:
        lines.append(
            "Record your environment with your results: changing only the " + _or(single)
            + " changed PCA coordinates of the same data (worst relative deviation over those "
            "environments " + _sci(f["single_factor_worst"]) + ")."
        )  # fmt: skip
    if combos:
        lines.append(
            "Environments that change several factors together also moved: "
            + "; ".join(combos) + ". No single factor is blamed from them; the mechanisms the "
            "harness can name are listed under 'Controls and mechanisms'."
        )  # fmt: skip
    if s.same:
        lines.append(
            "No change at all (bitwise equal in every configuration): "
            f"{_list(_across_names(across, s.same))}."
        )
    return [*lines, *_lead_trail(f.get("lead_trail")), *_downstream(f.get("downstream", {}))]


def _for_maintainers(f: dict[str, Any], s: analysis.Across) -> list[str]:
    across = f.get("across", {})
    lines = []
    if s.sign_flips:
        lines.append(
            "Compare PCA across releases after aligning signs: sign flips appeared against the "
            f"baseline for {_list(_across_names(across, s.sign_flips))} "
            "(`harness compare --fail-on-sign` fails on them)."
        )
    unstable = _across_names(across, s.unstable)
    lines.append(
        "Environments with configurations beyond rounding of the exact covariance against the "
        "baseline where at least one result is an eigenpair of it to within rounding (the two "
        "differ by more than rounding: another algorithm or an unconverged solver): " + (_list(unstable) + "." if unstable else "none.")
    )  # fmt: skip
    if s.approximate:
        lines.append(
            "Beyond rounding only in pairs of approximate results (neither side an eigenpair to "
            "within rounding, so the exact problem cannot judge their difference): "
            + _list(_across_names(across, s.approximate)) + "."
        )  # fmt: skip
    if f.get("single_factor_moved"):
        lines.append(
            "Regression tests of PCA output should pin the thread count and the BLAS, or judge "
            "a difference with `harness compare` (rounding or not), not bitwise: changing only the "
            + _or(f["single_factor_moved"]) + " changed bits."
        )  # fmt: skip
    for r in f.get("fastest", []):
        if r["kind"] == analysis.FASTEST_KINDS[0]:
            lines.append(
                f"On {r['dataset']}, the fastest 1-thread configuration that is bitwise "
                "reproducible and exact up to rounding is "
                f"{r['solver']} on {r['layout']} {r['dtype']} in {_env(r['id'], r['change'])}: "
                f"{render.fmt_seconds(r['time_s'])}."
            )
    return lines


def advice(f: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Advice for analysts and for maintainers, each line chosen by a measured fact."""
    s = analysis.across_summary(f.get("across", {}))
    return _for_analysts(f, s), _for_maintainers(f, s)


# --- the document ------------------------------------------------------------------------------


def _data_line(rows: list[dict[str, Any]], same: int, total: int) -> str:
    def one(r: dict[str, Any]) -> str:
        n, m = r["shape"]
        known = datasets.DATASETS.get(r["dataset"])
        prep = "counts, normalize_total + log1p" if known and known.counts else "as shipped"
        return f"{r['dataset']} ({n:,} x {m:,}, {r['nnz'] / (n * m):.0%} non-zero, {prep})"

    return (
        f"Data: {', '.join(one(r) for r in rows)}; {N_COMPS} components, random_state={RANDOM_STATE}. "
        f"{same} of {total} environments read bitwise the same inputs (sha256 of every matrix).\n\n"
    )


def _cost_line(minutes: list[float], wall: list[float]) -> str:
    out = ""
    if minutes:
        out += (
            f"asv benchmarked each environment in {statistics.median(minutes):.1f} min (median; "
            f"{min(minutes):.1f} to {max(minutes):.1f}), {sum(minutes) / 60:.1f} h in all. "
        )
    if wall:
        out += (
            f"With its creation and installation, each environment took "
            f"{statistics.median(wall):.1f} min (median; {min(wall):.1f} to {max(wall):.1f}), "
            f"{sum(wall) / 60:.1f} h for the {len(wall)} environments (the driver's wall "
            "times, `study/timings.jsonl`)."
        )
    return out + "\n\n" if out else ""


def _header(study: Study, f: dict[str, Any]) -> list[str]:
    model, cores = study.cpu
    without = (
        f", {f['without_results']} without (listed at the end)" if f["without_results"] else ""
    )
    return [
        "# PCA stability study\n\n",
        f"Generated by `{COMMAND}` (`python -m harness writeup results --out results/README.md`) from the "
        "asv results in this folder; do not edit by hand. Every number below is read from those results.\n\n",
        f"Machine `{study.machine}` ({model}, {cores} cores), commit `{study.commit[:8]}`, "
        f"{f['environments']} environments with results{without}.\n\n",
        _data_line(study.inputs, study.same_inputs, len(study.envs)),
        _cost_line(study.minutes, study.wall_minutes),
        "## What was covered\n\n",
        "".join(f"- {k}: {len(v)} ({', '.join(v)})\n" for k, v in f["coverage"].items()),
        "\n## Environments\n\n",
        f"The baseline ({study.envs.iloc[0]['id']}) has the most common value of every factor; every "
        "other environment changes one factor (or a few, where releases only install together).\n\n",
        _env_table(study),
    ]  # fmt: skip


def _findings(study: Study, f: dict[str, Any]) -> list[str]:
    analysts, maintainers = advice(f)
    return [
        "\n## Findings\n\n",
        "What moves PCA's bits, configuration by configuration (dataset x layout x dtype x solver); "
        "'worst deviation' is the sign-aligned relative deviation of X_pca. The verdicts judge "
        "each result against the exact float64 covariance of its input (see 'How far the "
        "verdicts can be trusted'). Below the first two rows, the configurations "
        "that are not reproducible even with everything fixed "
        f"({_list(analysis.unreproducible_solvers(study))}; see below) are left out in the "
        "environments where they are not: comparing them would measure their own noise.\n\n",
        _factor_table(analysis.by_factor(study)),
        f"\n'{APPROXIMATE_HEADER.split(' (')[0]}': beyond-rounding pairs in which neither "
        "result is an eigenpair of the exact covariance to within rounding (randomized, an "
        "unconverged iteration). The exact problem then cannot say whether their *difference* "
        "is rounding; their worst deviation says how far apart they are.\n",
        "\n### Advice for analysts\n\n",
        *(f"- {line}\n" for line in analysts),
        "\n### Advice for maintainers\n\n",
        *(f"- {line}\n" for line in maintainers),
    ]


def _within(study: Study) -> list[str]:
    parts = [
        "\n## Within one environment: run to run, process to process, thread count\n\n",
        "Per environment, the configurations (dataset x layout x dtype x solver) whose repeated calls "
        f"(repeat: {REPEATS} calls in one process at 1 thread), two fresh interpreters (process) and "
        f"{_threads_text()} (threads) gave bitwise identical results, and the worst relative deviation "
        "otherwise.\n\n",
        _within_table(analysis.within(study)),
    ]
    bad = analysis.not_reproducible_by_config(study)
    if len(bad):
        parts += [
            "\nNot reproducible with everything fixed (repeat or process), by configuration:\n\n",
            _not_reproducible_table(bad, len(study.envs)),
        ]
    return parts


def _across(a: pd.DataFrame) -> list[str]:
    if not len(a):
        return []
    return [
        "\n## Across environments: kernel families, thread settings, implementations, releases\n\n",
        "Each environment against the baseline, configuration by configuration, over the "
        "configurations reproducible in both environments (from the result "
        "digests: exact sha256 of the full outputs, the full loadings, and X_pca on "
        f"{N_CELLS} cells x all PCs). 'outputs moved': how many configurations changed each "
        f"output once signs are aligned. '{_lead()}' and '{_trail()}': median over the moved "
        "configurations of the worst relative deviation among those components. The verdicts "
        "are judged on the full loadings, with each result's residuals against the exact "
        "covariance.\n\n",
        _across_table(a),
    ]


def _validation(study: Study) -> list[str]:
    if study.calibration is None or study.calibration.empty:
        return []
    g = study.calibration
    rates = calibration.rates(g)
    return [
        "\n## How far the verdicts can be trusted\n\n",
        f"`python -m harness calibrate` judged {len(g):,} components of "
        f"{g[['spectrum', 'seed']].drop_duplicates().shape[0]} matrices with a planted spectrum "
        f"({', '.join(sorted(set(g['spectrum'])))}), each solved by scikit-learn's PCA and then "
        f"changed in a way whose answer is known ({'; '.join(sorted(set(g['change'])))}). "
        "False positive: the verdict given where the truth is another class (share of the "
        "components whose truth is not the verdict's); false negative: the verdict's class is "
        "the truth but another class was given (share of that class). 'undetermined' claims "
        "no class: its rows say how often it was given instead.\n\n",
        _validation_table(rates),
        "\nWhat each verdict means:\n\n",
        *(f"- {v.name}: {v.meaning}\n" for v in VERDICT_INFO),
    ]


def _controls_and_mechanisms(f: dict[str, Any]) -> list[str]:
    parts = []
    nc = f.get("null_control")
    if nc:
        got = _frac(nc["bitwise"], nc["n"]) if nc["n"] is not None else "no comparable digests"
        parts.append(
            f"- Null control: {nc['id']} has exactly the baseline's pins in an environment built "
            f"from scratch; bitwise equal to the baseline in {got} configurations"
            + (f" ({nc['left_out']} more left out: "
               + "; ".join(filter(None, [
                   f"{_list(nc['left_out_solvers'])}, not reproducible run to run, so their "
                   "comparison would measure their own noise" if nc.get("left_out_solvers") else "",
                   f"{nc['left_out_undigested']} without a digest on both sides"
                   if nc.get("left_out_undigested") else ""]))
               + ")" if nc.get("left_out") else "")
            + ".\n"
        )  # fmt: skip
    for m in f.get("mechanisms", []):
        where = f" on {m['dataset']}" if m.get("dataset") else ""
        parts.append(
            f"- {m['env_id']}: {m['what']}{where}: {m['baseline']} in the baseline, {m['here']} here.\n"
        )
    for r in f.get("lobpcg", []):
        parts.append(
            f"- lobpcg with scipy {r['scipy']} ({_id_ranges(r['ids'])}): two identical "
            "`svds(solver='lobpcg')` calls with numpy's global seed set (what scanpy does) "
            f"{_agreement(r['global_seed'])}; {_rng_agreement(r['rng'])}"
            " (scipy >= 1.17 draws lobpcg's start vectors from a fresh `default_rng()` when `rng` is "
            "None: scipy#25069).\n"
        )
    for r in f.get("default_neighbors", []):
        versions = ", ".join(
            f"{p} {r[p]}" for p in ("scanpy", "scipy", "pynndescent", "umap-learn")
        )
        ran = [p for p in r["problems"] if p is None]
        failed = [p for p in r["problems"] if p is not None]
        outcome = "runs" if not failed else "fails: " + "; ".join(f"`{p}`" for p in failed)
        if ran and failed:
            outcome = "runs in some environments and " + outcome
        parts.append(
            f"- scanpy's default `pp.neighbors` (pynndescent) on 5,000 cells with {versions} "
            f"({_id_ranges(r['ids'])}): {outcome}. The downstream check builds an exact kNN "
            "(`transformer='sklearn'`) either way, so that PCA's effect is isolated.\n"
        )
    if not parts:
        return []
    return ["\n## Controls and mechanisms\n\n", *parts]


def _agreement(seen: list[bool]) -> str:
    """'agree', 'disagree' or 'agree in some environments only', from the outcomes measured."""
    if seen == [True]:
        return "agree"
    return "disagree" if seen == [False] else "agree in some environments only"


def _rng_agreement(seen: list[bool | None]) -> str:
    """The same with ``rng`` passed; None marks an svds that takes no ``rng``."""
    if not seen:
        return "with `rng` passed: not measured"
    if seen == [None]:
        return "this scipy's `svds` takes no `rng`"
    measured = [v for v in seen if v is not None]
    note = " (where svds takes one)" if None in seen else ""
    return f"with `rng` passed they {_agreement(measured)}{note}"


def _downstream_and_speed(d: pd.DataFrame, fa: pd.DataFrame) -> list[str]:
    parts = []
    if len(d):
        parts += [
            "\n## Downstream: neighbours and clusters\n\n",
            f"Where a check moved the result (not bitwise), how the {N_NEIGHBORS}-nearest-neighbour graph (Jaccard of "
            "the exact kNN edge sets) and Leiden clusters (adjusted Rand index; scanpy's "
            "`pp.neighbors` connectivities from an exact kNN, then `tl.leiden`) moved with it; the "
            "worst pair of each check, over every environment and configuration. Beside them, "
            "Leiden's own sensitivity on the same graphs, with PCA unchanged: the lowest ARI of "
            "another Leiden seed, and of one edge moved.\n\n",
            _downstream_table(d),
        ]
    if len(fa):
        parts += [
            "\n## Speed: the fastest reproducible configuration\n\n",
            f"Median of {REPEATS} timed calls at 1 BLAS thread; 'bitwise reproducible' = bitwise under both the "
            "repeat and the process checks; 'vs exact' = relative deviation from a float64 eigh "
            "reference of the same input. The environments ran one after another on the same "
            "machine: small differences between them are within timing noise (`harness compare` "
            "tests a runtime change with asv's statistics).\n\n",
            _fastest_table(fa),
        ]
    return parts


def scale_markdown(sr: scaling.ScaleRun | None) -> list[str]:
    """PCA on dask arrays (the scale profile, issue #13): the scaling table, the memory target
    and what the dask checks found; nothing when the folder holds no dask results."""
    if sr is None:
        return []
    machine, commit, env = sr.run
    sizes = ", ".join(
        f"{r['dataset']} ({r['shape'][0]:,} x {r['shape'][1]:,}, sha256 {str(r.get('sha256'))[:12]})"
        for r in sr.inputs
        if r.get("layout") == "zarr" and r.get("shape")
    )
    lines = [
        "\n## PCA on dask arrays at atlas size (the scale profile)\n\n",
        f"`make bench PROFILE=scale` on {machine} at commit {commit[:8]} (asv environment "
        f"`{env}`), a run of its own beside the study. Data: {sizes or 'not recorded'}.\n\n",
        "Schedulers, as the run's fingerprint names them:\n\n",
        *[f"- {line}\n" for line in render_scaling.schedulers_text(sr.fingerprint)],
    ]
    if target := render_scaling.target_text(sr.table, scaling.MEMORY_TARGET_BYTES):
        lines += ["\nThe issue's target: ", target, "\n"]
    lines += ["\n", render_scaling.scaling_markdown(sr.table)]
    varies = {c.name: c.varies for c in DASK_CHECK_INFO}
    lines += [
        "\n### Reproducibility on dask\n\n",
        "Deviation: the worst sign-aligned relative deviation of the compared outputs (0: "
        "identical bits); the verdict is the calibrated one of the in-memory suite, against "
        "the exact problem of the same matrix.\n\n",
        render_scaling.answer(
            sr.findings,
            "workers",
            "Does the reduction over chunks give the same bits whatever "
            "the worker count (2 workers x 1 thread vs 1 x 2)",
        ),
        render_scaling.answer(sr.findings, "chunks", "Do row-chunk sizes change the bits"),
        render_scaling.answer(sr.findings, "repeat", "Do identical calls give the same bits"),
        render_scaling.answer(sr.findings, "process", "Do two fresh interpreters agree"),
        "\n",
        render.table_md(render_scaling.findings_table(sr.findings, varies)),
        "\nEvery configuration:\n\n",
        render.table_md(render_scaling.stability_detail(sr.stability, list(varies))),
    ]
    return lines


def _ending(study: Study) -> list[str]:
    parts = ["\n", missing.to_markdown(study.without)] if study.without else []
    return [
        *parts,
        "\n## Appendix: the stability table of every environment\n\n",
        _appendix(study),
        "\n## Reproduce\n\n",
        "```\nmake study     # runs every environment of asv.conf.json that has no results yet\n"
        f"{COMMAND}   # regenerates this file\n"
        "python -m harness table results     # the full stability tables\n"
        "python -m harness crossenv results  # every pair of environments\n```\n",
    ]


def to_markdown(study: Study) -> str:
    """results/README.md."""
    f = analysis.findings(study)
    return "".join(
        [
            *_header(study, f),
            *_findings(study, f),
            *_validation(study),
            *_controls_and_mechanisms(f),
            *_within(study),
            *_across(analysis.across(study)),
            *_downstream_and_speed(analysis.downstream(study), analysis.fastest(study)),
            *scale_markdown(study.scale),
            *_ending(study),
        ]
    )


def cli_writeup(args: argparse.Namespace) -> int:
    """``python -m harness writeup``: Markdown (default) or the findings as JSON."""
    study = load(args.results, args.machine, args.commit)
    text = (
        json.dumps(analysis.findings(study), indent=1, default=str) + "\n"
        if args.format == "json"
        else to_markdown(study)
    )
    commands.output(text, args.out)
    return 0
