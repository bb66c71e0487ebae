from __future__ import annotations

import math

import pytest
import torch

from contraclust.errors import ConfigError, DataError
from contraclust.losses import SwappedPredictionLoss, sinkhorn_knopp


def reference_swapped(
    s1: torch.Tensor, s2: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor, t: float
) -> float:
    """1/2 [CE(q2, softmax(s1/t)) + CE(q1, softmax(s2/t))], sample by sample in Python."""
    b, k = s1.shape

    def ce(q_row: torch.Tensor, s_row: torch.Tensor) -> float:
        exps = [math.exp(float(s_row[j]) / t) for j in range(k)]
        total = sum(exps)
        return -sum(float(q_row[j]) * math.log(exps[j] / total) for j in range(k))

    return sum(0.5 * (ce(q2[i], s1[i]) + ce(q1[i], s2[i])) for i in range(b)) / b


def random_case(b: int, k: int, seed: int, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    s1 = torch.rand(b, k, generator=gen, dtype=dtype) * 2 - 1
    s2 = torch.rand(b, k, generator=gen, dtype=dtype) * 2 - 1
    return s1, s2, sinkhorn_knopp(s1), sinkhorn_knopp(s2)


@pytest.mark.parametrize(("b", "k"), [(1, 2), (5, 3), (16, 10), (7, 30)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_matches_loop_reference(b: int, k: int, temperature: float) -> None:
    s1, s2, q1, q2 = random_case(b, k, seed=b + k)
    loss = SwappedPredictionLoss(temperature)(s1, s2, q1, q2)
    assert loss.dim() == 0
    expected = reference_swapped(s1, s2, q1, q2, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_targets_are_swapped_between_views() -> None:
    s1, s2, q1, q2 = random_case(6, 4, seed=1)
    loss_fn = SwappedPredictionLoss(0.1)
    swapped = loss_fn(s1, s2, q1, q2)
    unswapped = reference_swapped(s1, s2, q2, q1, 0.1)  # each view predicting its own q
    assert swapped.item() != pytest.approx(unswapped, rel=1e-3)


def test_targets_receive_no_gradient_and_scores_do() -> None:
    s1, s2, q1, q2 = random_case(4, 3, seed=2, dtype=torch.float64)
    s1.requires_grad_()
    s2.requires_grad_()
    q1 = q1.clone().requires_grad_()
    q2 = q2.clone().requires_grad_()
    SwappedPredictionLoss(0.2)(s1, s2, q1, q2).backward()
    assert q1.grad is None and q2.grad is None
    assert s1.grad is not None and s2.grad is not None


def test_gradcheck_float64() -> None:
    s1, s2, q1, q2 = random_case(4, 3, seed=3, dtype=torch.float64)
    s1.requires_grad_()
    s2.requires_grad_()
    loss_fn = SwappedPredictionLoss(0.3)
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, q1, q2), (s1, s2), eps=1e-6)


def test_lowest_when_predictions_match_sharp_targets() -> None:
    q = torch.eye(5)
    good = SwappedPredictionLoss(0.1)(q, q, q, q)
    bad = SwappedPredictionLoss(0.1)(q, q.roll(1, dims=1), q, q)
    assert good.item() < 1e-3 < bad.item()


def test_half_precision_is_computed_in_float32() -> None:
    s1, s2, q1, q2 = random_case(8, 5, seed=4)
    loss = SwappedPredictionLoss(0.1)(s1.half(), s2.half(), q1, q2)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        reference_swapped(s1.half().float(), s2.half().float(), q1, q2, 0.1), rel=1e-5
    )


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_temperature_raises_config_error(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature must be"):
        SwappedPredictionLoss(temperature)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((4, 3), (5, 3), (4, 3), (4, 3)), "same shape"),
        (((4, 3), (4, 3), (4, 2), (4, 2)), "shape of the scores"),
        (((4,), (4,), (4,), (4,)), "2-D"),
        (((0, 3), (0, 3), (0, 3), (0, 3)), "empty batch"),
    ],
)
def test_bad_shapes_raise_data_error(shapes: tuple[tuple[int, ...], ...], message: str) -> None:
    with pytest.raises(DataError, match=message):
        SwappedPredictionLoss()(*(torch.rand(s) for s in shapes))
