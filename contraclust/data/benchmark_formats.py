"""Readers for the distribution formats of the standard image benchmarks.

* CIFAR-10/100 "python version": pickled batch dicts, read by :func:`read_cifar_pickle`
  through :func:`~contraclust.data.safe_pickle.load_data_pickle` (nothing in the file
  is ever run).
* CIFAR-10/100 "binary version": fixed-size records, read by :func:`read_cifar_binary`.
* STL-10 binary: :func:`read_stl10_images` and :func:`read_stl10_labels`.
* Tiny ImageNet: the validation labels in ``val_annotations.txt``,
  :func:`read_tiny_imagenet_annotations`.

Each reader checks sizes, dtypes and label ranges and raises
:class:`~contraclust.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contraclust.data.safe_pickle import load_data_pickle
from contraclust.errors import DataError

__all__ = [
    "CIFAR_IMAGE_BYTES",
    "STL10_IMAGE_BYTES",
    "read_cifar_binary",
    "read_cifar_pickle",
    "read_stl10_images",
    "read_stl10_labels",
    "read_tiny_imagenet_annotations",
]

#: Bytes of one CIFAR image: the red, green and blue 32×32 planes, row-major.
CIFAR_IMAGE_BYTES = 3 * 32 * 32
#: Bytes of one STL-10 image: three 96×96 planes, each stored column by column.
STL10_IMAGE_BYTES = 3 * 96 * 96
_STL10_BLOCK = 4096


def _file_size(path: Path) -> int:
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    return path.stat().st_size


def _check_label_range(labels: np.ndarray, num_classes: int, path: Path, what: str) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(
            f"{path}: {what} span {int(labels.min())}..{int(labels.max())}, expected "
            f"0..{num_classes - 1}; the file is corrupt or not the set it is named for"
        )


def read_cifar_binary(
    path: str | Path, label_classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR binary batch: records of label bytes then 3,072 pixel bytes.

    Args:
        path: ``data_batch_N.bin``/``test_batch.bin`` (CIFAR-10, one label byte) or
            ``train.bin``/``test.bin`` (CIFAR-100, coarse then fine label byte).
        label_classes: the number of classes of each label byte: ``(10,)`` for
            CIFAR-10, ``(20, 100)`` for CIFAR-100.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N, len(label_classes))``.

    Raises:
        DataError: if the file is empty, not a whole number of records, or holds a label
            out of range.
    """
    if len(label_classes) not in (1, 2):
        raise ValueError(f"CIFAR records have 1 or 2 label bytes, not {len(label_classes)}")
    path = Path(path)
    size = _file_size(path)
    record = len(label_classes) + CIFAR_IMAGE_BYTES
    if size == 0 or size % record:
        state = "empty" if size == 0 else "truncated or not a CIFAR binary batch"
        raise DataError(
            f"{path} is {state}: {size} bytes is not a whole number of {record}-byte records "
            f"({len(label_classes)} label byte(s) + {CIFAR_IMAGE_BYTES} pixels); download it again"
        )
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, record)
    labels = raw[:, : len(label_classes)].astype(np.int64)
    names = ("labels",) if len(label_classes) == 1 else ("coarse labels", "fine labels")
    for column, (classes, what) in enumerate(zip(label_classes, names, strict=True)):
        _check_label_range(labels[:, column], classes, path, what)
    images = np.ascontiguousarray(raw[:, len(label_classes) :]).reshape(-1, 3, 32, 32)
    return images, labels


def _entry(batch: dict[object, object], key: str) -> object:
    for candidate in (key, key.encode("latin-1")):
        if candidate in batch:
            return batch[candidate]
    return None


def read_cifar_pickle(
    path: str | Path, label_keys: Sequence[str], label_classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR "python version" batch without executing anything in it.

    The batch is a dict with ``data``, a uint8 ``(N, 3072)`` array, and label lists:
    ``labels`` in CIFAR-10; ``fine_labels`` and ``coarse_labels`` in CIFAR-100.

    Args:
        path: ``data_batch_N``/``test_batch`` (CIFAR-10) or ``train``/``test`` (CIFAR-100).
        label_keys: the label entries to return, e.g. ``("labels",)``.
        label_classes: the number of classes of each of those entries.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N, len(label_keys))``.

    Raises:
        DataError: for a truncated or corrupt pickle, one asking to run code, or a dict
            without the expected entries.
    """
    path = Path(path)
    batch = load_data_pickle(path, what="a CIFAR batch")
    if not isinstance(batch, dict):
        raise DataError(
            f"{path} holds a {type(batch).__name__}, not a CIFAR batch dict; "
            "replace it with the official file"
        )
    data = _entry(batch, "data")
    if not isinstance(data, np.ndarray):
        raise DataError(
            f"{path} has no 'data' array; expected a CIFAR batch with 'data' and labels"
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_IMAGE_BYTES:
        raise DataError(
            f"{path}: 'data' is {data.dtype} of shape {data.shape}; expected uint8 "
            f"(N, {CIFAR_IMAGE_BYTES}) images"
        )
    count = data.shape[0]
    columns = []
    for key, classes in zip(label_keys, label_classes, strict=True):
        values = _entry(batch, key)
        if values is None:
            raise DataError(f"{path} has no '{key}' entry; expected a CIFAR batch with it")
        if isinstance(values, np.ndarray):
            array = values
        elif isinstance(values, list) and all(type(value) is int for value in values):
            array = np.asarray(values, dtype=np.int64)
        else:
            raise DataError(f"{path}: '{key}' is not a list of integers")
        if array.shape != (count,) or array.dtype.kind not in "iu":
            raise DataError(
                f"{path}: '{key}' has shape {array.shape} ({array.dtype}) for {count} images; "
                "expected one integer label per image"
            )
        array = array.astype(np.int64)
        _check_label_range(array, classes, path, f"'{key}'")
        columns.append(array)
    labels = np.stack(columns, axis=1) if columns else np.zeros((count, 0), dtype=np.int64)
    return np.array(data.reshape(count, 3, 32, 32)), labels


def read_stl10_images(path: str | Path) -> np.ndarray:
    """Read an STL-10 ``*_X.bin`` file into uint8 ``(N, 3, 96, 96)`` row-major images.

    The file stores each channel column by column (MATLAB order), so every plane is
    transposed while reading, in blocks, through a memory map.

    Raises:
        DataError: if the file is empty or not a whole number of 27,648-byte images.
    """
    path = Path(path)
    size = _file_size(path)
    if size == 0 or size % STL10_IMAGE_BYTES:
        state = "empty" if size == 0 else "truncated or not an STL-10 image file"
        raise DataError(
            f"{path} is {state}: {size} bytes is not a whole number of {STL10_IMAGE_BYTES}-byte "
            "3×96×96 images; download it again"
        )
    count = size // STL10_IMAGE_BYTES
    stored = np.memmap(path, dtype=np.uint8, mode="r", shape=(count, 3, 96, 96))
    images = np.empty((count, 3, 96, 96), dtype=np.uint8)
    for start in range(0, count, _STL10_BLOCK):
        stop = start + _STL10_BLOCK
        images[start:stop] = stored[start:stop].transpose(0, 1, 3, 2)
    del stored
    return images


def read_stl10_labels(path: str | Path, count: int) -> np.ndarray:
    """Read an STL-10 ``*_y.bin`` file: one byte per image, classes 1..10, as 0..9.

    Raises:
        DataError: if the file does not hold ``count`` labels in 1..10.
    """
    path = Path(path)
    size = _file_size(path)
    if size != count:
        raise DataError(
            f"{path} holds {size} labels for {count} images in the matching _X.bin file; "
            "download both again"
        )
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    _check_label_range(labels, 10, path, "labels (1..10 in the file)")
    return labels


def read_tiny_imagenet_annotations(path: str | Path) -> dict[str, str]:
    """The class (WordNet id) of each validation image, from ``val_annotations.txt``.

    Each line is ``file name, wnid, x0, y0, x1, y1``, tab-separated.

    Raises:
        DataError: for a missing file or a line without a file name and a wnid.
    """
    path = Path(path)
    _file_size(path)
    classes: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a text file ({exc}); download it again") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(
                f"{path}, line {number}: expected 'file<TAB>wnid<TAB>box', found {line[:60]!r}"
            )
        classes[fields[0].strip()] = fields[1].strip()
    if not classes:
        raise DataError(f"{path} lists no images; download Tiny ImageNet again")
    return classes
