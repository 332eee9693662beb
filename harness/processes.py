"""Child processes that cannot outlive their caller: each leads its own process group, which is
killed whole on timeout, on an interrupt and on return (asv, pip and dask start grandchildren)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the child's process group (it leads it: start_new_session), then reap the child."""
    # Linux keeps a group id in use while any member lives, so the id cannot name a stranger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_in_group(cmd: list[str], timeout: float, **popen: Any) -> int | None:
    """Run ``cmd`` in a new process group; its exit status, or None when ``timeout`` ran out.

    The group is killed on return either way, so nothing the child started keeps running.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, **popen)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        kill_group(proc)
