"""A method's SwAV queue for its Sinkhorn step, and from which epoch it runs.

Shared by ConCURL and CLC (``queue_length``, ``queue_start_epoch``). The queue itself is
:class:`~contraclust.losses.queue.EmbeddingQueue`; this module adds the schedule.

The method base class does not tell a method the epoch yet, so :meth:`SinkhornQueue.epoch`
derives it from a count of training steps: the one place that does. When the base class
gets its epoch hooks (``on_step(step, epoch)``), that method and ``steps_done`` give way
to the hook's epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from contraclust.checks import check_int, check_number
from contraclust.errors import ConfigError
from contraclust.losses.distributed import world_size
from contraclust.losses.queue import EmbeddingQueue

__all__ = ["SinkhornQueue", "check_queue_params"]


def check_queue_params(length: int, start_epoch: float, sinkhorn_runs: bool) -> None:
    """Validate a method's ``queue_length`` and ``queue_start_epoch``.

    ``queue_length``: an integer >= 0 (0: no queue); any length works, a multiple of the
    batch is not required. ``queue_start_epoch``: a finite number >= 0 (fractions of an
    epoch allowed), only meaningful with a queue. A queue needs a Sinkhorn step to feed.
    """
    check_int("queue_length", length, low=0)
    check_number("queue_start_epoch", start_epoch, strict=False)
    if length == 0 and start_epoch != 0:
        raise ConfigError(
            f"queue_start_epoch is {start_epoch} but queue_length is 0 (no queue): "
            "set queue_length to the number of embeddings to keep, or drop queue_start_epoch"
        )
    if length > 0 and not sinkhorn_runs:
        raise ConfigError(
            f"queue_length is {length} but these settings run no Sinkhorn step for the "
            "queue to join: set queue_length to 0, or use settings with Sinkhorn targets"
        )


class SinkhornQueue(nn.Module):
    """SwAV's queue for a two-view method's Sinkhorn targets, from ``start_epoch`` on.

    From epoch ``start_epoch`` (a fraction allowed) each training step pushes the
    batch's embeddings into the queue; once it holds ``length`` rows per view, every
    Sinkhorn step balances the batch together with it (see
    :meth:`EmbeddingQueue.balanced_targets`). Before that, and outside training, the
    batch is balanced alone. One queue per process under DDP, column sums global.

    Args:
        length: queued embeddings per view and per process (>= 1).
        dim: width of the queued embeddings.
        start_epoch: epoch from which the queue is filled, a number >= 0.
        n_samples: size of the training set (steps per epoch follow from it).
    """

    steps_done: Tensor

    def __init__(self, length: int, dim: int, start_epoch: float, n_samples: int) -> None:
        super().__init__()
        self.queue = EmbeddingQueue(length, dim, n_views=2, gather_distributed=True)
        self.start_epoch = float(start_epoch)
        self.n_samples = n_samples
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def epoch(self, batch: int) -> float:
        """Epochs done before this step, ``batch`` samples per process per step.

        The loop's epoch is ``n_samples // (batch * processes)`` steps.
        """
        steps_per_epoch = max(1, self.n_samples // max(1, batch * world_size()))
        return int(self.steps_done) / steps_per_epoch

    def targets(
        self,
        scores: Sequence[Tensor],
        embeddings: Sequence[Tensor],
        score: Callable[[Tensor], Tensor],
        balance: Callable[[Tensor], Tensor],
    ) -> list[Tensor]:
        """Sinkhorn targets of both views' ``B x K`` scores, with the queue once it runs."""
        if not self.training:
            return [balance(s) for s in scores]
        started = self.epoch(scores[0].shape[0]) >= self.start_epoch
        self.steps_done += 1
        if not started:
            return [balance(s) for s in scores]
        return self.queue.balanced_targets(scores, embeddings, score, balance)

    def extra_repr(self) -> str:
        return f"start_epoch={self.start_epoch}"
