"""The published study: every environment of asv.conf.json's matrix, one asv run each, resumable.

asv cannot run one entry of its matrix by name, so each step writes a one-environment copy of
asv.conf.json (absolute paths, same results and env folders) and runs asv on it with
``--skip-existing-successful``: a step that already has its results is skipped, and an
interrupted study resumes where it stopped. An environment that fails to install leaves a
'failed to install' record with the reason, so it is never silently missing from the tables.

The study is pinned to one commit, kept in ``results/<machine>/harness/study/study.jsonl`` when
it starts: later commits (tables, write-up) resume it instead of starting over. ``--commit REV``
starts (or resumes) the study of another commit.

    python -m harness.study [--list] [--only REGEX] [--commit REV] [--machine NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness import io, processes
from harness.bench import backends, fingerprint, store
from harness.results import asvfiles, keep_benchmarks, sidecars
from harness.study import missing, pack
from harness.vocabulary import HARNESS_DIR, env_key, run_folder_name

ROOT = Path(__file__).resolve().parents[2]  # harness/study/driver.py -> the repository


@dataclass(frozen=True)
class Step:
    """One environment of the matrix: Python, requirements, and variables set at run time."""

    python: str
    req: dict[str, str]
    env_nobuild: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def env_name(self) -> str:
        """asv's name for this environment (results files carry it)."""
        # asv is not a dependency of the readers, and the write-up imports this module.
        from asv.environment import get_env_name

        tagged = {("env", k): v for k, v in self.env.items()} | {
            ("env_nobuild", k): v for k, v in self.env_nobuild.items()
        }
        return get_env_name("virtualenv", self.python, self.req, tagged)

    def describe(self) -> str:
        parts = [f"py{self.python}"] + [f"{k}=={v}" for k, v in sorted(self.req.items()) if v]
        parts += [f"{k}={v}" for k, v in sorted({**self.env, **self.env_nobuild}.items())]
        return " ".join(parts)


def load_conf(path: Path) -> dict[str, Any]:
    """asv.conf.json as asv reads it (it allows // comments)."""
    text = path.read_text()
    return json.loads(
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    )


def steps(conf_path: Path) -> list[Step]:
    """Every environment asv would build from the matrix, its excludes and includes, in order."""
    # asv: see Step.env_name.
    from asv.config import Config
    from asv.environment import iter_matrix

    conf = Config.load(str(conf_path))
    out = []
    for combo in iter_matrix(conf.environment_type, conf.pythons, conf):
        grouped: dict[str, dict[str, str]] = {"req": {}, "env": {}, "env_nobuild": {}}
        python = ""
        for (kind, key), value in combo.items():
            if kind == "python":
                python = value
            elif kind in grouped:
                grouped[kind][key] = value or ""
        out.append(Step(python, grouped["req"], grouped["env_nobuild"], grouped["env"]))
    return out


def step_conf(
    conf: dict[str, Any], step: Step, root: Path, source: Path | None = None
) -> dict[str, Any]:
    """A one-environment asv config for ``step``: the repository and benchmarks from ``source``
    (the studied commit's checkout, default ``root``), results and environments under ``root``."""
    source = source or root
    one = dict(conf)
    one.update(
        repo=str(source),
        benchmark_dir=str(source / conf.get("benchmark_dir", "benchmarks")),
        results_dir=str(root / conf.get("results_dir", "results")),
        env_dir=str(root / conf.get("env_dir", "env")),
        html_dir=str(root / conf.get("html_dir", "html")),
        pythons=[step.python],
        matrix={
            "req": {k: [v] for k, v in step.req.items()},
            "env": {k: [v] for k, v in step.env.items()},
            "env_nobuild": {k: [v] for k, v in step.env_nobuild.items()},
        },
        include=[],
        exclude=[],
    )
    return one


def _git(root: Path, *args: str) -> str:
    run = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=300
    )
    return run.stdout.strip()


def source_tree(root: Path, commit: str) -> Path:
    """A checkout of the studied commit. asv imports the benchmarks from the folder it is given,
    not from the commit it builds, so a study resumed from a later checkout (the next session's
    clone) runs the pinned code from a worktree under .asv/; at the commit itself the working
    tree is used as it is (a matrix edited for a local run included)."""
    if _git(root, "rev-parse", "HEAD") == commit:
        return root
    tree = root / ".asv" / "study-src" / commit[:12]
    if not (tree / ".git").exists():
        _git(root, "worktree", "prune")
        _git(root, "worktree", "add", "--detach", "--force", str(tree), commit)
    return tree


def interpreter_dirs(pythons: set[str]) -> list[str]:
    """Folders to put first on PATH so that asv finds each ``pythonX.Y`` of the matrix.

    pyenv's shims only answer for the versions ``pyenv global`` lists: a shim that exists but
    fails is bypassed with the matching install under $PYENV_ROOT/versions.
    """
    dirs = []
    for version in sorted(pythons):
        exe = f"python{version}"
        if (
            shutil.which(exe)
            and subprocess.run([exe, "-c", ""], capture_output=True, timeout=60).returncode == 0
        ):
            continue
        root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        found = sorted(root.glob(f"versions/{version}.*/bin/{exe}"))
        if found:
            dirs.append(str(found[-1].parent))
    return dirs


def pinned_commit(results_dir: Path, machine: str) -> str | None:
    """The commit of this machine's study, or None before a study started (HarnessError naming
    the file when it holds no commit)."""
    return sidecars.read_study_pin(results_dir, machine)


def pin(results_dir: Path, machine: str, commit: str) -> None:
    """Record the commit the study of ``machine`` measures."""
    io.write_jsonl(sidecars.study_pin_path(results_dir, machine), [{"commit": commit}])


def has_results(results_dir: Path, machine: str, commit: str, step: Step) -> bool:
    """True when asv already saved results of this commit and environment."""
    folder = results_dir / machine
    for path in folder.glob(f"{commit[:8]}-*.json"):
        try:
            data = asvfiles.read_json(path)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("env_name") == step.env_name:
            return True
    return False


#: Seconds one environment's asv run may take: its creation, installation (numpy built from
#: source included) and benchmarks took 4.6 to 14.3 min on the 2-core study machine (vm-epyc).
STEP_TIMEOUT = 3 * 3600


def run_step(
    step: Step,
    conf: dict[str, Any],
    commit: str,
    machine: str,
    root: Path,
    log_dir: Path,
    source: Path | None = None,
) -> str:
    """Run asv for one environment; return 'done', or the status recorded with the reason
    ('failed to install', 'backend unavailable', 'timed out': :data:`missing.STATUSES`)."""
    conf_path = log_dir / f"{env_key(step.env_name)}.asv.conf.json"
    io.write_text(conf_path, json.dumps(step_conf(conf, step, root, source), indent=2))
    cmd = [
        sys.executable,
        "-m",
        "asv",
        "run",
        f"{commit}^!",
        "--config",
        str(conf_path),
        "--machine",
        machine,
        "--launch-method",
        "forkserver",
        "--skip-existing-successful",
        "--show-stderr",
    ]
    log = log_dir / f"{env_key(step.env_name)}.log"
    results_dir = Path(step_conf(conf, step, root)["results_dir"])
    before = keep_benchmarks.read_entries(results_dir)
    with open(log, "w") as fh:
        code = processes.run_in_group(
            cmd, STEP_TIMEOUT, cwd=root, stdout=fh, stderr=subprocess.STDOUT
        )
    keep_benchmarks.restore(results_dir, before)
    if has_results(results_dir, machine, commit, step):
        missing.clear(results_dir, machine, commit, step.env_name)
        return "done"
    if code is None:
        reason = f"asv did not finish within {STEP_TIMEOUT:g} s; stopped with its children"
        status = "timed out"
    else:
        reason = failure_reason(log.read_text(errors="replace"), code)
        status = "backend unavailable" if "BackendUnavailable" in reason else "failed to install"
    missing.write(results_dir, _record(step, machine, commit, status, reason, log.name))
    return status


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*:")


def failure_reason(log: str, returncode: int) -> str:
    """The line of an asv log that says why: pip's last ERROR line, else the last exception
    raised in the environment (an import failing, say), else the last line naming an error."""
    lines = [line.strip() for line in log.splitlines()]
    pip = [line for line in lines if line.startswith("ERROR: ")]
    if pip:
        return pip[-1].removeprefix("ERROR: ")
    raised = [line for line in lines if _EXCEPTION.match(line) and "ProcessError" not in line]
    if raised:
        return raised[-1]
    return next((line for line in reversed(lines) if "rror" in line), f"asv exited {returncode}")


def timings_path(results_dir: Path, machine: str) -> Path:
    return sidecars.study_pin_path(results_dir, machine).with_name("timings.jsonl")


def record_time(
    results_dir: Path, machine: str, commit: str, step: Step, outcome: str, seconds: float
) -> None:
    """Append one environment's wall time (creation, installation and the asv run) to the
    study's timings (issue #15: the total and the split per environment)."""
    path = timings_path(results_dir, machine)
    lines = io.read_jsonl(path) if path.exists() else []
    lines.append(
        {
            "commit": commit,
            "env_name": step.env_name,
            "outcome": outcome,
            "seconds": round(seconds, 1),
        }
    )
    io.write_jsonl(path, lines)


def _record(step: Step, machine: str, commit: str, status: str, reason: str, log: str) -> dict:
    return {
        "machine": machine,
        "commit": commit,
        "env_name": step.env_name,
        "status": status,
        "reason": reason,
        "python": step.python,
        "requirements": step.req,
        "env": step.env,
        "env_nobuild": step.env_nobuild,
        "log": log,
    }


def _pack(machine_folder: Path, commit: str, step: Step) -> str | None:
    """Pack a run folder asv has finished writing (harness.study.pack); None when absent."""
    folder = machine_folder / HARNESS_DIR / run_folder_name(commit, step.env_name)
    if not folder.is_dir() or not has_results(
        machine_folder.parent, machine_folder.name, commit, step
    ):
        return None
    return pack.pack(machine_folder, folder)


def backend_problem(step: Step) -> str | None:
    """Why the BLAS implementation this step asks for cannot be loaded here (None: it can)."""
    name = step.env_nobuild.get(backends.ENV) or step.env.get(backends.ENV)
    return backends.unavailable_reason(name) if name else None


def ambient_steering(study: list[Step], environ: dict[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that some environment of the matrix sets: asv passes the
    driver's environment on, so an ambient ``OPENBLAS_CORETYPE=Haswell`` (an AMD VM here exports
    one) would steer every environment that leaves it unset, the null control among them."""
    names = {k for step in study for k in (*step.env, *step.env_nobuild)}
    return {k: v for k, v in sorted(environ.items()) if k in names}


def cpu_problem(results_dir: Path, machine: str, commit: str, here: str) -> str | None:
    """Why this machine (CPU model ``here``) cannot add to the study of ``commit`` in
    results/<machine>: another CPU model ran some of it. The machine name is the asv machine,
    by default the hostname, which another VM can share: its environments would then be compared
    across CPUs, and every difference blamed on the one factor each changes (issue #10)."""
    fps = sidecars.load_fingerprints(results_dir, warn=lambda line: None)
    models = Counter(
        str(sidecars.fingerprint_columns(fp).get("fp_cpu") or "")
        for (m, c, _), fp in fps.by_key.items()
        if (m, c) == (machine, commit)
    )
    models.pop("", None)
    if set(models) <= {here}:
        return None
    ran = ", ".join(f"{model} ({n} environments)" for model, n in sorted(models.items()))
    return (
        f"results/{machine} holds the study of {commit[:8]} run on {ran}; "
        f"this machine is {here}: adding to it would compare environments across CPUs. Study "
        f"this machine under a name of its own: make study MACHINE=NAME (python -m harness.study "
        f"--machine NAME)"
    )


def _warn(line: str) -> None:
    """The driver's warning sink: one line on stderr."""
    print(f"harness.study: warning: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.study", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", default=str(ROOT / "asv.conf.json"))
    parser.add_argument("--only", help="regular expression on the environment description")
    parser.add_argument(
        "--list", action="store_true", help="list the environments and whether they are done"
    )
    parser.add_argument(
        "--commit", help="the commit to study (default: the pinned study's commit, else HEAD)"
    )
    parser.add_argument("--machine", default=store.machine_name())
    args = parser.parse_args(argv)

    conf_path = Path(args.config).resolve()
    conf = load_conf(conf_path)
    root = conf_path.parent
    results_dir = root / conf.get("results_dir", "results")
    rev = args.commit or pinned_commit(results_dir, args.machine) or "HEAD"
    commit = subprocess.run(
        ["git", "rev-parse", rev], cwd=root, capture_output=True, text=True, check=True, timeout=300
    ).stdout.strip()
    # The matrix and the benchmarks are those of the studied commit.
    source = source_tree(root, commit)
    if (source / conf_path.name).is_file():
        conf_path = source / conf_path.name
        conf = load_conf(conf_path)
    todo = [s for s in steps(conf_path) if not args.only or re.search(args.only, s.describe())]
    cpu = cpu_problem(results_dir, args.machine, commit, fingerprint.cpu_info()["model"])
    if args.list:
        if cpu:
            _warn(cpu)
        print(f"study of {commit[:8]} on {args.machine}")
        failures = {
            r["env_name"]: r["status"]
            for r in missing.load(results_dir, machine=args.machine, commit=commit[:8], warn=_warn)
        }
        for s in todo:
            done = has_results(results_dir, args.machine, commit, s)
            state = "done" if done else failures.get(s.env_name, "todo")
            print(f"{state:<20}{s.describe()}")
        return 0
    if cpu:  # before `asv machine` rewrites the folder's machine.json
        print(f"harness.study: {cpu}", file=sys.stderr)
        return 2
    if ambient := ambient_steering(steps(conf_path), dict(os.environ)):
        for k in ambient:
            del os.environ[k]
        listed = ", ".join(f"{k}={v}" for k, v in ambient.items())
        _warn(f"unset for the study, since the matrix sets them per environment: {listed}")
    pin(results_dir, args.machine, commit)
    log_dir = root / ".asv" / "study-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ["HARNESS_MACHINE"] = args.machine
    extra = interpreter_dirs({s.python for s in todo})
    os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])
    # asv points ASV_CONF_DIR at the one-environment config's folder: name the real results folder.
    os.environ["HARNESS_RESULTS"] = str(results_dir)
    subprocess.run(
        [sys.executable, "-m", "asv", "machine", "--yes", "--machine", args.machine],
        cwd=root,
        capture_output=True,
        check=False,
        timeout=300,
    )
    failed = 0
    machine_folder = results_dir / args.machine
    for s in steps(conf_path):  # every environment an earlier driver left unpacked
        _pack(machine_folder, commit, s)
    bar = tqdm(todo, unit="env", file=sys.stderr)
    for s in bar:
        bar.set_description(s.describe()[:60])
        if has_results(results_dir, args.machine, commit, s):
            continue
        if reason := backend_problem(s):
            # No environment is built for a backend that cannot load: say so, go on.
            record = _record(s, args.machine, commit, "backend unavailable", reason, "")
            missing.write(results_dir, record)
            failed += 1
            bar.write(f"backend unavailable: {s.describe()}: {reason}")
            continue
        start = time.monotonic()
        outcome = run_step(s, conf, commit, args.machine, root, log_dir, source)
        record_time(results_dir, args.machine, commit, s, outcome, time.monotonic() - start)
        if line := _pack(machine_folder, commit, s):
            bar.write(line)
        failed += outcome != "done"
        bar.write(f"{outcome}: {s.describe()}")
    print(
        f"{len(todo) - failed} of {len(todo)} environments have results; {failed} failed to "
        "install or lack their backend (see `harness table`)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
