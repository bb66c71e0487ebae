"""Contrastive Clustering (CC) — Li, Hu, Liu, Peng, Zhou, Peng, AAAI 2021.

Two heads on a shared backbone: an instance head trained with NT-Xent over the two
views, and a cluster head whose B x K softmax matrices of the two views are
contrasted column by column (the cluster-level loss) with an entropy term against
collapse.

How the two views go through the backbone (``view_passes``): CC's code runs the
backbone once per view, so each view's BatchNorm layers normalise with the
statistics of that view's B images (``separate``, the authors' choice, used by the
presets that follow CC's configuration); ``joint`` (ours, the default) runs one pass
over the 2B images, so BatchNorm sees both views together. The two give the same
result for a network without BatchNorm.

Prediction: argmax of the cluster head (``predict_with: head``, CC's), the argmax of
a Sinkhorn assignment balanced over the data set (``sinkhorn``), or k-means on the
backbone feature or on the normalised instance projection (``kmeans`` with
``kmeans_space: backbone | projection``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from contraclust.checks import check_choice
from contraclust.errors import ConfigError
from contraclust.losses import ClusterContrastiveLoss, NTXentLoss
from contraclust.methods.base import (
    VIEW_PASSES,
    ClusteringMethod,
    encode_views,
    register_method,
)
from contraclust.models import ClusterHead, ProjectionHead


@dataclass
class CCParams:
    """CC's hyper-parameters (defaults: the paper's, except ``view_passes``)."""

    #: NT-Xent temperature of the instance head (paper: 0.5).
    instance_temperature: float = 0.5
    #: Temperature of the cluster-level contrast (paper: 1.0).
    cluster_temperature: float = 1.0
    #: Weight of the entropy of the mean assignment (paper: 1.0).
    entropy_weight: float = 1.0
    #: Weight of the cluster-level loss against the instance loss (CC: 1).
    cluster_weight: float = 1.0
    #: ``joint`` (ours): one backbone pass over both views, BatchNorm statistics of the
    #: 2B images; ``separate`` (CC's code): one pass per view, statistics per view.
    view_passes: str = "joint"

    def __post_init__(self) -> None:
        check_choice("view_passes", self.view_passes, VIEW_PASSES)
        if self.entropy_weight < 0:
            raise ConfigError(f"entropy_weight must be >= 0, got {self.entropy_weight}")
        if self.cluster_weight < 0:
            raise ConfigError(f"cluster_weight must be >= 0, got {self.cluster_weight}")


@register_method
class ContrastiveClustering(ClusteringMethod):
    name = "cc"
    summary = "Contrastive Clustering (Li et al. 2021): instance + cluster-level contrast"
    Params = CCParams

    params: CCParams

    def build(self) -> None:
        p, model, dim = self.params, self.model_config, self.feature_dim
        self.instance_head = ProjectionHead(dim, model.hidden_dim, model.projection_dim)
        self.cluster_head = ClusterHead(dim, self.n_clusters, model.hidden_dim)
        self.instance_loss = NTXentLoss(p.instance_temperature, gather_distributed=True)
        self.cluster_loss = ClusterContrastiveLoss(
            p.cluster_temperature, p.entropy_weight, gather_distributed=True
        )

    def training_loss(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        h = encode_views(self.backbone, views, self.params.view_passes)
        z = self.instance_head(h)
        p = F.softmax(self.cluster_head(h).float(), dim=1)
        z1, z2 = z.chunk(2)
        p1, p2 = p.chunk(2)
        instance = self.instance_loss(z1, z2)
        cluster = self.cluster_loss(p1, p2)
        return {
            "loss": instance + self.params.cluster_weight * cluster,
            "instance": instance.detach(),
            "cluster": cluster.detach(),
        }

    def cluster_probs(self, x: Tensor) -> Tensor:
        return F.softmax(self.cluster_head(self.backbone(x)).float(), dim=1)
