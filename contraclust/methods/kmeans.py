"""k-means on the raw inputs (pixels in [0, 1] or standardised vectors): the baseline.

Fitted in closed form with scikit-learn (k-means++ seeding, several restarts), so it
trains no network. Prediction assigns each sample to its nearest centre; the
confidence is a Student-t kernel on the distances, scaled by the mean within-cluster
distance so that it does not depend on the input scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from contraclust.errors import ConfigError
from contraclust.methods.base import ClusteringMethod, register_method


@dataclass
class KMeansParams:
    #: Number of k-means++ restarts (the best inertia is kept).
    n_init: int = 10
    max_iter: int = 300

    def __post_init__(self) -> None:
        if self.n_init < 1:
            raise ConfigError(f"n_init must be >= 1, got {self.n_init}")
        if self.max_iter < 1:
            raise ConfigError(f"max_iter must be >= 1, got {self.max_iter}")


@register_method
class KMeansMethod(ClusteringMethod):
    name = "kmeans"
    summary = "k-means (scikit-learn) on raw pixels or vectors: the baseline"
    Params = KMeansParams
    trainable = False
    uses_backbone = False
    n_views = 0

    params: KMeansParams

    def build(self) -> None:
        dim = 1
        for size in self.input_shape:
            dim *= size
        self.register_buffer("centers", torch.zeros(self.n_clusters, dim))
        self.register_buffer("scale", torch.ones(()))

    def prepare(self, raw: Tensor) -> Tensor:
        # k-means works on the unit-space inputs directly (no per-channel standardisation).
        return self.to_unit(raw)

    def fit_closed_form(self, data: Tensor) -> None:
        from sklearn.cluster import KMeans

        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        x = data.reshape(len(data), -1).double().cpu().numpy()
        km = KMeans(
            n_clusters=self.n_clusters,
            n_init=self.params.n_init,
            max_iter=self.params.max_iter,
            random_state=seed,
        )
        km.fit(x)
        self.centers.copy_(torch.from_numpy(km.cluster_centers_).float())
        self.scale.fill_(max(float(km.inertia_) / len(x), 1e-12))

    def _sq_distances(self, x: Tensor) -> Tensor:
        flat = x.reshape(len(x), -1).float()
        return torch.cdist(flat, self.centers.to(flat.device)).pow(2)

    def cluster_probs(self, x: Tensor) -> Tensor:
        q = 1.0 / (1.0 + self._sq_distances(x) / self.scale.to(x.device))
        return q / q.sum(dim=1, keepdim=True)

    def embed(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1).float()
