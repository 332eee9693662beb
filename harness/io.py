"""Atomic file output: every file the harness writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode())


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, no NaN literals (they become null), so outputs are stable."""
    return json.dumps(_finite(obj), sort_keys=True, allow_nan=False, default=_default)


def write_jsonl(target: str | os.PathLike[str], records: list[dict[str, Any]]) -> None:
    """Write records as JSON Lines, atomically."""
    write_text(target, "".join(dumps(r) + "\n" for r in records))


#: The most a sidecar (fingerprint, record, inputs, study pin: a few kB each) may hold: larger
#: files are refused unread, so a link to a huge file or a device cannot exhaust memory.
MAX_SIDECAR_BYTES = 16 << 20


class UnreadableError(HarnessError, ValueError):
    """A file that cannot be read; ``reason`` says why without the file's name."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class JSONLinesError(UnreadableError):
    """A JSON Lines file that cannot be read; ``reason`` says why without the file's name."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((what for test, what in _KINDS if test(mode)), "not a plain file")
    return f"not a regular file ({kind})"


def read_regular(path: str | os.PathLike[str], limit: int = MAX_SIDECAR_BYTES) -> bytes:
    """The bytes of a regular file (symlinks followed) of at most ``limit`` bytes.

    Raises :class:`UnreadableError` for anything else: absent, a symlink loop, a FIFO (never
    opened for long: it would block), a device or a directory, or a file over ``limit``.
    """
    try:
        why = _not_regular(os.stat(path).st_mode)
        if why:
            raise UnreadableError(path, why)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise UnreadableError(path, f"cannot read ({err.strerror or err})") from None
    try:
        st = os.fstat(fd)  # the file opened may not be the one inspected
        why = _not_regular(st.st_mode) or (
            f"larger than {limit:,} bytes" if st.st_size > limit else None
        )
        if why:
            raise UnreadableError(path, why)
        raw = _read_all(fd, min(st.st_size, limit) + 1)  # +1: a file that grew meanwhile
        if len(raw) > st.st_size:
            raw += _read_all(fd, limit + 1 - len(raw))
    except OSError as err:
        raise UnreadableError(path, f"cannot read ({err.strerror or err})") from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise UnreadableError(path, f"larger than {limit:,} bytes")
    return raw


def _read_all(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes from ``fd``, fewer only at its end (a read of the size ``fstat`` saw,
    not of the limit: reading ``limit + 1`` bytes made every 20 kB read allocate the limit)."""
    chunks, left = [], n
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file, each a JSON object (blank lines skipped).

    Raises :class:`JSONLinesError` naming the file and line: unreadable (see
    :func:`read_regular`), not UTF-8, a line that is not JSON or not an object, or a last line
    cut short ("truncated").
    """
    try:
        raw = read_regular(path)
    except UnreadableError as err:
        raise JSONLinesError(path, err.reason) from None
    if str(path).endswith(".gz"):
        raw = _gunzip(raw, path)
    return parse_jsonl(raw, path)


def _gunzip(raw: bytes, path: str | os.PathLike[str]) -> bytes:
    """A ``.jsonl.gz``'s content, at most MAX_SIDECAR_BYTES of it (a small file can unpack to
    gigabytes: the limit applies to what it unpacks to)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, MAX_SIDECAR_BYTES + 1)
    except zlib.error as err:
        raise JSONLinesError(path, f"not gzip ({err})") from None
    if len(out) > MAX_SIDECAR_BYTES:
        raise JSONLinesError(path, f"unpacks to more than {MAX_SIDECAR_BYTES:,} bytes")
    if not d.eof:
        raise JSONLinesError(path, "truncated (gzip stream cut short)")
    return out


def parse_jsonl(raw: bytes, path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The objects of JSON Lines content ``raw`` read from ``path`` (see :func:`read_jsonl`)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise JSONLinesError(path, "binary file, not UTF-8 JSON Lines") from None
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            cut = i == last and not text.endswith("\n") and _cut_short(err, line)
            what = "truncated" if cut else f"not valid JSON ({err.msg}, column {err.colno})"
            raise JSONLinesError(path, f"line {i + 1}: {what}") from None
        except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
            raise JSONLinesError(path, f"line {i + 1}: not valid JSON ({err})") from None
        if not isinstance(obj, dict):
            raise JSONLinesError(path, f"line {i + 1}: not a JSON object")
        out.append(obj)
    return out


def _cut_short(err: json.JSONDecodeError, text: str) -> bool:
    """Whether JSON failed to parse because ``text`` ended early (a file cut off mid-write)."""
    return err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _default(obj: Any) -> Any:
    import numpy as np  # not at the top: bench.store uses io before the BLAS is selected

    if isinstance(obj, np.generic):
        return _finite(obj.item())
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
