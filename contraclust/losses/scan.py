"""The SCAN loss: neighbours agree, clusters are all used."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses.distributed import gather_with_grad
from contraclust.losses.inputs import check_view_pair, compute_dtype

__all__ = ["SCANLoss"]


class SCANLoss(nn.Module):
    """The clustering loss of SCAN (eq. 2).

    Van Gansbeke, Vandenhende, Georgoulis, Proesmans, Van Gool, "SCAN: Learning to
    Classify Images without Labels", ECCV 2020, Sec. 2.2, eq. 2. With ``p`` the
    ``B x K`` cluster probabilities of the anchors and ``q`` those of one mined
    neighbour of each anchor::

        consistency = -(1/B) sum_i log <p_i, q_i>
        entropy     = H(m) = -sum_k m_k log m_k,   m = (1/B) sum_i p_i
        loss        = consistency - entropy_weight * entropy

    The first term makes a sample and its neighbour confident in the same cluster;
    the second, maximised, spreads the batch over all K clusters (without it every
    sample goes to one). The entropy is taken of the anchors' mean prediction, as in
    the authors' code. SCAN's configurations use ``entropy_weight`` 5.

    Args:
        entropy_weight: weight ``lambda`` of the entropy term, a finite number >= 0.
        gather_distributed: under ``torch.distributed``, gather ``p`` and ``q`` over
            the global batch (with gradient) before anything else, so that the mean
            prediction ``m`` is that of the global batch and both terms are means
            over it (exact also when the processes hold batches of different sizes).

    Inputs are probabilities (softmax rows, not checked to avoid a device
    synchronisation), two 2-D tensors of the same shape with ``K >= 2``; anything
    else raises :class:`~contraclust.errors.DataError`. The computation runs in
    float32 (float64 for float64 inputs).

    Example::

        >>> loss_fn = SCANLoss(entropy_weight=5.0)
        >>> p = torch.randn(32, 10).softmax(dim=1)
        >>> q = torch.randn(32, 10).softmax(dim=1)
        >>> terms = loss_fn.parts(p, q)  # {"consistency": ..., "entropy": ...}
        >>> loss = loss_fn(p, q)  # terms["consistency"] - 5 * terms["entropy"]
    """

    def __init__(self, entropy_weight: float = 5.0, gather_distributed: bool = False) -> None:
        super().__init__()
        weight = float(entropy_weight)
        if not math.isfinite(weight) or weight < 0.0:
            raise ConfigError(
                f"entropy_weight must be a finite number >= 0, got {entropy_weight!r}"
            )
        self.entropy_weight = weight
        self.gather_distributed = bool(gather_distributed)

    def parts(self, anchors: Tensor, neighbours: Tensor) -> dict[str, Tensor]:
        """``{"consistency": ..., "entropy": ...}``: the two terms, unweighted, with
        their gradients (``entropy`` is ``H(m)``, to be maximised)."""
        check_view_pair(anchors, neighbours, ("anchors", "neighbours"))
        if anchors.shape[1] < 2:
            raise DataError(f"anchors need at least 2 clusters (columns), got {anchors.shape[1]}")
        if anchors.shape[0] == 0:
            raise DataError("SCANLoss needs at least one sample, got an empty batch")
        dtype = compute_dtype(torch.promote_types(anchors.dtype, neighbours.dtype))
        pair = torch.cat([anchors.to(dtype), neighbours.to(dtype)], dim=1)
        if self.gather_distributed:
            pair = gather_with_grad(pair)
        p, q = pair.chunk(2, dim=1)
        tiny = torch.finfo(dtype).tiny
        # <p, q> is 0 only when the two put all their mass on different clusters.
        consistency = -(p * q).sum(dim=1).clamp_min(tiny).log().mean()
        mean = p.mean(dim=0)
        entropy = -(mean * mean.clamp_min(tiny).log()).sum()
        return {"consistency": consistency, "entropy": entropy}

    def forward(self, anchors: Tensor, neighbours: Tensor) -> Tensor:
        terms = self.parts(anchors, neighbours)
        return terms["consistency"] - self.entropy_weight * terms["entropy"]

    def extra_repr(self) -> str:
        return f"entropy_weight={self.entropy_weight}, gather_distributed={self.gather_distributed}"
