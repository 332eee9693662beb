"""Plumbing shared by the subcommands: read a results folder, report problems, write output.

The I/O edge of every command: analysis modules take frames and return frames or dataclasses;
these functions read the disk, print warnings to stderr and write (atomically) to ``--out``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from harness import io
from harness.errors import HarnessError
from harness.results import reader
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
            f"{path}: no readable asv results (api version {reader.API_VERSION}) found"
        )
    return loaded


def output(text: str, out: str | None) -> None:
    """Write to ``out`` atomically, or to stdout."""
    if out:
        io.write_text(out, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
