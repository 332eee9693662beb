"""Hypothesis strategies for ``tests/test_fuzz.py``: hostile inputs built from a small real base.

The base is a few real runs of the committed study (``results/<machine>``, the published one): their asv results files,
``benchmarks.json``, their harness sidecars and the study pin. A :class:`Mutation` is plain data
(a path in that tree and what to put there), so hypothesis can print and shrink it; it is applied
to a private copy of the base, never to ``results/`` itself.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import math
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from harness.render.writeup import study_machine
from harness.vocabulary import ANCHORS_DIR, run_folder_name

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "results"
#: The machine whose study is published: the base is copied from its runs.
MACHINE = study_machine(SOURCE, lambda line: None)


def _pinned_commit8() -> str:
    pin = SOURCE / MACHINE / "harness" / "study" / "study.jsonl"
    try:
        return json.loads(pin.read_text().splitlines()[0])["commit"][:8]
    except (OSError, IndexError, KeyError, ValueError):
        return "none"


COMMIT8 = _pinned_commit8()
#: The runs copied into the base tree: two scanpy releases (so ``compare scanpy=1.10.4
#: scanpy=1.11.5`` has both sides) and an older stack, each with its full sidecar folder.
BASE_ENVS = (
    "virtualenv-py3.11-numpy1.26.4-scanpy1.11.5-scikit-learn1.4.2-scipy1.13.1",
    "virtualenv-py3.11-numpy2.4.6-scanpy1.10.4-scikit-learn1.9.1-scipy1.17.1",
    "virtualenv-py3.11-numpy2.2.6-scanpy1.11.5-scikit-learn1.5.2-scipy1.15.3",
)
#: What a zip bomb inflates to: more than test_fuzz.MEMORY_BOUND, so a reader that inflates it
#: whole is stopped by the rlimit. On disk it is about 3.5 MB.
BOMB_BYTES = 3584 * 2**20

HUGE = 10**400
RTL = "\u202e"
INJECTIONS = (
    "<script>alert(1)</script>",
    "a|b",
    "$\\foo{$",
    "$x^$",
    f"{RTL}fdp.exe",
    "\u2066iso\u2069",
    "**bold** _it_ `code`",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "line\nbreak\r\n# heading",
    "nul\x00byte",
    "\ud800",  # a lone surrogate: valid in JSON text, not encodable as UTF-8
    "%s%n{0}",
    "../../etc/passwd",
    "",
    " ",
)


# --- the base tree -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Base:
    """The files of the base tree, relative to its root, grouped by what they are."""

    results: tuple[str, ...]
    benchmarks: str
    runs: tuple[str, ...]
    fingerprints: tuple[str, ...]
    records: tuple[str, ...]
    inputs: tuple[str, ...]
    artifacts: tuple[str, ...]
    study: tuple[str, ...]

    def all_files(self) -> tuple[str, ...]:
        """Every file a mutation may target."""
        return (
            *self.results,
            self.benchmarks,
            *self.fingerprints,
            *self.records,
            *self.inputs,
            *self.artifacts,
            *self.study,
        )


def _copy_list(source: Path = SOURCE) -> list[tuple[Path, str]]:
    """(source path, relative path in the base tree) of every file of the base."""
    machine = source / MACHINE
    out = [
        (source / "benchmarks.json", "benchmarks.json"),
        (machine / "machine.json", f"{MACHINE}/machine.json"),
    ]
    for env in BASE_ENVS:
        out.append((machine / f"{COMMIT8}-{env}.json", f"{MACHINE}/{COMMIT8}-{env}.json"))
        folder = machine / "harness" / run_folder_name(COMMIT8, env)
        # Packed records (.jsonl.gz, harness.study.pack) go into the base unpacked: the
        # mutations write plain JSON Lines.
        out += [
            (p, p.relative_to(source).as_posix().removesuffix(".gz"))
            for p in sorted(folder.rglob("*"))
        ]
    for sub in ("study", ANCHORS_DIR):  # the anchors: what format-2 digests decode against
        folder = machine / "harness" / sub
        out += [(p, p.relative_to(source).as_posix()) for p in sorted(folder.rglob("*"))]
    return [(p, rel) for p, rel in out if p.is_file()]


def base_available() -> bool:
    """Whether the committed results the base is copied from are here."""
    return all(p.is_file() for p, _ in _copy_list()) and len(_copy_list()) > 10


@functools.cache
def base() -> Base:
    """The base tree's layout, read from the committed results (read only)."""
    rels = [rel for _, rel in _copy_list()]

    def pick(pred: Callable[[str], bool]) -> tuple[str, ...]:
        return tuple(r for r in rels if pred(r))

    return Base(
        results=pick(lambda r: r.count("/") == 1 and r.endswith(".json") and "machine" not in r),
        benchmarks="benchmarks.json",
        runs=tuple(f"{MACHINE}/harness/{run_folder_name(COMMIT8, env)}" for env in BASE_ENVS),
        fingerprints=pick(lambda r: r.endswith("/fingerprint.jsonl")),
        records=pick(lambda r: "/records/" in r),
        inputs=pick(lambda r: r.endswith("/inputs.jsonl")),
        artifacts=pick(lambda r: r.endswith(".npz")),
        study=pick(lambda r: "/harness/study/" in r),
    )


def copy_base(dest: Path) -> Path:
    """Copy the base tree to ``dest`` (created); return it."""
    for src, rel in _copy_list():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.name.endswith(".gz") and not rel.endswith(".gz"):
            target.write_bytes(gzip.decompress(src.read_bytes()))
        else:
            shutil.copyfile(src, target)
    return dest


@functools.cache
def _source_bytes(rel: str) -> bytes:
    path = SOURCE / rel
    if not path.exists() and path.with_name(path.name + ".gz").is_file():  # a packed record
        return gzip.decompress(path.with_name(path.name + ".gz").read_bytes())
    return path.read_bytes()


@functools.cache
def _source_json(rel: str) -> Any:
    return json.loads(_source_bytes(rel))


@functools.cache
def _source_lines(rel: str) -> tuple[Any, ...]:
    return tuple(json.loads(line) for line in _source_bytes(rel).splitlines() if line.strip())


@functools.cache
def _source_npz(rel: str) -> dict[str, np.ndarray]:
    with np.load(SOURCE / rel, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# --- mutations ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutation:
    """Put ``content`` at ``target`` (relative to the tree root), or make it a special file.

    ``invalid``: the file is no longer what the harness writes, so when it changes a command's
    output the command must name it on stderr. Valid-but-hostile content (markup in a name)
    may change the output silently; it must only come out escaped.
    """

    kind: str
    target: str
    content: bytes | None = None
    special: str | None = None  # fifo | loop | devzero | dir | delete | outside
    invalid: bool = True
    note: str = ""

    def apply(self, root: Path) -> None:
        """Make the change inside ``root``."""
        path = root / self.target
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.special is None:
            _remove(path)
            path.write_bytes(self.content or b"")
            return
        _remove(path)
        if self.special == "fifo":
            os.mkfifo(path)
        elif self.special == "loop":
            path.symlink_to(path.name)  # a link to itself
        elif self.special == "devzero":
            path.symlink_to("/dev/zero")
        elif self.special == "dir":
            path.mkdir()
        elif self.special == "outside":
            path.symlink_to("/proc/self/status")
        elif self.special != "delete":
            raise ValueError(self.special)

    def __repr__(self) -> str:
        body = "" if self.content is None else f", content={self.content[:160]!r}"
        if self.content is not None and len(self.content) > 160:
            body += f"...({len(self.content)} bytes)"
        special = f", special={self.special!r}" if self.special else ""
        note = f", note={self.note!r}" if self.note else ""
        return f"Mutation({self.kind!r}, {self.target!r}{special}{note}{body})"


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file() or path.is_fifo():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def dump(doc: Any) -> bytes:
    """JSON as Python writes it, NaN/Infinity literals and integers of any size included."""
    return json.dumps(doc, allow_nan=True).encode()


# --- hostile values ----------------------------------------------------------------------------

_SPECIAL_SCALARS = (
    HUGE,
    -HUGE,
    10**309,
    2**63,
    2**64 + 1,
    -1,
    0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    5e-324,
    None,
    True,
    False,
    "many",
    "NaN",
    "2",
    "1e400",
)

hostile_scalars = st.one_of(
    st.sampled_from(_SPECIAL_SCALARS),
    st.sampled_from(INJECTIONS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(INJECTIONS) | st.text(max_size=6), inner, max_size=3),
    ),
    max_leaves=6,
)


def _is_plain_number(x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return abs(x) < 1e300 if isinstance(x, int) else math.isfinite(x) and abs(x) < 1e300


def same_kind(old: Any, new: Any) -> bool:
    """Whether ``new`` is a value of the type the harness wrote at that place (then the change
    is data, not corruption)."""
    if isinstance(old, str) and isinstance(new, str):
        return True
    return _is_plain_number(old) and _is_plain_number(new)


# --- JSON documents ----------------------------------------------------------------------------

JsonPath = tuple[Any, ...]


def json_paths(doc: Any, *, depth: int = 4, per_list: int = 3, limit: int = 300) -> list[JsonPath]:
    """Places inside ``doc``, shallow first (lists: their first few items)."""
    out: list[JsonPath] = []
    level: list[tuple[JsonPath, Any]] = [((), doc)]
    for _ in range(depth):
        nxt: list[tuple[JsonPath, Any]] = []
        for path, node in level:
            if isinstance(node, dict):
                items: Iterator[tuple[Any, Any]] = iter(node.items())
            elif isinstance(node, list):
                items = iter(list(enumerate(node))[:per_list])
            else:
                continue
            for key, child in items:
                out.append((*path, key))
                nxt.append(((*path, key), child))
        level = nxt
    return out[:limit]


def get_at(doc: Any, path: JsonPath) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(doc: Any, path: JsonPath, value: Any) -> Any:
    """A deep copy of ``doc`` with ``path`` set to ``value`` (``DELETE`` removes it)."""
    doc = json.loads(json.dumps(doc))
    parent = get_at(doc, path[:-1])
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


DELETE = object()


def _results_paths(doc: dict[str, Any]) -> list[JsonPath]:
    """The places of an asv results file that matter: every key, each benchmark's columns, its
    first values, its parameter lists and their first values."""
    paths: list[JsonPath] = [(k,) for k in doc]
    for key in ("params", "requirements", "env_vars", "durations"):
        if isinstance(doc.get(key), dict):
            paths += [(key, k) for k in doc[key]]
    paths += [("result_columns", i) for i in range(len(doc["result_columns"]))]
    for name, row in doc["results"].items():
        paths.append(("results", name))
        paths += [("results", name, i) for i in range(len(row))]
        paths += [("results", name, 0, j) for j in range(min(3, len(row[0])))]
        for k in range(len(row[1])):
            paths.append(("results", name, 1, k))
            paths.append(("results", name, 1, k, 0))
    return paths


def _invalid_json_change(rel: str, path: JsonPath, old: Any, new: Any) -> bool:
    if rel.endswith(".json") and path and path[0] in ("version", "result_columns"):
        return True
    if "/records/" in rel and path[-1:] == ("value",):
        return True  # a record contradicting asv's number (#16, case 14)
    return not same_kind(old, new)


@st.composite
def json_field_mutation(draw: st.DrawFn, rel: str, paths: list[JsonPath] | None = None) -> Mutation:
    """One place of the JSON (or first JSON line) at ``rel`` set to a hostile value or removed."""
    lines = rel.endswith(".jsonl")
    doc = _source_lines(rel)[0] if lines else _source_json(rel)
    if paths is None:
        paths = _results_paths(doc) if rel.count("/") == 1 and "results" in doc else json_paths(doc)
    path = draw(st.sampled_from(paths))
    old = get_at(doc, path)
    new = draw(st.one_of(hostile_values, st.just(DELETE)))
    text = dump(set_at(doc, path, new))
    if lines:
        rest = b"".join(dump(x) + b"\n" for x in _source_lines(rel)[1:])
        text = text + b"\n" + rest
    invalid = new is DELETE or _invalid_json_change(rel, path, old, new)
    shown = "<deleted>" if new is DELETE else repr(new)[:80]
    return Mutation("json-field", rel, text, invalid=invalid, note=f"{list(path)} = {shown}")


@st.composite
def bytes_mutation(draw: st.DrawFn, rel: str) -> Mutation:
    """The file's bytes damaged: truncated, empty, garbage, garbage prefix, re-encoded."""
    raw = _source_bytes(rel)
    how = draw(
        st.sampled_from(["truncate", "empty", "garbage", "prefix", "utf16", "nul", "crlf", "blank"])
    )
    if how == "truncate":
        n = draw(st.integers(min_value=1, max_value=max(1, len(raw) - 1)))
        return Mutation("bytes", rel, raw[:n], note=f"truncated to {n} of {len(raw)} bytes")
    if how == "empty":
        return Mutation("bytes", rel, b"", note="empty")
    if how == "garbage":
        junk = draw(st.binary(min_size=1, max_size=64))
        return Mutation("bytes", rel, junk, note="garbage")
    if how == "prefix":
        junk = draw(st.binary(min_size=1, max_size=8))
        return Mutation("bytes", rel, junk + raw, note="garbage prefix")
    if how == "utf16":
        return Mutation("bytes", rel, raw.decode("latin-1").encode("utf-16"), note="UTF-16")
    if how == "nul":
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        return Mutation("bytes", rel, raw[:at] + b"\x00" + raw[at:], note=f"NUL at {at}")
    if how == "crlf":
        return Mutation("bytes", rel, raw.replace(b"\n", b"\r\n"), invalid=False, note="CRLF")
    return Mutation("bytes", rel, b"\n \n\t\n", note="only whitespace")


@st.composite
def lines_mutation(draw: st.DrawFn, rel: str) -> Mutation:
    """A JSON Lines file with odd lines: ``{}``, a list, a number, garbage, repeated lines."""
    raw = _source_bytes(rel)
    odd = draw(
        st.sampled_from(
            [b"{}", b"[]", b"1", b'"text"', b"null", b"[{}]", b"{", b"\xff\xfe", b"NaN", HUGE_LINE]
        )
    )
    where = draw(st.sampled_from(["replace", "before", "after", "only"]))
    _, _, rest = raw.partition(b"\n")
    content = {
        "replace": odd + b"\n" + rest,
        "before": odd + b"\n" + raw,
        "after": raw.rstrip(b"\n") + b"\n" + odd + b"\n",
        "only": odd + b"\n",
    }[where]
    return Mutation("lines", rel, content, note=f"{odd[:20]!r} {where}")


HUGE_LINE = b'{"value": 1' + b"0" * 400 + b"}"


# --- asv results files -------------------------------------------------------------------------


@st.composite
def results_mutation(draw: st.DrawFn) -> Mutation:
    """A hostile asv results file (api version 2)."""
    rel = draw(st.sampled_from(base().results))
    doc = _source_json(rel)
    names = sorted(doc["results"])
    name = draw(st.sampled_from(names))
    how = draw(
        st.sampled_from(
            ["field", "field", "bytes", "grid", "list-param", "inject-param", "inject-name", "api"]
        )
    )
    if how == "field":
        return draw(json_field_mutation(rel))
    if how == "bytes":
        return draw(bytes_mutation(rel))
    if how == "grid":
        # parameter lists multiplying to 10^9 (or more) combinations, a short result list
        per = draw(st.sampled_from([1000, 10**5]))
        lists = draw(st.integers(min_value=2, max_value=4))
        grid = [[repr(f"v{i}") for i in range(per)] for _ in range(lists)]
        row = list(doc["results"][name])
        row[1] = grid
        new = set_at(doc, ("results", name), row)
        return Mutation("grid", rel, dump(new), note=f"{name}: {per}^{lists} combinations")
    if how == "list-param":
        value = draw(st.sampled_from(["[1, 2]", "['arpack', 'full']", "{'a': 1}", "{1, 2}"]))
        lit = draw(st.booleans())
        row = doc["results"][name]
        k = draw(st.integers(min_value=0, max_value=len(row[1]) - 1))
        new = set_at(
            doc,
            ("results", name, 1, k, 0),
            json.loads(value.replace("'", '"')) if lit and not value.startswith("{1") else value,
        )
        # asv writes repr strings; a list there is odd but readable: it must not crash
        return Mutation(
            "list-param", rel, dump(new), invalid=False, note=f"{name} param {k}[0] = {value}"
        )
    if how == "inject-param":
        text = draw(st.sampled_from(INJECTIONS) | st.text(min_size=1, max_size=10))
        row = doc["results"][name]
        k = draw(st.integers(min_value=0, max_value=len(row[1]) - 1))
        new = set_at(doc, ("results", name, 1, k, 0), repr(text))
        return Mutation("inject-param", rel, dump(new), invalid=False, note=f"{name} {k}: {text!r}")
    if how == "inject-name":
        text = draw(st.sampled_from(INJECTIONS))
        results = dict(doc["results"])
        results[name + text] = results.pop(name)
        new = set_at(doc, ("results",), results)
        return Mutation("inject-name", rel, dump(new), invalid=False, note=f"{name}+{text!r}")
    version = draw(st.sampled_from([1, 3, "2", None, 2.5, HUGE, [2]]))
    return Mutation(
        "api", rel, dump(set_at(doc, ("version",), version)), note=f"version={version!r}"
    )


# --- sidecars ----------------------------------------------------------------------------------

FINGERPRINT_FIELDS: list[JsonPath] = [
    ("env_vars",),
    ("packages",),
    ("packages", "scanpy"),
    ("packages", "numpy"),
    ("threadpools",),
    ("threadpools", 0),
    ("threadpools", 0, "num_threads"),
    ("threadpools", 0, "version"),
    ("threadpools", 0, "internal_api"),
    ("blas",),
    ("blas_loaded",),
    ("cpu",),
    ("cpu", "usable"),
    ("cpu", "count"),
    ("cpu", "model"),
    ("python",),
    ("commit",),
    ("env_name",),
    ("machine",),
    ("schema",),
    ("mkl_cbwr",),
]


@st.composite
def fingerprint_mutation(draw: st.DrawFn) -> Mutation:
    rel = draw(st.sampled_from(base().fingerprints))
    how = draw(st.sampled_from(["field", "field", "typed", "lines", "bytes"]))
    if how == "field":
        return draw(json_field_mutation(rel, FINGERPRINT_FIELDS))
    if how == "typed":
        # the wrong types issue #16 names, one field at a time
        path, value = draw(
            st.sampled_from(
                [
                    (("env_vars",), "OMP_NUM_THREADS=1"),
                    (("packages",), ["scanpy", "1.11.5"]),
                    (("packages", "scanpy"), ["1.11.5"]),
                    (("threadpools", 0, "num_threads"), "many"),
                    (("threadpools", 0, "version"), [0, 3, 23]),
                    (("threadpools",), "openblas"),
                    (("blas",), ["OpenBLAS", "0.3.23"]),
                    (("cpu",), "AMD EPYC"),
                    (("cpu", "usable"), "many"),
                    (("python",), 3.11),
                ]
            )
        )
        doc = _source_lines(rel)[0]
        return Mutation(
            "fingerprint",
            rel,
            dump(set_at(doc, path, value)) + b"\n",
            note=f"{list(path)} = {value!r}",
        )
    if how == "lines":
        return draw(lines_mutation(rel))
    return draw(bytes_mutation(rel))


@st.composite
def record_mutation(draw: st.DrawFn) -> Mutation:
    rel = draw(st.sampled_from(base().records))
    how = draw(st.sampled_from(["field", "field", "value", "lines", "bytes"]))
    if how == "field":
        return draw(json_field_mutation(rel))
    if how == "value":
        doc = _source_lines(rel)[0]
        value = draw(st.sampled_from([0.5, 1e-3, 0.0, HUGE, math.nan, -1.0, "0.1"]))
        text = dump(set_at(doc, ("value",), value)) + b"\n"
        return Mutation("record-value", rel, text, note=f"value = {value!r}"[:60])
    if how == "lines":
        return draw(lines_mutation(rel))
    return draw(bytes_mutation(rel))


@st.composite
def inputs_mutation(draw: st.DrawFn) -> Mutation:
    rel = draw(st.sampled_from(base().inputs))
    how = draw(st.sampled_from(["field", "lines", "bytes"]))
    if how == "field":
        return draw(json_field_mutation(rel))
    if how == "lines":
        return draw(lines_mutation(rel))
    return draw(bytes_mutation(rel))


@st.composite
def study_mutation(draw: st.DrawFn) -> Mutation:
    rel = draw(st.sampled_from(base().study))
    how = draw(st.sampled_from(["typed", "field", "lines", "bytes"]))
    if how == "typed":
        content = draw(
            st.sampled_from(
                [
                    b"",
                    b"\x00\x01\x02garbage",
                    b"[]\n",
                    b'["2fe4401f"]\n',
                    b'{"commit": 12345}\n',
                    b'{"commit": null}\n',
                    b'{"commit": ["2fe4401f"]}\n',
                    b"{}\n",
                    b'{"commit": "' + "\u202e".encode() + b'"}\n',
                    b'{"commit": 1' + b"0" * 400 + b"}\n",
                ]
            )
        )
        return Mutation("study", rel, content, note=repr(content[:40]))
    if how == "field":
        return draw(json_field_mutation(rel))
    if how == "lines":
        return draw(lines_mutation(rel))
    return draw(bytes_mutation(rel))


@st.composite
def benchmarks_mutation(draw: st.DrawFn) -> Mutation:
    rel = base().benchmarks
    doc = _source_json(rel)
    how = draw(st.sampled_from(["field", "bytes"]))
    if how == "bytes":
        return draw(bytes_mutation(rel))
    paths = [(k,) for k in doc] + [
        (k, f)
        for k in doc
        if isinstance(doc[k], dict)
        for f in ("params", "param_names", "unit")
        if f in doc[k]
    ]
    return draw(json_field_mutation(rel, paths))


# --- .npz digests ------------------------------------------------------------------------------


def npz_bytes(arrays: dict[str, Any], *, pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    if pickle:
        # object arrays: np.savez pickles them; the reader must refuse to unpickle
        with __import__("zipfile").ZipFile(buf, "w") as zf:
            for key, arr in arrays.items():
                member = io.BytesIO()
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=True)
                zf.writestr(f"{key}.npy", member.getvalue())
        return buf.getvalue()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: str = "<f8") -> bytes:
    head = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    pad = 64 - (10 + len(head) + 1) % 64
    head += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head


def _zip(members: list[tuple[str, bytes, bytes | None, int, int]]) -> bytes:
    """A zip of (name, stored bytes, raw deflate stream or None, crc, size) members."""
    out = bytearray()
    central = bytearray()
    for name, data, deflated, crc, size in members:
        method, payload = (0, data) if deflated is None else (8, deflated)
        if deflated is None:
            crc, size = zlib.crc32(data), len(data)
        offset = len(out)
        fields = (20, 0, method, 0, 0x21, crc, len(payload), size, len(name), 0)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name.encode() + payload
        central += (
            struct.pack("<IH", 0x02014B50, 20)
            + struct.pack("<HHHHHIIIHH", *fields)
            + struct.pack("<HHHII", 0, 0, 0, 0, offset)
            + name.encode()
        )
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0
    )
    return bytes(out + central + end)


@functools.cache
def zip_bomb(rel: str) -> bytes:
    """A digest whose ``embedding`` inflates to BOMB_BYTES of zeros (3.5 MB on disk)."""
    arrays = _source_npz(rel)
    chunk = bytes(2**20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)  # self-contained, repeatable
    header = _npy_header((BOMB_BYTES // 400, 50))
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = body.compress(header) + body.flush(zlib.Z_FULL_FLUSH)
    n = (BOMB_BYTES - 0) // len(chunk)
    stream = head + segment * n + b"\x03\x00"
    crc = zlib.crc32(header)
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    members = [("embedding.npy", b"", stream, crc, len(header) + n * len(chunk))]
    for key, arr in arrays.items():
        if key != "embedding":
            member = io.BytesIO()
            np.lib.format.write_array(member, arr)
            members.append((f"{key}.npy", member.getvalue(), None, 0, 0))
    return _zip(members)


def header_lie(rel: str) -> bytes:
    """A digest whose ``embedding`` header claims 2^40 values (the data is 8 bytes)."""
    arrays = _source_npz(rel)
    members = [("embedding.npy", _npy_header((2**34, 64)) + bytes(8), None, 0, 0)]
    for key, arr in arrays.items():
        if key != "embedding":
            member = io.BytesIO()
            np.lib.format.write_array(member, arr)
            members.append((f"{key}.npy", member.getvalue(), None, 0, 0))
    return _zip(members)


_ARRAY_SWAPS: dict[str, Callable[[np.ndarray], Any]] = {
    "nan": lambda a: np.full(a.shape, np.nan),
    "inf": lambda a: np.full(a.shape, np.inf),
    "1-d": lambda a: a.ravel()[:3],
    "empty": lambda a: np.zeros((0, *a.shape[1:]), a.dtype),
    "3-d": lambda a: np.zeros((*a.shape, 2)),
    "0-d": lambda a: np.float64(1.0),
    "strings": lambda a: np.array(["x"] * max(1, a.shape[0] if a.ndim else 1)),
    "complex": lambda a: a.astype(complex),
    "int8": lambda a: a.astype(np.int8),
    "huge-index": lambda a: np.full(a.shape, 2**62, dtype=np.int64),
    "negative": lambda a: -np.ones(a.shape, dtype=np.int64),
    "transposed": lambda a: a.T.copy(),
}


@st.composite
def npz_mutation(draw: st.DrawFn) -> Mutation:
    rel = draw(st.sampled_from(base().artifacts))
    arrays = dict(_source_npz(rel))
    how = draw(
        st.sampled_from(
            [
                "truncate",
                "npy",
                "array",
                "array",
                "missing",
                "meta",
                "meta-field",
                "pickle",
                "bomb",
                "lie",
                "bytes",
            ]
        )
    )
    if how == "truncate":
        raw = _source_bytes(rel)
        n = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        return Mutation("npz", rel, raw[:n], note=f"truncated to {n} of {len(raw)}")
    if how == "npy":
        buf = io.BytesIO()
        np.save(buf, arrays["embedding"])
        return Mutation("npz", rel, buf.getvalue(), note=".npy content")
    if how == "array":
        key = draw(st.sampled_from(sorted(arrays)))
        swap = draw(st.sampled_from(sorted(_ARRAY_SWAPS)))
        arrays[key] = _ARRAY_SWAPS[swap](arrays[key])
        return Mutation("npz", rel, npz_bytes(arrays), note=f"{key}: {swap}")
    if how == "missing":
        key = draw(st.sampled_from(sorted(arrays)))
        del arrays[key]
        return Mutation("npz", rel, npz_bytes(arrays), note=f"no {key}")
    if how == "meta":
        meta = draw(
            st.sampled_from([b"", b"[]", b"{}", b"null", b"\xff\xfe\x00", b"{", b"1" + b"0" * 400])
        )
        arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
        return Mutation("npz", rel, npz_bytes(arrays), note=f"meta={meta[:20]!r}")
    if how == "meta-field":
        meta = json.loads(arrays["meta"].tobytes())
        path = draw(st.sampled_from(json_paths(meta)))
        value = draw(st.one_of(hostile_values, st.just(DELETE)))
        text = dump(set_at(meta, path, value))
        arrays["meta"] = np.frombuffer(text, dtype=np.uint8)
        invalid = value is DELETE or not same_kind(get_at(meta, path), value)
        shown = "<deleted>" if value is DELETE else repr(value)[:60]
        return Mutation(
            "npz", rel, npz_bytes(arrays), invalid=invalid, note=f"meta {list(path)}={shown}"
        )
    if how == "pickle":
        arrays["embedding"] = np.array([{"a": 1}, None, "x"], dtype=object)
        return Mutation("npz", rel, npz_bytes(arrays, pickle=True), note="object array (pickle)")
    if how == "bomb":
        return Mutation(
            "npz", rel, zip_bomb(rel), note=f"zip bomb ({BOMB_BYTES >> 20} MiB inflated)"
        )
    if how == "lie":
        return Mutation("npz", rel, header_lie(rel), note="npy header claims 2^40 values")
    return draw(bytes_mutation(rel))


# --- special files -----------------------------------------------------------------------------


@st.composite
def special_mutation(draw: st.DrawFn) -> Mutation:
    """A file replaced by a FIFO, a symlink loop, a link to /dev/zero, a directory, or removed."""
    b = base()
    rel = draw(
        st.sampled_from(
            [
                *b.results,
                *b.fingerprints,
                *b.study,
                *b.inputs,
                *b.records[:3],
                *b.artifacts[:3],
                *b.runs,
            ]
        )
    )
    special = draw(st.sampled_from(["fifo", "loop", "devzero", "dir", "delete", "outside"]))
    if rel in b.runs and special == "delete":
        special = "loop"
    # deleting a results file is a legitimate smaller tree: no warning owed
    invalid = special != "delete" or rel not in b.results
    return Mutation("special", rel, special=special, invalid=invalid)


def tree_mutation() -> st.SearchStrategy[Mutation]:
    """Any one hostile change to the base tree."""
    return st.one_of(
        results_mutation(),
        fingerprint_mutation(),
        record_mutation(),
        npz_mutation(),
        inputs_mutation(),
        study_mutation(),
        benchmarks_mutation(),
        special_mutation(),
    )


# --- doctor inputs -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class H5adCase:
    """A tiny AnnData (or bytes that are not one) and the doctor options to run on it."""

    n_obs: int
    n_vars: int
    fill: str
    sparse: bool
    dtype: str
    layer: str | None
    use_layer: bool
    n_comps: int | None
    mask_var: str | None
    obs_name: str
    raw: bytes | None = None

    def write(self, path: Path) -> None:
        if self.raw is not None:
            path.write_bytes(self.raw)
            return
        import anndata as ad
        import pandas as pd
        from scipy import sparse

        rng = np.random.default_rng(self.n_obs * 31 + self.n_vars)
        x = rng.poisson(2.0, (self.n_obs, self.n_vars)).astype(self.dtype)
        if x.size and self.fill != "plain":
            x.flat[rng.integers(0, x.size)] = (
                {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "zero": 0, "huge": 3e38}[self.fill]
                if self.dtype.startswith("float")
                else 0
            )
        if self.fill == "zero":
            x[:] = 0
        obs = pd.DataFrame(index=[f"{self.obs_name}{i}" for i in range(self.n_obs)])
        var = pd.DataFrame(index=[f"g{i}" for i in range(self.n_vars)])
        if self.mask_var == "mask":
            var["mask"] = np.arange(self.n_vars) % 2 == 0
        a = ad.AnnData(X=sparse.csr_matrix(x) if self.sparse else x, obs=obs, var=var)
        if self.layer is not None:
            a.layers[self.layer] = x.copy()
        a.write_h5ad(path)

    def args(self) -> list[str]:
        out = []
        if self.use_layer:
            out += ["--layer", self.layer if self.layer is not None else "missing|layer"]
        if self.n_comps is not None:
            out += ["--n-comps", str(self.n_comps)]
        if self.mask_var is not None:
            out += ["--mask-var", self.mask_var]
        return out


@st.composite
def h5ad_case(draw: st.DrawFn) -> H5adCase:
    raw = draw(
        st.one_of(
            st.none(),
            st.none(),
            st.none(),
            st.sampled_from([b"", b"\x89HDF\r\n\x1a\n", b"not hdf5\n"]),
            st.binary(max_size=32),
        )
    )
    return H5adCase(
        n_obs=draw(st.sampled_from([0, 1, 2, 3, 15, 16, 17, 40])),
        n_vars=draw(st.sampled_from([0, 1, 2, 5, 12])),
        fill=draw(st.sampled_from(["plain", "nan", "inf", "-inf", "zero", "huge"])),
        sparse=draw(st.booleans()),
        dtype=draw(st.sampled_from(["float32", "float64", "int32"])),
        layer=draw(st.sampled_from([None, "counts", "a|b", "<script>", f"{RTL}x"])),
        use_layer=draw(st.booleans()),
        n_comps=draw(st.sampled_from([None, None, 1, 2, 50, 0, -1])),
        mask_var=draw(st.sampled_from([None, None, "none", "mask", "missing", "a|b"])),
        obs_name=draw(st.sampled_from(["c", "<b>", "a|b", RTL])),
        raw=raw,
    )


PIPELINE_BODIES = (
    "raise ValueError('boom <script>|')\n",
    "import sys\nsys.exit(3)\n",
    "import sys\nsys.exit('a message')\n",
    "import sys\nsys.stdout.buffer.write(bytes(range(256)))\nprint('<script>|$\\\\foo{$')\n",
    "import os\nos._exit(5)\n",
    "import no_such_module_here\n",
    "def broken(:\n",
    "",
    "raise KeyboardInterrupt\n",
    "import sys\nprint('x' * 100000, file=sys.stderr)\n",
    "import scanpy as sc\nsc.pp.pca(None)\n",
)


def pipeline_script() -> st.SearchStrategy[str]:
    return st.sampled_from(PIPELINE_BODIES)


def scratch_dir(prefix: str) -> Path:
    """A new temporary folder (hypothesis examples cannot use function-scoped fixtures)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


# --- the numbered cases of issue #16, as fixed mutations ---------------------------------------


def _results_doc(i: int = 0) -> tuple[str, dict[str, Any]]:
    rel = base().results[i]
    return rel, _source_json(rel)


def _run_file(name: str, i: int = 0) -> str:
    return next(
        r for r in base().all_files() if r.startswith(base().runs[i] + "/") and r.endswith(name)
    )


def issue_cases() -> dict[str, tuple[Mutation, str]]:
    """(mutation, command) for each case of issue #16 that a changed file can show."""
    rel, doc = _results_doc()
    name = "pca.PCA.time_pca"
    fp = _run_file("fingerprint.jsonl")
    fp_doc = _source_lines(fp)[0]
    record = next(r for r in base().records if r.startswith(base().runs[0] + "/"))
    npz = next(r for r in base().artifacts if r.startswith(base().runs[0] + "/"))
    study = next(r for r in base().study if r.endswith("/study.jsonl"))
    inputs = _run_file("inputs.jsonl")
    grid = [[repr(f"v{i}") for i in range(1000)] for _ in range(3)]
    buf = io.BytesIO()
    np.save(buf, _source_npz(npz)["embedding"])

    def results(path: JsonPath, value: Any, kind: str, invalid: bool = True) -> Mutation:
        return Mutation(
            kind,
            rel,
            dump(set_at(doc, path, value)),
            invalid=invalid,
            note=f"{list(path)} = {repr(value)[:40]}",
        )

    def fingerprint(field: str, value: Any) -> Mutation:
        return Mutation(
            "fingerprint",
            fp,
            dump(set_at(fp_doc, (field,), value)) + b"\n",
            note=f"{field} = {value!r}",
        )

    return {
        "1-date-beyond-float": (results(("date",), HUGE, "huge-int"), "table"),
        "1-result-beyond-float": (results(("results", name, 0, 0), HUGE, "huge-int"), "table"),
        "1-record-beyond-float": (
            Mutation(
                "huge-int", record, dump(set_at(_source_lines(record)[0], ("value",), HUGE)) + b"\n"
            ),
            "table",
        ),
        "2-grid-of-1e9": (results(("results", name, 1), grid, "grid"), "table"),
        "4-symlink-loop": (
            Mutation("special", base().runs[0] + "/loop", special="loop", invalid=False),
            "table",
        ),
        "6-env-vars-a-string": (fingerprint("env_vars", "OMP_NUM_THREADS=1"), "table"),
        "6-packages-a-list": (fingerprint("packages", ["scanpy"]), "crossenv"),
        "6-threadpools-a-string": (fingerprint("threadpools", "openblas"), "compare"),
        "7-npy-not-npz": (Mutation("npz", npz, buf.getvalue(), note=".npy"), "crossenv"),
        "7-zip-bomb": (Mutation("npz", npz, zip_bomb(npz), note="bomb"), "crossenv"),
        "7-header-lie": (Mutation("npz", npz, header_lie(npz), note="2^40"), "report"),
        "8-math-text-in-a-param": (
            results(("results", name, 1, 0, 0), repr("$\\foo{$"), "inject-param", invalid=False),
            "report",
        ),
        "9-study-a-list": (Mutation("study", study, b'["2fe4401f"]\n'), "writeup"),
        "9-inputs-empty-object": (Mutation("lines", inputs, b"{}\n"), "writeup"),
        "14-record-contradicts-asv": (
            Mutation(
                "record-value",
                record,
                dump(set_at(_source_lines(record)[0], ("value",), 0.123)) + b"\n",
            ),
            "table",
        ),
        "15-list-as-a-param-value": (
            results(("results", name, 1, 3, 0), "['arpack', 'full']", "list-param", False),
            "table",
        ),
        "rtl-and-html-in-a-param": (
            results(
                ("results", name, 1, 0, 0),
                repr(f"{RTL}<script>alert(1)</script>|"),
                "inject-param",
                invalid=False,
            ),
            "table",
        ),
    }
