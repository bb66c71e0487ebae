"""IDX files, the format of the MNIST family, gzipped or plain."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.common import require_file
from contraclust.errors import DataError

__all__ = ["idx_dataset", "read_idx", "read_idx_pair"]

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 22


def _read_upto(stream: IO[bytes], count: int, path: Path) -> bytearray:
    """Read up to ``count`` bytes, stopping early at end of data or a truncated gzip."""
    buffer = bytearray()
    while len(buffer) < count:
        try:
            chunk = stream.read(min(_CHUNK, count - len(buffer)))
        except EOFError:
            break  # gzip stream cut short: report what we got as truncation
        except (OSError, zlib.error) as exc:
            raise DataError(f"{path} is corrupt ({exc}); download it again") from exc
        if not chunk:
            break
        buffer += chunk
    return buffer


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not.

    The header is checked: two zero bytes, a known type code (uint8, int8, int16,
    int32, float32, float64) and the dimension sizes. The data must hold exactly as
    many bytes as the header promises.

    Args:
        path: the ``.gz`` or plain IDX file; compression is detected from its content.

    Returns:
        The array, in native byte order and of the shape given in the header.

    Raises:
        DataError: if the file is missing, not IDX, truncated, or has trailing bytes.

    Example:
        >>> images = read_idx("mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype
        ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    require_file(path)
    with path.open("rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        header = _read_upto(stream, 4, path)
        if len(header) < 4 or header[0] != 0 or header[1] != 0:
            raise DataError(
                f"{path} is not an IDX file (bad magic number {bytes(header[:4]).hex()}); "
                "expected the MNIST-style IDX format"
            )
        code, ndim = header[2], header[3]
        if code not in _IDX_DTYPES:
            raise DataError(
                f"{path} is not a valid IDX file: unknown data type code 0x{code:02x} "
                "(accepted 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e)"
            )
        if ndim == 0:
            raise DataError(f"{path} is not a valid IDX file: it declares 0 dimensions")
        dim_bytes = _read_upto(stream, 4 * ndim, path)
        if len(dim_bytes) < 4 * ndim:
            raise DataError(
                f"{path} is truncated: its header needs {4 * ndim} bytes of dimension sizes, "
                f"found {len(dim_bytes)}; download it again"
            )
        shape = struct.unpack(f">{ndim}I", bytes(dim_bytes))
        dtype = _IDX_DTYPES[code]
        expected = math.prod(shape) * dtype.itemsize
        if not compressed:
            found = path.stat().st_size - 4 - 4 * ndim
            if found != expected:
                what = "truncated" if found < expected else "longer than its header says"
                raise DataError(
                    f"{path} is {what}: expected {expected} bytes of data for shape {shape}, "
                    f"found {found}; download it again"
                )
        payload = _read_upto(stream, expected, path)
        if len(payload) < expected:
            raise DataError(
                f"{path} is truncated: expected {expected} bytes of data for shape {shape}, "
                f"found {len(payload)}; download it again"
            )
        trailing = _read_upto(stream, 1, path)
        if compressed and trailing:
            raise DataError(
                f"{path} is longer than its header says: expected {expected} bytes of data "
                f"for shape {shape}, found more; download it again"
            )
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, H, W)`` and int64 labels ``(N,)`` from two matching IDX files.

    Raises:
        DataError: when the images are not uint8 ``(N, H, W)`` or the labels do not
            number one per image.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path} holds {images.dtype} data of shape {images.shape}; "
            "expected uint8 images (N, H, W)"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{labels_path} holds labels of shape {labels.shape} for "
            f"{images.shape[0]} images in {images_path}; download both again"
        )
    return images, labels.astype(np.int64)


def idx_dataset(
    files: Mapping[str, Path], pairs: Sequence[tuple[str, str]], class_names: Sequence[str]
) -> ArrayDataset:
    """One grey image set from ``(images, labels)`` IDX file pairs, joined in order.

    Args:
        files: the path of each file, keyed by its official name.
        pairs: the official names of each images file and its labels file.
        class_names: the class of each label value.
    """
    parts = [read_idx_pair(files[images], files[labels]) for images, labels in pairs]
    images = np.concatenate([part[0] for part in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([part[1] for part in parts]) if len(parts) > 1 else parts[0][1]
    return ArrayDataset(
        data=torch.from_numpy(np.ascontiguousarray(images[:, None])),
        labels=labels,
        name="",
        class_names=list(class_names),
    )
