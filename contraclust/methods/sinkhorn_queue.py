"""A method's SwAV queue for its Sinkhorn step, and from which epoch it runs.

Shared by ConCURL and CLC (``queue_length``, ``queue_start_epoch``). The queue itself is
:class:`~contraclust.losses.queue.EmbeddingQueue`; this module adds the schedule.

The method's ``on_step`` hook passes the trainer's step to :meth:`SinkhornQueue.schedule`,
which turns ``queue_start_epoch`` into a step by the rule every schedule follows
(:func:`~contraclust.methods.base.steps_in`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from contraclust.checks import check_int, check_number
from contraclust.errors import ConfigError
from contraclust.losses.queue import EmbeddingQueue
from contraclust.methods.base import late_schedule, steps_in

__all__ = ["SinkhornQueue", "check_queue_params", "check_queue_schedule"]


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


def check_queue_schedule(method: str, length: int, start_epoch: float, epochs: int) -> None:
    """Refuse a queue that would not start filling within the run's ``epochs``."""
    if length > 0 and start_epoch > 0 and start_epoch >= epochs:
        raise ConfigError(late_schedule(method, "queue_start_epoch", start_epoch, epochs))


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
    """

    def __init__(self, length: int, dim: int, start_epoch: float) -> None:
        super().__init__()
        self.queue = EmbeddingQueue(length, dim, n_views=2, gather_distributed=True)
        self.start_epoch = float(start_epoch)
        #: Whether this step fills the queue (set by ``schedule``).
        self.running = self.start_epoch == 0

    def schedule(self, step: int, steps_per_epoch: int) -> None:
        """Before training step ``step`` (counted from the start of the run)."""
        self.running = step >= steps_in(self.start_epoch, steps_per_epoch)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before the trainer owned the step count carry the queue's.
        state_dict.pop(prefix + "steps_done", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def targets(
        self,
        scores: Sequence[Tensor],
        embeddings: Sequence[Tensor],
        score: Callable[[Tensor], Tensor],
        balance: Callable[[Tensor], Tensor],
    ) -> list[Tensor]:
        """Sinkhorn targets of both views' ``B x K`` scores, with the queue once it runs."""
        if not self.training or not self.running:
            return [balance(s) for s in scores]
        return self.queue.balanced_targets(scores, embeddings, score, balance)

    def extra_repr(self) -> str:
        return f"start_epoch={self.start_epoch}"
