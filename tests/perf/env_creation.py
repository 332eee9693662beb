"""What creating one study environment costs, asv's way against uv's (a script, not a test).

asv's ``virtualenv`` environment runs ``virtualenv`` and then one ``pip install`` per matrix
requirement (``asv.plugins.virtualenv``), then the project's install_command. Side by side, for
the baseline's pins, each pass in a new temporary folder, every pass timed (the first may meet
an empty cache; later ones see it warm, as every environment after the study's first does):

- ``virtualenv + pip``: what asv does today;
- ``uv venv + uv pip``: one resolution for all the requirements (``pip install uv`` first).

    .venv/bin/python tests/perf/env_creation.py [--passes 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PINS = ["numpy==2.4.6", "scanpy==1.11.5", "scikit-learn==1.9.1", "scipy==1.17.1"]
PROJECT_DEPS = ["threadpoolctl", "significantdigits", "igraph", "leidenalg", "packaging", "tqdm"]
TIMEOUT = 1800


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, timeout=TIMEOUT, capture_output=True)


def asv_way(where: Path) -> float:
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "virtualenv", "-q", str(where)])
    py = str(where / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", "wheel", "pip>=8"])
    for pin in PINS:  # asv installs the matrix one requirement at a time
        _run([py, "-m", "pip", "install", "-q", pin])
    _run([py, "-m", "pip", "install", "-q", *PROJECT_DEPS])
    return time.perf_counter() - t0


def uv_way(where: Path, uv: str) -> float:
    t0 = time.perf_counter()
    _run([uv, "venv", "-q", "--python", sys.executable, str(where)])
    py = str(where / "bin" / "python")
    _run([uv, "pip", "install", "-q", "--python", py, *PINS, *PROJECT_DEPS])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        sys.exit("env_creation: uv not found (pip install uv)")
    times: dict[str, list[float]] = {"virtualenv + pip": [], "uv venv + uv pip": []}
    with tempfile.TemporaryDirectory(prefix="env-creation-") as tmp:
        for i in range(args.passes):
            times["virtualenv + pip"].append(asv_way(Path(tmp) / f"venv-{i}"))
            times["uv venv + uv pip"].append(uv_way(Path(tmp) / f"uv-{i}", uv))
    for name, ts in times.items():
        print(f"{name}: {', '.join(f'{t:.1f} s' for t in ts)} (passes in order)")


if __name__ == "__main__":
    main()
