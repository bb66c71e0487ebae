from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from ddp_harness import parameter_grads, rank_rows, run_on_processes
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses import SCANLoss


def reference(p: Tensor, q: Tensor, weight: float) -> float:
    """SCAN's eq. 2 written out with Python loops, in float64."""
    batch, k = p.shape
    consistency = 0.0
    for i in range(batch):
        consistency -= math.log(sum(float(p[i, j]) * float(q[i, j]) for j in range(k)))
    consistency /= batch
    mean = [sum(float(p[i, j]) for i in range(batch)) / batch for j in range(k)]
    entropy = -sum(m * math.log(m) for m in mean if m > 0)
    return consistency - weight * entropy


def probs(batch: int, k: int, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (3.0 * torch.randn(batch, k, generator=gen, dtype=torch.float64)).softmax(1).to(dtype)


@pytest.mark.parametrize(("batch", "k"), [(1, 2), (5, 3), (32, 10), (7, 20)])
@pytest.mark.parametrize("weight", [0.0, 1.0, 5.0])
def test_matches_loop_reference(batch: int, k: int, weight: float) -> None:
    p, q = probs(batch, k, seed=batch + k), probs(batch, k, seed=batch + k + 100)
    got = SCANLoss(weight)(p, q).item()
    assert got == pytest.approx(reference(p, q, weight), rel=1e-5, abs=1e-5)


def test_values_on_a_fixed_input() -> None:
    # Every sample agrees with its neighbour and the batch uses both clusters
    # equally: no consistency cost, entropy log 2.
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    parts = SCANLoss(5.0).parts(p, p)
    assert parts["consistency"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["entropy"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert SCANLoss(5.0)(p, p).item() == pytest.approx(-5.0 * math.log(2), rel=1e-6)
    # Half-confident neighbours: <p, q> = 0.5 for each sample.
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert SCANLoss(0.0)(p, q).item() == pytest.approx(math.log(2), rel=1e-6)


def test_collapse_costs_more_than_a_balanced_use_of_the_clusters() -> None:
    collapsed = torch.zeros(8, 4)
    collapsed[:, 0] = 1.0
    balanced = torch.eye(4).repeat(2, 1)
    loss = SCANLoss(5.0)
    assert loss(collapsed, collapsed).item() > loss(balanced, balanced).item()


def test_gradcheck_float64_through_softmax() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    loss_fn = SCANLoss(2.5)

    def through_softmax(x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(x.softmax(dim=1), y.softmax(dim=1))

    assert torch.autograd.gradcheck(through_softmax, (a, b), eps=1e-6, atol=1e-6)


def test_gradient_is_finite_when_neighbours_disagree_completely() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    q = torch.tensor([[0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    SCANLoss(1.0)(p, q).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    p, q = probs(64, 10, 1, dtype), probs(64, 10, 2, dtype)
    loss = SCANLoss()(p, q)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference(p, q, 5.0), rel=1e-4)


def test_gather_flag_is_identity_in_a_single_process() -> None:
    p, q = probs(9, 4, 10), probs(9, 4, 11)
    assert torch.equal(SCANLoss(gather_distributed=True)(p, q), SCANLoss()(p, q))


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_invalid_entropy_weight_raises_config_error(weight: float) -> None:
    with pytest.raises(ConfigError, match="entropy_weight must be"):
        SCANLoss(weight)


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
        SCANLoss()(torch.rand(shape1), torch.rand(shape2))


# ---------------------------------------------------------------- two processes (gloo)
WORLD = 2
IN_DIM, K = 5, 4
EQUAL = (4, 4)
UNEQUAL = (3, 5)


def global_inputs() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(99)
    n = sum(EQUAL)
    return (
        torch.randn(n, IN_DIM, dtype=torch.float64, generator=gen),
        torch.randn(n, IN_DIM, dtype=torch.float64, generator=gen),
    )


def loss_and_grads(anchors: Tensor, neighbours: Tensor, gather: bool) -> dict[str, Tensor]:
    torch.manual_seed(5)  # the same head in every process
    head = nn.Linear(IN_DIM, K).double()
    p, q = head(anchors).softmax(dim=1), head(neighbours).softmax(dim=1)
    loss = SCANLoss(5.0, gather_distributed=gather)(p, q)
    loss.backward()
    return {"loss": loss.detach(), **parameter_grads(head, average_over_processes=gather)}


def rank_body(local_rank: int) -> dict[str, Any]:
    anchors, neighbours = global_inputs()
    results: dict[str, Any] = {}
    for split, sizes in (("equal", EQUAL), ("unequal", UNEQUAL)):
        rows = rank_rows(sizes, local_rank)
        results[split] = loss_and_grads(anchors[rows], neighbours[rows], gather=True)
    return results


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_on_processes(rank_body, tmp_path_factory.mktemp("ddp-scan"), world_size=WORLD)


@pytest.mark.parametrize("split", ["equal", "unequal"])
def test_two_processes_match_one_process(rank_results: list[dict[str, Any]], split: str) -> None:
    anchors, neighbours = global_inputs()
    expected = loss_and_grads(anchors, neighbours, gather=False)
    for results in rank_results:
        got = results[split]
        assert set(got) == set(expected)
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, atol=1e-12, rtol=1e-10, msg=key)
    # Without gathering, each process would see only its own entropy: the gather matters.
    sizes = EQUAL if split == "equal" else UNEQUAL
    local = loss_and_grads(anchors[rank_rows(sizes, 0)], neighbours[rank_rows(sizes, 0)], False)
    assert not torch.allclose(local["loss"], expected["loss"])
