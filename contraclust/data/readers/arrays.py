"""NumPy arrays as data sets: ``.npy``/``.npz`` files and arrays in memory.

Files are read with ``np.load(allow_pickle=False)``; each ``.npy`` header is checked
first (plain numbers, as many bytes as it promises) and NumPy's errors become one
:class:`~contraclust.errors.DataError` naming the file.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.common import reason, require_file
from contraclust.errors import DataError

__all__ = [
    "array_to_dataset",
    "as_int_labels",
    "dataset_from_arrays",
    "labels_and_names",
    "load_array_file",
]

_DATA_KEYS = ("x", "X", "data", "images", "features")
_LABEL_KEYS = ("y", "labels", "targets", "target")
_ARRAY_SHAPES = (
    "N×D vectors, N×H×W grey images, N×H×W×C (C in 1, 3, 4) or N×C×H×W (C in 1, 3) images"
)


def as_int_labels(values: np.ndarray, where: str) -> np.ndarray:
    """Integer class labels from an array; float labels must hold whole numbers."""
    values = np.asarray(values)
    if values.ndim == 2 and 1 in values.shape:
        values = values.reshape(-1)
    if values.ndim != 1:
        raise DataError(f"{where}: labels have shape {values.shape}; expected one label per sample")
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
            raise DataError(
                f"{where}: labels must be whole numbers, found fractional or NaN values"
            )
        return values.astype(np.int64)
    raise DataError(f"{where}: labels of dtype {values.dtype} are not integers")


def labels_and_names(values: np.ndarray, where: str) -> tuple[np.ndarray, list[str] | None]:
    """Labels as int64 indices; string labels become indices into sorted class names."""
    values = np.asarray(values)
    if values.dtype.kind in "US":
        if values.ndim != 1:
            raise DataError(f"{where}: labels have shape {values.shape}; expected (N,)")
        names, index = np.unique(values.astype(str), return_inverse=True)
        return index.astype(np.int64), [str(name) for name in names]
    return as_int_labels(values, where), None


def _check_npy_header(stream: IO[bytes], size: int, where: str) -> None:
    """Check a ``.npy`` header before NumPy reads the data after it.

    The dtype must be plain numbers and the stream must hold as many bytes as the
    header promises, so that a damaged header is reported as such (never as a failed
    reshape) and never makes NumPy allocate an array larger than the file.
    """
    try:
        major, minor = np.lib.format.read_magic(stream)
    except ValueError as exc:
        raise DataError(
            f"{where} is not a NumPy .npy array ({exc}); save it with numpy.save"
        ) from exc
    if (major, minor) != (1, 0) and major not in (2, 3):
        raise DataError(f"{where} uses unsupported .npy format version {major}.{minor}")
    try:
        if (major, minor) == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except Exception as exc:  # the header is a Python literal: any parse failure means corrupt
        raise DataError(f"{where} has a corrupt .npy header ({reason(exc)})") from exc
    if dtype.hasobject:
        raise DataError(
            f"{where} holds Python objects (dtype {dtype}); save a plain numeric array instead"
        )
    if dtype.itemsize == 0:
        raise DataError(f"{where} has a zero-size dtype {dtype}; save a plain numeric array")
    expected = math.prod(shape) * dtype.itemsize
    found = size - stream.tell()
    if found < expected:
        raise DataError(
            f"{where} is truncated: expected {expected} bytes of data for shape {shape}, "
            f"found {found}"
        )


#: What ``np.load`` raises for a damaged file or archive member.
_LOAD_ERRORS = (
    ValueError,
    EOFError,
    MemoryError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    NotImplementedError,  # unsupported zip compression method
    RuntimeError,  # encrypted zip member
)


def _load_npy_file(path: Path) -> np.ndarray:
    with path.open("rb") as stream:
        _check_npy_header(stream, path.stat().st_size, str(path))
    try:
        return np.load(path, allow_pickle=False)
    except _LOAD_ERRORS as exc:
        raise DataError(f"{path} is damaged ({reason(exc)}); save it again") from exc


def _load_npz_file(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (compressed or not), by key."""
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path} is not a valid .npz archive (no zip directory); save it with numpy.savez"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for info in archive.zip.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                with archive.zip.open(info) as member:
                    _check_npy_header(member, info.file_size, f"{path}[{key}]")
                arrays[key] = archive[key]
    except DataError:
        raise
    except _LOAD_ERRORS as exc:
        raise DataError(
            f"{path} is not a valid .npz archive ({reason(exc)}); save it with numpy.savez"
        ) from exc
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc})") from exc
    return arrays


def _pick_key(
    arrays: dict[str, np.ndarray], keys: Iterable[str], what: str, path: Path
) -> str | None:
    present = [key for key in keys if key in arrays]
    if len(present) > 1:
        raise DataError(
            f"{path} has several {what} arrays ({', '.join(present)}); keep only one of them"
        )
    return present[0] if present else None


def _read_array_any(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return {"": _load_npy_file(path)}
    if suffix == ".npz":
        return _load_npz_file(path)
    if suffix in (".txt", ".csv"):
        try:
            return {"": np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=1)}
        except ValueError as exc:
            raise DataError(f"{path} is not a plain list of numbers ({exc})") from exc
    raise DataError(f"{path}: unsupported array file type '{path.suffix}'; use .npy or .npz")


def _load_labels_file(path: Path) -> tuple[np.ndarray, list[str] | None]:
    require_file(path)
    arrays = _read_array_any(path)
    key = _pick_key(arrays, _LABEL_KEYS, "label", path)
    if key is None:
        if len(arrays) != 1:
            raise DataError(
                f"{path} has arrays {sorted(arrays)}; store the labels under 'y' or 'labels'"
            )
        key = next(iter(arrays))
    return labels_and_names(arrays[key], str(path))


def _images_to_uint8(images: np.ndarray, where: str) -> np.ndarray:
    """uint8 images from uint8, integer 0..255, bool, or float [0, 1] arrays."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "b":
        return images.astype(np.uint8) * np.uint8(255)
    if images.dtype.kind in "iu":
        low, high = (int(images.min()), int(images.max())) if images.size else (0, 0)
        if low < 0 or high > 255:
            raise DataError(f"{where}: integer images span {low}..{high}; expected 0..255 (uint8)")
        return images.astype(np.uint8)
    if images.dtype.kind == "f":
        finite = np.isfinite(images)
        if not finite.all():
            raise DataError(
                f"{where}: {int((~finite).sum())} NaN/inf pixel values; images must be finite"
            )
        low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{where}: float images span [{low:g}, {high:g}]; expected values in [0, 1] "
                "(or give them as uint8 0..255)"
            )
        return np.rint(images.astype(np.float32) * 255.0).astype(np.uint8)
    raise DataError(f"{where}: images of dtype {images.dtype} are not numbers")


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(N, H, W, 4) uint8 → (N, H, W, 3) uint8, transparent parts shown as white."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.rint(rgb).astype(np.uint8)


def _owned_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor on a contiguous, writable copy when the array is neither."""
    if not array.flags.c_contiguous or not array.flags.writeable:
        array = np.array(array, order="C", copy=True)
    return torch.from_numpy(array)


def _array_to_tensor(array: np.ndarray, where: str) -> torch.Tensor:
    """The tensor for an image or vector array, after checking shape and values."""
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: arrays of dtype {array.dtype} are not numbers")
    if array.ndim == 0 or array.shape[0] == 0:
        raise DataError(f"{where}: found an empty array of shape {array.shape}; need N >= 1")
    if array.ndim == 2:
        with np.errstate(over="ignore"):
            vectors = array.astype(np.float32)
        finite = np.isfinite(vectors)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            overflow = bool(np.isfinite(array).all())
            what = "values too large for float32" if overflow else "NaN/inf values"
            raise DataError(
                f"{where}: {int((~finite).sum())} {what} in the vectors "
                f"(first in row {int(rows[0])}); "
                + ("rescale them" if overflow else "remove or impute them")
            )
        if vectors.shape[1] == 0:
            raise DataError(f"{where}: vectors of shape {array.shape} have no features")
        return _owned_tensor(vectors)
    if array.ndim == 3:
        images = array[:, None, :, :]
    elif array.ndim == 4:
        channels_first = array.shape[1] in (1, 3)
        channels_last = array.shape[3] in (1, 3, 4)
        if channels_first:
            images = array  # also wins when both readings fit, as in N×3×32×3
        elif channels_last:
            images = np.moveaxis(array, 3, 1)
        else:
            raise DataError(
                f"{where}: found shape {array.shape}, whose channel count is neither "
                f"{array.shape[1]} nor {array.shape[3]} in 1, 3, 4; accepted: {_ARRAY_SHAPES}"
            )
    else:
        raise DataError(f"{where}: found shape {array.shape}; accepted: {_ARRAY_SHAPES}")
    if 0 in images.shape:
        raise DataError(f"{where}: found an empty array of shape {array.shape}")
    images = _images_to_uint8(images, where)
    if images.shape[1] == 4:
        images = np.moveaxis(_composite_on_white(np.moveaxis(images, 1, 3)), 3, 1)
    return _owned_tensor(images)


def load_array_file(path: str | Path, labels_path: str | Path | None = None) -> ArrayDataset:
    """Load images or feature vectors from a ``.npy`` or ``.npz`` file.

    Accepted shapes: ``N×D`` (vectors, stored as float32), ``N×H×W`` (grey images),
    ``N×H×W×C`` with ``C`` in 1, 3, 4 (channels last) or ``N×C×H×W`` with ``C`` in
    1, 3 (channels first; chosen when both readings fit). RGBA is composited on white.
    Images may be uint8 (kept), integers in 0..255, or floats in [0, 1] (×255, rounded).

    In an ``.npz`` the data is read from the key ``x``, ``X``, ``data``, ``images`` or
    ``features`` and labels from ``y``, ``labels``, ``targets`` or ``target``; an
    archive holding a single array is read as unlabelled data.

    Args:
        path: the ``.npy`` or ``.npz`` file.
        labels_path: an optional ``.npy``/``.npz``/``.txt``/``.csv`` of labels; it
            overrides labels stored in the ``.npz``. String labels become class names.

    Raises:
        DataError: for a missing or corrupt file, an unsupported shape or value range,
            NaN/inf values, or labels whose length differs from the data.
    """
    path = Path(path)
    require_file(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"{path}: unsupported array file type '{path.suffix}'; use .npy or .npz")
    arrays = _read_array_any(path)
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    if path.suffix.lower() == ".npy":
        data = arrays[""]
    else:
        data_key = _pick_key(arrays, _DATA_KEYS, "data", path)
        label_key = _pick_key(arrays, _LABEL_KEYS, "label", path)
        if data_key is None:
            if len(arrays) != 1:
                found = ", ".join(sorted(arrays)) or "none"
                raise DataError(
                    f"{path} has arrays ({found}) but none named x, X, data, images or "
                    "features; store the data under 'x' (and labels under 'y')"
                )
            data_key = next(iter(arrays))
        data = arrays[data_key]
        if label_key is not None and labels_path is None:
            labels, class_names = labels_and_names(arrays[label_key], f"{path}[{label_key}]")
    if labels_path is not None:
        labels, class_names = _load_labels_file(Path(labels_path))
    dataset = dataset_from_arrays(data, labels, class_names, path.stem, str(path))
    dataset.validate()
    return dataset


def dataset_from_arrays(
    data: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str] | None,
    name: str,
    where: str,
) -> ArrayDataset:
    tensor = _array_to_tensor(data, where)
    if labels is not None and labels.shape[0] != tensor.shape[0]:
        raise DataError(
            f"{where}: {labels.shape[0]} labels for {tensor.shape[0]} samples; "
            "give exactly one label per sample"
        )
    return ArrayDataset(data=tensor, labels=labels, name=name, class_names=class_names)


def array_to_dataset(
    array: np.ndarray, labels: np.ndarray | None = None, name: str = "array"
) -> ArrayDataset:
    """Wrap an in-memory array (and optional labels) as an :class:`ArrayDataset`.

    The array is read with the same rules as :func:`load_array_file`: ``N×D`` vectors,
    ``N×H×W``, ``N×H×W×C`` or ``N×C×H×W`` images, uint8 or floats in [0, 1]. Labels
    may be integers or strings (which become sorted class names).

    Example:
        >>> ds = array_to_dataset(np.random.rand(10, 4), np.arange(10) % 2)
        >>> ds.kind, ds.input_shape
        ('vector', (4,))
    """
    where = f"array '{name}'"
    data = np.asarray(array)
    class_names: list[str] | None = None
    if labels is not None:
        labels, class_names = labels_and_names(np.asarray(labels), where)
    dataset = dataset_from_arrays(data, labels, class_names, name, where)
    dataset.validate()
    return dataset
