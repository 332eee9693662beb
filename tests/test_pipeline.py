"""``harness doctor --pipeline``: real user scripts run twice in new processes, real scanpy."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.doctor.pipeline import analyze, first_difference, in_place_changes

SCRIPTS = Path(__file__).parent / "data" / "pipelines"
#: Lines in tests/data/pipelines/inplace_scale.py: pca, scale (in place), pca.
PCA_1, SCALE, PCA_2 = 6, 8, 9


def run_cli(
    *args: object, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "harness", "doctor", *map(str, args)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def test_fixture_lines_are_what_the_test_asserts():
    lines = (SCRIPTS / "inplace_scale.py").read_text().splitlines()
    assert lines[PCA_1 - 1].startswith("sc.pp.pca(")
    assert lines[SCALE - 1] == "sc.pp.scale(adata)"
    assert lines[PCA_2 - 1].startswith("sc.pp.pca(")


def test_scale_in_place_between_two_pcas_is_named_with_its_line(tmp_path):
    out = tmp_path / "report.json"
    proc = run_cli("--pipeline", SCRIPTS / "inplace_scale.py", "--format", "json", "--out", out)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    assert report["reproducible"] is False
    assert report["difference"] is None  # both runs agree: the bug is inside one run
    (change,) = report["in_place"]
    assert change["runs"] == [1, 2]
    assert change["x_pca_change"] > 1  # scaling an already scaled matrix moves X_pca by O(10)
    assert change["function"] == "pp.scale"
    assert change["line"] == SCALE
    assert Path(change["file"]).name == "inplace_scale.py"
    assert change["keys"] == ["X"]
    assert (change["pca_before_line"], change["pca_after_line"]) == (PCA_1, PCA_2)
    assert [c["function"] for c in report["calls"]] == ["pp.pca", "pp.scale", "pp.pca"]
    assert any("copy=True" in fix for fix in report["fixes"])


def test_reproducible_script_exits_0_with_markdown():
    proc = run_cli("--pipeline", SCRIPTS / "reproducible.py")
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert "**Verdict: reproducible.**" in md
    for fn, line in [("pp.pca", 6), ("pp.scale", 7), ("pp.neighbors", 9), ("tl.leiden", 10)]:
        assert f"| `{fn}` | reproducible.py:{line} |" in md
    assert "## Data changed in place between two PCA calls\n\nNone." in md


def test_unseeded_input_is_the_first_difference_between_runs(tmp_path):
    out = tmp_path / "report.json"
    proc = run_cli("--pipeline", SCRIPTS / "unseeded_noise.py", "--format", "json", "--out", out)
    assert proc.returncode == 1, proc.stderr
    diff = json.loads(out.read_text())["difference"]
    assert (diff["function"], diff["line"], diff["where"], diff["keys"]) == (
        "pp.pca",
        9,
        "input",
        ["X"],
    )


def test_script_that_raises_exits_2_with_one_line():
    proc = run_cli("--pipeline", SCRIPTS / "raises.py")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("harness doctor: ")
    assert "raises.py: the script raised ValueError at line 6: min_genes must be positive" in line


@pytest.mark.parametrize(
    ("name", "message"), [("missing.py", "no such file"), ("notes.txt", "not a Python script")]
)
def test_bad_script_path_exits_2(tmp_path, name, message):
    if name.endswith(".txt"):
        (tmp_path / name).write_text("print('hi')\n")
    proc = run_cli("--pipeline", tmp_path / name)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert message in line and "Traceback" not in proc.stderr


# --- the analysis on recorded calls (no processes) ---------------------------------------------


def call(index, function, line, before, after=None, obj=0, **extra):
    entry = {
        "index": index,
        "function": function,
        "file": "/u/script.py",
        "line": line,
        "object": obj,
        "before": before,
        "after": after or before,
        "returned": None,
    }
    if function == "pp.pca":
        entry["pca_input"] = {"X": before["X"]}
        entry["pca_params"] = extra.get("params", {})
        entry["after"] = {**entry["after"], "obsm/X_pca": extra.get("pca_out", "p")}
    return entry


def test_change_by_your_own_code_is_reported_without_a_function():
    calls = [call(0, "pp.pca", 3, {"X": "a"}), call(1, "pp.pca", 7, {"X": "b"})]
    (change,) = in_place_changes(calls, run=1)
    assert change.function == "(your code)"
    assert (change.pca_before_line, change.pca_after_line) == (3, 7)


def test_pca_on_another_object_or_layer_is_no_in_place_change():
    other_object = [call(0, "pp.pca", 3, {"X": "a"}), call(1, "pp.pca", 7, {"X": "b"}, obj=1)]
    assert in_place_changes(other_object, run=1) == []
    layer = {"layer": "'counts'"}
    other_layer = [call(0, "pp.pca", 3, {"X": "a"}), call(1, "pp.pca", 7, {"X": "b"}, params=layer)]
    assert in_place_changes(other_layer, run=1) == []


def test_output_difference_with_equal_input_names_the_call():
    run1 = [call(0, "pp.pca", 3, {"X": "a"}, pca_out="p1")]
    run2 = [call(0, "pp.pca", 3, {"X": "a"}, pca_out="p2")]
    diff = first_difference(run1, run2)
    assert diff is not None
    assert (diff.where, diff.keys, diff.line) == ("output", ["obsm/X_pca"], 3)
    report = analyze("script.py", [{"calls": run1}, {"calls": run2}])
    assert not report.reproducible
    assert "got the same input in both runs but its output differs" in report.to_markdown()


def test_extra_call_in_one_run_is_a_difference():
    run1 = [call(0, "pp.pca", 3, {"X": "a"})]
    run2 = [*run1, call(1, "tl.leiden", 5, {"X": "a"})]
    diff = first_difference(run1, run2)
    assert diff is not None and diff.function == "tl.leiden" and diff.where == "call"


def test_markdown_tables_escape_pipes_in_names():
    """A layer named 'a|b' changed in place: the table cell shows it, the table keeps 6 columns."""
    before, after = {"X": "a", "layers/a|b": "1"}, {"X": "a", "layers/a|b": "2"}
    calls = [
        call(0, "pp.pca", 3, {"X": "a"}),
        call(1, "pp.scale", 4, before, after),
        call(2, "pp.pca", 5, {"X": "b"}),
    ]
    md = analyze("script.py", [{"calls": calls}, {"calls": calls}]).to_markdown()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows and all(len(re.findall(r"(?<!\\)\|", line)) == 7 for line in rows), md
    assert "layers/a\\|b" in md


# --- runaway scripts: a time limit, and no process or temporary folder left behind -------------


def processes_naming(needle: str) -> list[int]:
    """PIDs of live processes (other than this one) whose command line contains ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # ended while we looked
            continue
        if needle.encode() in cmdline:
            found.append(int(entry.name))
    return found


def gone(needle: str, wait: float = 5.0) -> bool:
    """Whether no process names ``needle`` within ``wait`` seconds (killed ones take a moment)."""
    deadline = time.monotonic() + wait
    while processes_naming(needle):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def sandbox(tmp_path) -> tuple[Path, dict[str, str]]:
    """A private TMPDIR for doctor (to see what it leaves there) and the environment using it."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to look for leftover processes")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return tmpdir, {**os.environ, "TMPDIR": str(tmpdir)}


def own_copy(name: str, folder: Path) -> Path:
    """A copy of a fixture script under a unique path, so its processes can be found by name."""
    target = folder / name
    shutil.copy(SCRIPTS / name, target)
    return target


def leftovers(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("harness-"))


def test_script_that_never_ends_is_stopped_at_the_timeout(tmp_path, sandbox):
    tmpdir, env = sandbox
    script = own_copy("loops_forever.py", tmp_path)
    started = time.monotonic()
    proc = run_cli("--pipeline", script, "--timeout", 3, env=env, timeout=60)
    assert time.monotonic() - started < 20  # interpreter start-up, then 3 s
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert str(script) in line and "did not finish within 3 s" in line
    assert gone(str(script)), processes_naming(str(script))
    assert leftovers(tmpdir) == []


def test_processes_a_script_leaves_running_are_killed(tmp_path, sandbox):
    """The sleeper holds the script's output open for 40 s: doctor neither waits for it nor
    leaves it running."""
    tmpdir, env = sandbox
    script = own_copy("forks_sleeper.py", tmp_path)
    started = time.monotonic()
    proc = run_cli("--pipeline", script, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 35  # two runs of 40 s each before the fix
    assert gone(str(script)), processes_naming(str(script))
    assert leftovers(tmpdir) == []


def test_sigterm_to_doctor_kills_the_running_script(tmp_path, sandbox):
    tmpdir, env = sandbox
    script = own_copy("loops_forever.py", tmp_path)
    cmd = [sys.executable, "-m", "harness", "doctor", "--pipeline", str(script)]
    doctor = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # doctor's own command line names the script too: wait for the tracer running it.
        running = f"harness.doctor.tracer\0{script.resolve()}"
        deadline = time.monotonic() + 60
        while not processes_naming(running) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_naming(running), "the script's process never started"
        time.sleep(1)  # into the script's endless loop
        doctor.send_signal(signal.SIGTERM)
        doctor.wait(timeout=30)
    finally:
        if doctor.poll() is None:
            doctor.kill()
            doctor.wait()
    assert doctor.returncode != 0
    assert gone(str(script)), processes_naming(str(script))
    assert leftovers(tmpdir) == []
