"""Plumbing shared by the subcommands: read a results folder, report problems, write output.

The I/O edge of every command: analysis modules take frames and return frames or dataclasses;
these functions read the disk, print warnings to stderr and write (atomically) to ``--out``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from harness import io
from harness.errors import HarnessError
from harness.results import asvfiles, reader
from harness.results.reader import Loaded


def stderr_warn(command: str) -> Callable[[str], None]:
    """The warning sink of the commands: one line on stderr per problem."""

    def warn(line: str) -> None:
        print(f"harness {command}: warning: {line}", file=sys.stderr)

    return warn


def load(path: str, command: str) -> Loaded:
    """Read a results folder for a command: HarnessError (exit 2) when nothing usable is there."""
    loaded = reader.scan(path, warn=stderr_warn(command))
    if not loaded.files:
        raise HarnessError(
            f"{path}: no readable asv results (api version {asvfiles.API_VERSION}) found"
        )
    return loaded


def check_writable(path: str | os.PathLike[str] | None, *, directory: bool = False) -> None:
    """HarnessError (exit 2) unless ``path`` can be written: a file (or with ``directory`` a
    folder) that exists as that kind or can be created, in a place this user may write to.

    Commands call it before any work, so a bad ``--out`` costs nothing and writes nothing.
    """
    if path is None or str(path) == "":
        return
    target = Path(path)
    if target.exists():
        if directory and not target.is_dir():
            raise HarnessError(f"{target}: exists and is not a directory")
        if not directory and target.is_dir():
            raise HarnessError(f"{target}: is a directory, not a file to write")
    parent = target if directory and target.is_dir() else target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise HarnessError(f"{target}: cannot be written, {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HarnessError(f"{target}: cannot be written, {parent} is not writable")


def output(text: str, out: str | None) -> None:
    """Write to ``out`` atomically, or to stdout."""
    if out:
        io.write_text(out, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
