from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from contraclust.errors import ConfigError
from contraclust.models import ClusterHead, ProjectionHead


@pytest.mark.parametrize("batch_norm", [False, True])
def test_projection_head_shape_and_layers(batch_norm: bool) -> None:
    head = ProjectionHead(32, hidden_dim=16, out_dim=8, batch_norm=batch_norm)
    z = head(torch.randn(5, 32))
    assert z.shape == (5, 8) and head.out_dim == 8
    kinds = [type(m) for m in head.net]
    expected = (
        [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
        if batch_norm
        else [
            nn.Linear,
            nn.ReLU,
            nn.Linear,
        ]
    )
    assert kinds == expected
    # Unnormalised: rows are not forced to unit length.
    assert not torch.allclose(z.norm(dim=1), torch.ones(5))


def test_projection_head_defaults() -> None:
    head = ProjectionHead(512)
    assert head.net[0].out_features == 512 and head.out_dim == 128


def test_cluster_head_logits() -> None:
    head = ClusterHead(32, n_clusters=10, hidden_dim=16)
    logits = head(torch.randn(7, 32, dtype=torch.float32))
    assert logits.shape == (7, 10)
    assert head.n_clusters == 10 and head.out_dim == 10
    assert [type(m) for m in head.net] == [nn.Linear, nn.ReLU, nn.Linear]


@pytest.mark.parametrize(
    "head",
    [
        lambda: ProjectionHead(12, 8, 4, batch_norm=True),
        lambda: ProjectionHead(12, 8, 4),
        lambda: ClusterHead(12, 3, 8),
    ],
)
def test_gradients_reach_every_parameter(head: Callable[[], nn.Module]) -> None:
    module = head()
    h = torch.randn(6, 12, requires_grad=True)
    module(h).pow(2).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="n_clusters"):
        ClusterHead(16, n_clusters=1)
    with pytest.raises(ConfigError, match="in_dim"):
        ProjectionHead(0)
    with pytest.raises(ConfigError, match="out_dim"):
        ProjectionHead(8, out_dim=-3)
    with pytest.raises(ConfigError, match="hidden_dim"):
        ClusterHead(8, 4, hidden_dim=0)
