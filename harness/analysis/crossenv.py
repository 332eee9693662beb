"""Pairwise deviation between environments: ``python -m harness crossenv RESULTS``.

asv cannot set environments side by side at one commit (asv#370, asv#789). The stability suite
leaves a digest of each PCA result beside asv's results (:mod:`harness.bench.digests`); this command
compares the digests of every pair of environments (or each one with ``--baseline``) per
configuration, with the metrics of :mod:`harness.analysis.metrics`:

- ``deviation``: 0 when the bits are equal (exact sha256 of the full outputs), else the worst
  sign-aligned relative deviation of X_pca on the digest's subsample (a lower bound);
- ``verdict``: as in the stability tables (bitwise / within tolerance / explained by the
  spectrum / unstable), from the per-component Davis-Kahan classification;
- ``sign_flips``, ``max_abs_diff``, ``angle_all_deg``, ``variance_max_rel_diff``.

Environments are labelled from their fingerprints ("scanpy 1.11.5 · sklearn 1.9.1 · numpy 2.4.6 ·
OpenBLAS 0.3.31 SkylakeX · 2 threads"), never by asv's environment names; labels that coincide
get the machine, then the commit, appended.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.render import formats as render

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from harness.results.reader import RunInfo

CONFIG = ("dataset", "layout", "dtype", "svd_solver")
PAIR_COLUMNS = [
    "dataset",
    "layout",
    "dtype",
    "solver",
    "condition",
    "a",
    "b",
    "a_label",
    "b_label",
    "comparable",
    "bitwise",
    "deviation",
    "max_abs_diff",
    "sign_flips",
    "n_unexplained",
    "angle_all_deg",
    "variance_max_rel_diff",
    "lead_rel_diff",
    "trail_rel_diff",
    "verdict",
]


@dataclass
class CrossEnv:
    """The comparison: environments (E1..En), every compared pair, and a summary per pair."""

    envs: list[dict[str, Any]]
    pairs: pd.DataFrame
    summary: pd.DataFrame
    baseline: str | None
    tolerance: float
    problems: list[str]


def config_of(digest: Any) -> tuple[Any, ...]:
    params = digest.params
    return (*(params.get(k) for k in CONFIG), _condition_text(digest.condition))


def _condition_text(condition: dict[str, Any]) -> str:
    return ", ".join(f"{k}={condition[k]}" for k in sorted(condition)) if condition else ""


def deviation(result: dict[str, Any]) -> float:
    """0 for equal bits, else the worst sign-aligned relative deviation (NaN: not comparable)."""
    if result.get("bitwise"):
        return 0.0
    if not result.get("comparable", True):
        return math.nan
    value = result.get("aligned_max_rel_diff")
    return float(value) if isinstance(value, (int, float)) else math.nan


def pair_verdict(result: dict[str, Any], tolerance: float) -> str | None:
    from harness.analysis.tables import verdict

    return verdict(
        deviation(result),
        bitwise=bool(result.get("bitwise")),
        n_unexplained=result.get("n_unexplained"),
        tolerance=tolerance,
    )


def labels_for(
    root: Path, keys: Sequence[tuple[str, str, str]], warn: Callable[[str], None]
) -> list[RunInfo]:
    """RunInfo of each run key: the fingerprint, else the asv results file of that run."""
    from harness.results import reader as results

    fps = results.load_fingerprints(root, warn=warn)
    infos = []
    for key in keys:
        fp = fps.find(*key)
        if fp is None:
            infos.append(_from_results_file(root, key))
        else:
            infos.append(results.run_info(key, fp))
    return infos


def _from_results_file(root: Path, key: tuple[str, str, str]) -> RunInfo:
    from harness.results import reader as results

    machine, commit, env_name = key
    for path in sorted((root / machine).glob(f"{commit[:8]}-*.json")):
        try:
            data = results.read_json(path)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("env_name") == env_name:
            row = results._file_row(data, path.name, machine)
            return results.run_info(
                key, None, requirements=row["requirements"], python=row["python"]
            )
    return results.run_info(key, None)


def artifact_folders(
    root: Path, warn: Callable[[str], None]
) -> dict[tuple[str, str, str], list[Path]]:
    """Run key -> its artifact files, for every run folder holding some (nothing loaded yet).

    The key comes from the folder's fingerprint line, else from its first artifact.
    """
    from harness.bench import digests as artifacts
    from harness.results import reader as results

    out: dict[tuple[str, str, str], list[Path]] = {}
    for folder in results.iter_run_folders(root):
        files = sorted((folder / "artifacts").glob("*.npz"))
        if not files:
            continue
        key = None
        try:
            fp = results._read_jsonl_first(folder / "fingerprint.jsonl")
            key = tuple(str(fp.get(k) or "") for k in results.RUN_KEY)
        except ValueError:
            pass
        if key is None or not key[1] or not key[2]:
            for path in files:
                try:
                    d = artifacts.load(path)
                except ValueError:
                    continue
                key = (d.key.machine, d.key.commit, d.key.env_name)
                break
        if key is None or not key[1]:
            warn(
                f"{results.relpath(folder, root)}: no readable artifact; left out of the comparison"
            )
            continue
        out.setdefault(key, []).extend(files)
    return out


def newest_runs(
    keys: Sequence[tuple[str, str, str]],
    dates: dict[tuple[str, str, str], float],
    *,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
) -> list[tuple[str, str, str]]:
    """The newest run of each (machine, environment), or those of ``commit`` (a hash prefix)."""
    chosen = [k for k in keys if (machine is None or k[0] == machine)]
    if commit:
        return sorted(k for k in chosen if k[1].startswith(commit))
    if all_commits:
        return sorted(chosen)
    best: dict[tuple[str, str], tuple[float, str, tuple[str, str, str]]] = {}
    for k in chosen:
        date = dates.get(k, -math.inf)
        date = -math.inf if math.isnan(date) else date
        cand = (date, k[1], k)
        if (k[0], k[2]) not in best or cand > best[(k[0], k[2])]:
            best[(k[0], k[2])] = cand
    return sorted(v[2] for v in best.values())


def load_digests(
    files: dict[tuple[str, str, str], list[Path]],
    keys: Sequence[tuple[str, str, str]],
    warn: Callable[[str], None],
) -> list[Any]:
    """The digests of the given runs; unreadable files reported to ``warn`` and left out."""
    from harness.bench import digests as artifacts

    out = []
    for key in keys:
        for path in files.get(key, []):
            try:
                out.append(artifacts.load(path))
            except ValueError as err:
                warn(f"{path}: {err}")
    return out


def crossenv(
    root: str | Path,
    *,
    baseline: str | None = None,
    tolerance: float | None = None,
    warn: Callable[[str], None] | None = None,
    loaded: Any = None,
    commit: str | None = None,
    machine: str | None = None,
    all_commits: bool = False,
    digests: list[Any] | None = None,
    compare: Callable[[Any, Any], dict[str, Any]] | None = None,
) -> CrossEnv:
    """Compare environments' digests pairwise (or each with ``baseline``'s), per configuration.

    By default each (machine, asv environment) takes part with its newest run (dates from the
    asv results; ``loaded`` is a :class:`harness.results.reader.Loaded` already read, else the folder is
    read here); ``commit`` sets environments side by side at one commit instead.
    ``digests`` and ``compare`` default to the artifacts found and
    :func:`harness.bench.digests.compare_digests`.
    """
    import pandas as pd

    from harness.analysis import metrics, tables
    from harness.bench import digests as artifacts
    from harness.results import reader as results

    root = Path(root)
    if not root.is_dir():
        raise HarnessError(f"{root}: not a directory")
    tolerance = tables.DEFAULT_TOLERANCE if tolerance is None else tolerance
    problems: list[str] = []

    def report(line: str) -> None:
        line = results.relative_line(line, root)
        problems.append(line)
        if warn:
            warn(line)

    if digests is None:
        files = artifact_folders(root, report)
        _warn_missing_artifacts(root, report)
        if loaded is None and files:
            loaded = results.scan(root, warn=lambda line: None, records=False)
        dates = {i.key: i.date for i in loaded.infos()} if loaded is not None and files else {}
        chosen = newest_runs(
            list(files), dates, commit=commit, machine=machine, all_commits=all_commits
        )
        digests = load_digests(files, chosen, report)
    compare = compare or artifacts.compare_digests
    by_run: dict[tuple[str, str, str], dict[tuple[Any, ...], Any]] = {}
    for d in digests:
        key = (d.key.machine, d.key.commit, d.key.env_name)
        by_run.setdefault(key, {}).setdefault(config_of(d), d)
    keys = sorted(by_run)
    infos = labels_for(root, keys, report)
    names = results.unique_labels(infos)
    order = sorted(keys, key=lambda k: (names[k], k))
    ids = {k: f"E{i + 1}" for i, k in enumerate(order)}
    envs = [
        {"id": ids[k], "label": names[k], "machine": k[0], "commit": k[1], "env_name": k[2]}
        for k in order
    ]
    base_keys: list[tuple[str, str, str]] = []
    if baseline is not None:
        picked = results.select(baseline, infos)
        if not picked:
            raise HarnessError(
                f"--baseline {baseline!r}: matches no environment with artifacts; have: {_listing(envs)}"
            )
        if len(picked) > 1:
            raise HarnessError(
                f"--baseline {baseline!r}: matches {len(picked)} environments ({', '.join(names[i.key] for i in picked)}); be more specific"
            )
        base_keys = [picked[0].key]
    rows = []
    configs = sorted(
        {c for per in by_run.values() for c in per}, key=lambda c: tuple(str(x) for x in c)
    )
    for config in configs:
        present = [k for k in order if config in by_run[k]]
        if base_keys:
            pairs = [
                (base_keys[0], k) for k in present if k != base_keys[0] and base_keys[0] in present
            ]
        else:
            pairs = list(itertools.combinations(present, 2))
        for a, b in pairs:
            res = compare(by_run[a][config], by_run[b][config])
            lead, trail = metrics.leading_trailing(res.get("component_rel_diff"))
            rows.append(
                {
                    "dataset": config[0],
                    "layout": config[1],
                    "dtype": config[2],
                    "solver": config[3],
                    "condition": config[4],
                    "a": ids[a],
                    "b": ids[b],
                    "a_label": names[a],
                    "b_label": names[b],
                    "comparable": bool(res.get("comparable", True)),
                    "bitwise": bool(res.get("bitwise")),
                    "deviation": deviation(res),
                    "max_abs_diff": res.get("max_abs_diff"),
                    "sign_flips": res.get("sign_flips"),
                    "n_unexplained": res.get("n_unexplained"),
                    "angle_all_deg": res.get("angle_all_deg"),
                    "variance_max_rel_diff": res.get("variance_max_rel_diff"),
                    "lead_rel_diff": 0.0 if res.get("bitwise") else lead,
                    "trail_rel_diff": 0.0 if res.get("bitwise") else trail,
                    "verdict": pair_verdict(res, tolerance)
                    if res.get("comparable", True)
                    else "not comparable",
                }
            )
    pairs_df = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    summary = summarize(pairs_df)
    base = ids[base_keys[0]] if base_keys else None
    return CrossEnv(envs, pairs_df, summary, base, tolerance, problems)


def _listing(envs: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e['id']} = {e['label']}" for e in envs) or "none"


def _warn_missing_artifacts(root: Path, warn: Callable[[str], None]) -> None:
    """One line per run whose stability records exist but whose artifacts do not."""
    from harness.results import reader as results

    for folder in results.iter_run_folders(root):
        records = folder / "records"
        expected = records.is_dir() and any(
            p.name.startswith("stability.") for p in records.iterdir()
        )
        if expected and not any((folder / "artifacts").glob("*.npz")):
            where = results.relpath(folder, root)
            warn(f"{where}: stability records but no artifacts; left out of the comparison")


def summarize(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per pair of environments: configurations compared, verdict counts, worst deviation."""
    import pandas as pd

    from harness.analysis.tables import VERDICTS

    cols = [
        "a",
        "b",
        "a_label",
        "b_label",
        "configurations",
        *VERDICTS,
        "worst_deviation",
        "worst_configuration",
    ]
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (a, b), sub in pairs.groupby(["a", "b"], sort=True):
        counts = sub["verdict"].value_counts()
        dev = sub["deviation"].astype(float)
        if dev.notna().any() and dev.max() > 0:
            i = dev.idxmax()
            worst, where = (
                float(dev[i]),
                "/".join(str(sub.at[i, k]) for k in ("dataset", "layout", "dtype", "solver")),
            )
        else:
            worst, where = (0.0 if dev.notna().any() else math.nan), ""
        out.append(
            {
                "a": a,
                "b": b,
                "a_label": sub["a_label"].iloc[0],
                "b_label": sub["b_label"].iloc[0],
                "configurations": len(sub),
                **{v: int(counts.get(v, 0)) for v in VERDICTS},
                "worst_deviation": worst,
                "worst_configuration": where,
            }
        )
    return (
        pd.DataFrame(out, columns=cols)
        .sort_values(["a", "b"], key=_env_order)
        .reset_index(drop=True)
    )


def _env_order(col: pd.Series) -> pd.Series:
    return col.map(lambda s: int(s[1:]) if isinstance(s, str) and s[1:].isdigit() else 0)


# --- rendering ------------------------------------------------------------------------------------


def _cell(row: dict[str, Any]) -> str:
    if row["verdict"] == "not comparable":
        return "n/c"
    if row["bitwise"]:
        return "bitwise"
    text = render.fmt_float(row["deviation"])
    if row.get("sign_flips"):
        text += f" ({int(row['sign_flips'])} flips)"
    from harness.analysis.tables import _MARK

    return text + _MARK.get(row["verdict"], "")


def matrices(result: CrossEnv) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per configuration: title, headers and rows of its environment x environment matrix."""
    out = []
    if result.pairs.empty:
        return out
    ids = [e["id"] for e in result.envs]
    for config, sub in result.pairs.groupby(
        ["dataset", "layout", "dtype", "solver", "condition"], sort=True, dropna=False
    ):
        cells: dict[tuple[str, str], str] = {}
        for row in sub.to_dict("records"):
            cells[(row["a"], row["b"])] = cells[(row["b"], row["a"])] = _cell(row)
        present = [i for i in ids if any(i in k for k in cells)]
        if result.baseline:
            others = [i for i in present if i != result.baseline]
            headers = ["", *others]
            rows = [[result.baseline, *(cells.get((result.baseline, o), "") for o in others)]]
        else:
            headers = ["", *present]
            rows = [
                [r, *("·" if r == c else cells.get((r, c), "") for c in present)] for r in present
            ]
        title = "/".join(str(x) for x in config[:4]) + (f" ({config[4]})" if config[4] else "")
        out.append((title, headers, rows))
    return out


def summary_rows(result: CrossEnv) -> tuple[list[str], list[list[str]]]:
    from harness.analysis.tables import VERDICTS

    headers = ["A", "B", "configurations", *VERDICTS, "worst deviation", "where"]
    rows = []
    for r in result.summary.to_dict("records"):
        rows.append(
            [
                r["a"],
                r["b"],
                str(r["configurations"]),
                *(str(r[v]) for v in VERDICTS),
                render.fmt_float(r["worst_deviation"]),
                r["worst_configuration"],
            ]
        )
    return headers, rows


def legend(result: CrossEnv) -> str:
    return (
        "Deviation: worst sign-aligned relative deviation of X_pca on the artifacts' subsample "
        "(a lower bound), 0 for identical values; bitwise: identical sha256 of the full outputs; "
        f"~ explained by the spectrum, ! unstable; tolerance {result.tolerance:g}."
    )


def to_markdown(result: CrossEnv, *, level: int = 2) -> str:
    h = "#" * level
    parts = [f"{h} Environments\n\n"]
    if not result.envs:
        parts.append("No artifacts found: run the stability suite to produce them.\n")
        return "".join(parts)
    parts.append(
        render.md_table(
            ["id", "environment", "machine", "commit"],
            [[e["id"], e["label"], e["machine"], e["commit"][:8]] for e in result.envs],
        )
    )
    if result.baseline:
        parts.append(f"\nBaseline: {result.baseline}.\n")
    parts.append(f"\n{h} Summary\n\n")
    headers, rows = summary_rows(result)
    if rows:
        parts.append(
            render.md_table(headers, rows, ["l", "l"] + ["r"] * (len(headers) - 3) + ["l"])
        )
    else:
        parts.append("Fewer than two environments share a configuration: nothing to compare.\n")
    for title, headers, rows in matrices(result):
        parts.append(f"\n{h}# {title}\n\n")
        parts.append(render.md_table(headers, rows, ["l"] + ["r"] * (len(headers) - 1)))
    parts.append("\n" + legend(result) + "\n")
    return "".join(parts)


def to_html_body(result: CrossEnv, *, level: int = 2) -> str:
    parts = [f"<h{level}>Environments</h{level}>\n"]
    if not result.envs:
        return parts[0] + "<p>No artifacts found: run the stability suite to produce them.</p>\n"
    parts.append(
        render.html_table(
            ["id", "environment", "machine", "commit"],
            [[e["id"], e["label"], e["machine"], e["commit"][:8]] for e in result.envs],
            table_class="envs",
        )
    )
    if result.baseline:
        parts.append(f"<p>Baseline: {render.esc(result.baseline)}.</p>\n")
    headers, rows = summary_rows(result)
    parts.append(f"<h{level}>Summary</h{level}>\n")
    parts.append(
        render.html_table(
            headers,
            rows,
            numeric=[False, False] + [True] * (len(headers) - 3) + [False],
            table_class="crossenv-summary",
        )
        if rows
        else "<p>Nothing to compare.</p>\n"
    )
    for title, headers, rows in matrices(result):
        parts.append(f"<h{level + 1}>{render.esc(title)}</h{level + 1}>\n")
        parts.append(
            render.html_table(
                headers, rows, numeric=[False] + [True] * (len(headers) - 1), table_class="crossenv"
            )
        )
    parts.append(f"<p>{render.esc(legend(result))}</p>\n")
    return "".join(parts)


def to_json(result: CrossEnv) -> str:
    return render.json_text(
        {
            "environments": result.envs,
            "baseline": result.baseline,
            "tolerance": result.tolerance,
            "pairs": render.records(result.pairs),
            "summary": render.records(result.summary),
            "problems": len(result.problems),
        }
    )


def cli_crossenv(args: argparse.Namespace) -> int:
    from harness.commands import output, stderr_warn

    if args.tolerance is not None and args.tolerance < 0:
        raise HarnessError("--tolerance: must be >= 0")
    result = crossenv(
        args.results,
        baseline=args.baseline,
        tolerance=args.tolerance,
        warn=stderr_warn("crossenv"),
        commit=getattr(args, "commit", None),
        machine=getattr(args, "machine", None),
        all_commits=getattr(args, "all_commits", False),
    )
    if args.format == "md":
        text = to_markdown(result)
    elif args.format == "csv":
        text = render.csv_text(result.pairs)
    elif args.format == "json":
        text = to_json(result)
    else:
        text = render.html_page(
            "Cross-environment deviation",
            "<h1>Cross-environment deviation</h1>\n" + to_html_body(result),
        )
    output(text, args.out)
    if result.problems:
        print(
            f"harness crossenv: {len(result.problems)} file(s) skipped or left out (see the warnings)",
            file=sys.stderr,
        )
    return 0
