"""STL-10: 96×96 colour images, binary files from Adam Coates's Stanford page.

The MD5 is the one torchvision's dataset code checks; the SHA-256 the one TensorFlow
Datasets records.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import DownloadSource, RemoteFile
from contraclust.data.readers.common import check_label_range, file_size
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, FileLayout, register_dataset
from contraclust.errors import DataError

__all__ = [
    "STL10_CLASSES",
    "STL10_IMAGE_BYTES",
    "STL10_LAYOUT",
    "STL10_SOURCE",
    "read_stl10_images",
    "read_stl10_labels",
]

STL10_CLASSES: tuple[str, ...] = (
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
)

# ImageNet-10 and ImageNet-Dogs are subsets of the ILSVRC-2012 training set defined by
# Chang et al., "Deep Adaptive Image Clustering" (DAC, ICCV 2017), and reused with the
# same synsets by later deep-clustering work such as Li et al., "Contrastive
# Clustering" (CC, AAAI 2021), which use all 1,300 training images of each class.
# These are the WordNet ids of their classes, in sorted order.

#: ImageNet-10: (WordNet id, class name) of its 10 classes; 13,000 training images.

STL10_SOURCE = DownloadSource(
    "http://ai.stanford.edu/~acoates/stl10/",
    (
        RemoteFile(
            "stl10_binary.tar.gz",
            md5="91f7769df0f17e558f3565bffb0c7dfb",
            sha256="f31fd99273a1acb8609c8db427cebb1de3f71de77758cdc0e22956e1289b9866",
            unpack=True,
        ),
    ),
)

_STL = "stl10_binary"
STL10_LAYOUT = FileLayout(
    "binary files",
    {
        "train": (f"{_STL}/train_X.bin", f"{_STL}/train_y.bin"),
        "test": (f"{_STL}/test_X.bin", f"{_STL}/test_y.bin"),
        "unlabeled": (f"{_STL}/unlabeled_X.bin",),
    },
)

#: Bytes of one STL-10 image: three 96×96 planes, each stored column by column.
STL10_IMAGE_BYTES = 3 * 96 * 96
_STL10_BLOCK = 4096


def read_stl10_images(path: str | Path) -> np.ndarray:
    """Read an STL-10 ``*_X.bin`` file into uint8 ``(N, 3, 96, 96)`` row-major images.

    The file stores each channel column by column (MATLAB order), so every plane is
    transposed while reading, in blocks, through a memory map.

    Raises:
        DataError: if the file is empty or not a whole number of 27,648-byte images.
    """
    path = Path(path)
    size = file_size(path)
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
    size = file_size(path)
    if size != count:
        raise DataError(
            f"{path} holds {size} labels for {count} images in the matching _X.bin file; "
            "download both again"
        )
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    check_label_range(labels, 10, path, "labels (1..10 in the file)")
    return labels


@register_dataset(
    "stl10",
    family="stl10",
    description="STL-10, 96×96 colour, 10 classes; split all (default, as CC): train + test, "
    "13,000; train: 5,000; test: 8,000; unlabeled: 100,000 without labels",
    files=[],
    origin=STL10_SOURCE,
    layouts=[STL10_LAYOUT],
    default_split=ALL_SPLIT,
)
def _load_stl10(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    if request.split == "unlabeled":
        images = read_stl10_images(files[f"{_STL}/unlabeled_X.bin"])
        return ArrayDataset(data=torch.from_numpy(images), labels=None, name="")
    parts = ["train", "test"] if request.split == ALL_SPLIT else [request.split]
    images_parts: list[np.ndarray] = []
    labels_parts: list[np.ndarray] = []
    for part in parts:
        part_images = read_stl10_images(files[f"{_STL}/{part}_X.bin"])
        images_parts.append(part_images)
        labels_parts.append(read_stl10_labels(files[f"{_STL}/{part}_y.bin"], len(part_images)))
    images = images_parts[0] if len(parts) == 1 else np.concatenate(images_parts)
    return ArrayDataset(
        data=torch.from_numpy(images),
        labels=np.concatenate(labels_parts),
        name="",
        class_names=list(STL10_CLASSES),
    )
