from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from ddp_harness import rank_rows, run_on_processes

from contraclust.errors import ConfigError, DataError
from contraclust.losses import EmbeddingQueue, sinkhorn_knopp


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=gen, dtype=torch.float64), dim=1).float()


def test_push_is_first_in_first_out_newest_first() -> None:
    queue = EmbeddingQueue(length=10, dim=3, n_views=2)
    batches = [(unit_rows(4, 3, seed), unit_rows(4, 3, 100 + seed)) for seed in range(4)]
    for step, (a, b) in enumerate(batches):
        assert queue.is_full() == (4 * step >= 10)
        queue.push([a, b])
        assert int(queue.stored[0]) == min(10, 4 * (step + 1))
    assert queue.is_full()
    # 10 is not a multiple of 4: the newest two batches and half of the one before.
    expected_a = torch.cat([batches[3][0], batches[2][0], batches[1][0][:2]])
    expected_b = torch.cat([batches[3][1], batches[2][1], batches[1][1][:2]])
    assert torch.equal(queue.rows(0), expected_a)
    assert torch.equal(queue.rows(1), expected_b)


def test_a_queue_shorter_than_the_batch_keeps_part_of_the_last_batch() -> None:
    queue = EmbeddingQueue(length=3, dim=2, n_views=1)
    x = unit_rows(5, 2, 0)
    queue.push([x])
    assert queue.is_full() and torch.equal(queue.rows(0), x[:3])


def test_targets_use_the_queue_only_once_full_and_only_the_batch_rows() -> None:
    prototypes = unit_rows(6, 4, 1)
    queue = EmbeddingQueue(length=8, dim=4, n_views=2)
    balance = functools.partial(sinkhorn_knopp, eps=0.1, n_iter=3)
    score = lambda e: e @ prototypes.T  # noqa: E731
    for step in range(4):
        z = [unit_rows(4, 4, 10 * step + v) for v in range(2)]
        s = [e @ prototypes.T for e in z]
        before = [queue.rows(v).clone() for v in range(2)]
        full = queue.is_full()
        got = queue.balanced_targets(s, z, score, balance)
        for v in range(2):
            # Steps 2 and 3: the queue (the two previous batches) joins the batch.
            both = torch.cat([score(before[v]), s[v]])
            expected = balance(both)[8:] if full else balance(s[v])
            assert got[v].shape == (4, 6)
            torch.testing.assert_close(got[v], expected)
        # The push came after the targets: the batch's rows are now at the front.
        assert torch.equal(queue.rows(0)[:4], z[0])
    assert full  # the last two steps ran with a full queue


def _skewed_population(n: int, k: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` unit embeddings from 20 blobs of Zipf-like weights, and ``k`` random prototypes."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = F.normalize(torch.randn(k, dim, generator=gen), dim=1)
    centres = F.normalize(torch.randn(20, dim, generator=gen), dim=1)
    weights = 1.0 / torch.arange(1, 21, dtype=torch.float32)
    blob = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=gen)
    z = F.normalize(centres[blob] + 0.3 * torch.randn(n, dim, generator=gen), dim=1)
    return z, prototypes


def test_with_a_queue_a_batch_of_64_over_500_clusters_gets_the_population_equipartition() -> None:
    # The equipartition is meant over the data: every cluster N / K samples. Its reference
    # is Sinkhorn on the whole population at once. A batch of 64 over K = 500 (0.13 sample
    # per cluster) balanced alone is forced onto 64 different clusters whatever its
    # samples are; with a queue of 3840 it is balanced over 3904 rows (7.8 per cluster).
    # Criterion: the share of the batch's hard assignments that agree with the population's
    # (the measured shares: about 0.92 with the queue, 0.55 without).
    k, batch, length, eps = 500, 64, 3840, 0.05
    z, prototypes = _skewed_population(length + 10 * batch, k, 32, seed=0)
    scores = z @ prototypes.T
    population = sinkhorn_knopp(scores, eps, 3).argmax(dim=1)
    queue = EmbeddingQueue(length=length, dim=32, n_views=1)
    balance = functools.partial(sinkhorn_knopp, eps=eps, n_iter=3)
    for start in range(0, length, batch):  # fill the queue with 60 earlier batches
        queue.push([z[start : start + batch]])
    agree_queue, agree_alone, clusters_alone = [], [], []
    for start in range(length, len(z), batch):
        rows = slice(start, start + batch)
        alone = balance(scores[rows]).argmax(dim=1)
        (with_queue,) = queue.balanced_targets(
            [scores[rows]], [z[rows]], lambda e: e @ prototypes.T, balance
        )
        agree_queue.append((with_queue.argmax(dim=1) == population[rows]).float().mean())
        agree_alone.append((alone == population[rows]).float().mean())
        clusters_alone.append(len(alone.unique()))
    assert float(torch.stack(agree_queue).mean()) > 0.85
    assert float(torch.stack(agree_alone).mean()) < 0.7
    assert min(clusters_alone) == batch  # alone, the batch is spread one sample per cluster


def test_state_round_trips_and_another_process_count_loads_empty() -> None:
    queue = EmbeddingQueue(length=6, dim=3, n_views=2)
    for seed in range(3):
        queue.push([unit_rows(2, 3, seed), unit_rows(2, 3, seed + 50)])
    state = queue.state_dict()
    other = EmbeddingQueue(length=6, dim=3, n_views=2)
    other.load_state_dict(state)
    assert torch.equal(other.embeddings, queue.embeddings) and other.is_full()
    # A state written by two processes (one slot each) in a one-process run: no slot is
    # this run's, so the queue starts empty instead of taking another process's rows.
    two = {
        "embeddings": torch.ones(2, 2, 6, 3),
        "stored": torch.tensor([6, 6]),
    }
    other.load_state_dict(two)
    assert other.embeddings.shape == (1, 2, 6, 3) and not other.is_full()
    assert int(other.stored.sum()) == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"length": 0}, "queue length"),
        ({"length": 2.5}, "queue length"),
        ({"length": True}, "queue length"),
        ({"dim": 0}, "dim"),
        ({"n_views": 0}, "n_views"),
    ],
)
def test_invalid_settings_raise_config_error(kwargs: dict[str, Any], name: str) -> None:
    settings = {"length": 4, "dim": 3, **kwargs}
    with pytest.raises(ConfigError, match=f"{name} must be an integer >= 1"):
        EmbeddingQueue(**settings)


def test_bad_pushes_raise_data_error() -> None:
    queue = EmbeddingQueue(length=4, dim=3, n_views=2)
    with pytest.raises(DataError, match="one batch per view"):
        queue.push([unit_rows(2, 3, 0)])
    with pytest.raises(DataError, match="B x 3"):
        queue.push([unit_rows(2, 3, 0), unit_rows(2, 4, 0)])


# ----------------------------------------------------------------- two processes (gloo)
WORLD, LENGTH, DIM, K, EPS = 2, 7, 4, 5, 0.1
SPLITS = {"equal": (4, 4), "unequal": (3, 5)}
STEPS = 4  # three pushes fill 7 rows on every rank (3 rows a step on the smaller)


def _global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    return unit_rows(8, DIM, 300 + step), unit_rows(8, DIM, 400 + step)


def _prototypes() -> torch.Tensor:
    return unit_rows(K, DIM, 999)


def rank_body(local_rank: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    prototypes = _prototypes()
    balance = functools.partial(sinkhorn_knopp, eps=EPS, n_iter=4, gather_distributed=True)
    for name, sizes in SPLITS.items():
        queue = EmbeddingQueue(LENGTH, DIM, n_views=2, gather_distributed=True)
        for step in range(STEPS):
            z = [view[rank_rows(sizes, local_rank)] for view in _global_batch(step)]
            targets = queue.balanced_targets(
                [e @ prototypes.T for e in z], z, lambda e: e @ prototypes.T, balance
            )
        results[name] = targets
        results[f"{name}/buffer"] = queue.embeddings.clone()
        results[f"{name}/own"] = [queue.rows(v).clone() for v in range(2)]
    return results


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_on_processes(rank_body, tmp_path_factory.mktemp("queue-ddp"), world_size=WORLD)


def _one_process_queue(sizes: tuple[int, ...], rank: int, view: int) -> torch.Tensor:
    """What process ``rank``'s queue holds before the last step: its own rows only."""
    steps = reversed(range(STEPS - 1))
    rows = [_global_batch(step)[view][rank_rows(sizes, rank)] for step in steps]
    return torch.cat(rows)[:LENGTH]


@pytest.mark.parametrize("split", list(SPLITS))
def test_two_processes_with_own_queues_match_one_process_holding_both(
    rank_results: list[dict[str, Any]], split: str
) -> None:
    sizes = SPLITS[split]
    prototypes = _prototypes()
    last = _global_batch(STEPS - 1)
    for view in range(2):
        # One process: both processes' queues and batches, balanced together (the global
        # row count is the sum over processes of queue + batch), the batch rows kept.
        blocks, batch_rows = [], []
        for r in range(WORLD):
            queued = _one_process_queue(sizes, r, view)
            start = sum(len(b) for b in blocks) + len(queued)
            blocks += [queued, last[view][rank_rows(sizes, r)]]
            batch_rows.append(slice(start, start + sizes[r]))
        q = sinkhorn_knopp(torch.cat(blocks) @ prototypes.T, EPS, 4)
        for r in range(WORLD):
            torch.testing.assert_close(rank_results[r][split][view], q[batch_rows[r]])
            # Each process's slot holds its own rows (before the last push: the last
            # batch is now in front of them).
            mine = torch.cat([last[view][rank_rows(sizes, r)], _one_process_queue(sizes, r, view)])
            torch.testing.assert_close(rank_results[r][f"{split}/own"][view], mine[:LENGTH])
        # Balancing each process alone would be another answer.
        alone = sinkhorn_knopp(blocks[0] @ prototypes.T, EPS, 4)
        assert not torch.allclose(alone, q[: len(blocks[0])], atol=1e-3)
    # Every process stores every process's queue, identically (DDP broadcasts buffers).
    assert torch.equal(rank_results[0][f"{split}/buffer"], rank_results[1][f"{split}/buffer"])
