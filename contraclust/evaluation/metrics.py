"""Clustering metrics: accuracy under the best matching, NMI, ARI, AMI.

All functions take two label sequences of the same length: the ground-truth
classes ``y_true`` and the predicted clusters ``y_pred``. Labels are arbitrary
integers (cluster ids ``{3, 17}`` are fine), and the numbers of clusters and of
classes may differ: clusters left without a class by the matching count as
errors, never as a crash or a silent 0.

Array-likes are accepted (lists, NumPy arrays, CPU or GPU torch tensors); they
must be 1-D, of equal non-zero length, and hold integers (integral floats are
accepted, NaN is not). Anything else raises :class:`~contraclust.errors.DataError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

from contraclust.errors import ConfigError, DataError

__all__ = [
    "METRIC_KEYS",
    "cluster_accuracy",
    "contingency",
    "evaluate",
    "hungarian_mapping",
    "many_to_one_accuracy",
]

IntArray = NDArray[np.int64]

#: What :func:`evaluate` returns by default, in this order.
METRIC_KEYS = ("acc", "acc_many_to_one", "nmi", "ari", "ami", "n_clusters", "n_classes")


def _as_labels(values: Any, name: str) -> IntArray:
    """``values`` as a 1-D int64 array, or a :class:`DataError` saying what is wrong."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, duck-typed
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} cannot be read as an array of labels: {exc}") from exc
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty: there is nothing to evaluate")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise DataError(f"{name} contains NaN at {int(np.isnan(arr).sum())} position(s)")
        if not np.isfinite(arr).all():
            raise DataError(f"{name} contains infinite values")
        if (arr != np.round(arr)).any():
            raise DataError(f"{name} must hold integer labels, got non-integral values")
        return arr.astype(np.int64)
    raise DataError(f"{name} must hold integer labels, got dtype {arr.dtype}")


def _check_pair(y_true: Any, y_pred: Any) -> tuple[IntArray, IntArray]:
    true = _as_labels(y_true, "y_true")
    pred = _as_labels(y_pred, "y_pred")
    if true.shape[0] != pred.shape[0]:
        raise DataError(
            f"y_true and y_pred must have the same length, got {true.shape[0]} and {pred.shape[0]}"
        )
    return true, pred


def _contingency(true: IntArray, pred: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    classes, class_index = np.unique(true, return_inverse=True)
    clusters, cluster_index = np.unique(pred, return_inverse=True)
    flat = class_index.reshape(-1) * len(clusters) + cluster_index.reshape(-1)
    counts = np.bincount(flat, minlength=len(classes) * len(clusters))
    return counts.reshape(len(classes), len(clusters)).astype(np.int64), classes, clusters


def contingency(y_true: Any, y_pred: Any) -> tuple[IntArray, IntArray, IntArray]:
    """Counts of (class, cluster) pairs.

    Returns ``(matrix, classes, clusters)``: ``classes`` and ``clusters`` are the
    sorted distinct labels, and ``matrix[i, j]`` is the number of samples of class
    ``classes[i]`` assigned to cluster ``clusters[j]`` (rows: classes, columns:
    clusters; shape ``n_classes x n_clusters``).
    """
    return _contingency(*_check_pair(y_true, y_pred))


def _matching(matrix: IntArray) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    # On a rectangular matrix this matches min(n_classes, n_clusters) pairs, one-to-one.
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return rows, cols


def hungarian_mapping(y_true: Any, y_pred: Any) -> dict[int, int]:
    """One-to-one map ``cluster id -> class id`` that maximises the matched samples.

    Found with the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) on
    the rectangular contingency matrix. When there are more clusters than classes,
    the surplus clusters are absent from the map; when there are fewer, some classes
    are never predicted.
    """
    matrix, classes, clusters = contingency(y_true, y_pred)
    rows, cols = _matching(matrix)
    return {int(clusters[c]): int(classes[r]) for r, c in zip(rows, cols, strict=True)}


def _accuracy(matrix: IntArray) -> float:
    rows, cols = _matching(matrix)
    return float(matrix[rows, cols].sum() / matrix.sum())


def _many_to_one(matrix: IntArray) -> float:
    return float(matrix.max(axis=0).sum() / matrix.sum())


def cluster_accuracy(y_true: Any, y_pred: Any) -> float:
    """Clustering accuracy (ACC): the fraction of samples whose cluster is matched to
    their class under the best one-to-one matching (:func:`hungarian_mapping`).

    Samples in clusters that the matching leaves unmatched count as errors, so with
    more clusters than classes ACC is at most the share of the largest clusters.
    In ``[0, 1]``.
    """
    matrix, _, _ = contingency(y_true, y_pred)
    return _accuracy(matrix)


def many_to_one_accuracy(y_true: Any, y_pred: Any) -> float:
    """Accuracy when each cluster is labelled with its majority class.

    Several clusters may map to the same class, so this suits over-clustering
    (more clusters than classes); it is always >= :func:`cluster_accuracy`, and it
    reaches 1 trivially with one cluster per sample. In ``[0, 1]``.
    """
    matrix, _, _ = contingency(y_true, y_pred)
    return _many_to_one(matrix)


def evaluate(y_true: Any, y_pred: Any, keys: Sequence[str] | None = None) -> dict[str, float | int]:
    """All metrics at once, or only those named in ``keys``.

    Keys: ``acc`` (:func:`cluster_accuracy`), ``acc_many_to_one``
    (:func:`many_to_one_accuracy`), ``nmi`` (normalised mutual information,
    arithmetic mean normalisation, scikit-learn's default), ``ari`` (adjusted Rand
    index), ``ami`` (adjusted mutual information), ``n_clusters`` and ``n_classes``
    (numbers of distinct labels). Asking only for what is used pays with many
    clusters: at K = 1000 AMI's expected-information term costs about nine tenths of
    the whole call, and the training loop logs only ACC, NMI and ARI each epoch.
    """
    wanted = tuple(METRIC_KEYS if keys is None else keys)
    unknown = sorted(set(wanted) - set(METRIC_KEYS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; valid: {', '.join(METRIC_KEYS)}")
    true, pred = _check_pair(y_true, y_pred)
    matrix, classes, clusters = _contingency(true, pred)
    compute: dict[str, Callable[[], float | int]] = {
        "acc": lambda: _accuracy(matrix),
        "acc_many_to_one": lambda: _many_to_one(matrix),
        "nmi": lambda: float(normalized_mutual_info_score(true, pred)),
        "ari": lambda: float(adjusted_rand_score(true, pred)),
        "ami": lambda: float(adjusted_mutual_info_score(true, pred)),
        "n_clusters": lambda: len(clusters),
        "n_classes": lambda: len(classes),
    }
    return {key: compute[key]() for key in wanted}
