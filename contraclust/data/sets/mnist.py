"""MNIST: 28×28 handwritten digits in IDX files, from the PyTorch mirror.

The classic yann.lecun.com address is unreliable, so the canonical address is the
copy PyTorch hosts. The MD5s are those torchvision's dataset code checks; the SHA-256s
those TensorFlow Datasets records (the label files also match ../shared/data).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import DownloadSource, RemoteFile
from contraclust.data.readers.idx import idx_dataset
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, FileLayout, register_dataset
from contraclust.data.sets.digits import DIGIT_NAMES

__all__ = ["IDX_LAYOUT", "MNIST_SOURCE", "TEST_PAIR", "TRAIN_PAIR", "idx_pairs"]

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
#: The (images, labels) files of each split, shared by the MNIST-like families.
TRAIN_PAIR = (TRAIN_IMAGES, TRAIN_LABELS)
TEST_PAIR = (TEST_IMAGES, TEST_LABELS)

#: The IDX files of an MNIST-like family, per split.
IDX_LAYOUT = FileLayout("IDX files", {"train": TRAIN_PAIR, "test": TEST_PAIR})

MNIST_SOURCE = DownloadSource(
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    (
        RemoteFile(
            TRAIN_IMAGES,
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
            sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        RemoteFile(
            TRAIN_LABELS,
            md5="d53e105ee54ea40749a09fcbcd1e9432",
            sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        RemoteFile(
            TEST_IMAGES,
            md5="9fb629c4189551a2d022fa330f9573f3",
            sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        RemoteFile(
            TEST_LABELS,
            md5="ec29112dd5afa0611ce80d1b7f02629c",
            sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    ),
)


def idx_pairs(split: str) -> list[tuple[str, str]]:
    """The (images, labels) files ``split`` reads: train, test, or both for ``all``."""
    pairs = {"train": TRAIN_PAIR, "test": TEST_PAIR}
    return list(pairs.values()) if split == ALL_SPLIT else [pairs[split]]


@register_dataset(
    "mnist",
    family="mnist",
    description="MNIST, 28×28 handwritten digits, 10 classes; split all (default): "
    "train + test, 70,000; train: 60,000; test: 10,000",
    files=[*TRAIN_PAIR, *TEST_PAIR],
    origin=MNIST_SOURCE,
    layouts=[IDX_LAYOUT],
    default_split=ALL_SPLIT,
)
def _load_mnist(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    return idx_dataset(files, idx_pairs(request.split), DIGIT_NAMES)


@register_dataset(
    "mnist-test",
    family="mnist",
    description="MNIST test split, 10,000 28×28 handwritten digits, 10 classes",
    files=TEST_PAIR,
    origin=MNIST_SOURCE,
)
def _load_mnist_test(files: Mapping[str, Path]) -> ArrayDataset:
    return idx_dataset(files, [TEST_PAIR], DIGIT_NAMES)
