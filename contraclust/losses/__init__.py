"""Losses: one per file, pure ``nn.Module``s, framework-free and DDP-aware.

Each loss that takes statistics over the batch has a ``gather_distributed`` flag;
it is backed by :func:`gather_with_grad` in :mod:`contraclust.losses.distributed`.
"""

from __future__ import annotations

from contraclust.losses.clc import CLCLoss
from contraclust.losses.cluster_contrast import ClusterContrastiveLoss
from contraclust.losses.distributed import all_reduce_sum, gather_with_grad, rank, world_size
from contraclust.losses.ntxent import NTXentLoss
from contraclust.losses.sinkhorn import SinkhornKnopp, sinkhorn_knopp

__all__ = [
    "CLCLoss",
    "ClusterContrastiveLoss",
    "NTXentLoss",
    "SinkhornKnopp",
    "sinkhorn_knopp",
    "all_reduce_sum",
    "gather_with_grad",
    "rank",
    "world_size",
]
