from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import one_class_in_two_and_two_in_one
from sklearn.cluster import KMeans

from contraclust.config import RunConfig, from_dict
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.methods import get_method
from contraclust.methods.deca import DECA, FINAL_CHECKS, DECAParams
from contraclust.training import fit
from contraclust.training.checkpoint import build_method
from contraclust.training.predict import apply_batched

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny batches: on a busy 2-core machine a second intra-op thread mostly waits
    for a core at every operation (10-100x slower here), so these tests use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits_small():
    return load_dataset("digits").subset(np.arange(120))


def deca_cfg(epochs: int = 1, n_clusters: int = 10, **params: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": "deca",
            "n_clusters": n_clusters,
            "model": {"backbone": "small_cnn", "width": 8, "hidden_dim": 32, "projection_dim": 16},
            "augment": {"name": "grey"},
            "optim": {"lr": 1e-3},
            "train": {"epochs": epochs, "batch_size": 30, "device": "cpu", "eval_every": 0},
            "params": {"kmeans_n_init": 2, **params},
        }
    )


#: Steps in an epoch of ``deca_cfg`` on ``digits_small``: 120 samples, batch 30.
STEPS_PER_EPOCH = 4


def started_method(dataset, n_clusters: int = 10, **params: Any) -> DECA:
    """A DECA method after start_fit, as the training loop leaves it."""
    torch.manual_seed(0)
    cfg = deca_cfg(n_clusters=n_clusters, **params)
    method = build_method(cfg, dataset.input_shape, len(dataset))
    assert isinstance(method, DECA)
    method.set_input_stats(dataset.data)
    method.start_fit(
        lambda fn: apply_batched(method, dataset.data, fn, CPU),
        STEPS_PER_EPOCH,
        resumed=False,
        epochs=10,
    )
    return method


def train_step(
    method: DECA, views: list[torch.Tensor], clean: torch.Tensor, index: torch.Tensor, step: int
) -> dict[str, torch.Tensor]:
    """What the trainer does for global step ``step``: the hook, then the losses."""
    logged = method.on_step(step, step // STEPS_PER_EPOCH) or {}
    return {**logged, **method.training_loss(views, clean, index)}


def batch_of(method: DECA, dataset, size: int = 24) -> tuple[list[torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    clean = method.prepare(dataset.data[:size])
    views = [clean + 0.1 * torch.randn(clean.shape, generator=gen) for _ in range(2)]
    return views, clean


def test_registered_under_its_name() -> None:
    assert get_method("deca") is DECA
    assert DECA.Params is DECAParams


def test_short_fit_runs_and_reads_out_q(digits_small) -> None:
    result = fit(deca_cfg(epochs=1), digits_small, quiet=True)
    row = result.history[0]
    for key in ("loss", "instance", "cluster", "anchor"):
        assert np.isfinite(row[key]), key
    assert row["cluster"] > 0 and row["anchor"] > 0
    probs = result.prediction.probs
    assert probs.shape == (120, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # The head read-out is argmax of the Student-t q of the clean input.
    method = result.method.eval()
    q = apply_batched(method, digits_small.data, method.cluster_probs, CPU)
    np.testing.assert_array_equal(result.prediction.labels, q.argmax(dim=1).numpy())
    assert result.metrics is not None and result.metrics["acc"] > 0.2


def test_centers_start_at_kmeans_of_the_backbone_features(digits_small) -> None:
    method = started_method(digits_small)
    centers = method.centers.detach()
    assert bool(centers.abs().sum(dim=1).gt(0).all())
    features = apply_batched(method, digits_small.data, method.backbone, CPU)
    nearest = torch.cdist(features, centers).argmin(dim=1)
    assert len(nearest.unique()) == 10
    # A k-means fixed point: every centre is the mean of the features nearest to it.
    tolerance = 1e-3 * float(features.norm(dim=1).mean())
    for k in range(10):
        mean = features[nearest == k].mean(dim=0)
        torch.testing.assert_close(centers[k], mean, atol=tolerance, rtol=0)


def test_projection_space_centres_are_backbone_means_of_kmeans_clusters(digits_small) -> None:
    method = started_method(digits_small, kmeans_space="projection")
    centers = method.centers.detach()
    h = apply_batched(method, digits_small.data, method.backbone, CPU)
    z = apply_batched(
        method, digits_small.data, lambda x: method.instance_head(method.backbone(x)), CPU
    )
    z = torch.nn.functional.normalize(z, dim=1)
    # k-means with the run's seed on the normalised projections; centre k = mean h of
    # cluster k
    kmeans = KMeans(10, n_init=2, random_state=int(method.kmeans_seed)).fit(z.double().numpy())
    labels = torch.from_numpy(kmeans.labels_).long()
    sums = torch.zeros_like(centers).index_add_(0, labels, h)
    expected = sums / torch.bincount(labels, minlength=10)[:, None]
    torch.testing.assert_close(centers, expected, atol=1e-4, rtol=1e-4)
    # ... and not the k-means centres of h itself
    plain = started_method(digits_small).centers.detach()
    assert not torch.allclose(centers, plain, atol=1e-3)


def test_batchnorm_statistics_are_recalibrated_before_kmeans(digits_small) -> None:
    on = started_method(digits_small)
    off = started_method(digits_small, recalibrate_batchnorm=False)
    # Eval-mode features of a new network have the scale of its train-mode features
    # only after the recalibration.
    _, clean = batch_of(on, digits_small, size=100)
    for method, close in ((on, True), (off, False)):
        method.train()
        with torch.no_grad():
            train_norm = method.backbone(clean).norm(dim=1).mean()
        method.eval()
        with torch.no_grad():
            eval_norm = method.backbone(clean).norm(dim=1).mean()
        ratio = float(eval_norm / train_norm)
        assert (0.7 < ratio < 1.4) is close, ratio


@pytest.mark.parametrize(
    "params",
    [{}, {"cluster_weight": 0.0, "anchor_weight": 0.0}, {"kmeans_init_epoch": 1.25}],
    ids=["default", "zero-weights", "before-init"],
)
def test_every_parameter_gets_a_gradient(digits_small, params: dict[str, Any]) -> None:
    method = started_method(digits_small, **params)
    method.train()
    views, clean = batch_of(method, digits_small)
    out = train_step(method, views, clean, torch.arange(24), step=0)
    out["loss"].backward()
    missing = [name for name, p in method.named_parameters() if p.grad is None]
    assert not missing
    if not params:
        assert float(method.centers.grad.abs().sum()) > 0
        assert float(method.instance_head.net[0].weight.grad.abs().sum()) > 0


def test_kmeans_init_epoch_defers_the_centres_and_the_clustering_losses(digits_small) -> None:
    method = started_method(digits_small, kmeans_init_epoch=0.5)  # step 2 of 4 an epoch
    method.train()
    views, clean = batch_of(method, digits_small)
    index = torch.arange(24)
    for step in range(2):
        out = train_step(method, views, clean, index, step)
        assert bool((method.centers == 0).all())
        torch.testing.assert_close(out["loss"], out["instance"])
    out = train_step(method, views, clean, index, step=2)
    assert bool((method.centers != 0).any())
    assert out["loss"].item() == pytest.approx(
        (out["instance"] + out["cluster"] + out["anchor"]).item(), rel=1e-5
    )


def emptied(method: DECA, dataset, cluster: int) -> DECA:
    """Move one centre far from every feature, so that its cluster is empty."""
    with torch.no_grad():
        method.centers[cluster] = 1e3
    h = apply_batched(method, dataset.data, method.backbone, CPU)
    assert not bool((torch.cdist(h, method.centers).argmin(dim=1) == cluster).any())
    return method


def test_an_emptied_cluster_is_reseeded_with_half_of_another(digits_small) -> None:
    method = emptied(started_method(digits_small, kmeans_space="projection"), digits_small, 3)
    before = method.centers.detach().clone()
    assert method.reseed_emptied_centers() == 1
    after = method.centers.detach()
    changed = (after != before).any(dim=1).nonzero().squeeze(1).tolist()
    assert 3 in changed and len(changed) == 2  # the emptied centre and the one split
    # Both centres are means of backbone features of the cluster that was split.
    h = apply_batched(method, digits_small.data, method.backbone, CPU)
    source = next(c for c in changed if c != 3)
    members = torch.cdist(h, before).argmin(dim=1) == source
    assert bool(members.any())
    low, high = h[members].min(dim=0).values, h[members].max(dim=0).values
    for c in changed:
        assert bool(((after[c] >= low - 1e-4) & (after[c] <= high + 1e-4)).all())
    labels = torch.cdist(h, after).argmin(dim=1)
    assert int((labels == 3).sum()) > 0
    # Nothing else is emptied now: a second check moves nothing.
    assert method.reseed_emptied_centers() == 0
    torch.testing.assert_close(method.centers.detach(), after, atol=0, rtol=0)


def test_a_cluster_emptied_by_the_last_steps_is_reseeded_at_the_end(
    digits_small, monkeypatch
) -> None:
    method = emptied(started_method(digits_small, reseed_interval_epochs=0.5), digits_small, 4)
    method.clustering = True
    method.on_fit_end()
    h = apply_batched(method, digits_small.data, method.backbone, CPU)
    assert int((torch.cdist(h, method.centers).argmin(dim=1) == 4).sum()) > 0
    # a new centre that empties another small cluster: the checks repeat
    calls = []
    real = method.reseed_emptied_centers
    monkeypatch.setattr(method, "reseed_emptied_centers", lambda merge: calls.append(merge) or 1)
    method.on_fit_end()
    assert calls == [False] * FINAL_CHECKS
    monkeypatch.setattr(method, "reseed_emptied_centers", real)
    # without repair the end changes nothing
    off = emptied(started_method(digits_small), digits_small, 4)
    before = off.centers.detach().clone()
    off.clustering = True
    off.on_fit_end()
    torch.testing.assert_close(off.centers.detach(), before, atol=0, rtol=0)


def test_the_trainer_calls_the_end_hook_once_after_the_last_epoch(
    digits_small, monkeypatch
) -> None:
    ended: list[int] = []  # the epochs ended, then -1 for the end of the fit
    monkeypatch.setattr(DECA, "on_epoch_end", lambda self, epoch: ended.append(epoch))
    monkeypatch.setattr(DECA, "on_fit_end", lambda self: ended.append(-1))
    fit(deca_cfg(epochs=2), digits_small, quiet=True)
    assert ended == [0, 1, -1]


def test_merges_stop_at_max_merges(digits_small, monkeypatch) -> None:
    method = started_method(
        digits_small, n_clusters=3, merge_confusion=0.15, reseed_interval_epochs=0.25
    )
    proj_dim = method.instance_head.net[-1].out_features
    h, z, labels = one_class_in_two_and_two_in_one(method.centers, proj_dim)
    data = torch.cat([h, z, labels[:, None].float()], dim=1)  # what the data pass returns
    monkeypatch.setattr(method, "data_pass", lambda fn: data)
    method.merges_done.fill_(1)  # the one merge of the default max_merges is spent
    method.train()
    views, clean = batch_of(method, digits_small)
    before = method.centers.detach().clone()
    out = train_step(method, views, clean, torch.arange(24), step=0)  # no check
    out = train_step(method, views, clean, torch.arange(24), step=1)  # a check
    assert float(out["reseeded"]) == 0.0
    torch.testing.assert_close(method.centers.detach(), before, atol=0, rtol=0)
    method.merges_done.zero_()
    out = train_step(method, views, clean, torch.arange(24), step=2)  # merges again
    assert float(out["reseeded"]) == 1.0 and int(method.merges_done) == 1


def test_a_checkpoint_without_a_merge_count_still_loads(digits_small) -> None:
    method = started_method(digits_small)
    state = {k: v for k, v in method.state_dict().items() if k != "merges_done"}
    other = started_method(digits_small)
    other.merges_done.fill_(3)
    other.load_state_dict(state)
    assert int(other.merges_done) == 0


def test_reseeding_runs_on_its_schedule(digits_small) -> None:
    method = emptied(
        started_method(digits_small, reseed_interval_epochs=0.5), digits_small, 5
    )  # every 2 steps
    method.train()
    views, clean = batch_of(method, digits_small)
    index = torch.arange(24)
    reseeded = [float(train_step(method, views, clean, index, s)["reseeded"]) for s in range(3)]
    # Checks at steps 2, 4, ...: none at 0 (the k-means start) or 1.
    assert reseeded == [0.0, 0.0, 1.0]
    off = started_method(digits_small)
    off.train()
    assert "reseeded" not in train_step(off, views, clean, index, step=0)


def test_dataset_target_is_refreshed_on_schedule_with_any_k(digits_small) -> None:
    # 120 samples, batch 30: 4 steps an epoch; refreshes at steps 0, 3 and 6. K = 7:
    # nothing assumes the 10 clusters of the authors' code.
    cfg = deca_cfg(epochs=2, n_clusters=7, target="dataset", target_update_epochs=0.75)
    result = fit(cfg, digits_small, quiet=True)
    assert [row["target_refreshed"] for row in result.history] == [0.5, 0.25]
    method = result.method
    assert method.centers.shape == (7, method.backbone.out_dim)
    target = method.dataset_target
    assert target is not None and target.shape == (120, 7)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(120))
    assert "_extra_state" in method.state_dict()
    assert result.prediction.probs.shape == (120, 7)
    assert result.prediction.labels.max() < 7


def test_dataset_target_follows_the_weights(digits_small) -> None:
    method = started_method(digits_small, target="dataset")
    method.refresh_dataset_target()
    before = method.dataset_target.clone()
    with torch.no_grad():
        method.centers.mul_(1.5)
    method.refresh_dataset_target()
    assert not torch.allclose(before, method.dataset_target)
    # Rows are indexed by the training-set position of each sample.
    method.train()
    views, clean = batch_of(method, digits_small)
    index = torch.arange(90, 114)
    out = train_step(method, views, clean, index, step=1)  # not a refresh step
    h0 = method.backbone(torch.cat([clean, *views]))[:24]
    expected = method.cluster_loss(h0, method.centers, method.dataset_target[index])
    assert out["cluster"].item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("instance_temperature", 0.0),
        ("alpha_t", -1.0),
        ("alpha_t", float("nan")),
        ("cluster_weight", -0.5),
        ("anchor_weight", float("inf")),
        ("target", "epoch"),
        ("target_update_epochs", 0),
        ("kmeans_n_init", 0),
        ("kmeans_init_epoch", -1),
        ("kmeans_space", "embedding"),
        ("reseed_interval_epochs", -1),
        ("reseed_below", 1.0),
        ("reseed_below", -0.1),
        ("merge_confusion", -0.1),
        ("max_merges", -1),
    ],
)
def test_bad_hyper_parameters_raise_config_error(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        from_dict(DECAParams, {key: value}, "params")


def test_all_weights_zero_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one must be > 0"):
        DECAParams(instance_weight=0.0, cluster_weight=0.0, anchor_weight=0.0)


def test_bad_hyper_parameter_stops_a_fit(digits_small) -> None:
    with pytest.raises(ConfigError, match="target_update_epochs"):
        fit(deca_cfg(target="dataset", target_update_epochs=0), digits_small, quiet=True)


def test_resume_of_a_dataset_target_run_equals_a_straight_run(digits_small, tmp_path: Path) -> None:
    # k-means at step 2 and refreshes at steps 2, 3 and 6: the run stops at step 4.
    params = {"target": "dataset", "target_update_epochs": 0.75, "kmeans_init_epoch": 0.5}
    straight = fit(deca_cfg(epochs=2, **params), digits_small, run_dir=tmp_path / "a", quiet=True)
    fit(deca_cfg(epochs=1, **params), digits_small, run_dir=tmp_path / "b", quiet=True)
    resumed = fit(
        deca_cfg(epochs=2, **params), digits_small, run_dir=tmp_path / "b", resume=True, quiet=True
    )
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    np.testing.assert_array_equal(straight.prediction.probs, resumed.prediction.probs)
    torch.testing.assert_close(
        straight.method.dataset_target, resumed.method.dataset_target, atol=0, rtol=0
    )
    torch.testing.assert_close(straight.method.centers, resumed.method.centers, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("kmeans_init_step", "kmeans_init_epoch"),
        ("reseed_interval", "reseed_interval_epochs"),
        ("target_update_interval", "target_update_epochs"),
    ],
)
def test_settings_counted_in_steps_are_refused_with_their_epoch_names(
    digits_small, old: str, new: str
) -> None:
    with pytest.raises(ConfigError) as info:
        fit(deca_cfg(**{old: 4}), digits_small, quiet=True)
    message = str(info.value)
    assert f"params.{old}" in message and f"{new} = {old} / steps per epoch" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("params", "epochs", "named"),
    [
        ({"kmeans_init_epoch": 2.0}, 2, "kmeans_init_epoch=2 is not reached within epochs=2"),
        ({"kmeans_init_epoch": 0.5, "reseed_interval_epochs": 1.5}, 2, "reseed_interval_epochs"),
    ],
)
def test_a_schedule_that_cannot_start_within_the_run_is_refused(
    digits_small, tmp_path: Path, params: dict[str, Any], epochs: int, named: str
) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=named):
        fit(deca_cfg(epochs=epochs, **params), digits_small, run_dir=out, quiet=True)
    assert not out.exists()
    # Within the run, the same schedules are accepted.
    DECA.check_schedule(DECAParams(**params), epochs + 1)


def test_epoch_schedules_land_on_the_steps_of_the_run(digits_small) -> None:
    method = started_method(digits_small, kmeans_init_epoch=0.5)
    assert method.steps_per_epoch == STEPS_PER_EPOCH
    # 0.5 epochs of 4 steps: step 2; 1.25: step 5; 0.125: step 0.5, rounded up to 1
    assert [method.step_at(e) for e in (0.5, 1.25, 0.125, 20.0)] == [2, 5, 1, 80]


def test_a_checkpoint_with_settings_in_steps_loads_and_resumes_exactly(
    digits_small, tmp_path: Path
) -> None:
    """Checkpoints of older versions: step-counted settings and DECA's step count."""
    from contraclust.training.checkpoint import method_from_checkpoint, read_checkpoint
    from contraclust.utils import atomic_torch_save

    params = {"target": "dataset", "target_update_epochs": 0.75, "kmeans_init_epoch": 0.5}
    straight = fit(deca_cfg(epochs=2, **params), digits_small, run_dir=tmp_path / "a", quiet=True)
    fit(deca_cfg(epochs=1, **params), digits_small, run_dir=tmp_path / "b", quiet=True)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    state = read_checkpoint(last)
    old = state["config"]["params"]
    del old["target_update_epochs"], old["kmeans_init_epoch"]
    old.update(target_update_interval=3, kmeans_init_step=2)  # 4 steps an epoch
    state["state_dict"]["steps_done"] = torch.tensor(4)
    atomic_torch_save(state, last)
    assert isinstance(method_from_checkpoint(read_checkpoint(last)), DECA)
    resumed = fit(
        deca_cfg(epochs=2, **params), digits_small, run_dir=tmp_path / "b", resume=True, quiet=True
    )
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    torch.testing.assert_close(straight.method.centers, resumed.method.centers, atol=0, rtol=0)
    assert resumed.config.params["kmeans_init_epoch"] == 0.5


@pytest.mark.parametrize("value", ["100%", "-5%", "40", "forty%", "%"])
def test_a_share_of_the_run_is_checked(value: str) -> None:
    with pytest.raises(ConfigError, match=r"kmeans_init_epoch.*share of the run"):
        from_dict(DECAParams, {"kmeans_init_epoch": value}, "params")


def test_schedules_given_as_a_share_of_the_run_follow_its_length(digits_small) -> None:
    method = started_method(digits_small, kmeans_init_epoch="40%")
    assert not method.clusters_ready  # no centres before the k-means start
    method.start_fit(lambda fn: torch.empty(0), STEPS_PER_EPOCH, resumed=True, epochs=10)
    # 40% of 10 epochs of 4 steps: step 16; of 5 epochs: step 8
    assert method.step_at("40%") == 16
    method.start_fit(lambda fn: torch.empty(0), STEPS_PER_EPOCH, resumed=True, epochs=5)
    assert [method.step_at(v) for v in ("40%", "4%", 2.5)] == [8, 1, 10]
    # A share fits any run, however short.
    DECA.check_schedule(DECAParams(kmeans_init_epoch="99%", reseed_interval_epochs="0.5%"), 1)


def test_a_lengthened_run_keeps_the_first_runs_shares(
    digits_small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed with more epochs, a "50%" k-means start stays where the first run put it
    (after epoch 1 of 2): the centres are not set again at 50% of 4 epochs (step 8, the
    first step of the resumed run)."""
    from contraclust.training.checkpoint import read_checkpoint

    starts: list[int] = []
    init = DECA._init_centers
    monkeypatch.setattr(DECA, "_init_centers", lambda self: starts.append(1) or init(self))
    params = {"kmeans_init_epoch": "50%"}
    out = tmp_path / "run"
    fit(deca_cfg(epochs=2, **params), digits_small, run_dir=out, quiet=True)
    assert len(starts) == 1
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["schedule_epochs"] == 2
    longer = fit(deca_cfg(epochs=4, **params), digits_small, run_dir=out, resume=True, quiet=True)
    assert len(starts) == 1 and len(longer.history) == 4
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["schedule_epochs"] == 2
