"""How often the rounding verdicts (:mod:`harness.analysis.rounding`) are right: a grid of
matrices with a planted spectrum, each solved by scikit-learn's real PCA and then changed in a way
whose answer is known by construction.

Spectra: well separated, near-degenerate pairs (relative gap 1e-9: below what float32 rounding
can tell apart, above float64's), exactly degenerate triples, rank-deficient (rank below the number of components) and a
continuum like the trailing PCs of real data. Changes with a known answer:

=====================  ===========  ===================================================
change                 truth        how
=====================  ===========  ===================================================
dtype                  rounding     float32 input against float64 input (arpack, and
                                    covariance_eigh: the uncentred Gram in float32)
solver                 rounding     another exact solver (full, covariance_eigh, arpack)
seed                   rounding     arpack with another random_state
rounding noise         rounding     X + E, |E_ij| = u |X_ij| (a rounding of the input)
degenerate rotation    rounding     a rotation inside an exactly degenerate eigenspace
sign flip              sign only    every other component negated
input change           beyond       X + E with ||E|| = 1e-4 or 1e-9 ||X||: another input
stopped early          beyond       randomized with no power iteration, arpack with tol 1e-2
rotation               beyond       two separated components rotated by 1e-3 rad
=====================  ===========  ===================================================

For the solvers stopped early, a component counts as beyond rounding only when its angle to the
exact eigenvector exceeds 1e3 times what rounding allows (its own error is measured, not assumed),
and only on the separated spectrum, where that angle is defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg import subspace_angles

from harness.analysis import rounding
from harness.analysis.rounding import Problem

N_OBS, N_VARS, K = 600, 40, 12
SPECTRA = ("separated", "near-degenerate", "degenerate", "rank-deficient", "continuum")
Truth = str  # "rounding" | "sign only" | "beyond"


@dataclass(frozen=True)
class Result:
    """Loadings (n_vars x k), embedding (n_obs x k) and the computation path that made them."""

    loadings: np.ndarray
    embedding: np.ndarray
    path: str
    u: float


def spectrum(kind: str, n_vars: int = N_VARS) -> np.ndarray:
    """Planted covariance eigenvalues, descending."""
    lam = 10.0 * 0.7 ** np.arange(n_vars)
    if kind == "near-degenerate":
        lam[1::2] = lam[0::2][: lam[1::2].size] * (1 - 1e-9)
    elif kind == "degenerate":
        for start in range(0, n_vars - 2, 3):
            lam[start + 1 : start + 3] = lam[start]
    elif kind == "rank-deficient":
        lam[K // 2 :] = 0.0
    elif kind == "continuum":
        lam[3:] = 1.0 + 1e-3 * np.linspace(1, 0, n_vars - 3)
    elif kind != "separated":
        raise ValueError(f"unknown spectrum {kind!r}")
    return lam


def planted(kind: str, seed: int = 0) -> np.ndarray:
    """X (n_obs x n_vars, float64) whose centred covariance has exactly :func:`spectrum` (up to
    rounding), offset by a positive mean like count data (so the uncentred scale exceeds lambda_1)."""
    rng = np.random.default_rng(seed)
    q_obs, _ = np.linalg.qr(rng.standard_normal((N_OBS, N_VARS)))
    q_obs -= q_obs.mean(axis=0)  # centred columns: the planted spectrum is the covariance's
    q_obs, _ = np.linalg.qr(q_obs)
    q_var, _ = np.linalg.qr(rng.standard_normal((N_VARS, N_VARS)))
    scale = np.sqrt(spectrum(kind) * (N_OBS - 1))
    return (q_obs * scale) @ q_var.T + rng.uniform(2.0, 6.0, N_VARS)


def solve(x: np.ndarray, solver: str = "arpack", seed: int = 0, **kw: object) -> Result:
    """scikit-learn's PCA of ``x`` with ``K`` components (what scanpy calls on dense input)."""
    from sklearn.decomposition import PCA  # 1 s to import; the write-up reads only rates()

    pca = PCA(n_components=K, svd_solver=solver, random_state=seed, **kw)
    emb = pca.fit_transform(x)
    path = "gram" if solver == "covariance_eigh" else "centred"
    return Result(pca.components_.T, emb, path, float(np.finfo(x.dtype).eps) / 2)


@dataclass(frozen=True)
class Case:
    """One planted change: the result it gives and the truth per component."""

    spectrum: str
    change: str
    b: Result
    truth: list[Truth]


def _all(truth: Truth) -> list[Truth]:
    return [truth] * K


def _rotated(r: Result, i: int, j: int, angle: float) -> Result:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.eye(K)
    rot[[i, i, j, j], [i, j, i, j]] = [c, -s, s, c]
    return Result(r.loadings @ rot, r.embedding @ rot, r.path, r.u)


def _stopped_truth(problem: Problem, r: Result) -> list[Truth]:
    """Beyond where the angle to the exact eigenvector exceeds 1e3x what rounding allows."""
    _, vectors = np.linalg.eigh(problem.cov)
    exact = vectors[:, ::-1][:, :K]
    rho = rounding.rounding_level(problem, r.path, r.u)
    gaps = -np.diff(problem.values)[: K + 1]
    gap = np.minimum(np.r_[np.inf, gaps[: K - 1]], gaps[:K])
    out = []
    for i in range(K):
        # sqrt(1 - cos^2) loses everything below sqrt(eps): principal angles do not.
        sin = float(np.sin(subspace_angles(exact[:, [i]], r.loadings[:, [i]]).max()))
        out.append("beyond" if sin > 1e3 * rho / gap[i] else "rounding")
    return out


def cases(kind: str, x: np.ndarray, problem: Problem, a: Result) -> Iterator[Case]:
    """Every planted change of one matrix."""
    rng = np.random.default_rng(1)
    x32 = x.astype(np.float32)
    yield Case(kind, "dtype", solve(x32), _all("rounding"))
    yield Case(kind, "dtype, covariance_eigh", solve(x32, "covariance_eigh"), _all("rounding"))
    for solver in ("full", "covariance_eigh"):
        yield Case(kind, f"solver {solver}", solve(x, solver), _all("rounding"))
    yield Case(kind, "seed", solve(x, seed=7), _all("rounding"))
    noise = x * (1 + rng.choice([-1.0, 1.0], x.shape) * np.finfo(np.float64).eps / 2)
    yield Case(kind, "rounding noise", solve(noise), _all("rounding"))
    flip = np.where(np.arange(K) % 2 == 1, -1.0, 1.0)
    signs = Result(a.loadings * flip, a.embedding * flip, a.path, a.u)
    yield Case(kind, "sign flip", signs, ["sign only" if f < 0 else "bitwise" for f in flip])
    if kind == "degenerate":
        truth = ["rounding" if i < 2 else "bitwise" for i in range(K)]
        yield Case(kind, "degenerate rotation", _rotated(a, 0, 1, 0.5), truth)
    for size in (1e-4, 1e-9):
        yield Case(kind, f"input change {size:.0e}", solve(_bumped(x, size, rng)), _all("beyond"))
    if kind == "separated":
        rotated = _rotated(a, 2, 3, 1e-3)
        truth = ["beyond" if i in (2, 3) else "bitwise" for i in range(K)]
        yield Case(kind, "rotation", rotated, truth)
        for name, r in (
            (
                "stopped early: randomized",
                solve(x, "randomized", iterated_power=0, n_oversamples=2),
            ),
            ("stopped early: arpack tol 1e-2", solve(x, "arpack", tol=1e-2)),
        ):
            yield Case(kind, name, r, _stopped_truth(problem, r))


def _bumped(x: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    """X + E with a random E of spectral norm ``size`` * ||X||."""
    bump = rng.standard_normal(x.shape)
    return x + bump * (size * np.linalg.norm(x, 2) / np.linalg.norm(bump, 2))


def sensitivity(
    sizes: tuple[float, ...] = (1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9),
    seeds: tuple[int, ...] = (0, 1),
) -> pd.DataFrame:
    """Share of components called beyond rounding after an input change of each relative size
    (float64, arpack): where between rounding and a real change the verdict switches."""
    rows = []
    for kind in SPECTRA:
        for seed in seeds:
            x = planted(kind, seed)
            problem, a = rounding.problem_of(x), solve(x)
            rng = np.random.default_rng(2)
            for size in sizes:
                v = _verdicts(problem, a, solve(_bumped(x, size, rng)))
                rows.append({"spectrum": kind, "seed": seed, "size": size,
                             "beyond": v.count("beyond rounding") / len(v)})  # fmt: skip
    return pd.DataFrame(rows).groupby("size", as_index=False)["beyond"].mean()


def _verdicts(problem: Problem, a: Result, b: Result) -> list[str]:
    rho_a = rounding.rounding_level(problem, a.path, a.u)
    rho_b = rounding.rounding_level(problem, b.path, b.u)
    j = rounding.judge(problem, (a.loadings, a.embedding), (b.loadings, b.embedding), rho_a, rho_b)
    return list(j.verdicts)


def grid(
    seeds: tuple[int, ...] = (0, 1), progress: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """One row per (spectrum, seed, change, component): truth and verdict."""
    rows = []
    for kind in SPECTRA:
        for seed in seeds:
            x = planted(kind, seed)
            problem = rounding.problem_of(x)
            a = solve(x)
            for case in cases(kind, x, problem, a):
                if progress:
                    progress(f"{kind} {seed} {case.change}")
                for i, (t, v) in enumerate(
                    zip(case.truth, _verdicts(problem, a, case.b), strict=True)
                ):
                    rows.append({"spectrum": kind, "seed": seed, "change": case.change,
                                 "component": i + 1, "truth": t, "verdict": v})  # fmt: skip
    return pd.DataFrame(rows)


#: What each verdict claims about the truth.
CLAIMS = {
    "bitwise": "bitwise",
    "sign only": "sign only",
    "within rounding": "rounding",
    "explained": "rounding",
    "undetermined": None,  # claims nothing
    "beyond rounding": "beyond",
}


def rates(g: pd.DataFrame) -> pd.DataFrame:
    """Per verdict: how often it was given, and its false-positive and false-negative rates.

    False positive: the verdict given where the truth is another class (share of the components
    whose truth is not the verdict's class). False negative: the verdict's class is the truth but
    a verdict of another class was given (share of the components of that class; undetermined,
    which claims no class, is not counted as wrong: its own row gives how often it was given).
    """
    rows = []
    for verdict, claim in CLAIMS.items():
        given = g["verdict"] == verdict
        if claim is None:
            rows.append({"verdict": verdict, "given": int(given.sum()),
                         "false_positive": math.nan, "false_negative": math.nan,
                         "of_rounding": float(given[g["truth"] == "rounding"].mean()),
                         "of_beyond": float(given[g["truth"] == "beyond"].mean())})  # fmt: skip
            continue
        truth = g["truth"] == claim
        # Undetermined is not wrong, only uninformative: it is counted on its own row.
        same_class = (g["verdict"].map(CLAIMS) == claim) | (g["verdict"] == "undetermined")
        rows.append({
            "verdict": verdict,
            "given": int(given.sum()),
            "false_positive": float((given & ~truth).sum() / max(1, (~truth).sum())),
            "false_negative": float((truth & ~same_class).sum() / max(1, truth.sum())),
            "of_rounding": float(given[g["truth"] == "rounding"].mean()),
            "of_beyond": float(given[g["truth"] == "beyond"].mean()),
        })  # fmt: skip
    return pd.DataFrame(rows)
