"""Tests of Fashion-MNIST (``data/sets/fashion_mnist.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import write_idx

from contraclust.data import (
    load_dataset,
)


def test_fashion_mnist_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (3, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([9, 8, 7], dtype=np.uint8))
    full = load_dataset("fashion_mnist", root=tmp_path)
    assert len(full) == 8
    assert full.labels is not None
    assert full.labels.tolist() == [0, 1, 2, 3, 4, 9, 8, 7]
    assert full.class_names is not None
    assert full.class_names[9] == "Ankle boot"
    assert len(load_dataset("fashion-mnist-test", root=tmp_path)) == 3
