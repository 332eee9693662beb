"""Naming environments as users do (issue #14): ids, labels and asv names select the same run,
``blas=`` means numpy's BLAS, labels are unique, ``harness envs`` lists them, and ``compare``
with release selectors picks the closest pair and leads with a summary."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from harness.analysis import compare as analysis
from harness.cli import main
from harness.commands.compare import compare_of
from harness.errors import HarnessError
from harness.render import compare as render_compare
from harness.results import environments
from harness.results import reader as results
from harness.results.runs import RunInfo

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results"
sys.path.insert(0, str(Path(__file__).parent))
from test_results import generator, write_result  # noqa: E402


@pytest.fixture(scope="module")
def study():
    """The committed study (one machine, one commit, one environment per factor changed)."""
    return results.scan(STUDY, warn=lambda line: None)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two machines x five environments of the realistic generator, with artifacts."""
    root = tmp_path_factory.mktemp("envs") / "results"
    gen = generator()
    gen.generate(root, 10, profile="smoke", machines=2)
    gen.add_sidecars(root)
    return root


# --- one name, one environment ----------------------------------------------------------------


def test_id_label_and_asv_name_select_the_same_run(study):
    infos = study.infos()
    envs = environments.catalogue(study)
    assert len(envs) == len(infos) and envs["id"].is_unique and envs["label"].is_unique
    keys = [(r.machine, r.commit, r.env_name) for r in envs.itertuples()]
    for row in envs.itertuples():
        key = (row.machine, row.commit, row.env_name)
        for name in (row.id, row.id.lower(), row.label, f"id={row.id}"):
            assert [i.key for i in environments.select(name, infos)] == [key], name
        # asv's name is the machine's own: another machine's study may run it too.
        named = sorted(i.key for i in environments.select(row.env_name, infos))
        assert named == sorted(k for k in keys if k[2] == row.env_name)
    assert environments.select("E999", infos) == []  # an id names an id, never a label


def test_blas_means_numpys_blas(study):
    """scipy's wheel bundles OpenBLAS in every environment: ``blas=openblas`` must not match the
    environments whose numpy runs ATLAS, BLIS, MKL or reference BLAS."""
    infos = study.infos()
    openblas = environments.select("blas=openblas", infos)
    assert openblas
    assert all(environments.numpy_blas(i).startswith("OpenBLAS") for i in openblas)
    others = [i for i in infos if not environments.numpy_blas(i).startswith("OpenBLAS")]
    assert others and not {i.key for i in others} & {i.key for i in openblas}
    for name in ("atlas", "blis", "reference", "mkl"):
        # Exactly the environments whose numpy runs it (the rerun of the study may not have
        # reached all of them yet: then none, and no error).
        picked = environments.select(f"blas={name}", infos)
        assert {i.key for i in picked} == {
            i.key for i in others if dict(i.attrs).get("blas") == name
        }, name
    assert any(
        environments.select(f"blas={n}", infos) for n in ("atlas", "blis", "reference", "mkl")
    )


def test_a_key_no_environment_has_is_one_line(study, capsys):
    with pytest.raises(HarnessError, match="no environment has 'sklaern'"):
        environments.select("sklaern=1.5.2", study.infos())
    assert main(["envs", str(STUDY), "sklaern=1.5.2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "known keys" in err


def test_release_prefix_and_factor_keys(study):
    infos = study.infos()
    for sel in ("sklearn=1.5", "numpy=2", "threads=1", "kernel=haswell", "pca=sklearnex"):
        picked = environments.select(sel, infos)  # known keys: never an error
        # the study's first environments have these; threads=1 and sklearnex come later
        assert picked or sel in ("threads=1", "pca=sklearnex"), sel
    assert all(
        dict(i.packages)["numpy"].startswith("2.") for i in environments.select("numpy=2", infos)
    )


def _info(label: str, machine: str = "m", commit: str = "a" * 40, env: str = "e", profile=None):
    return RunInfo(machine, commit, env, label, profile=profile)


def test_labels_gain_what_tells_runs_apart():
    runs = [
        _info("L", machine="vm"),
        _info("L", machine="box"),
        _info("L", machine="box", commit="b" * 40),
        _info("L", machine="box", commit="b" * 40, env="f", profile="quick"),
        _info("M"),
    ]
    labels = environments.unique_labels(runs)
    assert len(set(labels.values())) == len(runs)
    assert labels[runs[0].key] == "L · machine vm"
    assert labels[runs[1].key] == "L · machine box · commit aaaaaaaa"
    assert labels[runs[2].key].startswith("L · machine box · commit bbbbbbbb")
    assert labels[runs[3].key] == "L · machine box · commit bbbbbbbb · profile quick"
    assert labels[runs[4].key] == "M"


def test_two_runs_of_one_environment_get_two_labels_and_headings(tmp_path, capsys):
    """A study run and a later run of the same environment: one label each, in every view."""
    row = [[0.5], [["'d'"], ["'dense'"], ["'float32'"], ["'arpack'"], ["1"]]]
    folder = tmp_path / "results" / "m"
    for commit, date in (("a" * 40, 1_700_000_000_000), ("b" * 40, 1_700_000_100_000)):
        write_result(
            folder,
            f"{commit[:8]}-env-x.json",
            {"pca.PCA.time_pca": row},
            commit=commit,
            date=date,
            env_vars={"HARNESS_PROFILE": "quick" if commit[0] == "a" else "smoke"},
        )
    loaded = results.scan(tmp_path / "results", warn=pytest.fail)
    labels = [i.label for i in loaded.infos()]
    assert len(set(labels)) == 2 and all("commit" in label for label in labels), labels
    assert {i.profile for i in loaded.infos()} == {"quick", "smoke"}
    assert main(["table", str(tmp_path / "results"), "--all-commits"]) == 0
    headings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("## ")]
    assert len(headings) == 2 and len(set(headings)) == 2


# --- harness envs -------------------------------------------------------------------------------


def test_envs_lists_every_environment_once(study, capsys):
    assert main(["envs", str(STUDY)]) == 0
    out = capsys.readouterr().out
    envs = environments.catalogue(study)
    rows = [line for line in out.splitlines() if line.startswith("| E")]
    assert [r.split(" | ")[0][2:] for r in rows] == list(envs["id"])
    base = envs[envs["baseline"]].iloc[0]
    assert f"| {base['id']} | {base['label']} | baseline |" in out
    assert "scanpy=" in out and "harness compare" in out
    # The null control sets nothing against the baseline: it is named a rerun, never "-".
    null = envs[envs["env_name"].str.contains("NULL_CONTROL")].iloc[0]
    assert (null["factor"], null["change"]) == (environments.RERUN, "rerun, same pins")
    assert f"| {null['id']} | {null['label']} | rerun, same pins |" in out
    assert main(["envs", str(STUDY), "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    ids = environments.ids(study)
    assert {e["id"] for e in obj["environments"]} == set(ids.values())
    for e in obj["environments"]:
        assert ids[(e["machine"], e["commit"], e["env_name"])] == e["id"]


# --- compare picks the closest pair --------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "factor"),
    [
        ("scanpy=1.10.4", "scanpy=1.11.5", "scanpy"),
        ("sklearn=1.4.2", "sklearn=1.5.2", "scikit-learn"),
        ("numpy=2.2.6", "numpy=2.4.6", "numpy"),
    ],
)
def test_release_selectors_pick_the_closest_pair(study, a, b, factor):
    result = compare_of(study, a, b)
    choice = result.choice
    assert choice is not None and choice.named == (factor,)
    assert factor in choice.differ and set(choice.also) == set(choice.differ) - {factor}
    infos = {i.ident: i for i in study.infos()}
    pa, pb = infos[choice.a], infos[choice.b]
    assert [r.key for r in result.a_runs] == [pa.key] and [r.key for r in result.b_runs] == [pb.key]
    # No other pair the selectors name differs in fewer other factors.
    a_side = environments.select(a, study.infos())
    b_side = environments.select(b, study.infos())
    fewest = min(
        len([f for f in analysis.pair_factors(x, y) if f != factor])
        for x in a_side
        for y in b_side
        if x.key != y.key
    )
    assert len(choice.also) == fewest
    text = render_compare.to_markdown(result)
    assert f"{choice.a} → {choice.b}" in text
    if choice.also:
        assert f"also differ in {', '.join(choice.also)}" in text
    else:
        assert f"differ only in {factor}" in text


def test_ids_compare_as_the_writeup_names_them(study, capsys):
    envs = environments.catalogue(study)
    base = envs[envs["baseline"]].iloc[0]["id"]
    other = envs[~envs["baseline"]].iloc[0]
    rc = main(["compare", other["id"], base, "--results", str(STUDY)])
    assert rc in (0, 1)
    out = capsys.readouterr().out
    assert f"{other['id']}: {other['label']}" in out
    assert f"they differ in {other['change'].split('=')[0]}" in out


def test_summary_first_and_only_changed_rows(study, capsys):
    result = compare_of(study, "scanpy=1.10.4", "scanpy=1.11.5")
    s = result.summary
    assert s.changed_rows + s.unchanged_rows + s.skipped_rows == (
        len(result.runtime) + len(result.numerical) + len(result.checks)
    )
    assert s.bits_moved == int(result.numerical["bits_moved"].sum())
    assert sum(s.verdicts.values()) == s.configurations
    md = render_compare.to_markdown(result)
    assert md.index("## Summary") < md.index("## Runtime")
    listed = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    headers = 3
    assert len(listed) - headers == s.changed_rows
    assert f"{s.unchanged_rows} unchanged and {s.skipped_rows} skipped" in md
    everything = render_compare.to_markdown(result, show_all=True)
    listed = [
        line for line in everything.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert len(listed) - headers == s.changed_rows + s.unchanged_rows + s.skipped_rows
    rc = main(["compare", "scanpy=1.10.4", "scanpy=1.11.5", "--results", str(STUDY), "--all"])
    assert capsys.readouterr().out == everything and rc == (1 if result.failures else 0)


def test_closest_pair_names_what_else_differs(generated):
    """The generator has no environment differing from scanpy 1.10.4's only in scanpy."""
    loaded = results.scan(generated, warn=pytest.fail)
    result = compare_of(loaded, "scanpy=1.10.4", "scanpy=1.11.5")
    choice = result.choice
    assert choice.candidates[0] == 2  # scanpy 1.10.4 on both machines
    assert "machine" not in choice.also  # a pair on one machine is closer than across two
    assert {"scikit-learn", "numpy", "scipy"} <= set(choice.also)
    assert len({r.machine for r in (*result.a_runs, *result.b_runs)}) == 1
    md = render_compare.to_markdown(result)
    assert "no pair differs only in scanpy; these also differ in" in md
    obj = json.loads(render_compare.to_json(result))
    assert obj["choice"]["a"] == choice.a and obj["summary"]["runtimes"] == choice_runtimes(result)


def choice_runtimes(result) -> int:
    return int((result.runtime["unit"] == "seconds").sum())


def test_commit_against_commit_keeps_each_environment_with_itself(tmp_path):
    row = [[0.5], [["'d'"], ["'dense'"], ["'float32'"], ["'arpack'"], ["1"]]]
    folder = tmp_path / "results" / "m"
    for commit in ("a" * 40, "b" * 40):
        for env in ("env-x", "env-y"):
            write_result(folder, f"{commit[:8]}-{env}.json", {"pca.PCA.time_pca": row},
                         commit=commit, env=env)  # fmt: skip
    loaded = results.scan(tmp_path / "results", warn=pytest.fail)
    result = compare_of(loaded, "aaaa", "bbbb")
    assert result.choice is None and len(result.a_runs) == len(result.b_runs) == 2
    assert len(result.runtime) == 2 and not math.isnan(result.runtime["a"].iloc[0])


def test_each_machine_has_its_baseline_and_a_cpu_change_is_named():
    """Two machines' studies in one folder (other VMs under one hostname): each is judged against
    its own baseline; a run on another CPU under the same machine name differs in 'CPU model'."""

    def run(machine, env, cpu, **pk):
        packages = {"scanpy": "1.11.5", "scikit-learn": "1.9.1", "numpy": "2.4.6", **pk}
        fp = {"machine": machine, "commit": "c", "env_name": env, "python": "3.11.7",
              "packages": packages, "cpu": {"model": cpu}, "env_vars": {}}  # fmt: skip
        return {"machine": machine, "commit": "c", "env_name": env, "label": f"{machine} {env}",
                "fp": fp}  # fmt: skip

    runs = [
        run("amd", "base", "AMD EPYC"),
        run("amd", "np", "AMD EPYC", numpy="2.2.6"),
        run("intel", "base", "Xeon"),
        run("intel", "np", "Xeon", numpy="2.2.6"),
        run("intel", "moved", "AMD EPYC"),
    ]
    envs = environments.describe(runs).set_index(["machine", "env_name"])
    assert envs.loc[("amd", "base"), "baseline"] and envs.loc[("intel", "base"), "baseline"]
    assert (
        envs.loc[("amd", "np"), "factor"]
        == envs.loc[("intel", "np"), "factor"]
        == ("numpy release")
    )
    assert envs.loc[("intel", "moved"), "factor"] == "CPU model"
    assert list(envs.reset_index()["machine"]) == ["amd", "amd", "intel", "intel", "intel"]
    assert list(envs["id"]) == ["E1", "E2", "E3", "E4", "E5"]


def test_a_run_beside_a_machines_study_never_becomes_its_baseline():
    """A scale or make-bench run in a study's machine folder ties with the study's baseline (two
    runs, every factor equal but one): the baseline is the study's run, listed first or not."""

    def run(env, profile, **pk):
        packages = {"scanpy": "1.11.5", "scikit-learn": "1.9.1", "numpy": "2.4.6", **pk}
        fp = {"machine": "m", "commit": "c", "env_name": env, "python": "3.11.7",
              "packages": packages, "env_vars": {}, "profile": profile}  # fmt: skip
        return {"machine": "m", "commit": "c", "env_name": env, "label": env, "fp": fp,
                "profile": profile}  # fmt: skip

    for runs in (
        [run("bench", "scale", numpy="2.2.6"), run("study", "study")],
        [run("study", "study"), run("bench", "scale", numpy="2.2.6")],
    ):
        envs = environments.describe(runs).set_index("env_name")
        assert envs.loc["study", "baseline"] and not envs.loc["bench", "baseline"]
        assert envs.loc["bench", "factor"] == "numpy release"
    # Without a study run, the tie goes to the first, as before.
    envs = environments.describe([run("a", "quick"), run("b", "quick", numpy="2.2.6")])
    assert list(envs.set_index("env_name")["baseline"]) == [True, False]
