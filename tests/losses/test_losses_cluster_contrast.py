from __future__ import annotations

import math

import pytest
import torch

from contraclust.errors import ConfigError, DataError
from contraclust.losses import ClusterContrastiveLoss


def reference_parts(p1: torch.Tensor, p2: torch.Tensor, temperature: float) -> tuple[float, float]:
    """CC's cluster-level loss written out with Python loops over clusters, in float64."""
    a, b = p1.double(), p2.double()
    batch, k = a.shape
    columns = [a[:, j] for j in range(k)] + [b[:, j] for j in range(k)]

    def cosine(u: torch.Tensor, v: torch.Tensor) -> float:
        return float(u @ v) / (float(u.norm()) * float(v.norm()))

    contrast = 0.0
    for i in range(2 * k):
        twin = (i + k) % (2 * k)
        others = sum(
            math.exp(cosine(columns[i], columns[j]) / temperature) for j in range(2 * k) if j != i
        )
        contrast += -math.log(math.exp(cosine(columns[i], columns[twin]) / temperature) / others)
    contrast /= 2 * k

    entropy = 0.0
    for p in (a, b):
        mean = [sum(float(p[n, j]) for n in range(batch)) / batch for j in range(k)]
        entropy += math.log(k) + sum(m * math.log(m) for m in mean if m > 0)
    return contrast, entropy


def random_assignments(batch: int, k: int, seed: int, sharpness: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (sharpness * torch.randn(batch, k, generator=gen)).softmax(dim=1)


@pytest.mark.parametrize(("batch", "k"), [(1, 2), (4, 3), (10, 10), (64, 5), (7, 20)])
@pytest.mark.parametrize(("temperature", "weight"), [(1.0, 1.0), (0.5, 0.0), (2.0, 3.5)])
def test_matches_loop_reference(batch: int, k: int, temperature: float, weight: float) -> None:
    p1 = random_assignments(batch, k, seed=batch + 31 * k)
    p2 = random_assignments(batch, k, seed=batch + 31 * k + 1)
    loss_fn = ClusterContrastiveLoss(temperature, weight)
    contrast, entropy = reference_parts(p1, p2, temperature)
    parts = loss_fn.parts(p1, p2)
    assert parts["contrast"].item() == pytest.approx(contrast, rel=1e-5, abs=1e-6)
    assert parts["entropy"].item() == pytest.approx(entropy, rel=1e-5, abs=1e-6)
    assert loss_fn(p1, p2).item() == pytest.approx(contrast + weight * entropy, rel=1e-5, abs=1e-6)


def test_entropy_term_is_zero_for_uniform_use_and_max_for_collapse() -> None:
    k = 4
    uniform = torch.eye(k).repeat(3, 1)  # every cluster used by 3 of 12 samples
    parts = ClusterContrastiveLoss().parts(uniform, uniform)
    assert parts["entropy"].item() == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.zeros(12, k)
    collapsed[:, 0] = 1.0
    parts = ClusterContrastiveLoss().parts(collapsed, collapsed)
    assert parts["entropy"].item() == pytest.approx(2 * math.log(k), rel=1e-6)
    assert torch.isfinite(parts["contrast"])


def test_gradient_is_finite_when_a_cluster_is_empty() -> None:
    p = torch.zeros(6, 3)
    p[:, 0] = 0.7
    p[:, 1] = 0.3
    p1 = p.clone().requires_grad_()
    p2 = p.clone().roll(1, dims=1).requires_grad_()
    ClusterContrastiveLoss().parts(p1, p2)["entropy"].backward()
    assert p1.grad is not None and torch.isfinite(p1.grad).all()


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(7)
    logits1 = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    logits2 = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    loss_fn = ClusterContrastiveLoss(temperature=0.7, entropy_weight=1.3)

    def through_softmax(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return loss_fn(a.softmax(dim=1), b.softmax(dim=1))

    assert torch.autograd.gradcheck(through_softmax, (logits1, logits2), eps=1e-6, atol=1e-5)
    # Directly on positive, unnormalised rows as well (the mean is renormalised inside).
    p1 = torch.rand(4, 3, dtype=torch.float64, generator=gen).add(0.1).requires_grad_()
    p2 = torch.rand(4, 3, dtype=torch.float64, generator=gen).add(0.1).requires_grad_()
    assert torch.autograd.gradcheck(loss_fn, (p1, p2), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    p1 = random_assignments(128, 10, seed=8, sharpness=8.0).to(dtype)
    p2 = random_assignments(128, 10, seed=9, sharpness=8.0).to(dtype)
    loss = ClusterContrastiveLoss()(p1, p2)
    assert loss.dtype == torch.float32
    contrast, entropy = reference_parts(p1, p2, 1.0)
    assert loss.item() == pytest.approx(contrast + entropy, rel=1e-4)


def test_gather_flag_is_identity_in_a_single_process() -> None:
    p1, p2 = random_assignments(9, 4, seed=10), random_assignments(9, 4, seed=11)
    single = ClusterContrastiveLoss(0.5, 2.0)(p1, p2)
    assert torch.equal(ClusterContrastiveLoss(0.5, 2.0, gather_distributed=True)(p1, p2), single)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_temperature_raises_config_error(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature must be"):
        ClusterContrastiveLoss(temperature=temperature)


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_invalid_entropy_weight_raises_config_error(weight: float) -> None:
    with pytest.raises(ConfigError, match="entropy_weight must be"):
        ClusterContrastiveLoss(entropy_weight=weight)


@pytest.mark.parametrize(
    ("shape1", "shape2", "message"),
    [
        ((6,), (6,), "2-D"),
        ((6, 3), (6, 4), "same shape"),
        ((6, 1), (6, 1), "at least 2 clusters"),
        ((0, 3), (0, 3), "empty batch"),
    ],
)
def test_bad_input_shapes_raise_data_error(
    shape1: tuple[int, ...], shape2: tuple[int, ...], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        ClusterContrastiveLoss()(torch.rand(shape1), torch.rand(shape2))
