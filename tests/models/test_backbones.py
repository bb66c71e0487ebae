from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from contraclust.errors import ConfigError
from contraclust.models import (
    BACKBONES,
    MLP,
    BasicBlock,
    ResNet,
    SmallCNN,
    available_backbones,
    build_backbone,
)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def resnet_param_count(depth: int, in_channels: int, stem_kernel: int) -> int:
    """Parameters of a basic-block ResNet without classifier, counted by hand.

    conv k x k from a to b: k*k*a*b weights (no bias); BN on b channels: 2*b.
    """
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth]
    total = stem_kernel**2 * in_channels * 64 + 2 * 64
    channels = 64
    for index, (width, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
        for block in range(count):
            total += 9 * channels * width + 2 * width  # conv1 + bn1
            total += 9 * width * width + 2 * width  # conv2 + bn2
            if block == 0 and index > 0:  # 1x1 projection shortcut + bn
                total += channels * width + 2 * width
            channels = width
    return total


def test_resnet18_cifar_parameter_count() -> None:
    expected = resnet_param_count(18, 3, 3)
    assert expected == 11_168_832  # ~11.17M; the usual 11,173,962 minus a 10-way fc
    assert n_params(ResNet(18, "cifar")) == expected


@pytest.mark.parametrize(
    ("depth", "stem", "kernel"), [(34, "cifar", 3), (18, "imagenet", 7), (34, "imagenet", 7)]
)
def test_resnet_parameter_counts(depth: int, stem: str, kernel: int) -> None:
    assert n_params(ResNet(depth, stem, in_channels=1)) == resnet_param_count(depth, 1, kernel)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("small_cnn", (1, 8, 8)),
        ("small_cnn", (1, 16, 16)),
        ("small_cnn", (1, 28, 28)),
        ("small_cnn", (3, 32, 32)),
        ("resnet18", (3, 32, 32)),
        ("resnet18", (1, 8, 8)),
        ("resnet34", (3, 16, 16)),
        ("resnet18_imagenet", (3, 96, 96)),
        ("resnet34_imagenet", (3, 64, 64)),
        ("mlp", (20,)),
    ],
)
def test_output_shapes(name: str, shape: tuple[int, ...]) -> None:
    model = build_backbone(name, shape).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *shape))
    assert out.shape == (2, model.out_dim)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_out_dims() -> None:
    assert SmallCNN(1).out_dim == 256
    assert SmallCNN(1, width=16).out_dim == 64
    assert ResNet(18).out_dim == 512 and ResNet(34, "imagenet").out_dim == 512
    assert MLP(10).out_dim == 256 and MLP(10, (), 7).out_dim == 7


def test_small_cnn_pools_once_on_8px_and_twice_on_28px() -> None:
    model = SmallCNN(1, width=8)
    seen: list[tuple[int, ...]] = []
    model.stage3.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
    model(torch.rand(2, 1, 8, 8))
    model(torch.rand(2, 1, 28, 28))
    model(torch.rand(2, 1, 32, 32))
    assert seen == [(4, 4), (7, 7), (8, 8)]


def test_small_cnn_float64() -> None:
    model = SmallCNN(1, width=8).double()
    out = model(torch.rand(3, 1, 8, 8, dtype=torch.float64))
    assert out.dtype == torch.float64 and out.shape == (3, 32)


@pytest.mark.parametrize(
    "model_and_input",
    [
        lambda: (SmallCNN(1, width=8), torch.rand(4, 1, 8, 8)),
        lambda: (ResNet(18, "cifar"), torch.rand(2, 3, 8, 8)),
        lambda: (ResNet(18, "imagenet", in_channels=1), torch.rand(2, 1, 16, 16)),
        lambda: (MLP(6, (16, 8), 4), torch.rand(5, 6)),
    ],
)
def test_gradients_reach_every_parameter(
    model_and_input: Callable[[], tuple[nn.Module, torch.Tensor]],
) -> None:
    model, x = model_and_input()
    model.train()
    model(x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_zero_init_residual() -> None:
    model = ResNet(18, zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    assert all(bool((block.bn2.weight == 0).all()) for block in blocks)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((10,), MLP),
        ((1, 8, 8), SmallCNN),
        ((1, 28, 28), SmallCNN),
        ((1, 32, 32), SmallCNN),
        ((3, 32, 32), ResNet),
        ((1, 64, 64), ResNet),
        ((3, 96, 96), ResNet),
    ],
)
def test_auto_choice(shape: tuple[int, ...], expected: type) -> None:
    model = build_backbone("auto", shape)
    assert isinstance(model, expected)
    if isinstance(model, ResNet):
        assert model.depth == 18
        assert model.stem_type == ("cifar" if max(shape[1:]) <= 64 else "imagenet")
        assert model.in_channels == shape[0]


def test_registry() -> None:
    names = available_backbones()
    assert names == sorted(BACKBONES)
    assert set(names) == {
        "small_cnn",
        "resnet18",
        "resnet34",
        "resnet18_imagenet",
        "resnet34_imagenet",
        "mlp",
    }
    resnet34 = build_backbone("resnet34", (3, 32, 32))
    assert isinstance(resnet34, ResNet) and resnet34.stem_type == "cifar"


def test_factory_errors() -> None:
    with pytest.raises(ConfigError, match="valid names: auto, mlp, resnet18"):
        build_backbone("vit", (3, 32, 32))
    with pytest.raises(ConfigError, match="mlp"):
        build_backbone("mlp", (3, 32, 32))
    with pytest.raises(ConfigError, match="small_cnn"):
        build_backbone("small_cnn", (20,))
    with pytest.raises(ConfigError, match="resnet18"):
        build_backbone("resnet18", (20,))
    with pytest.raises(ConfigError, match="input_shape"):
        build_backbone("auto", (3, 32))
    with pytest.raises(ConfigError, match="input_shape"):
        build_backbone("auto", (0,))


def test_constructor_errors() -> None:
    with pytest.raises(ConfigError, match="depth"):
        ResNet(50)
    with pytest.raises(ConfigError, match="stem"):
        ResNet(18, "tiny")
    with pytest.raises(ConfigError, match="in_channels"):
        SmallCNN(0)
    with pytest.raises(ConfigError, match="hidden_dims"):
        MLP(4, (8, 0))


def test_width_option() -> None:
    import torch

    from contraclust.errors import ConfigError
    from contraclust.models import build_backbone

    cnn = build_backbone("small_cnn", (1, 28, 28), width=16)
    assert cnn.out_dim == 64
    assert cnn(torch.zeros(2, 1, 28, 28)).shape == (2, 64)
    mlp = build_backbone("mlp", (10,), width=32)
    assert mlp(torch.zeros(3, 10)).shape == (3, mlp.out_dim)
    with pytest.raises(ConfigError, match="width applies to small_cnn and mlp"):
        build_backbone("resnet18", (3, 32, 32), width=8)
    with pytest.raises(ConfigError, match="width must be an integer >= 1"):
        build_backbone("small_cnn", (1, 8, 8), width=0)
