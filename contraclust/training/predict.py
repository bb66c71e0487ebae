"""Batched inference: cluster probabilities, embeddings and the three read-outs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from contraclust.config import READOUTS
from contraclust.data.source import BatchSource, InMemorySource
from contraclust.errors import DataError
from contraclust.losses.sinkhorn import sinkhorn_knopp
from contraclust.methods import ClusteringMethod

__all__ = [
    "READOUTS",
    "Prediction",
    "apply_batched",
    "check_input_shape",
    "predict",
    "soft_assign",
]


def conform_to_model(data: Tensor, input_shape: tuple[int, ...]) -> Tensor:
    """Raw uint8 images ``(N, C, H, W)`` made to match a model's input: colour to grey
    (mean of the channels) or grey to colour (repeated), then resized to its side.
    Vectors, and images that already match, are returned unchanged."""
    if len(input_shape) != 3 or data.dim() != 4:
        return data
    if data.shape[1] != input_shape[0]:
        if input_shape[0] == 1:
            data = data.float().mean(dim=1, keepdim=True).round().to(torch.uint8)
        elif data.shape[1] == 1:
            data = data.expand(-1, input_shape[0], -1, -1).contiguous()
    if tuple(data.shape[2:]) != tuple(input_shape[1:]):
        data = (
            torch.nn.functional.interpolate(
                data.float(),
                size=tuple(input_shape[1:]),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    return data


@dataclass
class Prediction:
    labels: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float32: probability of the assigned cluster
    probs: np.ndarray  # (N, K) float32
    #: Centres of the k-means read-out (K x d), kept so that new data can be assigned.
    centers: np.ndarray | None = None


def _batches(raw: Tensor | BatchSource, batch_size: int) -> Iterator[Tensor]:
    source = InMemorySource(raw) if isinstance(raw, Tensor) else raw
    return source.batches(batch_size)


@torch.no_grad()
def apply_batched(
    method: ClusteringMethod,
    raw: Tensor | BatchSource,
    fn: Callable[[Tensor], Tensor],
    device: torch.device,
    batch_size: int = 512,
    progress: str | None = None,
) -> Tensor:
    """Apply ``fn`` to the clean, normalised inputs of ``raw`` in batches; outputs on CPU.

    With ``progress`` (a label) a progress bar counts the batches.

    ``raw`` is a tensor or a source of batches (a streamed set, see
    :mod:`contraclust.data.source`); outputs come in dataset order either way. They
    are written into one tensor allocated at the first batch, rather than kept as a
    list and concatenated, which would hold them twice at the end.
    """
    was_training = method.training
    method.eval()
    out: Tensor | None = None
    try:
        start = 0
        batches = _batches(raw, batch_size)
        if progress is not None:
            from tqdm.auto import tqdm

            total = -(-len(raw) // batch_size)
            batches = tqdm(batches, desc=progress, total=total, unit="batch", leave=False)
        for batch in batches:
            x = method.prepare(batch.to(device, non_blocking=True))
            y = fn(x).float()
            if out is None:
                out = torch.empty((len(raw), *y.shape[1:]), dtype=torch.float32)
            out[start : start + len(y)] = y.cpu()
            start += len(y)
    finally:
        method.train(was_training)
    return out if out is not None else torch.empty(0)


def check_input_shape(method: ClusteringMethod, raw: Tensor | BatchSource) -> None:
    expected = tuple(method.input_shape)
    found = tuple(raw.shape[1:]) if isinstance(raw, Tensor) else tuple(raw.input_shape)
    if found != expected:
        kind = "images of shape (C, H, W)" if method.is_image else "vectors of length"
        raise DataError(
            f"the model was trained on {kind} {expected}, but the data has samples of shape "
            f"{found}; resize or select matching data"
        )


def predict(
    method: ClusteringMethod,
    raw: Tensor | BatchSource,
    device: torch.device,
    readout: str = "head",
    seed: int = 0,
    batch_size: int = 512,
    centers: np.ndarray | None = None,
    keep_probs: bool = True,
    progress: str | None = None,
    kmeans_space: str = "backbone",
    kmeans_n_init: int = 10,
) -> Prediction:
    """Assign every sample of ``raw`` to a cluster with the chosen read-out.

    ``head``: argmax of the method's cluster probabilities. ``kmeans``: k-means (K
    clusters, ``kmeans_n_init`` restarts, seeded) on the method's features in
    ``kmeans_space`` (one of ``method.kmeans_spaces()``); the confidence is then a
    Student-t kernel of the distance to the assigned centre; pass the ``centers`` of
    an earlier call to assign new data to the same clusters. ``sinkhorn``: the
    method's scores of all N samples (``method.sinkhorn_scores``) balanced by
    Sinkhorn-Knopp over the whole of ``raw`` (each cluster gets N / K of the mass),
    then argmax; the balance is over the data given, so new data are balanced among
    themselves. Labels are never used.

    ``keep_probs=False`` is for scoring during training, which needs only the labels:
    with the head read-out each batch is reduced to its label and confidence on the
    device, so the N x K probabilities are neither copied to the host nor kept, and
    ``probs`` is returned empty (N x 0).

    ``progress``: a label for a progress bar over the batches (None: no bar).
    """
    method.check_readout(readout, kmeans_space)
    check_input_shape(method, raw)
    if readout == "head" or not method.trainable:
        if not keep_probs:
            best = apply_batched(method, raw, _best_cluster(method), device, batch_size, progress)
            return Prediction(
                labels=best[:, 1].numpy().astype(np.int64),
                confidence=best[:, 0].numpy().astype(np.float32, copy=False),
                probs=np.empty((len(best), 0), dtype=np.float32),
            )
        probs = apply_batched(method, raw, method.cluster_probs, device, batch_size, progress)
    elif readout == "sinkhorn":
        scores = apply_batched(method, raw, method.sinkhorn_scores, device, batch_size, progress)
        eps, n_iter = method.sinkhorn_settings()
        probs = sinkhorn_knopp(scores, eps, n_iter).float()
    else:

        def features(x: Tensor) -> Tensor:
            return method.kmeans_features(x, kmeans_space)

        embedded = apply_batched(method, raw, features, device, batch_size, progress)
        emb = embedded.double().numpy()
        if centers is None:
            from sklearn.cluster import KMeans

            kmeans = KMeans(method.n_clusters, n_init=kmeans_n_init, random_state=seed).fit(emb)
            centers = kmeans.cluster_centers_
        probs = torch.from_numpy(soft_assign(emb, centers))
    confidence, labels = probs.max(dim=1)
    return Prediction(
        labels=labels.numpy().astype(np.int64),
        confidence=confidence.numpy().astype(np.float32, copy=False),
        probs=(
            probs.numpy().astype(np.float32, copy=False)
            if keep_probs
            else np.empty((len(labels), 0), dtype=np.float32)
        ),
        centers=None if centers is None else np.asarray(centers, dtype=np.float64),
    )


def _best_cluster(method: ClusteringMethod) -> Callable[[Tensor], Tensor]:
    """A batch's (confidence, label) pairs as a B x 2 tensor (labels exact below 2**24)."""

    def best(x: Tensor) -> Tensor:
        confidence, labels = method.cluster_probs(x).max(dim=1)
        return torch.stack([confidence.float(), labels.float()], dim=1)

    return best


def soft_assign(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Student-t soft assignment of ``x`` to ``centers``, scaled by the mean squared
    distance to the nearest centre so that it does not depend on the embedding scale."""
    c = np.asarray(centers, dtype=np.float64)
    d2 = np.maximum((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :], 0.0)
    scale = max(float(d2.min(axis=1).mean()), 1e-12)
    q = 1.0 / (1.0 + d2 / scale)
    return (q / q.sum(axis=1, keepdims=True)).astype(np.float32)
