"""Error types raised by contraclust.

Every problem the user can fix (bad input, missing file, out-of-range option)
raises a subclass of :class:`ContraclustError`. The command-line interface turns
these into a single line on stderr and exit status 2; anything else is a bug.
"""

from __future__ import annotations


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
