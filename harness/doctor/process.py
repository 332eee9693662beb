"""Child processes of ``harness doctor``: each in its own process group, with a time limit.

A child (a PCA run, or a user's script) may hang or start processes of its own. Each one gets a
new session, and its whole process group is killed when it finishes, when it runs past the time
limit, and when doctor itself stops (SIGTERM, SIGINT or an exception), so nothing outlives doctor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from harness import processes
from harness.errors import HarnessError
from harness.vocabulary import DOCTOR_TIMEOUT

#: Seconds one child process may run before doctor stops it (``--timeout``).
DEFAULT_TIMEOUT = DOCTOR_TIMEOUT


def child_env() -> dict[str, str]:
    """This environment, with the harness importable in a child even when it is not installed."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def progress_bar(total: int, desc: str, unit: str, enabled: bool) -> tqdm:
    """A bar over the children's steps on stderr, shown only when stderr is a terminal."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=None if enabled else True,  # None: tqdm decides from isatty
        leave=False,
    )


def check_timeout(timeout: float) -> float:
    """``timeout`` as seconds, or HarnessError when it is not a positive number."""
    if not timeout > 0:  # also rejects NaN
        raise HarnessError(f"--timeout {timeout}: give a positive number of seconds")
    return float(timeout)


def run_child(
    cmd: Sequence[str],
    *,
    what: str,
    timeout: float,
    stderr: IO[Any],
    stdout: IO[Any] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> int:
    """Run ``cmd`` in a new process group; its exit status once it ends (HarnessError past ``timeout``).

    With ``on_line``, stdout is a pipe read line by line in a thread, else it goes to ``stdout``.
    The group is killed on return, so processes the child left running end with it.
    """
    out = subprocess.PIPE if on_line is not None else stdout
    with stop_on_sigterm():
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=stderr, text=True, env=child_env(), start_new_session=True
        )
        reader = _reader(proc, on_line) if on_line is not None else None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{what}: did not finish within {timeout:g} s (--timeout); doctor stopped it "
                "and every process it started"
            ) from None
        finally:
            processes.kill_group(proc)
            if reader is not None:
                reader.join()


def _reader(proc: subprocess.Popen[str], on_line: Callable[[str], None]) -> threading.Thread:
    """A thread that hands each stdout line to ``on_line`` until the pipe closes."""

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                on_line(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM raises SystemExit, so ``finally`` blocks kill children and remove
    temporary folders (Python's default SIGTERM action ends the process without running them).

    SIGINT already raises KeyboardInterrupt. Handlers can only be set from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)
