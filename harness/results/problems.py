"""How the readers report what they leave out: one line per file, paths relative to the folder."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

Warn = Callable[[str], None]


class ResultsWarning(UserWarning):
    """A results file, or part of one, was left out; the message names it and says why."""


def default_warn(line: str) -> None:
    """The sink when a caller passes none: a :class:`ResultsWarning`."""
    warnings.warn(line, ResultsWarning, stacklevel=4)


def relative_line(line: str, root: Path) -> str:
    """A warning line with the results folder's own path left out (outputs stay relocatable)."""
    for prefix in sorted({str(root.resolve()) + os.sep, str(root) + os.sep}, key=len, reverse=True):
        line = line.replace(prefix, "")
    return line


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (as given when it lies elsewhere), with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def subfolders(folder: Path, root: Path, warn: Warn) -> list[Path]:
    """The folders inside ``folder``, sorted; one line to ``warn`` for it or an entry that cannot
    be inspected (unreadable, a symlink loop), which is then left out."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as err:
        warn(f"{relpath(folder, root)}: cannot list ({err.strerror or err}); skipped")
        return []
    out = []
    for e in entries:
        try:
            if e.is_dir():
                out.append(Path(e.path))
        except OSError as err:
            warn(f"{relpath(Path(e.path), root)}: {err.strerror or err}; skipped")
    return sorted(out)
