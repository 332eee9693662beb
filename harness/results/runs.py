"""The runs of a results folder: one per (machine, commit, environment), labelled and selectable.

A person names runs by what differs (``scanpy=1.10.4``, a commit prefix, a label substring);
:func:`select` turns such a selector into runs, :func:`unique_labels` names runs apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.bench import fingerprint
from harness.render.formats import is_missing
from harness.results.frame import codes_of, combine
from harness.results.sidecars import Fingerprints
from harness.vocabulary import RUN_KEY


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


#: Short names accepted in selectors such as ``sklearn=1.9.1``.
ALIASES = {"sklearn": "scikit-learn", "scikit_learn": "scikit-learn", "sc": "scanpy", "np": "numpy"}


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
) -> RunInfo:
    """A :class:`RunInfo` from the fingerprint, else from what asv recorded as requested."""
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
        )
    text = requirements if isinstance(requirements, str) else ""  # NaN where asv kept none
    reqs = tuple(sorted(tuple(r.split("==", 1)) for r in text.split() if "==" in r))
    label = run_label({"python": python, "requirements": requirements})
    return RunInfo(*key, label=label, packages=reqs, python=python, date=date)


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
            run_info(key, fp, requirements=r.get("requirements"), python=r.get("python"), date=date)
        )
    return out


def run_ids(frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """Per row, the index of its run in the returned runs table (first-seen order).

    The runs table holds machine, commit, env_name (as str), date, python, requirements, the
    ``fp_*`` columns and ``label`` (:func:`run_label`).
    """
    cols = [
        c
        for c in frame.columns
        if c in (*RUN_KEY, "date", "python", "requirements") or c.startswith("fp_")
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


def unique_labels(infos: Iterable[RunInfo]) -> dict[tuple[str, str, str], str]:
    """Labels that tell runs apart: the readable label, then machine, then commit, if needed."""
    infos = list(infos)
    out = {i.key: i.label for i in infos}
    for extra in (lambda i: i.machine, lambda i: f"commit {i.commit[:8]}", lambda i: i.env_name):
        counts: dict[str, int] = {}
        for i in infos:
            counts[out[i.key]] = counts.get(out[i.key], 0) + 1
        for i in infos:
            if counts[out[i.key]] > 1:
                out[i.key] = f"{out[i.key]} · {extra(i)}"
    return out


def matches(selector: str, info: RunInfo) -> bool:
    """Whether a run matches a selector.

    ``dist=version[,dist=version...]`` (``scanpy=1.11.5``, ``sklearn=1.9.1``; also ``machine=``,
    ``commit=``, ``env=``, ``blas=``, ``threads=``, ``python=``): every part must hold, versions
    from the fingerprint (or what asv was asked to install when there is none). Otherwise the
    selector is a commit hash prefix (4+ hex digits), a machine, an asv environment name,
    ``machine/env_name`` or the environment's label (exactly, or a unique substring: see
    :func:`select`).
    """
    if "=" in selector:
        return all(
            _matches_part(part.strip(), info) for part in selector.split(",") if part.strip()
        )
    if selector in (info.label, info.env_name, info.machine, f"{info.machine}/{info.env_name}"):
        return True
    return (
        len(selector) >= 4
        and all(c in "0123456789abcdef" for c in selector.lower())
        and (info.commit.lower().startswith(selector.lower()))
    )


def _matches_part(part: str, info: RunInfo) -> bool:
    key, _, value = part.partition("=")
    key = key.strip().lower()
    value = value.strip().lstrip("=")
    if key in ("machine",):
        return info.machine == value
    if key in ("commit",):
        return info.commit.startswith(value)
    if key in ("env", "env_name"):
        return info.env_name == value
    if key == "blas":
        return bool(info.blas) and value.lower() in str(info.blas).lower()
    if key == "threads":
        return str(info.threads) == value
    if key == "python":
        return bool(info.python) and str(info.python).startswith(value)
    dist = ALIASES.get(key, key)
    packages = {k.lower(): v for k, v in info.packages}
    return packages.get(dist) == value


def select(selector: str, infos: Iterable[RunInfo]) -> list[RunInfo]:
    """The runs a selector picks (see :func:`matches`); a label substring if nothing else does."""
    infos = list(infos)
    picked = [i for i in infos if matches(selector, i)]
    if picked or "=" in selector:
        return picked
    by_label = [i for i in infos if selector.lower() in i.label.lower()]
    return by_label
