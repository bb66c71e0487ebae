from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from contraclust.errors import DataError
from contraclust.losses import AnchorLoss


def reference_anchor(clean: Tensor, q1: Tensor, q2: Tensor) -> float:
    """KL(c || q1) + KL(c || q2), each a mean over the batch, in Python floats."""
    total = 0.0
    for view in (q1, q2):
        kl = 0.0
        for c_row, v_row in zip(clean.tolist(), view.tolist(), strict=True):
            kl += sum(c * math.log(c / v) for c, v in zip(c_row, v_row, strict=True) if c > 0)
        total += kl / clean.shape[0]
    return total


def random_probs(batch: int, k: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (2.0 * torch.randn(batch, k, generator=gen, dtype=dtype)).softmax(dim=1)


@pytest.mark.parametrize(("batch", "k"), [(1, 2), (4, 3), (16, 10), (9, 25)])
def test_matches_loop_reference(batch: int, k: int) -> None:
    clean, q1, q2 = (random_probs(batch, k, seed=batch * 3 + i) for i in range(3))
    loss = AnchorLoss()(clean, q1, q2)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference_anchor(clean, q1, q2), rel=1e-5, abs=1e-7)


def test_zero_when_views_equal_clean_and_positive_otherwise() -> None:
    clean = random_probs(8, 5, seed=1)
    loss_fn = AnchorLoss()
    assert loss_fn(clean, clean.clone(), clean.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert loss_fn(clean, clean.clone(), random_probs(8, 5, seed=2)).item() > 1e-3


def test_no_gradient_into_the_clean_branch() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = [torch.randn(6, 4, generator=gen, requires_grad=True) for _ in range(3)]
    clean, q1, q2 = (t.softmax(dim=1) for t in logits)
    AnchorLoss()(clean, q1, q2).backward()
    assert logits[0].grad is None
    for view_logits in logits[1:]:
        assert view_logits.grad is not None and bool(view_logits.grad.abs().sum() > 0)


def test_gradcheck_float64() -> None:
    clean = random_probs(5, 4, seed=4, dtype=torch.float64)
    q1 = random_probs(5, 4, seed=5, dtype=torch.float64).requires_grad_()
    q2 = random_probs(5, 4, seed=6, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: AnchorLoss()(clean, a, b), (q1, q2), eps=1e-7, atol=1e-5
    )


def test_zeros_in_the_views_give_a_finite_loss_and_gradient() -> None:
    clean = random_probs(4, 3, seed=7)
    q1 = torch.tensor([[1.0, 0.0, 0.0]] * 4, requires_grad=True)
    q2 = random_probs(4, 3, seed=8)
    loss = AnchorLoss()(clean, q1, q2)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 10.0
    assert bool(torch.isfinite(q1.grad).all())
    # Exact zeros in the clean target count as 0 log 0 = 0.
    one_hot = torch.tensor([[0.0, 1.0, 0.0]] * 4)
    assert AnchorLoss()(one_hot, one_hot, one_hot).item() == pytest.approx(0.0, abs=1e-7)


def test_half_precision_inputs_are_computed_in_float32() -> None:
    clean, q1, q2 = (random_probs(8, 6, seed=9 + i).half() for i in range(3))
    loss = AnchorLoss()(clean, q1, q2)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        reference_anchor(clean.float(), q1.float(), q2.float()), rel=1e-5
    )


def test_bad_shapes_raise_data_error() -> None:
    a = random_probs(4, 3, seed=0)
    with pytest.raises(DataError, match="same shape"):
        AnchorLoss()(a, a[:3], a)
    with pytest.raises(DataError, match="q2 must be a 2-D"):
        AnchorLoss()(a, a, a[0])
    with pytest.raises(DataError, match="empty batch"):
        AnchorLoss()(a[:0], a[:0], a[:0])
