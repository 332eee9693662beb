"""The headline that ``harness table`` (and so ``make bench``) and the report start with (#14)."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.analysis import headline, tables
from harness.cli import main
from harness.render import headline as render_headline
from harness.vocabulary import BITWISE, CHECKS, IDENTICAL_CALLS, VERDICT_CHECKS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_results import generator  # noqa: E402

#: A verdict that is not bitwise (any will do: the headline only asks "identical bits or not").
MOVED = "moved"


def _row(solver: str, seconds: float, devs: dict[str, float], **extra) -> dict:
    row = dict.fromkeys(tables.table_columns())
    row.update(machine="m", commit="c" * 40, env_name="e", environment="env", id="E1")
    row.update(dataset="d", layout="dense", dtype="float32", solver=solver)
    row.update(time_1_thread_s=seconds, time_all_cores_s=math.nan)
    for check in CHECKS:
        dev = devs.get(check, 0.0)
        row[f"dev_{check}"] = dev
        row[f"v_{check}"] = BITWISE if dev == 0 else MOVED
    row.update(extra)
    return row


@pytest.fixture
def table() -> pd.DataFrame:
    """Three configurations: arpack reproducible (0.3 s), full reproducible but moved by the
    threads (0.2 s), randomized faster (0.1 s) but not reproducible across processes."""
    return pd.DataFrame(
        [
            _row("arpack", 0.3, {"seed": 1e-4}),
            _row("full", 0.2, {"threads": 3e-5, "seed": 2e-6}),
            _row("randomized", 0.1, {"process": 1e-2, "threads": 5e-3}),
        ]
    )


def test_counts_moves_and_the_fastest_reproducible(table):
    h = headline.headline(table)
    assert h.environments == 1 and h.configurations == 3
    counts = {r.check: (r.bitwise, r.ran) for r in h.reproduced}
    assert [r.check for r in h.reproduced] == list(VERDICT_CHECKS)
    assert (
        counts["repeat"] == (3, 3) and counts["process"] == (2, 3) and counts["threads"] == (1, 3)
    )
    threads = [(m.solver, m.moved, m.ran, m.worst) for m in h.moved if m.check == "threads"]
    assert threads == [("randomized", 1, 1, 5e-3), ("full", 1, 1, 3e-5)]  # worst first
    seed = {m.solver: m.worst for m in h.moved if m.check == "seed"}
    assert seed == {"arpack": 1e-4, "full": 2e-6}
    (f,) = h.fastest
    assert (f.configuration, f.seconds, f.reproducible, f.timed) == (
        "dense/float32/full",
        0.2,
        2,
        3,
    )
    assert (f.overall_configuration, f.overall_seconds) == ("dense/float32/randomized", 0.1)
    text = " ".join(render_headline.sentences(h))
    assert "3 of 3 run to run" in text and "2 of 3 across processes" in text
    assert "1 of 3 across thread counts" in text
    assert "randomized 1/1 (5.0e-03; d/dense/float32)" in text
    assert "dense/float32/full takes 200 ms at 1 thread" in text and "(2.0x less)" in text


def test_identical_calls_decide_reproducible(table):
    """Reproducible at a fixed thread count means identical bits under every identical call."""
    assert set(IDENTICAL_CALLS) <= set(VERDICT_CHECKS)
    table.loc[1, "v_repeat"], table.loc[1, "dev_repeat"] = MOVED, 1e-9
    (f,) = headline.headline(table).fastest
    assert f.configuration == "dense/float32/arpack" and f.reproducible == 1


def test_no_headline_without_stability_checks():
    assert headline.headline(pd.DataFrame(columns=tables.table_columns())) is None
    assert render_headline.to_markdown(None) == "" and render_headline.to_html(None) == ""


def test_all_cores_only_run(table):
    table["time_all_cores_s"], table["time_1_thread_s"] = table["time_1_thread_s"], np.nan
    table["all_cores"] = 4.0
    (f,) = headline.headline(table).fastest
    assert f.threads == "4 threads" and f.seconds == 0.2


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("head") / "results"
    gen = generator()
    gen.generate(root, 3, profile="smoke", machines=1)
    gen.add_sidecars(root, artifacts=False)
    return root


def test_table_starts_with_the_headline(folder, capsys):
    assert main(["table", str(folder)]) == 0
    md = capsys.readouterr().out
    assert md.startswith("Of ") and md.index("bitwise reproducible") < md.index("\n## E")
    assert main(["table", str(folder), "--format", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    head = obj["summary"]["headline"]
    assert head["configurations"] > 0 and head["sentences"][0] in md
    assert main(["table", str(folder), "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert html.index("</h1>") < html.index('<div class="headline"') < html.index("<table")


def test_headline_counts_agree_with_the_tables(capsys):
    """On the committed study: the bitwise counts equal the 'bitwise' cells of the tables."""
    assert main(["table", str(ROOT / "results")]) == 0
    md = capsys.readouterr().out
    header = next(line for line in md.splitlines() if line.startswith("| dataset |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        if line.startswith("| ") and not line.startswith(("| dataset", "|:"))
    ]
    for check, what in (("repeat", "run to run"), ("process", "across processes")):
        cells = [r[cols.index(f"Δ {check}")] for r in rows if len(r) == len(cols)]
        n = sum(c == BITWISE for c in cells)
        assert re.search(rf"\b{n} of \d+ {what}", md), (check, n)
