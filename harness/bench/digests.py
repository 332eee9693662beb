"""Digests of PCA results, so environments can be compared with each other later (issue #10).

asv keeps one number per benchmark and cannot set environments side by side (asv#370, asv#789).
Each digest keeps, per (machine, commit, environment, configuration):

- exact: sha256 of the full embedding (X_pca), loadings (PCs) and variance, and per component
  the sha256 of its embedding column and loading vector as computed and negated, so "bitwise"
  and "sign only" are exact per component;
- the full loadings and ``N_CELLS`` evenly spaced cells of X_pca, in the dtype scanpy returned;
- what the calibrated verdict needs (:func:`harness.analysis.rounding.judge_columns`): the exact
  spectrum of the input's covariance, the reference's rounding, and the result's residuals
  against it with its own rounding level and computation path.

Size: the full loadings of 10x_10k are 1,000 x 50 float64 (400 kB). Most environments agree with
the first one written to within a few ulps, so arrays are stored as their XOR with an *anchor*
(the first digest of the same configuration on that machine, kept once under
``<machine>/harness/anchors/``), byte plane by byte plane: the equal sign, exponent and leading
mantissa bytes compress to almost nothing (measured on pbmc68k_reduced, threads 1 vs 2: 0.1-50%
of the compressed raw size). A digest read back reproduces the sha256 it recorded, or is refused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io as stdio
import json
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import io
from harness.analysis import metrics, rounding
from harness.analysis.metrics import sha256_array
from harness.bench import store
from harness.bench.pca import PCAResult
from harness.vocabulary import ANCHORS_DIR, CONFIG_KEYS, HARNESS_DIR, RACY_NS

N_CELLS = 500
#: Format of the digests written now; 1 (no ``format`` in the metadata) kept 12 x 12 float64
#: rows and is still read.
FORMAT = 2


def spaced(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced indices into ``range(n)`` (all of them when n <= k)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64))


@dataclass(frozen=True)
class Judging:
    """What the calibrated verdict needs of one result (format 2): the exact problem's spectrum
    and rounding, the result's residuals and rounding, and per-component column hashes."""

    spectrum: np.ndarray  # the input's exact covariance's k + 1 largest eigenvalues, descending
    ref_rho: float  # the rounding of that float64 covariance itself
    residuals: np.ndarray  # ||C v_i - theta_i v_i|| per component
    rho: float  # the rounding level of the result's computation path and precision
    path: str  # 'gram' or 'centred'
    column_sha: list[
        str
    ]  # per component: sha256 (16 hex digits) of its embedding column and loadings
    negated_sha: list[str]  # the same, negated


@dataclass(frozen=True)
class Digest:
    """The stored digest of one PCA result; ``sample`` holds the kept rows as a PCAResult."""

    key: store.RunKey
    params: dict[str, Any]
    condition: dict[str, Any]
    sha256: dict[str, str]
    shape: dict[str, int]
    sample: PCAResult
    cells: np.ndarray = field(repr=False)
    genes: np.ndarray = field(repr=False)
    judging: Judging | None = field(default=None, repr=False)

    @property
    def config(self) -> tuple[Any, ...]:
        return tuple(self.params[k] for k in sorted(self.params))


def column_hashes(embedding: np.ndarray, loadings: np.ndarray, sign: int = 1) -> list[str]:
    """Per component, sha256 of its embedding column and loading vector (times ``sign``)."""
    out = []
    for i in range(embedding.shape[1]):
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(sign * embedding[:, i]).tobytes())
        h.update(np.ascontiguousarray(sign * loadings[:, i]).tobytes())
        out.append(h.hexdigest()[:16])  # equality of outputs, not a defence against forgery
    return out


def make(
    result: PCAResult,
    key: store.RunKey,
    params: dict[str, Any],
    condition: dict[str, Any],
    problem: Any = None,
    rho: float | None = None,
    path: str | None = None,
) -> Digest:
    """Digest a full PCA result; with ``problem`` (:class:`harness.analysis.rounding.Problem`),
    its rounding level ``rho`` and computation ``path``, also what the calibrated verdict needs."""
    cells = spaced(result.embedding.shape[0], N_CELLS)
    genes = np.arange(result.loadings.shape[0], dtype=np.int64)
    sample = PCAResult(
        embedding=np.ascontiguousarray(result.embedding[cells]),
        loadings=np.ascontiguousarray(result.loadings),
        variance=np.asarray(result.variance, dtype=np.float64),
        variance_ratio=np.asarray(result.variance_ratio, dtype=np.float64),
    )
    judging = None
    if problem is not None:
        res, _ = rounding.residuals(problem, result.loadings)
        judging = Judging(
            # What the verdicts read of the spectrum: the first k gaps, two-sided (rounding.clusters).
            spectrum=np.asarray(problem.values[: result.n_comps + 1], np.float64),
            ref_rho=float(problem.rho),
            residuals=res,
            rho=float(rho),
            path=str(path),
            column_sha=column_hashes(result.embedding, result.loadings),
            negated_sha=column_hashes(result.embedding, result.loadings, -1),
        )
    return Digest(
        key=key,
        params=dict(params),
        condition=dict(condition),
        sha256={
            "embedding": sha256_array(result.embedding),
            "loadings": sha256_array(result.loadings),
            "variance": sha256_array(np.asarray(result.variance)),
        },
        shape={
            "n_obs": result.embedding.shape[0],
            "n_vars": result.loadings.shape[0],
            "n_comps": result.n_comps,
        },
        sample=sample,
        cells=cells,
        genes=genes,
        judging=judging,
    )


# --- XOR against an anchor (see the module docstring) ---------------------------------------------

_UINT = {4: np.uint32, 8: np.uint64}


def _anchor_path(path: Path, name: str, arr: np.ndarray) -> Path:
    """``<machine>/harness/anchors/<config>-<name>-<dtype>-<shape>.npy`` for a digest at
    ``<machine>/harness/<run>/artifacts/<config>.npz``."""
    shape = "x".join(str(n) for n in arr.shape)
    return path.parents[2] / ANCHORS_DIR / f"{path.stem}-{name}-{arr.dtype.name}-{shape}.npy"


def _anchor_for(path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    """The anchor of an array: the existing one, or ``arr`` itself, created exclusively (two
    writers cannot leave different anchors: os.link fails when the name exists)."""
    apath = _anchor_path(path, name, arr)
    if not apath.exists():
        apath.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{apath.name}.", suffix=".tmp", dir=apath.parent)
        try:
            with os.fdopen(fd, "wb") as fh:  # np.save on a path would append ".npy" to it
                np.save(fh, arr, allow_pickle=False)
            os.chmod(tmp, 0o644)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, apath)
        finally:
            os.unlink(tmp)
    return _read_anchor(apath, arr.dtype, arr.shape)


def _read_anchor(apath: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    try:
        st: os.stat_result | None = os.stat(apath)
    except OSError:
        st = None
    # Every environment's digest of a configuration decodes against the same anchor: read once
    # per process while the file is unchanged (2,688 digests of 100 environments re-read it for
    # 2.5 of 11 s, #14). A file rewritten in place has a new mtime or size, and is read again.
    # A file changed within the timestamp tick would keep its mtime: not cached (git's "racy"
    # files, vocabulary.RACY_NS).
    settled = st is not None and time.time_ns() - st.st_mtime_ns > RACY_NS
    if settled:
        arr = _anchor_bytes(str(apath), (st.st_ino, st.st_size, st.st_mtime_ns))
    else:
        arr = _anchor_bytes.__wrapped__(str(apath), None)
    if arr.dtype != dtype or arr.shape != tuple(shape):
        raise ValueError(f"anchor {apath.name} is {arr.dtype} {arr.shape}, not {dtype} {shape}")
    return arr


@functools.lru_cache(maxsize=256)
def _anchor_bytes(apath: str, sig: tuple[int, int, int] | None) -> np.ndarray:
    """The anchor array at ``apath`` (read only), as its file was when ``sig`` was taken."""
    name = Path(apath).name
    try:
        raw = io.read_regular(apath, MAX_UNPACKED_BYTES)
        arr = np.load(stdio.BytesIO(raw), allow_pickle=False)
    except io.UnreadableError as err:
        raise ValueError(f"anchor {name} unreadable ({err.reason})") from None
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"anchor {name} is not an array ({err})") from None
    arr.flags.writeable = False
    return arr


def _xor_planes(arr: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The XOR of two equal-shaped float arrays' bits, as byte planes (itemsize x n uint8)."""
    uint = _UINT[arr.dtype.itemsize]
    x = np.ascontiguousarray(arr).view(uint) ^ np.ascontiguousarray(anchor).view(uint)
    return np.ascontiguousarray(x.reshape(-1).view(np.uint8).reshape(-1, arr.dtype.itemsize).T)


def _from_planes(planes: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    uint = _UINT[anchor.dtype.itemsize]
    x = np.ascontiguousarray(planes.T).reshape(-1).view(uint)
    return (
        (x ^ np.ascontiguousarray(anchor).reshape(-1).view(uint))
        .view(anchor.dtype)
        .reshape(anchor.shape)
    )


def save(digest: Digest, path: Path) -> None:
    """Write a digest as compressed .npz (atomically): arrays plus the JSON ``meta`` as bytes;
    the embedding rows and loadings as XOR byte planes against their anchors."""
    emb, load_ = digest.sample.embedding, digest.sample.loadings
    meta: dict[str, Any] = {
        **digest.key.to_dict(),
        "format": FORMAT,
        "params": digest.params,
        "condition": digest.condition,
        "sha256": digest.sha256,
        "sample_sha256": sha256_array(emb),
        "shape": digest.shape,
        "dtypes": {"embedding": emb.dtype.name, "loadings": load_.dtype.name},
    }
    extra: dict[str, np.ndarray] = {}
    if (j := digest.judging) is not None:
        meta["judging"] = {
            "ref_rho": j.ref_rho,
            "rho": j.rho,
            "path": j.path,
            "column_sha": j.column_sha,
            "negated_sha": j.negated_sha,
        }
        extra = {"spectrum": j.spectrum, "residuals": np.asarray(j.residuals, np.float64)}
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            meta=np.frombuffer(io.dumps(meta).encode(), dtype=np.uint8),  # str arrays are UTF-32
            embedding=_xor_planes(emb, _anchor_for(path, "embedding", emb)),
            loadings=_xor_planes(load_, _anchor_for(path, "loadings", load_)),
            variance=digest.sample.variance,
            variance_ratio=digest.sample.variance_ratio,
            cells=digest.cells,
            genes=digest.genes,
            **extra,
        )


#: The most a digest may unpack to. A real one unpacks to at most about 0.7 MB (10x_10k: the
#: full 1,000 x 50 float64 loadings and 500 rows of X_pca, as byte planes); the bound leaves room for several hundred
#: components while a zip crafted to unpack to gigabytes is refused before it is read.
MAX_UNPACKED_BYTES = 16 << 20
_ARRAYS = ("meta", "embedding", "loadings", "variance", "variance_ratio", "cells", "genes")
_OPTIONAL = ("spectrum", "residuals")
#: What :class:`harness.bench.stability.Condition` writes: threads (None: the environment's
#: default), seed, process and the n-th call of a repeat.
_CONDITION = {
    "threads": lambda v: v is None or _is_int(v),
    "random_state": lambda v: _is_int(v),
    "process": lambda v: isinstance(v, str),
    "index": lambda v: _is_int(v),
}
_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
#: Bytes of the header length field per .npy version, and numpy's own limit on a header.
_LENGTH_BYTES = {(1, 0): 2, (2, 0): 4}
_MAX_HEADER = 10_000


def _read_header(fh: Any, version: tuple[int, int]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of the .npy header at ``fh``, parsed by numpy."""
    length = fh.read(_LENGTH_BYTES[version])
    n = int.from_bytes(length, "little")
    if len(length) != _LENGTH_BYTES[version] or n > _MAX_HEADER:
        raise ValueError(f"a .npy header of {n:,} bytes (numpy reads at most {_MAX_HEADER:,})")
    return _parsed_header(version, length + fh.read(n))


@functools.lru_cache(maxsize=1024)
def _parsed_header(version: tuple[int, int], raw: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    # Every digest of a study has the same few headers; numpy parses each with ast.literal_eval
    # (9 per digest, 1.2 s of a 100-environment write-up, #14), so each text is parsed once.
    return _HEADERS[version](stdio.BytesIO(raw))


def load(path: Path) -> Digest:
    """Read one digest; raises ValueError (with the reason) for anything that is not one.

    Checked once, here: a zip of at most :data:`MAX_UNPACKED_BYTES` holding the arrays
    :func:`save` writes, metadata naming the run, finite float rows whose shapes agree with the
    metadata, integer cell and gene indices; in format 2, rows that decode against their anchors
    to the sha256 the digest recorded, and the judging fields of the right types and sizes.
    """
    path = Path(path)
    arrays = _read_arrays(path)
    try:
        meta = json.loads(arrays["meta"].tobytes().decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not a harness artifact (metadata is not JSON)") from None
    meta = _checked_meta(meta)
    embedding, loadings = arrays["embedding"], arrays["loadings"]
    judging = None
    if meta.get("format") == FORMAT:
        embedding, loadings = _decoded(path, meta, embedding, loadings)
        judging = _judging(meta, arrays, meta["shape"])
    sample = PCAResult(embedding, loadings, arrays["variance"], arrays["variance_ratio"])
    _check_arrays(sample, arrays["cells"], arrays["genes"], meta["shape"])
    key = store.RunKey(meta["machine"], meta["commit"], meta["env_name"])
    return Digest(
        key,
        meta["params"],
        meta["condition"],
        meta["sha256"],
        meta["shape"],
        sample,
        arrays["cells"],
        arrays["genes"],
        judging,
    )


def _decoded(
    path: Path, meta: dict[str, Any], emb_planes: np.ndarray, load_planes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The embedding rows and loadings of a format-2 digest, checked against its sha256."""
    dtypes = meta.get("dtypes")
    if not isinstance(dtypes, dict) or not all(
        dtypes.get(k) in ("float32", "float64") for k in ("embedding", "loadings")
    ):
        raise ValueError("not a harness artifact (dtypes are not float32/float64)")
    out = []
    for name, planes in (("embedding", emb_planes), ("loadings", load_planes)):
        dtype = np.dtype(dtypes[name])
        if planes.dtype != np.uint8 or planes.ndim != 2 or planes.shape[0] != dtype.itemsize:
            raise ValueError(f"not a harness artifact ({name} is not {dtype} byte planes)")
        k = meta["shape"]["n_comps"]
        if planes.shape[1] % k:
            raise ValueError(f"not a harness artifact ({name} does not hold {k} components)")
        shape = (planes.shape[1] // k, k)
        anchor = _read_anchor(_anchor_path(path, name, np.empty(shape, dtype)), dtype, shape)
        out.append(_from_planes(planes, anchor))
    if sha256_array(out[1]) != meta["sha256"]["loadings"]:
        raise ValueError("loadings do not decode to the sha256 the digest recorded")
    if sha256_array(out[0]) != meta.get("sample_sha256"):
        raise ValueError("embedding rows do not decode to the sha256 the digest recorded")
    return out[0], out[1]


def _judging(
    meta: dict[str, Any], arrays: dict[str, np.ndarray], shape: dict[str, int]
) -> Judging | None:
    """The judging fields of a format-2 digest (None when it has none), or ValueError."""
    j = meta.get("judging")
    if j is None:
        return None
    k, n_vars = shape["n_comps"], shape["n_vars"]
    spectrum, residuals = arrays.get("spectrum"), arrays.get("residuals")
    ok = (
        isinstance(j, dict)
        and all(
            isinstance(j.get(f), (int, float)) and not isinstance(j.get(f), bool)
            for f in ("ref_rho", "rho")
        )
        and j.get("path") in ("gram", "centred")
        and all(
            isinstance(j.get(f), list) and len(j[f]) == k and all(isinstance(h, str) for h in j[f])
            for f in ("column_sha", "negated_sha")
        )
        and spectrum is not None
        and spectrum.dtype == np.float64
        and spectrum.shape == (min(n_vars, k + 1),)
        and residuals is not None
        and residuals.dtype == np.float64
        and residuals.shape == (k,)
        and np.isfinite(spectrum).all()
        and np.isfinite(residuals).all()
    )
    if not ok:
        raise ValueError("not a harness artifact (judging fields missing or of the wrong type)")
    return Judging(
        spectrum=spectrum,
        ref_rho=float(j["ref_rho"]),
        residuals=residuals,
        rho=float(j["rho"]),
        path=j["path"],
        column_sha=j["column_sha"],
        negated_sha=j["negated_sha"],
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a digest file, checking first what the zip and each header say they hold."""
    try:
        raw = io.read_regular(path, MAX_UNPACKED_BYTES)
    except io.UnreadableError as err:
        raise ValueError(f"not a harness artifact ({err.reason})") from None
    try:
        with zipfile.ZipFile(stdio.BytesIO(raw)) as zf:
            unpacked = sum(m.file_size for m in zf.infolist())
            if unpacked > MAX_UNPACKED_BYTES:
                raise ValueError(
                    f"unpacks to {unpacked:,} bytes, "
                    f"more than the {MAX_UNPACKED_BYTES:,} a digest may hold"
                )
            arrays = {k: _read_member(zf, f"{k}.npy") for k in _ARRAYS}
            names = set(zf.namelist())
            arrays |= {k: _read_member(zf, f"{k}.npy") for k in _OPTIONAL if f"{k}.npy" in names}
    except KeyError as err:
        raise ValueError(f"not a harness artifact (no array {err})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"not a harness artifact ({err})") from None
    if arrays["meta"].dtype != np.uint8 or arrays["meta"].ndim != 1:
        raise ValueError("not a harness artifact (metadata is not bytes)")
    return arrays


def _read_member(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """One .npy member; ValueError when its header claims more data than the member stores
    (numpy would allocate the claimed size before reading) or an object array."""
    info = zf.getinfo(name)
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in _HEADERS:
            raise ValueError(f"{name}: .npy format version {version} is not numpy's")
        shape, fortran, dtype = _read_header(fh, version)
        size = math.prod(shape) * dtype.itemsize
        if dtype.hasobject or size > info.file_size:
            raise ValueError(f"{name}: the header claims more than the member holds")
        data = fh.read(size)
    if len(data) != size:
        raise ValueError(f"{name}: truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def _checked_meta(meta: Any) -> dict[str, Any]:
    """The metadata of a digest, or ValueError naming what is missing or of the wrong type."""
    if not isinstance(meta, dict):
        raise ValueError("not a harness artifact (metadata is not a JSON object)")
    for k in ("machine", "commit", "env_name"):
        if not isinstance(meta.get(k), str) or not meta[k]:
            raise ValueError(f"not a harness artifact (metadata without {k!r})")
    for k in ("params", "condition", "sha256", "shape"):
        if not isinstance(meta.get(k), dict):
            raise ValueError(f"not a harness artifact (metadata without a {k!r} object)")
    params, condition = meta["params"], meta["condition"]
    for k in CONFIG_KEYS:
        if not isinstance(params.get(k), str):
            raise ValueError(f"not a harness artifact (params.{k} is not a name)")
    plain = (str, int, float, bool, type(None))
    if not all(isinstance(v, plain) for v in (*params.values(), *condition.values())):
        raise ValueError("not a harness artifact (a parameter that is not a plain value)")
    for k, check in _CONDITION.items():
        if k not in condition or not check(condition[k]):
            raise ValueError(f"not a harness artifact (condition.{k} missing or of the wrong type)")
    if sorted(meta["sha256"]) != ["embedding", "loadings", "variance"] or not all(
        isinstance(v, str) for v in meta["sha256"].values()
    ):
        raise ValueError("not a harness artifact (sha256 is not three hex digests)")
    shape = meta["shape"]
    if not all(type(shape.get(k)) is int and shape[k] > 0 for k in ("n_obs", "n_vars", "n_comps")):
        raise ValueError("not a harness artifact (shape without positive n_obs, n_vars, n_comps)")
    return meta


def _is_int(v: Any) -> bool:
    return type(v) is int and -(1 << 63) <= v < 1 << 63


def _check_arrays(
    sample: PCAResult, cells: np.ndarray, genes: np.ndarray, shape: dict[str, int]
) -> None:
    """ValueError unless the rows are finite floats whose shapes fit the indices and metadata."""
    k = shape["n_comps"]
    expected = {
        "embedding": (len(cells), k),
        "loadings": (len(genes), k),
        "variance": (k,),
        "variance_ratio": (k,),
    }
    for name, want in expected.items():
        arr = getattr(sample, name)
        if arr.dtype.kind != "f" or arr.shape != want:
            raise ValueError(
                f"not a harness artifact ({name} is {arr.dtype} {arr.shape}, expected float {want})"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"not a harness artifact ({name} holds NaN or infinity)")
    for name, idx, n in (("cells", cells, shape["n_obs"]), ("genes", genes, shape["n_vars"])):
        if (
            idx.dtype.kind not in "iu"
            or idx.ndim != 1
            or (idx.size and not 0 <= idx.min() <= idx.max() < n)
        ):
            raise ValueError(f"not a harness artifact ({name} are not indices below {n})")


def iter_paths(results_dir: Path) -> Iterator[Path]:
    yield from sorted(Path(results_dir).glob(f"*/{HARNESS_DIR}/*/artifacts/*.npz"))


def load_all(results_dir: Path, warn: Callable[[str], None] | None = None) -> list[Digest]:
    """Every readable digest under a results folder; unreadable ones are reported to ``warn``."""
    digests = []
    for path in iter_paths(results_dir):
        try:
            digests.append(load(path))
        except ValueError as err:
            if warn:
                warn(f"{path}: {err}")
    return digests


def compare_digests(a: Digest, b: Digest) -> dict[str, Any]:
    """Compare two digests: exact sha equality, deviations on the kept rows (full loadings,
    N_CELLS cells of X_pca) and, in format 2, the calibrated per-component verdict."""
    exact = {part: a.sha256[part] == b.sha256[part] for part in a.sha256}
    out: dict[str, Any] = {"bitwise": all(exact.values()), "bitwise_parts": exact}
    if (
        a.shape != b.shape
        or not np.array_equal(a.cells, b.cells)
        or not np.array_equal(a.genes, b.genes)
    ):
        out["comparable"] = False
        return out
    n_vars = int(a.shape.get("n_vars") or a.sample.loadings.shape[0])
    cmp = metrics.compare(_as_float64(a.sample), _as_float64(b.sample)).to_dict()
    cmp.pop("bitwise", None)
    full = a.sample.loadings.shape[0] == n_vars
    out |= {**cmp, "comparable": True, "subsampled": not full}
    if a.judging is not None and b.judging is not None:
        out |= judged(a, b)
    return out


def _as_float64(r: PCAResult) -> PCAResult:
    return PCAResult(*(np.asarray(x, np.float64) for x in r.arrays().values()))


def judged(a: Digest, b: Digest) -> dict[str, Any]:
    """The calibrated verdict of ``b`` against ``a`` from their digests (same input only: the
    exact spectra must agree to within their own rounding, else the two did not solve the same
    problem)."""
    ja, jb = a.judging, b.judging
    # Each environment computes the "exact" float64 covariance and its eigh with its own BLAS:
    # the same input gives spectra a rounding apart (another OpenBLAS kernel, reference BLAS),
    # so they are held to that rounding, not to their bits. Both references' errors then add.
    ref_rho = max(ja.ref_rho, jb.ref_rho)
    if not np.array_equal(ja.spectrum, jb.spectrum):
        ref_rho = ja.ref_rho + jb.ref_rho
        apart = (
            ja.spectrum.shape != jb.spectrum.shape
            or float(np.max(np.abs(ja.spectrum - jb.spectrum))) > rounding.SAFETY * ref_rho
        )
        if apart:
            return {
                "verdict": None,
                "verdict_reason": "different inputs (exact spectra differ beyond their rounding)",
            }
    same = [
        "bitwise" if ca == cb else "sign only" if na == cb else None
        for ca, cb, na in zip(ja.column_sha, jb.column_sha, ja.negated_sha, strict=True)
    ]
    j = rounding.judge_columns(
        ja.spectrum,
        ref_rho,
        (a.sample.loadings, ja.residuals, ja.rho),
        (b.sample.loadings, jb.residuals, jb.rho),
        same,
    )
    return {
        "verdict": j.worst,
        "verdict_counts": j.counts(),
        "component_verdicts": j.verdicts,
        "beyond_cause": j.beyond_cause,
    }
