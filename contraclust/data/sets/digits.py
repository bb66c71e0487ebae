"""scikit-learn's 8×8 handwritten digits: bundled with scikit-learn, nothing to fetch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.registry import register_dataset

__all__ = ["DIGIT_NAMES"]

#: The class names of every handwritten-digit set (labels 0..9).
DIGIT_NAMES: tuple[str, ...] = tuple(str(digit) for digit in range(10))


@register_dataset(
    "digits",
    family="digits",
    description="scikit-learn's 1,797 8×8 handwritten digits, 10 classes (embedded; the default)",
    files=[],
    origin=None,
)
def _load_digits(files: Mapping[str, Path]) -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # pixel values are counts 0..16; map them onto the 0..255 range of other images
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0))
    return ArrayDataset(
        data=torch.from_numpy(images.astype(np.uint8)[:, None]),
        labels=np.asarray(bunch.target, dtype=np.int64),
        name="digits",
        class_names=list(DIGIT_NAMES),
    )
