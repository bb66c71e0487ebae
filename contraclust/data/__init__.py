"""Data sets: one registry of named sets, readers for common formats, one dataset type.

Everything loads into an :class:`ArrayDataset` holding a single uint8 image tensor
``(N, C, H, W)`` or float32 vector tensor ``(N, D)``. Start with :func:`load_dataset`,
which takes a registered name (``digits``, ``mnist``, ...), an image folder, or a
``.npy``/``.npz`` file.

Layout: :mod:`~contraclust.data.registry` (naming and finding sets),
:mod:`~contraclust.data.sets` (one module per family: registration, reader, origin),
:mod:`~contraclust.data.readers` (generic readers), :mod:`~contraclust.data.download`
(transfer, verify, unpack), :mod:`~contraclust.data.origins` (remote files and
checksums), and the training-side modules (``source``, ``streaming``, ``augment``,
``corruptions``, ``features``).
"""

from __future__ import annotations

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.arrays import array_to_dataset, load_array_file
from contraclust.data.readers.idx import read_idx
from contraclust.data.readers.images import load_image_folder
from contraclust.data.registry import (
    DatasetInfo,
    dataset_names,
    find_dataset_files,
    list_datasets,
    load_dataset,
    register_dataset,
    resolve_data_root,
)
from contraclust.data.sets.usps import read_usps_h5

# every family module registers its sets on import
from contraclust.data import sets  # noqa: F401  isort: skip

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
