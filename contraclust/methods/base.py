"""The interface every clustering method implements.

A method is an ``nn.Module`` that owns its backbone, heads, losses and the input
statistics it normalises with, so that a saved method predicts on new data by itself.
The base class builds the backbone (``self.backbone``, ``self.feature_dim``); a method
adds its heads and losses in :meth:`ClusteringMethod.build`, returns its losses from
``training_loss`` and says how it predicts (``cluster_probs``) and what its embedding
is (``embed``).

Lifecycle. The trainer owns the step and epoch counters and calls, in this order::

    start_fit(encode, steps_per_epoch, resumed, epochs) -> on_fit_start(encode, resumed)
    for each epoch e of the method's training (0-based):
        on_epoch_start(e)
        for each step: on_step(step, e), then training_loss(...)   (step: global, 0-based)
        on_epoch_end(e)

``step`` counts the steps since the start of the run (``e * steps_per_epoch`` + the
step within the epoch), so a resumed run calls the hooks with the numbers an
uninterrupted run would have used; a run resumed inside epoch ``e`` calls
``on_epoch_start(e)`` again before its remaining steps. A hook should therefore set
state from its arguments rather than count calls, and keep in buffers what must
survive a resume. The hooks run outside the data-parallel wrapper, on every process,
with the method in training mode; the self-labelling epochs that may follow
(``train.self_label_epochs``) replace the method's losses and call none of them.

Every schedule is given in epochs (a fraction allowed, or ``"P%"``: a share of the
run's epochs, see :func:`schedule_epochs`) and turned into a step by
:meth:`ClusteringMethod.step_at`; a method whose schedule cannot start within the
run's epochs refuses it in :meth:`ClusteringMethod.check_schedule`. For example, a
head trained only from epoch ``start_epoch`` on::

    def on_step(self, step: int, epoch: int) -> None:
        self.head_on = step >= self.step_at(self.params.start_epoch)

    @classmethod
    def check_schedule(cls, params, epochs: int) -> None:
        if params.start_epoch >= epochs:
            raise ConfigError(late_schedule("x", "start_epoch", params.start_epoch, epochs))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from contraclust.checks import check_choice
from contraclust.config import KMEANS_SPACES, READOUTS, ModelConfig, from_dict
from contraclust.errors import ConfigError
from contraclust.losses.self_label import SelfLabelLoss
from contraclust.models import build_backbone

#: ``encode(fn)``: ``fn`` applied to the clean, normalised training data in batches on
#: the training device; the outputs concatenated in dataset order, on the CPU.
Encode = Callable[[Callable[[Tensor], Tensor]], Tensor]


def late_schedule(method: str, setting: str, value: float, epochs: int, note: str = "") -> str:
    """The one-line refusal of a schedule that does not start within ``epochs``;
    ``note`` replaces "is not reached within" where that would not say it."""
    return (
        f"{method}: {setting}={value:g} {note or 'is not reached within'} epochs={epochs}; "
        f"lower {setting} or train longer"
    )


def schedule_epochs(value: float | str, epochs: int | None) -> float:
    """The epochs of a schedule setting in a run of ``epochs`` epochs: ``value``
    itself, or ``value`` percent of ``epochs`` when written ``"P%"`` (so that one
    setting suits runs of any length, as those a time budget sizes)."""
    if not isinstance(value, str):
        return float(value)
    if epochs is None:
        raise ConfigError(
            f"a schedule of {value} needs the run's epochs; give epochs=N or a budget"
        )
    return float(value.strip()[:-1]) / 100.0 * epochs


def steps_in(epochs: float, steps_per_epoch: int) -> int:
    """The number of steps in ``epochs`` epochs (a fraction allowed):
    ``epochs x steps_per_epoch`` rounded to the nearest step, halves up. Every schedule
    of the trainer and of the methods is turned into steps by this one rule."""
    return math.floor(epochs * steps_per_epoch + 0.5)


#: How the augmented views go through the backbone (a method's ``view_passes``).
VIEW_PASSES = ("joint", "separate")


def encode_views(backbone: nn.Module, views: list[Tensor], passes: str) -> Tensor:
    """Backbone features of ``views``, concatenated in order.

    ``joint``: one pass over all views, so BatchNorm normalises them with statistics
    shared across the views. ``separate``: one pass per view, so each view is
    normalised with its own batch statistics (and the running statistics take one
    update per view). Without BatchNorm the two give the same features.
    """
    if passes == "separate":
        return torch.cat([backbone(x) for x in views], dim=0)
    return backbone(torch.cat(views, dim=0))


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
    #: False for methods without a network (k-means): no ``self.backbone`` is built.
    uses_backbone: ClassVar[bool] = True
    #: Settings the method once counted in steps, each mapped to its replacement in
    #: epochs. A configuration that gives an old key is refused with the conversion; a
    #: checkpoint written with one is converted when read (``epoch_settings``).
    step_settings: ClassVar[dict[str, str]] = {}

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
        #: Steps in one epoch of the current run (set by ``start_fit``).
        self.steps_per_epoch = 1
        #: Epochs of the current run (set by ``start_fit``; None: not known).
        self.run_epochs: int | None = None
        self._encode: Encode | None = None
        if self.uses_backbone:
            self.backbone = build_backbone(model.backbone, self.input_shape, model.width)
            #: Width of the backbone feature ``h``.
            self.feature_dim: int = self.backbone.out_dim
        self.build()

    #: Attributes that hold callables of the current run (the data pass, the sample
    #: views); a pickled or copied method leaves them behind.
    _run_only: ClassVar[tuple[str, ...]] = ("_encode", "_sample_views")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._run_only:
            if name in state:
                state[name] = None
        return state

    def build(self) -> None:
        """Create the method's heads, parameters, buffers and losses.

        Called once by the constructor, after the backbone (``self.backbone``, of output
        width ``self.feature_dim``); ``self.params``, ``self.n_clusters``,
        ``self.n_samples`` and ``self.model_config`` are set by then.
        """

    # ------------------------------------------------------------------ parameters
    @classmethod
    def parse_params(cls, raw: dict[str, Any]) -> Any:
        """The method's ``Params`` from a mapping, refusing unknown keys and the keys
        of settings once counted in steps."""
        for old, new in cls.step_settings.items():
            if old in raw:
                raise ConfigError(
                    f"params.{old} is no longer a {cls.name} option: it counted steps; give "
                    f"{new} in epochs instead ({new} = {old} / steps per epoch, where steps "
                    "per epoch = samples // batch size)"
                )
        return from_dict(cls.Params, raw, "params")

    @classmethod
    def epoch_settings(cls, raw: dict[str, Any], steps_per_epoch: int) -> dict[str, Any]:
        """``raw`` with every setting once counted in steps given in epochs instead, for
        a run of ``steps_per_epoch`` steps an epoch (checkpoints of older versions)."""
        out = dict(raw)
        for old, new in cls.step_settings.items():
            if old in out:
                out[new] = out.pop(old) / steps_per_epoch
        return out

    @classmethod
    def check_schedule(cls, params: Any, epochs: int) -> None:
        """Refuse (ConfigError) a run of ``epochs`` epochs in which one of the schedules
        of ``params`` could not start. Called before training, by ``fit``."""

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

    # ------------------------------------------------------------------ lifecycle
    def start_fit(
        self, encode: Encode, steps_per_epoch: int, resumed: bool, epochs: int | None = None
    ) -> None:
        """What the trainer calls before the first step of a run, new or resumed:
        records the run's epoch length, its epochs (for schedules given as ``"P%"``)
        and data pass, then calls ``on_fit_start``."""
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.run_epochs = epochs
        self._encode = encode
        self.on_fit_start(encode, resumed)

    def step_at(self, epochs: float | str) -> int:
        """The step at which a schedule given in ``epochs`` (a fraction allowed, or
        ``"P%"`` of the run) falls in the current run (see :func:`steps_in`)."""
        return steps_in(schedule_epochs(epochs, self.run_epochs), self.steps_per_epoch)

    def data_pass(self, fn: Callable[[Tensor], Tensor]) -> Tensor:
        """``fn`` over the clean training data (see ``Encode``); needs ``start_fit``."""
        if self._encode is None:
            raise RuntimeError(
                f"{type(self).__name__} needs passes over the training data: start_fit "
                "must run before the first training step"
            )
        return self._encode(fn)

    @property
    def clusters_ready(self) -> bool:
        """Whether the method's clusters exist yet; False while a method trains
        without them (DECA before its k-means start), when a read-out says nothing."""
        return True

    def on_fit_start(self, encode: Encode, resumed: bool) -> None:
        """Called before the first step of a run, new (``resumed=False``) or resumed
        (the weights and buffers are then the checkpoint's).

        ``encode(fn)`` applies ``fn`` to the clean, normalised training data in batches
        on the training device and returns the concatenated outputs (in dataset order,
        on the CPU); ``data_pass`` calls it later in the run.
        """

    def on_epoch_start(self, epoch: int) -> None:
        """Called before the first step of epoch ``epoch`` (0-based)."""

    def on_step(self, step: int, epoch: int) -> dict[str, Tensor] | None:
        """Called before training step ``step`` (0-based, counted from the start of the
        run) of epoch ``epoch``. May return values to log for this step (scalar
        tensors, averaged over the epoch into ``metrics.csv`` like the losses)."""
        return None

    def on_epoch_end(self, epoch: int) -> None:
        """Called after the last step of epoch ``epoch`` (0-based)."""

    def on_fit_end(self) -> None:
        """Called after the last epoch of the method's own losses (before any
        self-labelling and before the final read-out)."""

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
        """B x d embedding of a normalised batch (used by the k-means read-out): the
        backbone feature ``h`` unless a method says otherwise."""
        return self.backbone(x)

    def kmeans_spaces(self) -> tuple[str, ...]:
        """The spaces the k-means read-out can run in (``train.kmeans_space``).

        Every method has ``backbone`` (:meth:`embed`); a method with an instance
        projection head (a module named ``instance_head``) adds ``projection``, one
        with an exemplar head ``exemplar``.
        """
        return ("backbone", "projection") if self._instance_head() is not None else ("backbone",)

    def kmeans_features(self, x: Tensor, space: str) -> Tensor:
        """B x d features of a normalised batch in ``space``, one of :meth:`kmeans_spaces`.

        ``projection`` is the normalised output of the instance head: the space of the
        instance contrast, which compares normalised vectors.
        """
        if space == "backbone":
            return self.embed(x)
        head = self._instance_head()
        if space == "projection" and head is not None:
            return nn.functional.normalize(head(self.backbone(x)).float(), dim=1)
        raise ConfigError(self._space_error(space))

    def _instance_head(self) -> nn.Module | None:
        head = getattr(self, "instance_head", None)
        return head if isinstance(head, nn.Module) else None

    def sinkhorn_scores(self, x: Tensor) -> Tensor:
        """B x K scores that the data-set-level Sinkhorn read-out balances.

        Default: ``log p`` of :meth:`cluster_probs`; with :meth:`sinkhorn_settings`'s
        ``eps = 1`` Sinkhorn then finds the balanced assignment closest to ``p`` (in KL).
        """
        probs = self.cluster_probs(x).float()
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def sinkhorn_settings(self) -> tuple[float, int]:
        """``(eps, n_iter)`` of the data-set-level Sinkhorn read-out."""
        return 1.0, 3

    def check_readout(self, readout: str, kmeans_space: str = "backbone") -> None:
        """Refuse a read-out (``train.predict_with``) or k-means space this method lacks."""
        check_choice("predict_with", readout, READOUTS)
        check_choice("kmeans_space", kmeans_space, KMEANS_SPACES)
        if readout == "kmeans" and self.trainable and kmeans_space not in self.kmeans_spaces():
            raise ConfigError(self._space_error(kmeans_space))

    def _space_error(self, space: str) -> str:
        return (
            f"method '{self.name}' has no '{space}' space for the k-means read-out; "
            f"valid kmeans_space: {', '.join(self.kmeans_spaces())}"
        )


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
    from contraclust.errors import ConfigError, did_you_mean

    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown method '{name}'{did_you_mean(name, method_names())}; "
            f"valid methods: {', '.join(method_names())}"
        ) from None
