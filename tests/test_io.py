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
