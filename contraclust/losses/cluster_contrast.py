"""Cluster-level contrastive loss of Contrastive Clustering (CC)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses.distributed import gather_with_grad
from contraclust.losses.inputs import check_temperature, check_view_pair, compute_dtype
from contraclust.losses.ntxent import nt_xent

__all__ = ["ClusterContrastiveLoss", "entropy_gap"]


def entropy_gap(p: Tensor) -> Tensor:
    """``log K - H(m)`` where ``m`` is the mean row of the N x K assignment matrix ``p``.

    ``m`` is renormalised to sum to 1 (a no-op for softmax rows, and what CC's code
    does), so the value lies in ``[0, log K]``: 0 for a uniform use of the clusters,
    ``log K`` when every sample goes to one cluster.
    """
    mean = p.sum(dim=0)
    mean = mean / mean.sum()
    # m log m -> 0 as m -> 0; clamping inside the log keeps the gradient finite there.
    neg_entropy = (mean * mean.clamp_min(torch.finfo(mean.dtype).tiny).log()).sum()
    return math.log(p.shape[1]) + neg_entropy


class ClusterContrastiveLoss(nn.Module):
    """Cluster-level contrastive loss of Contrastive Clustering.

    Li, Hu, Liu, Peng, Zhou, Peng, "Contrastive Clustering", AAAI 2021: the
    cluster-level contrastive head (section "Cluster-level Contrastive Head"; the
    loss ``l_hat`` of the cluster pairs, its entropy term ``H(Y)`` and their sum
    ``L_cluster``).

    ``p1`` and ``p2`` are the ``B x K`` soft assignments (softmax rows) of two views
    of the same ``B`` samples. Column ``k`` of ``p1`` and column ``k`` of ``p2`` are
    two "views" of cluster ``k``; the loss is::

        contrast = NT-Xent over the 2K columns (cosine similarity / temperature),
                   positive = the same cluster in the other view, mean over 2K anchors
        entropy  = (log K - H(m1)) + (log K - H(m2)),  m = mean over the batch of p
        loss     = contrast + entropy_weight * entropy

    The entropy term keeps the model from putting every sample in one cluster. The
    paper writes it as ``-H``; we add ``log K`` per view (a constant, so gradients
    are the paper's) so that it is >= 0 and is 0 exactly when the clusters are used
    uniformly, as CC's code does. The mean assignment is renormalised to sum to 1
    (a no-op for softmax rows).

    Args:
        temperature: temperature of the column contrast, a finite number > 0
            (CC uses 1.0).
        entropy_weight: weight of the entropy term, a finite number >= 0 (CC: 1.0).
        gather_distributed: under ``torch.distributed``, gather ``p1`` and ``p2``
            over the global batch (with gradient) before anything else, so that the
            columns and the mean assignments are those of the global batch.

    Invalid hyper-parameters raise :class:`~contraclust.errors.ConfigError`; inputs
    that are not two 2-D tensors of the same shape with ``K >= 2`` columns raise
    :class:`~contraclust.errors.DataError`. The inputs should be probabilities
    (non-negative rows); they are not checked, to avoid a device synchronisation.
    The computation runs in float32 (float64 for float64 inputs).

    Use :meth:`parts` to get the two terms separately (for logging)::

        >>> loss_fn = ClusterContrastiveLoss()
        >>> p1 = torch.randn(32, 10).softmax(dim=1)
        >>> p2 = torch.randn(32, 10).softmax(dim=1)
        >>> loss = loss_fn(p1, p2)
        >>> terms = loss_fn.parts(p1, p2)  # {"contrast": ..., "entropy": ...}
        >>> # loss == terms["contrast"] + loss_fn.entropy_weight * terms["entropy"]
    """

    def __init__(
        self,
        temperature: float = 1.0,
        entropy_weight: float = 1.0,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        weight = float(entropy_weight)
        if not math.isfinite(weight) or weight < 0.0:
            raise ConfigError(
                f"entropy_weight must be a finite number >= 0, got {entropy_weight!r}"
            )
        self.entropy_weight = weight
        self.gather_distributed = bool(gather_distributed)

    def parts(self, p1: Tensor, p2: Tensor) -> dict[str, Tensor]:
        """The two terms, unweighted: ``{"contrast": ..., "entropy": ...}`` (scalars).

        ``"entropy"`` is ``(log K - H(m1)) + (log K - H(m2))``, before multiplication
        by ``entropy_weight``; both terms keep their gradients.
        """
        check_view_pair(p1, p2, ("p1", "p2"))
        k = p1.shape[1]
        if k < 2:
            raise DataError(f"p1 and p2 need at least 2 clusters (columns), got {k}")
        dtype = compute_dtype(torch.promote_types(p1.dtype, p2.dtype))
        pair = torch.cat([p1.to(dtype), p2.to(dtype)], dim=1)
        if self.gather_distributed:
            pair = gather_with_grad(pair)
        if pair.shape[0] == 0:
            raise DataError("ClusterContrastiveLoss needs at least one sample, got an empty batch")
        a, b = pair.split(k, dim=1)
        return {
            "contrast": nt_xent(a.T, b.T, self.temperature),
            "entropy": entropy_gap(a) + entropy_gap(b),
        }

    def forward(self, p1: Tensor, p2: Tensor) -> Tensor:
        terms = self.parts(p1, p2)
        return terms["contrast"] + self.entropy_weight * terms["entropy"]

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, entropy_weight={self.entropy_weight}, "
            f"gather_distributed={self.gather_distributed}"
        )
