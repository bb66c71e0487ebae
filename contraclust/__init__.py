"""contraclust: deep clustering of images and vectors with contrastive learning.

>>> import contraclust
>>> contraclust.evaluate([0, 0, 1, 1], [1, 1, 0, 0])["acc"]
1.0
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Clusterer", "__version__", "evaluate", "load", "load_dataset"]

# Heavy imports (torch, lightning) happen on first use, so `contraclust --help` is quick.
_LAZY = {
    "Clusterer": ("contraclust.api", "Clusterer"),
    "load": ("contraclust.api", "load"),
    "evaluate": ("contraclust.evaluation", "evaluate"),
    "load_dataset": ("contraclust.data", "load_dataset"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'contraclust' has no attribute {name!r}")
