"""Small helpers shared by the tests: writing and plainly reading IDX files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

#: IDX type code of each supported dtype (data are stored big-endian).
IDX_TYPE_CODES: dict[np.dtype, int] = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic, dimension sizes, big-endian data."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in IDX_TYPE_CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError("IDX needs at least one dimension")
    header = bytes([0, 0, IDX_TYPE_CODES[native], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compresslevel: int = 6) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = idx_bytes(array)
    if path.suffix == ".gz":
        # mtime=0 keeps the file byte-identical from run to run
        with (
            path.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as stream,
        ):
            stream.write(payload)
    else:
        path.write_bytes(payload)
    return path


def read_idx_plain(path: str | Path) -> np.ndarray:
    """A minimal IDX reader, independent of the library's, for building fixtures."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    code, ndim = raw[2], raw[3]
    dtype = {code: dtype for dtype, code in IDX_TYPE_CODES.items()}[code]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtype.newbyteorder(">"), offset=4 + 4 * ndim)
    return data.reshape(shape).astype(dtype)
