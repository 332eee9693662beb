"""The environments of a results folder, named once: label, the factors that describe it, which
one is the baseline, what each changes against it, its short id (E1, E2, ...), and how a person
names one (:func:`select`).

Every view (``harness envs``, table, crossenv, compare, report, write-up) takes its ids and labels
from :func:`catalogue`, computed over *every* run of the folder, so the same environment has the
same id and label everywhere. Each machine has its baseline: the run closest to the most common
value of every factor, the centre of the study's one-factor-at-a-time design (asv.conf.json);
ids run machine by machine. Labels are unique:
runs that would share one gain what tells them apart (machine, commit, profile).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from harness import vocabulary
from harness.bench import fingerprint
from harness.errors import HarnessError
from harness.results.sidecars import fingerprint_columns

if TYPE_CHECKING:  # pragma: no cover
    from harness.results.reader import Loaded
    from harness.results.runs import RunInfo

#: What a difference in each attribute of an environment is called.
FACTORS = {
    "python": "Python",
    "scanpy": "scanpy release",
    "scikit-learn": "scikit-learn release",
    "numpy": "numpy release",
    "scipy": "scipy release",
    "pca": "PCA implementation",
    # HARNESS_BLAS environments build numpy from source against the implementation, so they
    # also change the numpy build (wheel vs source): the name says so (issue #10 point 7).
    "blas": "BLAS implementation (numpy built from source)",
    "kernel": "OpenBLAS kernel family",
    "coretype": "OPENBLAS_CORETYPE",
    "threads": "BLAS threads",
    "cbwr": "MKL_CBWR",
    # Last: VMs of other CPUs can share a hostname, and so an asv machine name.
    "cpu": "CPU model",
}
#: The columns :func:`describe` gives besides the id and the factors.
DESCRIBED = ("machine", "commit", "env_name", "label", "fp", "baseline", "factor", "change")
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
        "blas": env.get("HARNESS_BLAS") or "numpy wheel's bundled OpenBLAS",
        "kernel": str(cols.get("fp_blas_core") or "-"),
        "coretype": env.get("OPENBLAS_CORETYPE") or "autodetect",
        "threads": UNKNOWN if threads is None else f"{threads}{' (env)' if by_env else ''}",
        "cbwr": env.get("MKL_CBWR") or "-",
        "cpu": str(cols.get("fp_cpu") or UNKNOWN),
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


def different(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The factors (keys of :data:`FACTORS`) in which two environments differ, each cause once."""
    out = [k for k in FACTORS if a.get(k) != b.get(k) and UNKNOWN not in (a.get(k), b.get(k))]
    # A forced kernel family shows as its kernel; the variable alone only when the kernel is equal.
    if "kernel" in out and "coretype" in out:
        out.remove("coretype")
    # A BLAS implementation other than numpy's brings its own kernel (or none).
    if "blas" in out and "kernel" in out:
        out.remove("kernel")
    return out


#: The factor of an environment that changes nothing against the baseline (the null control).
RERUN = "none (rerun)"
#: Its change against the baseline.
RERUN_CHANGE = "rerun, same pins"


def differs(a: dict[str, str], base: dict[str, str]) -> list[str]:
    """The factors in which ``a`` differs from the baseline, named for people."""
    return [FACTORS[k] for k in different(a, base)]


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
    the order ties are broken in, optionally base_label and profile. Runs without a fingerprint
    come last, with no factor.
    """
    rows = [{**r, **attributes(r["fp"] or {})} for r in runs]
    if not rows:
        return pd.DataFrame(columns=["id", *DESCRIBED, *FACTORS])
    bases = {}  # one baseline per machine: each machine's study is its own design
    for machine in sorted({r["machine"] for r in rows}):
        known = [i for i, r in enumerate(rows) if r["fp"] and r["machine"] == machine]
        # A make-bench or scale run beside a machine's study must not become its baseline on a
        # tie: where the machine has study runs, the baseline is one of them.
        known = [i for i in known if rows[i].get("profile") == vocabulary.STUDY_PROFILE] or known
        steered = [
            sum(bool(v) for v in (rows[i]["fp"].get("env_vars") or {}).values()) for i in known
        ]
        if known:
            bases[machine] = known[baseline_index([rows[i] for i in known], steered)]
    for i, row in enumerate(rows):
        base = bases.get(row["machine"])
        row["baseline"] = i == base
        if base is None or not row["fp"]:
            row["factor"], row["change"] = "unknown (no fingerprint)", "-"
        elif i == base:
            row["factor"] = row["change"] = "baseline"
        else:
            factors = differs(row, rows[base])
            row["factor"] = ", ".join(factors) or RERUN
            row["change"] = change(row, rows[base]) if factors else RERUN_CHANGE
    envs = pd.DataFrame(rows)
    order = envs["factor"].map(_factor_rank)
    envs = envs.assign(_o=order).sort_values(["machine", "_o", "factor", "label"], kind="stable")
    envs = envs.drop(columns="_o").reset_index(drop=True)
    envs.insert(0, "id", [vocabulary.env_id(i) for i in range(len(envs))])
    return envs


# --- the folder's catalogue: ids and labels of every run ---------------------------------------


def catalogue(loaded: Loaded) -> pd.DataFrame:
    """Every run of a loaded folder, described (:func:`describe`) under its unique label
    (:func:`unique_labels`; ``base_label`` keeps the fingerprint's); cached on ``loaded``.

    Ties are broken in the order the stability tables list runs: by label, machine, commit and
    asv environment name.
    """
    cached = getattr(loaded, "_catalogue", None)
    if cached is not None:
        return cached
    infos = sorted(loaded.base_infos(), key=lambda i: (i.label, i.machine, i.commit, i.env_name))
    labels = unique_labels(infos)
    runs = [
        {
            "machine": i.machine,
            "commit": i.commit,
            "env_name": i.env_name,
            "label": labels[i.key],
            "base_label": i.label,
            "profile": i.profile,
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


def labelled(loaded: Loaded) -> list[RunInfo]:
    """The folder's runs (:meth:`Loaded.base_infos` order) with their id, unique label and
    factors, so :func:`select` can name them by any of these."""
    rows = {
        (r["machine"], r["commit"], r["env_name"]): r for r in catalogue(loaded).to_dict("records")
    }
    out = []
    for info in loaded.base_infos():
        row = rows[info.key]
        if row["fp"]:
            attrs = {k: str(row[k]) for k in FACTORS}
        else:  # what asv was asked to install is known; the rest is not
            attrs = {**dict.fromkeys(FACTORS, UNKNOWN), **dict(info.packages)}
        out.append(
            dataclasses.replace(
                info,
                ident=row["id"],
                label=row["label"],
                base_label=info.label,
                attrs=tuple(sorted(attrs.items())),
            )
        )
    return out


def _apart_by(what: str) -> Callable[[RunInfo], str | None]:
    fields: dict[str, Callable[[RunInfo], str | None]] = {
        "machine": lambda r: f"machine {r.machine}",
        "commit": lambda r: f"commit {r.commit[:8]}",
        "profile": lambda r: f"profile {r.profile}" if r.profile else None,
        "env_name": lambda r: f"asv environment {r.env_name}",
    }
    return fields[what]


#: What tells two runs with the same label apart, in the order a label gains it.
APART_BY = ("machine", "commit", "profile", "env_name")


def unique_labels(runs: Iterable[RunInfo]) -> dict[Key, str]:
    """Labels that tell runs apart: each group of runs sharing a label gains the fields
    (:data:`APART_BY`) whose values differ within the group, until every label is unique."""
    runs = list(runs)
    out = {r.key: r.label for r in runs}
    for what in APART_BY:
        extra = _apart_by(what)
        groups: dict[str, list[RunInfo]] = defaultdict(list)
        for r in runs:
            groups[out[r.key]].append(r)
        for label, group in groups.items():
            texts = [extra(r) for r in group]
            if len(group) < 2 or len(set(texts)) < 2:
                continue  # a label of its own, or this field does not tell the group apart
            for r, text in zip(group, texts, strict=True):
                out[r.key] = f"{label} · {text}" if text else label
    return out


# --- naming environments: ids, labels, asv names, factors ---------------------------------------

#: What people type for a package in a selector (``sklearn=1.5.2``).
ALIASES = {"sklearn": "scikit-learn", "scikit_learn": "scikit-learn", "sc": "scanpy", "np": "numpy"}
#: Selector keys that name the run itself rather than what it ran.
RUN_KEYS = frozenset({"id", "machine", "commit", "env", "env_name", "label", "profile"})
#: Selector keys that name a factor of :data:`FACTORS` (packages are named by their own name).
FACTOR_KEYS = frozenset({"python", "blas", "kernel", "coretype", "threads", "cbwr", "pca"})
T = TypeVar("T")


def factor_key(key: str) -> str:
    """The factor or package a selector key names ('sklearn' -> 'scikit-learn')."""
    k = key.strip().lower()
    return ALIASES.get(k, k)


_KEYED = re.compile(r"^\s*[A-Za-z_][\w.-]*\s*==?")


def is_keyed(selector: str) -> bool:
    """Whether a selector is ``key=value[,key=value...]`` (a label may hold '=' too:
    'MKL_CBWR=COMPATIBLE', but never as its first word)."""
    parts = [p for p in selector.split(",") if p.strip()]
    return bool(parts) and all(_KEYED.match(p) for p in parts)


def named_factors(selector: str) -> list[str]:
    """The factors and packages a ``key=value`` selector names (the run keys left out)."""
    if not is_keyed(selector):
        return []
    keys = [factor_key(p.partition("=")[0]) for p in selector.split(",") if p.strip()]
    return [k for k in keys if k not in RUN_KEYS]


def is_commit(text: str) -> bool:
    """Whether ``text`` can be a commit hash prefix (4 or more hex digits)."""
    return len(text) >= 4 and all(c in "0123456789abcdef" for c in text.lower())


def numpy_blas(run: RunInfo) -> str:
    """The BLAS numpy ran on, as the fingerprint names it (what scipy's wheel bundles, after
    ';', is not: every environment's scipy brings OpenBLAS)."""
    return str(run.blas or "").split(";")[0].strip()


def _word_prefix(text: str, value: str) -> bool:
    text, value = text.lower(), value.lower()
    return text == value or text.startswith(value + " ")


def _version(have: str | None, want: str) -> bool:
    return have is not None and (have == want or have.startswith(want + "."))


def _part(part: str, run: RunInfo) -> bool:
    """Whether one ``key=value`` part of a selector holds for a run."""
    key, _, value = part.partition("=")
    key, value = factor_key(key), value.strip().lstrip("=").strip()
    attrs = dict(run.attrs)
    if key == "id":
        return (run.ident or "").upper() == value.upper()
    if key == "machine":
        return run.machine == value
    if key == "commit":
        return run.commit.lower().startswith(value.lower())
    if key in ("env", "env_name"):
        return run.env_name == value
    if key == "label":
        return value.lower() in run.label.lower()
    if key == "profile":
        return (run.profile or "") == value
    if key == "blas":  # numpy's BLAS, or the implementation the study asked for (HARNESS_BLAS)
        return (
            _word_prefix(numpy_blas(run), value) or attrs.get("blas", "").lower() == value.lower()
        )
    if key == "threads":
        seen = attrs.get("threads") or ("" if run.threads is None else str(run.threads))
        return seen.split(" ")[0] == value
    if key == "python":
        return _version(run.python, value) or attrs.get("python") == value
    if key in FACTOR_KEYS:
        return _word_prefix(attrs.get(key, ""), value)
    packages = {k.lower(): v for k, v in run.packages}
    return _version(packages.get(key), value)


def _names(run: RunInfo) -> tuple[str | None, ...]:
    return (run.label, run.base_label, run.env_name, run.machine, f"{run.machine}/{run.env_name}")


def matches(selector: str, run: RunInfo) -> bool:
    """Whether a run matches a selector on its own (see :func:`select`, which also accepts a
    label substring when nothing matches)."""
    sel = selector.strip()
    if vocabulary.env_number(sel.upper()) is not None:
        return (run.ident or "").upper() == sel.upper()
    if sel in _names(run):
        return True
    if is_keyed(sel):
        return all(_part(p.strip(), run) for p in sel.split(",") if p.strip())
    return is_commit(sel) and run.commit.lower().startswith(sel.lower())


def _check_keys(selector: str, runs: Sequence[RunInfo]) -> None:
    """HarnessError for a key no run can have (a typo: 'sklaern=1.5.2')."""
    packages = {k.lower() for r in runs for k, _ in r.packages}
    for key in named_factors(selector):
        if key not in FACTOR_KEYS and key not in packages:
            known = sorted(FACTOR_KEYS | RUN_KEYS | packages | set(ALIASES))
            raise HarnessError(
                f"selector {selector!r}: no environment has {key!r}; known keys: {', '.join(known)}"
            )


def select(selector: str, runs: Iterable[T]) -> list[T]:
    """The runs a selector names: the one place that turns a person's name for an environment
    into runs.

    - an id of the folder (``E2``; :func:`labelled` runs carry them);
    - ``key=value[,key=value...]``, every part holding: a package version (``scanpy=1.11.5``,
      ``sklearn=1.5``: a release prefix), ``blas=`` numpy's BLAS (``openblas``, ``mkl``,
      ``atlas``, ``blis``, ``reference``; scipy's bundled OpenBLAS does not count), ``kernel=``,
      ``coretype=``, ``threads=``, ``cbwr=``, ``pca=``, ``python=``, and the run's own
      ``id=``, ``machine=``, ``commit=`` (prefix), ``env=`` (asv's name), ``label=`` (substring),
      ``profile=``;
    - the full label (unique or the fingerprint's), the asv environment name, a machine,
      ``machine/env_name``, or a commit hash prefix (4+ hex digits);
    - else a case-insensitive substring of the label.

    HarnessError when a key names nothing any run has.
    """
    runs = list(runs)
    sel = selector.strip()
    exact = [r for r in runs if sel in _names(r)]  # type: ignore[arg-type]
    if exact:  # a full label or asv name, even one holding '=' or ','
        return exact
    _check_keys(sel, runs)  # type: ignore[arg-type]
    picked = [r for r in runs if matches(sel, r)]  # type: ignore[arg-type]
    if picked or is_keyed(sel) or vocabulary.env_number(sel.upper()) is not None:
        return picked
    return [r for r in runs if sel.lower() in r.label.lower()]  # type: ignore[attr-defined]
