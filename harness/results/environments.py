"""The environments of a results folder, named once: label, the factors that describe it, which
one is the baseline, what each changes against it, and its short id (E1, E2, ...).

Every view (``harness envs``, table, crossenv, compare, report, write-up) takes its ids from
:func:`catalogue`, computed over *every* run of the folder, so the same environment has the same
id everywhere. The baseline is the run closest to the most common value of every factor: the
centre of the study's one-factor-at-a-time design (asv.conf.json).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness import vocabulary
from harness.bench import fingerprint
from harness.results.sidecars import fingerprint_columns

if TYPE_CHECKING:  # pragma: no cover
    from harness.results.reader import Loaded

#: What a difference in each attribute of an environment is called.
FACTORS = {
    "python": "Python",
    "scanpy": "scanpy release",
    "scikit-learn": "scikit-learn release",
    "numpy": "numpy release",
    "scipy": "scipy release",
    "pca": "PCA implementation",
    "blas": "BLAS implementation",
    "kernel": "OpenBLAS kernel family",
    "coretype": "OPENBLAS_CORETYPE",
    "threads": "BLAS threads",
    "cbwr": "MKL_CBWR",
}
#: An attribute the fingerprint cannot tell (threadpoolctl does not see reference BLAS or ATLAS).
UNKNOWN = "?"
Key = tuple[str, str, str]


def attributes(fp: dict[str, Any]) -> dict[str, str]:
    """The factors the study varies, as read from one environment's fingerprint."""
    cols = fingerprint_columns(fp)
    pk = fp.get("packages") or {}
    env = fp.get("env_vars") or {}
    threads = fingerprint.threads(fp)
    by_env = any(env.get(k, "").isdigit() for k in fingerprint.THREAD_VARS)
    sklearnex = env.get("HARNESS_SKLEARNEX") and pk.get("scikit-learn-intelex")
    return {
        "python": ".".join(str(fp.get("python", "")).split(".")[:2]),
        "scanpy": pk.get("scanpy", ""),
        "scikit-learn": pk.get("scikit-learn", ""),
        "numpy": pk.get("numpy", ""),
        "scipy": pk.get("scipy", ""),
        "pca": f"sklearnex {sklearnex}" if sklearnex else "scikit-learn",
        "blas": env.get("HARNESS_BLAS") or "numpy's bundled OpenBLAS",
        "kernel": str(cols.get("fp_blas_core") or "-"),
        "coretype": env.get("OPENBLAS_CORETYPE") or "autodetect",
        "threads": UNKNOWN if threads is None else f"{threads}{' (env)' if by_env else ''}",
        "cbwr": env.get("MKL_CBWR") or "-",
    }


def baseline_index(attrs: Sequence[dict[str, str]], steered: Sequence[int] | None = None) -> int:
    """The environment closest to the most common value of every factor.

    Ties (a study of two environments, say) go to the environment that sets fewer steering
    variables (``steered``: how many each sets), then to the first.
    """
    steered = list(steered or [0] * len(attrs))
    order = sorted(range(len(attrs)), key=lambda i: steered[i])  # Counter keeps first-seen on ties
    modes = {k: Counter(attrs[i][k] for i in order).most_common(1)[0][0] for k in FACTORS}
    distance = {i: sum(attrs[i][k] != modes[k] for k in FACTORS) for i in order}
    return min(order, key=lambda i: distance[i])


def differs(a: dict[str, str], base: dict[str, str]) -> list[str]:
    """The factors in which ``a`` differs from the baseline, named for people."""
    out = [FACTORS[k] for k in FACTORS if a[k] != base[k] and UNKNOWN not in (a[k], base[k])]
    # A forced kernel family shows as its kernel; the variable alone only when the kernel is equal.
    if FACTORS["kernel"] in out and FACTORS["coretype"] in out:
        out.remove(FACTORS["coretype"])
    # A BLAS implementation other than numpy's brings its own kernel (or none).
    if FACTORS["blas"] in out and FACTORS["kernel"] in out:
        out.remove(FACTORS["kernel"])
    return out


def change(a: dict[str, str], base: dict[str, str]) -> str:
    """What ``a`` sets differently from the baseline, as 'key=value' pairs ('blas=mkl')."""
    names = {FACTORS[k]: k for k in FACTORS}
    return ", ".join(f"{names[f]}={a[names[f]]}" for f in differs(a, base)) or "-"


def implementation(fp: dict[str, Any]) -> str:
    """The BLAS family numpy really ran on ('OpenBLAS', 'reference BLAS', 'MKL'...), version
    dropped: the fingerprint's ``blas`` up to its ';' (what scipy's wheel bundles follows)."""
    words = []
    for word in str(fp.get("blas") or "").split(";")[0].split():
        if word[:1].isdigit():
            break
        words.append(word)
    return " ".join(words)


def _factor_rank(factor: str) -> int:
    names = ["baseline", *FACTORS.values()]
    first = factor.split(",")[0].strip()
    rank = names.index(first) if first in names else len(names)
    return rank + (len(names) if "," in factor else 0)  # corners after single factors


def describe(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Id, attributes, baseline flag, factor and change of each run.

    ``runs``: dicts with machine, commit, env_name, label and fp (the fingerprint, or {}), in
    the order ties are broken in. Runs without a fingerprint come last, with no factor.
    """
    rows = [{**r, **attributes(r["fp"] or {})} for r in runs]
    if not rows:
        return pd.DataFrame(
            columns=[
                "id",
                "machine",
                "commit",
                "env_name",
                "label",
                "fp",
                "baseline",
                "factor",
                "change",
                *FACTORS,
            ]
        )
    known = [i for i, r in enumerate(rows) if r["fp"]]
    steered = [sum(bool(v) for v in (rows[i]["fp"].get("env_vars") or {}).values()) for i in known]
    base = known[baseline_index([rows[i] for i in known], steered)] if known else None
    for i, row in enumerate(rows):
        row["baseline"] = i == base
        if base is None or not row["fp"]:
            row["factor"], row["change"] = "unknown (no fingerprint)", "-"
        elif i == base:
            row["factor"] = row["change"] = "baseline"
        else:
            row["factor"] = ", ".join(differs(row, rows[base])) or "none (rerun)"
            row["change"] = change(row, rows[base])
    envs = pd.DataFrame(rows)
    order = envs["factor"].map(_factor_rank)
    envs = envs.assign(_o=order).sort_values(["_o", "factor", "label"], kind="stable")
    envs = envs.drop(columns="_o").reset_index(drop=True)
    envs.insert(0, "id", [vocabulary.env_id(i) for i in range(len(envs))])
    return envs


def catalogue(loaded: Loaded) -> pd.DataFrame:
    """Every run of a loaded folder, described (:func:`describe`); cached on ``loaded``.

    Ties are broken in the order the stability tables list runs: by label, machine, commit and
    asv environment name.
    """
    cached = getattr(loaded, "_catalogue", None)
    if cached is not None:
        return cached
    infos = sorted(loaded.infos(), key=lambda i: (i.label, i.machine, i.commit, i.env_name))
    runs = [
        {
            "machine": i.machine,
            "commit": i.commit,
            "env_name": i.env_name,
            "label": i.label,
            "fp": loaded.fingerprints.find(*i.key) or {},
        }
        for i in infos
    ]
    envs = describe(runs)
    object.__setattr__(loaded, "_catalogue", envs)
    return envs


def ids(loaded: Loaded) -> dict[Key, str]:
    """(machine, commit, env_name) -> id, over every run of the folder."""
    envs = catalogue(loaded)
    return {
        (m, c, e): i
        for i, m, c, e in zip(
            envs["id"], envs["machine"], envs["commit"], envs["env_name"], strict=True
        )
    }
