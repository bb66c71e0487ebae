from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from contraclust.config import RunConfig, load_preset
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.evaluation import evaluate
from contraclust.methods import get_method, method_names
from contraclust.methods import scan as scan_module
from contraclust.methods.scan import SCAN, SCANParams, mine_neighbours
from contraclust.training import fit, read_checkpoint, rundir
from contraclust.training.checkpoint import build_method
from contraclust.training.predict import apply_batched

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small batches on a busy machine: a second intra-op thread mostly waits."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_small(digits):
    return digits.subset(np.arange(120))


def scan_cfg(epochs: int = 2, self_label_epochs: int = 0, **params: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": "scan",
            "n_clusters": 10,
            "model": {"backbone": "small_cnn", "width": 8, "hidden_dim": 32, "projection_dim": 16},
            "augment": {"name": "grey"},
            "optim": {"lr": 1e-3},
            "train": {
                "epochs": epochs,
                "self_label_epochs": self_label_epochs,
                "self_label_threshold": 0.5,
                "batch_size": 30,
                "device": "cpu",
                "eval_every": 0,
            },
            "params": {"pretext_epochs": 1, "n_neighbours": 5, **params},
        }
    )


def started_method(dataset, steps_per_epoch: int = 4, **params: Any) -> SCAN:
    """A SCAN method after the loop's set-up hooks and the hook of its first step, with
    a noise 'augmentation'."""
    torch.manual_seed(0)
    method = build_method(scan_cfg(**params), dataset.input_shape, len(dataset))
    assert isinstance(method, SCAN)
    method.set_input_stats(dataset.data)
    gen = torch.Generator().manual_seed(2)

    def views(index: torch.Tensor) -> torch.Tensor:
        clean = method.prepare(dataset.data[index])
        return clean + 0.1 * torch.randn(clean.shape, generator=gen)

    method.use_sample_views(views)
    encode = lambda fn: apply_batched(method, dataset.data, fn, CPU)  # noqa: E731
    method.start_fit(encode, steps_per_epoch, resumed=False, epochs=params.get("epochs", 2))
    method.on_step(0, 0)
    return method


def brute_force_neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    z = x.double() / x.double().norm(dim=1, keepdim=True)
    sims = z @ z.T
    sims.fill_diagonal_(float("-inf"))
    return sims.argsort(dim=1, descending=True)[:, :k]


def test_registered_and_listed() -> None:
    assert get_method("scan") is SCAN
    assert SCAN.Params is SCANParams
    assert "scan" in method_names()


@pytest.mark.parametrize("block", [1, 7 * 53, 53 * 53, 10**9])
def test_mined_neighbours_equal_brute_force(block: int) -> None:
    x = torch.randn(53, 6, generator=torch.Generator().manual_seed(0))
    got = mine_neighbours(x, 4, max_block_elements=block)
    expected = brute_force_neighbours(x, 4)
    assert torch.equal(got, expected)
    assert not (got == torch.arange(53)[:, None]).any()  # no sample is its own neighbour


def test_mining_works_in_bounded_blocks(monkeypatch) -> None:
    shapes: list[tuple[int, int]] = []
    block = scan_module._similarity_block

    def spy(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        out = block(queries, keys)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(scan_module, "_similarity_block", spy)
    n, budget = 1000, 50_000
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(1))
    got = mine_neighbours(x, 3, max_block_elements=budget)
    assert got.shape == (n, 3)
    assert sum(rows for rows, _ in shapes) == n
    assert max(rows * cols for rows, cols in shapes) <= budget  # never N x N
    assert torch.equal(got, brute_force_neighbours(x, 3))


def test_too_many_neighbours_raise_config_error(digits_small) -> None:
    with pytest.raises(ConfigError, match="n_neighbours"):
        mine_neighbours(torch.randn(5, 3), 5)
    with pytest.raises(ConfigError, match=r"n_neighbours \(120\) must be smaller"):
        started_method(digits_small, n_neighbours=120)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("pretext_epochs", -1.0),
        ("pretext_epochs", "100%"),
        ("pretext_epochs", "ten"),
        ("instance_temperature", 0.0),
        ("n_neighbours", 0),
        ("mining_space", "pixels"),
        ("entropy_weight", -1.0),
        ("n_heads", 0),
        ("update_backbone", "yes"),
        ("head_loss_momentum", 1.0),
    ],
)
def test_bad_hyper_parameters_raise_config_error_naming_them(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        SCANParams(**{key: value})


def test_pretext_as_a_share_of_the_run_switches_at_that_share(digits_small) -> None:
    # 2 epochs of 4 steps; 50 % of the run = 1 epoch = step 4.
    method = started_method(digits_small, pretext_epochs="50%")
    for step, clustering in ((3, False), (4, True)):
        method.on_step(step, step // 4)
        assert method.clustering is clustering, step
    assert method.neighbours.shape == (120, 5)
    SCAN.check_schedule(SCANParams(), 1)  # the default share fits any run
    with pytest.raises(ConfigError, match="pretext_epochs=3 is not reached within"):
        SCAN.check_schedule(SCANParams(pretext_epochs=3), 3)


def test_switch_mines_once_at_the_scheduled_step(digits_small, monkeypatch) -> None:
    # 120 samples in batches of 30: 4 steps an epoch; 1.5 pretext epochs = 6 steps.
    method = started_method(digits_small, pretext_epochs=1.5)
    mined: list[int] = []
    real_mine = method.mine
    current = [0]

    def counted() -> None:
        mined.append(current[0])
        real_mine()

    monkeypatch.setattr(method, "mine", counted)
    gen = torch.Generator().manual_seed(3)
    for step in range(9):
        current[0] = step
        method.on_step(step, step // 4)  # as the trainer does before each step
        index = torch.randperm(120, generator=gen)[:30]
        clean = method.prepare(digits_small.data[index])
        views = [clean + 0.1 * torch.randn(clean.shape, generator=gen) for _ in range(2)]
        out = method.training_loss(views, clean, index)
        assert ("consistency" in out) == (step >= 6), step
        out["loss"].backward()
        for name, p in method.named_parameters():  # every parameter in the graph (DDP)
            assert p.grad is not None, name
    assert mined == [6]  # at the first step of the clustering stage, once
    assert method.neighbours.shape == (120, 5)


def test_frozen_backbone_stays_put_in_the_clustering_stage(digits_small) -> None:
    method = started_method(digits_small, pretext_epochs=0.0, update_backbone=False)
    before = {k: v.clone() for k, v in method.backbone.state_dict().items()}
    index = torch.arange(30)
    clean = method.prepare(digits_small.data[index])
    out = method.training_loss([clean, clean], clean, index)
    out["loss"].backward()
    assert all(p.grad is None for p in method.backbone.parameters())
    assert all(p.grad is not None for p in method.heads.parameters())
    for key, value in method.backbone.state_dict().items():  # BatchNorm statistics too
        assert torch.equal(value, before[key]), key


def test_the_head_with_the_lowest_loss_predicts(digits_small) -> None:
    method = started_method(digits_small, pretext_epochs=0.0, n_heads=3)
    method.head_losses.copy_(torch.tensor([0.5, -2.0, 1.0]))
    method._best_head = None
    x = method.prepare(digits_small.data[:8])
    method.eval()
    expected = torch.softmax(method.heads[1](method.backbone(x)), dim=1)
    torch.testing.assert_close(method.cluster_probs(x), expected)


def test_short_fit_runs_every_stage(digits_small) -> None:
    result = fit(scan_cfg(epochs=2, self_label_epochs=1), digits_small, quiet=True)
    pretext, clustering, self_label = result.history
    assert "instance" in pretext and "consistency" not in pretext
    assert np.isfinite(clustering["consistency"]) and np.isfinite(clustering["entropy"])
    assert "confident" in self_label
    assert result.method.neighbours.shape == (120, 5)


def test_resume_keeps_the_neighbours(digits_small, tmp_path: Path) -> None:
    # Mined at the start of epoch 2; the run stops after epoch 2 and resumes for epoch 3.
    straight = fit(scan_cfg(epochs=3), digits_small, run_dir=tmp_path / "a", quiet=True)
    fit(scan_cfg(epochs=2), digits_small, run_dir=tmp_path / "b", quiet=True)
    saved = read_checkpoint(tmp_path / "b" / rundir.LAST)["state_dict"]
    saved_neighbours = saved["_extra_state"]
    assert saved_neighbours.shape == (120, 5)
    resumed = fit(scan_cfg(epochs=3), digits_small, run_dir=tmp_path / "b", resume=True, quiet=True)
    assert torch.equal(resumed.method.neighbours.cpu(), saved_neighbours)
    assert torch.equal(straight.method.neighbours.cpu(), saved_neighbours)
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    np.testing.assert_array_equal(straight.prediction.probs, resumed.prediction.probs)


@pytest.mark.slow
def test_scan_beats_kmeans_on_digits(digits) -> None:
    """The digits preset's SCAN stages without self-labelling (30 epochs, about a
    minute on one quiet core) cluster better than k-means on the pixels."""
    raw = digits.data.reshape(len(digits), -1).float().numpy()
    kmeans = KMeans(10, n_init=10, random_state=0).fit(raw).labels_
    baseline = evaluate(digits.labels, kmeans, keys=("acc", "nmi"))
    cfg = RunConfig.from_dict(load_preset("scan/digits"))
    cfg.train.self_label_epochs, cfg.train.eval_every, cfg.train.device = 0, 0, "cpu"
    result = fit(cfg, digits, quiet=True)
    assert result.metrics is not None
    assert result.metrics["nmi"] > baseline["nmi"] + 0.03, (result.metrics, baseline)
    assert result.metrics["acc"] > baseline["acc"], (result.metrics, baseline)


@pytest.mark.slow
def test_fit_on_two_processes_ddp(tmp_path: Path) -> None:
    """`fit --devices 2` on CPU (gloo) through every stage: the broadcast of the mined
    table and the averaged head losses are collectives; both processes must agree."""
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            sys.executable, "-m", "contraclust.cli", "fit", "digits", "--method", "scan",
            "--devices", "2", "--device", "cpu", "--epochs", "2", "--self-label", "1",
            "--batch-size", "128", "--out", str(out), "--quiet", "--no-report",
            "--param", "pretext_epochs=1", "--param", "n_heads=2",
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["consistency"] and all(np.isfinite(float(r["loss"])) for r in rows)
    state = read_checkpoint(out / "model.ckpt")["state_dict"]
    assert state["_extra_state"].shape == (1797, 20)
    assert torch.isfinite(state["head_losses"]).all() and (state["head_losses"] != 0).all()


def test_loop_fetches_the_views_of_the_asked_samples(digits_small) -> None:
    """The loop's callable returns the samples at the given indices (with the
    augmentation ``none``: exactly their clean inputs), on the training device."""
    from contraclust.data.augment import build_augmentation
    from contraclust.data.source import InMemorySource
    from contraclust.training.loop import _sample_views

    method = started_method(digits_small)
    augment = build_augmentation("none", "image", digits_small.input_shape, {})
    fetch = _sample_views(
        method, InMemorySource(digits_small.data), augment, torch.Generator(), CPU
    )
    index = torch.tensor([5, 0, 119, 5])
    torch.testing.assert_close(fetch(index), method.prepare(digits_small.data[index]))


def test_streamed_fit_equals_in_memory_fit(tmp_path: Path, digits) -> None:
    """A streamed set's neighbours are decoded one file at a time: same run."""
    from PIL import Image

    folder = tmp_path / "folder"
    for i in range(90):
        target = folder / f"d{int(digits.labels[i])}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.data[i, 0].numpy()).save(target / f"{i:04d}.png")
    runs = []
    for stream in ("off", "on"):
        cfg = scan_cfg(epochs=2)
        cfg.data.name, cfg.data.stream, cfg.data.workers = str(folder), stream, 1
        runs.append(fit(cfg, quiet=True))
    memory, streamed = runs
    assert "consistency" in streamed.history[1]
    assert [r["loss"] for r in streamed.history] == [r["loss"] for r in memory.history]
    assert torch.equal(streamed.method.neighbours, memory.method.neighbours)
