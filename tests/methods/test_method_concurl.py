from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contraclust.config import ModelConfig, RunConfig
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.methods import get_method
from contraclust.methods.concurl import ConCURL
from contraclust.training import fit
from contraclust.training.checkpoint import build_method

# Small heads keep the tests fast; the structure is the paper's.
SMALL = {
    "projection_hidden": 32,
    "projection_out": 16,
    "exemplar_dim": 8,
    "n_projections": 3,
    "projection_dim": 6,
    "n_negatives": 64,
}
N_SAMPLES = 120


@pytest.fixture(scope="module")
def digits_small():
    return load_dataset("digits").subset(np.arange(200))


def small_cfg(epochs: int = 2, **params: Any) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": "concurl",
            "n_clusters": 10,
            "model": {"backbone": "small_cnn"},
            "augment": {"name": "grey"},
            "optim": {"name": "sgd", "lr": 0.05, "weight_decay": 5e-4},
            "train": {"epochs": epochs, "batch_size": 100, "device": "cpu", "eval_every": 1},
            "params": {**SMALL, **params},
        }
    )


def vector_cfg(**params: Any) -> RunConfig:
    cfg = small_cfg(**params)
    cfg.model = ModelConfig(backbone="mlp")
    return cfg


def small_method(**params: Any) -> ConCURL:
    torch.manual_seed(0)
    method = build_method(vector_cfg(**params), (20,), N_SAMPLES)
    assert isinstance(method, ConCURL)
    return method


def one_step(method: ConCURL, batch: int = 16) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    views = [torch.randn(batch, 20, generator=gen) for _ in range(2)]
    index = torch.randperm(N_SAMPLES, generator=gen)[:batch]
    method.train()
    out = method.training_loss(views, views[0], index)
    method.zero_grad(set_to_none=True)
    out["loss"].backward()
    return out


def test_registered_under_its_name() -> None:
    assert get_method("concurl") is ConCURL


def test_short_fit_on_digits_runs_and_logs_every_loss(digits_small) -> None:
    result = fit(small_cfg(epochs=2), digits_small, quiet=True)
    assert len(result.history) == 2
    for row in result.history:
        for key in ("loss", "exemplar", "population", "consensus"):
            assert math.isfinite(row[key]) and row[key] > 0, key
    assert result.prediction.labels.shape == (200,)
    assert result.prediction.probs.shape == (200, 10)
    np.testing.assert_allclose(result.prediction.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert result.metrics is not None and 0.0 <= result.metrics["acc"] <= 1.0


def test_released_code_variant_alpha_zero_fits(digits_small) -> None:
    cfg = small_cfg(epochs=1, alpha=0.0, projection_kind="diagonal")
    result = fit(cfg, digits_small, quiet=True)
    assert result.history[-1]["population"] == 0.0
    assert result.history[-1]["consensus"] > 0
    assert not result.method.prototypes.requires_grad


@pytest.mark.parametrize(
    ("params", "frozen"),
    [
        ({}, set()),
        ({"exemplar_loss": "ntxent"}, set()),
        ({"detach_consensus_prototypes": False, "alpha": 0.0}, set()),
        ({"alpha": 0.0}, {"prototypes"}),
        ({"learnable_prototypes": False}, {"prototypes"}),
        ({"alpha": 0.0, "gamma": 0.0}, {"prototypes", "projection_head"}),
        ({"beta": 0.0}, set()),
    ],
)
def test_every_trainable_parameter_gets_a_gradient(params: dict, frozen: set[str]) -> None:
    method = small_method(**params)
    out = one_step(method)
    assert torch.isfinite(out["loss"])
    names = {name for name, _ in method.named_parameters()}
    for name, param in method.named_parameters():
        part = name.split(".")[0]
        if part in frozen:
            assert not param.requires_grad, name
            continue
        assert param.requires_grad, name
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.count_nonzero(param.grad) > 0, f"{name} got a zero gradient"
    assert ("exemplar_head.weight" in names) == (params.get("beta", 1.0) > 0)


@pytest.mark.parametrize(("epochs", "last_frozen"), [(1, 6), (0.5, 3), (1.5, 10)])
def test_prototypes_are_renormalised_and_frozen_for_the_first_epochs(
    epochs: float, last_frozen: int
) -> None:
    method = small_method(freeze_prototypes_epochs=epochs)
    method.start_fit(lambda fn: torch.empty(0), 7, resumed=False)  # 120 // 16 = 7 steps
    with torch.no_grad():
        method.prototypes.mul_(3.0)
    method.on_step(0, 0)
    one_step(method)  # the first step: frozen
    torch.testing.assert_close(method.prototypes.norm(dim=1), torch.ones(10))
    assert method.prototypes.grad is not None
    assert torch.count_nonzero(method.prototypes.grad) == 0
    method.on_step(last_frozen, last_frozen // 7)
    one_step(method)
    assert torch.count_nonzero(method.prototypes.grad) == 0
    method.on_step(last_frozen + 1, (last_frozen + 1) // 7)
    one_step(method)
    assert torch.count_nonzero(method.prototypes.grad) > 0


def test_freezing_the_prototypes_for_the_whole_run_is_refused(digits_small) -> None:
    with pytest.raises(
        ConfigError, match="freeze_prototypes_epochs=2 keeps the prototypes from training"
    ):
        fit(small_cfg(epochs=2, freeze_prototypes_epochs=2), digits_small, quiet=True)


def test_memory_bank_moves_during_training() -> None:
    method = small_method()
    assert method.memory_bank is not None
    before = method.memory_bank.bank.clone()
    one_step(method)
    changed = (method.memory_bank.bank != before).any(dim=1)
    assert 0 < int(changed.sum()) <= 16


def test_read_outs_and_state_round_trip() -> None:
    method = small_method()
    one_step(method)
    method.eval()
    x = torch.randn(5, 20)
    probs = method.cluster_probs(x)
    assert probs.shape == (5, 10)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))
    assert method.embed(x).shape == (5, method.backbone.out_dim)
    torch.manual_seed(99)  # other random projections and bank before loading
    other = build_method(vector_cfg(), (20,), N_SAMPLES)
    other.load_state_dict(method.state_dict())
    other.eval()
    torch.testing.assert_close(other.cluster_probs(x), probs)
    assert torch.equal(other.projections.matrices, method.projections.matrices)


@pytest.mark.parametrize("views", ["first", "both"])
def test_exemplar_views_decide_what_the_memory_bank_learns(views: str) -> None:
    """``first`` (the authors' code) moves the bank towards view 1's embedding only;
    ``both`` (ours) towards the normalised sum of the two views' embeddings."""
    method = small_method(exemplar_views=views)
    assert method.memory_bank is not None and method.exemplar_head is not None
    gen = torch.Generator().manual_seed(1)
    x1, x2 = (torch.randn(16, 20, generator=gen) for _ in range(2))
    index = torch.arange(16)
    before = method.memory_bank.bank.clone()
    method.train()
    method.training_loss([x1, x2], x1, index)
    with torch.no_grad():  # the same pass again (train mode: the same batch statistics)
        h = method.backbone(torch.cat([x1, x2], dim=0))
        e1, e2 = F.normalize(method.exemplar_head(h), dim=1).chunk(2)
    new = e1 if views == "first" else F.normalize(e1 + e2, dim=1)
    momentum = method.params.memory_momentum
    expected = F.normalize(momentum * before[index] + (1 - momentum) * new, dim=1)
    torch.testing.assert_close(method.memory_bank.bank[index], expected)
    other = e2 if views == "first" else e1  # what the other setting would have written
    alternative = F.normalize(momentum * before[index] + (1 - momentum) * other, dim=1)
    assert not torch.allclose(method.memory_bank.bank[index], alternative, atol=1e-4)


@pytest.mark.parametrize(("passes", "updates"), [("joint", 1), ("separate", 2)])
def test_view_passes_decide_the_batch_norm_statistics(passes: str, updates: int) -> None:
    method = small_method(view_passes=passes)
    one_step(method)
    for part in (method.backbone, method.projection_head):
        norms = [m for m in part.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        assert norms and all(int(m.num_batches_tracked) == updates for m in norms)


def test_exemplar_view_one_loss_is_view_one_alone() -> None:
    method = small_method(exemplar_views="first", alpha=0.0, gamma=0.0)
    gen = torch.Generator().manual_seed(2)
    x1, x2 = (torch.randn(16, 20, generator=gen) for _ in range(2))
    index = torch.arange(16)
    assert method.memory_bank is not None
    bank = method.memory_bank.bank.clone()
    method.train()
    torch.manual_seed(5)  # the draw of negatives
    loss = method.training_loss([x1, x2], x1, index)["exemplar"]
    with torch.no_grad():
        h = method.backbone(torch.cat([x1, x2], dim=0))
        e1 = F.normalize(method.exemplar_head(h), dim=1).chunk(2)[0]
        method.memory_bank.bank.copy_(bank)
        torch.manual_seed(5)
        negatives = method.memory_bank.draw_negatives()
        expected = method.memory_bank(e1, index, negatives)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"exemplar_views": "second"}, "exemplar_views"),
        ({"view_passes": "both"}, "view_passes"),
        ({"exemplar_views": "first", "exemplar_loss": "ntxent"}, "exemplar_views"),
        ({"exemplar_loss": "byol"}, "exemplar_loss"),
        ({"nce_temperature": 0.0}, "nce_temperature"),
        ({"ntxent_temperature": -1.0}, "ntxent_temperature"),
        ({"temperature": 0.0}, "temperature"),
        ({"sinkhorn_eps": 0.0}, "sinkhorn_eps"),
        ({"sinkhorn_iters": 0}, "sinkhorn_iters"),
        ({"n_projections": 0}, "n_projections"),
        ({"projection_dim": 0}, "projection_dim"),
        ({"projection_kind": "sparse"}, "projection_kind"),
        ({"projection_kind": "diagonal", "projection_dim": 17}, "projection_dim"),
        ({"n_negatives": 0}, "n_negatives"),
        ({"memory_momentum": 1.0}, "memory_momentum"),
        ({"alpha": -1.0}, "alpha"),
        ({"gamma": float("nan")}, "gamma"),
        ({"alpha": 0.0, "beta": 0.0, "gamma": 0.0}, "alpha, beta and gamma"),
        ({"projection_hidden": 0}, "projection_hidden"),
        ({"freeze_prototypes_epochs": -1}, "freeze_prototypes_epochs"),
        ({"sinkhorn_iters": 1.5}, "sinkhorn_iters"),
        ({"no_such_option": 1}, "no_such_option"),
    ],
)
def test_bad_hyper_parameters_raise_config_error_naming_them(params: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        small_method(**params)
