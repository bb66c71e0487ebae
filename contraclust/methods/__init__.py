"""Clustering methods: one file each, registered by name when this package is imported."""

from __future__ import annotations

import importlib
import pkgutil

from contraclust.methods.base import (
    ClusteringMethod,
    NoParams,
    get_method,
    method_names,
    register_method,
)

# Every module of this package registers its method on import: a new method is a new
# file here and nothing else.
for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ClusteringMethod", "NoParams", "get_method", "method_names", "register_method"]
