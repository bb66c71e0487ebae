"""Error types raised by contraclust.

Every problem the user can fix (bad input, missing file, out-of-range option)
raises a subclass of :class:`ContraclustError`. The command-line interface turns
these into a single line on stderr and exit status 2; anything else is a bug.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError


class ContraclustError(Exception):
    """Base class of the errors a user can act on."""


class ConfigError(ContraclustError, ValueError):
    """A configuration value, preset key or hyper-parameter is invalid."""


class DataError(ContraclustError, ValueError):
    """Input data is missing, unreadable, or has the wrong shape or values."""


class RunDirectoryError(ContraclustError):
    """A run directory cannot be used as asked (exists, locked, incompatible)."""


class CheckpointError(ContraclustError):
    """A checkpoint is missing, corrupt, or belongs to another method/version."""


class NotFittedError(ConfigError, _SklearnNotFittedError):
    """A model was asked to predict before it was fitted (scikit-learn's error too)."""


class ContraclustWarning(UserWarning):
    """Something the user should see although the run goes on (a preset made for other
    data, a degenerate result). The command line prints these on stderr."""


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid choice, or an empty string."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
