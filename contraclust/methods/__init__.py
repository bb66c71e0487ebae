"""Clustering methods: one file each, registered by name."""

from __future__ import annotations

from contraclust.methods import cc, kmeans  # noqa: F401  (registers the methods)
from contraclust.methods.base import (
    ClusteringMethod,
    NoParams,
    get_method,
    method_names,
    register_method,
)

__all__ = ["ClusteringMethod", "NoParams", "get_method", "method_names", "register_method"]
