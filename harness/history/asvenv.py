"""asv.scanpy.conf.json with the clone and Python of this run, and its environment as asv builds it.

The history and the gate build and install commits through asv's own Environment API, so they
share asv's environments and build cache with stock ``asv --config asv.scanpy.conf.json run``:
a commit built by either is never built again. :func:`write_config` leaves a copy of the
configuration with the clone and Python filled in (``.asv/scanpy/asv.conf.json``, beside the
environments) for stock asv.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asv import environment, util
from asv.config import Config
from asv.repo import get_repo

from harness import io
from harness.errors import HarnessError
from harness.history.git import Repo, offline_submodule_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / "asv.scanpy.conf.json"
#: The clone when neither --repo nor $SCANPY_REPO names one: beside this project.
DEFAULT_REPO = PROJECT_ROOT.parent / "scanpy"
#: Where the environments live instead of the config's env_dir (asv's build cache is inside).
ENV_DIR_VAR = "HARNESS_SCANPY_ENV_DIR"
#: Lines of a failed command's output kept as the reason.
REASON_LINES = 12


def default_repo() -> str:
    """$SCANPY_REPO, else ../scanpy beside this project."""
    return os.environ.get("SCANPY_REPO") or str(DEFAULT_REPO)


@contextlib.contextmanager
def _in_project() -> Iterator[None]:
    # asv resolves the config's relative paths, and {conf_dir}, from the working directory.
    before = os.getcwd()
    os.chdir(PROJECT_ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def load_config(repo: Repo, python: str | None) -> Config:
    """The scanpy configuration for ``repo`` (and ``python``), paths made absolute."""
    with _in_project():
        conf = Config.load(str(CONFIG))
    conf.repo = str(repo.path)
    if python:
        conf.pythons = [python]
    for key in ("env_dir", "results_dir", "html_dir", "benchmark_dir"):
        setattr(conf, key, str((PROJECT_ROOT / getattr(conf, key)).resolve()))
    if os.environ.get(ENV_DIR_VAR):  # e.g. the tests' environment, kept in the dataset cache
        conf.env_dir = str(Path(os.environ[ENV_DIR_VAR]).expanduser().resolve())
    return conf


def derived_path(conf: Config) -> Path:
    """Where the filled-in copy of the configuration goes: beside its environments."""
    return Path(conf.env_dir).parent / "asv.conf.json"


def write_config(conf: Config) -> Path:
    """The configuration as this run uses it, for stock asv (``asv --config PATH``).

    asv runs from the config's folder, so ``{conf_dir}`` in the commands is spelled out.
    """
    keys = ("project", "repo", "branches", "dvcs", "environment_type", "install_timeout")
    data: dict[str, Any] = {k: getattr(conf, k) for k in keys}

    def spelled(cmds: list[str]) -> list[str]:
        return [c.replace("{conf_dir}", str(PROJECT_ROOT)) for c in cmds]

    data.update(
        version=1,
        project_url=conf.project_url,
        show_commit_url=conf.show_commit_url,
        pythons=conf.pythons,
        benchmark_dir=conf.benchmark_dir,
        env_dir=conf.env_dir,
        results_dir=conf.results_dir,
        html_dir=conf.html_dir,
        build_cache_size=conf.build_cache_size,
        launch_method=conf.launch_method,
        build_command=spelled(conf.build_command),
        install_command=spelled(conf.install_command),
        uninstall_command=conf.uninstall_command,
        matrix=conf.matrix,
    )
    path = derived_path(conf)
    io.write_text(path, io.dumps(data) + "\n")
    return path


@dataclass(frozen=True)
class Installed:
    """The outcome of installing one commit: ok, or the stage that failed and why."""

    ok: bool
    seconds: float
    built: bool  # False when asv's build cache already held the wheel
    stage: str = ""  # "check out" | "build" | "install"
    reason: str = ""


def _stage(cmd: list[str]) -> str:
    text = " ".join(cmd)
    if "envhook.py build" in text:
        return "build"
    if text.startswith(("git", "/usr/bin/git")) or "/git " in text or text.endswith("/git"):
        return "check out"
    return "install"


def _reason(err: util.ProcessError) -> str:
    lines = [
        line.strip()
        for line in f"{err.stdout or ''}\n{err.stderr or ''}".splitlines()
        if line.strip()
    ]
    errors = [line for line in lines if "error" in line.lower()] or lines
    return " | ".join(errors[-REASON_LINES:])[-1500:] or str(err)


class ScanpyEnv:
    """One asv environment of the scanpy configuration, holding one commit at a time."""

    def __init__(self, repo: Repo, python: str | None = None, refs: tuple[str, ...] = ()):
        self.repo = repo
        self.git_env = offline_submodule_env(repo.submodules(list(refs)))
        self.conf = load_config(repo, python)
        write_config(self.conf)
        with _in_project():
            envs = list(environment.get_environments(self.conf, None, verbose=False))
        if not envs:
            raise HarnessError(f"{CONFIG}: no environment for Python {python or 'default'}")
        self.env = envs[0]
        self.asv_repo = get_repo(self.conf)
        self._lock: Any = None

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def python(self) -> Path:
        return Path(self.env._path) / "bin" / "python"

    @property
    def requirements(self) -> dict[str, str]:
        return dict(self.env.requirements)

    def lock(self) -> None:
        """Hold the environment for this process: two runs must not install into it at once."""
        path = Path(self.conf.env_dir) / f".{self.env.hashname}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(path, "w")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(
                f"{self.env._path}: another history or gate is using this environment"
            ) from None

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def create(self) -> float:
        """Create the environment if asv has not (seconds taken; 0 when it existed)."""
        t0 = time.perf_counter()
        try:
            with _in_project(), _environ(self.git_env):
                self.env.create()
        except util.ProcessError as err:
            raise HarnessError(
                f"environment {self.name}: creation failed: {_reason(err)}"
            ) from None
        return time.perf_counter() - t0

    def install(self, sha: str) -> Installed:
        """Build (unless asv's build cache has it) and install scanpy at ``sha``."""
        cached = self.env._cache.get_cache_dir(sha) is not None
        t0 = time.perf_counter()
        try:
            with _in_project(), _environ(self.git_env):
                self.env.install_project(self.conf, self.asv_repo, sha)
        except util.ProcessError as err:
            return Installed(
                False, time.perf_counter() - t0, not cached, _stage(list(err.args)), _reason(err)
            )
        except util.UserError as err:  # e.g. a build that left no wheel, or several
            return Installed(False, time.perf_counter() - t0, not cached, "build", str(err))
        return Installed(True, time.perf_counter() - t0, not cached)


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    # asv's git calls inherit os.environ: skip submodules for the duration (see git.py).
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
