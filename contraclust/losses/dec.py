"""DEC: the Student-t soft assignment, its sharpened target and the KL clustering loss."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses.distributed import all_reduce_sum, gather_with_grad
from contraclust.losses.inputs import compute_dtype

__all__ = [
    "DECLoss",
    "check_student_t_alpha",
    "dec_target",
    "kl_rows",
    "student_t_assignment",
    "student_t_log_assignment",
]


def check_student_t_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float, or raise :class:`ConfigError` unless finite and > 0."""
    value = float(alpha)
    if not math.isfinite(value) or value <= 0.0:
        raise ConfigError(
            f"{name} (degrees of freedom of the Student-t kernel) must be a finite "
            f"number > 0, got {alpha!r}"
        )
    return value


def _check_features(h: Tensor, centers: Tensor) -> None:
    if h.dim() != 2:
        raise DataError(f"h must be a 2-D tensor (B, d), got shape {tuple(h.shape)}")
    if centers.dim() != 2 or centers.shape[0] == 0:
        raise DataError(
            f"centers must be a 2-D tensor (K, d) with K >= 1, got shape {tuple(centers.shape)}"
        )
    if h.shape[1] != centers.shape[1]:
        raise DataError(
            f"h and centers must have the same feature width, got h {tuple(h.shape)} "
            f"and centers {tuple(centers.shape)}"
        )


def student_t_log_assignment(h: Tensor, centers: Tensor, alpha: float = 1.0) -> Tensor:
    """``log q`` of :func:`student_t_assignment`, computed in the log domain (B x K).

    The kernel is normalised with a log-softmax, so the result is finite however far
    a sample lies from every centre (the plain kernel would underflow to 0 there).
    """
    alpha = check_student_t_alpha(alpha)
    _check_features(h, centers)
    dtype = compute_dtype(torch.promote_types(h.dtype, centers.dtype))
    h, centers = h.to(dtype), centers.to(dtype)
    # ||h - mu||^2 expanded: B x K x d intermediates would not fit for large K and d.
    # The rounding error this brings is far below the 1 that the kernel adds to it.
    sq_dist = (
        h.pow(2).sum(dim=1, keepdim=True) - 2.0 * h @ centers.T + centers.pow(2).sum(dim=1)
    ).clamp_min(0.0)
    log_kernel = -0.5 * (alpha + 1.0) * torch.log1p(sq_dist / alpha)
    return torch.log_softmax(log_kernel, dim=1)


def student_t_assignment(h: Tensor, centers: Tensor, alpha: float = 1.0) -> Tensor:
    """Soft assignment of features to centres with a Student-t kernel (DEC's ``q``).

    Xie, Girshick, Farhadi, "Unsupervised Deep Embedding for Clustering Analysis",
    ICML 2016, eq. 1::

        q_ij = (1 + ||h_i - mu_j||^2 / alpha) ^ (-(alpha + 1) / 2),  normalised over j

    Args:
        h: ``B x d`` features.
        centers: ``K x d`` cluster centres ``mu``.
        alpha: degrees of freedom of the kernel, a finite number > 0 (DEC: 1).

    Returns a ``B x K`` tensor whose rows sum to 1, differentiable in ``h`` and
    ``centers``; float32 for half-precision or float32 inputs, float64 for float64.
    Bad shapes raise :class:`~contraclust.errors.DataError`, a bad ``alpha``
    :class:`~contraclust.errors.ConfigError`.

    Example::

        >>> q = student_t_assignment(torch.randn(8, 16), torch.randn(3, 16))
        >>> q.shape
        torch.Size([8, 3])
    """
    return student_t_log_assignment(h, centers, alpha).exp()


def _target_from_q(q: Tensor, cluster_mass: Tensor) -> Tensor:
    tiny = torch.finfo(q.dtype).tiny
    weighted = q.pow(2) / cluster_mass.clamp_min(tiny)
    return weighted / weighted.sum(dim=1, keepdim=True).clamp_min(tiny)


@torch.no_grad()
def dec_target(q: Tensor, gather_distributed: bool = False) -> Tensor:
    """DEC's auxiliary target distribution ``p`` for soft assignments ``q`` (B x K).

    Xie et al. 2016, eq. 3::

        f_j  = sum_i q_ij                      (soft cluster frequency)
        p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')

    Squaring sharpens each row towards its most likely clusters; dividing by ``f_j``
    keeps large clusters from absorbing the others. The result is detached, its rows
    sum to 1, and it is computed in float32 (float64 for float64 inputs).

    Args:
        q: ``B x K`` soft assignments (rows summing to 1).
        gather_distributed: under ``torch.distributed``, sum ``f`` over the global
            batch (all-reduce), so that each process's rows of ``p`` equal the rows a
            single process would compute on the concatenated batch.
    """
    if q.dim() != 2 or q.shape[1] == 0:
        raise DataError(f"q must be a 2-D tensor (B, K) with K >= 1, got shape {tuple(q.shape)}")
    q = q.detach().to(compute_dtype(q.dtype))
    cluster_mass = q.sum(dim=0)
    if gather_distributed:
        cluster_mass = all_reduce_sum(cluster_mass)
    return _target_from_q(q, cluster_mass)


def kl_rows(p: Tensor, log_q: Tensor) -> Tensor:
    """``KL(p_i || q_i)`` for each row ``i``: ``sum_j p_ij (log p_ij - log q_ij)``.

    ``0 log 0`` counts as 0, so targets with exact zeros are fine; ``log_q`` must be
    finite where ``p`` is positive.
    """
    return (torch.xlogy(p, p) - p * log_q).sum(dim=1)


class DECLoss(nn.Module):
    """DEC's clustering loss ``KL(P || Q)`` with the Student-t assignment ``Q``.

    Xie, Girshick, Farhadi, ICML 2016, eqs. 1-3 (section 3.1.1): ``q`` is the
    Student-t soft assignment of the features ``h`` to the centres ``mu`` (eq. 1),
    ``p`` the sharpened target of eq. 3, and the loss is::

        loss = (1 / B) * sum_i KL(p_i || q_i)

    The paper sums over the samples; we average so that the scale does not depend on
    the batch size. The gradient reaches ``h`` and ``centers`` through ``q`` only:
    ``p`` is a fixed target.

    By default ``p`` is computed from the batch itself (a per-batch target, as DECA
    does). DEC proper computes ``p`` over the whole data set and refreshes it every
    ``T`` iterations: pass those rows as ``target`` (B x K, rows summing to 1) and
    they are used as they are.

    Args:
        alpha: degrees of freedom of the Student-t kernel, a finite number > 0 (DEC
            and DECA use 1). Anything else raises
            :class:`~contraclust.errors.ConfigError`.
        gather_distributed: under ``torch.distributed``, gather ``log q`` (with
            gradient) and any ``target`` from all processes, so that the soft cluster
            frequencies of the per-batch target and the mean are those of the global
            batch: ``P`` processes with ``B`` samples each give the loss and gradients
            of one process with ``P * B`` samples. Ranks may hold different ``B``.

    Example::

        >>> loss_fn = DECLoss(alpha=1.0)
        >>> h = torch.randn(32, 64, requires_grad=True)
        >>> centers = torch.randn(10, 64, requires_grad=True)
        >>> loss = loss_fn(h, centers)                # per-batch target
        >>> p = dec_target(student_t_assignment(h, centers))
        >>> loss = loss_fn(h, centers, target=p)      # an external target
    """

    def __init__(self, alpha: float = 1.0, gather_distributed: bool = False) -> None:
        super().__init__()
        self.alpha = check_student_t_alpha(alpha)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, h: Tensor, centers: Tensor, target: Tensor | None = None) -> Tensor:
        log_q = student_t_log_assignment(h, centers, self.alpha)
        k = log_q.shape[1]
        if target is not None:
            if target.shape != log_q.shape:
                raise DataError(
                    f"target must have shape (B, K) = {tuple(log_q.shape)}, "
                    f"got {tuple(target.shape)}"
                )
            # Target and log q travel together: one collective instead of two.
            log_q = torch.cat([log_q, target.detach().to(log_q.dtype)], dim=1)
        if self.gather_distributed:
            log_q = gather_with_grad(log_q)
        if log_q.shape[0] == 0:
            raise DataError("DECLoss needs at least one sample, got an empty batch")
        if target is not None:
            log_q, target = log_q.split(k, dim=1)
        else:
            # Already the global batch: the frequencies need no further reduction.
            q = log_q.detach().exp()
            target = _target_from_q(q, q.sum(dim=0))
        return kl_rows(target, log_q).mean()

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gather_distributed={self.gather_distributed}"
