"""Data sets made of class folders: one folder of images per class, decoded or streamed.

The ImageNet-derived sets (Tiny ImageNet, the ImageNet subsets, ImageNet itself) are
folders of image files; these helpers join several folders into one labelled set,
decoded into memory or listed for streaming.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.images import (
    DEFAULT_IMAGE_SIZE,
    list_image_folder,
    load_image_folder,
    resize_images,
)
from contraclust.data.registry import DatasetRequest
from contraclust.data.streaming import StreamedImageDataset, stream_image_files

__all__ = ["class_folders_dataset", "stack_parts", "streamed_parts", "subfolders"]

logger = logging.getLogger(__name__)


def stack_parts(
    parts: Sequence[ArrayDataset], labels: Sequence[int | np.ndarray], prefixes: Sequence[str]
) -> tuple[torch.Tensor, np.ndarray, list[str], list[str]]:
    """Join decoded folders: one channel count and size, labels, and data-root paths."""
    channels = max(int(part.data.shape[1]) for part in parts)
    sizes = {tuple(part.data.shape[2:]) for part in parts}
    tensors = []
    for part in parts:
        data = part.data
        if data.shape[1] != channels:
            data = data.expand(-1, channels, -1, -1)
        if len(sizes) > 1:
            data = resize_images(data, DEFAULT_IMAGE_SIZE)
        tensors.append(data)
    if len(sizes) > 1:
        logger.info("images differ in size across folders; resized to %d", DEFAULT_IMAGE_SIZE)
    label_array = np.concatenate(
        [
            np.broadcast_to(np.asarray(label, dtype=np.int64), (len(part),))
            for part, label in zip(parts, labels, strict=True)
        ]
    )
    paths = [
        f"{prefix}/{relpath}"
        for part, prefix in zip(parts, prefixes, strict=True)
        for relpath in (part.paths or [])
    ]
    skipped = [
        f"{prefix}/{relpath}"
        for part, prefix in zip(parts, prefixes, strict=True)
        for relpath in part.skipped
    ]
    return torch.cat(tensors), label_array, paths, skipped


def streamed_parts(
    base: Path,
    prefixes: Sequence[str],
    labels: Sequence[int | np.ndarray],
    class_names: Sequence[str],
    request: DatasetRequest,
    image_size: int | None,
) -> StreamedImageDataset:
    """Folders ``base/prefix`` listed (not decoded) into one streamed set."""
    paths: list[str] = []
    parts: list[np.ndarray] = []
    for prefix, label in zip(prefixes, labels, strict=True):
        relpaths = list_image_folder(base / prefix)
        paths.extend(f"{prefix}/{relpath}" for relpath in relpaths)
        parts.append(np.broadcast_to(np.asarray(label, dtype=np.int64), (len(relpaths),)))
    return stream_image_files(
        base,
        paths,
        np.concatenate(parts),
        name="",
        image_size=image_size,
        skip_bad=request.skip_bad,
        workers=request.workers,
        class_names=class_names,
    )


def class_folders_dataset(
    folders: Sequence[Path],
    prefixes: Sequence[str],
    labels: Sequence[int],
    class_names: Sequence[str],
    request: DatasetRequest,
) -> ArrayDataset | StreamedImageDataset:
    """One class per folder, every image decoded and resized (default 64×64)."""
    size = request.image_size or DEFAULT_IMAGE_SIZE
    if request.stream:
        base = folders[0]
        for _ in prefixes[0].split("/"):
            base = base.parent
        return streamed_parts(base, prefixes, labels, class_names, request, size)
    parts = [
        load_image_folder(folder, image_size=size, skip_bad=request.skip_bad) for folder in folders
    ]
    data, label_array, paths, skipped = stack_parts(parts, labels, prefixes)
    return ArrayDataset(
        data=data,
        labels=label_array,
        name="",
        paths=paths,
        class_names=list(class_names),
        skipped=skipped,
    )


def subfolders(folder: Path) -> list[str]:
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    )
