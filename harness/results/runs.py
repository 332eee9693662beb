"""The runs of a results folder: one per (machine, commit, environment), labelled and selectable.

A person names runs by what differs (``scanpy=1.10.4``, an id, a commit prefix, a label);
:func:`harness.results.environments.select` turns such a selector into runs and
:func:`harness.results.environments.unique_labels` names runs apart (both re-exported here).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.bench import fingerprint
from harness.render.formats import is_missing
from harness.results import environments
from harness.results.frame import codes_of, combine
from harness.results.sidecars import Fingerprints
from harness.vocabulary import RUN_KEY

#: Re-exported: the one selector and label logic lives in :mod:`harness.results.environments`.
ALIASES = environments.ALIASES
matches = environments.matches
select = environments.select
unique_labels = environments.unique_labels


def run_label(run: dict[str, Any]) -> str:
    """The readable label of a run: the fingerprint's, else what asv says was requested."""
    label = run.get("fp_label")
    if isinstance(label, str) and label and label != "unknown environment":
        return label
    parts = []
    python = run.get("python")
    if isinstance(python, str) and python:
        ver = re.search(r"(\d+\.\d+(?:\.\d+)?)", python)
        parts.append(f"python {ver.group(1)}" if ver else "python (existing interpreter)")
    reqs = run.get("requirements")
    if isinstance(reqs, str) and reqs:
        parts.append(reqs.replace(" ", " · ").replace("==", " ") + " (requested)")
    return (
        " · ".join(parts) + " (no fingerprint)" if parts else "unknown environment (no fingerprint)"
    )


@dataclass(frozen=True)
class RunInfo:
    """One run (machine, commit, environment) with what a person or a selector needs of it."""

    machine: str
    commit: str
    env_name: str
    label: str
    packages: tuple[tuple[str, str], ...] = ()
    blas: str | None = None
    threads: int | None = None
    python: str | None = None
    date: float = math.nan
    #: The benchmark profile (quick, study...) where the run recorded it.
    profile: str | None = None
    #: Filled by :func:`harness.results.environments.labelled`: the folder's id, the
    #: fingerprint's label (``label`` is then the folder-wide unique one) and the factors.
    ident: str | None = None
    base_label: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.machine, self.commit, self.env_name)


def run_info(
    key: tuple[str, str, str],
    fp: dict[str, Any] | None,
    *,
    requirements: str | None = None,
    python: str | None = None,
    date: float = math.nan,
    env_vars: str | None = None,
) -> RunInfo:
    """A :class:`RunInfo` from the fingerprint, else from what asv recorded as requested."""
    profile = profile_of(fp, env_vars)
    if fp:
        packages = tuple(sorted((str(k), str(v)) for k, v in (fp.get("packages") or {}).items()))
        return RunInfo(
            *key,
            label=fingerprint.label(fp),
            packages=packages,
            blas=fp.get("blas"),
            threads=fingerprint.threads(fp),
            python=fp.get("python"),
            date=date,
            profile=profile,
        )
    text = requirements if isinstance(requirements, str) else ""  # NaN where asv kept none
    reqs = tuple(sorted(tuple(r.split("==", 1)) for r in text.split() if "==" in r))
    label = run_label({"python": python, "requirements": requirements})
    return RunInfo(*key, label=label, packages=reqs, python=python, date=date, profile=profile)


def profile_of(fp: dict[str, Any] | None, env_vars: str | None = None) -> str | None:
    """The benchmark profile a run used: the fingerprint's ``profile`` or ``HARNESS_PROFILE``,
    else asv's record of the variables it set (``env_vars``, 'K=V K=V' text); None if neither."""
    fp = fp or {}
    for value in (fp.get("profile"), (fp.get("env_vars") or {}).get("HARNESS_PROFILE")):
        if isinstance(value, str) and value:
            return value
    for item in (env_vars if isinstance(env_vars, str) else "").split():
        key, _, value = item.partition("=")
        if key == "HARNESS_PROFILE" and value:
            return value
    return None


def run_infos(frame: pd.DataFrame, fps: Fingerprints | None = None) -> list[RunInfo]:
    """Every run of a results frame, sorted by (machine, commit, env_name)."""
    _, table = run_ids(frame)
    out = []
    for r in table.sort_values(list(RUN_KEY), kind="stable").to_dict("records"):
        key = (r["machine"], r["commit"], r["env_name"])
        fp = fps.find(*key) if fps is not None else None
        stamp = r.get("date")
        date = stamp.value / 1e6 if stamp is not None and not is_missing(stamp) else math.nan
        out.append(
            run_info(
                key,
                fp,
                requirements=r.get("requirements"),
                python=r.get("python"),
                date=date,
                env_vars=r.get("env_vars"),
            )
        )
    return out


def run_ids(frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """Per row, the index of its run in the returned runs table (first-seen order).

    The runs table holds machine, commit, env_name (as str), date, python, requirements,
    env_vars, the ``fp_*`` columns and ``label`` (:func:`run_label`).
    """
    cols = [
        c
        for c in frame.columns
        if c in (*RUN_KEY, "date", "python", "requirements", "env_vars") or c.startswith("fp_")
    ]
    if frame.empty:
        return np.empty(0, dtype=np.int64), pd.DataFrame(columns=[*cols, "label"])
    key = combine([codes_of(frame[c])[0] for c in RUN_KEY])
    ids, uniq = pd.factorize(key)
    first = np.full(len(uniq), len(key), dtype=np.int64)
    np.minimum.at(first, ids, np.arange(len(key), dtype=np.int64))
    table = frame[cols].take(first).reset_index(drop=True)
    for c in RUN_KEY:
        table[c] = table[c].astype(str)
    labels = (
        table["fp_label"].astype(object) if "fp_label" in table else pd.Series([None] * len(table))
    )
    missing = labels.isna().to_numpy()
    if missing.any():
        fallback = table.loc[missing, ["python", "requirements"]].to_dict("records")
        labels = labels.to_numpy(dtype=object)
        labels[missing] = [run_label(r) for r in fallback]
    table["label"] = list(labels)
    return ids.astype(np.int64), table
