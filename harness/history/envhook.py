"""asv's build and install steps for scanpy commits (asv.scanpy.conf.json), standard library only.

asv runs this file with the environment's Python before the harness is importable there:

- ``build BUILD_DIR CACHE_DIR COMMIT``: ``pip wheel --no-deps`` of the checkout (in place when
  the environment has every build requirement, else in pip's isolated environment). hatch-vcs reads
  the version from git; a tree without git metadata (an unpacked sdist, ``git archive``) gets
  SETUPTOOLS_SCM_PRETEND_VERSION from the tree's PKG-INFO or ``0+g<commit>``, so any commit
  builds. The same for the ``scanpy/`` and ``src/scanpy/`` layouts (hatch reads either).
- ``install PROJECT_ROOT``: a ``.pth`` in the environment's site-packages that puts this project
  on ``sys.path`` (the harness beside scanpy, always the working tree's) and sets
  HARNESS_RESULTS, so the benchmarks' sidecars go beside this config's asv results
  (``.asv/scanpy/results``), never into the published study under ``results/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

#: The .pth file that makes the harness importable in a scanpy environment.
PTH_NAME = "pca_harness_history.pth"
#: Where asv.scanpy.conf.json keeps its results, relative to the project root.
RESULTS = Path(".asv") / "scanpy" / "results"
BUILD_TIMEOUT = 1200


def pretend_version(build_dir: Path, commit: str) -> str | None:
    """None when git can describe the tree (hatch-vcs then finds the version itself)."""
    # The tree's own repository only: an unpacked sdist inside another checkout is not one.
    probe = subprocess.run(
        ["git", "-C", str(build_dir), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == build_dir.resolve():
        return None
    pkg_info = build_dir / "PKG-INFO"
    if pkg_info.is_file():
        m = re.search(r"^Version: (\S+)$", pkg_info.read_text(errors="replace"), re.M)
        if m:
            return m.group(1)
    return f"0+g{commit[:9]}"


def build_isolation_needed(build_dir: Path) -> bool:
    """False when every build requirement of the tree is installed here (hatchling, hatch-vcs):
    building in place then takes 2 s instead of 7 s for pip's fresh isolated build environment."""
    # Imported here: optional (no packaging, or Python 3.10 without tomllib: isolate the build).
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        import tomllib
        from packaging.requirements import Requirement

        data = tomllib.loads((build_dir / "pyproject.toml").read_text())
        for spec in data["build-system"]["requires"]:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate():
                continue
            if not req.specifier.contains(distribution(req.name).version, prereleases=True):
                return True
    except (ImportError, OSError, KeyError, ValueError, PackageNotFoundError):
        return True
    return False


def build(build_dir: Path, cache_dir: Path, commit: str) -> int:
    env = dict(os.environ)
    version = pretend_version(build_dir, commit)
    if version is not None:
        env["SETUPTOOLS_SCM_PRETEND_VERSION"] = version
        env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_SCANPY"] = version
        print(f"envhook: no git metadata in {build_dir}: version {version}", flush=True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(cache_dir), str(build_dir)]
    if not build_isolation_needed(build_dir):
        cmd.insert(4, "--no-build-isolation")
    return subprocess.run(cmd, env=env, check=False, timeout=BUILD_TIMEOUT).returncode


def install(project_root: Path) -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    results = (project_root / RESULTS).resolve()
    lines = [
        str(project_root.resolve()),
        f"import os; os.environ.setdefault('HARNESS_RESULTS', {str(results)!r})",
    ]
    tmp = site / f".{PTH_NAME}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, site / PTH_NAME)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "build":
        return build(Path(argv[1]), Path(argv[2]), argv[3])
    if len(argv) == 2 and argv[0] == "install":
        return install(Path(argv[1]))
    print(
        "usage: envhook.py build BUILD_DIR CACHE_DIR COMMIT | install PROJECT_ROOT", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
