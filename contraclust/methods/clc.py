"""CLC / CDC — Ding, Zhang, Yang, Krovi, Luo, arXiv 2306.05439 (v1 "CLC: Cluster
Assignment via Contrastive Representation Learning", v2 "Contrastive Representation
Disentanglement for Clustering").

No code or hyper-parameters were published and only the abstract could be read, so
this method is a RECONSTRUCTION. What comes from the abstract:

- the representation of a sample has two parts, a categorical part ``c`` (``K``
  cluster probabilities) and an instance part ``v``;
- ``c`` is balanced across the batch by an equipartition constraint (Sinkhorn);
- one contrastive loss uses both parts, so that negatives get different weights
  (larger when the model puts them in the anchor's cluster), which focuses the loss
  on hard negatives: :class:`~contraclust.losses.CLCLoss`;
- the cluster of a sample is the argmax of ``c``.

What is ours, each kept as an option (:class:`CLCParams`):

- the heads: an MLP cluster head giving logits, ``c = softmax(logits / T)``
  (``softmax_temperature``), and an MLP projection head for ``v`` of
  ``instance_dim`` dimensions, both on a shared backbone;
- the form of the similarity, ``sim = c.c' / tau_c + v.v' / tau_v`` (InfoNCE over
  the ``2B`` views), and the defaults of ``tau_c`` and ``tau_v``;
- where the equipartition enters (``equipartition``): as SwAV-style swapped
  prediction of the Sinkhorn targets of the other view (``sinkhorn_target``), as a
  penalty ``log K - H(mean c)`` over the global batch (``balance_penalty``), or not
  at all (``none``), with weight ``equipartition_weight``;
- which ``c`` enters ``sim`` (``categorical_in_similarity``): the softmax itself, or
  its Sinkhorn-balanced version. The balanced version is computed without gradient,
  so we pass the gradient straight through to the softmax (value of the balanced
  assignment, gradient of ``c``); the cluster head then learns from the contrast
  in both settings, and every parameter gets a gradient at every step (DDP needs it);
- Sinkhorn is run on ``log c`` with entropy ``sinkhorn_eps``: ``eps = 1`` gives the
  balanced assignment closest to ``c`` (in KL), smaller values sharpen it;
- a queue (``queue_length > 0``) as in SwAV (section 4): the backbone features ``h``
  of the last ``queue_length`` samples of each view (per process) go through the
  current cluster head, and their ``log c`` is balanced together with the batch's;
  only the batch's rows become targets. Filled from epoch ``queue_start_epoch`` (a
  fraction allowed), used once full (see :mod:`contraclust.methods.sinkhorn_queue`).

Prediction: argmax of ``c`` (or k-means on the backbone feature, ``embed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from contraclust.checks import check_choice, check_number
from contraclust.errors import ConfigError
from contraclust.losses import CLCLoss, gather_with_grad
from contraclust.losses.cluster_contrast import entropy_gap
from contraclust.losses.ntxent import check_temperature
from contraclust.losses.sinkhorn import sinkhorn_knopp
from contraclust.methods.base import ClusteringMethod, register_method
from contraclust.methods.sinkhorn_queue import (
    SinkhornQueue,
    check_queue_params,
    check_queue_schedule,
)
from contraclust.models import ClusterHead, ProjectionHead

EQUIPARTITIONS = ("sinkhorn_target", "balance_penalty", "none")
CATEGORICAL_IN_SIMILARITY = ("softmax", "sinkhorn")


@dataclass
class CLCParams:
    """CLC's hyper-parameters. The paper published none: every default is ours."""

    #: Dimension of the instance part ``v``; None: ``model.projection_dim``.
    instance_dim: int | None = None
    #: ``tau_v``, temperature of the instance similarity (the NT-Xent value of SimCLR/CC).
    instance_temperature: float = 0.5
    #: ``tau_c``, temperature of the categorical similarity (negative weights in [1, e]).
    category_temperature: float = 1.0
    #: Where the equipartition enters: ``sinkhorn_target``, ``balance_penalty`` or ``none``.
    equipartition: str = "sinkhorn_target"
    #: Weight of the equipartition term against the contrastive loss.
    equipartition_weight: float = 1.0
    #: Entropy of the Sinkhorn balancing of ``log c`` (1: no sharpening).
    sinkhorn_eps: float = 0.5
    #: Sinkhorn iterations (SwAV uses 3).
    sinkhorn_iters: int = 3
    #: ``T`` in ``c = softmax(logits / T)``.
    softmax_temperature: float = 1.0
    #: Which ``c`` enters the similarity: ``softmax`` or ``sinkhorn`` (balanced).
    categorical_in_similarity: str = "softmax"
    #: SwAV's queue: backbone features kept per view and per process for Sinkhorn (0: none).
    queue_length: int = 0
    #: Epoch (fractions allowed) from which the queue is filled; used once full.
    queue_start_epoch: float = 0.0

    def __post_init__(self) -> None:
        if self.instance_dim is not None and (
            isinstance(self.instance_dim, bool)
            or not isinstance(self.instance_dim, int)
            or self.instance_dim < 1
        ):
            raise ConfigError(
                f"instance_dim must be an integer >= 1 or null, got {self.instance_dim!r}"
            )
        check_temperature(self.instance_temperature, "instance_temperature")
        check_temperature(self.category_temperature, "category_temperature")
        check_temperature(self.softmax_temperature, "softmax_temperature")
        check_temperature(self.sinkhorn_eps, "sinkhorn_eps")
        check_choice("equipartition", self.equipartition, EQUIPARTITIONS)
        check_choice(
            "categorical_in_similarity", self.categorical_in_similarity, CATEGORICAL_IN_SIMILARITY
        )
        check_number("equipartition_weight", self.equipartition_weight, strict=False)
        if (
            isinstance(self.sinkhorn_iters, bool)
            or not isinstance(self.sinkhorn_iters, int)
            or self.sinkhorn_iters < 1
        ):
            raise ConfigError(
                f"sinkhorn_iters must be an integer >= 1, got {self.sinkhorn_iters!r}"
            )
        check_queue_params(self.queue_length, self.queue_start_epoch, self.runs_sinkhorn)

    @property
    def runs_sinkhorn(self) -> bool:
        """True when these settings compute Sinkhorn targets at each step."""
        return (
            self.equipartition == "sinkhorn_target" or self.categorical_in_similarity == "sinkhorn"
        )


@register_method
class CLC(ClusteringMethod):
    name = "clc"
    aliases = ("cdc",)
    summary = "CLC / CDC (Ding et al. 2023, reconstructed): contrast on cluster + instance parts"
    Params = CLCParams

    params: CLCParams

    @classmethod
    def check_schedule(cls, params: Any, epochs: int) -> None:
        check_queue_schedule("clc", params.queue_length, params.queue_start_epoch, epochs)

    def build(self) -> None:
        p, model, dim = self.params, self.model_config, self.feature_dim
        instance_dim = p.instance_dim or model.projection_dim
        self.instance_head = ProjectionHead(dim, model.hidden_dim, instance_dim)
        self.cluster_head = ClusterHead(dim, self.n_clusters, model.hidden_dim)
        self.contrast = CLCLoss(
            p.instance_temperature, p.category_temperature, gather_distributed=True
        )
        self.sinkhorn_queue = (
            SinkhornQueue(p.queue_length, dim, p.queue_start_epoch) if p.queue_length else None
        )

    def on_step(self, step: int, epoch: int) -> None:
        if self.sinkhorn_queue is not None:
            self.sinkhorn_queue.schedule(step, self.steps_per_epoch)

    def _log_probs(self, h: Tensor) -> Tensor:
        """``log c`` of backbone features ``h``."""
        return F.log_softmax(self.cluster_head(h).float() / self.params.softmax_temperature, dim=1)

    def _balanced(self, log_c: Tensor) -> Tensor:
        """Sinkhorn-balanced assignment of ``c`` over the global batch (no gradient)."""
        p = self.params
        return sinkhorn_knopp(
            log_c.detach(), eps=p.sinkhorn_eps, n_iter=p.sinkhorn_iters, gather_distributed=True
        )

    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        p = self.params
        x1, x2 = views
        # One forward pass for both views: BatchNorm sees the 2B batch.
        h = self.backbone(torch.cat([x1, x2], dim=0))
        v1, v2 = self.instance_head(h).chunk(2)
        log_c = self._log_probs(h)
        log_c1, log_c2 = log_c.chunk(2)
        c1, c2 = log_c1.exp(), log_c2.exp()

        q1 = q2 = None
        if p.runs_sinkhorn and self.sinkhorn_queue is None:
            q1, q2 = self._balanced(log_c1), self._balanced(log_c2)
        elif p.runs_sinkhorn and self.sinkhorn_queue is not None:
            # Queued features go through this step's cluster head (SwAV's current prototypes).
            q1, q2 = self.sinkhorn_queue.targets(
                [log_c1, log_c2], h.detach().float().chunk(2), self._log_probs, self._balanced
            )

        if p.categorical_in_similarity == "sinkhorn":
            # Value of the balanced assignment, gradient of the softmax (straight through).
            s1, s2 = c1 + (q1 - c1).detach(), c2 + (q2 - c2).detach()
        else:
            s1, s2 = c1, c2
        contrast = self.contrast(v1, v2, s1, s2)

        if p.equipartition == "sinkhorn_target":
            # Swapped prediction: each view predicts the balanced assignment of the other.
            equip = -0.5 * ((q2 * log_c1).sum(1).mean() + (q1 * log_c2).sum(1).mean())
        elif p.equipartition == "balance_penalty":
            equip = entropy_gap(gather_with_grad(torch.cat([c1, c2], dim=0)))
        else:
            equip = contrast.new_zeros(())
        return {
            "loss": contrast + p.equipartition_weight * equip,
            "contrast": contrast.detach(),
            "equipartition": equip.detach(),
        }

    def cluster_probs(self, x: Tensor) -> Tensor:
        logits = self.cluster_head(self.backbone(x)).float()
        return F.softmax(logits / self.params.softmax_temperature, dim=1)

    def sinkhorn_scores(self, x: Tensor) -> Tensor:
        logits = self.cluster_head(self.backbone(x)).float()
        return F.log_softmax(logits / self.params.softmax_temperature, dim=1)

    def sinkhorn_settings(self) -> tuple[float, int]:
        # The balancing of training (``categorical_in_similarity: sinkhorn``), over N.
        return self.params.sinkhorn_eps, self.params.sinkhorn_iters
