"""Checks of hyper-parameters shared by losses, models and methods.

Each raises :class:`~contraclust.errors.ConfigError` with one line that names the
parameter, its valid range and the value it got.
"""

from __future__ import annotations

import math
from typing import Any

from contraclust.errors import ConfigError


def check_number(name: str, value: Any, low: float = 0.0, *, strict: bool = True) -> None:
    """``value`` must be a finite number above ``low`` (or at least ``low``)."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if strict else value >= low)
    )
    if not ok:
        relation = ">" if strict else ">="
        raise ConfigError(f"{name} must be a finite number {relation} {low:g}, got {value!r}")


def check_fraction(name: str, value: Any) -> None:
    """``value`` must be a finite number strictly between 0 and 1."""
    check_number(name, value)
    if value >= 1:
        raise ConfigError(f"{name} must be < 1, got {value!r}")


def check_int(name: str, value: Any, low: int = 1) -> int:
    """``value`` must be an integer (not a bool) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
