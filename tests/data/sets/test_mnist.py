"""Tests of the MNIST family (``data/sets/mnist.py``): the official IDX files in the
data root, its splits, and the published checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_idx

from contraclust.data import (
    find_dataset_files,
    load_dataset,
)
from contraclust.data.sets.mnist import MNIST_SOURCE
from contraclust.errors import DataError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_test_from_data_root(data_root: Path) -> None:
    dataset = load_dataset("mnist-test", root=data_root)
    assert tuple(dataset.data.shape) == (10000, 1, 28, 28)
    assert dataset.data.dtype == torch.uint8
    assert dataset.labels is not None
    assert np.bincount(dataset.labels).tolist() == MNIST_TEST_COUNTS
    assert dataset.class_names == [str(d) for d in range(10)]
    assert dataset.name == "mnist-test"


def test_mnist_joins_train_then_test(data_root: Path) -> None:
    full = load_dataset("MNIST", root=data_root)
    assert tuple(full.data.shape) == (70000, 1, 28, 28)
    assert full.labels is not None
    assert np.bincount(full.labels[:60000]).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(full.labels).tolist() == [
        a + b for a, b in zip(MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS, strict=True)
    ]
    test = load_dataset("mnist-test", root=data_root)
    assert torch.equal(full.data[60000:], test.data)


def test_mismatched_idx_pair_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"labels of shape \(3,\) for 4 images"):
        load_dataset("mnist-test", root=tmp_path)


def test_mnist_splits_from_the_data_root(data_root: Path) -> None:
    train = load_dataset("mnist", root=data_root, split="train")
    test = load_dataset("mnist", root=data_root, split="TEST")
    assert len(train) == 60000 and len(test) == 10000
    assert torch.equal(test.data, load_dataset("mnist-test", root=data_root).data)
    assert len(load_dataset("usps", root=data_root, split="test")) == 2007
    files = find_dataset_files("mnist", root=data_root, split="test")
    assert sorted(files) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_stored_sha256_matches_the_real_mnist_label_files(shared_data_dir: Path) -> None:
    """The SHA-256s come from another project's lists; two of them can be checked here."""
    known = {remote.name: remote for remote in MNIST_SOURCE.files}
    for official, shared in (
        ("t10k-labels-idx1-ubyte.gz", "mnist-t10k-labels-idx1-ubyte.gz"),
        ("train-labels-idx1-ubyte.gz", "mnist-train-labels-idx1-ubyte.gz"),
    ):
        digest = hashlib.sha256((shared_data_dir / shared).read_bytes()).hexdigest()
        assert known[official].checksum == ("sha256", digest)
