"""Feature extractors: a batch in, ``(B, out_dim)`` features out.

Every backbone is a plain :class:`torch.nn.Module` with an ``out_dim`` attribute
giving the width of its features (after global pooling for CNNs). They are
written from scratch and depend on nothing but PyTorch.

- :class:`SmallCNN` - a few conv-BN-ReLU blocks for small grey images (8-32 px).
- :class:`ResNet` - ResNet-18/34 built from basic blocks, with the CIFAR stem
  (3x3 convolution, stride 1, no max-pool) or the ImageNet stem (7x7 stride 2 and
  max-pool).
- :class:`MLP` - Linear-BN-ReLU layers for feature vectors.

:func:`build_backbone` picks one by name, or by the input shape with ``"auto"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from contraclust.checks import check_int
from contraclust.errors import ConfigError

__all__ = [
    "BACKBONES",
    "MLP",
    "BasicBlock",
    "ResNet",
    "SmallCNN",
    "available_backbones",
    "build_backbone",
]

_STEMS = ("cifar", "imagenet")
# Blocks per stage of the two basic-block ResNets (He et al. 2016, table 1).
_RESNET_STAGES: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """A compact CNN for small images such as digits (8 to 32 px, any channels).

    Three stages: two 3x3 conv-BN-ReLU blocks at ``width`` channels, a 2x2
    max-pool, two blocks at ``2 * width``, a second max-pool only when the map is
    still at least 8 px on its short side, one block at ``4 * width``, then
    global average pooling. So 28 px goes 28 -> 14 -> 7, 32 px 32 -> 16 -> 8 and
    the 8 px sklearn digits 8 -> 4 with no second pool. Any input of at least
    2 px works.

    Args:
        in_channels: channels of the input images.
        width: channels of the first stage; ``out_dim = 4 * width``.
    """

    def __init__(self, in_channels: int, width: int = 64) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("width", width)
        self.in_channels = in_channels
        self.out_dim = 4 * width
        self.stage1 = nn.Sequential(_conv_bn_relu(in_channels, width), _conv_bn_relu(width, width))
        self.stage2 = nn.Sequential(
            _conv_bn_relu(width, 2 * width), _conv_bn_relu(2 * width, 2 * width)
        )
        self.stage3 = _conv_bn_relu(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.stage1(x))
        x = self.stage2(x)
        if min(x.shape[-2:]) >= 8:
            x = self.pool(x)
        x = self.stage3(x)
        return torch.flatten(self.global_pool(x), 1)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18 or ResNet-34 (He et al. 2016) without the classifier.

    Args:
        depth: 18 or 34.
        stem: ``"cifar"`` - a 3x3 convolution with stride 1 and no max-pool, for
            images of 32-64 px; ``"imagenet"`` - a 7x7 convolution with stride 2
            followed by a 3x3 max-pool with stride 2, for larger images.
        in_channels: channels of the input images.
        zero_init_residual: start each block's last BN at zero scale so blocks
            begin as identities (Goyal et al. 2017); off by default.

    The output is the globally average-pooled last stage, ``out_dim = 512``.
    """

    def __init__(
        self,
        depth: int = 18,
        stem: str = "cifar",
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if depth not in _RESNET_STAGES:
            raise ConfigError(f"depth must be one of {sorted(_RESNET_STAGES)}, got {depth!r}")
        if stem not in _STEMS:
            raise ConfigError(f"stem must be one of {', '.join(_STEMS)}, got {stem!r}")
        check_int("in_channels", in_channels)
        self.depth = depth
        self.stem_type = stem
        self.in_channels = in_channels
        if stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        widths = (64, 128, 256, 512)
        stages: list[nn.Module] = []
        channels = 64
        for index, (width, blocks) in enumerate(zip(widths, _RESNET_STAGES[depth], strict=True)):
            stride = 1 if index == 0 else 2
            layers: list[nn.Module] = []
            for block in range(blocks):
                layers.append(BasicBlock(channels, width, stride if block == 0 else 1))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 512
        _init_weights(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.global_pool(x), 1)


class MLP(nn.Module):
    """Fully connected backbone for feature vectors.

    ``Linear-BN-ReLU`` for each entry of ``hidden_dims``, then a final plain
    ``Linear`` to ``out_dim`` (no activation, so the embedding can take any
    sign, as in DEC's encoder). Inputs with more than two dimensions are
    flattened after the batch dimension.

    Args:
        in_dim: input features.
        hidden_dims: widths of the hidden layers (may be empty).
        out_dim: width of the output features.
    """

    def __init__(
        self, in_dim: int, hidden_dims: Sequence[int] = (512, 512), out_dim: int = 256
    ) -> None:
        super().__init__()
        check_int("in_dim", in_dim)
        check_int("out_dim", out_dim)
        for width in hidden_dims:
            check_int("hidden_dims entries", width)
        self.in_dim = in_dim
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        previous = in_dim
        for width in hidden_dims:
            layers += [nn.Linear(previous, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            previous = width
        layers.append(nn.Linear(previous, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.flatten(x, 1))


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------- factory


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(
            f"backbone {name!r} needs images of shape (C, H, W), got input_shape "
            f"{tuple(input_shape)!r}; use 'mlp' (or 'auto') for vectors"
        )
    c, h, w = input_shape
    return c, h, w


def _vector_dim(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1:
        raise ConfigError(
            f"backbone {name!r} needs vectors of shape (D,), got input_shape "
            f"{tuple(input_shape)!r}; use a CNN backbone (or 'auto') for images"
        )
    return input_shape[0]


def _resnet_builder(depth: int, stem: str) -> Callable[[tuple[int, ...], int | None], nn.Module]:
    name = f"resnet{depth}" + ("_imagenet" if stem == "imagenet" else "")

    def build(input_shape: tuple[int, ...], width: int | None = None) -> nn.Module:
        c, _, _ = _image_shape(name, input_shape)
        if width is not None:
            raise ConfigError(f"model.width applies to small_cnn and mlp, not to {name}")
        return ResNet(depth=depth, stem=stem, in_channels=c)

    return build


def _small_cnn(input_shape: tuple[int, ...], width: int | None = None) -> nn.Module:
    c, _, _ = _image_shape("small_cnn", input_shape)
    return SmallCNN(in_channels=c, width=width or 64)


def _mlp(input_shape: tuple[int, ...], width: int | None = None) -> nn.Module:
    dim = _vector_dim("mlp", input_shape)
    if width is None:
        return MLP(in_dim=dim)
    return MLP(in_dim=dim, hidden_dims=(width, width), out_dim=width // 2 or 1)


BACKBONES: dict[str, Callable[[tuple[int, ...], int | None], nn.Module]] = {
    "small_cnn": _small_cnn,
    "resnet18": _resnet_builder(18, "cifar"),
    "resnet34": _resnet_builder(34, "cifar"),
    "resnet18_imagenet": _resnet_builder(18, "imagenet"),
    "resnet34_imagenet": _resnet_builder(34, "imagenet"),
    "mlp": _mlp,
}
"""Backbone builders by name; each takes the input shape without the batch."""


def available_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone` besides ``"auto"``."""
    return sorted(BACKBONES)


def resolve_backbone_name(name: str, input_shape: tuple[int, ...]) -> str:
    """The backbone ``"auto"`` stands for with inputs of this shape; other names pass through."""
    return _auto_backbone(tuple(input_shape)) if name == "auto" else name


def _auto_backbone(input_shape: tuple[int, ...]) -> str:
    if len(input_shape) == 1:
        return "mlp"
    c, h, w = input_shape
    side = max(h, w)
    if side <= 32 and c == 1:
        return "small_cnn"
    return "resnet18" if side <= 64 else "resnet18_imagenet"


def build_backbone(name: str, input_shape: tuple[int, ...], width: int | None = None) -> nn.Module:
    """Build a backbone by name for inputs of ``input_shape`` (no batch dimension).

    ``width`` (None: the backbone's default) sets the first-stage channels of
    ``small_cnn`` (output ``4 * width``) or the hidden size of ``mlp``.

    ``"auto"`` chooses from the shape: vectors ``(D,)`` -> ``"mlp"``; one-channel
    images up to 32 px -> ``"small_cnn"``; other images up to 64 px ->
    ``"resnet18"`` (CIFAR stem); larger -> ``"resnet18_imagenet"``.

    Raises:
        ConfigError: unknown name, a shape that is neither ``(D,)`` nor
            ``(C, H, W)``, or a backbone for the other kind of input.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (1, 3) or any(s < 1 for s in shape):
        raise ConfigError(
            "input_shape must be (D,) for vectors or (C, H, W) for images with positive "
            f"sizes, got {tuple(input_shape)!r}"
        )
    name = resolve_backbone_name(name, shape)
    if name not in BACKBONES:
        valid = ", ".join(["auto", *available_backbones()])
        raise ConfigError(f"unknown backbone {name!r}; valid names: {valid}")
    if width is not None:
        check_int("width", width)
    return BACKBONES[name](shape, width)
