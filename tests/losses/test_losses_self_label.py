from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from contraclust.errors import ConfigError, DataError
from contraclust.losses import SelfLabelLoss


def reference(target: Tensor, log_probs: Tensor, threshold: float, balance: bool) -> float:
    """The weighted cross-entropy written out with Python loops."""
    b, k = target.shape
    views = log_probs.shape[0] // b
    chosen = [(i, max(range(k), key=lambda j: target[i, j])) for i in range(b)]
    chosen = [(i, y) for i, y in chosen if target[i, y] > threshold]
    counts = {y: sum(1 for _, c in chosen if c == y) for _, y in chosen}
    num = den = 0.0
    for v in range(views):
        for i, y in chosen:
            w = len(chosen) / counts[y] if balance else 1.0
            num += -w * float(log_probs[v * b + i, y])
            den += w
    return num / den if den else 0.0


def sharp_probs(batch: int, k: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (6.0 * torch.randn(batch, k, generator=gen)).softmax(dim=1)


@pytest.mark.parametrize("balance", [True, False])
@pytest.mark.parametrize(("batch", "k", "views"), [(1, 2, 1), (16, 4, 2), (40, 10, 3)])
def test_matches_loop_reference(batch: int, k: int, views: int, balance: bool) -> None:
    target = sharp_probs(batch, k, seed=batch + k)
    gen = torch.Generator().manual_seed(views)
    log_probs = torch.randn(views * batch, k, generator=gen).log_softmax(dim=1)
    loss = SelfLabelLoss(threshold=0.9, balance=balance)(target, log_probs)
    expected = reference(target, log_probs, 0.9, balance)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_balancing_weights_the_rare_pseudo_class_up() -> None:
    # three confident samples of class 0, one of class 1; the views get class 1 wrong
    target = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]])
    views = torch.tensor([[0.9, 0.1]] * 3 + [[0.9, 0.1]]).log()
    plain = SelfLabelLoss(0.5, balance=False)(target, views).item()
    balanced = SelfLabelLoss(0.5, balance=True)(target, views).item()
    assert plain == pytest.approx((3 * -math.log(0.9) - math.log(0.1)) / 4, rel=1e-6)
    assert balanced == pytest.approx((-math.log(0.9) - math.log(0.1)) / 2, rel=1e-6)


def test_no_confident_sample_gives_zero_with_a_graph() -> None:
    target = torch.full((4, 4), 0.25)
    logits = torch.randn(8, 4, requires_grad=True)
    loss = SelfLabelLoss(0.99)(target, logits.log_softmax(dim=1))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and bool((logits.grad == 0).all())


def test_gradient_reaches_views_only_and_lowers_the_loss() -> None:
    target_logits = torch.randn(12, 3, requires_grad=True)
    target = (8.0 * target_logits).softmax(dim=1)
    logits = torch.zeros(24, 3, requires_grad=True)
    loss_fn = SelfLabelLoss(0.6)
    loss = loss_fn(target, logits.log_softmax(dim=1))
    loss.backward()
    assert target_logits.grad is None
    assert logits.grad is not None
    stepped = (logits - 1.0 * logits.grad).detach()
    assert loss_fn(target, stepped.log_softmax(dim=1)).item() < loss.item()


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.5, float("nan")])
def test_threshold_out_of_range(threshold: float) -> None:
    with pytest.raises(ConfigError, match="self_label_threshold"):
        SelfLabelLoss(threshold)


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(DataError, match=r"\(V\*4, 3\)"):
        SelfLabelLoss()(torch.full((4, 3), 1 / 3), torch.zeros(6, 3))
    with pytest.raises(DataError, match="non-empty"):
        SelfLabelLoss()(torch.zeros(0, 3), torch.zeros(0, 3))
