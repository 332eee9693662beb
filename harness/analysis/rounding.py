r"""Is the difference between two PCA results rounding? Per-component verdicts against the exact
covariance of the input, with a-posteriori bounds (issue #10).

The reference is the exact problem: the float64 covariance C of the input and *all* its
eigenvalues (so the last component's gap is two-sided). Each result is judged on its own first:

- its **residuals** r_i = ||C v_i - theta_i v_i|| (theta_i = v_i^T C v_i, v_i the unit loading
  vector) say how far it is from an eigenpair of C. By the Davis-Kahan residual theorem
  (Parlett, *The Symmetric Eigenvalue Problem*, Thm 11.7.1; Davis & Kahan 1970),
  sin angle(v_i, exact eigenvector) <= r_i / delta_i, where delta_i is the distance from theta_i to
  the other eigenvalues; for a cluster of components, sin Theta <= ||R||_F / delta_cluster.
- a residual is **rounding** when r_i <= SAFETY * rho, with rho the rounding level of the
  solver's computation path (:func:`rounding_level`, :func:`harness.bench.support.computation_path`).

A pair is then classified per component, in :data:`VERDICTS` order:

``bitwise``          the component's loadings and embedding have identical bits;
``sign only``        identical bits once its sign is flipped;
``within rounding``  both residuals are rounding, the component is separated from its
                     neighbours (bound < 1/SAFETY) and the two vectors agree within the bound;
``explained``        both are rounding, the component lies in a cluster of near-degenerate
                     eigenvalues whose *subspace* is determined (cluster bound < 1/SAFETY): the
                     vectors may rotate inside it, and the cluster subspaces agree within the bound;
``undetermined``     both are rounding but the spectrum cannot pin the component down (its bound,
                     or its cluster's, is 1/SAFETY or more, e.g. a cluster that continues past the
                     last computed component): sin theta <= 1 says nothing;
``beyond rounding``  a residual is more than rounding (an unconverged solver, a different input or
                     algorithm), or the vectors differ by more than the bound allows.

Where the rounding levels come from (u the unit roundoff of the computation, n = n_obs,
lambda_1 = ||C||, G = || |X|^T |X| || / (n - 1), the uncentred second moment):

- "gram" paths (covariance_eigh; sparse solvers, which centre implicitly) form or apply X^T X and
  subtract n mu mu^T: a sum of n products per entry, so |E| <= gamma_n |X|^T|X| / (n - 1)
  (Higham, *Accuracy and Stability*, 2nd ed., eq. 3.13), about sqrt(n) u G under the
  probabilistic model (Higham & Mary 2019); plus the eigensolver's backward error
  sqrt(n_vars) u lambda_1. rho_gram = sqrt(n) u G + sqrt(n_vars) u lambda_1.
- "centred" paths (dense arpack, full, randomized) form X - mu (error F with |F| <= 2u|X|,
  perturbing C by at most 2 ||X_c|| ||F|| / (n - 1) = 4 u sqrt(lambda_1 G)) and take a
  backward-stable SVD of it (E_C ~ 2 sqrt(n_vars) u lambda_1).
  rho_centred = 4 u sqrt(lambda_1 G) + 2 sqrt(n_vars) u lambda_1.
- storing the loadings in their dtype adds u_out lambda_1.
- the reference C is itself formed in float64 (a "gram" path at u = 2^-53): its rounding adds to
  every result's (:attr:`Problem.rho`).

These are models, not proofs: :mod:`harness.analysis.calibration` measures how often each verdict
is right on planted spectra and perturbations of known size, and the tests assert those rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.linalg import subspace_angles

from harness.analysis.metrics import component_sin_theta

Verdict = Literal[
    "bitwise", "sign only", "within rounding", "explained", "undetermined", "beyond rounding"
]
VERDICTS: tuple[Verdict, ...] = (
    "bitwise",
    "sign only",
    "within rounding",
    "explained",
    "undetermined",
    "beyond rounding",
)
#: Verdicts that mean "the same PCA up to rounding" (undetermined is neither: it cannot tell).
ROUNDING: tuple[Verdict, ...] = ("bitwise", "sign only", "within rounding", "explained")
#: Slack on every model: a residual up to SAFETY * rho is rounding; a bound must be below
#: 1 / SAFETY to decide anything. 10 covers the O(1) constants the probabilistic models leave out.
SAFETY = 10.0


@dataclass(frozen=True)
class Problem:
    """The exact problem a result is judged against: the input's float64 covariance."""

    cov: np.ndarray  # n_vars x n_vars
    values: np.ndarray  # every eigenvalue of cov, descending
    gram_scale: float  # G = || |X|^T |X| ||_2 / (n_obs - 1)
    n_obs: int

    @property
    def rho(self) -> float:
        """The rounding of this reference itself (a float64 Gram): residuals below it are noise."""
        return rounding_level(self, "gram", float(np.finfo(np.float64).eps) / 2)

    @property
    def n_vars(self) -> int:
        return int(self.cov.shape[0])

    @property
    def lambda1(self) -> float:
        return float(max(self.values[0], 0.0)) if self.values.size else 0.0


def problem_of(x) -> Problem:
    """The exact covariance of ``x`` (dense or sparse, any float dtype), in float64."""
    x64 = x.astype(np.float64)
    mean = np.asarray(x64.mean(axis=0)).ravel()
    return problem_from_gram(_gram(x64), mean, x.shape[0], _gram(abs(x64)))


def problem_of_blocks(blocks: Iterable) -> Problem:
    """:func:`problem_of` of the rows of ``blocks`` stacked, one block in memory at a time: the
    float64 Gram and column sums are accumulated block by block (a dask array's chunks)."""
    gram = abs_gram = sums = None
    n = 0
    for block in blocks:
        b64 = block.astype(np.float64)
        g = _gram(b64)
        if gram is None:
            gram, sums = np.zeros_like(g), np.zeros(g.shape[0])
        if abs_gram is None and b64.min() < 0:
            # Every block so far was non-negative, so |X|^T |X| = X^T X up to here.
            abs_gram = gram.copy()
        gram += g
        if abs_gram is not None:
            abs_gram += _gram(abs(b64))
        sums += np.asarray(b64.sum(axis=0)).ravel()
        n += block.shape[0]
    if gram is None or sums is None:
        raise ValueError("no blocks: nothing to build the exact problem from")
    return problem_from_gram(gram, sums / n, n, gram if abs_gram is None else abs_gram)


def problem_from_gram(gram: np.ndarray, mean: np.ndarray, n_obs: int, abs_gram) -> Problem:
    """The exact problem from X^T X, the column means and |X|^T |X| (all float64)."""
    cov = (np.asarray(gram) - n_obs * np.outer(mean, mean)) / (n_obs - 1)
    cov = (cov + cov.T) / 2
    values = np.linalg.eigvalsh(cov)[::-1]
    # |X|^T |X| is symmetric with non-negative entries: its 2-norm is its largest eigenvalue.
    g = float(np.linalg.eigvalsh(np.asarray(abs_gram))[-1]) / (n_obs - 1)
    return Problem(cov=cov, values=values, gram_scale=g, n_obs=n_obs)


def _gram(x) -> np.ndarray:
    """X^T X as a dense array (``x`` dense or sparse)."""
    return (x.T @ x).toarray() if sparse.issparse(x) else np.asarray(x.T @ x)


def rounding_level(problem: Problem, path: str, u: float, u_out: float | None = None) -> float:
    """rho: the size of E (||E||_2 on the covariance) a backward-stable solve on ``path`` makes."""
    lam1, g = problem.lambda1, problem.gram_scale
    solve = math.sqrt(problem.n_vars) * u * lam1
    if path == "gram":
        rho = math.sqrt(problem.n_obs) * u * g + solve
    elif path == "centred":
        rho = 4 * u * math.sqrt(lam1 * g) + 2 * solve
    else:
        raise ValueError(f"unknown computation path {path!r}")
    return rho + (u if u_out is None else u_out) * lam1


def residuals(problem: Problem, loadings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per component: (||C v - theta v||, theta) of the unit-normalised loading vector v."""
    v = np.asarray(loadings, np.float64)
    norms = np.linalg.norm(v, axis=0)
    v = v / np.where(norms == 0, 1.0, norms)
    cv = problem.cov @ v
    theta = np.einsum("ij,ij->j", v, cv)
    return np.linalg.norm(cv - v * theta, axis=0), theta


def _distance_to_others(values: np.ndarray, theta: float, i: int) -> float:
    """Distance from theta to every exact eigenvalue but the i-th."""
    others = np.delete(values, i)
    return float(np.abs(others - theta).min(initial=np.inf))


def clusters(values: np.ndarray, k: int, eps: float) -> list[range]:
    """The first ``k`` components grouped where neighbouring exact eigenvalues are closer than
    SAFETY * eps (the pair cannot be told apart under a perturbation of size eps)."""
    out, start = [], 0
    for i in range(k):
        nxt = values[i + 1] if i + 1 < values.size else -np.inf
        if values[i] - nxt > SAFETY * eps or i + 1 == k:
            out.append(range(start, i + 1))
            start = i + 1
    return out


def _gap_after(values: np.ndarray, c: range) -> float:
    below = values[c.stop] if c.stop < values.size else -np.inf
    above = values[c.start - 1] if c.start > 0 else np.inf
    return float(min(above - values[c.start], values[c.stop - 1] - below))


@dataclass(frozen=True)
class Judgement:
    """The per-component verdicts of a pair, with the numbers behind them."""

    verdicts: list[Verdict]
    sin_theta: list[float]  # between the two loading vectors
    bound: list[float]  # what rounding allows for that angle (inf: undetermined)
    residual_a: list[float]  # r_i / rho_a: rounding when <= SAFETY
    residual_b: list[float]
    rho_a: float
    rho_b: float

    def count(self, verdict: Verdict) -> int:
        return self.verdicts.count(verdict)

    @property
    def worst(self) -> Verdict:
        """The pair's verdict: its worst component's, in :data:`VERDICTS` order."""
        return max(self.verdicts, key=VERDICTS.index, default="bitwise")

    def counts(self) -> dict[str, int]:
        """How many components got each verdict (only those that occur), in VERDICTS order."""
        return {v: n for v in VERDICTS if (n := self.verdicts.count(v))}

    @property
    def beyond_cause(self) -> BeyondCause | None:
        """Why the pair is beyond rounding (:func:`beyond_cause`), None when it is not."""
        return beyond_cause(self.verdicts, self.residual_a, self.residual_b)


#: Why a pair is "beyond rounding", from its components' residuals. "both approximate": neither
#: result is an eigenpair of the exact covariance to within rounding (randomized, an unconverged
#: iteration), so the exact problem cannot say whether their *difference* is rounding: a 1 vs 2
#: thread run of the same randomized solve is beyond rounding with deviations of 1e-7.
BeyondCause = Literal["both approximate", "one approximate", "moved beyond the bound"]
BEYOND_CAUSES: tuple[BeyondCause, ...] = (
    "both approximate",
    "one approximate",
    "moved beyond the bound",
)


def beyond_cause(
    verdicts: Sequence[str | None],
    residual_a: Sequence[float | None],
    residual_b: Sequence[float | None],
) -> BeyondCause | None:
    """The cause of a pair's beyond-rounding components (residuals as ratios to rounding, as
    records keep them; None = infinite): the least benign cause among them, None if none is."""
    causes = set()
    for v, ra, rb in zip(verdicts, residual_a, residual_b, strict=True):
        if v != "beyond rounding":
            continue
        off = [r is None or r > SAFETY for r in (ra, rb)]
        causes.add(
            BEYOND_CAUSES[0] if all(off) else BEYOND_CAUSES[1] if any(off) else BEYOND_CAUSES[2]
        )
    return max(causes, key=BEYOND_CAUSES.index, default=None)


def _sin(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(a, b):
        return 0.0
    return float(np.sin(subspace_angles(a, b).max()))


def judge(
    problem: Problem,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    rho_a: float,
    rho_b: float,
) -> Judgement:
    """Classify each component of result ``b`` against result ``a`` (each (loadings, embedding))."""
    la, ea = (np.asarray(x) for x in a)
    lb, eb = (np.asarray(x) for x in b)
    ra, _ = residuals(problem, la)
    rb, _ = residuals(problem, lb)
    return judge_columns(
        problem.values, problem.rho, (la, ra, rho_a), (lb, rb, rho_b), identity(la, ea, lb, eb)
    )


def identity(la: np.ndarray, ea: np.ndarray, lb: np.ndarray, eb: np.ndarray) -> list[str | None]:
    """Per component: "bitwise", "sign only" (identical bits once negated) or None."""
    out: list[str | None] = []
    for i in range(la.shape[1]):
        if _same(la[:, i], lb[:, i]) and _same(ea[:, i], eb[:, i]):
            out.append("bitwise")
        elif _same(la[:, i], -lb[:, i]) and _same(ea[:, i], -eb[:, i]):
            out.append("sign only")
        else:
            out.append(None)
    return out


def judge_columns(
    values: np.ndarray,
    ref_rho: float,
    a: tuple[np.ndarray, np.ndarray, float],
    b: tuple[np.ndarray, np.ndarray, float],
    same: list[str | None],
) -> Judgement:
    """:func:`judge` from what a digest keeps: the exact spectrum and the reference's rounding,
    per result (full loadings, residuals against the exact covariance, rounding level), and
    per component whether the two are bitwise or sign-only equal (from column hashes)."""
    la, ra, rho_a = a
    lb, rb, rho_b = b
    k = la.shape[1]
    # The reference is itself a float64 rounding of C: its error adds to every residual and
    # makes the exact gaps uncertain by as much.
    rho_a, rho_b = rho_a + ref_rho, rho_b + ref_rho
    eps = rho_a + rho_b
    verdicts: list[Verdict] = []
    sins, bounds = [], []
    member = {i: c for c in clusters(values, k, eps) for i in c}
    sin_all = component_sin_theta(la, lb)  # one vectorised pass (#14)
    for i in range(k):
        sin_i = float(sin_all[i])
        sins.append(sin_i)
        c = member[i]
        # Davis-Kahan with the perturbed gap: the gap of the exact spectrum less ||E||.
        gap = _gap_after(values, c) - eps
        bound = eps / gap if gap > 0 else math.inf
        bounds.append(bound)
        verdicts.append(
            same[i] or _verdict(i, c, la, lb, ra[i] / rho_a, rb[i] / rho_b, sin_i, bound)
        )
    return Judgement(
        verdicts=verdicts,
        sin_theta=sins,
        bound=bounds,
        residual_a=(np.asarray(ra) / rho_a).tolist(),
        residual_b=(np.asarray(rb) / rho_b).tolist(),
        rho_a=rho_a,
        rho_b=rho_b,
    )


def _verdict(
    i: int,
    c: range,
    la: np.ndarray,
    lb: np.ndarray,
    res_a: float,
    res_b: float,
    sin_i: float,
    bound: float,
) -> Verdict:
    if res_a > SAFETY or res_b > SAFETY:
        return "beyond rounding"
    if SAFETY * bound >= 1:
        return "undetermined"
    if len(c) == 1:
        return "within rounding" if sin_i <= SAFETY * bound else "beyond rounding"
    cols = list(c)
    sub = _sin(la[:, cols].astype(np.float64), lb[:, cols].astype(np.float64))
    return "explained" if sub <= SAFETY * bound else "beyond rounding"


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
