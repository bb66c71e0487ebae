"""The in-memory dataset every loader returns.

Images are held as one ``uint8`` tensor of shape ``(N, C, H, W)`` with ``C`` in
``{1, 3}``; feature vectors as one ``float32`` tensor of shape ``(N, D)``. Keeping a
whole set in a single tensor (rather than one PIL object per sample) lets the
augmentation and training code slice batches without any per-sample Python work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from contraclust.errors import DataError

__all__ = ["ArrayDataset"]

_IMAGE_CHANNELS = (1, 3)
_ACCEPTED = "uint8 images (N, C, H, W) with C in {1, 3} or float32 vectors (N, D)"


@dataclass(repr=False)
class ArrayDataset:
    """A whole data set in memory, with optional labels.

    Args:
        data: ``uint8`` images ``(N, C, H, W)`` with ``C`` in ``{1, 3}``, or
            ``float32`` vectors ``(N, D)``.
        labels: ``int64`` array ``(N,)`` of class indices, or ``None`` when the set
            is unlabelled. Integer arrays of another dtype are converted.
        name: a short name used in logs and reports (``"mnist-test"``, a folder name).
        paths: the source file of each sample, for sets read from an image folder.
        class_names: the name of each class index, when known.
        skipped: files that could not be read and were skipped on request.

    Example:
        >>> ds = ArrayDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), None, "blank")
        >>> ds.kind, ds.input_shape, len(ds)
        ('image', (1, 8, 8), 4)
    """

    data: torch.Tensor
    labels: np.ndarray | None
    name: str
    paths: list[str] | None = None
    class_names: list[str] | None = None
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.labels is not None and not isinstance(self.labels, np.ndarray):
            self.labels = np.asarray(self.labels)
        if (
            self.labels is not None
            and self.labels.dtype != np.int64
            and np.issubdtype(self.labels.dtype, np.integer)
        ):
            self.labels = self.labels.astype(np.int64)

    @property
    def kind(self) -> Literal["image", "vector"]:
        """``"image"`` for a uint8 rank-4 tensor, ``"vector"`` for a float rank-2 one."""
        if self.data.dim() == 4 and self.data.dtype == torch.uint8:
            return "image"
        if self.data.dim() == 2 and self.data.is_floating_point():
            return "vector"
        raise DataError(
            f"dataset '{self.name}' holds a {self.data.dtype} tensor of shape "
            f"{tuple(self.data.shape)}; accepted: {_ACCEPTED}"
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample: ``(C, H, W)`` for images, ``(D,)`` for vectors."""
        return tuple(int(s) for s in self.data.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """The number of classes when labelled (from ``class_names`` if given), else None."""
        if self.labels is None:
            return None
        if self.class_names is not None:
            return len(self.class_names)
        return int(np.unique(self.labels).size)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __repr__(self) -> str:
        labelled = "unlabelled" if self.labels is None else f"{self.num_classes} classes"
        extra = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (
            f"ArrayDataset(name={self.name!r}, n={len(self)}, "
            f"sample_shape={self.input_shape}, dtype={self.data.dtype}, {labelled}{extra})"
        )

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ArrayDataset:
        """Return the samples at ``indices`` (integer positions or a boolean mask)."""
        index = np.asarray(indices.cpu().numpy() if isinstance(indices, torch.Tensor) else indices)
        n = len(self)
        if index.dtype == np.bool_:
            if index.shape != (n,):
                raise IndexError(f"boolean mask of shape {index.shape} for {n} samples")
            index = np.flatnonzero(index)
        elif index.size == 0:
            index = np.zeros(0, dtype=np.int64)
        elif not np.issubdtype(index.dtype, np.integer):
            raise IndexError(
                f"subset indices must be integers or a boolean mask, not {index.dtype}"
            )
        index = index.astype(np.int64).reshape(-1)
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"subset index out of range for a dataset of {n} samples")
        index = np.where(index < 0, index + n, index)
        return ArrayDataset(
            data=self.data[torch.from_numpy(index)],
            labels=None if self.labels is None else self.labels[index],
            name=self.name,
            paths=None if self.paths is None else [self.paths[i] for i in index],
            class_names=None if self.class_names is None else list(self.class_names),
            skipped=list(self.skipped),
        )

    def validate(self) -> None:
        """Check shapes, dtypes, finiteness and labels; raise :class:`DataError` if wrong."""
        if not isinstance(self.data, torch.Tensor):
            raise DataError(
                f"dataset '{self.name}': data must be a torch.Tensor, "
                f"not {type(self.data).__name__}"
            )
        shape = tuple(self.data.shape)
        if self.data.dim() == 4:
            if self.data.dtype != torch.uint8:
                raise DataError(
                    f"dataset '{self.name}': images must be uint8, found {self.data.dtype} "
                    f"with shape {shape}; accepted: {_ACCEPTED}"
                )
            if shape[1] not in _IMAGE_CHANNELS:
                raise DataError(
                    f"dataset '{self.name}': images of shape {shape} have {shape[1]} channels; "
                    f"accepted: {_ACCEPTED}"
                )
            if shape[2] < 1 or shape[3] < 1:
                raise DataError(f"dataset '{self.name}': images of shape {shape} are empty")
        elif self.data.dim() == 2:
            if self.data.dtype != torch.float32:
                raise DataError(
                    f"dataset '{self.name}': vectors must be float32, found {self.data.dtype}; "
                    f"accepted: {_ACCEPTED}"
                )
            if shape[1] < 1:
                raise DataError(f"dataset '{self.name}': vectors of shape {shape} have no features")
            finite = torch.isfinite(self.data)
            if not bool(finite.all()):
                bad_rows = (~finite).any(dim=1)
                first = int(torch.nonzero(bad_rows)[0, 0])
                count = int((~finite).sum())
                raise DataError(
                    f"dataset '{self.name}': {count} NaN/inf values in the vectors "
                    f"(first in row {first}); remove or impute them"
                )
        else:
            raise DataError(
                f"dataset '{self.name}': found a tensor of shape {shape} ({self.data.dtype}); "
                f"accepted: {_ACCEPTED}"
            )
        n = shape[0]
        if n < 1:
            raise DataError(f"dataset '{self.name}' is empty (0 samples)")
        if self.labels is not None:
            labels = self.labels
            if not isinstance(labels, np.ndarray) or labels.dtype != np.int64:
                raise DataError(
                    f"dataset '{self.name}': labels must be an int64 numpy array, found "
                    f"{getattr(labels, 'dtype', type(labels).__name__)}"
                )
            if labels.ndim != 1 or labels.shape[0] != n:
                raise DataError(
                    f"dataset '{self.name}': labels of shape {labels.shape} do not match "
                    f"{n} samples; give one label per sample"
                )
            if (
                self.class_names is not None
                and labels.size
                and (labels.min() < 0 or labels.max() >= len(self.class_names))
            ):
                raise DataError(
                    f"dataset '{self.name}': labels span {labels.min()}..{labels.max()} but "
                    f"there are {len(self.class_names)} class names"
                )
        if self.paths is not None and len(self.paths) != n:
            raise DataError(f"dataset '{self.name}': {len(self.paths)} paths for {n} samples")
