"""CC: the two ways the views go through the backbone (``view_passes``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.methods.cc import ContrastiveClustering
from contraclust.training import fit
from contraclust.training.checkpoint import build_method


def cc_cfg(epochs: int = 1, **params: object) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": "cc",
            "n_clusters": 10,
            "model": {"backbone": "mlp", "hidden_dim": 32, "projection_dim": 16},
            "train": {"epochs": epochs, "batch_size": 100, "device": "cpu"},
            "params": dict(params),
        }
    )


def twin_methods() -> tuple[ContrastiveClustering, ContrastiveClustering]:
    """A joint-pass and a separate-pass CC with the same weights."""
    torch.manual_seed(0)
    joint = build_method(cc_cfg(view_passes="joint"), (20,), 200)
    separate = build_method(cc_cfg(view_passes="separate"), (20,), 200)
    separate.load_state_dict(joint.state_dict())
    assert isinstance(joint, ContrastiveClustering)
    assert isinstance(separate, ContrastiveClustering)
    return joint, separate


def first_batch_norm(method: nn.Module) -> nn.BatchNorm1d:
    return next(m for m in method.modules() if isinstance(m, nn.BatchNorm1d))


def test_separate_passes_normalise_each_view_with_its_own_statistics() -> None:
    joint, separate = twin_methods()
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(32, 20, generator=gen)
    x2 = 3.0 * torch.randn(32, 20, generator=gen) + 2.0  # a view of other statistics
    losses = {}
    for method in (joint, separate):
        method.train()
        losses[method.params.view_passes] = method.training_loss([x1, x2], x1, torch.arange(32))
    bn_joint, bn_separate = first_batch_norm(joint), first_batch_norm(separate)
    # One pass updates the running mean once, with the 2B batch; two passes twice.
    assert int(bn_joint.num_batches_tracked) == 1
    assert int(bn_separate.num_batches_tracked) == 2
    assert not torch.allclose(bn_joint.running_mean, bn_separate.running_mean)
    assert not torch.isclose(losses["joint"]["loss"], losses["separate"]["loss"])
    # The separate pass gives each view the backbone output it has when run alone.
    fresh = build_method(cc_cfg(view_passes="separate"), (20,), 200)
    fresh.load_state_dict(joint.state_dict())
    fresh.train()
    with torch.no_grad():
        alone = [fresh.backbone(x) for x in (x1, x2)]
    fresh.load_state_dict(joint.state_dict())  # back to the same running statistics
    seen: list[torch.Tensor] = []
    fresh.backbone.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    fresh.training_loss([x1, x2], x1, torch.arange(32))
    assert len(seen) == 2
    for got, want in zip(seen, alone, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("passes", ["joint", "separate"])
def test_both_passes_train(passes: str) -> None:
    data = load_dataset("digits").subset(np.arange(200))
    cfg = cc_cfg(epochs=2, view_passes=passes)
    cfg.model.backbone = "small_cnn"
    result = fit(cfg, data, quiet=True)
    losses = [row["loss"] for row in result.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert result.prediction.labels.shape == (200,)


def test_unknown_view_passes_is_refused() -> None:
    with pytest.raises(ConfigError, match="view_passes must be one of joint, separate"):
        build_method(cc_cfg(view_passes="twice"), (20,), 200)
