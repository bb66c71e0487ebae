from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from ddp_harness import SPLITS, rank_results_fixture, rank_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from contraclust.errors import ConfigError, DataError
from contraclust.losses import SinkhornKnopp, sinkhorn_knopp


def reference_sinkhorn(scores: torch.Tensor, eps: float, n_iter: int) -> list[list[float]]:
    """SwAV's algorithm written out with Python lists: exp, then alternate the column
    (cluster mass 1/K) and row (sample mass 1/B) normalisations, then scale rows to 1."""
    b, k = scores.shape
    q = [[math.exp(float(scores[i, j]) / eps) for j in range(k)] for i in range(b)]
    for _ in range(n_iter):
        for j in range(k):
            column = sum(q[i][j] for i in range(b))
            for i in range(b):
                q[i][j] /= column * k
        for i in range(b):
            row = sum(q[i])
            q[i] = [v / (row * b) for v in q[i]]
    return [[v * b for v in row] for row in q]


def uniform_scores(b: int, k: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, k, generator=gen, dtype=dtype) * 2 - 1


@pytest.mark.parametrize(("b", "k"), [(1, 1), (1, 4), (5, 3), (12, 7), (6, 20)])
@pytest.mark.parametrize(("eps", "n_iter"), [(0.05, 3), (0.5, 1), (0.1, 10)])
def test_matches_loop_reference(b: int, k: int, eps: float, n_iter: int) -> None:
    scores = uniform_scores(b, k, seed=b * 31 + k)
    q = sinkhorn_knopp(scores, eps, n_iter)
    expected = torch.tensor(reference_sinkhorn(scores, eps, n_iter), dtype=torch.float64)
    assert q.shape == (b, k) and q.dtype == torch.float64
    torch.testing.assert_close(q, expected, rtol=1e-9, atol=1e-12)


def test_rows_sum_to_one_and_columns_reach_uniform_mass() -> None:
    scores = uniform_scores(64, 10, seed=0)
    for n_iter in (3, 100):
        q = sinkhorn_knopp(scores, eps=0.05, n_iter=n_iter)
        torch.testing.assert_close(q.sum(dim=1), torch.ones(64, dtype=torch.float64))
        assert (q >= 0).all()
    # Column masses are B / K once Sinkhorn has converged (3 rounds are not enough).
    assert (q.sum(dim=0) * 10 / 64 - 1).abs().max() < 1e-3
    few = sinkhorn_knopp(scores, eps=0.05, n_iter=3)
    assert (few.sum(dim=0) * 10 / 64 - 1).abs().max() > 1e-3


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_stable_for_small_eps_and_many_clusters(scale: float) -> None:
    gen = torch.Generator().manual_seed(1)
    scores = scale * (torch.rand(256, 1000, generator=gen) * 2 - 1)
    q = sinkhorn_knopp(scores, eps=0.05, n_iter=3)
    assert q.dtype == torch.float32
    assert torch.isfinite(q).all() and (q >= 0).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(256), rtol=0, atol=1e-5)
    # The naive form exp(scores / eps) overflows here, which is why the log domain is used.
    if scale == 50.0:
        assert not torch.isfinite(torch.exp(scores.double() / 0.05)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores_give_float32_targets(dtype: torch.dtype) -> None:
    scores = uniform_scores(32, 10, seed=2).to(dtype)
    q = sinkhorn_knopp(scores)
    assert q.dtype == torch.float32
    torch.testing.assert_close(q, sinkhorn_knopp(scores.double()).float())


def test_no_gradient_and_input_untouched() -> None:
    scores = uniform_scores(8, 4, seed=3).requires_grad_()
    before = scores.detach().clone()
    q = sinkhorn_knopp(scores)
    assert not q.requires_grad and q.grad_fn is None
    assert torch.equal(scores.detach(), before)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 12),
    k=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    n_iter=st.integers(1, 5),
)
def test_a_constant_added_to_a_cluster_column_changes_nothing(
    b: int, k: int, seed: int, n_iter: int
) -> None:
    # The first step rescales every column, which removes any per-cluster factor.
    scores = uniform_scores(b, k, seed)
    shift = torch.linspace(-0.5, 0.5, k, dtype=torch.float64)
    torch.testing.assert_close(
        sinkhorn_knopp(scores + shift, 0.05, n_iter), sinkhorn_knopp(scores, 0.05, n_iter)
    )


def test_module_matches_function() -> None:
    scores = uniform_scores(16, 5, seed=4)
    module = SinkhornKnopp(eps=0.1, n_iter=4)
    assert torch.equal(module(scores), sinkhorn_knopp(scores, 0.1, 4))
    assert "eps=0.1" in repr(module)


@pytest.mark.parametrize("eps", [0.0, -0.05, float("nan"), float("inf")])
def test_invalid_eps_raises_config_error(eps: float) -> None:
    with pytest.raises(ConfigError, match="eps must be a finite number > 0"):
        SinkhornKnopp(eps=eps)
    with pytest.raises(ConfigError, match="eps"):
        sinkhorn_knopp(uniform_scores(2, 2, 0), eps=eps)


@pytest.mark.parametrize("n_iter", [0, -1, 2.5, True])
def test_invalid_n_iter_raises_config_error(n_iter: Any) -> None:
    with pytest.raises(ConfigError, match="n_iter must be an integer >= 1"):
        SinkhornKnopp(n_iter=n_iter)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), (4, 0)])
def test_bad_score_shapes_raise_data_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(DataError, match="scores"):
        sinkhorn_knopp(torch.zeros(shape))


# ----------------------------------------------------------------- two processes (gloo)
EPS, ITERS, K = 0.05, 5, 6


def global_scores() -> torch.Tensor:
    return uniform_scores(8, K, seed=1234)


def rank_body(local_rank: int) -> dict[str, Any]:
    results = {}
    scores = global_scores()
    for name, sizes in SPLITS.items():
        local = scores[rank_rows(sizes, local_rank)]
        results[name] = sinkhorn_knopp(local, EPS, ITERS, gather_distributed=True)
        results[f"{name}/local"] = sinkhorn_knopp(local, EPS, ITERS)
    return results


rank_results = rank_results_fixture(rank_body)


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_processes_match_one_process_on_the_global_batch(
    rank_results: list[dict[str, torch.Tensor]], split: str
) -> None:
    expected = sinkhorn_knopp(global_scores(), EPS, ITERS)
    got = torch.cat([results[split] for results in rank_results])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # Without gathering each process balances only its own rows: a different answer.
    local = torch.cat([results[f"{split}/local"] for results in rank_results])
    assert not torch.allclose(local, expected, atol=1e-3)
