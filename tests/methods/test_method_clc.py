from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contraclust.config import ModelConfig, RunConfig, from_dict
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.losses import CLCLoss
from contraclust.losses.sinkhorn import sinkhorn_knopp
from contraclust.methods import get_method
from contraclust.methods.clc import CLC, CLCParams
from contraclust.training import fit

EQUIPARTITIONS = ["sinkhorn_target", "balance_penalty", "none"]
INPUT_SHAPE = (1, 8, 8)
MODEL = ModelConfig(backbone="small_cnn", hidden_dim=32, projection_dim=16)


@pytest.fixture(scope="module")
def digits_small():
    return load_dataset("digits").subset(np.arange(200))


def make_method(k: int = 5, **params) -> CLC:
    torch.manual_seed(0)
    return CLC(CLCParams(**params), k, INPUT_SHAPE, MODEL, n_samples=100)


def random_views(batch: int = 24) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(batch, *INPUT_SHAPE, generator=gen) for _ in range(2)]


def test_alias_cdc_resolves_to_the_same_class() -> None:
    assert get_method("cdc") is get_method("clc") is CLC
    assert CLC.Params is CLCParams


@pytest.mark.parametrize("equipartition", EQUIPARTITIONS)
def test_short_fit_on_digits(digits_small, equipartition: str) -> None:
    cfg = RunConfig.from_dict(
        {
            "method": "cdc",
            "n_clusters": 10,
            "model": {"backbone": "small_cnn", "hidden_dim": 32, "projection_dim": 16},
            "optim": {"lr": 1e-3},
            "train": {"epochs": 1, "batch_size": 100, "device": "cpu", "eval_every": 1},
            "params": {"equipartition": equipartition, "instance_dim": 12},
        }
    )
    result = fit(cfg, digits_small, quiet=True)
    assert isinstance(result.method, CLC)
    assert result.method.instance_head.out_dim == 12
    assert [row["epoch"] for row in result.history] == [1]
    for row in result.history:
        assert math.isfinite(row["loss"]) and math.isfinite(row["contrast"])
        assert 0.0 <= row["acc"] <= 1.0
        if equipartition == "none":
            assert row["equipartition"] == 0.0
        else:
            assert row["equipartition"] > 0.0
    assert result.prediction.labels.shape == (len(digits_small),)
    assert result.prediction.probs.shape == (len(digits_small), 10)
    np.testing.assert_allclose(result.prediction.probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("equipartition", EQUIPARTITIONS)
@pytest.mark.parametrize("categorical", ["softmax", "sinkhorn"])
def test_every_parameter_gets_a_gradient(equipartition: str, categorical: str) -> None:
    method = make_method(equipartition=equipartition, categorical_in_similarity=categorical)
    views = random_views()
    out = method.training_loss(views, views[0], torch.arange(24))
    assert {"loss", "contrast", "equipartition"} <= set(out)
    out["loss"].backward()
    for name, param in method.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("equipartition", EQUIPARTITIONS)
@pytest.mark.parametrize("categorical", ["softmax", "sinkhorn"])
def test_loss_terms_match_their_definitions(equipartition: str, categorical: str) -> None:
    params = {
        "equipartition": equipartition,
        "categorical_in_similarity": categorical,
        "equipartition_weight": 0.7,
        "softmax_temperature": 0.5,
        "sinkhorn_eps": 0.3,
        "instance_temperature": 0.2,
        "category_temperature": 0.4,
    }
    method = make_method(**params)
    views = random_views()
    with torch.no_grad():
        out = method.training_loss(views, views[0], torch.arange(24))
        h = method.backbone(torch.cat(views))
        v1, v2 = method.instance_head(h).chunk(2)
        log_c1, log_c2 = F.log_softmax(method.cluster_head(h) / 0.5, dim=1).chunk(2)
    c1, c2 = log_c1.exp(), log_c2.exp()
    q1, q2 = (sinkhorn_knopp(x, eps=0.3, n_iter=3) for x in (log_c1, log_c2))
    s1, s2 = (q1, q2) if categorical == "sinkhorn" else (c1, c2)
    contrast = CLCLoss(0.2, 0.4)(v1, v2, s1, s2)
    if equipartition == "sinkhorn_target":
        equip = -0.5 * ((q2 * log_c1).sum(1).mean() + (q1 * log_c2).sum(1).mean())
    elif equipartition == "balance_penalty":
        mean = torch.cat([c1, c2]).mean(0)
        equip = math.log(5) + (mean * mean.log()).sum()
    else:
        equip = torch.tensor(0.0)
    torch.testing.assert_close(out["contrast"], contrast, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["equipartition"], equip, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss"], contrast + 0.7 * equip, rtol=1e-5, atol=1e-6)


def test_read_outs() -> None:
    method = make_method(softmax_temperature=0.5).eval()
    x = random_views(6)[0]
    with torch.no_grad():
        probs = method.cluster_probs(x)
        logits = method.cluster_head(method.backbone(x))
    assert probs.shape == (6, 5)
    torch.testing.assert_close(probs, F.softmax(logits / 0.5, dim=1))
    assert method.embed(x).shape == (6, method.backbone.out_dim)


def test_instance_dim_defaults_to_the_projection_dim() -> None:
    assert make_method().instance_head.out_dim == MODEL.projection_dim
    assert make_method(instance_dim=7).instance_head.out_dim == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("instance_dim", 0),
        ("instance_temperature", 0.0),
        ("category_temperature", -1.0),
        ("softmax_temperature", float("inf")),
        ("sinkhorn_eps", 0.0),
        ("sinkhorn_iters", 0),
        ("equipartition", "swav"),
        ("equipartition_weight", -0.5),
        ("equipartition_weight", float("nan")),
        ("categorical_in_similarity", "hard"),
    ],
)
def test_bad_hyper_parameters_raise_config_error_naming_them(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        CLCParams(**{name: value})
    # the same through the preset/CLI path
    with pytest.raises(ConfigError, match=name):
        from_dict(CLCParams, {name: value}, "params")


def test_unknown_and_mistyped_options_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"params\.tau_v"):
        from_dict(CLCParams, {"tau_v": 0.5}, "params")
    with pytest.raises(ConfigError, match=r"params\.sinkhorn_iters"):
        from_dict(CLCParams, {"sinkhorn_iters": 2.5}, "params")
