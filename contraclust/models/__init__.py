"""Backbones and heads: the networks that methods compose."""

from __future__ import annotations

from contraclust.models.backbones import (
    BACKBONES,
    MLP,
    BasicBlock,
    ResNet,
    SmallCNN,
    available_backbones,
    build_backbone,
)
from contraclust.models.heads import ClusterHead, ProjectionHead

__all__ = [
    "BACKBONES",
    "MLP",
    "BasicBlock",
    "ClusterHead",
    "ProjectionHead",
    "ResNet",
    "SmallCNN",
    "available_backbones",
    "build_backbone",
]
