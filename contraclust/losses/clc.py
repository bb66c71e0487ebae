"""The contrastive loss of CLC / CDC: InfoNCE on a categorical plus an instance part."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.errors import DataError
from contraclust.losses.distributed import gather_with_grad
from contraclust.losses.inputs import check_temperature, check_view_pair, compute_dtype

__all__ = ["CLCLoss", "clc_info_nce"]


def clc_info_nce(
    v1: Tensor,
    v2: Tensor,
    c1: Tensor,
    c2: Tensor,
    instance_temperature: float,
    category_temperature: float,
) -> Tensor:
    """CLC's InfoNCE over the ``2N`` views, mean over the ``2N`` anchors.

    ``v1``, ``v2`` (N x D) are the instance parts, L2-normalised here; ``c1``, ``c2``
    (N x K) the categorical parts, used as given. Row ``i`` of the first view and
    row ``i`` of the second are a positive pair. No gathering and no casting:
    callers do both beforehand.
    """
    n = v1.shape[0]
    v = F.normalize(torch.cat([v1, v2], dim=0), dim=1)
    c = torch.cat([c1, c2], dim=0)
    # sim(i, k) = c_i.c_k / tau_c + v_i.v_k / tau_v. Inside the log-sum-exp of the
    # cross entropy, exp(sim) = w_ik exp(v_i.v_k / tau_v) with w_ik = exp(c_i.c_k / tau_c).
    logits = (c @ c.T) / category_temperature + (v @ v.T) / instance_temperature
    # A view is never its own negative; the mask is built for the batch at hand.
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=v.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    twins = torch.arange(2 * n, device=v.device).roll(n)
    return F.cross_entropy(logits, twins)


class CLCLoss(nn.Module):
    """Contrastive loss of CLC / CDC with cluster-weighted negatives.

    Ding, Zhang, Yang, Krovi, Luo, "CLC: Cluster Assignment via Contrastive
    Representation Learning" (v2: "Contrastive Representation Disentanglement for
    Clustering"), arXiv 2306.05439. Only the abstract could be read and no code was
    published, so this is our reconstruction of it, not the paper's equation.

    Each view's representation has two parts: a categorical part ``c`` (``K``
    cluster probabilities) and an instance part ``v`` (L2-normalised here). With
    the ``2B`` views of a batch and ``j(i)`` the twin of view ``i``::

        sim(i, k) = c_i . c_k / tau_c + v_i . v_k / tau_v
        l_i       = -log( exp(sim(i, j(i))) / sum_{k != i} exp(sim(i, k)) )
        loss      = mean of l_i over the 2B views

    Each negative ``k`` therefore enters the denominator as
    ``w_ik * exp(v_i . v_k / tau_v)`` with ``w_ik = exp(c_i . c_k / tau_c)``: the
    negatives the model puts in the anchor's cluster weigh more (the abstract's
    "different weights for negatives", which focuses the loss on hard negatives),
    and the positive pair is also rewarded for agreeing on its cluster. When every
    ``c`` is the same the weights are a constant factor and the loss is NT-Xent on
    ``v`` at temperature ``tau_v``. Computed with a log-sum-exp (a cross entropy),
    in float32 (float64 for float64 inputs).

    Args:
        instance_temperature: ``tau_v``, a finite number > 0 (default 0.5, the
            NT-Xent temperature of SimCLR and CC; our choice).
        category_temperature: ``tau_c``, a finite number > 0 (default 1.0, our
            choice: with probabilities, ``w_ik`` then lies in ``[1, e]``).
        gather_distributed: under ``torch.distributed``, gather all four inputs
            from every process (with gradient, see
            :func:`~contraclust.losses.distributed.gather_with_grad`) so that every
            process computes the loss of the global batch, with the negatives of
            all processes. No effect in a single process.

    Invalid hyper-parameters raise :class:`~contraclust.errors.ConfigError` naming
    the parameter. ``v1``, ``v2`` must be ``B x D`` and ``c1``, ``c2`` ``B x K``
    with the same ``B`` (else :class:`~contraclust.errors.DataError`); the ``c``
    should be probabilities but are not checked (that would synchronise the
    device). The batch size may change from call to call, and under
    ``gather_distributed`` ranks may hold different ``B``.

    Example::

        >>> loss_fn = CLCLoss(instance_temperature=0.5, category_temperature=1.0)
        >>> v1, v2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> c1, c2 = torch.randn(8, 10).softmax(1), torch.randn(8, 10).softmax(1)
        >>> loss = loss_fn(v1, v2, c1, c2)  # a scalar tensor
    """

    def __init__(
        self,
        instance_temperature: float = 0.5,
        category_temperature: float = 1.0,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.instance_temperature = check_temperature(instance_temperature, "instance_temperature")
        self.category_temperature = check_temperature(category_temperature, "category_temperature")
        self.gather_distributed = bool(gather_distributed)

    def forward(self, v1: Tensor, v2: Tensor, c1: Tensor, c2: Tensor) -> Tensor:
        check_view_pair(v1, v2, ("v1", "v2"))
        check_view_pair(c1, c2, ("c1", "c2"))
        if c1.shape[0] != v1.shape[0]:
            raise DataError(
                f"c1 and v1 must have the same number of rows, got {c1.shape[0]} and {v1.shape[0]}"
            )
        dtype = compute_dtype(
            torch.promote_types(
                torch.promote_types(v1.dtype, v2.dtype), torch.promote_types(c1.dtype, c2.dtype)
            )
        )
        d, k = v1.shape[1], c1.shape[1]
        # All four travel together: one collective instead of four.
        rows = torch.cat([t.to(dtype) for t in (v1, v2, c1, c2)], dim=1)
        if self.gather_distributed:
            rows = gather_with_grad(rows)
        if rows.shape[0] == 0:
            raise DataError("CLCLoss needs at least one pair of views, got an empty batch")
        a, b, p, q = rows.split([d, d, k, k], dim=1)
        return clc_info_nce(a, b, p, q, self.instance_temperature, self.category_temperature)

    def extra_repr(self) -> str:
        return (
            f"instance_temperature={self.instance_temperature}, "
            f"category_temperature={self.category_temperature}, "
            f"gather_distributed={self.gather_distributed}"
        )
