"""Tests of :class:`ArrayDataset`: properties, subsets and validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contraclust.data import ArrayDataset
from contraclust.errors import DataError


def _images(n: int = 6, channels: int = 1) -> ArrayDataset:
    data = torch.arange(n * channels * 4 * 5, dtype=torch.int64).reshape(n, channels, 4, 5)
    return ArrayDataset(
        data=(data % 256).to(torch.uint8),
        labels=np.arange(n) % 3,
        name="toy",
        paths=[f"img{i}.png" for i in range(n)],
        class_names=["a", "b", "c"],
        skipped=["broken.png"],
    )


def test_image_properties() -> None:
    dataset = _images(channels=3)
    dataset.validate()
    assert dataset.kind == "image"
    assert dataset.input_shape == (3, 4, 5)
    assert len(dataset) == 6
    assert dataset.num_classes == 3
    assert dataset.labels is not None
    assert dataset.labels.dtype == np.int64  # converted from the default integer dtype
    assert "n=6" in repr(dataset)


def test_vector_properties() -> None:
    dataset = ArrayDataset(torch.zeros(3, 7), None, "vectors")
    dataset.validate()
    assert dataset.kind == "vector"
    assert dataset.input_shape == (7,)
    assert dataset.num_classes is None
    assert dataset.skipped == []


@pytest.mark.parametrize(
    "indices",
    [[4, 0, 2], np.array([4, 0, 2]), torch.tensor([4, 0, 2]), [-2, 0, 2]],
    ids=["list", "numpy", "tensor", "negative"],
)
def test_subset_by_position(indices) -> None:
    dataset = _images()
    part = dataset.subset(indices)
    assert len(part) == 3
    assert torch.equal(part.data, dataset.data[[4, 0, 2]])
    assert part.labels is not None
    assert part.labels.tolist() == [1, 0, 2]
    assert part.paths == ["img4.png", "img0.png", "img2.png"]
    assert part.class_names == ["a", "b", "c"]
    assert part.skipped == ["broken.png"]
    part.validate()


def test_subset_by_mask_and_empty() -> None:
    dataset = _images()
    mask = np.array([True, False, False, True, False, False])
    assert dataset.subset(mask).paths == ["img0.png", "img3.png"]
    assert len(dataset.subset([])) == 0


def test_subset_of_unlabelled_vectors() -> None:
    dataset = ArrayDataset(torch.arange(8, dtype=torch.float32).reshape(4, 2), None, "v")
    part = dataset.subset([3])
    assert part.labels is None
    assert part.data.tolist() == [[6.0, 7.0]]


@pytest.mark.parametrize("bad", [[6], [-7], np.array([True, False]), [0.5]])
def test_subset_rejects_bad_indices(bad) -> None:
    with pytest.raises(IndexError):
        _images().subset(bad)


@pytest.mark.parametrize(
    ("data", "labels", "pattern"),
    [
        (torch.zeros(2, 3, 4, 4), None, "images must be uint8"),
        (torch.zeros(2, 2, 4, 4, dtype=torch.uint8), None, "have 2 channels"),
        (torch.zeros(2, 4, dtype=torch.float64), None, "vectors must be float32"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), None, r"shape \(2, 4, 4\)"),
        (torch.zeros(2), None, r"shape \(2,\)"),
        (torch.zeros(0, 4), None, "is empty"),
        (torch.zeros(3, 4), np.array([0, 1]), r"labels of shape \(2,\) do not match 3"),
        (torch.zeros(2, 4), np.array([0.0, 1.0]), "labels must be an int64"),
        (
            torch.tensor([[0.0, float("nan")], [float("inf"), 1.0], [1.0, 1.0]]),
            None,
            r"2 NaN/inf values in the vectors \(first in row 0\)",
        ),
    ],
    ids=[
        "float-images",
        "two-channels",
        "float64-vectors",
        "rank3",
        "rank1",
        "empty",
        "label-length",
        "float-labels",
        "nan",
    ],
)
def test_validate_rejects(data: torch.Tensor, labels, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        ArrayDataset(data, labels, "bad").validate()


def test_validate_checks_labels_against_class_names_and_paths() -> None:
    dataset = _images()
    dataset.class_names = ["a", "b"]
    with pytest.raises(DataError, match="2 class names"):
        dataset.validate()
    dataset = _images()
    dataset.paths = ["one.png"]
    with pytest.raises(DataError, match="1 paths for 6 samples"):
        dataset.validate()


def test_kind_of_an_unsupported_tensor_is_a_data_error() -> None:
    with pytest.raises(DataError, match="accepted"):
        _ = ArrayDataset(torch.zeros(2, 2, 2), None, "odd").kind
