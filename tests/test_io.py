"""Atomic writes: a failed write leaves the previous file whole and no temp file behind."""

from __future__ import annotations

import json

import pytest

from harness import io


def test_failed_write_keeps_previous_content(tmp_path):
    target = tmp_path / "table.md"
    io.write_text(target, "old\n")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_jsonl_roundtrip_has_no_nan_literals(tmp_path):
    path = tmp_path / "r.jsonl"
    io.write_jsonl(path, [{"a": float("nan"), "b": [1.5, float("inf")]}, {"c": "x"}])
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert io.read_jsonl(path) == [{"a": None, "b": [1.5, None]}, {"c": "x"}]
    assert json.loads(text.splitlines()[0]) == {"a": None, "b": [1.5, None]}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"a": 1}\n[1, 2]\n', "line 2: not a JSON object"),
        (b'{"a": 1}\n{"b": "cut', "line 2: truncated"),
        (b'{"a": 1}\n{"b" 2}\n', "line 2: not valid JSON"),
        (b"\xff\xfe\x00binary", "binary file"),
        (b'{"a": 1' + b"0" * 5000 + b"}\n", "line 1: not valid JSON"),
    ],
)
def test_read_jsonl_names_file_and_line(tmp_path, content, reason):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(io.JSONLinesError, match=reason) as err:
        io.read_jsonl(path)
    assert str(path) in str(err.value) and err.value.reason.startswith(reason)


def test_read_jsonl_of_a_missing_file(tmp_path):
    with pytest.raises(io.JSONLinesError, match="cannot read"):
        io.read_jsonl(tmp_path / "absent.jsonl")


def test_gzip_jsonl_reads_like_jsonl_and_bad_gzip_is_named(tmp_path):
    """Packed study records (.jsonl.gz): read like .jsonl; a file that is not gzip, is cut
    short, or unpacks beyond the sidecar limit is refused with the reason, never read whole."""
    import gzip

    good = tmp_path / "r.jsonl.gz"
    good.write_bytes(gzip.compress(b'{"a": 1}\n{"b": 2}\n', mtime=0))
    assert io.read_jsonl(good) == [{"a": 1}, {"b": 2}]
    cases = {
        "plain.jsonl.gz": (b'{"a": 1}\n', "not gzip"),
        "cut.jsonl.gz": (gzip.compress(b'{"a": 1}\n' * 1000)[:40], "truncated"),
        "bomb.jsonl.gz": (gzip.compress(b" " * (io.MAX_SIDECAR_BYTES + 10)), "unpacks to more"),
    }
    for name, (raw, why) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(io.JSONLinesError, match=why) as err:
            io.read_jsonl(tmp_path / name)
        assert name in str(err.value)
