"""The published study's computations: which factor moves PCA's bits, by how much, downstream
effects and the fastest reproducible configuration, as frames and plain data (no text, no I/O).

:func:`assemble` builds a :class:`Study` from what :func:`harness.render.writeup.load` read; every
other function derives numbers from it. The prose around them is :mod:`harness.render.writeup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from packaging.version import InvalidVersion, Version

from harness.analysis import mechanisms
from harness.analysis.rounding import BEYOND_CAUSES
from harness.analysis.scaling import ScaleRun
from harness.errors import HarnessError
from harness.results import environments as environs
from harness.results.environments import FACTORS, implementation
from harness.study import missing
from harness.vocabulary import (
    BEYOND,
    BITWISE,
    CHECKS,
    CONFIG_COLUMNS,
    EXACT,
    IDENTICAL_CALLS,
    NO_NUMBER,
    VERDICTS,
    WITHIN_ENV,
    env_number,
)

if TYPE_CHECKING:  # pragma: no cover
    from harness.analysis.crossenv import CrossEnv
    from harness.results.reader import Loaded

#: The kinds of "fastest" configuration, from the strictest: bitwise reproducible (repeat and
#: process) and exact up to rounding; bitwise reproducible; any.
FASTEST_KINDS = ("reproducible and exact", "reproducible", "any")
#: The outputs of a PCA a change can move (:func:`harness.analysis.crossenv.moved`).
OUTPUTS = ("embedding", "loadings", "variance")


@dataclass
class Study:
    """Everything the write-up states, computed from one results folder."""

    root: Path
    machine: str
    commit: str
    cpu: tuple[str, str]
    envs: pd.DataFrame
    table: pd.DataFrame
    records: pd.DataFrame
    cross: CrossEnv | None
    without: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    same_inputs: int
    minutes: list[float]
    #: Per environment, the driver's wall time in minutes: creation, installation and asv.
    wall_minutes: list[float] = field(default_factory=list)
    #: The verdicts' validation grid (:func:`harness.analysis.calibration.grid`), when kept.
    calibration: pd.DataFrame | None = None
    #: The dask suite's run in the same folder (the scale profile, issue #13), when there is one.
    scale: ScaleRun | None = None


# --- the environments ------------------------------------------------------------------------


def environments(loaded: Loaded, table: pd.DataFrame) -> pd.DataFrame:
    """One row per environment of the table, with the folder-wide ids
    (:func:`harness.results.environments.catalogue`)."""
    envs = environs.catalogue(loaded)
    runs = set(table["run_key"]) if "run_key" in table else None
    keys = list(zip(envs["machine"], envs["commit"], envs["env_name"], strict=True))
    if runs is None:
        shown = table.drop_duplicates("run")[["machine", "commit", "env_name"]]
        runs = set(shown.itertuples(index=False, name=None))
    envs = envs[[k in runs for k in keys]].reset_index(drop=True)
    envs = envs[envs["fp"].map(bool)].reset_index(drop=True)
    if envs.empty:
        raise HarnessError("no environment of the study has a fingerprint")
    if not envs["baseline"].any():
        raise HarnessError("the baseline environment of this folder is not part of the study")
    return envs


def coverage(envs: pd.DataFrame) -> dict[str, list[str]]:
    """Distinct releases, kernel families and implementations that have results."""

    def distinct(col: str) -> list[str]:
        values = {v for v in envs[col] if v and v != "-"}
        try:
            return sorted(values, key=Version)
        except InvalidVersion:
            return sorted(values)

    implementations = sorted(
        {implementation(fp) for fp in envs["fp"] if implementation(fp)}, key=str.lower
    )
    bundled = zip(envs["kernel"], envs["blas"], strict=True)
    kernels = sorted({k for k, b in bundled if k != "-" and "bundled" in b})
    return {
        "scanpy": distinct("scanpy"),
        "scikit-learn": distinct("scikit-learn"),
        "numpy": distinct("numpy"),
        "scipy": distinct("scipy"),
        "OpenBLAS kernel families": kernels,
        "BLAS implementations": implementations,
        "PCA implementations": sorted(set(envs["pca"])),
    }


def inputs(per_env: Sequence[list[dict[str, Any]]], envs: pd.DataFrame) -> tuple[list[dict], int]:
    """The baseline's inputs (one row per dataset: shape, nnz) and how many environments read
    exactly the same bits; ``per_env``: each environment's input records, in ``envs`` order."""
    base = per_env[int(envs.index[envs["baseline"]][0])]
    digest = {(r["dataset"], r["layout"], r["dtype"]): r.get("sha256") for r in base}
    same = sum(
        bool(r)
        and all(digest.get((x["dataset"], x["layout"], x["dtype"])) == x.get("sha256") for x in r)
        for r in per_env
    )
    per_dataset: dict[str, dict[str, Any]] = {}
    for r in base:
        if "shape" in r:
            per_dataset.setdefault(r["dataset"], r)
    return list(per_dataset.values()), same


def bench_minutes(frame: pd.DataFrame, envs: pd.DataFrame) -> list[float]:
    """Per environment, asv's benchmarking wall time in minutes (first start to last end;
    environment creation is not in asv's results)."""
    # By run (machine, commit, environment): another machine's study runs the same asv names.
    runs = pd.MultiIndex.from_frame(envs[["machine", "commit", "env_name"]].astype(str))
    keys = pd.MultiIndex.from_frame(frame[["machine", "commit", "env_name"]].astype(str))
    sub = frame[keys.isin(runs) & frame["started_at"].notna().to_numpy()]
    end = sub["started_at"] + pd.to_timedelta(sub["duration"].fillna(0), unit="s")
    by = [sub[k].astype(str) for k in ("machine", "commit", "env_name")]
    spans = end.groupby(by).max() - sub["started_at"].groupby(by).min()
    return sorted(spans.dt.total_seconds().div(60).tolist())


def wall_minutes(timings: Sequence[dict[str, Any]], envs: pd.DataFrame) -> list[float]:
    """Per environment with results, the study driver's last recorded wall time in minutes
    (``study/timings.jsonl``: creation, installation and the asv run, which asv's results lack)."""
    wanted = {(str(e.commit), str(e.env_name)) for e in envs.itertuples()}
    last: dict[str, float] = {}
    for t in timings:
        key = (str(t.get("commit")), str(t.get("env_name")))
        if (
            key in wanted
            and t.get("outcome") == "done"
            and isinstance(t.get("seconds"), int | float)
        ):
            last[key[1]] = float(t["seconds"]) / 60
    return sorted(last.values())


def not_run(
    steps: Sequence[Any], machine: str, commit: str, envs: pd.DataFrame, without: list[dict]
) -> list[dict[str, Any]]:
    """Environments of the matrix (``steps`` of asv.conf.json) with neither results nor a failure
    record: the study has not reached them yet."""
    seen = set(envs["env_name"]) | {r["env_name"] for r in without}
    rows = []
    for step in steps:
        if step.env_name in seen:
            continue
        rec = {"python": step.python, "requirements": step.req, "env": step.env,
               "env_nobuild": step.env_nobuild}  # fmt: skip
        rows.append(
            {
                "machine": machine,
                "commit": commit[:8],
                "environment": missing.describe(rec),
                "env_name": step.env_name,
                "status": "not run yet",
                "reason": "`make study` resumes the study with it",
            }
        )
    return rows


def cpu(fp: dict[str, Any]) -> tuple[str, str]:
    """The CPU model and its usable cores, from a fingerprint ('?' where it does not say)."""
    info = fp.get("cpu") or {}
    return str(info.get("model", "?")), str(info.get("usable", "?"))


def ids(study: Study) -> dict[str, str]:
    """asv environment name -> id."""
    return dict(zip(study.envs["env_name"], study.envs["id"], strict=True))


def changes(study: Study) -> dict[str, str]:
    """id -> what the environment changes against the baseline."""
    return dict(zip(study.envs["id"], study.envs["change"], strict=True))


def by_id(values: Sequence[str]) -> list[str]:
    """Environment ids in numeric order (E2 before E10)."""
    return sorted(values, key=env_number)


# --- within one environment ------------------------------------------------------------------

#: A check's state that says the same PCA up to rounding, or that nothing was compared.
_SETTLED = (*EXACT, *NO_NUMBER, None)


def verdict_counts(verdicts: pd.Series) -> dict[str, int]:
    """How many rows got each verdict, for every verdict of :data:`VERDICTS` (zeros included)."""
    counts = verdicts.value_counts()
    return {name: int(counts.get(name, 0)) for name in VERDICTS}


def _ran(frame: pd.DataFrame, check: str) -> pd.Series:
    v = frame[f"v_{check}"]
    return v.notna() & ~v.isin(NO_NUMBER)


def within(study: Study, reproducible_only: bool = False) -> pd.DataFrame:
    """Per environment: how many configurations are bitwise identical under each within-check
    (``reproducible_only``: over the configurations reproducible in every environment)."""
    rows = []
    t = _reproducible(study.table, study) if reproducible_only else study.table
    for env in study.envs.itertuples():
        sub = t[t["env_name"] == env.env_name]
        row: dict[str, Any] = {"id": env.id, "factor": env.factor, "change": env.change}
        for check in WITHIN_ENV:
            ran = sub[_ran(sub, check)]
            row[f"{check}_n"] = len(ran)
            row[f"{check}_bitwise"] = int((ran[f"v_{check}"] == BITWISE).sum())
            row[f"{check}_worst"] = float(ran[f"dev_{check}"].max()) if len(ran) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def not_reproducible(study: Study, checks: tuple[str, ...] = IDENTICAL_CALLS) -> pd.DataFrame:
    """Configurations whose identical calls disagree (run to run, or across processes)."""
    t = study.table
    mask = False
    for check in checks:
        mask = mask | (_ran(t, check) & (t[f"v_{check}"] != BITWISE))
    bad = t[mask].copy()
    bad["id"] = bad["env_name"].map(ids(study))
    return bad


def not_reproducible_by_config(study: Study) -> pd.DataFrame:
    """Per configuration not reproducible somewhere: the ids where, the worst deviations."""
    rows = []
    for config, sub in not_reproducible(study).groupby(list(CONFIG_COLUMNS), sort=True):
        row: dict[str, Any] = {"config": config, "ids": by_id(set(sub["id"]))}
        for check in IDENTICAL_CALLS:
            row[f"worst_{check}"] = sub[f"dev_{check}"].max()
            row[f"moved_{check}"] = _outputs_moved(sub, check)
        rows.append(row)
    return pd.DataFrame(rows)


def _outputs_moved(rows: pd.DataFrame, check: str) -> str:
    """The outputs (embedding, loadings, variance) that moved in any of ``rows`` for ``check``,
    comma-joined in OUTPUTS order: what a worst deviation of 0 hides (issue #10 point 8)."""
    col = f"moved_{check}"
    seen = {o for m in rows[col].dropna() if m for o in str(m).split(",")} if col in rows else set()
    return ",".join(o for o in OUTPUTS if o in seen)


def unreproducible(study: Study) -> set[tuple[str, str, str, str, str]]:
    """(env_name, dataset, layout, dtype, solver) where identical calls disagree by more than
    rounding explains (verdict undetermined, unclassified or beyond rounding): comparing that
    configuration of that environment across thread counts or with another environment would
    measure its own noise."""
    bad = not_reproducible(study)
    noisy = ~bad["v_repeat"].isin(_SETTLED) | ~bad["v_process"].isin(_SETTLED)
    return set(bad.loc[noisy, ["env_name", *CONFIG_COLUMNS]].itertuples(index=False, name=None))


def unreproducible_solvers(study: Study) -> list[str]:
    """The solvers not reproducible somewhere even with everything fixed."""
    return sorted({c[4] for c in unreproducible(study)})


def _reproducible(
    frame: pd.DataFrame, study: Study, env_columns: tuple[str, ...] = ("env_name",)
) -> pd.DataFrame:
    """The rows whose configuration is reproducible in each environment the row involves."""
    drop = unreproducible(study)
    configs = list(frame[list(CONFIG_COLUMNS)].itertuples(index=False, name=None))
    envs = list(frame[list(env_columns)].itertuples(index=False, name=None))
    keep = [all((e, *c) not in drop for e in es) for c, es in zip(configs, envs, strict=True)]
    return frame[keep]


def noisy_solvers(study: Study) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Each solver whose identical calls disagreed beyond rounding, and where: ('all', []),
    ('all but', the environments where not) or ('in', those where), as (id, change) pairs."""
    where: dict[str, set[str]] = {}
    for env_name, *config in unreproducible(study):
        where.setdefault(config[3], set()).add(env_name)
    names, change = ids(study), changes(study)

    def named(envs: set[str]) -> list[tuple[str, str]]:
        return [(i, change[i]) for i in by_id([names[e] for e in envs])]

    everywhere = set(study.envs["env_name"])
    out = []
    for solver, envs in sorted(where.items()):
        if envs == everywhere:
            out.append((solver, "all", []))
        elif len(envs) > len(everywhere) / 2:
            out.append((solver, "all but", named(everywhere - envs)))
        else:
            out.append((solver, "in", named(envs)))
    return out


# --- across environments ---------------------------------------------------------------------


def _cross_pairs(study: Study) -> pd.DataFrame | None:
    """Comparable pairs of finished environments, with asv's environment names on both sides,
    over the configurations reproducible in both."""
    if study.cross is None or study.cross.pairs.empty:
        return study.cross.pairs if study.cross is not None else None
    names = {e["id"]: e["env_name"] for e in study.cross.envs}
    p = study.cross.pairs[study.cross.pairs["comparable"]].copy()
    p["a_env"], p["b_env"] = p["a"].map(names), p["b"].map(names)
    finished = set(ids(study))  # artifacts of an environment asv has not finished are left out
    p = p[p["a_env"].isin(finished) & p["b_env"].isin(finished)]
    return _reproducible(p, study, ("a_env", "b_env"))


def _against_baseline(env: Any, sub: pd.DataFrame) -> dict[str, Any]:
    moved = sub[~sub["bitwise"]]
    shifted = moved[moved["deviation"] > 0]  # bits differ somewhere, values on the digest too
    outputs = sub["moved"].fillna("") if "moved" in sub else pd.Series([""] * len(sub))
    return {
        "id": env["id"],
        "factor": env["factor"],
        "change": env["change"],
        "n": len(sub),
        "bitwise": int(sub["bitwise"].sum()),
        "worst": float(moved["deviation"].max()) if len(moved) else 0.0,
        "median": float(moved["deviation"].median()) if len(moved) else 0.0,
        "lead": float(shifted["lead_rel_diff"].median()) if len(shifted) else 0.0,
        "trail": float(shifted["trail_rel_diff"].median()) if len(shifted) else 0.0,
        **verdict_counts(sub["verdict"]),
        **_approximate(sub, "beyond_cause", "deviation"),
        **{f"moved_{o}": int(outputs.str.contains(o).sum()) for o in OUTPUTS},
        "sign_flips": int((sub["sign_flips"].fillna(0) > 0).sum()),
    }


def _approximate(rows: pd.DataFrame, cause: str, dev: str) -> dict[str, Any]:
    """How many beyond-rounding rows are pairs of approximate results (rounding.beyond_cause:
    the exact covariance cannot judge their difference), and their worst deviation."""
    approx = rows[rows[cause] == BEYOND_CAUSES[0]] if cause in rows else rows.iloc[:0]
    worst = pd.to_numeric(approx[dev], errors="coerce").max() if len(approx) else 0.0
    return {"approximate": len(approx), "approximate_worst": float(worst)}


def across(study: Study) -> pd.DataFrame:
    """Per environment, its results against the baseline's (same configuration, default threads),
    over the configurations reproducible in both."""
    pairs = _cross_pairs(study)
    if pairs is None or pairs.empty:
        return pd.DataFrame()
    rows = [
        _against_baseline(study.envs[study.envs["env_name"] == b_env].iloc[0], sub)
        for b_env, sub in pairs.groupby("b_env", sort=False)
    ]
    out = pd.DataFrame(rows)
    return out.sort_values("id", key=lambda s: s.map(env_number)).reset_index(drop=True)


def lead_trail(study: Study) -> tuple[float, float] | None:
    """Median worst deviation of the leading and of the trailing components, over every pair
    (environment vs baseline, reproducible configuration) whose values moved on the digest."""
    p = _cross_pairs(study)
    if p is None or p.empty:
        return None
    p = p[p["deviation"] > 0]
    if p.empty:
        return None
    return float(p["lead_rel_diff"].median()), float(p["trail_rel_diff"].median())


def by_factor(study: Study) -> pd.DataFrame:
    """What moves the bits: one row per source of variation, within (``source``: the check) and
    across environments (``source``: the factor, ``across`` True)."""
    rows = []
    t = study.table
    for check in WITHIN_ENV:
        ran = t[_ran(t, check)]
        if check not in IDENTICAL_CALLS:
            ran = _reproducible(ran, study)
        moved = ran[ran[f"v_{check}"] != BITWISE]
        rows.append(
            {
                "source": check,
                "across": False,
                "envs": len(study.envs),
                "n": len(ran),
                "bitwise": len(ran) - len(moved),
                "worst": float(moved[f"dev_{check}"].max()) if len(moved) else 0.0,
                **verdict_counts(ran[f"v_{check}"]),
                **_approximate(ran, f"cause_{check}", f"dev_{check}"),
            }
        )
    a = across(study)
    for factor, sub in a.groupby("factor", sort=False) if len(a) else []:
        rows.append(
            {
                "source": factor,
                "across": True,
                "envs": len(sub),
                "n": int(sub["n"].sum()),
                "bitwise": int(sub["bitwise"].sum()),
                "worst": float(sub["worst"].max()),
                **{v: int(sub[v].sum()) for v in VERDICTS},
                "approximate": int(sub["approximate"].sum()),
                "approximate_worst": float(sub["approximate_worst"].max()),
            }
        )
    return pd.DataFrame(rows)


def factors(groups: Sequence[str]) -> list[str]:
    """The single factor names in comma-joined factor groups, in FACTORS order, once each."""
    names = {n.strip() for g in groups for n in g.split(",")}
    return [n for n in FACTORS.values() if n in names]


@dataclass
class Across:
    """The across-environment facts the advice is chosen by (keys: environment ids)."""

    same: list[str]
    sign_flips: list[str]
    unstable: list[str]  # beyond rounding in some configuration that is not 'both approximate'
    approximate: list[str]  # beyond rounding only where both results are approximate


def across_summary(across: dict[str, dict[str, Any]]) -> Across:
    """Which environments stayed bitwise, flipped signs or were unstable vs the baseline."""
    return Across(
        same=[k for k, v in across.items() if v["bitwise"] == v["n"]],
        sign_flips=[k for k, v in across.items() if v["sign_flips"]],
        unstable=[k for k, v in across.items() if v["beyond"] > v.get("approximate", 0)],
        approximate=[k for k, v in across.items() if 0 < v["beyond"] == v.get("approximate", 0)],
    )


# --- downstream and speed --------------------------------------------------------------------


def downstream(study: Study) -> pd.DataFrame:
    """Per check: where results moved, how much the kNN graph and Leiden clusters moved (checks
    other than repeat and process over the configurations reproducible in every environment)."""
    r = study.records.rename(columns={"svd_solver": "solver"})
    moved = r[(r["status"] == "ok") & (r["bitwise"] == False)]  # noqa: E712 (None = not recorded)
    rows = []
    for check, sub in moved.groupby("check", sort=False):
        if check not in IDENTICAL_CALLS:
            sub = _reproducible(sub, study)
        if sub.empty:
            continue
        rows.append(
            {
                "check": check,
                "moved": len(sub),
                "solvers": sorted(set(sub["solver"])),
                "knn_min": sub["knn_jaccard"].min(),
                "knn_median": sub["knn_jaccard"].median(),
                "ari_min": sub["leiden_ari"].min(),
                "ari_median": sub["leiden_ari"].median(),
                # Leiden's own sensitivity on the same graphs (issue #10 point 6).
                "ari_seed_min": _col(sub, "ari_other_seed").min(),
                "ari_edge_min": _col(sub, "ari_one_edge").min(),
                "ari_edge_median": _median(_col(sub, "ari_one_edge")),
                # Paired per graph: an ARI at or above what moving one edge of the same graph
                # gives is within Leiden's own sensitivity, whatever PCA did.
                **_within_calibration(sub),
                "lead": sub["lead_rel_diff"].median(),
                "trail": sub["trail_rel_diff"].median(),
            }
        )
    out = pd.DataFrame(rows)
    if not rows:
        return out
    return out.sort_values("check", key=lambda s: s.map(CHECKS.index)).reset_index(drop=True)


def _within_calibration(sub: pd.DataFrame) -> dict[str, int]:
    """How many moved configurations had a calibrated graph, and how many of those an ARI at
    least the lowest ARI one moved edge gives on that same graph."""
    ari, edge = _col(sub, "leiden_ari"), _col(sub, "ari_one_edge")
    calibrated = ari.notna() & edge.notna()
    return {
        "calibrated": int(calibrated.sum()),
        "within_one_edge": int((calibrated & (ari >= edge)).sum()),
    }


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, all NaN when the frame lacks it (records written before issue #10)."""
    if name not in frame:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[name], errors="coerce")


def _median(values: pd.Series) -> float:
    """The median of the values present; NaN (no warning) when none is (records before #10)."""
    present = values.dropna()
    return float(present.median()) if len(present) else float("nan")


def fastest(study: Study) -> pd.DataFrame:
    """Per dataset and kind (:data:`FASTEST_KINDS`): the fastest 1-thread configuration."""
    t = study.table[study.table["time_1_thread_s"].notna()].copy()
    t["id"] = t["env_name"].map(ids(study))
    change = changes(study)
    t["reproducible"] = (t["v_repeat"] == BITWISE) & (t["v_process"] == BITWISE)
    # 'Exact' = the accuracy check finds no deviation beyond the spectrum's rounding bound.
    t["exact"] = t["v_accuracy"].isin(EXACT)
    rows = []
    for dataset, sub in t.groupby("dataset", sort=True):
        chosen = (sub[sub["reproducible"] & sub["exact"]], sub[sub["reproducible"]], sub)
        for kind, frame in zip(FASTEST_KINDS, chosen, strict=True):
            if not len(frame):
                continue
            row = frame.loc[frame["time_1_thread_s"].idxmin()]
            rows.append(
                {
                    "dataset": dataset,
                    "kind": kind,
                    "id": row["id"],
                    "change": change[row["id"]],
                    "solver": row["solver"],
                    "layout": row["layout"],
                    "dtype": row["dtype"],
                    "time_s": row["time_1_thread_s"],
                    "reproducible": bool(row["reproducible"]),
                    "accuracy": row["dev_accuracy"],
                }
            )
    return pd.DataFrame(rows)


# --- the findings ----------------------------------------------------------------------------


def _across_findings(a: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """id -> the environment's comparison with the baseline, as plain numbers."""
    return {
        r["id"]: {
            "factor": r["factor"],
            "change": r["change"],
            "bitwise": int(r["bitwise"]),
            "n": int(r["n"]),
            "worst": float(r["worst"]),
            "beyond": int(r[BEYOND]),
            "approximate": int(r.get("approximate", 0)),
            "sign_flips": int(r["sign_flips"]),
        }
        for r in a.to_dict("records")
    }


def findings(study: Study) -> dict[str, Any]:
    """The facts the prose and the advice are built from (also ``--format json``)."""
    w = within(study)
    a = across(study)
    bad = not_reproducible(study).to_dict("records")
    base = within(study, reproducible_only=True).iloc[0] if len(w) else None
    change = changes(study)
    last_bits = {
        (r["id"], change[r["id"]], r["solver"])
        for r in bad
        if r["v_repeat"] in _SETTLED and r["v_process"] in _SETTLED
    }
    f: dict[str, Any] = {
        "environments": len(study.envs),
        "without_results": len(study.without),
        "coverage": coverage(study.envs),
        **{
            f"{check}_bitwise": (int(w[f"{check}_bitwise"].sum()), int(w[f"{check}_n"].sum()))
            for check in WITHIN_ENV
        },
        "not_reproducible": sorted({(*(r[c] for c in CONFIG_COLUMNS), r["id"]) for r in bad}),
        "noisy_solvers": noisy_solvers(study),
        "last_bits": sorted(last_bits),
        "baseline_threads": None,
    }
    if base is not None:
        f["baseline_threads"] = (
            int(base["threads_bitwise"]),
            int(base["threads_n"]),
            float(base["threads_worst"]),
        )
    if len(a):
        f["across"] = _across_findings(a)
        f["lead_trail"] = lead_trail(study)
    f["downstream"] = {r["check"]: r for r in downstream(study).to_dict("records")}
    f["fastest"] = fastest(study).to_dict("records")
    f["null_control"] = _null_control(study, f.get("across", {}))
    f["mechanisms"] = [m.__dict__ for m in mechanisms.named(study.envs, shapes(study))]
    f["lobpcg"] = mechanisms.lobpcg_by_scipy(study.envs)
    f["default_neighbors"] = mechanisms.default_neighbors(study.envs)
    f["single_factor_moved"], f["combinations_moved"] = attribution(f.get("across", {}))
    f["single_factor_worst"] = single_factor_worst(f.get("across", {}))
    return f


def shapes(study: Study) -> dict[str, tuple[int, int]]:
    """Each dataset's (n_obs, n_vars), from the baseline's input records."""
    out = {}
    for r in study.inputs:
        shape = r.get("shape")
        if isinstance(shape, list) and len(shape) == 2:
            out[r["dataset"]] = (int(shape[0]), int(shape[1]))
    return out


def _null_control(study: Study, across: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The null control against the baseline: configurations compared and bitwise equal."""
    ident = mechanisms.null_control(study.envs)
    if ident is None:
        return None
    r = across.get(ident)
    out = {"id": ident, "bitwise": r["bitwise"] if r else None, "n": r["n"] if r else None}
    # The configurations the comparison leaves out (not reproducible run to run in one of the
    # two), named rather than silently dropped from "n of n".
    left = _left_out(study, ident)
    drop = {c[1:] for c in unreproducible(study)}
    noisy = [c for c in left if c in drop]
    return {
        **out,
        "left_out": len(left),
        "left_out_solvers": sorted({c[3] for c in noisy}),
        "left_out_undigested": len(left) - len(noisy),
    }


def _left_out(study: Study, ident: str) -> list[tuple[str, ...]]:
    """The configurations both the baseline and ``ident`` ran (repeat check) that the
    across-environment comparison does not count: no digest of them, or not reproducible."""
    env = {i: n for n, i in ids(study).items()}.get(ident)
    base = study.envs.loc[study.envs["baseline"], "env_name"].iloc[0]
    t = study.table[_ran(study.table, "repeat")]
    ran = [set(t.loc[t["env_name"] == e, list(CONFIG_COLUMNS)].itertuples(index=False, name=None))
           for e in (base, env)]  # fmt: skip
    pairs = _cross_pairs(study)
    compared = set()
    if pairs is not None and len(pairs):
        mine = pairs[pairs["b_env"] == env]
        compared = set(mine[list(CONFIG_COLUMNS)].itertuples(index=False, name=None))
    return sorted((ran[0] & ran[1]) - compared)


def attribution(across: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Factors that moved bits, attributed only from environments that change that factor
    alone; and the combinations (environments changing several factors together) that moved."""
    moved = [v for v in across.values() if v["bitwise"] < v["n"]]
    single = [v["factor"] for v in moved if _single_factor(v)]
    combos = [v["factor"] for v in moved if "," in v["factor"]]
    return factors(single), sorted(set(combos))


def single_factor_worst(across: dict[str, dict[str, Any]]) -> float:
    """The worst deviation over environments that change one factor alone (issue #10 point 7:
    a combination's deviation is not quoted for a single factor)."""
    return max((v["worst"] for v in across.values() if _single_factor(v)), default=0.0)


def _single_factor(v: dict[str, Any]) -> bool:
    return "," not in v["factor"] and v["factor"] != environs.RERUN


def assemble(
    root: Path,
    machine: str,
    commit: str | None,
    loaded: Loaded,
    table: pd.DataFrame,
    envs: pd.DataFrame,
    cross: CrossEnv | None,
    without: list[dict[str, Any]],
    inputs_per_env: Sequence[list[dict[str, Any]]],
    steps: Sequence[Any],
    calibration: pd.DataFrame | None = None,
    timings: Sequence[dict[str, Any]] = (),
    scale: ScaleRun | None = None,
) -> Study:
    """The study of ``machine`` at ``commit`` (None: every commit), from what the loader read."""
    base = envs[envs["baseline"]].iloc[0]
    records = loaded.records
    records = records[
        (records["machine"] == machine)
        & records["commit"].str.startswith(commit or "")
        & records["env_name"].isin(set(envs["env_name"]))  # not one asv is still running
    ]
    data, same = inputs(inputs_per_env, envs)
    return Study(
        root=root,
        machine=machine,
        commit=str(base["commit"]),
        cpu=cpu(base["fp"]),
        envs=envs,
        table=table,
        records=records,
        cross=cross,
        without=[*without, *not_run(steps, machine, str(base["commit"]), envs, without)],
        inputs=data,
        same_inputs=same,
        minutes=bench_minutes(loaded.frame, envs),
        wall_minutes=wall_minutes(timings, envs),
        calibration=calibration,
        scale=scale,
    )
