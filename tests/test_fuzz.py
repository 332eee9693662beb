"""Property-based fuzzing of every command on hostile input (issue #16).

Each example copies a small real results tree (three runs of the committed study, see
``tests/fuzz_strategies.py``) to a temporary folder, makes one hostile change to it (a huge
integer, NaN, a wrong type, a truncated or binary file, a 10^9-combination parameter grid, markup
in a name, a bad ``.npz`` digest, a zip bomb, a FIFO, a symlink loop...) and runs a real command
on it: ``python -m harness table|crossenv|compare|report|writeup`` as a subprocess under a memory
rlimit (:data:`MEMORY_BOUND`), ``harness.load_results`` in a forked child under the same bound,
``harness doctor`` on tiny generated ``.h5ad`` files and ``doctor --pipeline`` on tiny scripts.

Every example must hold these properties:

* no Python traceback, exit code 0, 1 or 2, no ``MemoryError`` (the rlimit was not hit), no
  timeout, no numpy ``RuntimeWarning`` on stderr;
* the input tree is unchanged: the same listing and the same sha256 of every file;
* no temporary file (``.*.tmp``) left in the input tree or in the output folder;
* when the change made the file invalid and the command's output differs from its output on the
  unchanged tree, stderr names the file (at least its file name);
* Markdown outputs keep their tables whole (pipes escaped) and pass no raw ``<script>``/``<img>``
  markup or bidirectional-override characters through.

Running it:

* ``make test`` (and plain pytest) runs a small, deterministic subset (``derandomize``, no
  shrinking, a few examples per test) within about two minutes on a 2-core machine;
* ``HARNESS_FUZZ_EXAMPLES=300 .venv/bin/python -m pytest tests/test_fuzz.py`` runs each test with
  that many examples (doctor and pipeline tests with a fifth and a fiftieth), randomised and
  shrinking; ``-m slow`` runs the ``*_long`` variants with 200 examples each;
* ``HARNESS_FUZZ_COLLECT=failures.jsonl`` records every failing example as one JSON line instead
  of stopping at the first, to survey all distinct failures in one long run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import re
import resource
import shutil
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fuzz_strategies as fz
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

#: The address-space limit of every command under test (RLIMIT_AS), and of the forked reader on
#: top of what the test process already maps.
MEMORY_BOUND = 3 * 1024**3
#: Seconds a command may take on the small tree (they take 1-3 s; a FIFO blocks forever).
TIMEOUT = 60
PIPELINE_TIMEOUT = 180
EXAMPLES = int(os.environ.get("HARNESS_FUZZ_EXAMPLES") or 0)
COLLECT = os.environ.get("HARNESS_FUZZ_COLLECT")


_COMMON = dict(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
settings.register_profile(
    "harness-fuzz-fast",
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the CI run stays bounded
    max_examples=10,
    **_COMMON,
)
settings.register_profile("harness-fuzz-long", max_examples=max(EXAMPLES, 200), **_COMMON)


def fuzz_settings(fast: int, divide: int = 1, *, long: bool = False) -> settings:
    """``fast`` examples in the default run; HARNESS_FUZZ_EXAMPLES (or 200 for ``long``)
    divided by ``divide`` in a long one."""
    if long or EXAMPLES:
        n = max(1, (EXAMPLES or 200) // divide)
        return settings(settings.get_profile("harness-fuzz-long"), max_examples=n)
    return settings(settings.get_profile("harness-fuzz-fast"), max_examples=fast)


# --- running a command -------------------------------------------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass
class Ran:
    args: list[str]
    rc: int | None
    stdout: str
    stderr: str
    timed_out: bool
    limit: float = TIMEOUT


def run_harness(args: list[str], cwd: Path, timeout: float = TIMEOUT) -> Ran:
    """``python -m harness ARGS`` in ``cwd`` under the memory bound."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(fz.ROOT)}
    env.pop("HARNESS_FUZZ_COLLECT", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=timeout,
            preexec_fn=_limit_memory,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode(errors="replace")
        return Ran(args, None, out, (err.stderr or b"").decode(errors="replace"), True, timeout)
    text = {k: getattr(proc, k).decode(errors="replace") for k in ("stdout", "stderr")}
    return Ran(args, proc.returncode, text["stdout"], text["stderr"], False, timeout)


# --- what must hold ----------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (not following links) with its type and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st_ = path.lstat()
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = f"link:{os.readlink(path)}"
            elif path.is_fifo():
                out[rel] = "fifo"
            elif path.is_dir():
                out[rel] = f"dir:{st_.st_mode:o}"
            else:
                out[rel] = f"file:{st_.st_mode:o}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return out


def tree_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [f"{k}: {before.get(k, 'absent')} -> {after.get(k, 'absent')}" for k in changed[:5]]


def tmp_files(*roots: Path) -> list[str]:
    return sorted(
        str(p) for root in roots if root.exists() for p in root.rglob(".*.tmp") if p.name != "."
    )


BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
RAW_MARKUP = re.compile(r"<script>alert|<img src=x|onerror=alert", re.I)


def markdown_problems(name: str, text: str) -> list[str]:
    """Tables whose rows have a different number of cells than their header, raw markup, and
    bidirectional overrides in a Markdown (or HTML) output."""
    out = []
    if BIDI.search(text):
        out.append(f"{name}: passes a bidirectional-override character through")
    if RAW_MARKUP.search(text):
        out.append(f"{name}: passes raw HTML markup through")
    if name.endswith(".html"):
        return out
    cells = None
    for i, line in enumerate(text.splitlines()):
        if not line.startswith("|"):
            cells = None
            continue
        n = len(re.findall(r"(?<!\\)\|", line))
        if cells is None:
            cells = n
        elif n != cells:
            out.append(f"{name}: table row at line {i + 1} has {n - 1} cells, header {cells - 1}")
            break
    return out


def outputs(ran: Ran, out: Path, subst: dict[str, str]) -> dict[str, str]:
    """stdout and every text file written under ``out``, with the temporary paths replaced."""
    found = {"<stdout>": ran.stdout}
    if out.exists():
        for p in sorted(out.rglob("*")):
            if p.is_file() and p.suffix in (".md", ".csv", ".json", ".html", ".txt"):
                found[p.relative_to(out).as_posix()] = p.read_text(errors="replace")
    for key, text in found.items():
        for old, new in subst.items():
            text = text.replace(old, new)
        found[key] = text
    return found


def run_problems(ran: Ran, *, results_command: bool = True) -> list[str]:
    """What is wrong with how one command ended, whatever its input."""
    out = []
    if ran.timed_out:
        out.append(f"timed out (no exit within {ran.limit:g} s)")
        return out
    if "Traceback (most recent call last)" in ran.stderr + ran.stdout:
        out.append(f"traceback: {last_line(ran.stderr or ran.stdout)}")
    elif "MemoryError" in ran.stderr:
        out.append(f"MemoryError: {last_line(ran.stderr)}")
    if ran.rc not in (0, 1, 2):
        out.append(f"exit code {ran.rc}: {last_line(ran.stderr)}")
    if results_command and "RuntimeWarning" in ran.stderr:
        out.append(f"RuntimeWarning: {_line_with(ran.stderr, 'RuntimeWarning')}")
    return out


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(nothing)"


def _line_with(text: str, word: str) -> str:
    return next((ln for ln in text.splitlines() if word in ln), "")[:300]


def report(where: str, problems: list[str], **context: Any) -> None:
    """Fail with ``problems``, or with HARNESS_FUZZ_COLLECT record them and go on."""
    if not problems:
        return
    if COLLECT:
        line = {"test": where, "problems": problems, **{k: str(v) for k, v in context.items()}}
        with open(COLLECT, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        return
    detail = "\n".join(f"  {k}: {str(v)[-2000:]}" for k, v in context.items())
    pytest.fail(f"{where}:\n  " + "\n  ".join(problems) + "\n" + detail, pytrace=False)


# --- the results commands ----------------------------------------------------------------------

COMMANDS: dict[str, list[str]] = {
    "table": ["table", "{tree}"],
    "table-html": ["table", "{tree}", "--format", "html", "--out", "{out}/table.html"],
    "table-json": ["table", "{tree}", "--format", "json", "--all-commits"],
    "crossenv": ["crossenv", "{tree}"],
    "crossenv-csv": ["crossenv", "{tree}", "--format", "csv", "--out", "{out}/crossenv.csv"],
    "compare": ["compare", "scanpy=1.10.4", "scanpy=1.11.5", "--results", "{tree}"],
    "report": ["report", "{tree}", "{out}/report"],
    "writeup": ["writeup", "{tree}"],
    "writeup-json": ["writeup", "{tree}", "--format", "json", "--out", "{out}/writeup.json"],
}
#: Outputs that differ from run to run on the same tree (figures embedded in the HTML).
UNSTABLE = {"report/report.html"}


@dataclass
class Example:
    """One hostile tree, with its output folder and a working directory, in a scratch folder."""

    scratch: Path

    @property
    def tree(self) -> Path:
        return self.scratch / "results"

    @property
    def out(self) -> Path:
        return self.scratch / "out"

    @property
    def cwd(self) -> Path:
        return self.scratch / "cwd"

    def args(self, command: str) -> list[str]:
        return [a.format(tree=self.tree, out=self.out) for a in COMMANDS[command]]

    def subst(self) -> dict[str, str]:
        return {str(self.tree): "<TREE>", str(self.out): "<OUT>", str(self.scratch): "<SCRATCH>"}


@contextlib.contextmanager
def example(base_tree: Path, *mutations: fz.Mutation):
    scratch = fz.scratch_dir("harness-fuzz-")
    try:
        ex = Example(scratch)
        shutil.copytree(base_tree, ex.tree, symlinks=True)
        ex.cwd.mkdir()
        for m in mutations:
            m.apply(ex.tree)
        yield ex
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory) -> Path:
    """The unchanged base tree, copied once per module."""
    return fz.copy_base(tmp_path_factory.mktemp("fuzz-base") / "results")


_BASELINES: dict[tuple[str, str], tuple[Ran, dict[str, str]]] = {}


def baseline(base_tree: Path, command: str) -> tuple[Ran, dict[str, str]]:
    """The command's exit code and outputs on the unchanged tree (run once per module)."""
    key = (str(base_tree), command)
    if key not in _BASELINES:
        with example(base_tree) as ex:
            ran = run_harness(ex.args(command), ex.cwd)
            found = (ran, outputs(ran, ex.out, ex.subst()))
        if run_problems(ran):
            return found  # not kept: the next example tries again
        _BASELINES[key] = found
    return _BASELINES[key]


def check_command(base_tree: Path, mutation: fz.Mutation, command: str) -> None:
    base_ran, base_out = baseline(base_tree, command)
    base_bad = run_problems(base_ran)
    if base_bad:
        report(f"{command} on the unchanged tree", base_bad, stderr=base_ran.stderr)
        return
    timeout = 20 if mutation.special in ("fifo", "devzero") else TIMEOUT
    with example(base_tree, mutation) as ex:
        before = snapshot(ex.tree)
        ran = run_harness(ex.args(command), ex.cwd, timeout=timeout)
        problems = run_problems(ran)
        problems += [f"input changed: {c}" for c in tree_changes(before, snapshot(ex.tree))]
        problems += [f"left a temporary file: {p}" for p in tmp_files(ex.tree, ex.out, ex.cwd)]
        if any(ex.cwd.iterdir()):
            problems.append(f"wrote into the working directory: {sorted(os.listdir(ex.cwd))}")
        got = outputs(ran, ex.out, ex.subst())
        differs = ran.rc != base_ran.rc or any(
            got.get(k) != v for k, v in base_out.items() if k not in UNSTABLE
        )
        name = Path(mutation.target).name
        if mutation.invalid and differs and name not in ran.stderr:
            problems.append(f"output changed but stderr does not name {name}")
        for key, text in got.items():
            if key.endswith((".md", ".html")) or (key == "<stdout>" and "json" not in command):
                problems += markdown_problems(key, text)
        report(
            f"harness {command}",
            problems,
            mutation=mutation,
            rc=ran.rc,
            stderr=ran.stderr[-1500:],
        )


COMMAND_NAMES = st.sampled_from(sorted(COMMANDS))


@fuzz_settings(7)
@given(mutation=fz.tree_mutation(), command=COMMAND_NAMES)
def test_results_commands_on_a_hostile_tree(base_tree, mutation, command):
    check_command(base_tree, mutation, command)


@pytest.mark.slow
@fuzz_settings(10, long=True)
@given(mutation=fz.tree_mutation(), command=COMMAND_NAMES)
def test_results_commands_on_a_hostile_tree_long(base_tree, mutation, command):
    check_command(base_tree, mutation, command)


ISSUE_CASES = fz.issue_cases() if fz.base_available() else {}


def test_the_base_is_copied_from_the_published_study():
    """The fuzz base exists: without it every case here would pass on nothing (a removed
    machine folder once left this module skipped while CI stayed green)."""
    assert fz.base_available(), f"results/{fz.MACHINE}: the base runs {fz.BASE_ENVS} are missing"
    assert len(ISSUE_CASES) > 5


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_issue_16_case_through_the_cli(base_tree, case):
    """Each numbered case of issue #16 that a file can carry, through the real CLI (whatever
    hypothesis draws), under the same properties."""
    mutation, command = ISSUE_CASES[case]
    check_command(base_tree, mutation, command)


def _bad_places(scratch: Path) -> dict[str, tuple[list[str], str]]:
    """(arguments, the path stderr must name) for folders and outputs that cannot be used."""
    fifo = scratch / "fifo"
    os.mkfifo(fifo)
    (scratch / "a-file").write_text("x")
    (scratch / "a-dir").mkdir()
    tree = str(scratch / "results")
    return {
        "results-is-a-fifo": (["table", str(fifo)], "fifo"),
        "results-is-dev-null": (["crossenv", "/dev/null"], "/dev/null"),
        "out-is-a-directory": (["table", tree, "--out", str(scratch / "a-dir")], "a-dir"),
        "out-under-a-file": (
            ["writeup", tree, "--out", str(scratch / "a-file" / "x.md")],
            "a-file",
        ),
        "outdir-is-a-file": (["report", tree, str(scratch / "a-file")], "a-file"),
        "outdir-under-a-file": (["report", tree, str(scratch / "a-file" / "r")], "a-file"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "results-is-a-fifo",
        "results-is-dev-null",
        "out-is-a-directory",
        "out-under-a-file",
        "outdir-is-a-file",
        "outdir-under-a-file",
    ],
)
def test_unusable_folders_through_the_cli(base_tree, case):
    """Issue #16 cases 3 and 12: one line naming the path, exit code 2, nothing left behind."""
    with example(base_tree) as ex:
        args, named = _bad_places(ex.scratch)[case]
        before = snapshot(ex.tree)
        ran = run_harness(args, ex.cwd, timeout=20)
        problems = run_problems(ran)
        if ran.rc != 2:
            problems.append(f"exit code {ran.rc}, not 2")
        if named not in ran.stderr:
            problems.append(f"stderr does not name {named}")
        problems += [f"input changed: {c}" for c in tree_changes(before, snapshot(ex.tree))]
        problems += [f"left a temporary file: {p}" for p in tmp_files(ex.scratch)]
        report(f"harness {args[0]}", problems, case=case, rc=ran.rc, stderr=ran.stderr[-1500:])


# --- harness.load_results in a forked, memory-bounded child ------------------------------------


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _frame_digest(frame: Any, root: str) -> str:
    text = frame.to_csv().replace(root, "<TREE>")
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def _load_child(root: str, conn: Any) -> None:
    limit = _vm_size() + MEMORY_BOUND
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out: dict[str, Any] = {"warns": [], "error": None, "digest": None, "warnings": []}
    try:
        import harness
        from harness.errors import HarnessError

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                frame = harness.load_results(root, warn=out["warns"].append)
                out["digest"] = _frame_digest(frame, root)
            except HarnessError as err:
                out["error"] = ["HarnessError", str(err)]
        out["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    except BaseException as err:
        out["error"] = [type(err).__name__, traceback.format_exc()[-3000:]]
    conn.send(json.loads(json.dumps(out, default=str)))
    conn.close()


def load_in_child(root: Path, timeout: float = 30) -> dict[str, Any]:
    """``harness.load_results(root, warn=...)`` in a forked child under the memory bound."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_load_child, args=(str(root), child))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        proc.start()
    child.close()
    got = parent.recv() if parent.poll(timeout) else None
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if got is None:
        return {"error": ["died", f"exit code {proc.exitcode} (timeout {timeout} s)"]}
    return got


_LOAD_BASE: dict[str, dict[str, Any]] = {}


def check_load(base_tree: Path, mutation: fz.Mutation) -> None:
    if str(base_tree) not in _LOAD_BASE:
        with example(base_tree) as ex:
            _LOAD_BASE[str(base_tree)] = load_in_child(ex.tree)
    base = _LOAD_BASE[str(base_tree)]
    if base["error"]:
        report("load_results on the unchanged tree", [str(base["error"])])
        return
    with example(base_tree, mutation) as ex:
        before = snapshot(ex.tree)
        got = load_in_child(ex.tree, timeout=20 if mutation.special else 60)
        problems = []
        error = got["error"]
        if error and error[0] != "HarnessError":
            problems.append(f"{error[0]}: {last_line(error[1])}")
        problems += [w for w in got.get("warnings", []) if w.startswith("RuntimeWarning")]
        problems += [f"input changed: {c}" for c in tree_changes(before, snapshot(ex.tree))]
        problems += [f"left a temporary file: {p}" for p in tmp_files(ex.tree)]
        name = Path(mutation.target).name
        said = " ".join(got.get("warns", [])) + (error[1] if error else "")
        if mutation.invalid and got.get("digest") != base["digest"] and name not in said:
            problems.append(f"frame changed but no warning names {name}")
        report("load_results", problems, mutation=mutation, warns=got.get("warns"))


@fuzz_settings(30, 1)
@given(mutation=fz.tree_mutation())
def test_load_results_on_a_hostile_tree(base_tree, mutation):
    check_load(base_tree, mutation)


@pytest.mark.slow
@fuzz_settings(30, long=True)
@given(mutation=fz.tree_mutation())
def test_load_results_on_a_hostile_tree_long(base_tree, mutation):
    check_load(base_tree, mutation)


# --- doctor ------------------------------------------------------------------------------------


def check_doctor(case: fz.H5adCase) -> None:
    scratch = fz.scratch_dir("harness-fuzz-doctor-")
    try:
        data, cwd = scratch / "data" / "input.h5ad", scratch / "cwd"
        data.parent.mkdir()
        cwd.mkdir()
        case.write(data)
        before = snapshot(data.parent)
        ran = run_harness(["doctor", str(data), *case.args()], cwd)
        problems = run_problems(ran, results_command=False)
        problems += [f"input changed: {c}" for c in tree_changes(before, snapshot(data.parent))]
        problems += [f"left a temporary file: {p}" for p in tmp_files(scratch)]
        if ran.rc == 2 and not ran.stderr.strip():
            problems.append("exit code 2 without a reason on stderr")
        if ran.rc in (0, 1):
            problems += markdown_problems("<stdout>", ran.stdout)
        report("harness doctor", problems, case=case, rc=ran.rc, stderr=ran.stderr[-1500:])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@fuzz_settings(3, 5)
@given(case=fz.h5ad_case())
def test_doctor_on_tiny_hostile_h5ad(case):
    check_doctor(case)


def check_pipeline(body: str) -> None:
    scratch = fz.scratch_dir("harness-fuzz-pipeline-")
    try:
        script, cwd = scratch / "code" / "analysis.py", scratch / "cwd"
        script.parent.mkdir()
        cwd.mkdir()
        script.write_text(body)
        before = snapshot(script.parent)
        ran = run_harness(["doctor", "--pipeline", str(script)], cwd, timeout=PIPELINE_TIMEOUT)
        problems = run_problems(ran, results_command=False)
        problems += [f"input changed: {c}" for c in tree_changes(before, snapshot(script.parent))]
        problems += [f"left a temporary file: {p}" for p in tmp_files(scratch)]
        if ran.rc == 2 and script.name not in ran.stderr:
            problems.append(f"exit code 2 and stderr does not name {script.name}")
        report(
            "harness doctor --pipeline", problems, script=body, rc=ran.rc, stderr=ran.stderr[-1500:]
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@fuzz_settings(1, 50)
@given(body=fz.pipeline_script())
def test_doctor_pipeline_on_hostile_scripts(body):
    check_pipeline(body)


@pytest.mark.slow
@pytest.mark.parametrize("body", fz.PIPELINE_BODIES)
def test_doctor_pipeline_on_each_hostile_script(body):
    check_pipeline(body)


# --- the checker itself ------------------------------------------------------------------------


def test_checker_sees_a_traceback_a_bad_exit_code_and_a_changed_tree(tmp_path):
    """The properties above can fail: a crashing command, and a command that edits its input."""
    crash = run_harness(["table", str(tmp_path / "missing"), "--format", "x"], tmp_path)
    assert crash.rc == 2 and not run_problems(crash)  # argparse: a clean usage error
    fake = Ran(["x"], -9, "", "Traceback (most recent call last):\n  ...\nMemoryError\n", False)
    assert len(run_problems(fake)) == 2
    (tmp_path / "a").write_text("1")
    before = snapshot(tmp_path)
    (tmp_path / "a").write_text("2")
    (tmp_path / ".a.x.tmp").write_text("")
    assert tree_changes(before, snapshot(tmp_path)) and tmp_files(tmp_path)
    assert markdown_problems("x.md", "| a | b |\n|---|---|\n| 1 | 2 | 3 |\n")
    assert not markdown_problems("x.md", "| a | b |\n|---|---|\n| 1 \\| 2 | 3 |\n")
