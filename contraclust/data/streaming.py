"""Image folders read from disk batch by batch, for sets larger than memory.

:class:`StreamedImageDataset` holds only the list of files (packed into one byte
buffer), their labels and how to decode them; each image is decoded and resized to a
``uint8`` ``(C, H, W)`` tensor when a :class:`torch.utils.data.DataLoader` worker asks
for it. Memory therefore grows with the number of files only by the file list, never
by the decoded pixels. The images come out exactly as :func:`~contraclust.data.load_image_folder`
decodes them (same colour and size rules, same decoder), so a streamed run and an
in-memory run of the same folder see the same pixels.

Before anything is decoded, one pre-scan pass (in the same worker processes) opens
each file's header and runs PIL's ``verify``: it finds the colour mode and sizes the
decoding needs, and the unreadable files, which are skipped and listed (``skip_bad``)
or stop the run with one error naming them. A file that passes the pre-scan but still
fails to decode later (a JPEG truncated in its pixel data, which ``verify`` does not
read) is handled when it is met: see :class:`~contraclust.data.source.StreamedSource`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.common import reason
from contraclust.data.readers.images import (
    DEFAULT_IMAGE_SIZE,
    ImageFailure,
    decode_image,
    fail_unreadable,
    folder_labels,
    list_image_folder,
    probe_image,
)
from contraclust.errors import DataError

__all__ = ["PathTable", "StreamedImageDataset", "default_workers", "stream_image_files"]

logger = logging.getLogger(__name__)

#: Files per pre-scan batch handed to one worker.
_SCAN_BATCH = 256


def default_workers() -> int:
    """Decoding processes when ``data.workers`` is not set: min(4, CPU count)."""
    return min(4, os.cpu_count() or 1)


class PathTable:
    """Many strings in one byte buffer plus offsets.

    A list of a million ``str`` objects costs ~100 bytes each, and DataLoader worker
    processes forked from the main one copy those pages as soon as they touch the
    objects' reference counts; two NumPy arrays are never written to, so the workers
    share them with the main process.
    """

    def __init__(self, strings: Sequence[str]) -> None:
        encoded = [text.encode("utf-8") for text in strings]
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(item) for item in encoded], out=self._offsets[1:])
        self._buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: int) -> str:
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        return self._buffer[start:end].tobytes().decode("utf-8")

    def tolist(self) -> list[str]:
        return [self[i] for i in range(len(self))]

    @property
    def nbytes(self) -> int:
        return int(self._offsets.nbytes + self._buffer.nbytes)


@dataclass(frozen=True)
class DecodeRule:
    """How every file of a set is decoded (see
    :func:`~contraclust.data.readers.images.decode_image`)."""

    colour: bool
    #: The common (width, height) when all images share it and no resize is asked for.
    common_size: tuple[int, int] | None
    #: Square side to resize (shorter side) and centre-crop to, or None.
    crop_to: int | None

    @property
    def shape(self) -> tuple[int, int, int]:
        channels = 3 if self.colour else 1
        if self.crop_to is not None:
            return channels, self.crop_to, self.crop_to
        assert self.common_size is not None
        return channels, self.common_size[1], self.common_size[0]


class StreamedImageDataset(torch.utils.data.Dataset):
    """Image files decoded one by one on demand; the set itself holds no pixels.

    ``dataset[i]`` returns ``(image, i, reason)``: the ``uint8`` ``(C, H, W)`` tensor
    and an empty ``reason``, or a blank image and why the file could not be decoded
    (the caller decides whether that stops the run). It offers the attributes of
    :class:`~contraclust.data.ArrayDataset` the training code reads (``kind``,
    ``input_shape``, ``labels``, ``paths``, ``class_names``, ``skipped``, ``name``).

    Args:
        base: folder the ``paths`` are relative to.
        paths: one relative POSIX path per sample (reported in ``assignments.csv``).
        labels: ``int64`` labels ``(N,)`` or None.
        name: short name for logs and reports.
        rule: how to decode (colour, size).
        class_names: the name of each label, when known.
        skipped: files left out by the pre-scan.
    """

    kind: Literal["image"] = "image"

    def __init__(
        self,
        base: Path,
        paths: Sequence[str] | PathTable,
        labels: np.ndarray | None,
        name: str,
        rule: DecodeRule,
        class_names: Sequence[str] | None = None,
        skipped: Sequence[str] = (),
    ) -> None:
        self.base = Path(base)
        self._paths = paths if isinstance(paths, PathTable) else PathTable(paths)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.name = name
        self.rule = rule
        self.class_names = None if class_names is None else list(class_names)
        self.skipped = list(skipped)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.rule.shape

    @property
    def paths(self) -> list[str]:
        """Every sample's path, built on demand (the set keeps them packed)."""
        return self._paths.tolist()

    num_classes = ArrayDataset.num_classes

    @property
    def decoded_bytes(self) -> int:
        """Memory the whole set would take decoded into one tensor."""
        return len(self) * int(np.prod(self.input_shape))

    def path(self, index: int) -> str:
        return self._paths[index]

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        file = self.base / self._paths[index]
        rule = self.rule
        try:
            array = decode_image(file, rule.colour, rule.common_size, rule.crop_to)
        except Image.DecompressionBombError:
            return torch.zeros(self.input_shape, dtype=torch.uint8), index, "too large to decode"
        except Exception as exc:  # PIL's decoders raise many types; all mean unreadable
            return torch.zeros(self.input_shape, dtype=torch.uint8), index, reason(exc)
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # a view of PIL's buffer
            array = array.copy()
        return torch.from_numpy(array), index, ""

    def __repr__(self) -> str:
        labelled = "unlabelled" if self.labels is None else f"{self.num_classes} classes"
        return (
            f"StreamedImageDataset(name={self.name!r}, n={len(self)}, "
            f"sample_shape={self.input_shape}, {labelled}, base={str(self.base)!r})"
        )

    def validate(self) -> None:
        """Check the sizes that can be checked without decoding; raise :class:`DataError`."""
        n = len(self)
        if n < 1:
            raise DataError(f"dataset '{self.name}' is empty (0 samples)")
        if self.labels is not None and self.labels.shape != (n,):
            raise DataError(
                f"dataset '{self.name}': labels of shape {self.labels.shape} do not match {n} files"
            )


# --------------------------------------------------------------------------- pre-scan


class _HeaderScan(torch.utils.data.Dataset):
    """One pre-scan item per file: colour and size from the header, or a failure."""

    def __init__(self, base: Path, paths: PathTable) -> None:
        self.base = base
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, bool, tuple[int, int], str]:
        file = self.base / self.paths[index]
        try:
            if file.stat().st_size == 0:
                return index, False, (0, 0), "empty file"
            probe = probe_image(file)
            with Image.open(file) as image:
                image.verify()
        except Image.DecompressionBombError:
            return index, False, (0, 0), "too large to decode"
        except Exception as exc:  # PIL's decoders raise many types; all mean unreadable
            return index, False, (0, 0), reason(exc)
        return index, probe.colour, probe.size, ""


@dataclass
class _ScanSummary:
    colour: bool
    sizes: set[tuple[int, int]]
    failures: list[tuple[int, str]]


def _summarise(items: list[tuple[int, bool, tuple[int, int], str]]) -> _ScanSummary:
    """Reduce a batch of header scans in the worker: only what the decoding needs."""
    good = [item for item in items if not item[3]]
    return _ScanSummary(
        colour=any(item[1] for item in good),
        sizes={item[2] for item in good},
        failures=[(item[0], item[3]) for item in items if item[3]],
    )


def _scan_headers(base: Path, paths: PathTable, workers: int) -> _ScanSummary:
    loader = torch.utils.data.DataLoader(
        _HeaderScan(base, paths),
        batch_size=_SCAN_BATCH,
        num_workers=workers,
        collate_fn=_summarise,
        generator=torch.Generator().manual_seed(0),  # leaves torch's global generator alone
    )
    total = _ScanSummary(False, set(), [])
    for part in loader:
        total.colour = total.colour or part.colour
        if len(total.sizes) < 2:  # only "one size or several" matters
            total.sizes |= part.sizes
        total.failures.extend(part.failures)
    return total


def stream_image_files(
    base: Path,
    paths: Sequence[str],
    labels: np.ndarray | None,
    *,
    name: str,
    image_size: int | None,
    skip_bad: bool,
    workers: int | None = None,
    class_names: Sequence[str] | None = None,
    labels_from_folders: bool = False,
    size_when_mixed: int = DEFAULT_IMAGE_SIZE,
) -> StreamedImageDataset:
    """Pre-scan ``base/paths`` and return the streamed set of the readable ones.

    Args:
        base: folder the paths are relative to (also named in error messages).
        paths: relative POSIX paths of the image files.
        labels: one label per path, or None.
        name: the set's name.
        image_size: square side to resize to; None keeps a size all images share,
            else ``size_when_mixed`` is used.
        skip_bad: skip unreadable files (listed in ``skipped``) instead of raising.
        workers: pre-scan processes (None: :func:`default_workers`; 0: this process).
        class_names: names of the labels.
        labels_from_folders: take labels from first-level sub-folders as
            :func:`~contraclust.data.load_image_folder` does (``labels`` must be None).

    Raises:
        DataError: naming the unreadable files (unless ``skip_bad``), or when no file
            can be read.
    """
    table = PathTable(paths)
    scan = _scan_headers(base, table, default_workers() if workers is None else workers)
    failures = [ImageFailure(table[index], reason) for index, reason in scan.failures]
    if failures and not skip_bad:
        fail_unreadable(base, failures)
    if len(failures) == len(table):
        raise DataError(
            f"none of the {len(table)} image file(s) in {base} could be read "
            f"(first: {failures[0].relpath}, {failures[0].reason})"
        )
    if failures:
        logger.warning("%s: skipped %d unreadable image file(s)", base, len(failures))
        bad = {index for index, _ in scan.failures}
        keep = np.array([i not in bad for i in range(len(table))])
        kept = [table[i] for i in np.flatnonzero(keep)]
        labels = None if labels is None else np.asarray(labels)[keep]
        table = PathTable(kept)
        del kept
    crop_to = image_size
    if crop_to is None and len(scan.sizes) > 1:
        crop_to = size_when_mixed
        logger.info("%s: images differ in size; resizing to %d×%d", base, crop_to, crop_to)
    common = next(iter(scan.sizes)) if len(scan.sizes) == 1 else None
    if labels_from_folders:
        labels, class_names = folder_labels(base, table.tolist())
    return StreamedImageDataset(
        base,
        table,
        labels,
        name=name,
        rule=DecodeRule(colour=scan.colour, common_size=common, crop_to=crop_to),
        class_names=class_names,
        skipped=sorted(failure.relpath for failure in failures),
    )


def stream_image_folder(
    path: str | Path,
    image_size: int | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
) -> StreamedImageDataset:
    """The streamed counterpart of :func:`~contraclust.data.load_image_folder`.

    Same files, labels (first-level sub-folders), colour and size rules; nothing is
    decoded until a batch is asked for.
    """
    root = Path(path)
    relpaths = list_image_folder(root, image_size)
    return stream_image_files(
        root,
        relpaths,
        None,
        name=root.resolve().name or str(root),
        image_size=image_size,
        skip_bad=skip_bad,
        workers=workers,
        labels_from_folders=True,
    )


def collate_decoded(
    items: list[tuple[torch.Tensor, int, str]],
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
    """Batch of ``(images, indices, failures)`` from :class:`StreamedImageDataset` items."""
    images = torch.stack([item[0] for item in items])
    index = torch.tensor([item[1] for item in items], dtype=torch.int64)
    failures = [(item[1], item[2]) for item in items if item[2]]
    return images, index, failures
