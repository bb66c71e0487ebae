"""Data sets: one registry of named sets, readers for common formats, one dataset type.

Everything loads into an :class:`ArrayDataset` holding a single uint8 image tensor
``(N, C, H, W)`` or float32 vector tensor ``(N, D)``. Start with :func:`load_dataset`,
which takes a registered name (``digits``, ``mnist``, ...), an image folder, or a
``.npy``/``.npz`` file.
"""

from __future__ import annotations

from contraclust.data.dataset import ArrayDataset
from contraclust.data.formats import (
    array_to_dataset,
    load_array_file,
    load_image_folder,
    read_idx,
    read_usps_h5,
)
from contraclust.data.registry import (
    DatasetInfo,
    dataset_names,
    find_dataset_files,
    list_datasets,
    load_dataset,
    register_dataset,
    resolve_data_root,
)

# registers cifar10, cifar100(-20), stl10, tiny-imagenet and the ImageNet sets
from contraclust.data import benchmark_sets  # noqa: F401  isort: skip

__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "array_to_dataset",
    "dataset_names",
    "find_dataset_files",
    "list_datasets",
    "load_array_file",
    "load_dataset",
    "load_image_folder",
    "read_idx",
    "read_usps_h5",
    "register_dataset",
    "resolve_data_root",
]
