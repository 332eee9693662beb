"""``python -m harness calibrate``: run the verdicts' validation grid and keep it beside the study.

The grid (:func:`harness.analysis.calibration.grid`) solves planted spectra with scikit-learn's
real PCA and applies changes whose answer is known; the write-up reads the kept rows and prints
each verdict's false-positive and false-negative rates (issue #10 point 2).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from harness import io
from harness.analysis import calibration
from harness.commands import check_writable
from harness.errors import HarnessError

#: Where the write-up looks for the grid, inside a results folder.
GRID_FILE = "calibration.jsonl"
SEEDS = 5


def run(seeds: int) -> tuple[list[dict], float]:
    """The grid's rows over ``seeds`` seeds, and the seconds it took."""
    start = time.monotonic()
    total = len(calibration.SPECTRA) * seeds
    with tqdm(total=total, unit="matrix", desc="calibration grid") as bar:
        last: list[str] = []

        def progress(step: str) -> None:
            key = " ".join(step.split()[:2])  # "<spectrum> <seed>": one matrix
            if not last or last[-1] != key:
                if last:
                    bar.update(1)
                last.append(key)

        g = calibration.grid(tuple(range(seeds)), progress=progress)
        bar.update(total - bar.n)
    return g.to_dict("records"), time.monotonic() - start


def cli_calibrate(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise HarnessError("--seeds: must be at least 1")
    out = Path(args.out)
    check_writable(out)
    rows, seconds = run(args.seeds)
    io.write_jsonl(out, rows)
    print(f"{len(rows):,} components judged in {seconds:.0f} s; written to {out}")
    return 0
