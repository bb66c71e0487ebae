"""CIFAR-10 and CIFAR-100 (with its 20 superclasses), from the Toronto page.

Both official distributions are read: the "binary version" (fixed-size records, the
one downloaded) and the "python version" (pickled batch dicts, read through
:func:`~contraclust.data.readers.safe_pickle.load_data_pickle`, so nothing in the file
is ever run). Either archive lying in the family folder is checked and unpacked.

Checksums: the MD5s published on the CIFAR page; the SHA-256s those TensorFlow Datasets
(binary archives) and Keras (python archives) record for the same files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import DownloadSource, RemoteFile
from contraclust.data.readers.common import check_label_range, file_size
from contraclust.data.readers.safe_pickle import load_data_pickle
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, FileLayout, register_dataset
from contraclust.errors import DataError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_LAYOUTS",
    "CIFAR10_SOURCE",
    "CIFAR100_CLASSES",
    "CIFAR100_LAYOUTS",
    "CIFAR100_SOURCE",
    "CIFAR100_SUPERCLASSES",
    "CIFAR_IMAGE_BYTES",
    "read_cifar_binary",
    "read_cifar_pickle",
]

#: CIFAR-10 labels 0..9 (``batches.meta`` / ``batches.meta.txt``).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: CIFAR-100 fine labels 0..99 (``meta`` / ``fine_label_names.txt``), alphabetical.
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
)

#: CIFAR-100 coarse labels 0..19 (``meta`` / ``coarse_label_names.txt``). Clustering
#: papers report "CIFAR-100" on these 20 superclasses: the coarse label of each image
#: is its class in ``cifar100-20``.
CIFAR100_SUPERCLASSES: tuple[str, ...] = (
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
)

#: STL-10 labels 1..10 of ``train_y.bin``/``test_y.bin`` minus one (``class_names.txt``).

_TORONTO = "https://www.cs.toronto.edu/~kriz/"

CIFAR10_SOURCE = DownloadSource(
    _TORONTO,
    (
        RemoteFile(
            "cifar-10-binary.tar.gz",
            md5="c32a1d4ab5d03f1284b67883e8d87530",
            sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            unpack=True,
        ),
    ),
    (
        RemoteFile(
            "cifar-10-python.tar.gz",
            md5="c58f30108f718f92721af3b95e74349a",
            sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            unpack=True,
        ),
    ),
)
CIFAR100_SOURCE = DownloadSource(
    _TORONTO,
    (
        RemoteFile(
            "cifar-100-binary.tar.gz",
            md5="03b5dce01913d631647c71ecec9e9cb8",
            sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
            unpack=True,
        ),
    ),
    (
        RemoteFile(
            "cifar-100-python.tar.gz",
            md5="eb9058c3a382ffc7106e4002c42a8d85",
            sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
            unpack=True,
        ),
    ),
)

_CIFAR10_PY = "cifar-10-batches-py"
_CIFAR10_BIN = "cifar-10-batches-bin"
_CIFAR100_PY = "cifar-100-python"
_CIFAR100_BIN = "cifar-100-binary"

CIFAR10_LAYOUTS = (
    FileLayout(
        "binary records",
        {
            "train": tuple(f"{_CIFAR10_BIN}/data_batch_{i}.bin" for i in range(1, 6)),
            "test": (f"{_CIFAR10_BIN}/test_batch.bin",),
        },
    ),
    FileLayout(
        "python pickle batches",
        {
            "train": tuple(f"{_CIFAR10_PY}/data_batch_{i}" for i in range(1, 6)),
            "test": (f"{_CIFAR10_PY}/test_batch",),
        },
    ),
)
CIFAR100_LAYOUTS = (
    FileLayout(
        "binary records",
        {"train": (f"{_CIFAR100_BIN}/train.bin",), "test": (f"{_CIFAR100_BIN}/test.bin",)},
    ),
    FileLayout(
        "python pickles",
        {"train": (f"{_CIFAR100_PY}/train",), "test": (f"{_CIFAR100_PY}/test",)},
    ),
)


# --------------------------------------------------------------------------- readers

#: Bytes of one CIFAR image: the red, green and blue 32×32 planes, row-major.
CIFAR_IMAGE_BYTES = 3 * 32 * 32


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
    size = file_size(path)
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
        check_label_range(labels[:, column], classes, path, what)
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
        check_label_range(array, classes, path, f"'{key}'")
        columns.append(array)
    labels = np.stack(columns, axis=1) if columns else np.zeros((count, 0), dtype=np.int64)
    return np.array(data.reshape(count, 3, 32, 32)), labels


# --------------------------------------------------------------------------- sets


def _read_cifar_parts(
    files: Mapping[str, Path], label_keys: Sequence[str], label_classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Images and label columns of every file given, in order (train batches, then test)."""
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for official, path in files.items():
        if official.endswith(".bin"):
            part_images, part_labels = read_cifar_binary(path, label_classes)
        else:
            part_images, part_labels = read_cifar_pickle(path, label_keys, label_classes)
        images.append(part_images)
        labels.append(part_labels)
    if len(images) == 1:
        return images[0], labels[0]
    return np.concatenate(images), np.concatenate(labels)


def _cifar_dataset(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> ArrayDataset:
    return ArrayDataset(
        data=torch.from_numpy(np.ascontiguousarray(images)),
        labels=np.ascontiguousarray(labels),
        name="",
        class_names=list(class_names),
    )


@register_dataset(
    "cifar10",
    family="cifar10",
    description="CIFAR-10, 32×32 colour, 10 classes; split all (default, as CC and ConCURL "
    "train): train + test, 60,000; train: 50,000; test: 10,000",
    files=[],
    origin=CIFAR10_SOURCE,
    layouts=CIFAR10_LAYOUTS,
    default_split=ALL_SPLIT,
)
def _load_cifar10(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    images, labels = _read_cifar_parts(files, ("labels",), (10,))
    return _cifar_dataset(images, labels[:, 0], CIFAR10_CLASSES)


@register_dataset(
    "cifar100",
    family="cifar100",
    description="CIFAR-100, 32×32 colour, 100 fine classes; split all (default): train + "
    "test, 60,000; train: 50,000; test: 10,000",
    files=[],
    origin=CIFAR100_SOURCE,
    layouts=CIFAR100_LAYOUTS,
    default_split=ALL_SPLIT,
)
def _load_cifar100(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    images, labels = _read_cifar_parts(files, ("coarse_labels", "fine_labels"), (20, 100))
    return _cifar_dataset(images, labels[:, 1], CIFAR100_CLASSES)


@register_dataset(
    "cifar100-20",
    family="cifar100",
    description="CIFAR-100 with its 20 superclasses (coarse labels) as classes, as clustering "
    "papers report it; split all (default, as CC and ConCURL): 60,000; train: 50,000; "
    "test: 10,000",
    files=[],
    origin=CIFAR100_SOURCE,
    layouts=CIFAR100_LAYOUTS,
    default_split=ALL_SPLIT,
)
def _load_cifar100_20(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    images, labels = _read_cifar_parts(files, ("coarse_labels", "fine_labels"), (20, 100))
    return _cifar_dataset(images, labels[:, 0], CIFAR100_SUPERCLASSES)
