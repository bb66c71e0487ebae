"""Tests of scikit-learn's digits (``data/sets/digits.py``), the embedded set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from contraclust.data import (
    load_dataset,
)


def test_digits_is_embedded(no_data_env, tmp_path: Path) -> None:
    dataset = load_dataset("digits", root=tmp_path / "unused")
    assert dataset.name == "digits"
    assert dataset.input_shape == (1, 8, 8)
    assert len(dataset) == 1797
    assert dataset.data.dtype == torch.uint8
    assert int(dataset.data.max()) == 255
    assert dataset.labels is not None
    assert np.bincount(dataset.labels).tolist() == [
        178,
        182,
        177,
        183,
        181,
        182,
        181,
        179,
        174,
        180,
    ]
    from sklearn.datasets import load_digits

    expected = np.rint(load_digits().images[0] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(dataset.data[0, 0].numpy(), expected)
