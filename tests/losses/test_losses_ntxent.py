from __future__ import annotations

import math

import pytest
import torch

from contraclust.errors import ConfigError, DataError
from contraclust.losses import NTXentLoss


def reference_ntxent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's eq. 1 written out anchor by anchor, in float64 Python loops."""
    views = [v.double() for v in torch.cat([z1, z2], dim=0)]
    views = [v / v.norm() for v in views]
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        twin = (i + n) % (2 * n)
        numerator = math.exp(float(views[i] @ views[twin]) / temperature)
        denominator = 0.0
        for k in range(2 * n):
            if k != i:
                denominator += math.exp(float(views[i] @ views[k]) / temperature)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


@pytest.mark.parametrize(("batch", "dim"), [(1, 3), (2, 5), (7, 4), (16, 32), (33, 8)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_loop_reference(batch: int, dim: int, temperature: float) -> None:
    gen = torch.Generator().manual_seed(batch * 100 + dim)
    z1 = torch.randn(batch, dim, generator=gen)
    z2 = torch.randn(batch, dim, generator=gen)
    loss = NTXentLoss(temperature)(z1, z2)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(reference_ntxent(z1, z2, temperature), rel=1e-5, abs=1e-6)


def test_same_module_handles_changing_batch_sizes() -> None:
    loss_fn = NTXentLoss(0.3)
    gen = torch.Generator().manual_seed(1)
    for batch in (5, 2, 9, 5):
        z1, z2 = torch.randn(batch, 6, generator=gen), torch.randn(batch, 6, generator=gen)
        assert loss_fn(z1, z2).item() == pytest.approx(reference_ntxent(z1, z2, 0.3), rel=1e-5)


def test_scale_invariant_and_lower_for_aligned_views() -> None:
    gen = torch.Generator().manual_seed(2)
    z1 = torch.randn(8, 4, generator=gen)
    noise = 0.01 * torch.randn(8, 4, generator=gen)
    loss_fn = NTXentLoss(0.5)
    assert loss_fn(3.0 * z1, z1 + noise).item() == pytest.approx(
        loss_fn(z1, z1 + noise).item(), rel=1e-5
    )
    assert loss_fn(z1, z1 + noise) < loss_fn(z1, torch.randn(8, 4, generator=gen))


def test_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    z1 = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    loss_fn = NTXentLoss(0.5)
    assert torch.autograd.gradcheck(loss_fn, (z1, z2), eps=1e-6, atol=1e-5)
    assert loss_fn(z1, z2).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(4)
    # Large entries: the squared norms (~4e6) overflow float16 if computed in it.
    z1 = (300.0 * torch.randn(16, 64, generator=gen)).to(dtype)
    z2 = (300.0 * torch.randn(16, 64, generator=gen)).to(dtype)
    loss = NTXentLoss(0.05)(z1, z2)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference_ntxent(z1, z2, 0.05), rel=1e-4)


def test_half_precision_gradients_are_finite() -> None:
    z1 = (100.0 * torch.randn(8, 16)).half().requires_grad_()
    z2 = (100.0 * torch.randn(8, 16)).half().requires_grad_()
    NTXentLoss(0.1)(z1, z2).backward()
    assert z1.grad is not None and z1.grad.dtype == torch.float16
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


def test_gather_flag_is_identity_in_a_single_process() -> None:
    gen = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    assert torch.equal(NTXentLoss(0.5, gather_distributed=True)(z1, z2), NTXentLoss(0.5)(z1, z2))


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan"), float("inf")])
def test_invalid_temperature_raises_config_error(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature must be"):
        NTXentLoss(temperature=temperature)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


@pytest.mark.parametrize(
    ("shape1", "shape2", "message"),
    [
        ((4,), (4,), "2-D"),
        ((4, 3), (5, 3), "same shape"),
        ((4, 3), (4, 2), "same shape"),
        ((0, 3), (0, 3), "empty batch"),
        ((4, 0), (4, 0), "at least one column"),
    ],
)
def test_bad_input_shapes_raise_data_error(
    shape1: tuple[int, ...], shape2: tuple[int, ...], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        NTXentLoss()(torch.randn(shape1), torch.randn(shape2))
