"""USPS: 16×16 handwritten digits, in the HDF5 copy DEC/IDEC-style code reads.

USPS has no canonical download address; the HDF5 copy is on Kaggle (an account is
needed), so it is fetched by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import ManualSource
from contraclust.data.readers.arrays import as_int_labels
from contraclust.data.readers.common import first_line, require_file
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, FileLayout, register_dataset
from contraclust.data.sets.digits import DIGIT_NAMES
from contraclust.errors import DataError

__all__ = ["USPS_SOURCE", "read_usps_h5"]

USPS_SOURCE = ManualSource(
    "USPS has no canonical download address; get usps.h5 (the HDF5 copy used by "
    "DEC/IDEC-style code) from https://www.kaggle.com/datasets/bistaumanga/usps-dataset "
    "(Kaggle account needed)"
)


def read_usps_h5(path: str | Path) -> dict[str, np.ndarray]:
    """Read the USPS digits from the HDF5 layout used by DEC/IDEC-style code.

    The file holds ``train/data`` (N, 256) float32 in [0, 1], ``train/target`` (N,),
    and the same under ``test/``; each row is a 16×16 image in row-major order.

    Returns:
        ``train_x`` and ``test_x`` as uint8 ``(N, 1, 16, 16)`` images (values ×255,
        rounded), ``train_y`` and ``test_y`` as int64 ``(N,)`` labels.

    Raises:
        DataError: if the file is missing, not HDF5, or lacks or misshapes a key.
    """
    import h5py

    path = Path(path)
    require_file(path)
    try:
        handle = h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(
            f"{path} is not a readable HDF5 file ({first_line(exc)}); download usps.h5 again"
        ) from None
    try:
        with handle:
            return _read_usps_splits(handle, path)
    except DataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        # h5py reports damaged metadata from many places, with these types
        raise DataError(
            f"{path} is damaged ({type(exc).__name__}: {first_line(exc)}); download usps.h5 again"
        ) from None


def _read_usps_splits(handle: Any, path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        for key in ("data", "target"):
            if f"{split}/{key}" not in handle:
                raise DataError(
                    f"{path} has no '{split}/{key}' dataset; expected the USPS layout "
                    "train/data, train/target, test/data, test/target"
                )
        try:
            data = np.asarray(handle[f"{split}/data"][()])
            target = np.asarray(handle[f"{split}/target"][()])
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: cannot read '{split}' ({exc}); download it again") from exc
        if data.ndim != 2 or data.shape[1] != 256 or data.dtype.kind not in "fiu":
            raise DataError(
                f"{path}: '{split}/data' has shape {data.shape} ({data.dtype}); "
                "expected (N, 256) numbers, one 16×16 image per row"
            )
        values = data.astype(np.float32, copy=False)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise DataError(
                f"{path}: '{split}/data' holds values outside [0, 1] or NaN; "
                "expected the USPS copy scaled to [0, 1]"
            )
        labels = as_int_labels(target, f"{path}: '{split}/target'")
        if labels.shape[0] != data.shape[0]:
            raise DataError(
                f"{path}: '{split}/target' has {labels.shape[0]} labels for {data.shape[0]} images"
            )
        images = np.rint(values * 255.0).astype(np.uint8).reshape(-1, 1, 16, 16)
        out[f"{split}_x"] = images
        out[f"{split}_y"] = labels
    return out


@register_dataset(
    "usps",
    family="usps",
    description="USPS, 16×16 handwritten digits, 10 classes; split all (default): "
    "train + test, 9,298; train: 7,291; test: 2,007",
    files=["usps.h5"],
    origin=USPS_SOURCE,
    layouts=[FileLayout("HDF5", {"train": ("usps.h5",), "test": ("usps.h5",)})],
    default_split=ALL_SPLIT,
)
def _load_usps(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    arrays = read_usps_h5(files["usps.h5"])
    parts = ["train", "test"] if request.split == ALL_SPLIT else [request.split]
    images = np.concatenate([arrays[f"{part}_x"] for part in parts])
    labels = np.concatenate([arrays[f"{part}_y"] for part in parts])
    return ArrayDataset(
        data=torch.from_numpy(images),
        labels=labels,
        name="usps",
        class_names=list(DIGIT_NAMES),
    )
