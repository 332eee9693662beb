"""Set up everything HARNESS_BLAS can select: Debian libraries, MKL, a numpy built from source.

``python -m harness.study.setup_backends [--wheelhouse DIR] [--python PY] [--install-numpy]``. Idempotent
and resumable: each step checks what is there first; the numpy wheel is built once into the
wheelhouse and reused. Standard library only (it may run before any numpy is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.bench import backends

NUMPY = "2.4.6"
APT_RUNTIME = (
    "libblas3",
    "liblapack3",
    "libatlas3-base",
    "libblis4-pthread",
    "libopenblas0-pthread",
)
APT_BUILD = ("libblas-dev", "liblapack-dev", "pkg-config", "gcc", "g++")
SCIPY = "1.17.1"
SCIPY_LIMIT_S = 15 * 60
# scipy's meson wants dependency('cblas') with -Dblas=blas; Debian puts CBLAS inside libblas.so.3
# and ships no cblas.pc, so a one-line shim is put on PKG_CONFIG_PATH.
CBLAS_PC = f"""Name: cblas
Description: CBLAS inside the generic libblas.so.3
Version: 3.11.0
Libs: -L{backends.LIBDIR} -lblas
Cflags: -I/usr/include/{backends.LIBDIR.name}
"""
TIMES = "build-times.json"


def log(message: str) -> None:
    print(f"[setup_backends] {message}", flush=True)


def wheelhouse_dir() -> Path:
    """Default wheelhouse: <harness cache>/wheelhouse."""
    return backends.cache_dir() / "wheelhouse"


# --- Debian packages ----------------------------------------------------------------------------


def missing_apt(packages: tuple[str, ...]) -> list[str]:
    """The packages dpkg does not list as installed (all of them where there is no dpkg)."""
    if not shutil.which("dpkg-query"):
        return list(packages)
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *packages],
        capture_output=True,
        text=True,
    ).stdout
    ok = {line.split()[0] for line in out.splitlines() if line.endswith("install ok installed")}
    return [p for p in packages if p not in ok]


def _privilege() -> list[str] | None:
    """[] when root, ['sudo', '-n'] when password-less sudo works, else None."""
    if os.geteuid() == 0:
        return []
    if (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    ):
        return ["sudo", "-n"]
    return None


def ensure_apt(packages: tuple[str, ...] = APT_RUNTIME + APT_BUILD) -> list[str]:
    """Install the missing Debian packages where allowed; return those still missing."""
    missing = missing_apt(packages)
    if not missing:
        return []
    prefix = _privilege()
    if prefix is None or not shutil.which("apt-get"):
        log(
            f"cannot install {' '.join(missing)} (needs apt-get as root or password-less sudo); "
            f"run: sudo apt-get install {' '.join(missing)}. Continuing without them."
        )
        return missing
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt-get install {' '.join(missing)}")
    subprocess.run([*prefix, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )
    return missing_apt(packages)


# --- MKL ----------------------------------------------------------------------------------------


def _prefix(python: str) -> Path:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def ensure_mkl(python: str = sys.executable) -> Path:
    """The lib directory holding libmkl_rt.so.3 in ``python``'s environment (pip install mkl if absent)."""
    lib = _prefix(python) / "lib"
    if not (lib / backends.MKL_SONAME).exists():
        log(f"pip install mkl into {lib.parent}")
        subprocess.run([python, "-m", "pip", "install", "-q", "mkl"], check=True)
    return lib


def make_mkl_dir(mkl_lib: Path, dest: Path | None = None) -> Path:
    """libblas.so.3 and liblapack.so.3 stubs that load MKL, plus a ``lib`` link to MKL's directory.

    Symlinks to libmkl_rt would not do: a preloaded object is reused for numpy's DT_NEEDED only by
    SONAME (libmkl_rt's is its own), and libmkl_rt finds libmkl_core beside the path it was loaded
    from. So each stub has the generic SONAME, DT_NEEDED libmkl_rt.so.3 and RUNPATH $ORIGIN/lib.
    """
    dest = dest or backends.mkl_dir()
    dest.mkdir(parents=True, exist_ok=True)
    link = dest / "lib"
    if link.is_symlink() and Path(os.readlink(link)) != mkl_lib:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(mkl_lib, target_is_directory=True)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) to build the MKL link stubs; apt-get install gcc")
    for soname in ("libblas.so.3", "liblapack.so.3"):
        if (dest / soname).exists():
            continue
        tmp = dest / f".{soname}.tmp"
        subprocess.run(
            [cc, "-shared", "-x", "c", os.devnull, "-o", str(tmp), f"-Wl,-soname,{soname}",
             "-Wl,--no-as-needed", "-Wl,-rpath,$ORIGIN/lib", f"-L{link}", f"-l:{backends.MKL_SONAME}"],
            check=True,
        )  # fmt: skip
        tmp.replace(dest / soname)
    return dest


# --- numpy (and scipy) from source ---------------------------------------------------------------


def numpy_wheel(wheelhouse: Path) -> Path | None:
    """The source-built numpy wheel in ``wheelhouse`` (platform tag linux_*, not manylinux)."""
    return _source_wheel(wheelhouse, "numpy", NUMPY)


def build_times(wheelhouse: Path) -> dict[str, float]:
    """Seconds each source build took, as recorded beside the wheels."""
    path = wheelhouse / TIMES
    return json.loads(path.read_text()) if path.exists() else {}


def _record_time(wheelhouse: Path, key: str, seconds: float) -> None:
    times = build_times(wheelhouse) | {key: round(seconds, 1)}
    (wheelhouse / TIMES).write_text(json.dumps(times, indent=1) + "\n")


def build_numpy(wheelhouse: Path, python: str = sys.executable) -> Path:
    """numpy NUMPY built against the generic libblas/liblapack, once: an existing wheel is reused."""
    if wheel := numpy_wheel(wheelhouse):
        log(f"reusing {wheel} (built in {build_times(wheelhouse).get('numpy-' + NUMPY, '?')} s)")
        return wheel
    wheelhouse.mkdir(parents=True, exist_ok=True)
    log(f"building numpy {NUMPY} from source against libblas/liblapack (about 4-10 minutes)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=wheelhouse) as tmp:  # a killed build leaves no wheel
        subprocess.run(
            [python, "-m", "pip", "wheel", "--no-deps", "--no-binary", "numpy", f"numpy=={NUMPY}",
             "-Csetup-args=-Dblas=blas", "-Csetup-args=-Dlapack=lapack", "-w", tmp],
            check=True,
        )  # fmt: skip
        built = next(Path(tmp).glob("numpy-*.whl"))
        built.replace(wheelhouse / built.name)
    seconds = time.monotonic() - start
    _record_time(wheelhouse, f"numpy-{NUMPY}", seconds)
    log(f"numpy built in {seconds:.0f} s")
    return wheelhouse / built.name


def scipy_decision(wheelhouse: Path) -> str:
    """Whether scipy follows HARNESS_BLAS: only where its source build is in the wheelhouse."""
    seconds = build_times(wheelhouse).get(f"scipy-{SCIPY}")
    measured = f"measured here at {seconds / 60:.0f} min" if seconds else "about 35 min here"
    if seconds is None or seconds > SCIPY_LIMIT_S:
        return (
            f"scipy stays the PyPI wheel with its own bundled OpenBLAS: its source build ({measured}, "
            "2 cores; needs gfortran) is over the 15-minute budget (--with-scipy builds it anyway). "
            "So sklearn's 'full' solver and scipy.linalg/svds' LAPACK do not follow HARNESS_BLAS; "
            "blas.vendor() names that library ('; scipy wheel: OpenBLAS ...')."
        )
    return f"scipy built from source ({measured}): HARNESS_SCIPY=source installs it in asv"


def _source_wheel(wheelhouse: Path, name: str, version: str) -> Path | None:
    found = sorted(wheelhouse.glob(f"{name}-{version}-*-linux_*.whl"))
    return found[-1] if found else None


def build_scipy(wheelhouse: Path, python: str = sys.executable) -> Path:
    """scipy SCIPY built against the generic libblas/liblapack, once (about 35 min on 2 cores)."""
    if wheel := _source_wheel(wheelhouse, "scipy", SCIPY):
        return wheel
    if missing := ensure_apt(("gfortran",)):
        raise RuntimeError(f"scipy needs {' '.join(missing)} to build from source")
    wheelhouse.mkdir(parents=True, exist_ok=True)
    log(f"building scipy {SCIPY} from source against libblas/liblapack (about 35 minutes)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=wheelhouse) as tmp:
        (Path(tmp) / "cblas.pc").write_text(CBLAS_PC)
        path = os.pathsep.join(filter(None, [tmp, os.environ.get("PKG_CONFIG_PATH")]))
        subprocess.run(
            [python, "-m", "pip", "wheel", "--no-deps", "--no-binary", "scipy", f"scipy=={SCIPY}",
             "-Csetup-args=-Dblas=blas", "-Csetup-args=-Dlapack=lapack", "-w", tmp],
            check=True,
            env={**os.environ, "PKG_CONFIG_PATH": path},
        )  # fmt: skip
        built = next(Path(tmp).glob("scipy-*.whl"))
        built.replace(wheelhouse / built.name)
    _record_time(wheelhouse, f"scipy-{SCIPY}", time.monotonic() - start)
    return wheelhouse / built.name


def install_numpy(python: str, wheel: Path) -> None:
    """Replace ``python``'s numpy (or scipy) with a source-built wheel (no dependencies touched)."""
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
    )


def install_hook(python: str = sys.executable) -> Path:
    """Write the start-up hook (backends.PTH_NAME) into ``python``'s site-packages."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip()) / backends.PTH_NAME
    if not path.exists() or path.read_text() != backends.PTH_LINE:
        path.write_text(backends.PTH_LINE)
    return path


def asv_env(wheelhouse: Path) -> None:
    """asv install_command step: the hook always; numpy from the wheelhouse where HARNESS_NUMPY=source."""
    log(f"start-up hook: {install_hook()}")
    if os.environ.get("HARNESS_NUMPY", "").lower() != "source":
        return
    if problem := backends.numpy_blas_problem():
        log(f"replacing numpy: {problem}")
        install_numpy(sys.executable, build_numpy(wheelhouse))
    if os.environ.get("HARNESS_SCIPY", "").lower() == "source":
        install_numpy(sys.executable, build_scipy(wheelhouse))


def backend_venv(path: Path, wheel: Path, extra: tuple[str, ...] = ("threadpoolctl",)) -> Path:
    """A small venv with the source-built numpy (made once; reused while the wheel is the same)."""
    python, marker = path / "bin" / "python", path / ".harness-ready"
    if marker.exists() and marker.read_text() == wheel.name and python.exists():
        return python
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
            *extra,
        ],
        check=True,
    )
    marker.write_text(wheel.name)
    return python


def main(argv: list[str] | None = None) -> int:
    """Run every step; report what is available at the end."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.study.setup_backends", description=__doc__
    )
    parser.add_argument("--wheelhouse", type=Path, default=None, help="default: <cache>/wheelhouse")
    parser.add_argument(
        "--python", default=sys.executable, help="environment for mkl (and --install-numpy)"
    )
    parser.add_argument(
        "--install-numpy", action="store_true", help="also put the source numpy there"
    )
    parser.add_argument("--no-mkl", action="store_true", help="skip MKL (a 220 MB download)")
    parser.add_argument("--with-scipy", action="store_true", help="build scipy too (~35 min)")
    parser.add_argument(
        "--asv-env",
        action="store_true",
        help="only the asv install_command step: start-up hook, numpy if HARNESS_NUMPY=source",
    )
    args = parser.parse_args(argv)
    wheelhouse = (args.wheelhouse or wheelhouse_dir()).resolve()
    if args.asv_env:
        asv_env(wheelhouse)
        return 0

    still = ensure_apt()
    if not args.no_mkl:
        try:
            make_mkl_dir(ensure_mkl(args.python))
        except (RuntimeError, subprocess.CalledProcessError) as err:
            log(f"MKL not set up: {err}")
    if {"libblas-dev", "liblapack-dev", "pkg-config"} & set(still):
        log("cannot build numpy from source without libblas-dev, liblapack-dev and pkg-config")
    else:
        wheel = build_numpy(wheelhouse, args.python)
        if args.install_numpy:
            install_numpy(args.python, wheel)
            log(f"start-up hook: {install_hook(args.python)}")
        if args.with_scipy:
            build_scipy(wheelhouse, args.python)
    log(scipy_decision(wheelhouse))
    for name in backends.BACKENDS:
        reason = backends.unavailable_reason(name)
        log(f"{name:9} {'available' if reason is None else 'unavailable: ' + reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
