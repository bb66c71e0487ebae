"""Self-labelling: confident predictions become targets for the augmented views."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contraclust.checks import check_fraction
from contraclust.errors import DataError

__all__ = ["SelfLabelLoss"]


class SelfLabelLoss(nn.Module):
    """The self-labelling step of SCAN, as a refinement after any clustering method.

    Van Gansbeke, Vandenhende, Georgoulis, Proesmans, Van Gool, "SCAN: Learning to
    Classify Images without Labels", ECCV 2020, Sec. 2.3. A sample whose clean
    prediction is confident (largest probability above ``threshold``) takes its argmax
    as a pseudo-label, and the prediction of its augmented view is trained towards it
    with cross-entropy::

        S    = {i : max_k p(x_i)_k > threshold},  y_i = argmax_k p(x_i)_k
        loss = sum_{i in S} w_{y_i} (-log p(view_i)_{y_i}) / sum_{i in S} w_{y_i}

    With ``balance`` each pseudo-class is weighted by the inverse of its count among
    the confident samples of the batch (SCAN's class balancing), so that a large
    cluster whose members are confident sooner does not swallow its neighbours.

    Errors of the clustering are fixed because the confident samples are nearly always
    right (on mnist-test after ConCURL: 99.8 % correct above 0.99) and the network
    generalises from them to the uncertain ones. The targets carry no gradient.

    Inputs: ``target_probs`` (B x K, rows summing to 1, from the un-augmented images)
    and ``log_probs`` (V*B x K, log-probabilities of V augmented views, view-major, so
    row ``v * B + i`` is a view of sample ``i``). A batch with no confident sample
    gives a zero loss that still depends on ``log_probs`` (every step has a gradient
    graph, which data-parallel training needs).

    Example::

        >>> loss_fn = SelfLabelLoss(threshold=0.9)
        >>> target = torch.tensor([[0.95, 0.05], [0.5, 0.5]])
        >>> views = torch.tensor([[0.8, 0.2], [0.3, 0.7]]).log()
        >>> round(float(loss_fn(target, views)), 4)  # only the first sample counts
        0.2231
    """

    def __init__(self, threshold: float = 0.99, balance: bool = True) -> None:
        super().__init__()
        check_fraction("self_label_threshold", threshold)
        self.threshold = float(threshold)
        self.balance = bool(balance)

    def confident(self, target_probs: Tensor) -> tuple[Tensor, Tensor]:
        """The mask of confident rows of ``target_probs`` and every row's argmax."""
        top, labels = target_probs.max(dim=1)
        return top > self.threshold, labels

    def forward(self, target_probs: Tensor, log_probs: Tensor) -> Tensor:
        if target_probs.dim() != 2 or target_probs.shape[0] == 0:
            raise DataError(
                f"target_probs must be a non-empty (B, K) tensor, got {tuple(target_probs.shape)}"
            )
        b, k = target_probs.shape
        if log_probs.dim() != 2 or log_probs.shape[1] != k or log_probs.shape[0] % b:
            raise DataError(
                f"log_probs must be (V*B, K) = (V*{b}, {k}) for target_probs of shape "
                f"{tuple(target_probs.shape)}, got {tuple(log_probs.shape)}"
            )
        views = log_probs.shape[0] // b
        mask, labels = self.confident(target_probs.detach())
        # No branch on the mask: the step stays free of host-device synchronisation.
        picked = mask.to(torch.float32)
        if self.balance:
            counts = torch.zeros(k, device=picked.device).index_add_(0, labels, picked)
            picked = picked * (counts.sum() / counts.clamp_min(1.0))[labels]
        log_p = log_probs.float().view(views, b, k).gather(2, labels.expand(views, b)[..., None])
        total = (picked * log_p.squeeze(2)).sum()
        # An empty selection gives 0 (not 0/0) and keeps log_probs in the graph.
        return -total / (views * picked.sum()).clamp_min(1e-12)
