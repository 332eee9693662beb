"""Reading at scale (issue #14): orjson with asv's NaN, and the on-disk index of parsed files
(keyed by path, size and mtime, kept outside the results folder) giving back exactly what a
fresh parse gives: whole, after a change, after damage."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.results import asvfiles, index
from harness.results import reader as results

sys.path.insert(0, str(Path(__file__).parent))
from test_results import generator, tree_digest, write_result

#: Long enough ago that no file counts as racy (index.RACY_NS).
OLD = time.time() - 3600


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(index.ENV, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "results"
    gen = generator()
    gen.generate(root, 4, profile="smoke", machines=2)
    gen.add_sidecars(root, artifacts=False)
    age(root)
    return root


def age(root: Path, when: float = OLD) -> None:
    """Every file of ``root`` last written at ``when``."""
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))


def scan(root: Path, warn=lambda line: None) -> results.Loaded:
    """A read, and its index written (which the index does meanwhile, in a thread)."""
    loaded = results.scan(root, warn=warn)
    index.wait()
    return loaded


def fresh(root: Path, monkeypatch) -> results.Loaded:
    """A parse without the index."""
    with monkeypatch.context() as m:
        m.setenv(index.ENV, "off")
        return results.scan(root, warn=lambda line: None)


def same(a: results.Loaded, b: results.Loaded) -> None:
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.records, b.records)
    assert a.problems == b.problems and a.files == b.files
    assert a.fingerprints.by_key == b.fingerprints.by_key
    assert a.frame.attrs == b.frame.attrs


class Parses:
    """Counts the files :func:`harness.results.asvfiles.parse_files` is handed."""

    def __init__(self, monkeypatch) -> None:
        self.items: list[str] = []
        real = results.parse_files

        def counting(items, *args, **kwargs):
            self.items.extend(rel for _, _, rel in items)
            return real(items, *args, **kwargs)

        monkeypatch.setattr(results, "parse_files", counting)


def test_a_second_read_gives_the_same_without_parsing(folder, cache, monkeypatch):
    before = tree_digest(folder)
    cold = fresh(folder, monkeypatch)
    first = scan(folder)
    same(cold, first)
    parses = Parses(monkeypatch)
    second = scan(folder)
    same(cold, second)
    assert parses.items == []  # every file came from the index
    assert tree_digest(folder) == before  # the results folder is only read
    entries = list((cache / index.FOLDER).iterdir())
    assert len(entries) == 1 and (entries[0] / "index.json").is_file()
    assert not any(p.is_relative_to(folder) for p in entries[0].rglob("*"))


def test_only_changed_files_are_parsed_again(folder, cache, monkeypatch):
    scan(folder)
    files = sorted(p for p in folder.glob("machine00/*.json") if p.name != "machine.json")
    changed, gone = files[0], files[1]
    data = json.loads(changed.read_text())
    data["results"]["pca.PCA.time_pca"][0][0] = 123.0
    changed.write_text(json.dumps(data))
    gone.unlink()
    added = folder / "machine01" / "zz-new.json"
    shutil.copy(next(p for p in folder.glob("machine01/*-*.json")), added)
    fp = next(folder.glob("machine01/harness/*/fingerprint.jsonl"))
    fp.write_text(fp.read_text().replace('"3.11.7"', '"3.11.8"'))  # the same size
    for p in (changed, added, fp):
        os.utime(p, (OLD + 60, OLD + 60))  # written since, long enough ago not to be racy
    parses = Parses(monkeypatch)
    got = scan(folder)
    expected = {changed.relative_to(folder).as_posix(), "machine01/zz-new.json"}
    assert set(parses.items) - expected  # the run whose fingerprint changed
    assert expected <= set(parses.items) and len(parses.items) == len(expected) + 1
    same(fresh(folder, monkeypatch), got)
    assert 123.0 in set(got.frame["value"])


def test_a_file_rewritten_at_once_is_not_trusted(tmp_path, cache, monkeypatch):
    """The same size, rewritten within one mtime tick of the index: read again, not trusted."""
    row = lambda v: {"x.time_a": [[v], []]}  # noqa: E731
    path = write_result(tmp_path / "results" / "m", "a.json", row(0.25))
    assert scan(tmp_path / "results", warn=pytest.fail).frame["value"].tolist() == [0.25]
    write_result(tmp_path / "results" / "m", "a.json", row(0.75))  # same size
    assert path.stat().st_size == len(json.dumps(json.loads(path.read_text())))
    assert scan(tmp_path / "results", warn=pytest.fail).frame["value"].tolist() == [0.75]


def test_a_damaged_index_is_ignored_and_replaced(folder, cache, monkeypatch):
    cold = fresh(folder, monkeypatch)
    scan(folder)
    (entry,) = (cache / index.FOLDER).iterdir()
    (blob,) = entry.glob("arrays-*.bin")
    blob.write_bytes(blob.read_bytes()[:100])
    same(cold, scan(folder))
    (entry / "index.json").write_text("{not json")
    (entry / "records.json").write_bytes(b"\x00\x01")
    same(cold, scan(folder))
    parses = Parses(monkeypatch)
    same(cold, scan(folder))
    assert parses.items == []  # replaced whole by the read before


def test_problems_are_reported_again_from_the_index(folder, cache, monkeypatch):
    (folder / "machine00" / "zz-empty.json").write_text("")
    (folder / "machine00" / "zz-nan-in-a-string.json").write_text('{"a": "NaN"')
    age(folder)
    cold = fresh(folder, monkeypatch)
    assert len(cold.problems) == 2
    for _ in range(2):
        lines: list[str] = []
        scan(folder, warn=lines.append)
        assert lines == cold.problems


def test_off_writes_nothing(folder, cache, monkeypatch):
    monkeypatch.setenv(index.ENV, "off")
    scan(folder)
    assert not cache.exists()


def test_an_unwritable_cache_still_reads(folder, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("HARNESS_CACHE", str(blocker))
    monkeypatch.delenv(index.ENV, raising=False)
    same(fresh(folder, monkeypatch), scan(folder))


# --- orjson and asv's NaN ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"a": [1.5, NaN, null]}', {"a": [1.5, asvfiles.NAN_TEXT, None]}),
        (b'{"a": "NaN inside a string", "b": [NaN]}', None),  # the standard library reads it
        (b'{"a": [Infinity, -Infinity]}', None),
    ],
)
def test_nan_is_quoted_exactly(text, expected, tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(text)
    if expected is not None:
        assert asvfiles.loads(text)[0] == expected == asvfiles.read_json(path)
        sentinel = {"a": [1.5, asvfiles.SENTINEL, None]}
        assert asvfiles.loads(text, sentinel=True) == (sentinel, 1)
    else:  # orjson refuses it; the standard library reads it as it is
        with pytest.raises(ValueError, match=r"\w"):
            asvfiles.loads(text)
        assert repr(asvfiles.read_json(path)) == repr(json.loads(text))


def test_nan_text_in_a_parameter_is_a_string_not_a_skip(tmp_path):
    """A parameter whose value is the text NaN stays text; NaN results are skipped, null failed."""
    folder = tmp_path / "results" / "m"
    write_result(
        folder, "a.json", {"x.time_a": [[0.5, None, float("nan")], [["'NaN'", "'b'", "'c'"]]]}
    )
    df = results.scan(tmp_path / "results", warn=pytest.fail, records=False).frame
    assert df["param1"].tolist() == ["NaN", "b", "c"]
    assert df["status"].tolist() == ["ok", "failed", "skipped"]


@pytest.mark.parametrize(
    ("first", "extra"),
    [
        (-91.0, {}),  # the sentinel's own text in a file: read the quoted way
        (0.25, {"durations": {"x": float("nan")}}),  # a NaN where no number is read: uncounted
        (0.25, {"note": "NaN"}),  # a NaN inside a string
    ],
)
def test_the_sentinel_is_exact_or_not_used(tmp_path, first, extra):
    """The same parse as the exact (quoted) way, whatever the file holds."""
    folder = tmp_path / "results" / "m"
    rows = {"x.time_a": [[first, None, float("nan"), 0.5], [["'a'", "'b'", "'c'", "'d'"]]]}
    write_result(folder, "a.json", rows, commit="a" * 40, **extra)
    write_result(folder, "b.json", {"x.time_a": [[float("nan"), 2.0], [["'a'", "'b'"]]]},
                 commit="b" * 40)  # fmt: skip
    items = [(str(p), "m", f"m/{p.name}") for p in sorted(folder.glob("[ab].json"))]
    fast = asvfiles.parse_files(items, {})
    exact = asvfiles.parse_files(items, {}, quoted=True)
    assert fast.values.tolist()[0] == first and fast.failed == exact.failed == [1]
    assert repr(fast.values.tolist()) == repr(exact.values.tolist())
    assert fast.block_meta == exact.block_meta and fast.files == exact.files
    df = results.scan(tmp_path / "results", warn=pytest.fail, records=False).frame
    assert df["status"].tolist() == ["ok", "failed", "skipped", "ok", "skipped", "ok"]
