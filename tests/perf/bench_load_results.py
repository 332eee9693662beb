"""Target: ``load_results`` + ``table`` over 5,000 asv result files within 5 s, and faster than asv.

Generates a realistic results folder in a temporary directory (asv api version 2, written the way
asv 0.6 writes it: compact JSON, stats truncated to 5 significant digits, NaN for skipped and null
for failed combinations, no samples since ``--record-samples`` is off by default), then times, in
one process over the same files:

- harness: ``harness.results.reader.scan`` (the DataFrame with fingerprints) + the stability table
  (``harness.analysis.tables.stability_table``) rendered as Markdown;
- asv: ``asv.results.iter_results`` + ``Results.get_result_value`` for every benchmark.

Each side runs ``--repeat`` times, alternating; the best time of each is printed. Run::

    .venv/bin/python tests/perf/bench_load_results.py            # 5,000 files
    .venv/bin/python tests/perf/bench_load_results.py --files 500 --repeat 1

The files mimic this project's suite under the default ``quick`` profile: 3 datasets x 2 layouts
x 2 dtypes x 6 solvers (x 2 thread counts for the runtime suite): ``pca.PCA.time_pca`` and
``pca.PCA.peakmem_pca`` (144 combinations each) and seven ``stability.<Check>.track_<check>``
(72 each): 792 rows per file, 3.96 million rows in all. Runs are spread over 5 machines x 10
environments x 100 commits, each with its harness fingerprint beside it (no stability records).

The generator (:func:`generate`) is also used by the tests to build results folders.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULT_COLUMNS = [
    "result",
    "params",
    "version",
    "started_at",
    "duration",
    "stats_ci_99_a",
    "stats_ci_99_b",
    "stats_q_25",
    "stats_q_75",
    "stats_number",
    "stats_repeat",
    "samples",
    "profile",
]
DATASETS = {
    "smoke": ["pbmc68k_reduced"],
    "quick": ["pbmc68k_reduced", "10x_10k", "synthetic_small"],
}
LAYOUTS = ["dense", "csr"]
DTYPES = ["float32", "float64"]
SOLVERS = ["arpack", "randomized", "full", "covariance_eigh", "auto", "lobpcg"]
SUPPORTED = {
    "dense": {"arpack", "randomized", "full", "covariance_eigh", "auto"},
    "csr": {"arpack", "covariance_eigh", "lobpcg"},
}
CHECKS = {
    "repeat": "Repeat",
    "process": "Process",
    "threads": "Threads",
    "seed": "Seed",
    "layout": "Layout",
    "dtype": "Dtype",
    "accuracy": "Accuracy",
}
ENVS = [
    # scanpy, scikit-learn, numpy, scipy, BLAS (vendor, version, core), threads
    ("1.11.5", "1.9.1", "2.4.6", "1.17.1", ("openblas", "0.3.31", "SkylakeX"), 2),
    ("1.11.5", "1.9.1", "2.4.6", "1.17.1", ("openblas", "0.3.31", "SkylakeX"), 1),
    ("1.11.5", "1.9.1", "2.4.6", "1.17.1", ("openblas", "0.3.31", "Haswell"), 2),
    ("1.11.5", "1.6.1", "2.2.6", "1.15.3", ("openblas", "0.3.29", "SkylakeX"), 2),
    ("1.10.4", "1.5.2", "2.0.2", "1.13.1", ("openblas", "0.3.27", "SkylakeX"), 2),
    ("1.10.4", "1.4.2", "1.26.4", "1.12.0", ("openblas", "0.3.23.dev", "SkylakeX"), 2),
    ("1.9.8", "1.3.2", "1.24.4", "1.10.1", ("openblas", "0.3.21", "SkylakeX"), 2),
    ("1.11.5", "1.9.1", "2.4.6", "1.17.1", ("mkl", "2026.2", None), 2),
    ("1.11.5", "1.9.1", "2.4.6", "1.17.1", ("blis", "0.9.0", None), 1),
    ("1.11.5", "1.9.1", "2.4.6", "1.17.1", ("openblas", "0.3.21", "Prescott"), 2),
]


def _trunc(x: float | None) -> float | None:
    """asv's util.truncate_float_list: 5 significant digits."""
    if x is None or not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.5g}")


def env_name(env: tuple[Any, ...]) -> str:
    scanpy, sklearn, numpy, scipy, blas, threads = env
    name = f"virtualenv-py3.11-numpy{numpy}-scanpy{scanpy}-scikit-learn{sklearn}-scipy{scipy}"
    name += f"-HARNESS_BLAS{blas[0]}-OPENBLAS_CORETYPE{blas[2] or 'none'}-OMP_NUM_THREADS{threads}"
    return name


def fingerprint(machine: str, commit: str, env: tuple[Any, ...]) -> dict[str, Any]:
    scanpy, sklearn, numpy, scipy, (vendor, version, core), threads = env
    pool = {
        "user_api": "blas",
        "internal_api": vendor,
        "version": version,
        "num_threads": threads,
        "prefix": f"lib{vendor}",
    }
    if core:
        pool["architecture"] = core
    label = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}[vendor]
    return {
        "machine": machine,
        "commit": commit,
        "env_name": env_name(env),
        "schema": 1,
        "python": "3.11.7",
        "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
        "hostname": machine,
        "packages": {
            "scanpy": scanpy,
            "scikit-learn": sklearn,
            "numpy": numpy,
            "scipy": scipy,
            "threadpoolctl": "3.6.0",
        },
        "threadpools": [pool],
        "mapped_libraries": [],
        "blas": " ".join(s for s in (label, version, core) if s),
        "cpu": {
            "model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
            "flags": ["avx512f"],
            "count": 2,
            "usable": 2,
        },
        "env_vars": {
            "OMP_NUM_THREADS": str(threads),
            **({"OPENBLAS_CORETYPE": core} if core else {}),
        },
    }


def _runtime_row(
    rng: random.Random, datasets: list[str], memory: bool, env: tuple[Any, ...]
) -> list[Any]:
    params = [datasets, LAYOUTS, DTYPES, SOLVERS, [1, 2]]
    values, stats = [], {k: [] for k in ("ci_99_a", "ci_99_b", "q_25", "q_75", "number", "repeat")}
    size = {"pbmc68k_reduced": 0.03, "10x_10k": 0.6, "synthetic_small": 0.15}
    for dataset, layout, dtype, solver, threads in itertools.product(*params):
        if solver not in SUPPORTED[layout]:
            values.append(math.nan)
            for v in stats.values():
                v.append(None)
            continue
        if rng.random() < 0.01:
            values.append(None)  # a failure
            for v in stats.values():
                v.append(None)
            continue
        base = size[dataset] * (1.6 if dtype == "float64" else 1.0) * (0.7 if threads == 2 else 1.0)
        base *= {
            "arpack": 1.0,
            "randomized": 0.8,
            "full": 2.5,
            "covariance_eigh": 0.4,
            "auto": 0.5,
            "lobpcg": 3.0,
        }[solver]
        if memory:
            value = float(int(180e6 + 1e9 * base * rng.uniform(0.95, 1.05)))
            values.append(value)
            for v in stats.values():
                v.append(None)
            continue
        med = base * rng.uniform(0.9, 1.1)
        q25, q75 = med * rng.uniform(0.95, 0.99), med * rng.uniform(1.01, 1.2)
        values.append(med)
        stats["ci_99_a"].append(_trunc(med * 0.9))
        stats["ci_99_b"].append(_trunc(med * 1.3))
        stats["q_25"].append(_trunc(q25))
        stats["q_75"].append(_trunc(q75))
        stats["number"].append(1)
        stats["repeat"].append(rng.choice([5, 6, 10]))
    cols = [[None if v is None else v for v in stats[k]] for k in stats]
    cols = [None if all(x is None for x in c) else c for c in cols]
    row = [
        values,
        [[repr(x) for x in p] for p in params],
        "pca-1",
        1795506809945,
        round(rng.uniform(30, 300), 3),
        *cols,
    ]
    while row and row[-1] is None:
        row.pop()
    return row


def _check_row(rng: random.Random, datasets: list[str], check: str) -> list[Any]:
    params = [datasets, LAYOUTS, DTYPES, SOLVERS]
    values = []
    for _dataset, layout, _dtype, solver in itertools.product(*params):
        if solver not in SUPPORTED[layout] or (
            check == "layout" and solver not in SUPPORTED["dense"] & SUPPORTED["csr"]
        ):
            values.append(math.nan)
        elif (
            check == "repeat"
            or (check in ("threads", "process") and layout == "csr" and solver == "covariance_eigh")
            or (check == "seed" and solver in ("full", "covariance_eigh"))
        ):
            values.append(0.0)
        else:
            values.append(10 ** rng.uniform(-15 if check in ("threads", "process") else -7, -2))
    return [
        values,
        [[repr(x) for x in p] for p in params],
        f"{check}-1",
        1795506809945,
        round(rng.uniform(5, 60), 3),
    ]


def generate(
    root: Path,
    n_files: int = 5000,
    *,
    profile: str = "quick",
    seed: int = 0,
    machines: int = 5,
    fingerprints: bool = True,
) -> Path:
    """Write ``n_files`` asv result files (plus benchmarks.json, machine.json, fingerprints)."""
    from harness.bench import store

    rng = random.Random(seed)
    datasets = DATASETS[profile]
    root.mkdir(parents=True, exist_ok=True)
    benchmarks = {"version": 2}
    for name, unit, kind in (
        ("pca.PCA.time_pca", "seconds", "time"),
        ("pca.PCA.peakmem_pca", "bytes", "peakmemory"),
    ):
        benchmarks[name] = {
            "name": name,
            "type": kind,
            "unit": unit,
            "version": "pca-1",
            "param_names": ["dataset", "layout", "dtype", "svd_solver", "threads"],
            "params": [[repr(x) for x in p] for p in (datasets, LAYOUTS, DTYPES, SOLVERS, [1, 2])],
        }
    for check, cls in CHECKS.items():
        name = f"stability.{cls}.track_{check}"
        benchmarks[name] = {
            "name": name,
            "type": "track",
            "unit": "relative",
            "version": f"{check}-1",
            "param_names": ["dataset", "layout", "dtype", "svd_solver"],
            "params": [[repr(x) for x in p] for p in (datasets, LAYOUTS, DTYPES, SOLVERS)],
        }
    (root / "benchmarks.json").write_text(json.dumps(benchmarks, indent=4, sort_keys=True))
    per_machine = math.ceil(n_files / machines)
    written = 0
    for m in range(machines):
        machine = f"machine{m:02d}"
        folder = root / machine
        folder.mkdir(exist_ok=True)
        (folder / "machine.json").write_text(
            json.dumps({"machine": machine, "version": 1}, indent=4)
        )
        for i in range(per_machine):
            if written >= n_files:
                break
            env = ENVS[i % len(ENVS)]
            commit = f"{rng.getrandbits(160):040x}"
            name = env_name(env)
            results = {
                "pca.PCA.time_pca": _runtime_row(rng, datasets, False, env),
                "pca.PCA.peakmem_pca": _runtime_row(rng, datasets, True, env),
            }
            for check, cls in CHECKS.items():
                results[f"stability.{cls}.track_{check}"] = _check_row(rng, datasets, check)
            data = {
                "commit_hash": commit,
                "env_name": name,
                "date": 1795506740000 + written * 60_000,
                "params": {
                    "arch": "x86_64",
                    "cpu": "Intel Xeon",
                    "machine": machine,
                    "num_cpu": "2",
                    "os": "Linux 6.1",
                    "ram": "8GB",
                    "python": "3.11",
                    "numpy": env[2],
                    "scanpy": env[0],
                    "scikit-learn": env[1],
                    "scipy": env[3],
                },
                "python": "3.11",
                "requirements": {
                    "numpy": env[2],
                    "scanpy": env[0],
                    "scikit-learn": env[1],
                    "scipy": env[3],
                },
                "env_vars": {"HARNESS_BLAS": env[4][0], "OMP_NUM_THREADS": str(env[5])},
                "result_columns": RESULT_COLUMNS,
                "results": results,
                "durations": {"<build>": 1.5, "<setup_cache common:64>": 2.4},
                "version": 2,
            }
            (folder / f"{commit[:8]}-{name}.json").write_text(json.dumps(data))
            if fingerprints:
                run = store.RunKey(machine, commit, name).folder(root)
                run.mkdir(parents=True)
                (run / "fingerprint.jsonl").write_text(
                    json.dumps(fingerprint(machine, commit, env), sort_keys=True) + "\n"
                )
            written += 1
    return root


# --- sidecars for tests: stability records and artifacts (harness.bench.store layout) --------------------

#: Artifact perturbation per environment index (ENVS order): how its PCA result differs.
ARTIFACT_KIND = {0: "same", 1: "same", 2: "rounding", 3: "signflip", 4: "changed"}


def _pca_result(kind: str, seed: int = 7, n_obs: int = 60, n_vars: int = 30, k: int = 6):
    """A small exact PCA result (well separated spectrum), perturbed by ``kind``."""
    import numpy as np

    from harness.bench.pca import PCAResult

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n_vars, n_vars)))
    loadings = q[:, :k]
    variance = np.geomspace(50.0, 1.0, k)
    scores = rng.standard_normal((n_obs, k))
    # Orthogonal, centred scores: the loadings are then exact eigenvectors of X's covariance.
    q, _ = np.linalg.qr(scores - scores.mean(axis=0))
    scores = q * np.sqrt(variance * (n_obs - 1))
    emb, load = scores.copy(), loadings.copy()
    if kind == "rounding":
        emb = emb * (1 + 4e-16 * rng.standard_normal(emb.shape))
    elif kind == "signflip":
        emb[:, 0] *= -1
        load[:, 0] *= -1
    elif kind == "changed":
        emb = emb + 1e-2 * rng.standard_normal(emb.shape)
        load, _ = np.linalg.qr(load + 1e-3 * rng.standard_normal(load.shape))
        load *= np.sign(np.einsum("ij,ij->j", load, loadings))
    return PCAResult(emb, load, variance.copy(), variance / variance.sum())


def _record(check: str, value: float, env_index: int, rng: random.Random) -> dict[str, Any]:
    """A stability record as harness.bench.stability.evaluate writes it (comparison abridged)."""
    bitwise = value == 0.0
    unexplained = 0 if bitwise or value < 1e-5 or env_index % 2 == 0 else 1
    comparison = {
        "bitwise": bitwise,
        "max_abs_diff": value * 3.0,
        "sign_flips": 0,
        "aligned_max_abs_diff": value * 3.0,
        "aligned_max_rel_diff": value,
        "angle_k10_deg": value * 10,
        "angle_all_deg": value * 20,
        "variance_max_rel_diff": value / 2,
        "n_explained": 0 if bitwise else 50 - unexplained,
        "n_unexplained": unexplained,
        "norm_e_rel": 1e-7,
        "knn_jaccard": 1.0 if bitwise else round(1 - min(0.5, value * 10) - rng.random() * 1e-3, 6),
        "leiden_ari": 1.0,
    }
    digits = 15.95 if bitwise else max(0.0, -math.log10(value) - 0.3)
    # The calibrated verdict of harness.bench.verdicts: the same split as n_unexplained above.
    verdict = "bitwise" if bitwise else "beyond rounding" if unexplained else "within rounding"
    if verdict == "within rounding" and value >= 1e-5:
        verdict = "explained"
    return {
        "check": check,
        "unit": "relative",
        "value": value,
        "status": "ok",
        "reason": None,
        "n_samples": 2,
        "comparison": comparison,
        "sigdigits": {"per_component": [digits] * 3, "minimum": digits},
        "judgement": {"verdict": verdict, "counts": {verdict: 50}},
        "outputs": {
            "embedding": {"bitwise": bitwise, "max_rel_diff": value},
            "loadings": {"bitwise": bitwise, "max_rel_diff": value / 2},
            "variance": {"bitwise": bitwise, "max_rel_diff": value / 4},
        },
        "moved": [] if bitwise else ["embedding", "loadings", "variance"],
        "downstream": {
            "knn_jaccard": comparison["knn_jaccard"],
            "leiden_ari": 1.0,
            "ari_other_seed": [0.8, 0.9],
            "ari_one_edge": [0.95, 1.0],
        },
    }


def add_sidecars(root: Path, *, artifacts: bool = True, seed: int = 1) -> None:
    """Stability records (matching the asv values) and, optionally, artifacts for every run."""
    import numpy as np

    from harness.analysis import rounding
    from harness.bench import digests as art
    from harness.bench import store, verdicts

    rng = random.Random(seed)
    exact = _pca_result("same")
    # The exact problem the planted results solve: X = scores . loadings^T (centred by design).
    problem = rounding.problem_of(exact.embedding @ exact.loadings.T)
    for path in sorted(root.glob("*/*.json")):
        if path.name in ("machine.json", "benchmarks.json"):
            continue
        data = json.loads(path.read_text())
        machine = data["params"]["machine"]
        key = store.RunKey(machine, data["commit_hash"], data["env_name"])
        folder = key.folder(root)
        env_index = next((i for i, e in enumerate(ENVS) if env_name(e) == data["env_name"]), 0)
        for bench, row in sorted(data["results"].items()):
            name = bench.rsplit(".", 1)[-1]
            if not name.startswith("track_"):
                continue
            check = name[len("track_") :]
            names = ["dataset", "layout", "dtype", "svd_solver"]
            combos = itertools.product(*[[ast.literal_eval(v) for v in p] for p in row[1]])
            for params, value in zip(combos, row[0], strict=True):
                pdict = dict(zip(names, params, strict=True))
                if value is None:
                    continue
                if isinstance(value, float) and math.isnan(value):
                    rec = {
                        "check": check,
                        "status": "skipped",
                        "reason": f"{check} does not apply to {pdict['layout']}/{pdict['svd_solver']}",
                    }
                    value_out = None
                else:
                    rec = _record(check, value, env_index, rng)
                    value_out = value
                line = {
                    **key.to_dict(),
                    "benchmark": bench,
                    "params": pdict,
                    "value": value_out,
                    **rec,
                }
                out = folder / "records" / bench / f"{store.params_key(pdict)}.jsonl"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(line, sort_keys=True) + "\n")
        if not artifacts:
            continue
        kind = ARTIFACT_KIND.get(env_index, "same")
        for dataset, layout, dtype, solver in itertools.product(
            ["pbmc68k_reduced"], LAYOUTS, DTYPES, SOLVERS
        ):
            if solver not in SUPPORTED[layout]:
                continue
            pdict = {"dataset": dataset, "layout": layout, "dtype": dtype, "svd_solver": solver}
            result = _pca_result(kind)
            if dtype == "float32":
                result = type(result)(
                    *(
                        np.asarray(a, dtype=np.float32)
                        for a in (
                            result.embedding,
                            result.loadings,
                            result.variance,
                            result.variance_ratio,
                        )
                    )
                )
            side = verdicts.side(solver, layout, [dtype], result.loadings)
            digest = art.make(
                result,
                key,
                pdict,
                {"threads": None, "random_state": 123, "process": "fresh-1", "index": 0},
                problem=problem,
                rho=side.rho(problem),
                path=side.path,
            )
            art.save(digest, folder / "artifacts" / f"{store.params_key(pdict)}.npz")


def time_harness(root: Path) -> tuple[float, float, int, int]:
    """Wall and CPU seconds (this process) of load + stability table rendered as Markdown."""
    from harness.analysis import tables
    from harness.render import tables as render_tables
    from harness.results import reader as results

    t0, c0 = time.perf_counter(), time.process_time()
    loaded = results.scan(root, warn=lambda line: None)
    table = tables.stability_table(loaded.frame, loaded.records)
    text = render_tables.render_table(table, "md", summary=render_tables.summary_line(loaded))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert text
    return wall, cpu, len(loaded.frame), len(table)


def time_asv(root: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of asv's iter_results + get_result_value over every benchmark."""
    from asv.results import iter_results

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for res in iter_results(str(root)):
        for key in res.get_all_result_keys():
            n += len(res.get_result_value(key, res.get_result_params(key)))
    return time.perf_counter() - t0, time.process_time() - c0, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", choices=sorted(DATASETS), default="quick")
    parser.add_argument(
        "--keep", metavar="DIR", help="generate into DIR and keep it (reused when present)"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import asv.results  # noqa: F401  (imports outside the timed sections, for both sides)
    import pandas  # noqa: F401

    import harness.analysis.tables  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="asv-results-") as tmp:
        root = Path(args.keep or tmp) / "results"
        t0 = time.perf_counter()
        if args.keep and (root / "benchmarks.json").is_file():
            print(f"reusing {root}")
        else:
            generate(root, args.files, profile=args.profile)
        files = [p for p in root.glob("*/*.json") if p.name != "machine.json"]
        size = sum(p.stat().st_size for p in files)
        print(
            f"{len(files)} result files ({size / 1e6:.0f} MB) ready in "
            f"{time.perf_counter() - t0:.1f} s: {root}"
        )
        ours, theirs = [], []
        for _ in range(args.repeat):
            wall, cpu, rows, table_rows = time_harness(root)
            ours.append((wall, cpu))
            wall, cpu, values = time_asv(root)
            theirs.append((wall, cpu))
        assert rows == values, (rows, values)
        (h_wall, h_cpu), (a_wall, a_cpu) = min(ours), min(theirs)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        print(
            f"harness load_results + table: {h_wall:.2f} s wall, {h_cpu:.2f} s CPU in this "
            f"process (best of {args.repeat}; {rows:,} rows, table {table_rows:,} rows)"
        )
        print(
            f"asv iter_results + get_result_value: {a_wall:.2f} s wall, {a_cpu:.2f} s CPU "
            f"(best of {args.repeat}; {values:,} values)"
        )
        print(
            f"speed-up {a_wall / h_wall:.2f}x; target <= 5 s: {'met' if h_wall <= 5 else 'NOT met'}; "
            f"cores {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, "
            f"load average {load:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
