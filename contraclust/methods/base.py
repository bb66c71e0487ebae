"""The interface every clustering method implements.

A method is an ``nn.Module`` that owns its backbone, heads, losses and the input
statistics it normalises with, so that a saved method predicts on new data by itself.
The training loop feeds it augmented views; it returns its losses and says how it
predicts (``cluster_probs``) and what its embedding is (``embed``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from contraclust.config import ModelConfig
from contraclust.losses.self_label import SelfLabelLoss


@dataclass
class NoParams:
    """For methods without parameters of their own."""


class ClusteringMethod(nn.Module):
    """Base class: input normalisation, the training hooks and the read-outs."""

    #: Name used by ``--method`` and ``Clusterer(method=...)``.
    name: ClassVar[str] = ""
    #: Other names the method answers to (``cdc`` for ``clc``).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: One-line description shown by ``contraclust methods``.
    summary: ClassVar[str] = ""
    #: The method's own hyper-parameters (a dataclass; validated from ``RunConfig.params``).
    Params: ClassVar[type] = NoParams
    #: Number of augmented views of each sample per step.
    n_views: ClassVar[int] = 2
    #: False for methods fitted in closed form (k-means): no gradient steps.
    trainable: ClassVar[bool] = True

    def __init__(
        self,
        params: Any,
        n_clusters: int,
        input_shape: tuple[int, ...],
        model: ModelConfig,
        n_samples: int,
    ) -> None:
        super().__init__()
        self.params = params
        self.n_clusters = n_clusters
        #: Size of the training set (memory banks and dataset-level targets need it).
        self.n_samples = n_samples
        self.input_shape = tuple(input_shape)
        self.model_config = model
        channels = input_shape[0]
        self.register_buffer("input_mean", torch.zeros(channels))
        self.register_buffer("input_std", torch.ones(channels))

    # ------------------------------------------------------------------ input handling
    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @torch.no_grad()
    def set_input_stats(self, data: Tensor | Iterable[Tensor], chunk: int = 4096) -> None:
        """Per-channel (images) or per-feature (vectors) mean and std of the raw data.

        ``data`` is the whole tensor, or its batches in order (a streamed set); the
        tensor is read in batches of ``chunk``, so both give the same statistics when
        the batches are of that size.
        """
        total = torch.zeros_like(self.input_mean, dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        count = 0
        if isinstance(data, Tensor):
            tensor = data
            data = (tensor[start : start + chunk] for start in range(0, len(tensor), chunk))
        for batch in data:
            x = self.to_unit(batch, standardize=False).double()
            dims = [0, 2, 3] if self.is_image else [0]
            total += x.sum(dim=dims).cpu()
            total_sq += (x * x).sum(dim=dims).cpu()
            count += x.numel() // x.shape[1]
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        self.input_mean.copy_(mean.float())
        self.input_std.copy_(std.float().clamp_min(1e-3))

    def to_unit(self, raw: Tensor, standardize: bool = True) -> Tensor:
        """Raw stored data to the space augmentations work in.

        Images: uint8 -> float in [0, 1]. Vectors: standardised per feature (the noise
        of vector augmentations is then relative to each feature's spread).
        """
        if self.is_image:
            return raw.float().div_(255.0)
        x = raw.float()
        if standardize:
            x = (x - self.input_mean.to(x.device)) / self.input_std.to(x.device)
        return x

    def normalize(self, x: Tensor) -> Tensor:
        """Unit-space batch to network input (per-channel standardisation for images)."""
        if self.is_image:
            mean = self.input_mean.to(x.device, x.dtype)[None, :, None, None]
            std = self.input_std.to(x.device, x.dtype)[None, :, None, None]
            return (x - mean) / std
        return x

    def prepare(self, raw: Tensor) -> Tensor:
        """Raw data to network input without augmentation (the clean view)."""
        return self.normalize(self.to_unit(raw))

    # ------------------------------------------------------------------ hooks
    def on_fit_start(
        self, encode: Callable[[Callable[[Tensor], Tensor]], Tensor], resumed: bool
    ) -> None:
        """Called before the first step of a run, new (``resumed=False``) or resumed.

        ``encode(fn)`` applies ``fn`` to the clean, normalised training data in batches
        on the training device and returns the concatenated outputs (in dataset order,
        on the CPU). A method that needs passes over the data (k-means initialisation,
        a dataset-level target) may keep ``encode`` and call it during training.
        """

    def use_sample_views(self, sample_views: Callable[[Tensor], Tensor]) -> None:
        """Called before ``on_fit_start`` of a trained method with a callable that
        returns one augmented, normalised view of the training samples at the given
        indices (positions in the training set), on the training device, drawn with
        the loop's augmentation and generator. For methods whose loss needs samples
        other than the batch's (SCAN's neighbours); the default ignores it.
        """

    def fit_closed_form(self, data: Tensor) -> None:
        """Fit a non-trainable method on the unit-space data (N, ...)."""
        raise NotImplementedError

    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        """Losses for one batch: ``views`` are the augmented views, ``clean`` the
        un-augmented batch, all normalised network inputs; ``index`` holds each
        sample's position in the training set (for memory banks). Must contain
        ``loss``; other entries are logged (detach them)."""
        raise NotImplementedError

    def self_label_loss(
        self, views: list[Tensor], clean: Tensor, loss_fn: SelfLabelLoss
    ) -> dict[str, Tensor]:
        """Losses of a self-labelling step (``train.self_label_epochs``).

        The clean batch's cluster probabilities, without gradient, are the targets of
        the views' probabilities (all views in one pass, so batch norm sees them
        together). ``confident`` logs the share of the batch that has a target.
        """
        with torch.no_grad():
            target = self.cluster_probs(clean).float()
        probs = self.cluster_probs(torch.cat(views, dim=0)).float()
        loss = loss_fn(target, probs.clamp_min(torch.finfo(probs.dtype).tiny).log())
        mask, _ = loss_fn.confident(target)
        return {"loss": loss, "confident": mask.float().mean()}

    # ------------------------------------------------------------------ read-outs
    def cluster_probs(self, x: Tensor) -> Tensor:
        """B x K cluster probabilities of a normalised batch (the default read-out)."""
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """B x d embedding of a normalised batch (used by the k-means read-out)."""
        raise NotImplementedError


_REGISTRY: dict[str, type[ClusteringMethod]] = {}


def register_method(cls: type[ClusteringMethod]) -> type[ClusteringMethod]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    for name in (cls.name, *cls.aliases):
        _REGISTRY[name] = cls
    return cls


def method_names() -> list[str]:
    return sorted(_REGISTRY)


def get_method(name: str) -> type[ClusteringMethod]:
    from contraclust.errors import ConfigError

    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown method '{name}'; valid methods: {', '.join(method_names())}"
        ) from None
