"""A two-process (gloo, CPU) harness shared by the distributed loss tests.

``run_on_processes(body, out_dir)`` spawns ``world_size`` processes, joins them in a
gloo group on 127.0.0.1, runs ``body(rank)`` in each and returns what every rank
returned, in rank order. Rank 0 listens on a port the system picks (port 0) and
passes its number to the others, so no port is freed and taken again later. One
spawn is meant to serve a whole test module (process start-up dominates the cost): a
module declares ``rank_results = rank_results_fixture(rank_body)``, a module-scoped
fixture that spawns once, and its tests compare the results with the same computations
done in one process on the whole batch (``assert_every_rank_close``). ``SPLITS`` are the
per-rank batch sizes every module tries: equal, and unequal.

``body`` must be a module-level function of the test module, so that it pickles by
name under the ``spawn`` start method; its results must be ``torch.save``-able.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

TIMEOUT = datetime.timedelta(seconds=60)
WORLD = 2
#: Per-rank batch sizes: equal and unequal splits of the same global batch of 8 rows.
SPLITS: dict[str, tuple[int, int]] = {"equal": (4, 4), "unequal": (3, 5)}


def _join_group(rank: int, world_size: int, ports: Any) -> None:
    """Rank 0 binds port 0 (the system picks a free one) in the store it listens with
    and sends the port to every other rank through ``ports``, a queue."""
    if rank == 0:
        store = dist.TCPStore(
            "127.0.0.1", 0, world_size, is_master=True, timeout=TIMEOUT, wait_for_workers=False
        )
        for _ in range(world_size - 1):
            ports.put(store.port)
    else:
        store = dist.TCPStore("127.0.0.1", ports.get(), world_size, timeout=TIMEOUT)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size, timeout=TIMEOUT)


def _worker(
    local_rank: int,
    body: Callable[[int], dict[str, Any]],
    ports: Any,
    out_dir: str,
    world_size: int,
) -> None:
    torch.set_num_threads(1)
    _join_group(local_rank, world_size, ports)
    try:
        torch.save(body(local_rank), Path(out_dir) / f"rank{local_rank}.pt")
    finally:
        dist.destroy_process_group()


def run_on_processes(
    body: Callable[[int], dict[str, Any]], out_dir: Path, world_size: int = WORLD
) -> list[dict[str, Any]]:
    """Run ``body(rank)`` in ``world_size`` gloo processes; its results in rank order.

    Skips the calling test when this torch build has no ``torch.distributed``.
    """
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    with pytest.MonkeyPatch.context() as patch:
        # Keep gloo on the loopback interface; the children inherit this at spawn.
        patch.setenv("GLOO_SOCKET_IFNAME", "lo")
        ports = mp.get_context("spawn").SimpleQueue()
        mp.spawn(
            _worker,
            args=(body, ports, str(out_dir), world_size),
            nprocs=world_size,
            join=True,
        )
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(world_size)]


def rank_results_fixture(body: Callable[[int], dict[str, Any]]) -> Any:
    """A module-scoped fixture named ``rank_results``: ``body``'s results on ``WORLD``
    processes, spawned once for the module that assigns it."""

    @pytest.fixture(scope="module", name="rank_results")
    def rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
        out_dir = tmp_path_factory.mktemp(f"ddp-{body.__module__.rsplit('.', 1)[-1]}")
        return run_on_processes(body, out_dir)

    return rank_results


def assert_every_rank_close(
    rank_results: Sequence[dict[str, Any]],
    key: str,
    expected: dict[str, Tensor],
    atol: float,
    rtol: float,
) -> None:
    """Every rank's ``results[key]`` holds the tensors of ``expected``, and only those."""
    for results in rank_results:
        got = results[key]
        assert set(got) == set(expected)
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, atol=atol, rtol=rtol, msg=name)


def rank_rows(sizes: Sequence[int], rank: int) -> slice:
    """The rows of the global batch that process ``rank`` holds when the per-rank
    batch sizes are ``sizes`` (consecutive blocks, in rank order)."""
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def parameter_grads(model: nn.Module, average_over_processes: bool) -> dict[str, Tensor]:
    """A copy of every parameter gradient of ``model`` after ``backward()``, by name.

    With ``average_over_processes`` each gradient is averaged over the processes of
    the group, which is what DDP does.
    """
    grads: dict[str, Tensor] = {}
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} has no gradient"
        grad = param.grad.detach().clone()
        if average_over_processes:
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
        grads[name] = grad
    return grads
