"""Evaluation: clustering metrics. Imports no training code."""

from __future__ import annotations

from contraclust.evaluation.metrics import (
    cluster_accuracy,
    contingency,
    evaluate,
    hungarian_mapping,
    many_to_one_accuracy,
)

__all__ = [
    "cluster_accuracy",
    "contingency",
    "evaluate",
    "hungarian_mapping",
    "many_to_one_accuracy",
]
