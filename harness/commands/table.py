"""``python -m harness table RESULTS``: read the folder, build the table, write it."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pandas as pd

from harness.analysis import headline, noise, tables
from harness.commands import load, output, stderr_warn
from harness.errors import HarnessError
from harness.render import headline as render_headline
from harness.render import tables as render_tables
from harness.results import environments
from harness.results.reader import Loaded
from harness.study import missing


def build(loaded: Loaded, args: argparse.Namespace) -> tuple[pd.DataFrame, bool]:
    """The stability table (the generic one when the folder has no PCA benchmarks), with the
    folder-wide environment ids and labels that tell runs apart."""
    select = {
        "commit": args.commit,
        "machine": args.machine,
        "all_commits": getattr(args, "all_commits", False),
    }
    checks = tables.parse_checks(getattr(args, "verdict_checks", None))
    table = tables.stability_table(loaded.frame, loaded.records, verdict_checks=checks, **select)
    generic = not len(table)
    if generic:
        table = tables.generic_table(loaded.frame, **select)
    return labelled_table(loaded, table), generic


def labelled_table(loaded: Loaded, table: pd.DataFrame) -> pd.DataFrame:
    """A stability (or generic) table with each run's folder-wide id and unique label."""
    labels = {i.key: i.label for i in loaded.infos()}
    return tables.with_ids(table, environments.ids(loaded), labels)


def shown_rows(frame: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The asv rows of the runs a table shows."""
    keys = ["machine", "commit", "env_name"]
    shown = pd.MultiIndex.from_frame(table[keys].astype(str).drop_duplicates())
    return frame[pd.MultiIndex.from_frame(frame[keys].astype(str)).isin(shown)]


def with_headline(text: str, fmt: str, head: headline.Headline | None) -> str:
    """The table's text led by the headline: Markdown above the tables, HTML under the title
    (JSON carries it in its summary, CSV holds rows only)."""
    if head is None:
        return text
    if fmt == "md":
        return render_headline.to_markdown(head) + text
    if fmt == "html":
        title_end = text.find("</h1>\n")
        if title_end >= 0:
            cut = title_end + len("</h1>\n")
            return text[:cut] + render_headline.to_html(head) + text[cut:]
    return text


def cli_table(args: argparse.Namespace) -> int:
    without = missing.load(
        args.results, machine=args.machine, commit=args.commit, warn=stderr_warn("table")
    )
    try:
        loaded = load(args.results, "table")
    except HarnessError:
        if not without:
            raise
        output(render_tables.render_table(pd.DataFrame(), args.format, without=without), args.out)
        return 0
    table, generic = build(loaded, args)
    timing = noise.summarize(shown_rows(loaded.frame, table))
    summary = render_tables.summary_line(loaded)
    if timing.n:  # the last line of the table, so the last line `make bench` prints (issue #15)
        summary += "\n\n" + timing.line()
    head = None if generic else headline.headline(table)
    text = render_tables.render_table(
        table,
        args.format,
        generic=generic,
        summary=summary,
        summary_obj={
            **render_tables.summary_obj(loaded),
            "timing_noise": dataclasses.asdict(timing),
            "headline": render_headline.to_obj(head),
        },
        without=without,
    )
    output(with_headline(text, args.format, head), args.out)
    if args.format in ("csv", "json") or args.out:
        print(summary, file=sys.stderr)
    return 0
