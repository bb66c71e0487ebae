"""Tests of STL-10 (``data/sets/stl10.py``): small files in the official layout built
here, and fuzzed ones."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FUZZ, noise
from hypothesis import event, given
from hypothesis import strategies as st

from contraclust.data import load_dataset
from contraclust.data.sets.stl10 import (
    STL10_CLASSES,
    STL10_IMAGE_BYTES,
    read_stl10_images,
    read_stl10_labels,
)
from contraclust.errors import DataError

# --------------------------------------------------------------------------- STL-10


def write_stl10(root: Path, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Images with a distinct value at each (channel, row, column), stored column-major."""
    folder = root / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for part, count in counts.items():
        array = rng.integers(0, 256, (count, 3, 96, 96), dtype=np.uint8)
        array[:, 0, 0, 1] = 200  # row 0, column 1 of red differs from row 1, column 0
        array[:, 0, 1, 0] = 10
        images[part] = array
        (folder / f"{part}_X.bin").write_bytes(array.transpose(0, 1, 3, 2).tobytes())
        if part != "unlabeled":
            labels = (np.arange(count) % 10 + 1).astype(np.uint8)
            (folder / f"{part}_y.bin").write_bytes(labels.tobytes())
    return images


def test_stl10_splits_and_column_major_images(tmp_path: Path) -> None:
    images = write_stl10(tmp_path, {"train": 3, "test": 2, "unlabeled": 4})

    full = load_dataset("stl10", root=tmp_path)
    train = load_dataset("stl10", root=tmp_path, split="train")
    unlabeled = load_dataset("stl10", root=tmp_path, split="unlabeled")

    assert full.input_shape == (3, 96, 96)
    assert torch.equal(
        full.data, torch.from_numpy(np.concatenate([images["train"], images["test"]]))
    )
    assert int(full.data[0, 0, 0, 1]) == 200 and int(full.data[0, 0, 1, 0]) == 10
    assert full.labels is not None
    assert full.labels.tolist() == [0, 1, 2, 0, 1]
    assert full.class_names == list(STL10_CLASSES)
    assert len(train) == 3
    assert unlabeled.labels is None
    assert torch.equal(unlabeled.data, torch.from_numpy(images["unlabeled"]))
    assert len(load_dataset("stl10", root=tmp_path, split="test", image_size=32)) == 2


def test_stl10_bad_files(tmp_path: Path) -> None:
    write_stl10(tmp_path, {"train": 2, "test": 1})
    folder = tmp_path / "stl10" / "stl10_binary"
    (folder / "test_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match=r"test_y\.bin holds 2 labels for 1 images"):
        load_dataset("stl10", root=tmp_path)
    (folder / "test_y.bin").write_bytes(b"\x0b")
    with pytest.raises(DataError, match=r"span 10\.\.10"):
        load_dataset("stl10", root=tmp_path, split="test")
    data = (folder / "train_X.bin").read_bytes()
    (folder / "train_X.bin").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"train_X\.bin is truncated"):
        load_dataset("stl10", root=tmp_path, split="train")
    with pytest.raises(DataError, match=r"stl10: missing .*unlabeled_X\.bin for split 'unlabeled'"):
        load_dataset("stl10", root=tmp_path, split="unlabeled")


# --------------------------------------------------------------------------- STL-10


@FUZZ
@given(
    count=st.integers(0, 2),
    extra=st.sampled_from([0, 0, 1, -1, 100, -27_000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_stl10_images_load_or_data_error(count: int, extra: int, seed: int) -> None:
    size = max(0, count * STL10_IMAGE_BYTES + extra)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train_X.bin"
        path.write_bytes(noise(seed, size))
        try:
            images = read_stl10_images(path)
        except DataError:
            event("DataError")
            assert size == 0 or size % STL10_IMAGE_BYTES
            return
        event("loaded")
    assert images.shape == (size // STL10_IMAGE_BYTES, 3, 96, 96)
    assert images.dtype == np.uint8


@FUZZ
@given(
    blob=st.binary(max_size=40) | st.lists(st.integers(0, 11), max_size=40).map(bytes),
    count=st.none() | st.integers(0, 40),
)
def test_stl10_labels_load_or_data_error(blob: bytes, count: int | None) -> None:
    count = len(blob) if count is None else count  # None: as many labels as images
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train_y.bin"
        path.write_bytes(blob)
        try:
            labels = read_stl10_labels(path, count)
        except DataError:
            event("DataError")
            return
        event("loaded")
    assert labels.shape == (count,) and labels.min(initial=0) >= 0 and labels.max(initial=0) < 10


def test_split_only_needs_its_own_files(tmp_path: Path) -> None:
    write_stl10(tmp_path, {"test": 2})
    assert len(load_dataset("stl10", root=tmp_path, split="test")) == 2
    with pytest.raises(DataError, match=r"train_X\.bin, .*train_y\.bin for split 'all'"):
        load_dataset("stl10", root=tmp_path)
