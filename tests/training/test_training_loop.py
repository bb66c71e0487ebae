from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.errors import ConfigError, RunDirectoryError
from contraclust.methods import ClusteringMethod, register_method
from contraclust.methods.cc import ContrastiveClustering
from contraclust.training import TrainingDivergedError, fit, read_checkpoint


@pytest.fixture(scope="module")
def digits_small():
    ds = load_dataset("digits")
    return ds.subset(np.arange(400))


def tiny_cfg(**train) -> RunConfig:
    cfg = RunConfig.from_dict(
        {
            "method": "cc",
            "n_clusters": 10,
            "model": {"backbone": "small_cnn", "hidden_dim": 64, "projection_dim": 32},
            "optim": {"lr": 1e-3},
            "train": {"epochs": 2, "batch_size": 100, "device": "cpu", "eval_every": 1},
        }
    )
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def test_same_seed_same_assignments(digits_small) -> None:
    a = fit(tiny_cfg(seed=3), digits_small, quiet=True)
    b = fit(tiny_cfg(seed=3), digits_small, quiet=True)
    c = fit(tiny_cfg(seed=4), digits_small, quiet=True)
    np.testing.assert_array_equal(a.prediction.labels, b.prediction.labels)
    np.testing.assert_array_equal(a.prediction.probs, b.prediction.probs)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert not np.array_equal(a.prediction.probs, c.prediction.probs)


def test_run_directory_contents(digits_small, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = fit(tiny_cfg(), digits_small, run_dir=out, quiet=True)
    for name in (
        "config.yaml",
        "metrics.csv",
        "train.log",
        "model.ckpt",
        "assignments.csv",
        "metrics.json",
        "checkpoints/last.ckpt",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "instance", "cluster", "acc", "nmi", "ari", "lr", "seconds"} <= set(rows[0])
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["acc"] == pytest.approx(result.metrics["acc"])
    assert sum(summary["cluster_sizes"]) == len(digits_small)
    assigned = list(csv.DictReader((out / "assignments.csv").open()))
    assert len(assigned) == len(digits_small)
    assert [int(r["cluster"]) for r in assigned] == result.prediction.labels.tolist()
    assert [int(r["label"]) for r in assigned] == digits_small.labels.tolist()
    state = read_checkpoint(out / "model.ckpt")
    assert state["config"]["method"] == "cc"
    assert state["config"]["train"]["epochs"] == 2
    assert not (out / ".lock").exists()


def test_existing_run_is_protected(digits_small, tmp_path: Path) -> None:
    out = tmp_path / "run"
    fit(tiny_cfg(epochs=1), digits_small, run_dir=out, quiet=True)
    keep = out / "notes.txt"
    keep.write_text("mine")
    before = (out / "model.ckpt").read_bytes()
    with pytest.raises(RunDirectoryError, match=r"holds a run.*resume=True.*overwrite=True"):
        fit(tiny_cfg(epochs=1), digits_small, run_dir=out, quiet=True)
    assert (out / "model.ckpt").read_bytes() == before
    fit(tiny_cfg(epochs=1, seed=9), digits_small, run_dir=out, overwrite=True, quiet=True)
    assert keep.read_text() == "mine"
    assert (out / "model.ckpt").read_bytes() != before


def test_resume_equals_straight_run(digits_small, tmp_path: Path) -> None:
    straight = fit(tiny_cfg(epochs=3), digits_small, run_dir=tmp_path / "a", quiet=True)
    fit(tiny_cfg(epochs=2), digits_small, run_dir=tmp_path / "b", quiet=True)
    resumed = fit(tiny_cfg(epochs=3), digits_small, run_dir=tmp_path / "b", resume=True, quiet=True)
    assert len(resumed.history) == 3
    np.testing.assert_array_equal(straight.prediction.labels, resumed.prediction.labels)
    np.testing.assert_allclose(straight.prediction.probs, resumed.prediction.probs, atol=0)
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]


def test_resume_needs_a_checkpoint(digits_small, tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        fit(tiny_cfg(), digits_small, run_dir=tmp_path / "none", resume=True, quiet=True)


def test_resume_refuses_other_method(digits_small, tmp_path: Path) -> None:
    fit(tiny_cfg(epochs=1), digits_small, run_dir=tmp_path / "r", quiet=True)
    cfg = tiny_cfg(epochs=2)
    cfg.method = "kmeans"
    with pytest.raises(ConfigError, match="trains method 'cc'"):
        fit(cfg, digits_small, run_dir=tmp_path / "r", resume=True, quiet=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_clusters": 1}, "clusters must be >= 2"),
        ({"n_clusters": 401}, r"clusters \(401\) is larger than the number of samples \(400\)"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 1000}, "batch size 1000 is larger than the number of samples"),
        ({"lr": 0.0}, "learning rate must be > 0"),
        ({"precision": "64"}, "unknown precision"),
        ({"self_label_threshold": 1.5}, "self_label_threshold must be < 1"),
        ({"self_label_lr": -1.0}, "self_label_lr must be a finite number > 0"),
    ],
)
def test_out_of_range_settings(digits_small, change: dict, message: str) -> None:
    cfg = tiny_cfg()
    for key, value in change.items():
        if key == "n_clusters":
            cfg.n_clusters = value
        elif key == "lr":
            cfg.optim.lr = value
        else:
            setattr(cfg.train, key, value)
    with pytest.raises(ConfigError, match=message):
        fit(cfg, digits_small, quiet=True)


@register_method
class _ExplodingCC(ContrastiveClustering):
    """CC whose loss turns NaN from the third step on (a diverging run)."""

    name = "test-exploding"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steps = 0

    def training_loss(self, views, clean, index):
        out = super().training_loss(views, clean, index)
        self.steps += 1
        if self.steps > 4:
            out["loss"] = out["loss"] * torch.tensor(float("nan"))
        return out


def test_diverging_loss_stops_and_keeps_last_good_checkpoint(digits_small, tmp_path) -> None:
    cfg = tiny_cfg(epochs=4)
    cfg.method = "test-exploding"
    out = tmp_path / "boom"
    with pytest.raises(TrainingDivergedError, match=r"loss became nan in epoch 2.*last good"):
        fit(cfg, digits_small, run_dir=out, quiet=True)
    state = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert state["epoch"] == 1
    assert all(
        torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point()
    )
    assert not (out / "model.ckpt").exists()


def test_kmeans_method_and_head_readout(digits_small) -> None:
    cfg = RunConfig.from_dict({"method": "kmeans", "n_clusters": 10, "train": {"device": "cpu"}})
    result = fit(cfg, digits_small, quiet=True)
    assert result.history == []
    assert result.metrics["acc"] > 0.6
    assert isinstance(result.method, ClusteringMethod)


def test_kmeans_readout_on_embedding(digits_small) -> None:
    cfg = tiny_cfg(epochs=1, predict_with="kmeans")
    result = fit(cfg, digits_small, quiet=True)
    assert result.prediction.centers is not None
    assert result.prediction.centers.shape[0] == 10
    assert len(np.unique(result.prediction.labels)) == 10


def test_self_labelling_epochs_follow_the_method(digits_small, tmp_path: Path) -> None:
    # cc's cluster head is nearly uniform after 2 epochs (top probability ~0.11)
    cfg = tiny_cfg(epochs=2, self_label_epochs=2, self_label_threshold=0.105, self_label_lr=2e-4)
    result = fit(cfg, digits_small, run_dir=tmp_path / "sl", quiet=True)
    rows = result.history
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all("instance" in r and "confident" not in r for r in rows[:2])
    assert all("confident" in r and "instance" not in r for r in rows[2:])
    assert all(0.0 < r["confident"] <= 1.0 for r in rows[2:])
    # a row's lr is the one after its last step
    assert rows[0]["lr"] == pytest.approx(1e-3)
    assert [r["lr"] for r in rows[1:]] == [pytest.approx(2e-4)] * 3
    # the self-labelled model differs from the one the method trained
    plain = fit(tiny_cfg(epochs=2), digits_small, quiet=True)
    assert not np.array_equal(plain.prediction.probs, result.prediction.probs)
    summary = json.loads((tmp_path / "sl" / "metrics.json").read_text())
    assert summary["self_label_epochs"] == 2
    assert read_checkpoint(tmp_path / "sl" / "model.ckpt")["epoch"] == 4


def test_resume_inside_self_labelling_equals_straight_run(digits_small, tmp_path: Path) -> None:
    cfg = tiny_cfg(epochs=1, self_label_epochs=2, self_label_threshold=0.105)
    straight = fit(cfg, digits_small, run_dir=tmp_path / "a", quiet=True)
    first = tiny_cfg(epochs=1, self_label_epochs=1, self_label_threshold=0.105)
    fit(first, digits_small, run_dir=tmp_path / "b", quiet=True)
    resumed = fit(cfg, digits_small, run_dir=tmp_path / "b", resume=True, quiet=True)
    np.testing.assert_array_equal(straight.prediction.probs, resumed.prediction.probs)
    assert straight.history[-1]["lr"] == pytest.approx(1e-4)  # default: a tenth of 1e-3


def test_self_labelling_balance_reaches_the_loss(digits_small, tmp_path: Path) -> None:
    kw = dict(epochs=1, self_label_epochs=1, self_label_threshold=0.105)
    balanced = fit(tiny_cfg(**kw), digits_small, quiet=True)
    plain = fit(
        tiny_cfg(**kw, self_label_balance=False), digits_small, run_dir=tmp_path / "p", quiet=True
    )
    assert balanced.history[0]["loss"] == plain.history[0]["loss"]  # the method's epoch
    assert balanced.history[1]["loss"] != plain.history[1]["loss"]
    saved = read_checkpoint(tmp_path / "p" / "model.ckpt")["config"]["train"]
    assert saved["self_label_balance"] is False


def test_self_labelling_needs_a_trained_method(digits_small) -> None:
    cfg = tiny_cfg(self_label_epochs=1)
    cfg.method = "kmeans"
    with pytest.raises(ConfigError, match="self_label_epochs needs a trained method"):
        fit(cfg, digits_small, quiet=True)


def test_augment_options_reach_the_training_views(digits_small, tmp_path: Path) -> None:
    plain = fit(tiny_cfg(epochs=1), digits_small, quiet=True)
    cfg = tiny_cfg(epochs=1)
    cfg.augment.options = {"crop_scale": [0.9, 1.0], "rotation_deg": 0.0}
    changed = fit(cfg, digits_small, run_dir=tmp_path / "o", quiet=True)
    assert plain.history[0]["loss"] != changed.history[0]["loss"]
    saved = read_checkpoint(tmp_path / "o" / "model.ckpt")["config"]["augment"]
    assert saved["options"] == {"crop_scale": [0.9, 1.0], "rotation_deg": 0.0}
    cfg.augment.options = {"crop_scale": 0.5}
    with pytest.raises(ConfigError, match=r"augment.options.crop_scale must be a pair"):
        fit(cfg, digits_small, quiet=True)


def test_resumed_processes_take_their_own_saved_generators(caplog) -> None:
    from contraclust.training.loop import _saved_generators

    states = [torch.Generator().manual_seed(s).get_state() for s in (1, 2, 3)]
    saved = {"aug": states[0], "torch": states[1]}
    per_rank = {"aug": torch.stack(states[:2]), "torch": torch.stack(states[1:])}
    # As many processes as saved the run: each its own.
    for rank in (0, 1):
        aug, torch_state = _saved_generators({**saved, "ranks": per_rank}, rank, 2)
        assert aug is not None
        assert torch.equal(aug, states[rank]) and torch.equal(torch_state, states[rank + 1])
        torch.Generator().set_state(aug)  # a generator takes it (not a row of a stack)
    # One process: the first process's states.
    aug, torch_state = _saved_generators({**saved, "ranks": per_rank}, 0, 1)
    assert aug is not None and torch.equal(aug, states[0]) and torch.equal(torch_state, states[1])
    # Another number of processes: fresh augmentation seeds, and a warning.
    with caplog.at_level("WARNING", logger="contraclust"):
        aug, torch_state = _saved_generators(saved, 0, 2)
    assert aug is None and torch.equal(torch_state, states[1])
    assert "written by one process and is resumed on 2" in caplog.text


@register_method
class _RecordingCC(ContrastiveClustering):
    """CC that records every hook call the trainer makes, in order, in ``calls``."""

    name = "test-hooks"
    calls: ClassVar[list[tuple]] = []

    def on_fit_start(self, encode, resumed: bool) -> None:
        type(self).calls.append(("fit_start", resumed, self.steps_per_epoch))

    def on_epoch_start(self, epoch: int) -> None:
        type(self).calls.append(("epoch_start", epoch))

    def on_step(self, step: int, epoch: int) -> dict[str, torch.Tensor]:
        type(self).calls.append(("step", step, epoch))
        return {"hook_step": torch.tensor(float(step))}

    def on_epoch_end(self, epoch: int) -> None:
        type(self).calls.append(("epoch_end", epoch))


def recorded_fit(cfg: RunConfig, dataset, **kwargs) -> tuple[list[tuple], object]:
    _RecordingCC.calls = []
    result = fit(cfg, dataset, quiet=True, **kwargs)
    return list(_RecordingCC.calls), result


def test_the_trainer_calls_the_hooks_with_its_counters(digits_small, tmp_path: Path) -> None:
    cfg = tiny_cfg(epochs=2, self_label_epochs=1, self_label_threshold=0.1, eval_every=0)
    cfg.train.budget = "none"  # the planner's timed steps would call the hooks too
    cfg.method = "test-hooks"
    calls, result = recorded_fit(cfg, digits_small, run_dir=tmp_path / "straight")
    # 400 samples, batch 100: 4 steps an epoch, counted from the start of the run; no
    # hook in the self-labelling epoch, which replaces the method's losses.
    expected = [("fit_start", False, 4)]
    for epoch in range(2):
        expected.append(("epoch_start", epoch))
        expected += [("step", epoch * 4 + s, epoch) for s in range(4)]
        expected.append(("epoch_end", epoch))
    assert calls == expected
    # What on_step returns is logged like the losses: the mean over the epoch's steps.
    assert [row.get("hook_step") for row in result.history] == [1.5, 5.5, None]

    # Stopped after epoch 1 and resumed: the hooks see the numbers of the straight run.
    stopped = tmp_path / "stopped"
    first, _ = recorded_fit(tiny_cfg_like(cfg, epochs=1, self_label_epochs=0), digits_small,
                            run_dir=stopped)  # fmt: skip
    assert first == expected[:7]
    rest, resumed = recorded_fit(cfg, digits_small, run_dir=stopped, resume=True)
    assert rest == [("fit_start", True, 4), *expected[7:]]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in result.history]


def tiny_cfg_like(cfg: RunConfig, **train) -> RunConfig:
    copy = RunConfig.from_dict(cfg.to_dict())
    for key, value in train.items():
        setattr(copy.train, key, value)
    return copy


def test_a_fractional_warm_up_lands_on_a_step(digits_small) -> None:
    from contraclust.training.loop import _lr_factor

    cfg = tiny_cfg()
    cfg.optim.warmup_epochs = 0.5  # 2 of 4 steps
    factor = _lr_factor(cfg, 4)
    assert [factor(step) for step in range(4)] == [0.5, 1.0, 1.0, 1.0]
    cfg.optim.warmup_epochs = 1  # an integer number of epochs, as before: 4 steps
    assert [_lr_factor(cfg, 4)(step) for step in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
