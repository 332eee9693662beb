"""``python -m harness crossenv RESULTS``: the reading edge of the cross-environment comparison.

Finds the digests beside asv's results (:mod:`harness.bench.digests`), picks the runs a view
shows (:func:`harness.analysis.runs.newest`), labels them and hands everything to
:func:`harness.analysis.crossenv.crossenv`, which reads nothing itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.analysis import runs
from harness.analysis.crossenv import CrossEnv, crossenv
from harness.bench import digests as artifacts
from harness.bench.digests import Digest
from harness.commands import output, stderr_warn
from harness.errors import HarnessError
from harness.render import crossenv as render_crossenv
from harness.results import environments, reader
from harness.results.environments import Key
from harness.results.problems import relative_line, relpath
from harness.results.reader import Loaded
from harness.results.runs import RunInfo, run_info
from harness.results.sidecars import (
    iter_run_folders,
    load_fingerprints,
    read_fingerprint,
    run_key,
)

Warn = Callable[[str], None]


def _fingerprint_key(folder: Path, root: Path, warn: Warn) -> Key | None:
    """The run key of a sidecar folder's fingerprint, None when it has none that names a run.

    Read (and its problems reported to ``warn``) by the one fingerprint reader, so the labels
    this view shows come with the same warnings as the table's.
    """
    path = folder / "fingerprint.jsonl"
    if not os.path.lexists(path):  # the suite writes it before any artifact
        warn(f"{relpath(path, root)}: no such file; the run is labelled from asv's results")
        return None
    fp = read_fingerprint(path, root, warn)
    key = run_key(fp) if fp is not None else None
    return key if key and key[1] and key[2] else None


def _digest_key(files: Sequence[Path]) -> Key | None:
    """The run key of the first readable digest among ``files``."""
    for path in files:
        try:
            d = artifacts.load(path)
        except ValueError:
            continue
        return (d.key.machine, d.key.commit, d.key.env_name)
    return None


def artifact_folders(root: Path, warn: Warn) -> dict[Key, list[Path]]:
    """Run key -> its artifact files, for every run folder holding some (nothing loaded yet).

    The key comes from the folder's fingerprint line, else from its first artifact.
    """
    out: dict[Key, list[Path]] = {}
    for folder in iter_run_folders(root):
        files = sorted((folder / "artifacts").glob("*.npz"))
        if not files:
            continue
        key = _fingerprint_key(folder, root, warn) or _digest_key(files)
        if key is None or not key[1]:
            where = relpath(folder, root)
            warn(f"{where}: no readable artifact; left out of the comparison")
            continue
        out.setdefault(key, []).extend(files)
    return out


def warn_missing_artifacts(root: Path, warn: Warn) -> None:
    """One line per run whose stability records exist but whose artifacts do not."""
    for folder in iter_run_folders(root):
        records = folder / "records"
        expected = records.is_dir() and any(
            p.name.startswith("stability.") for p in records.iterdir()
        )
        if expected and not any((folder / "artifacts").glob("*.npz")):
            where = relpath(folder, root)
            warn(f"{where}: stability records but no artifacts; left out of the comparison")


def load_digests(files: dict[Key, list[Path]], keys: Sequence[Key], warn: Warn) -> list[Digest]:
    """The digests of the given runs; unreadable files reported to ``warn`` and left out."""
    out = []
    for key in keys:
        for path in files.get(key, []):
            try:
                out.append(artifacts.load(path))
            except ValueError as err:
                warn(f"{path}: {err}")
    return out


def run_infos(loaded: Loaded, keys: Sequence[Key]) -> list[RunInfo]:
    """A label for each run: the loaded folder's, else from its fingerprint alone."""
    known = {i.key: i for i in loaded.infos()}
    missing = [k for k in keys if k not in known]
    fps = load_fingerprints(loaded.root, warn=lambda line: None) if missing else None
    return [known[k] if k in known else run_info(k, fps.find(*k)) for k in keys]


def digests_of(
    loaded: Loaded, keys: Sequence[Key] | None, warn: Warn, **select: object
) -> list[Digest]:
    """The digests of ``keys`` (default: the runs :func:`runs.newest` picks with ``select``)."""
    files = artifact_folders(loaded.root, warn)
    if keys is None:
        dates = {i.key: i.date for i in loaded.infos()}
        keys = runs.newest(list(files), dates, **select)  # type: ignore[arg-type]
    return load_digests(files, keys, warn)


def crossenv_of(
    loaded: Loaded,
    *,
    baseline: str | None = None,
    warn: Warn | None = None,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> CrossEnv:
    """The cross-environment comparison of a loaded folder (newest run of each environment
    unless ``commit`` or ``all_commits`` say otherwise); problems go to ``warn``."""
    root = loaded.root
    problems: list[str] = []

    def report(line: str) -> None:
        line = relative_line(line, root)
        problems.append(line)
        if warn:
            warn(line)

    select = {"commit": commit, "machine": machine, "all_commits": all_commits}
    digests = digests_of(loaded, None, report, **select)
    warn_missing_artifacts(root, report)
    keys = sorted({(d.key.machine, d.key.commit, d.key.env_name) for d in digests})
    return crossenv(
        digests,
        run_infos(loaded, keys),
        environments.ids(loaded),
        baseline=baseline,
        problems=problems,
    )


FORMATS = {
    "md": render_crossenv.to_markdown,
    "csv": render_crossenv.to_csv,
    "json": render_crossenv.to_json,
    "html": render_crossenv.to_html,
}


def cli_crossenv(args: argparse.Namespace) -> int:
    root = Path(args.results)
    if not root.is_dir():
        raise HarnessError(f"{root}: not a directory")
    # asv's results only date and label the runs here: their problems are the table's to report.
    loaded = reader.scan(root, warn=lambda line: None, records=False)
    result = crossenv_of(
        loaded,
        baseline=args.baseline,
        warn=stderr_warn("crossenv"),
        commit=getattr(args, "commit", None),
        machine=getattr(args, "machine", None),
        all_commits=getattr(args, "all_commits", False),
    )
    output(FORMATS[args.format](result), args.out)
    if result.problems:
        print(
            f"harness crossenv: {len(result.problems)} file(s) skipped or left out (see the warnings)",
            file=sys.stderr,
        )
    return 0
