"""Fashion-MNIST: 28×28 clothing images in MNIST's IDX layout, from Zalando's bucket.

The MD5s are those of the Fashion-MNIST README; the SHA-256s those TensorFlow
Datasets records.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import DownloadSource, RemoteFile
from contraclust.data.readers.idx import idx_dataset
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, register_dataset
from contraclust.data.sets.mnist import IDX_LAYOUT, TEST_PAIR, TRAIN_PAIR, idx_pairs

__all__ = ["FASHION_CLASSES", "FASHION_MNIST_SOURCE"]

#: Fashion-MNIST labels 0..9.
FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

FASHION_MNIST_SOURCE = DownloadSource(
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    (
        RemoteFile(
            TRAIN_PAIR[0],
            md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        ),
        RemoteFile(
            TRAIN_PAIR[1],
            md5="25c81989df183df01b3e8a0aad5dffbe",
            sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        ),
        RemoteFile(
            TEST_PAIR[0],
            md5="bef4ecab320f06d8554ea6380940ec79",
            sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        ),
        RemoteFile(
            TEST_PAIR[1],
            md5="bb300cfdad3c16e7a12a480ee83cd310",
            sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    ),
)


@register_dataset(
    "fashion-mnist",
    family="fashion-mnist",
    description="Fashion-MNIST, 28×28 clothing images, 10 classes; split all (default): "
    "train + test, 70,000; train: 60,000; test: 10,000",
    files=[*TRAIN_PAIR, *TEST_PAIR],
    origin=FASHION_MNIST_SOURCE,
    layouts=[IDX_LAYOUT],
    default_split=ALL_SPLIT,
)
def _load_fashion_mnist(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    return idx_dataset(files, idx_pairs(request.split), FASHION_CLASSES)


@register_dataset(
    "fashion-mnist-test",
    family="fashion-mnist",
    description="Fashion-MNIST test split, 10,000 28×28 clothing images, 10 classes",
    files=TEST_PAIR,
    origin=FASHION_MNIST_SOURCE,
)
def _load_fashion_mnist_test(files: Mapping[str, Path]) -> ArrayDataset:
    return idx_dataset(files, [TEST_PAIR], FASHION_CLASSES)
