"""Frozen features (--features): TorchScript backbones, the disk cache, clear errors."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import contraclust.data.features as features_mod
from contraclust import Clusterer
from contraclust.cli import main
from contraclust.data import ArrayDataset
from contraclust.data.features import (
    CACHE_ENV,
    feature_cache_dir,
    features_dataset,
    load_feature_backbone,
)
from contraclust.errors import ConfigError, DataError

CPU = torch.device("cpu")


class TinyBackbone(nn.Module):
    """RGB images to 8 features; it checks that it gets 3 channels in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3 or bool(x.min() < 0) or bool(x.max() > 1):
            raise ValueError("expected RGB images in [0, 1]")
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


class MapBackbone(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2] * 2.0  # a (B, 2, H, W) feature map


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the backbone was called")


def save_script(module: nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(module), str(path))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


@pytest.fixture
def backbone_file(tmp_path: Path) -> Path:
    return save_script(TinyBackbone(), tmp_path / "tiny.pt")


def two_kinds(n: int = 40, side: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Dark and bright noisy images, alternating: (N, side, side, C) uint8."""
    rng = np.random.default_rng(seed)
    base = np.where(np.arange(n) % 2 == 0, 40, 210)[:, None, None, None]
    noise = rng.integers(-30, 30, size=(n, side, side, channels))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def image_dataset(images: np.ndarray) -> ArrayDataset:
    data = torch.from_numpy(np.ascontiguousarray(np.moveaxis(images, 3, 1)))
    return ArrayDataset(data, np.arange(len(images)) % 2, "kinds")


def test_features_are_computed_once_then_read_from_the_cache(
    cache: Path, backbone_file: Path, capsys: pytest.CaptureFixture
) -> None:
    ds = image_dataset(two_kinds())
    backbone = load_feature_backbone(str(backbone_file))
    first, side = features_dataset(ds, backbone, None, CPU)
    assert side == 16 and first.kind == "vector" and first.input_shape == (8,)
    assert first.labels is ds.labels
    assert "computed" in capsys.readouterr().err
    assert [p.suffix for p in cache.iterdir()] == [".pt"]  # one entry, no temporary left
    silent = dataclasses.replace(backbone, module=Exploding())  # same identity, cannot run
    second, _ = features_dataset(ds, silent, None, CPU)
    assert "reusing cached" in capsys.readouterr().err
    torch.testing.assert_close(second.data, first.data)
    # another image size, or other images, are other entries: the backbone runs again
    with pytest.raises(DataError, match="the backbone was called"):
        features_dataset(ds, silent, 12, CPU)
    with pytest.raises(DataError, match="the backbone was called"):
        features_dataset(image_dataset(two_kinds(seed=1)), silent, None, CPU)


def test_an_edited_backbone_file_is_a_new_cache_entry(
    cache: Path, tmp_path: Path, backbone_file: Path
) -> None:
    ds = image_dataset(two_kinds(n=6))
    features_dataset(ds, str(backbone_file), None, CPU, quiet=True)
    save_script(MapBackbone(), backbone_file)  # same path, other content
    again, _ = features_dataset(ds, str(backbone_file), None, CPU, quiet=True)
    assert again.input_shape == (2,)  # MapBackbone's pooled map, not the cached 8 features
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_cache_entry_is_recomputed(cache: Path, backbone_file: Path) -> None:
    ds = image_dataset(two_kinds(n=6))
    first, _ = features_dataset(ds, str(backbone_file), None, CPU, quiet=True)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"garbage")
    again, _ = features_dataset(ds, str(backbone_file), None, CPU, quiet=True)
    torch.testing.assert_close(again.data, first.data)


def test_grey_images_feature_maps_and_resizing(tmp_path: Path, cache: Path) -> None:
    grey = image_dataset(two_kinds(n=5, side=10, channels=1))
    path = save_script(MapBackbone(), tmp_path / "map.pt")
    out, side = features_dataset(grey, str(path), 7, CPU, use_cache=False, quiet=True)
    assert side == 7 and out.input_shape == (2,)
    # grey repeated to RGB, scaled to [0, 1], pooled, times 2 (the image mean survives resizing)
    expected = grey.data.float().mean(dim=(1, 2, 3)) / 255.0 * 2.0
    torch.testing.assert_close(out.data[:, 0], expected, atol=0.02, rtol=0)
    assert not cache.exists()  # use_cache=False writes nothing


def test_feature_backbone_errors(
    tmp_path: Path, backbone_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as here: it does not import
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ConfigError, match=r"torchvision:resnet18 needs torchvision.*TorchScript"):
        load_feature_backbone("torchvision:resnet18")
    with pytest.raises(ConfigError, match=r"timm:vit_small needs timm.*TorchScript"):
        load_feature_backbone("timm:vit_small")
    with pytest.raises(ConfigError, match="name the model"):
        load_feature_backbone("torchvision:")
    with pytest.raises(ConfigError, match="no such file"):
        load_feature_backbone(str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a TorchScript file"):
        load_feature_backbone(str(garbage))
    vectors = ArrayDataset(torch.zeros(4, 3), None, "vec")
    with pytest.raises(ConfigError, match="applies to images"):
        features_dataset(vectors, str(backbone_file), None, CPU)
    wide = ArrayDataset(torch.zeros(2, 3, 8, 12, dtype=torch.uint8), None, "wide")
    with pytest.raises(ConfigError, match=r"8×12.*image_size=SIDE"):
        features_dataset(wide, str(backbone_file), None, CPU)


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "/some/where")
    assert feature_cache_dir() == Path("/some/where/features")
    monkeypatch.delenv(CACHE_ENV)
    assert feature_cache_dir() == Path.home() / ".cache" / "contraclust" / "features"


def test_cli_fit_twice_reuses_features_and_predict_uses_them(
    tmp_path: Path,
    cache: Path,
    backbone_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    data = tmp_path / "images.npy"
    np.save(data, two_kinds())
    common = ["fit", str(data), "--features", str(backbone_file), "-k", "2", "--epochs", "1"]
    common += ["-b", "20", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "r1"), "-q"]) == 0
    cfg = yaml.safe_load((tmp_path / "r1" / "config.yaml").read_text())
    assert cfg["data"]["features"] == str(backbone_file)
    assert cfg["data"]["features_image_size"] == 16
    assert "computed" in (tmp_path / "r1" / "train.log").read_text()

    def no_backbone(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backbone ran although its features are cached")

    monkeypatch.setattr(features_mod, "extract_features", no_backbone)
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "r2")]) == 0
    assert "reusing cached" in capsys.readouterr().err
    assert "reusing cached" in (tmp_path / "r2" / "train.log").read_text()
    monkeypatch.undo()

    new = tmp_path / "new.npy"
    np.save(new, two_kinds(n=6, side=20, seed=3))  # other size: resized to 16 like training
    out = tmp_path / "new.csv"
    assert main(["predict", str(tmp_path / "r1"), str(new), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 7 and {row.split(",")[1] for row in rows[1:]} <= {"0", "1"}
    # the training images again: the same clusters as the run assigned them
    again = tmp_path / "again.csv"
    assert main(["predict", str(tmp_path / "r1"), str(data), "--out", str(again)]) == 0
    trained = (tmp_path / "r1" / "assignments.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in again.read_text().splitlines()[1:]] == [
        r.split(",")[1] for r in trained[1:]
    ]


def test_estimator_with_features(tmp_path: Path, cache: Path, backbone_file: Path) -> None:
    images = two_kinds()
    est = Clusterer("cc", 2, epochs=2, batch_size=20, device="cpu", features=str(backbone_file))
    est.fit(images)
    assert est.model_.input_shape == (8,)
    assert est.config_.data.features_image_size == 16
    np.testing.assert_array_equal(est.predict(images), est.labels_)
    assert est.transform(images[:3]).shape[0] == 3
    path = tmp_path / "model.ckpt"
    est.save(path)
    loaded = contraclust_load(path)
    np.testing.assert_array_equal(loaded.predict(images), est.labels_)


def contraclust_load(path: Path) -> Clusterer:
    from contraclust.api import load

    return load(path)


def fake_torchvision(weights_url: str, model: nn.Module) -> SimpleNamespace:
    """A stand-in for torchvision (which does not import beside this torch)."""

    def get_model_weights(name: str) -> SimpleNamespace:
        if name != "resnet18":
            raise ValueError(f"unknown model {name}")
        return SimpleNamespace(DEFAULT=SimpleNamespace(url=weights_url))

    return SimpleNamespace(
        models=SimpleNamespace(
            get_model_weights=get_model_weights, get_model=lambda name, weights: model
        )
    )


def test_torchvision_needs_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = nn.Sequential()
    classifier.fc = nn.Linear(4, 10)
    fake = fake_torchvision("https://example.invalid/resnet18-f37072fd.pth", classifier)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(
        ConfigError, match=rf"weights are not on this machine \(looked for {weights}"
    ):
        load_feature_backbone("torchvision:resnet18")
    with pytest.raises(ConfigError, match="torchvision has no model 'resnet99'"):
        load_feature_backbone("torchvision:resnet99")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    backbone = load_feature_backbone("torchvision:resnet18")
    assert isinstance(backbone.module.fc, nn.Identity)  # the classifier is removed
    assert backbone.default_image_size == 224 and backbone.normalize


def test_timm_loads_offline_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def create_model(name: str, pretrained: bool, num_classes: int) -> nn.Module:
        seen.append(os.environ.get("HF_HUB_OFFLINE"))
        raise OSError("not in the local cache")

    monkeypatch.setitem(sys.modules, "timm", SimpleNamespace(create_model=create_model))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConfigError, match="cannot load the pretrained model from the local cache"):
        load_feature_backbone("timm:vit_small_patch16_224")
    assert seen == ["1"] and "HF_HUB_OFFLINE" not in os.environ  # restored afterwards
