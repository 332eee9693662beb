"""The write-up's mechanism lines say only what each environment measured (issue #10 points 6
and 11): a passed ``rng`` is claimed only where svds takes one, the neighbors probe per release."""

import pandas as pd

from harness.analysis import mechanisms
from harness.render import writeup


def _env(id_: str, scipy: str, mech: dict, baseline: bool = False) -> dict:
    packages = {"scanpy": "1.11.5", "scipy": scipy, "pynndescent": "0.5.13", "umap-learn": "0.5.12"}
    return {"id": id_, "baseline": baseline, "fp": {"packages": packages, "mechanisms": mech}}


ENVS = pd.DataFrame(
    [
        _env(
            "E1",
            "1.17.1",
            {
                "lobpcg_global_seed_reproducible": False,
                "lobpcg_rng_passed_reproducible": True,
                "default_neighbors_problem": None,
            },
            baseline=True,
        ),
        _env(
            "E2",
            "1.13.1",
            {
                "lobpcg_global_seed_reproducible": True,
                "lobpcg_rng_passed_reproducible": None,
                "default_neighbors_problem": "AttributeError: no getnnz",
            },
        ),
        _env("E3", "1.15.3", {"lobpcg_global_seed_reproducible": True}),  # an older fingerprint
    ]
)


def _controls() -> str:
    f = {
        "lobpcg": mechanisms.lobpcg_by_scipy(ENVS),
        "default_neighbors": mechanisms.default_neighbors(ENVS),
    }
    return "".join(writeup._controls_and_mechanisms(f))


def test_a_passed_rng_is_claimed_only_where_svds_takes_one():
    lines = {ln.split(" (")[0]: ln for ln in _controls().splitlines() if "lobpcg with scipy" in ln}
    assert "with `rng` passed they agree" in lines["- lobpcg with scipy 1.17.1"]
    assert "global seed set (what scanpy does) disagree" in lines["- lobpcg with scipy 1.17.1"]
    old = lines["- lobpcg with scipy 1.13.1"]
    assert "takes no `rng`" in old and "rng` passed they" not in old
    assert "with `rng` passed: not measured" in lines["- lobpcg with scipy 1.15.3"]


def test_the_default_neighbors_probe_is_reported_per_release():
    text = _controls()
    runs = [ln for ln in text.splitlines() if "default `pp.neighbors`" in ln]
    assert len(runs) == 2  # E3's fingerprint has no probe: it is left out, not read as "runs"
    by_scipy = {("1.13.1" in ln): ln for ln in runs}
    assert "fails: `AttributeError: no getnnz`" in by_scipy[True] and "(E2)" in by_scipy[True]
    assert ": runs." in by_scipy[False] and "(E1)" in by_scipy[False]
