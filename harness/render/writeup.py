"""The published study: ``results/README.md``, generated from the committed results.

    python -m harness writeup results [--machine NAME] [--commit REV] [--out results/README.md]

Every number in it comes from the results folder through the harness's own readers
(:mod:`harness.results.reader`, :mod:`harness.analysis.tables`, :mod:`harness.analysis.crossenv`, :mod:`harness.study.missing`);
the prose around the numbers is chosen from them, never typed in. The environments are compared
with a baseline: the one that has the most common value of every factor, i.e. the centre of the
study's one-factor-at-a-time design (asv.conf.json).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import commands
from harness.analysis.metrics import K_LEADING, N_NEIGHBORS
from harness.bench.pca import N_COMPS
from harness.errors import HarnessError
from harness.render import formats as render
from harness.results import environments as environs
from harness.results.environments import FACTORS, implementation

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from harness.analysis.crossenv import CrossEnv
    from harness.results.reader import Loaded

#: Accuracy verdicts that mean "the exact PCA up to rounding".
EXACT = ("bitwise", "within tolerance", "explained by the spectrum")
#: Checks inside one environment: identical calls (repeat, process) and the BLAS thread count.
WITHIN = ("repeat", "process", "threads")
#: The checks that repeat the very same call, and the keys of a configuration.
IDENTICAL = ("repeat", "process")
CONFIG = ("dataset", "layout", "dtype", "solver")
#: An attribute the fingerprint cannot tell (threadpoolctl does not see reference BLAS or ATLAS).
UNKNOWN = "?"
COMMAND = "make writeup"


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
        from packaging.version import InvalidVersion, Version

        values = {v for v in envs[col] if v and v != "-"}
        try:
            return sorted(values, key=Version)
        except InvalidVersion:
            return sorted(values)

    implementations = sorted(
        {implementation(fp) for fp in envs["fp"] if implementation(fp)}, key=str.lower
    )
    kernels = sorted(
        {
            k
            for k, b in zip(envs["kernel"], envs["blas"], strict=True)
            if k != "-" and "bundled" in b
        }
    )
    return {
        "scanpy": distinct("scanpy"),
        "scikit-learn": distinct("scikit-learn"),
        "numpy": distinct("numpy"),
        "scipy": distinct("scipy"),
        "OpenBLAS kernel families": kernels,
        "BLAS implementations": implementations,
        "PCA implementations": sorted(set(envs["pca"])),
    }


# --- the measurements ------------------------------------------------------------------------


def inputs(root: Path, envs: pd.DataFrame) -> tuple[list[dict[str, Any]], int]:
    """The baseline's inputs (one row per dataset: shape, density, sha256 per layout and dtype)
    and how many environments read exactly the same bits."""
    from harness.bench import store

    def read(env: Any) -> list[dict[str, Any]]:
        folder = store.RunKey(env["machine"], env["commit"], env["env_name"]).folder(root)
        try:
            return [json.loads(line) for line in (folder / "inputs.jsonl").read_text().splitlines()]
        except (OSError, ValueError):
            return []

    rows = [read(env) for _, env in envs.iterrows()]
    base = rows[int(envs.index[envs["baseline"]][0])]
    digest = {(r["dataset"], r["layout"], r["dtype"]): r.get("sha256") for r in base}
    same = sum(
        bool(r)
        and all(digest.get((x["dataset"], x["layout"], x["dtype"])) == x.get("sha256") for x in r)
        for r in rows
    )
    per_dataset = {}
    for r in base:
        if "shape" in r:
            per_dataset.setdefault(r["dataset"], r)
    return list(per_dataset.values()), same


def _data_line(rows: list[dict[str, Any]], same: int, total: int) -> str:
    from harness.bench import datasets
    from harness.bench.pca import N_COMPS, RANDOM_STATE

    def one(r: dict[str, Any]) -> str:
        n, m = r["shape"]
        known = datasets.DATASETS.get(r["dataset"])
        prep = "counts, normalize_total + log1p" if known and known.counts else "as shipped"
        return f"{r['dataset']} ({n:,} x {m:,}, {r['nnz'] / (n * m):.0%} non-zero, {prep})"

    return (
        f"Data: {', '.join(one(r) for r in rows)}; {N_COMPS} components, random_state={RANDOM_STATE}. "
        f"{same} of {total} environments read bitwise the same inputs (sha256 of every matrix).\n\n"
    )


def bench_minutes(frame: pd.DataFrame, envs: pd.DataFrame) -> list[float]:
    """Per environment, asv's benchmarking wall time in minutes (first start to last end;
    environment creation is not in asv's results)."""
    import pandas as pd

    sub = frame[frame["env_name"].isin(set(envs["env_name"])) & frame["started_at"].notna()]
    sub = sub[sub["commit"].isin(set(envs["commit"]))]
    end = sub["started_at"] + pd.to_timedelta(sub["duration"].fillna(0), unit="s")
    spans = (
        end.groupby(sub["env_name"], observed=True).max()
        - sub["started_at"].groupby(sub["env_name"], observed=True).min()
    )
    return sorted(spans.dt.total_seconds().div(60).tolist())


def _cost_line(minutes: list[float]) -> str:
    if not minutes:
        return ""
    import statistics

    return (
        f"asv benchmarked each environment in {statistics.median(minutes):.1f} min (median; "
        f"{min(minutes):.1f} to {max(minutes):.1f}), {sum(minutes) / 60:.1f} h in all, environment "
        "creation not included.\n\n"
    )


@dataclass
class Study:
    """Everything the write-up states, computed from one results folder."""

    root: Path
    machine: str
    commit: str
    cpu: str
    envs: pd.DataFrame
    table: pd.DataFrame
    records: pd.DataFrame
    cross: CrossEnv | None
    without: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    same_inputs: int
    minutes: list[float]


def load(root: str | Path, machine: str | None = None, commit: str | None = None) -> Study:
    """Read the study of ``machine`` (default: the only one with a pinned study) from ``root``."""
    from harness.analysis import crossenv, tables
    from harness.study import driver as study
    from harness.study import missing

    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"{root}: not a directory")
    machine = machine or _only_study_machine(root)
    commit = commit or study.pinned_commit(root, machine)
    loaded = commands.load(str(root), "writeup")
    table = tables.stability_table(loaded.frame, loaded.records, machine=machine, commit=commit)
    if table.empty:
        raise HarnessError(f"{root}: no stability results for machine {machine!r}, commit {commit}")
    envs = environments(loaded, table)
    base = envs[envs["baseline"]].iloc[0]
    records = loaded.records
    records = records[
        (records["machine"] == machine)
        & records["commit"].str.startswith(commit or "")
        & records["env_name"].isin(set(envs["env_name"]))  # not one asv is still running
    ]
    cross = None
    if len(envs) > 1:
        cross = crossenv.crossenv(
            root, baseline=base["env_name"], loaded=loaded, machine=machine, commit=commit
        )
    without = missing.load(root, machine=machine, commit=(commit or "")[:8] or None)
    data, same = inputs(root, envs)
    fp = base["fp"]
    cpu = f"{(fp.get('cpu') or {}).get('model', '?')}, {(fp.get('cpu') or {}).get('usable', '?')} cores"
    return Study(
        root=root,
        machine=machine,
        commit=str(base["commit"]),
        cpu=cpu,
        envs=envs,
        table=table,
        records=records,
        cross=cross,
        without=[*without, *not_run(root, machine, str(base["commit"]), envs, without)],
        inputs=data,
        same_inputs=same,
        minutes=bench_minutes(loaded.frame, envs),
    )


def not_run(
    root: Path, machine: str, commit: str, envs: pd.DataFrame, without: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Environments of the matrix (the asv.conf.json beside ``root``) with neither results nor a
    failure record: the study has not reached them yet."""
    from harness.study import driver as study
    from harness.study import missing

    conf = root.parent / "asv.conf.json"
    if not conf.is_file():
        return []
    seen = set(envs["env_name"]) | {r["env_name"] for r in without}
    rows = []
    for step in study.steps(conf):
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


def _only_study_machine(root: Path) -> str:
    from harness.bench import store

    pinned = sorted(p.parts[-4] for p in root.glob(f"*/{store.HARNESS_DIR}/study/study.jsonl"))
    if len(pinned) == 1:
        return pinned[0]
    if not pinned:
        raise HarnessError(
            f"{root}: no study found (no */harness/study/study.jsonl); run make study"
        )
    raise HarnessError(f"{root}: studies of several machines ({', '.join(pinned)}); pass --machine")


def _ids(study: Study) -> dict[str, str]:
    return dict(zip(study.envs["env_name"], study.envs["id"], strict=True))


def within(study: Study, reproducible_only: bool = False) -> pd.DataFrame:
    """Per environment: how many configurations are bitwise identical under each within-check
    (``reproducible_only``: over the configurations reproducible in every environment)."""
    import pandas as pd

    rows = []
    t = _reproducible(study.table, study) if reproducible_only else study.table
    for env in study.envs.itertuples():
        sub = t[t["env_name"] == env.env_name]
        row: dict[str, Any] = {"id": env.id, "factor": env.factor, "change": env.change}
        for check in WITHIN:
            ran = sub[~sub[f"v_{check}"].isin(["skipped", "failed"]) & sub[f"v_{check}"].notna()]
            row[f"{check}_n"] = len(ran)
            row[f"{check}_bitwise"] = int((ran[f"v_{check}"] == "bitwise").sum())
            row[f"{check}_worst"] = float(ran[f"dev_{check}"].max()) if len(ran) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def not_reproducible(study: Study, checks: tuple[str, ...] = ("repeat", "process")) -> pd.DataFrame:
    """Configurations whose identical calls disagree (run to run, or across processes)."""
    t = study.table
    mask = False
    for check in checks:
        mask = mask | (
            t[f"v_{check}"].notna() & ~t[f"v_{check}"].isin(["bitwise", "skipped", "failed"])
        )
    bad = t[mask].copy()
    bad["id"] = bad["env_name"].map(_ids(study))
    return bad


def unreproducible(study: Study) -> set[tuple[str, str, str, str, str]]:
    """(env_name, dataset, layout, dtype, solver) where identical calls disagree beyond the
    tolerance: comparing that configuration of that environment across thread counts or with
    another environment would measure its own noise."""
    bad = not_reproducible(study)
    noisy = (bad["v_repeat"] == "unstable") | (bad["v_process"] == "unstable")
    return set(bad.loc[noisy, ["env_name", *CONFIG]].itertuples(index=False, name=None))


def _reproducible(
    frame: pd.DataFrame, study: Study, env_columns: tuple[str, ...] = ("env_name",)
) -> pd.DataFrame:
    """The rows whose configuration is reproducible in each environment the row involves."""
    drop = unreproducible(study)
    configs = list(frame[list(CONFIG)].itertuples(index=False, name=None))
    envs = list(frame[list(env_columns)].itertuples(index=False, name=None))
    keep = [all((e, *c) not in drop for e in es) for c, es in zip(configs, envs, strict=True)]
    return frame[keep]


def _cross_pairs(study: Study) -> pd.DataFrame:
    """Comparable pairs of finished environments, with asv's environment names on both sides,
    over the configurations reproducible in both."""
    if study.cross is None or study.cross.pairs.empty:
        return study.cross.pairs if study.cross is not None else None
    names = {e["id"]: e["env_name"] for e in study.cross.envs}
    p = study.cross.pairs[study.cross.pairs["comparable"]].copy()
    p["a_env"], p["b_env"] = p["a"].map(names), p["b"].map(names)
    finished = set(_ids(study))  # artifacts of an environment asv has not finished are left out
    p = p[p["a_env"].isin(finished) & p["b_env"].isin(finished)]
    return _reproducible(p, study, ("a_env", "b_env"))


def across(study: Study) -> pd.DataFrame:
    """Per environment, its results against the baseline's (same configuration, default threads),
    over the configurations reproducible in both."""
    import pandas as pd

    pairs = _cross_pairs(study)
    if pairs is None or pairs.empty:
        return pd.DataFrame()
    ids = _ids(study)
    rows = []
    for b_env, sub in pairs.groupby("b_env", sort=False):
        env = study.envs[study.envs["env_name"] == b_env].iloc[0]
        moved = sub[~sub["bitwise"]]
        shifted = moved[moved["deviation"] > 0]  # bits differ somewhere, values on the digest too
        rows.append(
            {
                "id": ids[env["env_name"]],
                "factor": env["factor"],
                "change": env["change"],
                "n": len(sub),
                "bitwise": int(sub["bitwise"].sum()),
                "worst": float(moved["deviation"].max()) if len(moved) else 0.0,
                "median": float(moved["deviation"].median()) if len(moved) else 0.0,
                "lead": float(shifted["lead_rel_diff"].median()) if len(shifted) else 0.0,
                "trail": float(shifted["trail_rel_diff"].median()) if len(shifted) else 0.0,
                "explained": int((moved["verdict"] == "explained by the spectrum").sum()),
                "within_tol": int((moved["verdict"] == "within tolerance").sum()),
                "unstable": int((moved["verdict"] == "unstable").sum()),
                "sign_flips": int((sub["sign_flips"].fillna(0) > 0).sum()),
            }
        )
    out = pd.DataFrame(rows)
    return out.sort_values("id", key=lambda s: s.str[1:].astype(int)).reset_index(drop=True)


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
    """What moves the bits: one row per source of variation, within and across environments."""
    import pandas as pd

    rows = []
    t = study.table
    for check, what in (("repeat", "run to run (same process)"), ("process", "fresh process"),
                        ("threads", f"thread count ({_threads_text()}, in-process)")):  # fmt: skip
        v = t[f"v_{check}"]
        ran = t[v.notna() & ~v.isin(["skipped", "failed"])]
        if check not in IDENTICAL:
            ran = _reproducible(ran, study)
        moved = ran[ran[f"v_{check}"] != "bitwise"]
        rows.append(
            {
                "source": what,
                "envs": len(study.envs),
                "n": len(ran),
                "bitwise": len(ran) - len(moved),
                "worst": float(moved[f"dev_{check}"].max()) if len(moved) else 0.0,
                "within_tol": int((moved[f"v_{check}"] == "within tolerance").sum()),
                "explained": int((moved[f"v_{check}"] == "explained by the spectrum").sum()),
                "unstable": int((moved[f"v_{check}"] == "unstable").sum()),
            }
        )
    a = across(study)
    for factor, sub in a.groupby("factor", sort=False) if len(a) else []:
        rows.append(
            {
                "source": f"{factor} (vs baseline)",
                "envs": len(sub),
                "n": int(sub["n"].sum()),
                "bitwise": int(sub["bitwise"].sum()),
                "worst": float(sub["worst"].max()),
                "within_tol": int(sub["within_tol"].sum()),
                "explained": int(sub["explained"].sum()),
                "unstable": int(sub["unstable"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _factor_table(b: pd.DataFrame) -> str:
    headers = ["what changes", "environments", "bitwise equal", "worst deviation",
               "within tolerance", "explained", "unstable"]  # fmt: skip
    rows = [[r["source"], r["envs"], _frac(r["bitwise"], r["n"]), _sci(r["worst"]), r["within_tol"],
             r["explained"], r["unstable"]] for r in b.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l"] + ["r"] * 6)


def _appendix(study: Study) -> str:
    """The harness's stability table of every environment (as ``harness table`` prints them)."""
    from harness.analysis import tables

    ordered = study.envs["env_name"].tolist()
    t = study.table.assign(_o=study.table["env_name"].map(ordered.index))
    t = t.sort_values("_o", kind="stable").drop(columns="_o")
    ids = _ids(study)
    t["environment"] = t["env_name"].map(ids) + ": " + t["environment"]
    return tables.to_markdown(t, level=3)


def downstream(study: Study) -> pd.DataFrame:
    """Per check: where results moved, how much the kNN graph and Leiden clusters moved (checks
    other than repeat and process over the configurations reproducible in every environment)."""
    import pandas as pd

    r = study.records.rename(columns={"svd_solver": "solver"})
    moved = r[(r["status"] == "ok") & (r["bitwise"] == False)]  # noqa: E712 (None = not recorded)
    rows = []
    for check, sub in moved.groupby("check", sort=False):
        if check not in IDENTICAL:
            sub = _reproducible(sub, study)
        if sub.empty:
            continue
        rows.append(
            {
                "check": check,
                "moved": len(sub),
                "solvers": ", ".join(sorted(set(sub["solver"]))),
                "knn_min": sub["knn_jaccard"].min(),
                "knn_median": sub["knn_jaccard"].median(),
                "ari_min": sub["leiden_ari"].min(),
                "ari_median": sub["leiden_ari"].median(),
                "lead": sub["lead_rel_diff"].median(),
                "trail": sub["trail_rel_diff"].median(),
            }
        )
    order = {
        c: i
        for i, c in enumerate(
            ("repeat", "process", "threads", "seed", "layout", "dtype", "accuracy")
        )
    }
    out = pd.DataFrame(rows)
    return (
        out.sort_values("check", key=lambda s: s.map(order)).reset_index(drop=True) if rows else out
    )


def fastest(study: Study) -> pd.DataFrame:
    """Per dataset: the fastest 1-thread configuration bitwise reproducible run to run and across
    processes, and the fastest of all."""
    import pandas as pd

    t = study.table[study.table["time_1_thread_s"].notna()].copy()
    t["id"] = t["env_name"].map(_ids(study))
    changes = dict(zip(study.envs["id"], study.envs["change"], strict=True))
    t["reproducible"] = (t["v_repeat"] == "bitwise") & (t["v_process"] == "bitwise")
    # 'Exact' = the accuracy check finds no deviation beyond the spectrum's rounding bound.
    t["exact"] = t["v_accuracy"].isin(EXACT)
    rows = []
    for dataset, sub in t.groupby("dataset", sort=True):

        def quickest(frame: pd.DataFrame) -> pd.Series | None:
            return frame.loc[frame["time_1_thread_s"].idxmin()] if len(frame) else None

        for kind, row in (
            (
                "fastest bitwise reproducible and exact up to rounding",
                quickest(sub[sub["reproducible"] & sub["exact"]]),
            ),
            ("fastest bitwise reproducible", quickest(sub[sub["reproducible"]])),
            ("fastest", quickest(sub)),
        ):
            if row is None:
                continue
            rows.append(
                {
                    "dataset": dataset,
                    "kind": kind,
                    "id": row["id"],
                    "change": changes[row["id"]],
                    "solver": row["solver"],
                    "layout": row["layout"],
                    "dtype": row["dtype"],
                    "time_s": row["time_1_thread_s"],
                    "reproducible": bool(row["reproducible"]),
                    "accuracy": row["dev_accuracy"],
                }
            )
    return pd.DataFrame(rows)


# --- rendering -------------------------------------------------------------------------------


def _sci(x: Any) -> str:
    if render.is_missing(x):
        return render.MISSING
    return "0" if x == 0 else f"{x:.1e}"


def _frac(k: int, n: int) -> str:
    return f"{k}/{n}" if n else render.MISSING


def _env_table(study: Study) -> str:
    headers = [
        "id",
        "differs from the baseline in",
        "change",
        "environment (from its fingerprint)",
        "BLAS loaded",
    ]
    rows = [[e.id, e.factor, e.change, e.label, (e.fp or {}).get("blas_loaded") or render.MISSING]
            for e in study.envs.itertuples()]  # fmt: skip
    return render.md_table(headers, rows)


def _within_table(w: pd.DataFrame) -> str:
    headers = ["id", "change"]
    for c in WITHIN:
        headers += [f"{c}: bitwise", f"{c}: worst"]
    rows = []
    for r in w.to_dict("records"):
        row = [r["id"], r["change"]]
        for c in WITHIN:
            row += [_frac(r[f"{c}_bitwise"], r[f"{c}_n"]), _sci(r[f"{c}_worst"])]
        rows.append(row)
    return render.md_table(headers, rows, ["l", "l"] + ["r"] * (2 * len(WITHIN)))


def _across_table(a: pd.DataFrame) -> str:
    headers = ["id", "differs in", "bitwise equal", "worst dev.", "median dev.", _lead(),
               _trail(), "explained", "within tol.", "unstable", "sign flips"]  # fmt: skip
    rows = [[r["id"], r["change"], _frac(r["bitwise"], r["n"]), _sci(r["worst"]), _sci(r["median"]),
             _sci(r["lead"]), _sci(r["trail"]), r["explained"], r["within_tol"], r["unstable"],
             r["sign_flips"]] for r in a.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l", "l"] + ["r"] * 9)


def _downstream_table(d: pd.DataFrame) -> str:
    headers = ["check", "moved results", "solvers", "kNN Jaccard min", "kNN median", "Leiden ARI min",
               "ARI median", f"{_lead()} (median)", f"{_trail()} (median)"]  # fmt: skip
    rows = [[r["check"], r["moved"], r["solvers"], render.fmt_fixed(r["knn_min"]), render.fmt_fixed(r["knn_median"]),
             render.fmt_fixed(r["ari_min"]), render.fmt_fixed(r["ari_median"]), _sci(r["lead"]),
             _sci(r["trail"])] for r in d.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l", "r", "l"] + ["r"] * 6)


def _fastest_table(f: pd.DataFrame) -> str:
    headers = ["dataset", "", "env", "solver", "layout", "dtype", "1 thread", "vs exact"]
    rows = [[r["dataset"], r["kind"], f"{r['id']} ({r['change']})", r["solver"], r["layout"], r["dtype"],
             render.fmt_seconds(r["time_s"]), _sci(r["accuracy"])] for r in f.to_dict("records")]  # fmt: skip
    return render.md_table(headers, rows, ["l"] * 6 + ["r", "r"])


def _id_ranges(ids: list[str]) -> str:
    """E1, E2, E3, E5 -> 'E1-E3, E5'."""
    return render.ranges([int(i[1:]) for i in ids], lambda n: f"E{n}")


def _config(r: Any) -> str:
    return f"{r['dataset']} {r['layout']} {r['dtype']} {r['solver']}"


def _noisy_solvers(study: Study) -> list[tuple[str, str]]:
    """Each solver whose identical calls disagreed beyond tolerance, and where."""
    where: dict[str, set[str]] = {}
    for env_name, *config in unreproducible(study):
        where.setdefault(config[3], set()).add(env_name)
    ids = _ids(study)
    changes = dict(zip(study.envs["env_name"], study.envs["change"], strict=True))
    out = []

    def named(envs: set[str]) -> str:
        return _list(
            [f"{ids[e]} ({changes[e]})" for e in sorted(envs, key=lambda e: int(ids[e][1:]))]
        )

    everywhere = set(study.envs["env_name"])
    for solver, envs in sorted(where.items()):
        if envs == everywhere:
            out.append((solver, "in every environment"))
        elif len(envs) > len(everywhere) / 2:
            out.append((solver, f"in every environment but {named(everywhere - envs)}"))
        else:
            out.append((solver, f"in {named(envs)}"))
    return out


def findings(study: Study) -> dict[str, Any]:
    """The facts the prose and the advice are built from (also ``--format json``)."""
    w = within(study)
    a = across(study)
    bad = not_reproducible(study).to_dict("records")
    base = within(study, reproducible_only=True).iloc[0] if len(w) else None
    changes = dict(zip(study.envs["id"], study.envs["change"], strict=True))
    last_bits = {
        (r["id"], changes[r["id"]], r["solver"])
        for r in bad
        if "unstable" not in (r["v_repeat"], r["v_process"])
    }
    f: dict[str, Any] = {
        "environments": len(study.envs),
        "without_results": len(study.without),
        "coverage": coverage(study.envs),
        "repeat_bitwise": (int(w["repeat_bitwise"].sum()), int(w["repeat_n"].sum())),
        "process_bitwise": (int(w["process_bitwise"].sum()), int(w["process_n"].sum())),
        "threads_bitwise": (int(w["threads_bitwise"].sum()), int(w["threads_n"].sum())),
        "not_reproducible": sorted({(_config(r), r["id"]) for r in bad}),
        "noisy_solvers": _noisy_solvers(study),
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
        f["across"] = {
            f"{r['id']} ({r['change']})": {
                "factor": r["factor"],
                "bitwise": int(r["bitwise"]),
                "n": int(r["n"]),
                "worst": float(r["worst"]),
                "unstable": int(r["unstable"]),
                "sign_flips": int(r["sign_flips"]),
            }
            for r in a.to_dict("records")
        }
        f["lead_trail"] = lead_trail(study)
    d = downstream(study)
    f["downstream"] = {r["check"]: r for r in d.to_dict("records")}
    f["fastest"] = fastest(study).to_dict("records")
    return f


def _threads_text() -> str:
    from harness.bench.stability import THREAD_COUNTS

    return " vs ".join(str(n) for n in THREAD_COUNTS) + " BLAS threads"


def _times(ratio: float) -> str:
    """A ratio to two significant digits: 7584 -> '7,600x'."""
    return f"{float(f'{ratio:.2g}'):,.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def _lead() -> str:
    return f"PCs 1-{K_LEADING}"


def _trail() -> str:
    return f"PCs {N_COMPS - K_LEADING + 1}-{N_COMPS}"


def _factors(groups: list[str]) -> list[str]:
    """The single factor names in comma-joined factor groups, in FACTORS order, once each."""
    names = {n.strip() for g in groups for n in g.split(",")}
    return [n for n in FACTORS.values() if n in names]


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _list(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def advice(f: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Advice for analysts and for maintainers, each line chosen by a measured fact."""
    analysts, maintainers = [], []
    rb, rn = f["repeat_bitwise"]
    pb, pn = f["process_bitwise"]
    solvers = f["noisy_solvers"]
    last_bits = f["last_bits"]
    analysts.append(
        f"With the environment and the thread count fixed, {rb} of {rn} (environment, configuration) "
        f"pairs gave bitwise identical PCA run to run and {pb} of {pn} across fresh processes"
        + (". Identical calls disagreed beyond the tolerance only with svd_solver "
           + _or([f"{s!r} ({where})" for s, where in solvers])
           + ": avoid those where you need identical coordinates" if solvers else "")
        + (". Elsewhere identical calls differed in the last bits only (within tolerance): "
           + _list([f"{i} ({c}) with {s!r}" for i, c, s in last_bits]) if last_bits else "")
        + "."
    )  # fmt: skip
    if f.get("baseline_threads"):
        tb, tn, worst = f["baseline_threads"]
        if tb < tn:
            analysts.append(
                f"Fix the BLAS thread count (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS, or threadpoolctl): "
                f"in the baseline environment, {_threads_text()} changed the bits of {tn - tb} of {tn} "
                f"otherwise reproducible configurations (worst relative deviation {_sci(worst)})."
            )
    across = f.get("across", {})
    moved = [k for k, v in across.items() if v["bitwise"] < v["n"]]
    same = [k for k, v in across.items() if v["bitwise"] == v["n"]]
    moved_factors = _factors([across[m]["factor"] for m in moved])
    if moved:
        analysts.append(
            "Record your environment with your results: a different " + _or(moved_factors)
            + " changed PCA coordinates of the same data (worst relative deviation "
            + _sci(max(across[m]["worst"] for m in moved)) + ")."
        )  # fmt: skip
    if same:
        analysts.append(f"No change at all (bitwise equal in every configuration): {_list(same)}.")
    lt = f.get("lead_trail")
    if lt and min(lt) > 0:
        lead, trail = lt
        medians = f"(median worst deviation {_sci(trail)} vs {_sci(lead)})"
        if trail >= 10 * lead:
            analysts.append(
                f"Where results moved across environments, {_trail()} moved {_times(trail / lead)} more "
                f"than {_lead()} {medians}: the trailing components carry the change, so compute more "
                "components than you use downstream."
            )  # fmt: skip
        elif lead >= 10 * trail:
            analysts.append(
                f"Where results moved across environments, {_lead()} moved {_times(lead / trail)} more "
                f"than {_trail()} (median worst deviation {_sci(lead)} vs {_sci(trail)})."
            )  # fmt: skip
        else:
            analysts.append(
                f"Where results moved across environments, {_lead()} and {_trail()} moved by similar "
                f"amounts (median worst deviation {_sci(lead)} and {_sci(trail)})."
            )
    ds = f.get("downstream", {})
    for check in ("threads", "process", "repeat"):
        if check in ds and not render.is_missing(ds[check]["knn_min"]):
            r = ds[check]
            analysts.append(
                f"Downstream, where the {check} check moved PCA (svd_solver {r['solvers']}), the "
                f"{N_NEIGHBORS}-nearest-neighbour graph kept "
                f"{render.fmt_fixed(r['knn_min'])} of its edges at worst (Jaccard) and Leiden clusters "
                f"agreed with ARI {render.fmt_fixed(r['ari_min'])} at worst."
            )
    flips = [k for k, v in across.items() if v["sign_flips"]]
    if flips:
        maintainers.append(
            "Compare PCA across releases after aligning signs: sign flips appeared against the baseline for "
            + _list(flips) + " (`harness compare --fail-on-sign` fails on them)."
        )  # fmt: skip
    unstable = [k for k, v in across.items() if v["unstable"]]
    maintainers.append(
        "Deviations not covered by the spectrum's rounding bound (verdict 'unstable') across environments: "
        + (_list(unstable) + "; these are changes of algorithm, not of rounding." if unstable else "none.")
    )  # fmt: skip
    if moved:
        maintainers.append(
            "Regression tests of PCA output should pin the thread count and the BLAS (or compare with a "
            "tolerance, not bitwise): a different " + _or(moved_factors) + " each changed bits."
        )  # fmt: skip
    for r in f.get("fastest", []):
        if r["kind"].startswith("fastest bitwise reproducible and exact"):
            maintainers.append(
                f"On {r['dataset']}, the fastest 1-thread configuration that is bitwise reproducible "
                "and exact up to rounding is "
                f"{r['solver']} on {r['layout']} {r['dtype']} in {r['id']} ({r['change']}): "
                f"{render.fmt_seconds(r['time_s'])}."
            )
    return analysts, maintainers


def to_markdown(study: Study) -> str:
    """results/README.md."""
    from harness.bench.digests import N_CELLS
    from harness.bench.stability import REPEATS

    f = findings(study)
    w, a, d, fa = within(study), across(study), downstream(study), fastest(study)
    cov = f["coverage"]
    parts = [
        "# PCA stability study\n\n",
        f"Generated by `{COMMAND}` (`python -m harness writeup results --out results/README.md`) from the "
        "asv results in this folder; do not edit by hand. Every number below is read from those results.\n\n",
        f"Machine `{study.machine}` ({study.cpu}), commit `{study.commit[:8]}`, "
        f"{f['environments']} environments with results"
        + (f", {f['without_results']} without (listed at the end)" if f["without_results"] else "")
        + ".\n\n",
        _data_line(study.inputs, study.same_inputs, len(study.envs)),
        _cost_line(study.minutes),
        "## What was covered\n\n",
        "".join(f"- {k}: {len(v)} ({', '.join(v)})\n" for k, v in cov.items()),
        "\n## Environments\n\n",
        f"The baseline ({study.envs.iloc[0]['id']}) has the most common value of every factor; every "
        "other environment changes one factor (or a few, where releases only install together).\n\n",
        _env_table(study),
        "\n## Findings\n\n",
        "What moves PCA's bits, configuration by configuration (dataset x layout x dtype x solver); "
        "'worst deviation' is the sign-aligned relative deviation of X_pca, 'explained' = within "
        "the Davis-Kahan bound of the spectrum's rounding, 'unstable' = beyond it (or, for identical "
        "calls, any deviation over the tolerance). Below the first two rows, the configurations "
        "that are not reproducible even with everything fixed "
        f"({_list(sorted({c[4] for c in unreproducible(study)}))}; see below) are left out in the "
        "environments where they are not: comparing them would measure their own noise.\n\n",
        _factor_table(by_factor(study)),
        "\n### Advice for analysts\n\n",
    ]
    analysts, maintainers = advice(f)
    parts += [f"- {line}\n" for line in analysts]
    parts.append("\n### Advice for maintainers\n\n")
    parts += [f"- {line}\n" for line in maintainers]
    parts += [
        "\n## Within one environment: run to run, process to process, thread count\n\n",
        "Per environment, the configurations (dataset x layout x dtype x solver) whose repeated calls "
        f"(repeat: {REPEATS} calls in one process at 1 thread), two fresh interpreters (process) and "
        f"{_threads_text()} (threads) gave bitwise identical results, and the worst relative deviation "
        "otherwise.\n\n",
        _within_table(w),
    ]
    bad = not_reproducible(study)
    if len(bad):
        parts.append(
            "\nNot reproducible with everything fixed (repeat or process), by configuration:\n\n"
        )
        headers = ["configuration", "environments", "worst repeat", "worst process"]
        rows = []
        for config, sub in bad.groupby(["dataset", "layout", "dtype", "solver"], sort=True):
            ids = sorted(set(sub["id"]), key=lambda i: int(i[1:]))
            rows.append([" ".join(config), f"{len(ids)}/{len(study.envs)} ({_id_ranges(ids)})",
                         _sci(sub["dev_repeat"].max()), _sci(sub["dev_process"].max())])  # fmt: skip
        parts.append(render.md_table(headers, rows, ["l", "l", "r", "r"]))
    if len(a):
        parts += [
            "\n## Across environments: kernel families, thread settings, implementations, releases\n\n",
            "Each environment against the baseline, configuration by configuration, over the "
            "configurations reproducible in both environments (from the result "
            "digests: exact sha256 of the full outputs, and the sign-aligned relative deviation of "
            f"X_pca on {N_CELLS} cells x all PCs). '{_lead()}' and '{_trail()}': median over the moved "
            "configurations of the worst relative deviation among those components. Verdicts as in the "
            "stability tables: 'explained' = within the Davis-Kahan bound of the spectrum's rounding.\n\n",
            _across_table(a),
        ]
    if len(d):
        parts += [
            "\n## Downstream: neighbours and clusters\n\n",
            f"Where a check moved the result (not bitwise), how the {N_NEIGHBORS}-nearest-neighbour graph (Jaccard of "
            "the edge sets) and Leiden clusters (adjusted Rand index) moved with it; the worst pair of "
            "each check, over every environment and configuration.\n\n",
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
    if study.without:
        from harness.study import missing

        parts += ["\n", missing.to_markdown(study.without)]
    parts += ["\n## Appendix: the stability table of every environment\n\n", _appendix(study)]
    parts += [
        "\n## Reproduce\n\n",
        "```\nmake study     # runs every environment of asv.conf.json that has no results yet\n"
        f"{COMMAND}   # regenerates this file\n"
        "python -m harness table results     # the full stability tables\n"
        "python -m harness crossenv results  # every pair of environments\n```\n",
    ]
    return "".join(parts)


def cli_writeup(args: argparse.Namespace) -> int:

    study = load(args.results, args.machine, args.commit)
    text = (
        json.dumps(findings(study), indent=1, default=str) + "\n"
        if args.format == "json"
        else to_markdown(study)
    )
    commands.output(text, args.out)
    return 0
