"""The scanpy repository a history walks: its first-parent commits, their metadata and sources.

Every git call has a timeout, and a bad repository or range becomes one HarnessError naming it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the harness supports it; 3.11 ships tomllib)
    tomllib = None

GIT_TIMEOUT = 120
#: scanpy's PR numbers as squash merges write them: "Title (#1234)".
_PR = re.compile(r"\(#(\d+)\)\s*$")
#: Where scanpy's package lives: the top level until #3092 (June 2024), then src/.
PACKAGE_DIRS = ("src/scanpy", "scanpy")


@dataclass(frozen=True)
class Commit:
    """One first-parent commit: hash, author date (ISO), subject and the PR it merged, if any."""

    sha: str
    date: str
    subject: str

    @property
    def pr(self) -> int | None:
        m = _PR.search(self.subject)
        return int(m.group(1)) if m else None

    @property
    def short(self) -> str:
        return self.sha[:9]

    def to_dict(self) -> dict[str, object]:
        return {"sha": self.sha, "date": self.date, "subject": self.subject, "pr": self.pr}


class Repo:
    """A local git clone (worktree or bare); HarnessError when ``path`` is not one."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise HarnessError(f"{path}: not a directory (expected a git clone of scanpy)")
        try:
            bare = self.git("rev-parse", "--is-bare-repository").strip() == "true"
            top = "" if bare else self.git("rev-parse", "--show-toplevel").strip()
        except HarnessError:
            raise HarnessError(f"{path}: not a git repository") from None
        if not bare and Path(top).resolve() != self.path:
            raise HarnessError(f"{path}: not a git repository (it lies inside {top})")

    def git(self, *args: str, check: bool = True) -> str:
        """Run git in the repository; stdout, or HarnessError with git's first line of stderr."""
        try:
            done = subprocess.run(
                ["git", "-C", str(self.path), *args],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT,
                check=False,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            )
        except subprocess.TimeoutExpired:
            raise HarnessError(f"{self.path}: git {args[0]} timed out") from None
        if check and done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["failed"])[0]
            raise HarnessError(f"{self.path}: git {' '.join(args[:2])}: {first}")
        return done.stdout

    def resolve(self, name: str) -> str:
        """The full hash of a commit name (tag, branch, prefix), or HarnessError."""
        out = self.git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
        if not out.strip():
            raise HarnessError(f"{self.path}: {name!r} does not name a commit")
        return out.strip()

    def first_parent_range(self, spec: str) -> list[Commit]:
        """``A..B`` as the commits a history walks: A itself, then every first-parent commit of
        A..B, oldest first (A is the reference the first change is measured against)."""
        if spec.count("..") != 1 or "..." in spec:
            raise HarnessError(f"range {spec!r}: expected A..B (two commits)")
        a_name, b_name = spec.split("..")
        a, b = self.resolve(a_name), self.resolve(b_name)
        line = self.git("rev-list", "--first-parent", b).split()
        if a not in line:
            raise HarnessError(f"range {spec!r}: {a_name} is not on {b_name}'s first-parent line")
        shas = line[: line.index(a)][::-1]
        if not shas:
            raise HarnessError(f"range {spec!r} holds no commits")
        return self.describe([a, *shas])

    def describe(self, shas: list[str]) -> list[Commit]:
        """Commit metadata for ``shas``, in that order."""
        out = self.git("log", "--no-walk=unsorted", "--format=%H%x00%aI%x00%s", *shas)
        by_sha = {}
        for line in out.splitlines():
            sha, date, subject = line.split("\x00", 2)
            by_sha[sha] = Commit(sha, date, subject)
        return [by_sha[s] for s in shas]

    def source_key(self, sha: str) -> str:
        """What decides the wheel a commit builds to (the package tree, the build settings and
        requires-python): commits with equal keys build identical code, so one probe serves all.
        (The version hatch-vcs derives differs; the probe's PCA does not read it.)
        """
        tree = ""
        for folder in PACKAGE_DIRS:
            tree = self.git("rev-parse", "--verify", "--quiet", f"{sha}:{folder}", check=False)
            if tree.strip():
                break
        pyproject = self.git("show", f"{sha}:pyproject.toml", check=False)
        # hatch.toml may hold build settings too ([build]); its blob decides as a whole.
        hatch = self.git("rev-parse", "--verify", "--quiet", f"{sha}:hatch.toml", check=False)
        return f"{tree.strip()}:{hatch.strip()}:{_build_settings(pyproject)}"

    def submodules(self, shas: list[str]) -> list[str]:
        """Submodule names in .gitmodules at ``shas`` and HEAD (asv checks them out)."""
        names: set[str] = set()
        for ref in ["HEAD", *shas]:
            text = self.git("show", f"{ref}:.gitmodules", check=False)
            names.update(re.findall(r'^\[submodule "([^"]+)"\]', text, re.M))
        return sorted(names)


def _build_settings(pyproject: str) -> str:
    """The parts of pyproject.toml a ``pip wheel --no-deps`` result depends on, canonically."""
    if tomllib is None:  # Python 3.10: the whole file decides
        return hashlib.sha256(pyproject.encode()).hexdigest()
    try:
        data = tomllib.loads(pyproject)
    except tomllib.TOMLDecodeError:
        return "unparsable:" + hashlib.sha256(pyproject.encode()).hexdigest()
    keep = {
        "build-system": data.get("build-system"),
        "hatch": data.get("tool", {}).get("hatch"),
        "requires-python": data.get("project", {}).get("requires-python"),
        "entry-points": data.get("project", {}).get("entry-points"),
    }
    return repr(sorted((k, repr(v)) for k, v in keep.items()))


def offline_submodule_env(names: list[str]) -> dict[str, str]:
    """Git config (as environment variables) that makes asv's ``submodule update`` skip every
    submodule: scanpy's ``notebooks`` points at GitHub, which builds never need and an offline
    machine cannot reach (the checkout would fail)."""
    env: dict[str, str] = {}
    base = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    for i, name in enumerate(names):
        env[f"GIT_CONFIG_KEY_{base + i}"] = f"submodule.{name}.update"
        env[f"GIT_CONFIG_VALUE_{base + i}"] = "none"
    if names:
        env["GIT_CONFIG_COUNT"] = str(base + len(names))
    return env
