"""The mechanisms the harness can name when results move between environments (issue #10
points 7, 10 and 11), read from the fingerprints and the input records of a study.

- scikit-learn's sign convention (u-based before 1.5, v-based from 1.5: scikit-learn#28826);
- what ``svd_solver='auto'`` resolves to for each dataset's shape, per scikit-learn release;
- whether lobpcg's start vectors follow numpy's global seed (what scanpy sets) or only an ``rng``
  passed to svds (scipy >= 1.17 draws them from a fresh ``default_rng()``: scipy#25069);
- the null control: the baseline's pins rebuilt from scratch, which must be bitwise equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from packaging.version import Version

from harness.bench import support
from harness.bench.pca import N_COMPS

#: The steering variable that marks the null-control environment (asv.conf.json).
NULL_CONTROL = "HARNESS_NULL_CONTROL"


@dataclass(frozen=True)
class Mechanism:
    """One environment's difference from the baseline that the harness can name."""

    env_id: str
    what: str  # "sign convention", "auto solver", "lobpcg seeding"
    baseline: str
    here: str
    dataset: str | None = None


def _sklearn(fp: dict[str, Any]) -> str | None:
    return (fp.get("packages") or {}).get("scikit-learn")


def null_control(envs: pd.DataFrame) -> str | None:
    """The id of the null-control environment, if the study has one."""
    for e in envs.itertuples():
        if NULL_CONTROL in ((e.fp or {}).get("env_vars") or {}):
            return str(e.id)
    return None


def auto_resolution(sklearn: str, shapes: dict[str, tuple[int, int]]) -> dict[str, str]:
    """Per dataset, the solver scikit-learn's 'auto' runs on dense input of its shape."""
    return {d: support.auto_solver(sklearn, n, p, N_COMPS) for d, (n, p) in shapes.items()}


def named(envs: pd.DataFrame, shapes: dict[str, tuple[int, int]]) -> list[Mechanism]:
    """Every named mechanism by which an environment differs from the baseline."""
    base = envs[envs["baseline"]].iloc[0]
    bfp = base["fp"] or {}
    out: list[Mechanism] = []
    b_mech = bfp.get("mechanisms") or {}
    b_sklearn = _sklearn(bfp)
    for e in envs.itertuples():
        if e.baseline or not e.fp:
            continue
        mech = e.fp.get("mechanisms") or {}
        sk = _sklearn(e.fp)
        if b_sklearn and sk and sk != b_sklearn:
            b_sign, sign = support.sign_convention(b_sklearn), support.sign_convention(sk)
            if b_sign != sign:
                out.append(Mechanism(str(e.id), "sign convention", b_sign, sign))
            b_auto, auto = auto_resolution(b_sklearn, shapes), auto_resolution(sk, shapes)
            for d in shapes:
                if b_auto[d] != auto[d]:
                    out.append(Mechanism(str(e.id), "auto solver", b_auto[d], auto[d], d))
        key = "lobpcg_global_seed_reproducible"
        if key in mech and key in b_mech and mech[key] != b_mech[key]:
            out.append(Mechanism(str(e.id), "lobpcg seeding", _seeding(b_mech), _seeding(mech)))
    return out


def _seeding(mech: dict[str, Any]) -> str:
    glob = mech.get("lobpcg_global_seed_reproducible")
    passed = mech.get("lobpcg_rng_passed_reproducible")
    if glob:
        return "reproducible with numpy's global seed"
    if passed:
        return "reproducible only with rng passed to svds"
    return "not reproducible"


def lobpcg_by_scipy(envs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per scipy release of the study: whether two identical lobpcg calls agree with numpy's
    global seed set (scanpy's way) and with ``rng`` passed (measured in each environment)."""
    rows: dict[str, dict[str, Any]] = {}
    for e in envs.itertuples():
        fp = e.fp or {}
        mech = fp.get("mechanisms") or {}
        scipy = (fp.get("packages") or {}).get("scipy")
        if not scipy or "lobpcg_global_seed_reproducible" not in mech:
            continue
        row = rows.setdefault(
            scipy, {"scipy": scipy, "ids": [], "global_seed": set(), "rng": set()}
        )
        row["ids"].append(str(e.id))
        row["global_seed"].add(bool(mech["lobpcg_global_seed_reproducible"]))
        if "lobpcg_rng_passed_reproducible" in mech:  # None: this svds takes no rng
            passed = mech["lobpcg_rng_passed_reproducible"]
            row["rng"].add(None if passed is None else bool(passed))
    out = []
    for scipy in sorted(rows, key=Version):
        r = rows[scipy]
        rng = sorted(r["rng"], key=lambda v: (v is None, v))
        out.append({**r, "global_seed": sorted(r["global_seed"]), "rng": rng})
    return out


def default_neighbors(envs: pd.DataFrame) -> list[dict[str, Any]]:
    """Whether scanpy's default ``pp.neighbors`` ran on the probe's 5,000 cells, per (scanpy,
    scipy, pynndescent, umap-learn) of the study (issue #10 point 6: scanpy 1.11.5 with scipy 1.17.1
    was reported to fail above 4,096 cells with ``getnnz``). ``problem`` None: it ran."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for e in envs.itertuples():
        fp = e.fp or {}
        mech = fp.get("mechanisms") or {}
        if "default_neighbors_problem" not in mech:
            continue
        pk = fp.get("packages") or {}
        key = tuple(str(pk.get(p, "?")) for p in NEIGHBORS_PACKAGES)
        row = rows.setdefault(
            key, {**dict(zip(NEIGHBORS_PACKAGES, key, strict=True)), "ids": [], "problems": set()}
        )
        row["ids"].append(str(e.id))
        row["problems"].add(mech["default_neighbors_problem"])
    return [
        {**r, "problems": sorted(r["problems"], key=lambda v: (v is not None, str(v)))}
        for _, r in sorted(rows.items())
    ]


#: The packages scanpy's default neighbors search and connectivities depend on.
NEIGHBORS_PACKAGES = ("scanpy", "scipy", "pynndescent", "umap-learn")
