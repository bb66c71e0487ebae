"""Small checks every reader shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from contraclust.errors import DataError

__all__ = ["check_label_range", "file_size", "first_line", "reason", "require_file"]


def require_file(path: Path) -> None:
    """Raise a :class:`DataError` unless ``path`` is an existing file."""
    if not path.exists():
        raise DataError(f"no such file or directory: {path}")
    if not path.is_file():
        raise DataError(f"{path} is not a file")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to ``limit`` characters."""
    return (str(exc).splitlines() or [""])[0][:limit]


def reason(exc: BaseException) -> str:
    """A short reason for a failed read: the exception's first line, or its type."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:80]


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes; a :class:`DataError` when it is not a file."""
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    return path.stat().st_size


def check_label_range(labels: np.ndarray, num_classes: int, path: Path, what: str) -> None:
    """Raise a :class:`DataError` unless every label lies in ``0..num_classes - 1``."""
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(
            f"{path}: {what} span {int(labels.min())}..{int(labels.max())}, expected "
            f"0..{num_classes - 1}; the file is corrupt or not the set it is named for"
        )
