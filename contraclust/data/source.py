"""Where the training loop gets its batches: a tensor in memory, or files streamed.

Both sources answer the same three questions, so the loop, the prediction and the
methods' passes over the data (k-means initialisation, DEC targets) never ask which
one they have:

* :meth:`batches` — the raw samples in dataset order, for read-outs and data passes;
* :meth:`train_batches` — the samples of a given permutation, cut into the loop's
  steps, with their indices;
* :meth:`materialize` — the whole set as one tensor, for methods fitted in closed form.

Whether a run streams is ``data.stream``: ``on``, ``off`` or ``auto``. ``auto`` streams
an image folder or an image-folder set (``tiny-imagenet``, ``imagenet10``,
``imagenet-dogs``, ``imagenet``) when its decoded images would take more than
:data:`MEMORY_BUDGET` (2 GiB); smaller ones are decoded into memory by the same
worker processes. Sets stored as arrays (MNIST, CIFAR, ...) are always in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from contraclust.config import DataConfig
from contraclust.data.dataset import ArrayDataset
from contraclust.data.registry import get_dataset_info, load_dataset
from contraclust.data.streaming import (
    StreamedImageDataset,
    collate_decoded,
    default_workers,
)
from contraclust.errors import ConfigError, DataError

__all__ = [
    "MEMORY_BUDGET",
    "STREAM_MODES",
    "BatchSource",
    "InMemorySource",
    "StreamedSource",
    "load_training_data",
    "make_source",
]

logger = logging.getLogger(__name__)

#: ``data.stream`` values.
STREAM_MODES = ("auto", "on", "off")
#: With ``data.stream: auto``, image sets whose decoded pixels exceed this are streamed.
MEMORY_BUDGET = 2 * 2**30
#: Data in memory is copied to a CUDA device when it is smaller than this.
_GPU_COPY_LIMIT = 4 * 2**30


class BatchSource(Protocol):
    """What prediction and the data passes need from a source."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def __len__(self) -> int: ...

    def batches(self, batch_size: int) -> Iterator[Tensor]: ...


class InMemorySource:
    """A tensor in memory (on the training device when it fits there)."""

    def __init__(self, data: Tensor) -> None:
        self.data = data

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[1:])

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        for start in range(0, len(self), batch_size):
            yield self.data[start : start + batch_size]

    def train_batches(
        self, perm: Tensor, global_batch: int, steps: int, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        for step in range(steps):
            idx = perm[step * global_batch : (step + 1) * global_batch][rank::world]
            yield idx, self.data[idx.to(self.data.device)]

    def materialize(self) -> Tensor:
        return self.data


class _StepSampler(torch.utils.data.Sampler[list[int]]):
    """The index lists of one epoch's steps, cut from the loop's permutation.

    Yielding lists lazily keeps one step of Python integers alive, not an epoch's.
    """

    def __init__(self, perm: Tensor, global_batch: int, steps: int, rank: int, world: int):
        self.perm, self.global_batch, self.steps = perm, global_batch, steps
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.steps):
            part = self.perm[step * self.global_batch : (step + 1) * self.global_batch]
            yield part[self.rank :: self.world].tolist()


class StreamedSource:
    """Files decoded by DataLoader worker processes, batch by batch.

    A file that passed the pre-scan but fails to decode stops the run with a
    :class:`DataError` naming it, unless ``skip_bad``: it is then left out of the
    training batches it falls in, kept as a blank image in the read-outs (so the
    assignments still have one row per listed file) and added to ``skipped``.
    """

    def __init__(
        self,
        dataset: StreamedImageDataset,
        workers: int | None = None,
        skip_bad: bool = False,
        pin_memory: bool = False,
    ) -> None:
        self.dataset = dataset
        self.workers = default_workers() if workers is None else workers
        self.skip_bad = skip_bad
        self.pin_memory = pin_memory

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.dataset.input_shape

    def __len__(self) -> int:
        return len(self.dataset)

    def _loader(self, **kwargs: object) -> torch.utils.data.DataLoader:
        # An own generator: a DataLoader draws its workers' base seed from it, and would
        # otherwise draw from torch's global one, which the methods seed from (decoding
        # needs no randomness, so a fixed seed changes nothing else).
        return torch.utils.data.DataLoader(
            self.dataset,
            num_workers=self.workers,
            collate_fn=collate_decoded,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(0),
            **kwargs,  # type: ignore[arg-type]
        )

    def _failed(self, failures: list[tuple[int, str]]) -> None:
        if not failures:
            return
        index, reason = failures[0]
        if not self.skip_bad:
            raise DataError(
                f"cannot decode {self.dataset.base / self.dataset.path(index)} ({reason}); "
                "fix or remove it, or pass --skip-bad-images to skip unreadable files"
            )
        for index, reason in failures:
            path = self.dataset.path(index)
            if path not in self.dataset.skipped:
                logger.warning("skipped %s: %s", self.dataset.base / path, reason)
                self.dataset.skipped.append(path)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        for images, _, failures in self._loader(batch_size=batch_size, shuffle=False):
            self._failed(failures)
            yield images

    def train_batches(
        self, perm: Tensor, global_batch: int, steps: int, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        sampler = _StepSampler(perm, global_batch, steps, rank, world)
        for images, index, failures in self._loader(batch_sampler=sampler):
            self._failed(failures)
            if failures:
                bad = torch.tensor([i for i, _ in failures])
                keep = ~torch.isin(index, bad)
                images, index = images[keep], index[keep]
                if len(index) < 2:  # batch statistics need two samples
                    continue
            yield index, images

    def materialize(self) -> Tensor:
        """Every image in one tensor: only for methods that need the whole set at once."""
        out = torch.empty((len(self), *self.input_shape), dtype=torch.uint8)
        start = 0
        for images in self.batches(256):
            out[start : start + len(images)] = images
            start += len(images)
        return out


def make_source(
    dataset: ArrayDataset | StreamedImageDataset, device: torch.device, data: DataConfig
) -> InMemorySource | StreamedSource:
    """The source the loop trains from, for a loaded or streamed ``dataset``."""
    if isinstance(dataset, StreamedImageDataset):
        return StreamedSource(
            dataset, data.workers, data.skip_bad_images, pin_memory=device.type == "cuda"
        )
    tensor = dataset.data
    if device.type == "cuda" and tensor.numel() * tensor.element_size() < _GPU_COPY_LIMIT:
        tensor = tensor.to(device)
    return InMemorySource(tensor)


def check_data_config(data: DataConfig) -> None:
    """Range checks of the streaming options (each error names the option)."""
    if data.stream not in STREAM_MODES:
        raise ConfigError(f"unknown data.stream '{data.stream}'; valid: {', '.join(STREAM_MODES)}")
    if data.workers is not None and data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {data.workers}")


def _streamable(name: str) -> bool:
    path = Path(name).expanduser()
    try:
        info = get_dataset_info(name)
    except DataError:
        return path.is_dir()
    return info.streamable


def load_training_data(data: DataConfig) -> ArrayDataset | StreamedImageDataset:
    """Load ``data`` into memory or open it for streaming, as ``data.stream`` says."""
    check_data_config(data)
    kwargs = dict(
        root=data.root,
        image_size=data.image_size,
        skip_bad=data.skip_bad_images,
        split=data.split,
        label_column=data.label_column,
    )
    if data.stream == "off" or (data.stream == "auto" and not _streamable(data.name)):
        return load_dataset(data.name, **kwargs)  # type: ignore[arg-type]
    if not _streamable(data.name):
        raise ConfigError(
            f"'{data.name}' is read from array files into memory and cannot be streamed; "
            "streaming (--stream on) applies to image folders and tiny-imagenet, "
            "imagenet10, imagenet-dogs, imagenet; use --stream auto or off"
        )
    streamed = load_dataset(data.name, stream=True, workers=data.workers, **kwargs)  # type: ignore[arg-type]
    assert isinstance(streamed, StreamedImageDataset)
    size = streamed.decoded_bytes
    if data.stream == "on" or size > MEMORY_BUDGET:
        logger.info(
            "streaming %s: %d files, %.2f GiB decoded (budget %.0f GiB)",
            streamed.name,
            len(streamed),
            size / 2**30,
            MEMORY_BUDGET / 2**30,
        )
        return streamed
    return _decode_into_memory(streamed, data)


def _decode_into_memory(streamed: StreamedImageDataset, data: DataConfig) -> ArrayDataset:
    """Decode a small streamed set into one tensor with the same worker processes."""
    source = StreamedSource(streamed, data.workers, skip_bad=data.skip_bad_images)
    before = set(streamed.skipped)
    images = source.materialize()
    paths = streamed.paths
    labels = streamed.labels
    late = set(streamed.skipped) - before
    if late:  # files that failed only at decoding: dropped, as the in-memory loader does
        keep = np.array([path not in late for path in paths])
        images = images[torch.from_numpy(keep)]
        paths = [path for path in paths if path not in late]
        labels = None if labels is None else labels[keep]
    dataset = ArrayDataset(
        data=images,
        labels=labels,
        name=streamed.name,
        paths=paths,
        class_names=streamed.class_names,
        skipped=sorted(streamed.skipped),
    )
    dataset.validate()
    return dataset
