"""The rounding verdicts against cases with a known answer (issue #10, points 1-2).

The grid (harness.analysis.calibration) plants spectra, solves them with scikit-learn's real PCA
and changes them in ways whose answer is known; these tests assert the measured error rates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis import calibration, rounding
from harness.bench.pca import PCAResult


@pytest.fixture(scope="module")
def grid():
    return calibration.grid(seeds=(0, 1))


def test_no_verdict_of_the_grid_is_wrong(grid):
    rates = calibration.rates(grid).set_index("verdict")
    claims = [v for v, c in calibration.CLAIMS.items() if c is not None]
    assert (rates.loc[claims, "false_positive"] == 0).all(), rates
    assert (rates.loc[claims, "false_negative"] == 0).all(), rates
    # Every planted change beyond rounding is called so, and no rounding-level one.
    assert rates.loc["beyond rounding", "of_beyond"] == 1.0
    assert rates.loc["beyond rounding", "of_rounding"] == 0.0


def test_every_verdict_occurs_on_the_grid(grid):
    assert set(grid["verdict"]) == set(rounding.VERDICTS)


def test_undetermined_only_where_the_spectrum_cannot_decide(grid):
    und = grid[grid["verdict"] == "undetermined"]
    assert set(und["spectrum"]) <= {"rank-deficient", "continuum"}
    # rank 6 of 12 components: the null-space components, and no others
    rank = und[und["spectrum"] == "rank-deficient"]
    assert set(rank["component"]) == set(range(7, 13))
    assert (und["truth"] == "rounding").all()


def test_a_rotation_inside_a_degenerate_eigenspace_is_explained(grid):
    rot = grid[(grid["change"] == "degenerate rotation")]
    assert set(rot.loc[rot["component"] <= 2, "verdict"]) == {"explained"}
    assert set(rot.loc[rot["component"] > 2, "verdict"]) == {"bitwise"}


def test_the_same_rotation_between_separated_components_is_beyond(grid):
    rot = grid[grid["change"] == "rotation"]
    assert set(rot.loc[rot["component"].isin([3, 4]), "verdict"]) == {"beyond rounding"}


def test_sensitivity_switches_between_rounding_and_a_real_change():
    s = calibration.sensitivity(sizes=(1e-14, 1e-10), seeds=(0,)).set_index("size")["beyond"]
    assert s[1e-14] == 0.0
    assert s[1e-10] == 1.0


def test_a_bound_of_one_or_more_is_undetermined_never_explained():
    """Two eigenvalues closer than rounding at the last computed component: nothing decides."""
    x = calibration.planted("continuum", 0).astype(np.float32)
    problem = rounding.problem_of(x)
    a = calibration.solve(x)
    b = calibration.solve(x, seed=3)
    rho = rounding.rounding_level(problem, a.path, a.u)
    j = rounding.judge(problem, (a.loadings, a.embedding), (b.loadings, b.embedding), rho, rho)
    for verdict, bound in zip(j.verdicts, j.bound, strict=True):
        if rounding.SAFETY * bound >= 1:
            assert verdict in ("undetermined", "bitwise", "sign only", "beyond rounding")
    assert "undetermined" in j.verdicts


def test_gram_rounding_scales_with_the_uncentred_second_moment():
    """covariance_eigh and sparse paths: rho grows with ||X^T X||, the centred path much less."""
    x = calibration.planted("separated", 0)
    near, far = rounding.problem_of(x), rounding.problem_of(x + 1e3)
    u = float(np.finfo(np.float32).eps) / 2
    assert far.gram_scale > 1e4 * near.gram_scale
    assert math.isclose(far.lambda1, near.lambda1, rel_tol=1e-6)
    gram = rounding.rounding_level(far, "gram", u) / rounding.rounding_level(near, "gram", u)
    centred = rounding.rounding_level(far, "centred", u) / rounding.rounding_level(
        near, "centred", u
    )
    assert gram > 1e4 and centred < gram / 10


def test_gaps_are_two_sided_for_the_last_component():
    """The reference keeps every eigenvalue: with 11 components, the 11th is the first of a
    near-degenerate pair whose partner was not computed, so its gap is tiny and it is
    undetermined; a gap from the computed eigenvalues alone would call it well separated."""
    x = calibration.planted("near-degenerate", 0).astype(np.float32)  # 1e-9 < float32 rounding
    problem = rounding.problem_of(x)
    assert problem.values.size == calibration.N_VARS
    a, b = calibration.solve(x), calibration.solve(x, seed=5)
    rho = rounding.rounding_level(problem, a.path, a.u)
    cut = slice(0, 11)
    j = rounding.judge(
        problem,
        (a.loadings[:, cut], a.embedding[:, cut]),
        (b.loadings[:, cut], b.embedding[:, cut]),
        rho,
        rho,
    )
    assert j.verdicts[-1] in ("undetermined", "bitwise")
    assert rounding.SAFETY * j.bound[-1] >= 1
    computed = problem.values[:11]
    assert computed[9] - computed[10] > 0.1 * computed[10]  # the one-sided gap looks large


def test_significant_digits_are_capped_at_the_outputs_dtype():
    """Issue #10 point 5: float32 X_pca compared in float64 still holds ~7.2 digits, not 16."""
    from dataclasses import replace

    from harness.analysis import metrics

    x = calibration.planted("separated", 0).astype(np.float32)
    r = calibration.solve(x)
    a = PCAResult(r.embedding, r.loadings, np.ones(calibration.K), np.ones(calibration.K))
    as64 = replace(a, embedding=a.embedding.astype(np.float64))
    digits = metrics.significant_digits([as64, as64], dtype=metrics.least_precise([np.float32]))
    assert digits.minimum == pytest.approx(7.22, abs=0.01)
    assert digits.cap == digits.minimum
    assert metrics.significant_digits([as64, as64]).minimum == pytest.approx(15.95, abs=0.01)


def test_raw_digits_stand_beside_the_estimate_with_their_sample_count():
    """The CNH confidence term costs more with 2 samples than with 5; the raw digits do not."""
    from dataclasses import replace

    from harness.analysis import metrics

    rng = np.random.default_rng(0)
    x = calibration.planted("separated", 0)
    r = calibration.solve(x)
    a = PCAResult(r.embedding, r.loadings, np.ones(calibration.K), np.ones(calibration.K))
    noisy = [replace(a, embedding=a.embedding * (1 + 1e-9 * rng.standard_normal(a.embedding.shape)))
             for _ in range(5)]  # fmt: skip
    two = metrics.significant_digits([a, noisy[0]])
    five = metrics.significant_digits([a, *noisy[:4]])
    assert (two.n_samples, five.n_samples) == (2, 5)
    assert 8 < two.raw_minimum < 10 and 8 < five.raw_minimum < 10
    # the estimate sits below the raw digits, and further below with fewer samples
    assert two.minimum < two.raw_minimum and five.minimum < five.raw_minimum
    assert (two.raw_minimum - two.minimum) > (five.raw_minimum - five.minimum)


# -- downstream: every ARI beside its calibration (point 6) ----------------------------------------


def _blobs(n_per: int = 80, sep: float = 30.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 10) * sep
    return np.vstack([c + rng.standard_normal((n_per, 10)) for c in centres])


def test_leiden_on_well_separated_clusters_is_insensitive():
    """Three far-apart blobs: any seed and any single edge give the same clusters (ARI 1)."""
    from harness.analysis import downstream

    emb = _blobs()
    d = downstream.compare(emb, emb)
    assert (d.knn_jaccard, d.leiden_ari) == (1.0, 1.0)
    assert len(d.calibration.other_seed) == len(downstream.OTHER_SEEDS)
    assert len(d.calibration.one_edge) == downstream.EDGE_TRIALS
    assert min(d.calibration.one_edge) == 1.0
    assert d.n_edges > d.n_cells  # weighted UMAP connectivities, symmetrised


def test_an_ari_is_reported_with_the_calibration_of_the_same_graph():
    """A tiny move of the embedding (1e-6) against Leiden's own sensitivity on the same graph."""
    from harness.analysis import downstream

    emb = np.asarray(calibration.solve(calibration.planted("continuum", 0)).embedding)
    moved = emb + 1e-6 * np.random.default_rng(1).standard_normal(emb.shape)
    d = downstream.compare(emb, moved)
    assert 0.99 <= d.knn_jaccard <= 1.0  # a 1e-6 move changes a few neighbours at most
    assert -0.5 <= d.leiden_ari <= 1.0
    # On this continuum another Leiden seed moves the clusters far more than the 1e-6 move:
    # the calibration is what makes the ARI readable.
    assert min(d.calibration.other_seed) < 0.9
    cal = d.calibration.other_seed + d.calibration.one_edge
    assert len(cal) == len(downstream.OTHER_SEEDS) + downstream.EDGE_TRIALS
    assert all(-0.5 <= a <= 1.0 for a in cal)
    assert downstream.compare(emb, moved) == d  # seeded: the same numbers again


def test_one_edge_is_replaced_and_nothing_else():
    from harness.analysis import downstream

    g = downstream.graph(_blobs(n_per=30))
    h = downstream.replace_one_edge(g, np.random.default_rng(0))
    assert g.nnz == h.nnz
    diff = abs(g - h)
    assert diff.nnz == 4  # one undirected edge removed, one added: 2 entries each


def _judged(problem, a, b):
    rho_a = rounding.rounding_level(problem, a.path, a.u)
    rho_b = rounding.rounding_level(problem, b.path, b.u)
    return rounding.judge(
        problem, (a.loadings, a.embedding), (b.loadings, b.embedding), rho_a, rho_b
    )


def test_beyond_rounding_says_whether_both_results_are_approximate():
    """Issue #10: a 1 vs 2 thread run of the same randomized solve is 'beyond rounding' of the
    exact covariance with tiny deviations; the cause separates it from a real change."""
    x = calibration.planted("separated", 0)
    problem = rounding.problem_of(x)
    exact = calibration.solve(x)
    rough = {"iterated_power": 0, "n_oversamples": 2}
    approx = calibration.solve(x, "randomized", **rough)
    # The same approximate solve of the input rounded differently: rounding moved it, but
    # neither result is an exact eigenpair, so the exact problem cannot say so.
    noise = x * (1 + np.random.default_rng(1).choice([-1.0, 1.0], x.shape) * 2.0**-53)
    again = calibration.solve(noise, "randomized", **rough)
    both = _judged(problem, approx, again)
    assert both.worst == "beyond rounding" and both.beyond_cause == "both approximate"
    one = _judged(problem, exact, approx)
    assert one.worst == "beyond rounding" and one.beyond_cause == "one approximate"
    # A rotated exact solve is no eigenpair either: the other side is exact, so it is a change.
    rotated = _judged(problem, exact, calibration._rotated(exact, 2, 3, 1e-3))
    assert rotated.worst == "beyond rounding" and rotated.beyond_cause == "one approximate"
    assert _judged(problem, exact, calibration.solve(x, "full")).beyond_cause is None


def test_the_cause_is_the_least_benign_of_the_components():
    """Both residuals at rounding yet beyond the bound: Davis-Kahan says that cannot happen, so
    it names a failure of the rounding model (constructed: no solver produced it)."""
    verdicts = ["within rounding", "beyond rounding", "beyond rounding"]
    assert rounding.beyond_cause(verdicts, [1, 50, 50], [1, 50, 50]) == "both approximate"
    assert rounding.beyond_cause(verdicts, [1, 50, 1], [1, 50, 1]) == "moved beyond the bound"
    assert rounding.beyond_cause(verdicts, [1, 50, None], [1, 1, 2]) == "one approximate"
    assert rounding.beyond_cause(verdicts[:1], [1], [1]) is None
