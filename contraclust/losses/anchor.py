"""DECA's anchor loss: augmented views keep the cluster assignment of the clean image."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contraclust.errors import DataError
from contraclust.losses.dec import kl_rows
from contraclust.losses.inputs import compute_dtype

__all__ = ["AnchorLoss"]


class AnchorLoss(nn.Module):
    """Anchor loss of DECA.

    Sundareswaran, Herrera-Gerena, Just, Jannesari, "Cluster Analysis with Deep
    Embeddings and Contrastive Learning", arXiv 2109.12714 (2021): the third of its
    three losses. The soft assignment of the un-augmented ("anchor") image is the
    target for the assignments of its two augmented views::

        c    = q(x) detached
        loss = (1/B) sum_i KL(c_i || q1_i) + (1/B) sum_i KL(c_i || q2_i)

    The gradient reaches the views' assignments only, never the clean branch: the
    clean view says where a sample belongs, the augmentations must not move it.

    Inputs are ``B x K`` probabilities (rows summing to 1), e.g. the Student-t
    assignments of :func:`~contraclust.losses.dec.student_t_assignment`. The logs
    of ``q1`` and ``q2`` are taken after clamping to the smallest positive normal
    number of the compute dtype, so assignments that underflowed to 0 give a large
    but finite loss; ``0 log 0`` in ``c`` counts as 0. The computation runs in
    float32 (float64 for float64 inputs).

    Each term is a mean of per-sample values, so there is nothing to gather under
    data-parallel training: the training loop gives every process the same number
    of samples, and DDP's averaging of the gradients then gives the gradient of the
    global mean.

    Example::

        >>> loss_fn = AnchorLoss()
        >>> clean, q1, q2 = (torch.randn(16, 10).softmax(dim=1) for _ in range(3))
        >>> loss = loss_fn(clean, q1, q2)
    """

    def forward(self, clean: Tensor, q1: Tensor, q2: Tensor) -> Tensor:
        for name, t in (("clean", clean), ("q1", q1), ("q2", q2)):
            if t.dim() != 2 or t.shape[1] == 0:
                raise DataError(
                    f"{name} must be a 2-D tensor (B, K) with K >= 1, got shape {tuple(t.shape)}"
                )
            if t.shape != clean.shape:
                raise DataError(
                    f"clean, q1 and q2 must have the same shape, got {tuple(clean.shape)}, "
                    f"{tuple(q1.shape)} and {tuple(q2.shape)}"
                )
        if clean.shape[0] == 0:
            raise DataError("AnchorLoss needs at least one sample, got an empty batch")
        dtype = compute_dtype(
            torch.promote_types(clean.dtype, torch.promote_types(q1.dtype, q2.dtype))
        )
        target = clean.detach().to(dtype)
        tiny = torch.finfo(dtype).tiny
        total = clean.new_zeros((), dtype=dtype)
        for view in (q1, q2):
            log_view = view.to(dtype).clamp_min(tiny).log()
            total = total + kl_rows(target, log_view).mean()
        return total
