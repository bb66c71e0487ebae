from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from ddp_harness import (
    SPLITS,
    assert_every_rank_close,
    parameter_grads,
    rank_results_fixture,
    rank_rows,
)
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses import CLCLoss, NTXentLoss


def reference_clc(
    v1: Tensor, v2: Tensor, c1: Tensor, c2: Tensor, tau_v: float, tau_c: float
) -> float:
    """The reconstructed CLC loss written anchor by anchor, in float64 Python loops,
    in the factorised form: positive exp(sim) over the sum of weighted negatives."""
    n = v1.shape[0]
    vs = [v.double() / v.double().norm() for v in torch.cat([v1, v2])]
    cs = [c.double() for c in torch.cat([c1, c2])]
    total = 0.0
    for i in range(2 * n):
        twin = (i + n) % (2 * n)
        numerator = math.exp(float(cs[i] @ cs[twin]) / tau_c + float(vs[i] @ vs[twin]) / tau_v)
        denominator = 0.0
        for k in range(2 * n):
            if k == i:
                continue
            weight = math.exp(float(cs[i] @ cs[k]) / tau_c)
            denominator += weight * math.exp(float(vs[i] @ vs[k]) / tau_v)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


def random_inputs(
    batch: int, dim: int, k: int, seed: int, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    v1 = torch.randn(batch, dim, generator=gen, dtype=dtype)
    v2 = torch.randn(batch, dim, generator=gen, dtype=dtype)
    # Sharp-ish probabilities, so that the cluster weights vary a lot between pairs.
    c1 = (3.0 * torch.randn(batch, k, generator=gen, dtype=dtype)).softmax(dim=1)
    c2 = (3.0 * torch.randn(batch, k, generator=gen, dtype=dtype)).softmax(dim=1)
    return v1, v2, c1, c2


@pytest.mark.parametrize(("batch", "dim", "k"), [(1, 3, 2), (2, 5, 3), (7, 4, 10), (33, 8, 5)])
@pytest.mark.parametrize(("tau_v", "tau_c"), [(0.5, 1.0), (0.1, 0.2), (1.0, 5.0)])
def test_matches_loop_reference(batch: int, dim: int, k: int, tau_v: float, tau_c: float) -> None:
    v1, v2, c1, c2 = random_inputs(batch, dim, k, seed=batch * 31 + k)
    loss = CLCLoss(tau_v, tau_c)(v1, v2, c1, c2)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    expected = reference_clc(v1, v2, c1, c2, tau_v, tau_c)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_same_module_handles_changing_batch_sizes() -> None:
    loss_fn = CLCLoss(0.3, 0.7)
    for seed, batch in enumerate((5, 2, 9, 5)):
        v1, v2, c1, c2 = random_inputs(batch, 6, 4, seed)
        expected = reference_clc(v1, v2, c1, c2, 0.3, 0.7)
        assert loss_fn(v1, v2, c1, c2).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("tau_c", [0.05, 1.0, 3.0])
def test_constant_categorical_part_gives_ntxent(tau_c: float) -> None:
    v1, v2, _, _ = random_inputs(12, 8, 5, seed=7)
    for c in (torch.full((5,), 0.2), torch.tensor([0.7, 0.1, 0.1, 0.05, 0.05])):
        same = c.expand(12, 5)
        got = CLCLoss(0.4, tau_c)(v1, v2, same, same)
        torch.testing.assert_close(got, NTXentLoss(0.4)(v1, v2), rtol=1e-5, atol=1e-6)


def test_cluster_agreement_of_negatives_raises_the_loss() -> None:
    # The same instance parts; in one case the negatives share the anchor's cluster.
    v1, v2, _, _ = random_inputs(8, 6, 4, seed=8)
    apart = torch.eye(8)  # every sample in a cluster of its own (K = 8)
    together = torch.zeros(8, 8)
    together[:, 0] = 1.0  # everything in cluster 0
    loss_fn = CLCLoss(0.5, 1.0)
    assert loss_fn(v1, v2, apart, apart) < loss_fn(v1, v2, together, together)


def test_scale_of_instance_part_does_not_matter() -> None:
    v1, v2, c1, c2 = random_inputs(6, 5, 3, seed=9)
    loss_fn = CLCLoss()
    torch.testing.assert_close(loss_fn(4.0 * v1, v2, c1, c2), loss_fn(v1, v2, c1, c2))


def test_gradcheck_float64() -> None:
    v1, v2, c1, c2 = random_inputs(4, 3, 3, seed=10, dtype=torch.float64)
    inputs = tuple(t.clone().requires_grad_() for t in (v1, v2, c1, c2))
    loss_fn = CLCLoss(0.5, 0.8)
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-6, atol=1e-5)
    assert loss_fn(*inputs).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    v1, v2, c1, c2 = random_inputs(16, 32, 6, seed=11)
    half = [(300.0 * t).to(dtype) for t in (v1, v2)] + [t.to(dtype) for t in (c1, c2)]
    loss = CLCLoss(0.05, 0.1)(*half)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference_clc(*half, 0.05, 0.1), rel=1e-4)


def test_gather_flag_is_identity_in_a_single_process() -> None:
    inputs = random_inputs(6, 5, 3, seed=12)
    assert torch.equal(CLCLoss(gather_distributed=True)(*inputs), CLCLoss()(*inputs))


@pytest.mark.parametrize("name", ["instance_temperature", "category_temperature"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_temperatures_raise_config_error_naming_the_parameter(
    name: str, value: float
) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a finite number > 0"):
        CLCLoss(**{name: value})


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((4,), (4,), (4, 2), (4, 2)), "2-D"),
        (((4, 3), (5, 3), (4, 2), (4, 2)), "same shape"),
        (((4, 3), (4, 3), (4, 2), (4, 3)), "same shape"),
        (((4, 3), (4, 3), (5, 2), (5, 2)), "same number of rows"),
        (((0, 3), (0, 3), (0, 2), (0, 2)), "empty batch"),
    ],
)
def test_bad_input_shapes_raise_data_error(
    shapes: tuple[tuple[int, ...], ...], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        CLCLoss()(*(torch.rand(s) for s in shapes))


# ------------------------------------------------------------- two processes (gloo)

IN_DIM, V_DIM, K = 5, 4, 3


def global_inputs() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(4321)
    x1 = torch.randn(8, IN_DIM, dtype=torch.float64, generator=gen)
    x2 = torch.randn(8, IN_DIM, dtype=torch.float64, generator=gen)
    return x1, x2


def loss_and_grads(x1: Tensor, x2: Tensor, gather: bool) -> dict[str, Tensor]:
    torch.manual_seed(77)  # the same weights in every process
    model = nn.Linear(IN_DIM, V_DIM + K).double()
    loss_fn = CLCLoss(0.3, 0.6, gather_distributed=gather)
    out1, out2 = model(x1), model(x2)
    loss = loss_fn(
        out1[:, :V_DIM], out2[:, :V_DIM], out1[:, V_DIM:].softmax(1), out2[:, V_DIM:].softmax(1)
    )
    loss.backward()
    return {"loss": loss.detach(), **parameter_grads(model, average_over_processes=gather)}


def rank_body(local_rank: int) -> dict[str, Any]:
    x1, x2 = global_inputs()
    results: dict[str, Any] = {}
    for split, sizes in SPLITS.items():
        rows = rank_rows(sizes, local_rank)
        results[split] = loss_and_grads(x1[rows], x2[rows], gather=True)
    return results


rank_results = rank_results_fixture(rank_body)


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_processes_match_one_process_on_the_whole_batch(
    rank_results: list[dict[str, Any]], split: str
) -> None:
    x1, x2 = global_inputs()
    expected = loss_and_grads(x1, x2, gather=False)
    assert_every_rank_close(rank_results, split, expected, atol=1e-9, rtol=1e-9)
