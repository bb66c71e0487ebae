"""Heads that sit on backbone features ``h`` of shape ``(B, in_dim)``.

- :class:`ProjectionHead` - the contrastive projector ``z = g(h)`` (SimCLR): an
  MLP with one hidden layer, returning *unnormalised* ``z``; the losses
  normalise where they need to.
- :class:`ClusterHead` - an MLP giving ``K`` cluster logits per sample; apply a
  softmax for soft assignments.
"""

from __future__ import annotations

from torch import Tensor, nn

from contraclust.errors import ConfigError

__all__ = ["ClusterHead", "ProjectionHead"]


def _check_dim(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


class ProjectionHead(nn.Module):
    """``Linear - [BatchNorm] - ReLU - Linear``, mapping ``(B, in_dim)`` to ``(B, out_dim)``.

    Args:
        in_dim: backbone feature width.
        hidden_dim: width of the hidden layer.
        out_dim: width of ``z``.
        batch_norm: put a BatchNorm1d after the first linear layer (SimCLR v2,
            ConCURL's projector); its linear layer then has no bias.

    Example::

        >>> import torch
        >>> head = ProjectionHead(512, out_dim=128)
        >>> head(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128, batch_norm: bool = False
    ) -> None:
        super().__init__()
        _check_dim("in_dim", in_dim)
        _check_dim("hidden_dim", hidden_dim)
        _check_dim("out_dim", out_dim)
        self.in_dim = in_dim
        self.out_dim = out_dim
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class ClusterHead(nn.Module):
    """``Linear - ReLU - Linear`` giving ``(B, n_clusters)`` logits.

    Args:
        in_dim: backbone feature width.
        n_clusters: number of clusters ``K``, at least 2.
        hidden_dim: width of the hidden layer.
    """

    def __init__(self, in_dim: int, n_clusters: int, hidden_dim: int = 512) -> None:
        super().__init__()
        _check_dim("in_dim", in_dim)
        _check_dim("n_clusters", n_clusters, minimum=2)
        _check_dim("hidden_dim", hidden_dim)
        self.in_dim = in_dim
        self.n_clusters = n_clusters
        self.out_dim = n_clusters
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, n_clusters)
        )

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)
