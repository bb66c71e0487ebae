"""SwAV's queue on the methods that balance with Sinkhorn: ConCURL and CLC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.methods import ClusteringMethod
from contraclust.training import fit
from contraclust.training.checkpoint import build_method

N_SAMPLES, BATCH, DIM = 64, 16, 20  # 4 steps per epoch
#: Small settings of each method (ConCURL's exemplar loss off: the bank draws random numbers).
SMALL: dict[str, dict[str, Any]] = {
    "concurl": {
        "beta": 0.0,
        "projection_hidden": 32,
        "projection_out": 16,
        "n_projections": 2,
        "projection_dim": 8,
    },
    "clc": {},
}
METHODS = list(SMALL)


def cfg(method: str, backbone: str = "mlp", **params: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": method,
            "n_clusters": 6,
            "model": {"backbone": backbone, "hidden_dim": 32, "projection_dim": 16},
            "optim": {"lr": 1e-3},
            "train": {"epochs": 1, "batch_size": 50, "device": "cpu"},
            "params": {**SMALL[method], **params},
        }
    )


def make(method: str, **params: Any) -> ClusteringMethod:
    torch.manual_seed(0)
    method = build_method(cfg(method, **params), (DIM,), N_SAMPLES).train()
    method.start_fit(lambda fn: torch.empty(0), N_SAMPLES // BATCH, resumed=False)
    return method


def step(method: ClusteringMethod, seed: int) -> float:
    """Training step ``seed`` of the run (the hook, then the losses)."""
    method.on_step(seed, seed // (N_SAMPLES // BATCH))
    gen = torch.Generator().manual_seed(seed)
    views = [torch.randn(BATCH, DIM, generator=gen) for _ in range(2)]
    out = method.training_loss(views, views[0], torch.arange(BATCH))
    out["loss"].backward()
    return float(out["loss"].detach())


@pytest.mark.parametrize("name", METHODS)
def test_queue_fills_from_its_start_epoch_and_is_used_once_full(name: str) -> None:
    method = make(name, queue_length=40, queue_start_epoch=0.75)
    plain = make(name)
    queue = method.sinkhorn_queue
    assert plain.sinkhorn_queue is None and queue is not None
    stored = []
    for i in range(7):
        loss, plain_loss = step(method, i), step(plain, i)
        stored.append(int(queue.queue.stored[0]))
        # Until the queue is full (after steps 3, 4, 5) the targets are the batch's alone.
        if i <= 5:
            assert loss == plain_loss, i  # the same computation, to the last bit
        else:
            assert abs(loss - plain_loss) > 1e-5
    # 4 steps per epoch: epoch 0.75 starts at the fourth step (i = 3).
    assert stored == [0, 0, 0, 16, 32, 40, 40]


@pytest.mark.parametrize("name", METHODS)
def test_outside_training_the_queue_is_left_alone(name: str) -> None:
    method = make(name, queue_length=8)
    method.eval()
    with torch.no_grad():
        step_views = [torch.randn(BATCH, DIM) for _ in range(2)]
        method.training_loss(step_views, step_views[0], torch.arange(BATCH))
    assert method.sinkhorn_queue is not None
    assert int(method.sinkhorn_queue.queue.stored[0]) == 0


@pytest.fixture(scope="module")
def digits_small():
    return load_dataset("digits").subset(np.arange(200))


@pytest.mark.parametrize("name", METHODS)
def test_queue_round_trips_through_the_checkpoint_and_resume_is_exact(
    name: str, digits_small, tmp_path: Path
) -> None:
    # 200 samples, batch 50: 4 steps an epoch; the queue fills in the second half of
    # epoch 1 and is used in all of epoch 2, which the resumed run starts from its file.
    def run_cfg(epochs: int) -> RunConfig:
        config = cfg(name, backbone="small_cnn", queue_length=100, queue_start_epoch=0.5)
        config.model.width = 8
        config.train.epochs = epochs
        return config

    straight = fit(run_cfg(2), digits_small, quiet=True)
    out = tmp_path / "run"
    first = fit(run_cfg(1), digits_small, run_dir=out, quiet=True)
    assert first.method.sinkhorn_queue.queue.is_full()
    resumed = fit(run_cfg(2), digits_small, run_dir=out, resume=True, quiet=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    own = resumed.method.state_dict()
    for key, value in straight.method.state_dict().items():
        assert torch.equal(own[key], value), key
    assert any("sinkhorn_queue.queue.embeddings" in key for key in own)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"queue_length": -1}, "queue_length must be an integer >= 0"),
        ({"queue_length": 1.5}, "queue_length"),
        ({"queue_length": 8, "queue_start_epoch": -1}, "queue_start_epoch must be a finite"),
        ({"queue_length": 8, "queue_start_epoch": float("nan")}, "queue_start_epoch"),
        ({"queue_start_epoch": 2}, r"queue_start_epoch is 2(\.0)? but queue_length is 0"),
    ],
)
def test_bad_queue_settings_raise_config_error(name: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make(name, **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("concurl", {"alpha": 0.0, "gamma": 0.0, "beta": 1.0}),
        ("clc", {"equipartition": "balance_penalty"}),
        ("clc", {"equipartition": "none"}),
    ],
)
def test_a_queue_without_a_sinkhorn_step_is_refused(name: str, params: dict) -> None:
    with pytest.raises(ConfigError, match="queue_length is 8 but these settings run no Sinkhorn"):
        make(name, queue_length=8, **params)


def test_clc_queue_with_balanced_categorical_part_is_accepted() -> None:
    method = make("clc", queue_length=8, equipartition="none", categorical_in_similarity="sinkhorn")
    step(method, 0)
    assert method.sinkhorn_queue is not None
    assert int(method.sinkhorn_queue.queue.stored[0]) == 8


@pytest.mark.slow
def test_two_processes_keep_their_own_queues_and_resume_exactly(tmp_path: Path) -> None:
    """`fit --devices 2` (gloo): DDP's buffer broadcast from rank 0 must not overwrite the
    other process's queue, and stopping after epoch 1 then resuming on 2 processes ends
    with the weights and queues of a run that never stopped."""
    from contraclust.training.checkpoint import read_checkpoint

    # 1797 samples, batch 128 (64 per process): 14 steps an epoch; the queue of 128
    # fills from step 7 and is used from step 9 on, across the resume.
    common = ["digits", "--method", "clc", "--devices", "2", "--device", "cpu"]
    common += ["--batch-size", "128", "--quiet", "--no-report", "--eval-every", "0"]
    common += ["--param", "queue_length=128", "--param", "queue_start_epoch=0.5"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for out, epochs in ((straight, "2"), (stopped, "1")):
        proc = cli("fit", *common, "--epochs", epochs, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
    first = read_checkpoint(stopped / "checkpoints" / "last.ckpt")["state_dict"]
    slots = first["sinkhorn_queue.queue.embeddings"]
    assert slots.shape[:3] == (2, 2, 128)
    assert first["sinkhorn_queue.queue.stored"].tolist() == [128, 128]
    assert not torch.equal(slots[0], slots[1])  # each process queued its own samples
    proc = cli("fit", "--out", str(stopped), "--resume", "--devices", "2", "--epochs", "2",
               "--device", "cpu", "--quiet", "--no-report")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = read_checkpoint(straight / "model.ckpt")["state_dict"]
    b = read_checkpoint(stopped / "model.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "contraclust.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("name", METHODS)
def test_a_queue_that_would_not_start_within_the_run_is_refused(name: str, digits_small) -> None:
    config = cfg(name, backbone="small_cnn", queue_length=100, queue_start_epoch=1)
    with pytest.raises(ConfigError, match=f"{name}: queue_start_epoch=1 is not reached within"):
        fit(config, digits_small, quiet=True)
