"""NT-Xent (normalised temperature-scaled cross entropy), the InfoNCE loss of SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.errors import DataError
from contraclust.losses.distributed import gather_with_grad
from contraclust.losses.inputs import check_temperature, check_view_pair, compute_dtype

__all__ = ["NTXentLoss", "nt_xent"]


def nt_xent(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """NT-Xent between the rows of ``a`` and ``b`` (N x D each), mean over the 2N anchors.

    Row ``i`` of ``a`` and row ``i`` of ``b`` are a positive pair; every other of the
    2N rows is a negative. Rows are L2-normalised here. No gathering: callers gather
    first. The computation runs in the dtype given (callers cast beforehand).
    """
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b], dim=0), dim=1)
    logits = z @ z.T / temperature
    # A view is never its own negative. The mask is built for the batch at hand.
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    # The twin of anchor i is i + n (first half) or i - n (second half).
    targets = torch.arange(2 * n, device=z.device).roll(n)
    return F.cross_entropy(logits, targets)


class NTXentLoss(nn.Module):
    """NT-Xent / InfoNCE loss of SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020, eq. 1).

    For a batch of ``B`` pairs the ``2B`` embeddings are L2-normalised; for anchor
    ``i`` with twin ``j(i)``::

        l_i = -log( exp(s_i,j(i) / t) / sum_{k != i} exp(s_ik / t) ),   s = cosine similarity

    so each anchor has one positive and ``2B - 2`` negatives, and the loss is the
    mean of ``l_i`` over the ``2B`` anchors. Its value lies in ``[0, inf)``.

    Args:
        temperature: ``t`` above, a finite number > 0 (SimCLR uses 0.5 for CIFAR;
            smaller values sharpen the contrast). Anything else raises
            :class:`~contraclust.errors.ConfigError`.
        gather_distributed: under ``torch.distributed``, gather ``z1`` and ``z2``
            from all processes (with gradient, see
            :func:`~contraclust.losses.distributed.gather_with_grad`) so that every
            process computes the loss of the global batch, with the negatives of all
            processes. No effect in a single process.

    Inputs ``z1`` and ``z2`` are ``B x D`` (row ``b`` of each: two views of sample
    ``b``), of any floating dtype; the computation runs in float32 (float64 for
    float64 inputs), so half-precision inputs neither overflow nor lose the
    softmax. The batch size may change from call to call. Under
    ``gather_distributed`` ranks may hold different ``B``.

    Example::

        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> loss = loss_fn(z1, z2)  # a scalar tensor
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        check_view_pair(z1, z2, ("z1", "z2"))
        dtype = compute_dtype(torch.promote_types(z1.dtype, z2.dtype))
        # The two views travel together: one collective instead of two.
        pair = torch.cat([z1.to(dtype), z2.to(dtype)], dim=1)
        if self.gather_distributed:
            pair = gather_with_grad(pair)
        if pair.shape[0] == 0:
            raise DataError("NTXentLoss needs at least one pair of views, got an empty batch")
        a, b = pair.split(z1.shape[1], dim=1)
        return nt_xent(a, b, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"
