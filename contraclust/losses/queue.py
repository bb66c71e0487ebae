"""SwAV's queue of recent embeddings: Sinkhorn balances the batch together with them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses.distributed import gather_with_grad, rank, world_size

__all__ = ["EmbeddingQueue"]


class EmbeddingQueue(nn.Module):
    """The last ``length`` embeddings of each view, whose scores join the batch's in Sinkhorn.

    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments" (SwAV), NeurIPS 2020, section 4 ("small batches"): the equipartition of
    eq. 3 is ill-posed when a batch holds fewer samples than there are clusters, so the
    scores of a queue of recent embeddings, against the *current* prototypes, are stacked
    above the batch's scores and Sinkhorn-Knopp balances all the rows together; only the
    batch's rows of the result are used as targets. :meth:`balanced_targets` does that
    for each view::

        Q_v = Sinkhorn([score(queue_v); S_v])[L:]      (L = length, once the queue is full)

    and then pushes the batch's embeddings (detached) into the queue, newest first
    (first in, first out). The queue is used only once it is full; until then the batch
    is balanced alone. ``length`` is any integer >= 1: it need not be a multiple of the
    batch (the oldest batch is then partly kept), and a queue shorter than the batch
    holds the first ``length`` rows of the last batch.

    Under ``torch.distributed`` (``gather_distributed``) each process balances with its
    *own* queue (SwAV's per-process queue): with the ``gather_distributed`` Sinkhorn the
    column sums then run over the ``sum over processes of (length + batch)`` rows. Every
    process nevertheless *stores* the queues of all processes (the buffer has one slot
    per process, filled by an all-gather of each step's embeddings), so the buffers are
    identical everywhere: DDP's buffer broadcast from rank 0 leaves them intact, and the
    checkpoint that rank 0 writes holds every process's queue, so that a resume on as
    many processes is exact. A state saved by another number of processes loads as an
    empty queue, which refills in ``length / batch`` steps.

    Args:
        length: rows kept per view and per process, an integer >= 1 (SwAV, ImageNet:
            3840 over all processes).
        dim: width of the embeddings, an integer >= 1.
        n_views: views with a queue each, an integer >= 1 (SwAV: the 2 assigned crops).
        gather_distributed: keep one queue per process, as above. No effect in a single
            process.

    Invalid settings raise :class:`~contraclust.errors.ConfigError`. The buffers
    (``embeddings``: processes x views x length x dim, float32; ``stored``: rows held
    per process) are saved with the module's ``state_dict``.

    Example::

        >>> import torch.nn.functional as F
        >>> from contraclust.losses import sinkhorn_knopp
        >>> queue = EmbeddingQueue(length=128, dim=16, n_views=1)
        >>> prototypes = F.normalize(torch.randn(50, 16), dim=1)
        >>> for _ in range(3):
        ...     z = F.normalize(torch.randn(64, 16), dim=1)
        ...     (q,) = queue.balanced_targets([z @ prototypes.T], [z],
        ...                                   lambda e: e @ prototypes.T, sinkhorn_knopp)
    """

    embeddings: Tensor
    stored: Tensor

    def __init__(
        self, length: int, dim: int, n_views: int = 2, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        for name, value in (("queue length", length), ("dim", dim), ("n_views", n_views)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        self.length, self.dim, self.n_views = length, dim, n_views
        self.gather_distributed = bool(gather_distributed)
        processes = self._processes()
        self.register_buffer("embeddings", torch.zeros(processes, n_views, length, dim))
        self.register_buffer("stored", torch.zeros(processes, dtype=torch.long))

    # ------------------------------------------------------------------ slots
    def _processes(self) -> int:
        return world_size() if self.gather_distributed else 1

    def _slot(self) -> int:
        """This process's slot; the queue restarts empty when the number of processes
        differs from the one it was built or loaded for."""
        processes = self._processes()
        if self.embeddings.shape[0] != processes:
            self.embeddings = self.embeddings.new_zeros(
                (processes, self.n_views, self.length, self.dim)
            )
            self.stored = self.stored.new_zeros(processes)
        return rank() if processes > 1 else 0

    def is_full(self) -> bool:
        """True once this process's queue holds ``length`` rows (it is then used)."""
        return int(self.stored[self._slot()]) == self.length

    def rows(self, view: int) -> Tensor:
        """This process's queued embeddings of ``view`` (``length x dim``, newest first)."""
        return self.embeddings[self._slot(), view]

    # ------------------------------------------------------------------ update
    @torch.no_grad()
    def push(self, embeddings: Sequence[Tensor]) -> None:
        """Put one ``B x dim`` batch per view at the front of the queue; drop the oldest.

        Under ``gather_distributed`` every process's batch goes into that process's slot
        of every process's buffer (a collective: all processes call it together).
        """
        if len(embeddings) != self.n_views:
            raise DataError(
                f"push needs one batch per view ({self.n_views}), got {len(embeddings)}"
            )
        shapes = {tuple(e.shape) for e in embeddings}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2 or embeddings[0].shape[1] != self.dim:
            raise DataError(
                f"push needs B x {self.dim} embeddings of one shape per view, got shapes "
                f"{[tuple(e.shape) for e in embeddings]}"
            )
        self._slot()  # re-sizes the buffer first if the number of processes changed
        # B x (views * dim): the views of a sample travel together in one collective.
        rows = torch.cat([e.detach() for e in embeddings], dim=1).to(self.embeddings)
        if self._processes() > 1:
            sizes = gather_with_grad(torch.tensor([rows.shape[0]], device=rows.device)).tolist()
            rows = gather_with_grad(rows)
        else:
            sizes = [rows.shape[0]]
        start = 0
        for process, size in enumerate(sizes):
            block = rows[start : start + size].view(size, self.n_views, self.dim).transpose(0, 1)
            start += size
            queue = self.embeddings[process]
            queue.copy_(torch.cat([block, queue], dim=1)[:, : self.length])
            self.stored[process] = min(self.length, int(self.stored[process]) + size)

    # ------------------------------------------------------------------ targets
    def balanced_targets(
        self,
        scores: Sequence[Tensor],
        embeddings: Sequence[Tensor],
        score: Callable[[Tensor], Tensor],
        balance: Callable[[Tensor], Tensor],
    ) -> list[Tensor]:
        """SwAV's Sinkhorn step with the queue, for each view, then the queue's update.

        Args:
            scores: per view, the batch's ``B x K`` scores (``balance``'s input).
            embeddings: per view, the batch's ``B x dim`` embeddings to queue.
            score: maps queued embeddings (``length x dim``) to their scores with the
                current prototypes or cluster layer (run without gradient).
            balance: the Sinkhorn step, ``N x K`` scores to ``N x K`` targets.

        Returns:
            Per view, the ``B x K`` targets of the batch's rows: balanced together with
            the queue when it is full, alone before.
        """
        if len(scores) != self.n_views:
            raise DataError(f"need scores for {self.n_views} views, got {len(scores)}")
        use_queue = self.is_full()
        targets = []
        for view, batch_scores in enumerate(scores):
            if not use_queue:
                targets.append(balance(batch_scores))
                continue
            with torch.no_grad():
                queued = score(self.rows(view)).to(batch_scores.dtype)
            both = torch.cat([queued, batch_scores.detach()], dim=0)
            targets.append(balance(both)[queued.shape[0] :])
        self.push(embeddings)
        return targets

    # ------------------------------------------------------------------ state
    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        saved = state_dict.get(prefix + "embeddings")
        if saved is not None and saved.shape[0] != self.embeddings.shape[0]:
            # Saved by another number of processes: no slot maps to this run's; start empty.
            state_dict[prefix + "embeddings"] = torch.zeros_like(self.embeddings)
            state_dict[prefix + "stored"] = torch.zeros_like(self.stored)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"length={self.length}, dim={self.dim}, n_views={self.n_views}, "
            f"gather_distributed={self.gather_distributed}"
        )
