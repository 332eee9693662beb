"""What ``harness doctor`` runs and finds: the user's call, one variation of it, one comparison.

The report that collects them, :class:`harness.doctor.api.DoctorReport`, lives with ``doctor()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.render import formats

PCA_SOLVERS = ("arpack", "randomized", "full", "covariance_eigh")
TSVD_SOLVERS = ("arpack", "randomized")
KNOWN_SOLVERS = (*PCA_SOLVERS, "auto", "lobpcg")
#: Neighbours of the kNN comparison (scanpy's pp.neighbors default), fewer on tiny data.
N_NEIGHBORS = 15


def n_neighbors(n_obs: int) -> int:
    """Neighbours of the kNN comparison: 15, or every other cell when there are fewer than 16."""
    return max(1, min(N_NEIGHBORS, n_obs - 1))


def pcs(values: Sequence[int]) -> str:
    """'PCs 3-5, 9' for [3, 4, 5, 9]."""
    return ("PC " if len(values) == 1 else "PCs ") + formats.ranges(values)


@dataclass(frozen=True)
class Variation:
    """One run of the user's call: the baseline, a repeat, or one factor changed."""

    name: str
    factor: str
    label: str
    solver: str | None
    random_state: int | None
    threads: int | None = None
    dtype: str | None = None
    layout: str | None = None


@dataclass(frozen=True)
class Call:
    """The user's ``sc.pp.pca`` arguments, and the solver scanpy resolves them to."""

    n_comps: int
    svd_solver: str | None
    resolved_solver: str
    random_state: int | None
    zero_center: bool
    layer: str | None
    mask_var: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    def python(self) -> str:
        """The call as the user would type it."""
        args = [
            f"n_comps={self.n_comps}",
            f"svd_solver={self.svd_solver!r}",
            f"random_state={self.random_state!r}",
        ]
        if not self.zero_center:
            args.append("zero_center=False")
        if self.layer is not None:
            args.append(f"layer={self.layer!r}")
        if self.mask_var is not None:
            args.append(f"mask_var={self.mask_var!r}")
        args += [f"{k}={v!r}" for k, v in self.extra.items()]
        return f"sc.pp.pca(adata, {', '.join(args)})"


@dataclass(frozen=True)
class Effect:
    """One variation compared with the baseline (``skipped`` says why it has no numbers).

    ``null_components`` counts the trailing PCs beyond the input's numerical rank: they span a
    null space, so their per-PC numbers are left out of every deviation and count here.
    ``same_as_previous`` (later repeats only): bitwise equal to the repeat before it.
    ``verdict``: the calibrated verdict of the pair (its worst component's), ``verdict_counts``
    the components per verdict, ``judgement`` the per-component record
    (:func:`harness.bench.verdicts.judgement_record`); ``not_judged`` says why there is none.
    ``rounding_level``: the verdict says "the same PCA up to rounding" (bitwise to explained).
    """

    name: str
    factor: str
    label: str
    bitwise: bool | None = None
    knn_jaccard: float | None = None
    leiden_ari: float | None = None
    max_abs_diff: float | None = None
    aligned_max_abs_diff: float | None = None
    aligned_max_rel_diff: float | None = None
    angle_k10_deg: float | None = None
    angle_all_deg: float | None = None
    sig_digits_min: float | None = None
    verdict: str | None = None
    verdict_counts: dict[str, int] | None = None
    not_judged: str | None = None
    null_components: int = 0
    rounding_level: bool | None = None
    same_as_previous: bool | None = None
    seconds: float | None = None
    skipped: str | None = None
    comparison: dict[str, Any] | None = None
    judgement: dict[str, Any] | None = None

    @property
    def knn_effect(self) -> float:
        """1 - kNN Jaccard (0 when bitwise or not run)."""
        return 0.0 if self.knn_jaccard is None else 1.0 - self.knn_jaccard
