"""Children that cannot outlive their caller (harness.processes)."""

from __future__ import annotations

import os
import subprocess
import time

from harness import processes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent, the shell, was killed and init reaps it).
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_a_group_past_its_time_is_killed_with_its_grandchildren(tmp_path):
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    code = processes.run_in_group(
        ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], 2, stdout=subprocess.DEVNULL
    )
    assert code is None and time.monotonic() - t0 < 30
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def test_a_group_that_ends_gives_its_exit_status():
    assert processes.run_in_group(["sh", "-c", "exit 3"], 30) == 3
