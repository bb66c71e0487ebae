"""The one place where losses talk to ``torch.distributed``.

Every batch statistic of a contrastive or balancing loss must be taken over the
*global* batch under data-parallel training. The losses do that by calling
:func:`gather_with_grad` on their inputs when their ``gather_distributed`` flag is
set; everything here degrades to the identity in a single process, so the same
loss runs unchanged in plain PyTorch, under Lightning, or under DDP.

Why the backward pass all-reduces: under DDP every process computes the *same*
loss ``L`` on the gathered global batch. Process ``r`` owns only its rows ``x_r``,
so the gradient it must propagate is ``dL/dx_r``. The gradient arriving at the
gather's output is ``dL/dX`` (identical on every rank); summing it over the ``P``
ranks gives ``P * dL/dX`` and slicing rank ``r``'s rows gives ``P * dL/dx_r``.
DDP then averages parameter gradients over the ``P`` ranks, which cancels the
factor ``P``: the result is exactly the single-process gradient of ``L`` on the
concatenated batch. Summing (rather than simply slicing the local gradient) also
stays correct when the loss differs between ranks, e.g. when each rank adds a
local term on top of the global one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum", "gather_with_grad", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group; 1 outside distributed training."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group; 0 outside distributed training."""
    return dist.get_rank() if is_distributed() else 0


def _gather_sizes(x: Tensor, n_ranks: int) -> list[int]:
    """Number of rows that each rank contributes, in rank order."""
    local = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes = [torch.zeros_like(local) for _ in range(n_ranks)]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward all-reduces and keeps this rank's rows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        n_ranks = dist.get_world_size()
        sizes = _gather_sizes(x, n_ranks)
        largest = max(sizes)
        local = x.contiguous()
        if local.shape[0] < largest:
            # all_gather needs equal shapes: pad to the largest rank, trim afterwards.
            pad = local.new_zeros((largest - local.shape[0], *local.shape[1:]))
            local = torch.cat([local, pad], dim=0)
        buffers = [torch.empty_like(local) for _ in range(n_ranks)]
        dist.all_gather(buffers, local)
        ctx.sizes = sizes
        ctx.rank = dist.get_rank()
        return torch.cat([buf[:size] for buf, size in zip(buffers, sizes, strict=True)], dim=0)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every process along dim 0, in rank order, keeping gradients.

    Ranks may hold different numbers of rows (e.g. the last, smaller batch of an
    epoch): the sizes are exchanged first and the rows padded for the transfer,
    then trimmed, so the result has ``sum of all ranks' rows`` rows and no padding.
    All other dimensions, the dtype and the device must agree across ranks.

    The backward pass all-reduces (sums) the incoming gradient and returns this
    rank's rows; together with DDP's averaging of parameter gradients this gives
    exactly the single-process gradient on the concatenated batch (see the module
    docstring). Every rank must call this function, and backward, the same number
    of times in the same order, as with any collective.

    Returns ``x`` itself when there is a single process.
    """
    if world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def all_reduce_sum(x: Tensor) -> Tensor:
    """Element-wise sum of ``x`` over all processes, without gradient.

    Out of place: ``x`` is not modified. Returns ``x`` detached (the identity)
    when there is a single process.
    """
    if world_size() == 1:
        return x.detach()
    total = x.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
