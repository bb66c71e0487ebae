"""Swapped prediction: each view predicts the balanced cluster targets of the other."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.errors import DataError
from contraclust.losses.inputs import check_temperature, check_view_pair, compute_dtype

__all__ = ["SwappedPredictionLoss", "swapped_cross_entropy"]


def swapped_cross_entropy(
    logits1: Tensor, logits2: Tensor, q1: Tensor, q2: Tensor, temperature: float
) -> Tensor:
    """``1/2 [CE(q2, softmax(logits1 / t)) + CE(q1, softmax(logits2 / t))]``, batch mean.

    The targets are detached here; shapes are the caller's to check. The computation runs
    in float32 (float64 when any input is float64).
    """
    dtype = compute_dtype(torch.promote_types(logits1.dtype, logits2.dtype))
    dtype = torch.promote_types(dtype, torch.promote_types(q1.dtype, q2.dtype))
    log_p1 = F.log_softmax(logits1.to(dtype) / temperature, dim=1)
    log_p2 = F.log_softmax(logits2.to(dtype) / temperature, dim=1)
    ce_1 = -(q2.detach().to(dtype) * log_p1).sum(dim=1).mean()
    ce_2 = -(q1.detach().to(dtype) * log_p2).sum(dim=1).mean()
    return 0.5 * (ce_1 + ce_2)


class SwappedPredictionLoss(nn.Module):
    """Swapped prediction of SwAV, ConCURL's *population consistency* loss.

    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments" (SwAV), NeurIPS 2020, eqs. 1-2; used unchanged as ``L_pop`` by
    Deshmukh, Regatti, Manavoglu, Dogan, "Representation Learning for Clustering via
    Building Consensus" (ConCURL), Machine Learning 2022. With scores ``s1``, ``s2``
    (``B x K`` similarities of the two views to the prototypes) and targets ``q1``,
    ``q2`` (usually :func:`~contraclust.losses.sinkhorn_knopp` of the scores)::

        p_v   = softmax(s_v / temperature)
        L_pop = 1/2 [ CE(q2, p1) + CE(q1, p2) ],   CE(q, p) = -sum_k q_k log p_k,

    averaged over the batch: view 1 predicts the cluster targets of view 2 and vice
    versa. The targets get no gradient (they are detached here). The loss is a mean of
    per-sample terms, so it needs no gathering under DDP: the average of the
    per-process losses (DDP's gradient averaging) is the loss of the global batch
    when the processes hold equal batches.

    Args:
        temperature: softmax temperature of the predictions, a finite number > 0
            (SwAV and ConCURL: 0.1); anything else raises
            :class:`~contraclust.errors.ConfigError`.

    Inputs: ``s1, s2, q1, q2`` all ``B x K`` (targets' rows should sum to 1; not
    checked). Half-precision inputs are computed in float32.

    Example::

        >>> from contraclust.losses import sinkhorn_knopp
        >>> s1, s2 = torch.randn(32, 10), torch.randn(32, 10)
        >>> q1, q2 = sinkhorn_knopp(s1), sinkhorn_knopp(s2)
        >>> loss = SwappedPredictionLoss(0.1)(s1, s2, q1, q2)
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(self, s1: Tensor, s2: Tensor, q1: Tensor, q2: Tensor) -> Tensor:
        check_view_pair(s1, s2, ("s1", "s2"))
        check_view_pair(q1, q2, ("q1", "q2"))
        if q1.shape != s1.shape:
            raise DataError(
                f"targets q1, q2 must have the shape of the scores {tuple(s1.shape)}, "
                f"got {tuple(q1.shape)}"
            )
        if s1.shape[0] == 0:
            raise DataError("SwappedPredictionLoss needs at least one sample, got an empty batch")
        return swapped_cross_entropy(s1, s2, q1, q2, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
