"""Pairwise deviation between environments: ``python -m harness crossenv RESULTS``.

asv cannot set environments side by side at one commit (asv#370, asv#789). The stability suite
leaves a digest of each PCA result beside asv's results (:mod:`harness.bench.digests`); this command
compares the digests of every pair of environments (or each one with ``--baseline``) per
configuration, with the metrics of :mod:`harness.analysis.metrics`:

- ``deviation``: 0 when the bits are equal (exact sha256 of the full outputs), else the worst
  sign-aligned relative deviation of X_pca on the digest's subsample (a lower bound);
- ``verdict``: as in the stability tables, the calibrated verdict of the pair (bitwise, sign
  only, within rounding, explained, undetermined, beyond rounding), judged from the two digests'
  full loadings, residuals against the exact covariance and rounding levels
  (:func:`harness.bench.digests.judged`); "unclassified" for digests written before issue #10;
- ``moved``: which outputs differ once signs are aligned (embedding, loadings, variance);
- ``sign_flips``, ``max_abs_diff``, ``angle_all_deg``, ``variance_max_rel_diff``.

Environments are labelled from their fingerprints ("scanpy 1.11.5 · sklearn 1.9.1 · numpy 2.4.6 ·
OpenBLAS 0.3.31 SkylakeX · 2 threads"), never by asv's environment names; labels that coincide
get the machine, then the commit, appended. Their ids are the folder's
(:func:`harness.results.environments.ids`), so E3 here is E3 in the table and the write-up.
The digests are read by :mod:`harness.commands.crossenv`; this module only compares.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from harness.analysis import metrics
from harness.analysis.tables import verdict
from harness.bench.digests import Digest, compare_digests
from harness.errors import HarnessError
from harness.results.environments import Key
from harness.results.runs import RunInfo, select, unique_labels
from harness.vocabulary import (
    CONFIG_COLUMNS,
    CONFIG_KEYS,
    VERDICTS,
    env_id,
    env_number,
)

PAIR_COLUMNS = [
    "dataset",
    "layout",
    "dtype",
    "solver",
    "condition",
    "a",
    "b",
    "a_label",
    "b_label",
    "comparable",
    "bitwise",
    "deviation",
    "max_abs_diff",
    "sign_flips",
    "moved",
    "loadings_max_abs_diff",
    "angle_all_deg",
    "variance_max_rel_diff",
    "lead_rel_diff",
    "trail_rel_diff",
    "verdict",
    "beyond_cause",
]


@dataclass
class CrossEnv:
    """The comparison: environments (by id), every compared pair, and a summary per pair."""

    envs: list[dict[str, Any]]
    pairs: pd.DataFrame
    summary: pd.DataFrame
    baseline: str | None
    problems: list[str]


def config_of(digest: Digest) -> tuple[Any, ...]:
    """A digest's configuration (dataset, layout, dtype, svd_solver) and its condition as text."""
    params = digest.params
    return (*(params.get(k) for k in CONFIG_KEYS), _condition_text(digest.condition))


def _condition_text(condition: dict[str, Any]) -> str:
    return ", ".join(f"{k}={condition[k]}" for k in sorted(condition)) if condition else ""


def deviation(result: dict[str, Any]) -> float:
    """0 for equal bits, else the worst sign-aligned relative deviation (NaN: not comparable)."""
    if result.get("bitwise"):
        return 0.0
    if not result.get("comparable", True):
        return math.nan
    value = result.get("aligned_max_rel_diff")
    return float(value) if isinstance(value, (int, float)) else math.nan


def pair_verdict(result: dict[str, Any]) -> str | None:
    """The verdict of one compared pair (the stability tables' rule)."""
    return verdict(
        deviation(result), bitwise=bool(result.get("bitwise")), judged=result.get("verdict")
    )


def moved(result: dict[str, Any]) -> str:
    """Which outputs differ once signs are aligned: 'embedding', 'loadings', 'variance'."""
    if result.get("bitwise") or not result.get("comparable", True):
        return ""
    parts = result.get("bitwise_parts") or {}
    out = []
    for name, key in (("embedding", "aligned_max_abs_diff"), ("loadings", "loadings_aligned_max_abs_diff"),
                      ("variance", "variance_max_rel_diff")):  # fmt: skip
        value = result.get(key)
        if not parts.get(name, False) and isinstance(value, (int, float)) and value > 0:
            out.append(name)
    return ",".join(out)


def env_ids(
    keys: Sequence[Key], ids: Mapping[Key, str], names: Mapping[Key, str]
) -> dict[Key, str]:
    """The folder's id of each run; runs it has none for (artifacts without asv results) get
    the next numbers, in label order."""
    out = {k: ids[k] for k in keys if k in ids}
    top = max((env_number(i) or 0 for i in ids.values()), default=0)
    extra = sorted((k for k in keys if k not in out), key=lambda k: (names[k], k))
    out.update({k: env_id(top + i) for i, k in enumerate(extra)})
    return out


def crossenv(
    digests: Sequence[Digest],
    infos: Sequence[RunInfo],
    ids: Mapping[Key, str],
    *,
    baseline: str | None = None,
    compare: Callable[[Digest, Digest], dict[str, Any]] = compare_digests,
    problems: Sequence[str] = (),
) -> CrossEnv:
    """Compare the digests of every pair of runs (or each with ``baseline``'s), per configuration.

    ``infos`` label the runs (one per run the digests come from), ``ids`` are the folder's
    environment ids, ``problems`` the lines reported while reading the digests.
    """
    by_run: dict[Key, dict[tuple[Any, ...], Digest]] = {}
    for d in digests:
        key = (d.key.machine, d.key.commit, d.key.env_name)
        by_run.setdefault(key, {}).setdefault(config_of(d), d)
    infos = [i for i in infos if i.key in by_run]
    names = unique_labels(infos)
    idmap = env_ids(list(by_run), ids, names)
    order = sorted(by_run, key=lambda k: (env_number(idmap[k]), k))
    envs = [
        {"id": idmap[k], "label": names[k], "machine": k[0], "commit": k[1], "env_name": k[2]}
        for k in order
    ]
    base = _baseline_key(baseline, infos, names, envs)
    rows = []
    configs = sorted({c for per in by_run.values() for c in per}, key=lambda c: tuple(map(str, c)))
    # One BLAS thread: the comparisons are small SVDs (subspace_angles of 1,000 x 50 loadings),
    # where a 2-thread OpenBLAS spins for a busy core. Measured beside a benchmark run (load
    # average 7): the write-up's 236 calls took 125 of its 153 s, 0.53 s each. Python threads over
    # the pairs were slower still (27 s on one, 33 s on two for 100 environments: the GIL).
    tasks = []
    for config in configs:
        present = [k for k in order if config in by_run[k]]
        if base is None:
            pairs = list(itertools.combinations(present, 2))
        else:
            pairs = [(base, k) for k in present if k != base and base in present]
        tasks += [(config, a, b) for a, b in pairs]
    with threadpool_limits(limits=1):
        results = [compare(by_run[a][config], by_run[b][config]) for config, a, b in tasks]
    for (config, a, b), res in zip(tasks, results, strict=True):
        sides = {"a": idmap[a], "b": idmap[b], "a_label": names[a], "b_label": names[b]}
        rows.append(_pair_row(config, sides, res))
    pairs_df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    base_id = idmap[base] if base is not None else None
    return CrossEnv(envs, pairs_df, summarize(pairs_df), base_id, list(problems))


def _baseline_key(
    baseline: str | None,
    infos: Sequence[RunInfo],
    names: Mapping[Key, str],
    envs: list[dict[str, Any]],
) -> Key | None:
    """The one run ``baseline`` selects; HarnessError when it selects none or several."""
    if baseline is None:
        return None
    picked = select(baseline, infos)
    if not picked:
        listing = "; ".join(f"{e['id']} = {e['label']}" for e in envs) or "none"
        raise HarnessError(
            f"--baseline {baseline!r}: matches no environment with artifacts; have: {listing}"
        )
    if len(picked) > 1:
        which = ", ".join(names[i.key] for i in picked)
        raise HarnessError(
            f"--baseline {baseline!r}: matches {len(picked)} environments ({which}); be more specific"
        )
    return picked[0].key


def _pair_row(
    config: tuple[Any, ...], sides: dict[str, str], res: dict[str, Any]
) -> dict[str, Any]:
    """One row of the pairs table from one comparison of two digests."""
    lead, trail = metrics.leading_trailing(res.get("component_rel_diff"))
    comparable = bool(res.get("comparable", True))
    bitwise = bool(res.get("bitwise"))
    return {
        **dict(zip((*CONFIG_COLUMNS, "condition"), config, strict=True)),
        **sides,
        "comparable": comparable,
        "bitwise": bitwise,
        "deviation": deviation(res),
        "max_abs_diff": res.get("max_abs_diff"),
        "sign_flips": res.get("sign_flips"),
        "moved": moved(res),
        "loadings_max_abs_diff": res.get("loadings_aligned_max_abs_diff"),
        "angle_all_deg": res.get("angle_all_deg"),
        "variance_max_rel_diff": res.get("variance_max_rel_diff"),
        "lead_rel_diff": 0.0 if bitwise else lead,
        "trail_rel_diff": 0.0 if bitwise else trail,
        "verdict": (v := pair_verdict(res) if comparable else "not comparable"),
        # Why it is beyond rounding (rounding.beyond_cause), where it is.
        "beyond_cause": res.get("beyond_cause") if v == "beyond rounding" else None,
    }


def summarize(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per pair of environments: configurations compared, verdict counts, worst deviation."""
    cols = [
        "a",
        "b",
        "a_label",
        "b_label",
        "configurations",
        *VERDICTS,
        "worst_deviation",
        "worst_configuration",
    ]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (a, b), sub in pairs.groupby(["a", "b"], sort=True):
        counts = sub["verdict"].value_counts()
        dev = sub["deviation"].astype(float)
        if dev.notna().any() and dev.max() > 0:
            i = dev.idxmax()
            worst, where = (
                float(dev[i]),
                "/".join(str(sub.at[i, k]) for k in CONFIG_COLUMNS),
            )
        else:
            worst, where = (0.0 if dev.notna().any() else math.nan), ""
        out.append(
            {
                "a": a,
                "b": b,
                "a_label": sub["a_label"].iloc[0],
                "b_label": sub["b_label"].iloc[0],
                "configurations": len(sub),
                **{v: int(counts.get(v, 0)) for v in VERDICTS},
                "worst_deviation": worst,
                "worst_configuration": where,
            }
        )
    return (
        pd.DataFrame(out, columns=cols)
        .sort_values(["a", "b"], key=_env_order)
        .reset_index(drop=True)
    )


def _env_order(col: pd.Series) -> pd.Series:
    return col.map(lambda s: env_number(s) or 0)
