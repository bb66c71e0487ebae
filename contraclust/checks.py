"""Checks of hyper-parameters shared by losses, models and methods.

Each raises :class:`~contraclust.errors.ConfigError` with one line that names the
parameter, its valid range and the value it got.
"""

from __future__ import annotations

import math
import re
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


def check_epochs(name: str, value: Any) -> None:
    """A schedule setting: a number of epochs >= 0 (a fraction allowed), or a share of
    the run's epochs written ``"P%"`` with 0 <= P < 100."""
    if isinstance(value, str):
        text = value.strip()
        try:
            share = float(text[:-1]) if text.endswith("%") else math.nan
        except ValueError:
            share = math.nan
        if not 0.0 <= share < 100.0:
            raise ConfigError(
                f"{name} must be a number of epochs or a share of the run such as '40%' "
                f"(0% to 99%), got {value!r}"
            )
        return
    check_number(name, value, strict=False)


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


#: The forms a duration setting accepts, as said in its error message.
DURATION_FORMS = "90s, 5m, 1h, 1h30m (hours, minutes, seconds in that order), auto or none"

_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)


def parse_duration(name: str, text: Any) -> float | None:
    """Seconds of a duration such as ``90s``, ``5m``, ``1h`` or ``1h30m``; ``none``
    (no limit) gives None. ``auto`` is not a duration: its caller resolves it first.

    Raises:
        ConfigError: naming the setting and the accepted forms.
    """
    if isinstance(text, str):
        spoken = text.strip().lower().replace(" ", "")
        if spoken == "none":
            return None
        match = _DURATION.fullmatch(spoken)
        if spoken and match is not None:
            h, m, s = (float(match.group(k) or 0) for k in "hms")
            seconds = 3600 * h + 60 * m + s
            if seconds > 0:
                return seconds
    raise ConfigError(f"{name} must be a duration: {DURATION_FORMS}; got {text!r}")
