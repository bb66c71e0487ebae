"""Readers for the file formats data sets come in.

* IDX (the MNIST family), gzipped or plain: :func:`read_idx`.
* The USPS HDF5 layout used by DEC/IDEC-style code: :func:`read_usps_h5`.
* NumPy ``.npy`` / ``.npz`` arrays of images or feature vectors: :func:`load_array_file`.
* A folder of image files, optionally one sub-folder per class: :func:`load_image_folder`.

Every reader checks what it reads and raises :class:`~contraclust.errors.DataError`
with a one-line message naming the file and the fix, never a bare NumPy or PIL error.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from contraclust.data.dataset import ArrayDataset
from contraclust.errors import DataError

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "array_to_dataset",
    "load_array_file",
    "load_image_folder",
    "read_idx",
    "read_usps_h5",
    "resize_images",
]

logger = logging.getLogger(__name__)

#: Side of the square images an image folder is brought to when its images differ in
#: size and no ``image_size`` is given.
DEFAULT_IMAGE_SIZE = 64

#: File extensions (lower case) read as images by :func:`load_image_folder`.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

_GZIP_MAGIC = b"\x1f\x8b"
_NPY_MAGIC = b"\x93NUMPY"
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 22
_DATA_KEYS = ("x", "X", "data", "images", "features")
_LABEL_KEYS = ("y", "labels", "targets", "target")
_ARRAY_SHAPES = (
    "N×D vectors, N×H×W grey images, N×H×W×C (C in 1, 3, 4) or N×C×H×W (C in 1, 3) images"
)


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"no such file or directory: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a file")


# --------------------------------------------------------------------------- IDX


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
    _require_file(path)
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


# --------------------------------------------------------------------------- USPS


def read_usps_h5(path: str | Path) -> dict[str, np.ndarray]:
    """Read the USPS digits from the HDF5 layout used by DEC/IDEC-style code.

    The file holds ``train/data`` (N, 256) float32 in [0, 1], ``train/target`` (N,),
    and the same under ``test/``; each row is a 16×16 image in row-major order.

    Returns:
        ``train_x`` and ``test_x`` as uint8 ``(N, 1, 16, 16)`` images (values ×255,
        rounded), ``train_y`` and ``test_y`` as int64 ``(N,)`` labels.

    Raises:
        DataError: if the file is missing, not HDF5, or lacks or misshapes a key.
    """
    import h5py

    path = Path(path)
    _require_file(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"{path} is not a readable HDF5 file ({_first_line(exc)}); download usps.h5 again"
        ) from None
    try:
        with handle:
            return _read_usps_splits(handle, path)
    except DataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        # h5py reports damaged metadata from many places, with these types
        raise DataError(
            f"{path} is damaged ({type(exc).__name__}: {_first_line(exc)}); download usps.h5 again"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def _read_usps_splits(handle: Any, path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        for key in ("data", "target"):
            if f"{split}/{key}" not in handle:
                raise DataError(
                    f"{path} has no '{split}/{key}' dataset; expected the USPS layout "
                    "train/data, train/target, test/data, test/target"
                )
        try:
            data = np.asarray(handle[f"{split}/data"][()])
            target = np.asarray(handle[f"{split}/target"][()])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: cannot read '{split}' ({exc}); download it again") from exc
        if data.ndim != 2 or data.shape[1] != 256 or data.dtype.kind not in "fiu":
            raise DataError(
                f"{path}: '{split}/data' has shape {data.shape} ({data.dtype}); "
                "expected (N, 256) numbers, one 16×16 image per row"
            )
        values = data.astype(np.float32, copy=False)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise DataError(
                f"{path}: '{split}/data' holds values outside [0, 1] or NaN; "
                "expected the USPS copy scaled to [0, 1]"
            )
        labels = _as_int_labels(target, f"{path}: '{split}/target'")
        if labels.shape[0] != data.shape[0]:
            raise DataError(
                f"{path}: '{split}/target' has {labels.shape[0]} labels for {data.shape[0]} images"
            )
        images = np.rint(values * 255.0).astype(np.uint8).reshape(-1, 1, 16, 16)
        out[f"{split}_x"] = images
        out[f"{split}_y"] = labels
    return out


# --------------------------------------------------------------------------- arrays


def _as_int_labels(values: np.ndarray, where: str) -> np.ndarray:
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


def _labels_and_names(values: np.ndarray, where: str) -> tuple[np.ndarray, list[str] | None]:
    """Labels as int64 indices; string labels become indices into sorted class names."""
    values = np.asarray(values)
    if values.dtype.kind in "US":
        if values.ndim != 1:
            raise DataError(f"{where}: labels have shape {values.shape}; expected (N,)")
        names, index = np.unique(values.astype(str), return_inverse=True)
        return index.astype(np.int64), [str(name) for name in names]
    return _as_int_labels(values, where), None


def _npy_header(stream: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a .npy header, leaving the stream at the data."""
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
            return np.lib.format.read_array_header_1_0(stream)
        return np.lib.format.read_array_header_2_0(stream)
    except Exception as exc:  # the header is a Python literal: any parse failure means corrupt
        raise DataError(f"{where} has a corrupt .npy header ({_reason(exc)})") from exc


def _read_npy(stream: IO[bytes], size: int, where: str) -> np.ndarray:
    """Read one .npy array from a seekable stream of ``size`` bytes, checking its length."""
    shape, fortran, dtype = _npy_header(stream, where)
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
    buffer = _read_upto(stream, expected, Path(where))
    if len(buffer) < expected:
        raise DataError(
            f"{where} is truncated: expected {expected} bytes of data for shape {shape}, "
            f"found {len(buffer)}"
        )
    array = np.frombuffer(buffer, dtype=dtype)
    order = "F" if fortran else "C"
    return array.reshape(shape, order=order)


def _load_npy_file(path: Path) -> np.ndarray:
    with path.open("rb") as stream:
        return _read_npy(stream, path.stat().st_size, str(path))


def _load_npz_file(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (compressed or not), by key."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                where = f"{path}[{key}]"
                with archive.open(info) as member:
                    arrays[key] = _read_npy(member, info.file_size, where)
    except DataError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        struct.error,
        EOFError,
        NotImplementedError,  # unsupported compression method
        RuntimeError,  # encrypted member
        ValueError,  # e.g. a member name that does not decode
    ) as exc:
        raise DataError(
            f"{path} is not a valid .npz archive ({_reason(exc)}); save it with numpy.savez"
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
    _require_file(path)
    arrays = _read_array_any(path)
    key = _pick_key(arrays, _LABEL_KEYS, "label", path)
    if key is None:
        if len(arrays) != 1:
            raise DataError(
                f"{path} has arrays {sorted(arrays)}; store the labels under 'y' or 'labels'"
            )
        key = next(iter(arrays))
    return _labels_and_names(arrays[key], str(path))


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
    _require_file(path)
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
            labels, class_names = _labels_and_names(arrays[label_key], f"{path}[{label_key}]")
    if labels_path is not None:
        labels, class_names = _load_labels_file(Path(labels_path))
    dataset = _dataset_from_arrays(data, labels, class_names, path.stem, str(path))
    dataset.validate()
    return dataset


def _dataset_from_arrays(
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
        labels, class_names = _labels_and_names(np.asarray(labels), where)
    dataset = _dataset_from_arrays(data, labels, class_names, name, where)
    dataset.validate()
    return dataset


# --------------------------------------------------------------------------- resizing


def _square_crop_box(
    width: int, height: int, size: int
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The resized (w, h) with shorter side ``size`` and the centred square crop box."""
    scale = size / min(width, height)
    new_w = max(size, round(width * scale))
    new_h = max(size, round(height * scale))
    left = (new_w - size) // 2
    top = (new_h - size) // 2
    return (new_w, new_h), (left, top, left + size, top + size)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` images: shorter side to ``size``, centre-crop square.

    Images already ``size``×``size`` are returned unchanged. Down-sampling is
    antialiased, as in PIL.
    """
    if size < 1:
        raise DataError(f"image_size must be a positive integer, got {size}")
    height, width = int(images.shape[2]), int(images.shape[3])
    if (height, width) == (size, size):
        return images
    (new_w, new_h), (left, top, right, bottom) = _square_crop_box(width, height, size)
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):
        block = images[start : start + 4096].float()
        block = F.interpolate(
            block, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )
        block = block[:, :, top:bottom, left:right]
        out[start : start + 4096] = block.round().clamp(0, 255).to(torch.uint8)
    return out


# --------------------------------------------------------------------------- image folders


_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F", "La"})


@dataclass
class _Probe:
    """What the header of one image file says, read without decoding the pixels."""

    size: tuple[int, int]
    colour: bool


@dataclass
class _Failure:
    relpath: str
    reason: str


def _palette_is_grey(image: Image.Image) -> bool:
    palette = image.getpalette()
    if not palette:
        return True
    rgb = np.asarray(palette[: len(palette) - len(palette) % 3]).reshape(-1, 3)
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:80]


def _bomb_message(path: Path, exc: BaseException) -> str:
    return (
        f"{path} is too large to decode safely ({exc}); downscale or remove it, "
        "or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
    )


def _probe(path: Path) -> _Probe:
    with Image.open(path) as image:
        mode = image.mode
        if mode == "P" or mode == "PA":
            colour = not _palette_is_grey(image)
        else:
            colour = mode not in _GREY_MODES
        return _Probe(size=image.size, colour=colour)


def _to_mode(image: Image.Image, colour: bool) -> Image.Image:
    """Convert a decoded image to RGB or L; transparency is composited on white."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        elif mode.startswith("I;16"):
            scale = 1.0 / 257.0
        else:  # 32-bit "I": some PIL versions open 16-bit PNGs this way
            scale = 1.0 / 257.0 if values.size and values.max() > 255 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
        return image.convert("RGB") if colour else image
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "RGB" if colour else "L"
    return image if image.mode == target else image.convert(target)


def _decode(
    path: Path, colour: bool, out_size: tuple[int, int] | None, crop_to: int | None
) -> np.ndarray:
    """Decode one file to a (C, H, W) uint8 array of the dataset's common format."""
    with Image.open(path) as image:
        if crop_to is not None and image.format == "JPEG":
            width, height = image.size
            scale = crop_to / min(width, height)
            # JPEG can decode at 1/2, 1/4, 1/8 scale for free; never below the target
            image.draft(
                "RGB" if colour else "L", (math.ceil(width * scale), math.ceil(height * scale))
            )
        image.load()
        image = _to_mode(image, colour)
        if crop_to is not None:
            (new_w, new_h), box = _square_crop_box(image.size[0], image.size[1], crop_to)
            if image.size != (new_w, new_h):
                image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
            image = image.crop(box)
        elif out_size is not None and image.size != out_size:
            raise OSError(f"decoded size {image.size} differs from the header's {out_size}")
        array = np.asarray(image, dtype=np.uint8)
    return array[None, :, :] if array.ndim == 2 else np.moveaxis(array, 2, 0)


def _map_parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if len(items) < 64:
        return [function(item) for item in items]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items, chunksize=16))


def _list_image_files(root: Path) -> tuple[list[str], list[str]]:
    """Image files (relative POSIX paths, sorted) and the ignored non-image files."""
    images: list[tuple[tuple[str, ...], str]] = []
    ignored: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        base = Path(current).relative_to(root)
        for filename in filenames:
            if filename.startswith("."):
                continue
            relative = base / filename
            if Path(filename).suffix.lower() in IMAGE_EXTENSIONS:
                images.append((relative.parts, relative.as_posix()))
            else:
                ignored.append(relative.as_posix())
    images.sort()
    return [relpath for _, relpath in images], sorted(ignored)


def list_image_folder(root: Path, image_size: int | None = None) -> list[str]:
    """The image files under ``root`` (sorted relative paths), after checking the folder.

    Raises:
        DataError: for a missing path, a file, a bad ``image_size`` or a folder without
            images (naming the other files found, if any).
    """
    if not root.exists():
        raise DataError(f"no such file or directory: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size}")
    relpaths, ignored = _list_image_files(root)
    if ignored:
        logger.info("%s: ignored %d non-image file(s), e.g. %s", root, len(ignored), ignored[0])
    if not relpaths:
        if ignored:
            raise DataError(
                f"no image files in {root}: found {len(ignored)} other file(s) such as "
                f"{ignored[0]}; accepted extensions are {', '.join(sorted(IMAGE_EXTENSIONS))}"
            )
        raise DataError(f"{root} is empty: put image files (or one sub-folder per class) in it")
    return relpaths


def _fail_unreadable(root: Path, failures: list[_Failure]) -> None:
    failures = sorted(failures, key=lambda failure: failure.relpath)
    shown = ", ".join(f"{failure.relpath} ({failure.reason})" for failure in failures[:3])
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    raise DataError(
        f"{len(failures)} unreadable image file(s) in {root}: {shown}{more}; fix or remove "
        "them, or pass skip_bad=True (--skip-bad-images) to skip them"
    )


def load_image_folder(
    path: str | Path, image_size: int | None = None, skip_bad: bool = False
) -> ArrayDataset:
    """Read every image under a folder into one uint8 tensor.

    Files with the extensions in :data:`IMAGE_EXTENSIONS` are found recursively, in
    sorted path order; other files and hidden files and folders are ignored. When
    the images sit in two or more first-level sub-folders (and none at the top), the
    sub-folder names are the classes (sorted) and the labels index into them;
    otherwise the set is unlabelled.

    Colour: if any image is in colour, all become RGB (grey replicated), else all are
    one-channel grey. Transparency (RGBA, LA, palette) is composited on white.

    Size: with ``image_size`` each image's shorter side is resized to it and the centre
    square is cropped. Without it, images that all share one size keep it, and
    otherwise :data:`DEFAULT_IMAGE_SIZE` (64) is used as if given.

    Args:
        path: the folder.
        image_size: side of the square output images, or None (see above).
        skip_bad: skip unreadable, empty or truncated files (listed in ``skipped``)
            instead of raising.

    Raises:
        DataError: for a missing or empty folder, a folder without images, or
            unreadable images (unless ``skip_bad``), naming the first three.
    """
    root = Path(path)
    relpaths = list_image_folder(root, image_size)
    failures: list[_Failure] = []

    def probe(relpath: str) -> _Probe | _Failure:
        file = root / relpath
        try:
            if file.stat().st_size == 0:
                return _Failure(relpath, "empty file")
            return _probe(file)
        except Image.DecompressionBombError as exc:
            if not skip_bad:
                raise DataError(_bomb_message(file, exc)) from exc
            return _Failure(relpath, "too large to decode")
        except Exception as exc:  # PIL's decoders raise many types; all mean unreadable
            return _Failure(relpath, _reason(exc))

    probes = _map_parallel(probe, relpaths)
    good: list[tuple[str, _Probe]] = []
    for relpath, result in zip(relpaths, probes, strict=True):
        if isinstance(result, _Failure):
            failures.append(result)
        else:
            good.append((relpath, result))

    colour = any(probe_result.colour for _, probe_result in good)
    sizes = {probe_result.size for _, probe_result in good}
    crop_to = image_size
    if crop_to is None and len(sizes) > 1:
        crop_to = DEFAULT_IMAGE_SIZE
        logger.info(
            "%s: images differ in size; resizing to %d×%d (pass image_size to choose)",
            root,
            DEFAULT_IMAGE_SIZE,
            DEFAULT_IMAGE_SIZE,
        )
    common = next(iter(sizes)) if len(sizes) == 1 else None

    def decode(item: tuple[str, _Probe]) -> np.ndarray | _Failure:
        relpath, _ = item
        file = root / relpath
        try:
            return _decode(file, colour, common, crop_to)
        except Image.DecompressionBombError as exc:
            if not skip_bad:
                raise DataError(_bomb_message(file, exc)) from exc
            return _Failure(relpath, "too large to decode")
        except Exception as exc:  # PIL's decoders raise many types; all mean unreadable
            return _Failure(relpath, _reason(exc))

    decoded = _map_parallel(decode, good)
    arrays: list[np.ndarray] = []
    kept: list[str] = []
    for (relpath, _), result in zip(good, decoded, strict=True):
        if isinstance(result, _Failure):
            failures.append(result)
        else:
            arrays.append(result)
            kept.append(relpath)
    if failures and not skip_bad:
        _fail_unreadable(root, failures)
    if not arrays:
        raise DataError(
            f"none of the {len(relpaths)} image file(s) in {root} could be read "
            f"(first: {failures[0].relpath}, {failures[0].reason})"
        )
    if failures:
        logger.warning("%s: skipped %d unreadable image file(s)", root, len(failures))

    data = torch.from_numpy(np.stack(arrays))
    labels, class_names = _folder_labels(root, kept)
    dataset = ArrayDataset(
        data=data,
        labels=labels,
        name=root.resolve().name or str(root),
        paths=kept,
        class_names=class_names,
        skipped=sorted(failure.relpath for failure in failures),
    )
    dataset.validate()
    return dataset


def _folder_labels(root: Path, relpaths: list[str]) -> tuple[np.ndarray | None, list[str] | None]:
    """Labels from first-level sub-folders, when there are two or more and no loose files."""
    tops = [relpath.split("/", 1)[0] if "/" in relpath else None for relpath in relpaths]
    folders = {top for top in tops if top is not None}
    if len(folders) < 2:
        return None, None
    if None in tops:
        logger.warning(
            "%s: images both at the top level and in sub-folders; treating them as unlabelled",
            root,
        )
        return None, None
    class_names = sorted(folders)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[top] for top in tops if top is not None], dtype=np.int64)
    return labels, class_names
