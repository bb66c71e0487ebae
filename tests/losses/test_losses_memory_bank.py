from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from ddp_harness import SPLITS, WORLD, parameter_grads, rank_results_fixture, rank_rows
from torch import nn

from contraclust.errors import ConfigError, DataError
from contraclust.losses import MemoryBankNCE


def reference_loss(
    features: torch.Tensor,
    index: torch.Tensor,
    bank: torch.Tensor,
    negatives: list[int],
    n_negatives: int,
    t: float,
) -> float:
    """Softmax over the positive entry and n_negatives drawn entries, sample by sample."""
    total = 0.0
    for f, i in zip(features.double(), index.tolist(), strict=True):
        f = f / f.norm()
        own = [j for j in negatives if j != i][:n_negatives]
        assert len(own) == n_negatives and i not in own
        positive = math.exp(float(f @ bank[i].double()) / t)
        others = sum(math.exp(float(f @ bank[j].double()) / t) for j in own)
        total += -math.log(positive / (positive + others))
    return total / len(index)


def make_bank(n: int = 20, dim: int = 6, n_negatives: int = 5, **kwargs: Any) -> MemoryBankNCE:
    torch.manual_seed(0)
    return MemoryBankNCE(n, dim, n_negatives=n_negatives, **kwargs)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_loss_matches_reference_with_fixed_negatives(temperature: float) -> None:
    bank = make_bank(temperature=temperature)
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(4, 6, generator=gen)
    index = torch.tensor([3, 7, 11, 0])
    # Sample 3 and sample 0 find themselves among the drawn indices, the others do not.
    negatives = torch.tensor([3, 15, 0, 9, 2, 18])
    loss = bank(features, index, negatives)
    expected = reference_loss(features, index, bank.bank, negatives.tolist(), 5, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_random_negatives_are_distinct_and_capped() -> None:
    bank = make_bank(n=10, n_negatives=4096)
    assert bank.n_negatives == 9
    drawn = bank.draw_negatives()
    assert drawn.shape == (10,) and len(set(drawn.tolist())) == 10
    # Every sample has all 9 others as negatives: the loss is the full softmax.
    features, index = torch.randn(3, 6), torch.tensor([0, 4, 9])
    expected = reference_loss(features, index, bank.bank, list(range(10)), 9, bank.temperature)
    assert bank(features, index).item() == pytest.approx(expected, rel=1e-5)


def test_gradcheck_float64() -> None:
    bank = make_bank().double()
    features = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    index, negatives = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 2, 6, 7, 8])
    assert torch.autograd.gradcheck(lambda f: bank(f, index, negatives), (features,), eps=1e-6)


def test_update_moves_rows_with_momentum_and_renormalises() -> None:
    bank = make_bank(momentum=0.5)
    before = bank.bank.clone()
    features = torch.randn(3, 6)
    index = torch.tensor([2, 5, 19])
    bank.update(features, index)
    expected = F.normalize(0.5 * before[index] + 0.5 * F.normalize(features, dim=1), dim=1)
    torch.testing.assert_close(bank.bank[index], expected)
    untouched = torch.ones(20, dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(bank.bank[untouched], before[untouched])
    torch.testing.assert_close(bank.bank.norm(dim=1), torch.ones(20))


def test_update_with_momentum_zero_stores_the_features() -> None:
    bank = make_bank(momentum=0.0)
    features = torch.randn(2, 6, requires_grad=True)
    bank.update(features, torch.tensor([0, 1]))
    torch.testing.assert_close(bank.bank[:2], F.normalize(features.detach(), dim=1))
    assert not bank.bank.requires_grad


def test_loss_uses_the_bank_before_the_update() -> None:
    bank = make_bank()
    features, index = torch.randn(4, 6), torch.arange(4)
    negatives = bank.draw_negatives()
    loss = bank(features, index, negatives)
    bank.update(features, index)
    # After moving the entries towards the features the positives are closer.
    assert bank(features, index, negatives) < loss


def test_bank_is_random_unit_vectors_from_the_global_generator() -> None:
    a, b = make_bank(), make_bank()
    torch.manual_seed(1)
    c = MemoryBankNCE(20, 6, n_negatives=5)
    assert torch.equal(a.bank, b.bank) and not torch.equal(a.bank, c.bank)
    torch.testing.assert_close(a.bank.norm(dim=1), torch.ones(20))
    assert list(a.parameters()) == [] and "bank" in a.state_dict()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"dim": 0}, "dim"),
        ({"n_negatives": 0}, "n_negatives"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict[str, Any], name: str) -> None:
    args = {"n_samples": 10, "dim": 4, **kwargs}
    with pytest.raises(ConfigError, match=name):
        MemoryBankNCE(**args)


def test_bad_inputs_raise_data_error() -> None:
    bank = make_bank()
    with pytest.raises(DataError, match="features"):
        bank(torch.randn(3, 5), torch.arange(3))
    with pytest.raises(DataError, match="index"):
        bank(torch.randn(3, 6), torch.arange(4))
    with pytest.raises(DataError, match="negatives"):
        bank(torch.randn(3, 6), torch.arange(3), torch.arange(3))


# ----------------------------------------------------------------- two processes (gloo)
N, DIM, IN_DIM, NEG = 16, 4, 5, 6
NEGATIVES = torch.tensor([1, 14, 5, 8, 2, 11, 0])


def global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(42)
    x = torch.randn(8, IN_DIM, dtype=torch.float64, generator=gen)
    index = torch.randperm(N, generator=gen)[:8]
    return x, index


def fresh_bank() -> MemoryBankNCE:
    torch.manual_seed(3)  # the same bank in every process
    return MemoryBankNCE(N, DIM, n_negatives=NEG, temperature=0.2, gather_distributed=True).double()


def step(x: torch.Tensor, index: torch.Tensor, ddp: bool) -> dict[str, torch.Tensor]:
    """Loss, the (DDP-averaged) gradient of a linear embedding, and the bank after update."""
    bank = fresh_bank()
    torch.manual_seed(4)
    model = nn.Linear(IN_DIM, DIM).double()
    features = model(x)
    loss = bank(features, index, NEGATIVES)
    loss.backward()
    grad = parameter_grads(model, average_over_processes=ddp)["weight"]
    bank.update(features, index)
    return {"loss": loss.detach(), "grad": grad, "bank": bank.bank.clone()}


def rank_body(local_rank: int) -> dict[str, Any]:
    x, index = global_batch()
    results = {}
    for name, sizes in SPLITS.items():
        rows = rank_rows(sizes, local_rank)
        results[name] = step(x[rows], index[rows], ddp=True)
    return results


rank_results = rank_results_fixture(rank_body)


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_process_update_keeps_banks_identical(
    rank_results: list[dict[str, Any]], split: str
) -> None:
    x, index = global_batch()
    expected = step(x, index, ddp=False)
    for results in rank_results:
        torch.testing.assert_close(results[split]["bank"], expected["bank"])
    # Without gathering, each process would only have written its own rows.
    assert not torch.equal(rank_results[0][split]["bank"], fresh_bank().bank)


def test_two_processes_match_one_process_loss_and_gradient(
    rank_results: list[dict[str, Any]],
) -> None:
    x, index = global_batch()
    expected = step(x, index, ddp=False)
    mean_loss = sum(r["equal"]["loss"] for r in rank_results) / WORLD
    torch.testing.assert_close(mean_loss, expected["loss"])
    for results in rank_results:
        torch.testing.assert_close(results["equal"]["grad"], expected["grad"])
