"""Training glue: the Fabric loop, checkpoints, run directories and inference."""

from __future__ import annotations

from contraclust.training.checkpoint import (
    build_method,
    config_from_checkpoint,
    method_from_checkpoint,
    read_checkpoint,
)
from contraclust.training.loop import FitResult, TrainingDivergedError, fit, validate_config
from contraclust.training.predict import Prediction, predict

__all__ = [
    "FitResult",
    "Prediction",
    "TrainingDivergedError",
    "build_method",
    "config_from_checkpoint",
    "fit",
    "method_from_checkpoint",
    "predict",
    "read_checkpoint",
    "validate_config",
]
