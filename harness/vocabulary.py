"""The project's vocabulary, defined once: checks, verdicts, configuration keys, the environment
id scheme and the sidecar folder names.

Every view (table, crossenv, compare, report, write-up, doctor) imports these names instead of
spelling them again, so a user sees one check, verdict or environment called the same everywhere.
Standard library only: benchmark processes import it before numpy may be loaded
(:mod:`harness.bench.backends` selects the BLAS first).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

# --- the stability checks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One source of variation the suite measures (one ``track_`` benchmark each)."""

    name: str
    varies: str
    #: The very same call repeated: any deviation means non-determinism.
    identical_call: bool = False
    #: Part of the default verdict ("does the same call give the same numbers again, here").
    verdict: bool = False


CHECK_INFO: tuple[Check, ...] = (
    Check("repeat", "5 identical calls in one process", identical_call=True, verdict=True),
    Check("process", "the same call in two fresh interpreters", identical_call=True, verdict=True),
    Check("threads", "1 vs 2 vs all BLAS threads", verdict=True),
    Check("seed", "random_state 123 vs 0"),
    Check("layout", "CSR vs dense input"),
    Check("dtype", "float32 vs float64 input"),
    Check("accuracy", "against a float64 eigh of the exact covariance"),
)
CHECKS: tuple[str, ...] = tuple(c.name for c in CHECK_INFO)
#: Checks the table's verdict is taken over by default.
VERDICT_CHECKS: tuple[str, ...] = tuple(c.name for c in CHECK_INFO if c.verdict)
#: Checks that repeat the very same call.
IDENTICAL_CALLS: tuple[str, ...] = tuple(c.name for c in CHECK_INFO if c.identical_call)
#: Checks inside one environment that the write-up reports per environment.
WITHIN_ENV: tuple[str, ...] = VERDICT_CHECKS

#: Identical calls of the dask suite's repeat check (a call on a million cells takes minutes).
DASK_REPEATS = 3
#: The dask suite's checks (issue #13; benchmarks/dask.py, harness.bench.dask_stability).
DASK_CHECK_INFO: tuple[Check, ...] = (
    Check(
        "repeat",
        f"{DASK_REPEATS} identical calls in one process",
        identical_call=True,
        verdict=True,
    ),
    Check("process", "the same call in two fresh interpreters", identical_call=True, verdict=True),
    Check("chunks", "the default row-chunk size vs the dataset's others"),
    Check("scheduler", "threaded scheduler vs a LocalCluster of 1 worker x 2 threads"),
    Check("workers", "LocalCluster of 2 workers x 1 thread vs 1 worker x 2 threads"),
    Check("memory", "dask vs the same solver on the in-memory matrix"),
)

# --- verdicts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One verdict a check can get: its name, how tables mark it, and what it means."""

    name: str
    mark: str
    css: str
    #: The exact PCA up to rounding (what the write-up's "fastest exact" configuration needs).
    exact: bool
    meaning: str


#: Ordered from best to worst; every view takes names, marks and colours from here.
VERDICT_INFO: tuple[Verdict, ...] = (
    Verdict("bitwise", "", "v-bitwise", True, "every compared output has identical bits"),
    Verdict(
        "sign only",
        " s",
        "v-sign",
        True,
        "identical bits once some components' signs are flipped (a sign convention)",
    ),
    Verdict(
        "within rounding",
        "",
        "v-rounding",
        True,
        "both results are eigenpairs of the exact covariance to within their rounding, and every "
        "component moved less than the Davis-Kahan bound of that rounding allows",
    ),
    Verdict(
        "explained",
        " ~",
        "v-spectrum",
        True,
        "as within rounding, but some components lie in a cluster of near-equal eigenvalues: "
        "they rotate inside its subspace, which agrees within the bound",
    ),
    Verdict(
        "undetermined",
        " ?",
        "v-undetermined",
        False,
        "both are rounding-level eigenpairs, but the spectrum cannot pin some component down "
        "(its gap is at the rounding level): sin theta <= 1 says nothing",
    ),
    Verdict(
        "unclassified",
        " *",  # not undetermined's "?": one mark per verdict
        "v-unclassified",
        False,
        "the outputs differ and no record says whether rounding explains it",
    ),
    Verdict(
        "beyond rounding",
        " !",
        "v-unstable",
        False,
        "a result is not an eigenpair of the exact covariance to within its rounding (an "
        "unconverged solver, another input or algorithm), or a component moved beyond the bound",
    ),
)
VERDICTS: tuple[str, ...] = tuple(v.name for v in VERDICT_INFO)
BY_VERDICT: dict[str, Verdict] = {v.name: v for v in VERDICT_INFO}
#: Verdicts that mean "the exact PCA up to rounding".
EXACT: tuple[str, ...] = tuple(v.name for v in VERDICT_INFO if v.exact)
#: States of a check that produced no number (not verdicts: nothing was compared).
NO_NUMBER: tuple[str, ...] = ("skipped", "failed")

# --- configurations and benchmarks ----------------------------------------------------------------

#: The parameters that name one PCA configuration, as the benchmarks call them.
CONFIG_KEYS: tuple[str, ...] = ("dataset", "layout", "dtype", "svd_solver")
#: The same keys as tables show them (``svd_solver`` is "solver" there).
CONFIG_COLUMNS: tuple[str, ...] = ("dataset", "layout", "dtype", "solver")
#: Parameters a stability record carries.
RECORD_PARAMS: tuple[str, ...] = (*CONFIG_KEYS, "threads")
RUNTIME = "time_pca"
PEAKMEM = "peakmem_pca"

# --- environments ---------------------------------------------------------------------------------

ENV_ID_PREFIX = "E"
_ENV_ID = re.compile(rf"^{ENV_ID_PREFIX}(\d+)$")


def env_id(index: int) -> str:
    """The short id of the environment at position ``index`` (0-based) of the id order."""
    return f"{ENV_ID_PREFIX}{index + 1}"


def env_number(ident: str) -> int | None:
    """The number of an id ('E12' -> 12), or None when ``ident`` is not an id."""
    m = _ENV_ID.match(str(ident).strip())
    return int(m.group(1)) if m else None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), which is what BLAS uses."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


#: Calls of the stability suite's repeat check (one process, 1 BLAS thread).
REPEATS = 5
#: The BLAS thread counts the threads check compares: 1, 2 and every usable core.
THREAD_COUNTS = tuple(sorted({1, 2, usable_cores()}))


# --- where the harness keeps its files beside asv's -----------------------------------------------

HARNESS_DIR = "harness"
STUDY_DIR = "study"
#: The benchmark profile of the published study's runs (one of harness.bench.datasets.PROFILES).
STUDY_PROFILE = "study"
#: The digests' anchors, one folder per machine (harness.bench.digests): not a run folder either.
ANCHORS_DIR = "anchors"
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def env_key(env_name: str) -> str:
    """A folder-safe name for an environment; long names are hashed as asv does for its files."""
    if len(env_name) >= 100:
        return "env-" + hashlib.md5(env_name.encode()).hexdigest()
    return _SAFE.sub("_", env_name)


def run_folder_name(commit: str, env_name: str) -> str:
    """``<commit[:8]>-<env>``: the sidecar folder (and failure record) name of one run."""
    return f"{commit[:8]}-{env_key(env_name)}"


# --- appended -------------------------------------------------------------------------------------

#: Each verdict by name, so views compare with a constant rather than a spelled-out string.
BITWISE, SIGN_ONLY, WITHIN_ROUNDING, EXPLAINED, UNDETERMINED, UNCLASSIFIED, BEYOND = VERDICTS

#: The columns that name one run: one asv results file, one sidecar folder.
RUN_KEY: tuple[str, str, str] = ("machine", "commit", "env_name")

#: Seconds one ``harness doctor`` child process (a PCA run, a run of the user's script) may run.
DOCTOR_TIMEOUT = 1800.0

#: A file written this close (ns) before the entry may change again within the same mtime
#: tick: it is parsed again rather than trusted (git's "racy" files).
RACY_NS = 2_000_000_000
