"""Checks of the inputs every loss shares: temperatures, pairs of views, the dtype a
loss computes in. Each raises one line naming the argument (ConfigError for a setting,
DataError for a tensor)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contraclust.errors import ConfigError, DataError

__all__ = ["check_temperature", "check_view_pair", "compute_dtype"]


def check_temperature(temperature: float, name: str = "temperature") -> float:
    """Return ``temperature`` as a float, or raise :class:`ConfigError` unless finite and > 0."""
    value = float(temperature)
    if not math.isfinite(value) or value <= 0.0:
        raise ConfigError(f"{name} must be a finite number > 0, got {temperature!r}")
    return value


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision inputs (and float32), float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def check_view_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    """Raise :class:`DataError` unless ``a`` and ``b`` are 2-D with the same shape."""
    for name, t in zip(names, (a, b), strict=True):
        if t.dim() != 2:
            raise DataError(f"{name} must be a 2-D tensor, got shape {tuple(t.shape)}")
    if a.shape != b.shape:
        raise DataError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[1] == 0:
        raise DataError(f"{names[0]} and {names[1]} must have at least one column")
