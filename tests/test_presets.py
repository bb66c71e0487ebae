"""Presets that cite the authors' code hold the authors' choices (docs/methods.md)."""

from __future__ import annotations

import pytest

from contraclust.config import RunConfig, available_presets, load_preset
from contraclust.data.augment import ImageAugmentation, build_augmentation
from contraclust.training.checkpoint import build_method

#: Presets of colour data sets that follow the authors' scripts.
COLOUR = ("cifar10", "cifar100-20", "stl10", "imagenet10", "imagenet-dogs", "tiny-imagenet")


def preset(name: str) -> RunConfig:
    return RunConfig.from_dict(load_preset(name))


def image_augmentation(cfg: RunConfig) -> ImageAugmentation:
    side = cfg.data.image_size or 32
    module = build_augmentation(cfg.augment.name, "image", (3, side, side), cfg.augment.options)
    assert isinstance(module, ImageAugmentation)
    return module


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_read_out_exists_for_its_method(name: str) -> None:
    cfg = preset(name)
    cfg.model.backbone = "mlp"  # the read-out spaces do not depend on the backbone
    build_method(cfg, (12,), 100)  # refuses a read-out or k-means space the method lacks


@pytest.mark.parametrize("data", COLOUR)
def test_concurl_presets_follow_the_authors_code(data: str) -> None:
    cfg = preset(f"concurl/{data}")
    aug = image_augmentation(cfg).config
    assert aug.crop_scale == (0.2, 1.0)
    assert aug.jitter_p == 1.0
    assert (aug.brightness, aug.contrast, aug.saturation, aug.hue) == (0.4, 0.4, 0.4, 0.4)
    assert aug.grey_p == 0.2 and aug.hflip_p == 0.5 and aug.blur_p == 0.0
    assert cfg.params["exemplar_views"] == "first"
    assert cfg.params["view_passes"] == "separate"
    assert (cfg.train.predict_with, cfg.train.kmeans_space) == ("kmeans", "exemplar")
    assert cfg.train.kmeans_n_init == 20
    assert (cfg.optim.name, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 0.9, 5e-4)


@pytest.mark.parametrize("data", ("cifar10", "cifar100-20"))
def test_deca_cifar_presets_do_not_blur(data: str) -> None:
    cfg = preset(f"deca/{data}")
    assert cfg.data.image_size == 224  # where the simclr set would turn blur on
    assert image_augmentation(cfg).config.blur_p == 0.0


@pytest.mark.parametrize("data", COLOUR)
def test_cc_presets_follow_ccs_published_configuration(data: str) -> None:
    cfg = preset(f"cc/{data}")
    assert cfg.model.backbone == "resnet34_imagenet"
    assert (cfg.model.projection_dim, cfg.model.hidden_dim) == (128, 512)
    assert cfg.data.image_size == 224
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 3e-4, 0.0)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.predict_with) == (1000, 256, "head")
    assert cfg.params["instance_temperature"] == 0.5
    assert cfg.params["cluster_temperature"] == 1.0
    assert cfg.params["view_passes"] == "separate"
    aug = image_augmentation(cfg).config
    strong = data in ("stl10", "imagenet10", "imagenet-dogs")  # CC's s = 1, else 0.5
    assert aug.brightness == (0.8 if strong else 0.4)
    assert aug.hue == (0.2 if strong else 0.1)
    assert aug.jitter_p == 0.8 and aug.crop_scale == (0.08, 1.0)
    assert aug.blur_p == (0.5 if data in ("imagenet10", "imagenet-dogs") else 0.0)
    assert cfg.n_clusters == {"cifar100-20": 20, "imagenet-dogs": 15, "tiny-imagenet": 200}.get(
        data, 10
    )
