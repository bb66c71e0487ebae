"""Losses: one per file, pure ``nn.Module``s, framework-free and DDP-aware.

Each loss that takes statistics over the batch has a ``gather_distributed`` flag;
it is backed by :func:`gather_with_grad` in :mod:`contraclust.losses.distributed`.
"""

from __future__ import annotations

from contraclust.losses.anchor import AnchorLoss
from contraclust.losses.clc import CLCLoss
from contraclust.losses.cluster_contrast import ClusterContrastiveLoss
from contraclust.losses.consensus import ConsensusLoss, RandomProjections
from contraclust.losses.dec import DECLoss, dec_target, student_t_assignment
from contraclust.losses.distributed import all_reduce_sum, gather_with_grad, rank, world_size
from contraclust.losses.memory_bank import MemoryBankNCE
from contraclust.losses.ntxent import NTXentLoss
from contraclust.losses.queue import EmbeddingQueue
from contraclust.losses.scan import SCANLoss
from contraclust.losses.self_label import SelfLabelLoss
from contraclust.losses.sinkhorn import SinkhornKnopp, sinkhorn_knopp
from contraclust.losses.swapped_prediction import SwappedPredictionLoss

__all__ = [
    "AnchorLoss",
    "CLCLoss",
    "ClusterContrastiveLoss",
    "ConsensusLoss",
    "DECLoss",
    "EmbeddingQueue",
    "MemoryBankNCE",
    "NTXentLoss",
    "RandomProjections",
    "SCANLoss",
    "SelfLabelLoss",
    "SinkhornKnopp",
    "SwappedPredictionLoss",
    "all_reduce_sum",
    "dec_target",
    "gather_with_grad",
    "rank",
    "sinkhorn_knopp",
    "student_t_assignment",
    "world_size",
]
