"""The time budget (--budget) and the plan line printed before training.

The planner's choices are tested with injected timing functions, so that they do not
depend on how fast or loaded the machine is; the real timing is exercised end to end
(the CLI's plan line, a run on cached features) without asserting on wall times.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import contraclust.training.budget as budget_mod
from contraclust.cli import main
from contraclust.config import DEFAULT_EPOCHS, RunConfig, build_config
from contraclust.data import ArrayDataset, array_to_dataset
from contraclust.data.features import CACHE_ENV
from contraclust.errors import ConfigError, ContraclustWarning
from contraclust.training.budget import (
    CPU_BUDGET,
    EPOCH_SECONDS,
    GPU_BUDGET,
    MIN_EPOCHS,
    NARROW_WIDTH,
    Timing,
    Trial,
    budget_seconds,
    format_seconds,
    make_plan,
    parse_duration,
)

CPU = torch.device("cpu")


def vectors(n: int = 512, dim: int = 6, labels: bool = False) -> ArrayDataset:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3 if labels else None
    return array_to_dataset(rng.normal(size=(n, dim)).astype(np.float32), y, "vec")


def images(n: int = 64, side: int = 128, channels: int = 1) -> ArrayDataset:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, side, side, channels), dtype=np.uint8)
    return array_to_dataset(data[..., 0] if channels == 1 else data, None, "img")


def config(**options) -> RunConfig:
    base = {"method": "cc", "n_clusters": 3, "device": "cpu", "eval_every": 0}
    return build_config(None, {**base, **options})


def fixed_step(step: float, infer: float = 0.0):
    """A timing function that says every step takes ``step`` seconds."""
    calls: list[Trial] = []

    def timer(trial: Trial) -> Timing:
        calls.append(trial)
        return Timing(step, infer)

    timer.calls = calls  # type: ignore[attr-defined]
    return timer


def by_pixels(per_pixel: float):
    """Steps that cost in proportion to the pixels, twice as much for a ResNet and a
    sixteenth for a narrow small CNN: a stand-in for real speeds."""
    calls: list[Trial] = []

    def timer(trial: Trial) -> Timing:
        calls.append(trial)
        pixels = int(np.prod(trial.sample.shape[1:]))
        model = trial.config.model
        factor = 2.0 if model.backbone.startswith("resnet") else 1.0
        if model.width == NARROW_WIDTH:
            factor /= 16
        return Timing(per_pixel * pixels * factor, 0.0)

    timer.calls = calls  # type: ignore[attr-defined]
    return timer


# ----------------------------------------------------------------- durations
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("2m30s", 150), ("none", None)],
)
def test_durations_are_parsed(text: str, seconds: float | None) -> None:
    assert parse_duration("budget", text) == seconds


@pytest.mark.parametrize("text", ["5", "5min", "", "0s", "m", "1m1h", "soon", 300])
def test_bad_durations_name_the_setting_and_the_forms(text: object) -> None:
    with pytest.raises(ConfigError, match=r"budget must be a duration: 90s, 5m, 1h, 1h30m"):
        parse_duration("budget", text)


def test_the_config_refuses_a_bad_budget_and_keeps_a_good_one() -> None:
    with pytest.raises(ConfigError, match="budget must be a duration"):
        build_config(None, {"budget": "5 minutes"})
    assert build_config(None, {"budget": "1h30m"}).train.budget == "1h30m"
    assert build_config(None, {}).train.budget == "auto"


def test_auto_budget_depends_on_the_device() -> None:
    assert budget_seconds("auto", CPU) == CPU_BUDGET
    assert budget_seconds("auto", torch.device("cuda")) == GPU_BUDGET
    assert budget_seconds("none", CPU) is None
    assert budget_seconds("2m", CPU) == 120


def test_seconds_are_formatted_for_people() -> None:
    assert format_seconds(280) == "4 min 40 s"
    assert format_seconds(300) == "5 min"
    assert format_seconds(42) == "42 s"
    assert format_seconds(7500) == "2 h 05 min"


# ----------------------------------------------------------------- the planner
def test_slow_steps_get_fewer_epochs() -> None:
    data = vectors(512)  # 4 steps of 128 per epoch, no labels: no scoring passes
    fast = make_plan(config(budget="60s"), data, timer=fixed_step(0.1))
    slow = make_plan(config(budget="60s"), data, timer=fixed_step(1.0))
    assert fast.config.train.epochs == DEFAULT_EPOCHS  # 20 s: the default length fits
    per_epoch = 4 * 1.0 + EPOCH_SECONDS  # 4 steps of 1 s, and the epoch's own costs
    assert slow.config.train.epochs == int(60 // per_epoch)
    assert slow.estimate <= 60 and fast.estimate <= 60
    assert f"{int(60 // per_epoch)} epochs" in slow.line and "budget 1 min" in slow.line
    assert slow.warning is None


def test_the_estimate_counts_the_scoring_passes() -> None:
    data = vectors(512, labels=True)
    # one scoring pass per epoch over 512 samples at 0.01 s: 5.12 s per epoch more
    plan = make_plan(config(budget="60s", eval_every=1), data, timer=fixed_step(1.0, 0.01))
    epochs = plan.config.train.epochs
    per_epoch = 4 * 1.0 + EPOCH_SECONDS + 512 * 0.01
    assert plan.estimate == pytest.approx(epochs * per_epoch, abs=0.5)  # + the planning
    assert epochs == int(60 // per_epoch)


def test_the_time_spent_timing_counts_against_the_budget(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(budget_mod.time, "perf_counter", lambda: clock[0])
    timer = fixed_step(1.0)

    def slow_timer(trial: Trial) -> Timing:
        clock[0] += 1.5  # the timing itself takes 1.5 s
        return timer(trial)

    per_epoch = 4 * 1.0 + EPOCH_SECONDS
    plan = make_plan(config(budget="10s"), vectors(512), timer=slow_timer)
    assert plan.config.train.epochs == 1  # 2 epochs (9 s) would fit 10 s, not 8.5 s
    assert plan.estimate == pytest.approx(1.5 + per_epoch)
    given = make_plan(config(budget="10s", epochs=2), vectors(512), timer=slow_timer)
    assert given.estimate == pytest.approx(1.5 + 2 * per_epoch) and given.warning is None


def test_large_images_are_downscaled_to_fit() -> None:
    data = images(64, side=128)
    timer = by_pixels(1e-4)  # 128 px ResNet: 3.3 s a step; 32 px narrow CNN: 6.4 ms
    plan = make_plan(config(budget="60s", batch_size=16), data, timer=timer)
    assert plan.config.data.image_size == 32
    assert plan.config.model.backbone == "small_cnn"
    assert plan.dataset.input_shape == (1, 32, 32)
    assert "1x128x128 -> 32 px" in plan.line
    assert plan.estimate <= 60
    # the richest first, then the others cheapest first, at most four in all
    assert len(timer.calls) <= 4
    assert timer.calls[0].sample.shape[-1] == 128
    # a candidate may give up after a rough timing, except the cheapest (the fallback)
    assert timer.calls[0].give_up_above is not None
    assert timer.calls[1].give_up_above is None and timer.calls[1].config.model.width == 16


def test_restarts_share_the_budget() -> None:
    data = vectors(512)
    one = make_plan(config(budget="60s"), data, timer=fixed_step(1.0))
    three = make_plan(config(budget="60s", restarts=3), data, timer=fixed_step(1.0))
    per_epoch = 4 * 1.0 + EPOCH_SECONDS
    assert three.config.train.epochs == int(20 // per_epoch) < one.config.train.epochs
    assert "3 restarts of 4 epochs" in three.line and "budget 20 s each" in three.line


@pytest.mark.parametrize(
    ("own", "sides"),
    [(8, []), (16, []), (28, [16]), (32, [16]), (64, [16, 32]), (128, [32, 64]), (500, [32, 64])],
)
def test_smaller_sides_are_tried_below_the_images_own(own: int, sides: list[int]) -> None:
    assert budget_mod.smaller_sides(own) == sides


def test_small_images_may_be_trained_at_16_px() -> None:
    data = images(64, side=28)
    timer = by_pixels(2e-3)  # too slow at 28 px for 25 epochs, fast enough at 16 px
    plan = make_plan(config(budget="60s", batch_size=16), data, timer=timer)
    assert plan.config.data.image_size == 16
    assert "1x28x28 -> 16 px" in plan.line
    assert plan.config.train.epochs >= MIN_EPOCHS


def test_the_richest_candidate_that_fits_is_kept() -> None:
    data = images(64, side=128)
    timer = by_pixels(1e-6)  # everything is fast: the data's own size, as without a budget
    plan = make_plan(config(budget="5m", batch_size=16), data, timer=timer)
    assert plan.config.data.image_size is None
    assert plan.config.model.backbone == "resnet18_imagenet"
    assert plan.dataset.input_shape == (1, 128, 128)
    assert plan.config.train.epochs == DEFAULT_EPOCHS
    assert len(timer.calls) == 1  # it fits: nothing else is timed


def test_without_a_budget_nothing_is_resized() -> None:
    data = images(64, side=128)
    plan = make_plan(config(budget="none", batch_size=16), data, timer=by_pixels(1e-2))
    assert plan.config.data.image_size is None
    assert plan.config.model.backbone == "resnet18_imagenet"
    assert plan.config.train.epochs == DEFAULT_EPOCHS
    assert "budget none" in plan.line
    assert plan.warning is None


def test_given_choices_are_kept() -> None:
    data = images(64, side=128)
    cfg = config(budget="60s", batch_size=16, backbone="resnet18", image_size=64)
    plan = make_plan(cfg, data, timer=by_pixels(1e-4))
    assert plan.config.model.backbone == "resnet18"
    assert plan.config.data.image_size == 64
    assert plan.config.train.batch_size == 16


# ----------------------------------------------------------------- precedence
def test_given_epochs_are_kept_and_an_overrun_is_warned_about() -> None:
    cfg = config(budget="60s", epochs=40)
    plan = make_plan(cfg, vectors(512), timer=fixed_step(1.0))  # 180 s > 1.2 x 60 s
    assert plan.config.train.epochs == 40
    assert "40 epochs (given)" in plan.line
    assert plan.warning is not None
    fits = int(60 // (4 * 1.0 + EPOCH_SECONDS))  # 4 steps of the default batch, 128
    assert f"epochs={fits}" in plan.warning and "budget=none" in plan.warning


def test_an_overrun_within_20_percent_is_not_warned_about() -> None:
    epochs = int(1.15 * 60 // (4 * 1.0 + EPOCH_SECONDS))  # at most 115% of the budget
    plan = make_plan(config(budget="60s", epochs=epochs), vectors(512), timer=fixed_step(1.0))
    assert 60 < plan.estimate <= 1.2 * 60
    assert plan.warning is None


def test_a_presets_epochs_win_over_the_budget() -> None:
    cfg = build_config("cc/digits", {"budget": "10s", "device": "cpu"})
    preset_epochs = cfg.train.epochs
    assert preset_epochs is not None
    data = array_to_dataset(np.zeros((300, 8, 8), np.uint8), None, "digits")
    plan = make_plan(cfg, data, timer=fixed_step(1.0))
    assert plan.config.train.epochs == preset_epochs
    assert plan.warning is not None  # 1 step x epochs > 12 s


def test_plan_run_warns_with_a_contraclust_warning(capsys) -> None:
    cfg = config(budget="60s", epochs=40)
    with pytest.warns(ContraclustWarning, match="expected to take about 3 min"):
        budget_mod.plan_run(cfg, vectors(512), timer=fixed_step(1.0))
    assert capsys.readouterr().err.startswith("plan: 512 vectors 6, mlp")


def test_closed_form_methods_are_not_planned(capsys) -> None:
    cfg = config(method="kmeans")
    out, _ = budget_mod.plan_run(cfg, vectors(64), timer=fixed_step(1.0))
    assert out.train.epochs == DEFAULT_EPOCHS  # a value for config.yaml; unused
    assert "plan:" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("full", "single", "rough"), [(1e9, 1e9, False), (0.0, 1e9, False), (0.0, 0.0, True)]
)
def test_a_step_is_timed_at_the_full_batch_when_affordable(
    monkeypatch, full: float, single: float, rough: bool
) -> None:
    # several full-batch steps, else one, else the small batch scaled up
    monkeypatch.setattr(budget_mod, "FULL_TIMING_LIMIT", full)
    monkeypatch.setattr(budget_mod, "SINGLE_TIMING_LIMIT", single)
    plan = make_plan(config(budget="1m", epochs=1, batch_size=64), images(64, side=16))
    assert plan.timing.rough is rough and plan.timing.step > 0


def test_measuring_leaves_the_random_state_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    plan = make_plan(config(budget="1m", epochs=1), images(32, side=16))
    assert torch.equal(torch.rand(4), expected)
    assert plan.timing.step > 0 and plan.timing.infer > 0


# ----------------------------------------------------------------- the command line
def _npz(tmp_path: Path, side: int, channels: int, n: int = 48) -> Path:
    rng = np.random.default_rng(0)
    shape = (n, side, side, channels) if channels == 3 else (n, side, side)
    path = tmp_path / f"imgs{side}c{channels}.npz"
    np.savez(path, x=rng.integers(0, 256, size=shape, dtype=np.uint8), y=np.arange(n) % 2)
    return path


def test_the_cli_prints_the_plan_before_the_settings(tmp_path: Path, capsys) -> None:
    data = _npz(tmp_path, 16, 1)
    out = tmp_path / "run"
    args = ["fit", str(data), "-k", "2", "--epochs", "1", "--budget", "2m", "-o", str(out)]
    assert main([*args, "--device", "cpu", "--no-report"]) == 0
    err = capsys.readouterr().err
    plan = next(line for line in err.splitlines() if line.startswith("plan: "))
    assert re.search(r"48 images 1x16x16, small_cnn, batch 48, 1 epoch \(given\), about ", plan)
    assert "budget 2 min" in plan and "--features" not in plan  # grey images
    assert err.index("plan: ") < err.index("settings: ")
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["budget"] == "2m" and saved["train"]["epochs"] == 1
    assert f"plan: {plan[6:]}" in (out / "train.log").read_text()


def test_the_cli_says_how_to_fit_an_overrun(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(budget_mod, "measure_step", fixed_step(3.0))
    data = _npz(tmp_path, 8, 1, n=40)
    args = ["fit", str(data), "-k", "2", "--epochs", "20", "--budget", "30s", "--device", "cpu"]
    args += ["--batch-size", "20", "-o", str(tmp_path / "run"), "--no-report"]
    assert main([*args, "--quiet", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "contraclust: warning: this run is expected to take about 2 min" in err
    fits = int(30 // (2 * 3.0 + EPOCH_SECONDS))  # 2 steps of 3 s an epoch
    assert f"--epochs {fits}" in err and "--budget none" in err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 20  # the budget only warns


def test_colour_photos_are_pointed_to_features(tmp_path: Path, capsys) -> None:
    data = _npz(tmp_path, 40, 3, n=24)
    args = ["fit", str(data), "-k", "2", "--epochs", "1", "--budget", "5m", "--device", "cpu"]
    args += ["--backbone", "small_cnn"]  # the hint depends on the images only
    assert main([*args, "-o", str(tmp_path / "run"), "--no-report"]) == 0
    plan = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("plan:"))
    assert "--features" in plan


class TinyFeatures(nn.Module):
    """RGB images to 12 features: a fixed random convolution, averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, kernel_size=5, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def test_a_features_run_caches_them_and_fits_its_budget(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(TinyFeatures()), str(net))
    data = _npz(tmp_path, 40, 3, n=64)
    base = ["fit", str(data), "--features", str(net), "-k", "2", "--budget", "20s"]
    base += ["--device", "cpu", "--no-report", "--overwrite"]
    for run in ("first", "second"):
        assert main([*base, "-o", str(tmp_path / run)]) == 0
        err = capsys.readouterr().err
        plan = next(line for line in err.splitlines() if line.startswith("plan: "))
        assert plan.startswith("plan: 64 vectors 12, mlp, batch 64, ")
        assert "budget 20 s" in plan and "--features" not in plan
        about = re.search(r"about (\d+(?:\.\d+)?) s", plan)
        assert about is not None and float(about.group(1)) <= 20
        reused = "reusing cached" in err
        assert reused == (run == "second")
    saved = yaml.safe_load((tmp_path / "second" / "config.yaml").read_text())
    assert 1 <= saved["train"]["epochs"] <= DEFAULT_EPOCHS


def test_the_estimator_takes_a_budget() -> None:
    from contraclust import Clusterer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    model = Clusterer("cc", 2, budget="30s", device="cpu").fit(x)
    assert model.config_.train.budget == "30s"
    assert 1 <= model.config_.train.epochs <= DEFAULT_EPOCHS
    assert model.get_params()["budget"] == "30s"


def test_min_epochs_is_below_the_default() -> None:
    assert 1 <= MIN_EPOCHS <= DEFAULT_EPOCHS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_plan(config(budget="1h"), vectors(64), timer=fixed_step(0.01))


def test_methods_that_start_from_k_means_are_timed_with_k_samples() -> None:
    # DECA initialises K centres by k-means on the data: the timed sample holds K
    # samples even when the batch is smaller.
    cfg = config(method="deca", n_clusters=40, batch_size=16, budget="1m", epochs=1)
    plan = make_plan(cfg, vectors(64))
    assert plan.config.n_clusters == 40 and plan.timing.step > 0


def test_the_cli_refuses_a_bad_budget_in_one_line(capsys) -> None:
    assert main(["fit", "digits", "--budget", "5min", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("contraclust: error: budget must be a duration: 90s, 5m, 1h")
    assert err[0].endswith("got '5min'")
