"""Tests of Tiny ImageNet (``data/sets/tiny_imagenet.py``), from a small copy of its layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import save_image, write_tiny_imagenet

from contraclust.data import load_dataset
from contraclust.errors import DataError


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    classes = write_tiny_imagenet(tmp_path)

    train = load_dataset("tiny-imagenet", root=tmp_path)
    test = load_dataset("tiny-imagenet", root=tmp_path, split="test")
    both = load_dataset("tiny-imagenet", root=tmp_path, split="all", image_size=32)

    assert train.class_names == classes
    assert train.input_shape == (3, 64, 64)
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.paths[0] == "train/n01000001/images/n01000001_0.JPEG"
    assert test.labels.tolist() == [1, 2, 1]
    assert test.input_shape == (3, 64, 64)  # grey validation JPEGs become RGB
    assert test.paths == [f"val/images/val_{k}.JPEG" for k in range(3)]
    assert len(both) == 9 and both.input_shape == (3, 32, 32)


def test_tiny_imagenet_unlisted_validation_image(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    extra = tmp_path / "tiny-imagenet" / "tiny-imagenet-200" / "val" / "images" / "val_9.JPEG"
    save_image(extra, 3)
    with pytest.raises(DataError, match=r"val_9\.JPEG is not listed in .*val_annotations\.txt"):
        load_dataset("tiny-imagenet", root=tmp_path, split="test")
