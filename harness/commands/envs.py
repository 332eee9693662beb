"""``python -m harness envs RESULTS``: every environment with the id every view gives it, its label
and what it changes against the baseline, so a person can name one to ``compare`` or ``report``.
"""

from __future__ import annotations

import argparse

import pandas as pd

from harness.commands import load, output
from harness.errors import HarnessError
from harness.render import formats as render
from harness.render.formats import Table
from harness.results import environments

#: What the listing ends with: how to name an environment elsewhere.
HINT = (
    "Name an environment by its id (E2), its label or its asv environment name, or by what it "
    "runs: scanpy=1.10.4, sklearn=1.5.2,blas=mkl, numpy=2.2.6, kernel=Haswell, threads=1. "
    "`harness compare scanpy=1.10.4 scanpy=1.11.5` picks the two environments closest to "
    "differing in that factor only."
)
COLUMNS = ("id", "label", "change", "machine", "commit", "env_name")


def listing(envs: pd.DataFrame) -> pd.DataFrame:
    """The columns people read, in id order (``change``: 'baseline' or 'key=value, ...')."""
    out = envs[list(COLUMNS)].copy()
    out["commit"] = out["commit"].astype(str).str[:8]
    return out


def table(envs: pd.DataFrame) -> Table:
    """The listing as a display table."""
    headers = ["id", "environment", "against the baseline", "machine", "commit", "asv environment"]
    rows = [[str(v) for v in r] for r in listing(envs).itertuples(index=False, name=None)]
    return Table(headers, rows, ["l"] * len(headers))


def to_markdown(envs: pd.DataFrame) -> str:
    base = envs[envs["baseline"]]
    head = f"{len(envs)} environment(s)"
    if len(base) == 1:
        head += f"; the baseline, the centre of the study's design, is {base.iloc[0]['id']}"
    elif len(base):  # one per machine
        each = ", ".join(f"{r['id']} on {r['machine']}" for _, r in base.iterrows())
        head += f"; the baselines, the centres of each machine's study, are {each}"
    return f"{head}.\n\n{render.table_md(table(envs))}\n{HINT}\n"


def to_json(envs: pd.DataFrame) -> str:
    rows = render.records(envs.drop(columns=["fp"]))
    return render.json_text({"environments": rows})


FORMATS = {
    "md": to_markdown,
    "json": to_json,
    "csv": lambda envs: render.csv_text(listing(envs)),
}


def cli_envs(args: argparse.Namespace) -> int:
    loaded = load(args.results, "envs")
    envs = environments.catalogue(loaded)
    if getattr(args, "select", None):
        chosen = {i.key for i in environments.select(args.select, loaded.infos())}
        keys = zip(envs["machine"], envs["commit"], envs["env_name"], strict=True)
        envs = envs[[k in chosen for k in keys]]
        if envs.empty:
            raise HarnessError(f"{args.select!r}: matches no environment of {args.results}")
    if args.format not in FORMATS:
        raise HarnessError(f"--format: unknown format {args.format!r}")
    output(FORMATS[args.format](envs.reset_index(drop=True)), getattr(args, "out", None))
    return 0
