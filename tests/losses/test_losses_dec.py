from __future__ import annotations

import math
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

from contraclust.errors import ConfigError, DataError
from contraclust.losses import DECLoss, dec_target, student_t_assignment


def reference_q(h: Tensor, centers: Tensor, alpha: float) -> list[list[float]]:
    """DEC eq. 1 sample by sample, centre by centre, in Python floats."""
    rows = []
    for hi in h.double():
        kernel = []
        for mu in centers.double():
            sq = sum((float(a) - float(b)) ** 2 for a, b in zip(hi, mu, strict=True))
            kernel.append((1.0 + sq / alpha) ** (-(alpha + 1.0) / 2.0))
        total = sum(kernel)
        rows.append([k / total for k in kernel])
    return rows


def reference_p(q: list[list[float]]) -> list[list[float]]:
    """DEC eq. 3 in Python floats."""
    k = len(q[0])
    f = [sum(row[j] for row in q) for j in range(k)]
    rows = []
    for row in q:
        weighted = [row[j] ** 2 / f[j] for j in range(k)]
        total = sum(weighted)
        rows.append([w / total for w in weighted])
    return rows


def reference_loss(p: list[list[float]], q: list[list[float]]) -> float:
    total = 0.0
    for p_row, q_row in zip(p, q, strict=True):
        total += sum(a * math.log(a / b) for a, b in zip(p_row, q_row, strict=True) if a > 0)
    return total / len(p)


def random_case(batch: int, k: int, dim: int, seed: int, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    h = scale * torch.randn(batch, dim, generator=gen)
    centers = scale * torch.randn(k, dim, generator=gen)
    return h, centers


@pytest.mark.parametrize(("batch", "k", "dim"), [(1, 2, 3), (5, 3, 4), (16, 10, 8), (7, 1, 2)])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_student_t_matches_loop_reference(batch: int, k: int, dim: int, alpha: float) -> None:
    h, centers = random_case(batch, k, dim, seed=batch * 10 + k)
    q = student_t_assignment(h, centers, alpha)
    assert q.shape == (batch, k) and q.dtype == torch.float32
    expected = torch.tensor(reference_q(h, centers, alpha), dtype=torch.float32)
    torch.testing.assert_close(q, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(batch))


@pytest.mark.parametrize(("batch", "k"), [(1, 3), (6, 2), (20, 7)])
def test_target_matches_loop_reference_and_rows_sum_to_one(batch: int, k: int) -> None:
    h, centers = random_case(batch, k, 5, seed=batch + k)
    q = student_t_assignment(h, centers)
    p = dec_target(q)
    expected = torch.tensor(reference_p(q.double().tolist()), dtype=torch.float32)
    torch.testing.assert_close(p, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(batch))
    assert not p.requires_grad


def test_target_is_sharper_than_q() -> None:
    h, centers = random_case(64, 6, 4, seed=5)
    q = student_t_assignment(h, centers)
    p = dec_target(q)

    def mean_entropy(t: Tensor) -> float:
        return float(-(t * t.log()).sum(dim=1).mean())

    assert mean_entropy(p) < mean_entropy(q) - 0.05
    # Squaring puts more mass on each row's most likely cluster.
    assert bool((p.max(dim=1).values >= q.max(dim=1).values - 1e-6).all())


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_loss_matches_reference_with_per_batch_target(alpha: float) -> None:
    h, centers = random_case(12, 4, 6, seed=7)
    q = reference_q(h, centers, alpha)
    expected = reference_loss(reference_p(q), q)
    loss = DECLoss(alpha)(h, centers)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_external_target_is_used_as_given_and_gets_no_gradient() -> None:
    h, centers = random_case(9, 3, 4, seed=8)
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(9, 3, generator=gen)
    target[0] = torch.tensor([1.0, 0.0, 0.0])  # exact zeros: 0 log 0 counts as 0
    target = (target / target.sum(dim=1, keepdim=True)).requires_grad_()
    q = reference_q(h, centers, 1.0)
    expected = reference_loss(target.tolist(), q)
    h.requires_grad_()
    loss = DECLoss()(h, centers, target=target)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert target.grad is None
    assert h.grad is not None and bool(h.grad.abs().sum() > 0)
    # The per-batch target gives a different value: the argument is not ignored.
    assert DECLoss()(h, centers).item() != pytest.approx(loss.item(), rel=1e-3)


def test_gradcheck_float64() -> None:
    h, centers = random_case(5, 3, 4, seed=9)
    h = h.double().requires_grad_()
    centers = centers.double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: student_t_assignment(a, b, 1.5), (h, centers), eps=1e-6, atol=1e-6
    )
    # A fixed target: the per-batch one depends on h but is (rightly) detached, which
    # finite differences would not know.
    target = dec_target(student_t_assignment(h, centers)).double()
    loss_fn = DECLoss(alpha=1.0)
    assert torch.autograd.gradcheck(
        lambda a, b: loss_fn(a, b, target), (h, centers), eps=1e-6, atol=1e-6
    )
    assert loss_fn(h, centers).dtype == torch.float64


def test_far_samples_stay_finite() -> None:
    # Distances of 1e8: the plain kernel underflows; the log domain does not.
    h, centers = random_case(8, 5, 3, seed=10, scale=1e4)
    h.requires_grad_()
    q = student_t_assignment(h, centers)
    assert bool(torch.isfinite(q).all())
    torch.testing.assert_close(q.sum(dim=1), torch.ones(8))
    loss = DECLoss()(h, centers)
    loss.backward()
    assert torch.isfinite(loss) and bool(torch.isfinite(h.grad).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype: torch.dtype) -> None:
    h, centers = random_case(16, 4, 8, seed=11, scale=30.0)
    loss = DECLoss()(h.to(dtype), centers.to(dtype))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    q = student_t_assignment(h.to(dtype), centers.to(dtype))
    expected = student_t_assignment(h.to(dtype).float(), centers.to(dtype).float())
    torch.testing.assert_close(q, expected)


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_alpha_raises_config_error_naming_it(alpha: float) -> None:
    with pytest.raises(ConfigError, match="alpha"):
        DECLoss(alpha=alpha)
    h, centers = random_case(3, 2, 2, seed=0)
    with pytest.raises(ConfigError, match="alpha"):
        student_t_assignment(h, centers, alpha)


def test_bad_shapes_raise_data_error() -> None:
    h, centers = random_case(4, 3, 5, seed=0)
    with pytest.raises(DataError, match="same feature width"):
        student_t_assignment(h, centers[:, :4])
    with pytest.raises(DataError, match="h must be a 2-D"):
        student_t_assignment(h[0], centers)
    with pytest.raises(DataError, match="target must have shape"):
        DECLoss()(h, centers, target=torch.full((4, 2), 0.5))
    with pytest.raises(DataError, match="empty batch"):
        DECLoss()(h[:0], centers)
    with pytest.raises(DataError, match="q must be a 2-D"):
        dec_target(torch.ones(3))


# ---------------------------------------------------------------- two processes (gloo)
IN_DIM, FEAT_DIM, K = 5, 3, 4


def global_inputs() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(4321)
    n = sum(SPLITS["equal"])
    x = torch.randn(n, IN_DIM, dtype=torch.float64, generator=gen)
    target = torch.rand(n, K, dtype=torch.float64, generator=gen)
    return x, target / target.sum(dim=1, keepdim=True)


class TinyDEC(nn.Module):
    """A linear encoder and K centres: the parameters a DEC loss trains."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(77)  # the same weights in every process
        self.encoder = nn.Linear(IN_DIM, FEAT_DIM).double()
        self.centers = nn.Parameter(torch.randn(K, FEAT_DIM, dtype=torch.float64))


def dec_loss_and_grads(x: Tensor, target: Tensor | None, gather: bool) -> dict[str, Tensor]:
    model = TinyDEC()
    loss = DECLoss(alpha=1.0, gather_distributed=gather)(model.encoder(x), model.centers, target)
    loss.backward()
    return {"loss": loss.detach(), **parameter_grads(model, average_over_processes=gather)}


def target_rows(x: Tensor, gather: bool) -> Tensor:
    model = TinyDEC()
    with torch.no_grad():
        q = student_t_assignment(model.encoder(x), model.centers)
    return dec_target(q, gather_distributed=gather)


def rank_body(local_rank: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    x, target = global_inputs()
    for split, sizes in SPLITS.items():
        rows = rank_rows(sizes, local_rank)
        results[f"batch/{split}"] = dec_loss_and_grads(x[rows], None, True)
        results[f"external/{split}"] = dec_loss_and_grads(x[rows], target[rows], True)
        results[f"target/{split}"] = target_rows(x[rows], True)
    return results


rank_results = rank_results_fixture(rank_body)


@pytest.mark.parametrize("case", ["batch", "external"])
@pytest.mark.parametrize("split", list(SPLITS))
def test_two_processes_match_one_process(
    rank_results: list[dict[str, Any]], case: str, split: str
) -> None:
    x, target = global_inputs()
    expected = dec_loss_and_grads(x, target if case == "external" else None, gather=False)
    assert_every_rank_close(rank_results, f"{case}/{split}", expected, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize(("split", "sizes"), list(SPLITS.items()))
def test_two_processes_target_uses_global_frequencies(
    rank_results: list[dict[str, Any]], split: str, sizes: tuple[int, int]
) -> None:
    x, _ = global_inputs()
    expected = target_rows(x, gather=False)
    got = torch.cat([results[f"target/{split}"] for results in rank_results])
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)
    # Local frequencies would give other rows: the reduction matters.
    local = torch.cat(
        [target_rows(x[sum(sizes[:r]) : sum(sizes[: r + 1])], gather=False) for r in range(WORLD)]
    )
    assert not torch.allclose(local, expected, atol=1e-6)
