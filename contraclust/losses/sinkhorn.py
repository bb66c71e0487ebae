"""Sinkhorn-Knopp equipartition of SwAV: balanced soft cluster targets for a batch."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses.distributed import all_reduce_sum, gather_with_grad, world_size
from contraclust.losses.inputs import compute_dtype

__all__ = ["SinkhornKnopp", "check_sinkhorn_args", "sinkhorn_knopp"]


def check_sinkhorn_args(eps: float, n_iter: int) -> tuple[float, int]:
    """Return ``(eps, n_iter)`` checked: ``eps`` finite and > 0, ``n_iter`` an integer >= 1.

    Raises :class:`~contraclust.errors.ConfigError` naming the offending argument.
    """
    value = float(eps)
    if not math.isfinite(value) or value <= 0.0:
        raise ConfigError(f"sinkhorn eps must be a finite number > 0, got {eps!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ConfigError(f"sinkhorn n_iter must be an integer >= 1, got {n_iter!r}")
    return value, n_iter


def _log_sum_over_samples(log_q: Tensor, gather_distributed: bool) -> Tensor:
    """Per-cluster ``log sum_b exp(log_q[b, k])`` over the local or the global batch."""
    local = torch.logsumexp(log_q, dim=0)
    if not gather_distributed or world_size() == 1:
        return local
    # Each rank's per-cluster log-sum, stacked (P x K), then combined: the same result as
    # summing exp over the global batch, without ever leaving the log domain.
    return torch.logsumexp(gather_with_grad(local[None]), dim=0)


@torch.no_grad()
def sinkhorn_knopp(
    scores: Tensor, eps: float = 0.05, n_iter: int = 3, gather_distributed: bool = False
) -> Tensor:
    """Equipartitioned soft assignments of a batch (SwAV's Sinkhorn-Knopp, in the log domain).

    Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual
    Features by Contrasting Cluster Assignments" (SwAV), NeurIPS 2020, section 3.1
    (eq. 3 and its solution ``Q* = Diag(u) exp(C^T Z / eps) Diag(v)``), which follows
    Cuturi 2013. Starting from ``Q = exp(scores / eps)`` (``B x K``), it alternates
    ``n_iter`` times

    1. scale each column (cluster) to total mass ``1 / K``,
    2. scale each row (sample) to total mass ``1 / B``,

    and returns ``B * Q``: every row sums to 1 (exactly, up to rounding) and every
    column sums to about ``B / K`` (exactly in the limit of many iterations; SwAV uses
    3). ``B`` is the global batch under ``gather_distributed``.

    Every step is taken on ``log Q`` in float64 (log-sum-exp normalisations), so small
    ``eps`` and large scores neither overflow nor underflow: ``eps = 0.05`` with scores of
    magnitude 50 (``exp(1000)``) and ``K = 1000`` stays finite.

    Args:
        scores: ``B x K`` similarities of the samples to the prototypes (any float dtype;
            ``B >= 1``, ``K >= 1``). Only their values are used.
        eps: entropic regularisation, a finite number > 0 (SwAV and ConCURL: 0.05).
            Smaller values give sharper targets.
        n_iter: number of column/row normalisation rounds, an integer >= 1 (SwAV: 3).
        gather_distributed: under ``torch.distributed``, normalise the columns over the
            global batch (SwAV's distributed version): the per-cluster sums are
            all-reduced and ``B`` is the global batch size, so each process gets the rows
            of its own samples of the targets that one process would compute on the
            concatenated batch. Every process must call this the same number of times.

    Returns:
        ``B x K`` targets without gradient (the graph of ``scores`` is not used), in
        float32 (float64 for float64 scores).

    Raises:
        ConfigError: ``eps`` or ``n_iter`` out of range.
        DataError: ``scores`` not 2-D, or with no cluster column.

    Example::

        >>> scores = torch.randn(64, 10).clamp(-1, 1)
        >>> q = sinkhorn_knopp(scores, eps=0.05, n_iter=3)
        >>> q.sum(dim=1)  # all ones; q.sum(dim=0) is close to 64 / 10
    """
    eps, n_iter = check_sinkhorn_args(eps, n_iter)
    if scores.dim() != 2:
        raise DataError(f"scores must be a 2-D (B x K) tensor, got shape {tuple(scores.shape)}")
    if scores.shape[1] == 0:
        raise DataError("scores must have at least one cluster column")
    out_dtype = compute_dtype(scores.dtype)
    log_q = scores.detach().to(torch.float64) / eps
    n_clusters = scores.shape[1]
    batch = scores.shape[0]
    if gather_distributed and world_size() > 1:
        batch_size = all_reduce_sum(torch.tensor([float(batch)], device=scores.device))
        global_batch = float(batch_size.item())
    else:
        global_batch = float(batch)
    if global_batch == 0:
        raise DataError("sinkhorn_knopp needs at least one sample, got an empty batch")
    log_k, log_b = math.log(n_clusters), math.log(global_batch)
    for _ in range(n_iter):
        log_q = log_q - (_log_sum_over_samples(log_q, gather_distributed) + log_k)[None, :]
        log_q = log_q - (torch.logsumexp(log_q, dim=1, keepdim=True) + log_b)
    return (log_q + log_b).exp().to(out_dtype)


class SinkhornKnopp(nn.Module):
    """Module form of :func:`sinkhorn_knopp` (SwAV's equipartition), holding its settings.

    Args:
        eps: entropic regularisation, a finite number > 0 (SwAV, ConCURL: 0.05).
        n_iter: normalisation rounds, an integer >= 1 (SwAV, ConCURL: 3).
        gather_distributed: normalise the cluster masses over the global batch under
            ``torch.distributed`` (no effect in a single process).

    Invalid settings raise :class:`~contraclust.errors.ConfigError` at construction.
    The call returns detached ``B x K`` targets whose rows sum to 1 and whose columns
    sum to about ``B / K``::

        >>> balance = SinkhornKnopp(eps=0.05, n_iter=3)
        >>> q = balance(torch.randn(32, 10))  # 32 x 10, no gradient
    """

    def __init__(self, eps: float = 0.05, n_iter: int = 3, gather_distributed: bool = False):
        super().__init__()
        self.eps, self.n_iter = check_sinkhorn_args(eps, n_iter)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, scores: Tensor) -> Tensor:
        return sinkhorn_knopp(scores, self.eps, self.n_iter, self.gather_distributed)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, n_iter={self.n_iter}, gather_distributed={self.gather_distributed}"
