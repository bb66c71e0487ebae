"""Two CPU processes (gloo) must reproduce the single-process loss and gradients.

One spawn serves every test in this module (process start-up dominates the cost):
each rank runs all the checks and saves its results to a file; the tests compare
those with the same computations done here in one process on the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from ddp_harness import (
    SPLITS,
    WORLD,
    assert_every_rank_close,
    parameter_grads,
    rank_results_fixture,
    rank_rows,
)
from torch import Tensor, nn

from contraclust.losses import (
    ClusterContrastiveLoss,
    NTXentLoss,
    all_reduce_sum,
    gather_with_grad,
    rank,
    world_size,
)

IN_DIM, OUT_DIM, K = 5, 4, 3
UNEQUAL = SPLITS["unequal"]


def global_inputs() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(1234)
    n = sum(SPLITS["equal"])
    x1 = torch.randn(n, IN_DIM, dtype=torch.float64, generator=gen)
    x2 = torch.randn(n, IN_DIM, dtype=torch.float64, generator=gen)
    return x1, x2


def make_model(out_dim: int) -> nn.Linear:
    torch.manual_seed(99 + out_dim)  # the same weights in every process
    return nn.Linear(IN_DIM, out_dim).double()


def ntxent_case(model: nn.Linear, x1: Tensor, x2: Tensor, gather: bool) -> Tensor:
    return NTXentLoss(0.3, gather_distributed=gather)(model(x1), model(x2))


def cluster_case(model: nn.Linear, x1: Tensor, x2: Tensor, gather: bool) -> Tensor:
    loss_fn = ClusterContrastiveLoss(0.8, entropy_weight=1.5, gather_distributed=gather)
    return loss_fn(model(x1).softmax(dim=1), model(x2).softmax(dim=1))


CASES: dict[str, tuple[Callable[[nn.Linear, Tensor, Tensor, bool], Tensor], int]] = {
    "ntxent": (ntxent_case, OUT_DIM),
    "cluster": (cluster_case, K),
}


def loss_and_grads(name: str, x1: Tensor, x2: Tensor, gather: bool) -> dict[str, Tensor]:
    case, out_dim = CASES[name]
    model = make_model(out_dim)
    loss = case(model, x1, x2, gather)
    loss.backward()
    return {"loss": loss.detach(), **parameter_grads(model, average_over_processes=gather)}


def rank_body(local_rank: int) -> dict[str, Any]:
    results: dict[str, Any] = {"world_size": world_size(), "rank": rank()}
    x1, x2 = global_inputs()
    for split_name, sizes in SPLITS.items():
        rows = rank_rows(sizes, local_rank)
        for name in CASES:
            results[f"{name}/{split_name}"] = loss_and_grads(name, x1[rows], x2[rows], True)

    # gather_with_grad itself: rank order, unequal sizes, and the backward rule.
    local = torch.full((UNEQUAL[local_rank], 2), float(local_rank), dtype=torch.float64)
    local += torch.arange(UNEQUAL[local_rank], dtype=torch.float64)[:, None]
    local.requires_grad_()
    gathered = gather_with_grad(local)
    weights = torch.arange(gathered.numel(), dtype=torch.float64).reshape(gathered.shape)
    (gathered * weights).sum().backward()
    results["gathered"] = gathered.detach()
    results["gather_grad"] = local.grad
    results["reduced"] = all_reduce_sum(torch.tensor([1.0, float(local_rank)]))
    return results


rank_results = rank_results_fixture(rank_body)


def single_process(name: str) -> dict[str, Tensor]:
    x1, x2 = global_inputs()
    return loss_and_grads(name, x1, x2, gather=False)


def test_world_size_and_rank_inside_the_group(rank_results: list[dict[str, Any]]) -> None:
    assert [r["world_size"] for r in rank_results] == [WORLD, WORLD]
    assert [r["rank"] for r in rank_results] == list(range(WORLD))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("split", list(SPLITS))
def test_two_processes_match_one_process(
    rank_results: list[dict[str, Any]], name: str, split: str
) -> None:
    expected = single_process(name)
    assert_every_rank_close(rank_results, f"{name}/{split}", expected, atol=1e-6, rtol=1e-6)


def test_gather_concatenates_in_rank_order_and_backward_sums(
    rank_results: list[dict[str, Any]],
) -> None:
    parts = [
        torch.full((n, 2), float(r), dtype=torch.float64)
        + torch.arange(n, dtype=torch.float64)[:, None]
        for r, n in enumerate(UNEQUAL)
    ]
    expected = torch.cat(parts)
    weights = torch.arange(expected.numel(), dtype=torch.float64).reshape(expected.shape)
    for r, results in enumerate(rank_results):
        torch.testing.assert_close(results["gathered"], expected)
        # Every rank's loss puts `weights` on the gathered rows: the summed gradient
        # reaching rank r is WORLD x its rows of `weights`.
        start = sum(UNEQUAL[:r])
        torch.testing.assert_close(
            results["gather_grad"], WORLD * weights[start : start + UNEQUAL[r]]
        )
        torch.testing.assert_close(results["reduced"], torch.tensor([2.0, 1.0]))


def test_helpers_are_identities_in_a_single_process() -> None:
    assert world_size() == 1
    assert rank() == 0
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    reduced = all_reduce_sum(x)
    assert torch.equal(reduced, x) and not reduced.requires_grad
