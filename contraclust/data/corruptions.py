"""Corrupted copies of image sets, for distribution-shift evaluation.

ConCURL's extended protocol scores a model trained on clean images on copies that are
noisier, blurrier or flatter than what it saw. Each corruption here is a pure
function of a ``uint8`` ``(N, C, H, W)`` tensor, a severity from 1 (mild) to 5
(strong) and, for the random one, a seed: the same call always gives the same copy,
and the input is never modified.

The severity scales are this library's own, chosen so that level 5 is still
recognisable on 28×28 digits and 32×32 photos:

============  =======================================================================
``noise``     additive Gaussian noise, standard deviation 0.04, 0.08, 0.12, 0.18, 0.26
              of the pixel range
``blur``      Gaussian blur, sigma 0.4, 0.7, 1.0, 1.5, 2.0 pixels up to a 32-pixel side,
              scaled with the side above it (so it blurs the same fraction of a large
              image; smaller images keep the pixel values, below which blur vanishes)
``contrast``  each image and channel pulled towards its mean: factor 0.7, 0.5, 0.35,
              0.2, 0.1
============  =======================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from contraclust.errors import ConfigError, DataError

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "corrupt",
    "gaussian_blur",
    "gaussian_noise",
    "reduce_contrast",
]

SEVERITIES = (1, 2, 3, 4, 5)
_NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)
_BLUR_SIGMA_AT_32 = (0.4, 0.7, 1.0, 1.5, 2.0)
_CONTRAST_FACTOR = (0.7, 0.5, 0.35, 0.2, 0.1)
_CHUNK = 1024


def _check(images: Tensor, severity: int) -> None:
    if severity not in SEVERITIES:
        raise ConfigError(f"severity must be 1 to 5, got {severity}")
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise DataError(
            f"corruptions apply to uint8 images (N, C, H, W), not {images.dtype} data of "
            f"shape {tuple(images.shape)}"
        )


def _to_uint8(x: Tensor) -> Tensor:
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def gaussian_noise(images: Tensor, severity: int, seed: int = 0) -> Tensor:
    """Add Gaussian noise; the noise is drawn from a generator seeded with ``seed``."""
    _check(images, severity)
    std = _NOISE_STD[severity - 1]
    generator = torch.Generator().manual_seed(seed)
    out = torch.empty_like(images)
    for start in range(0, len(images), _CHUNK):
        x = images[start : start + _CHUNK].float().div(255.0)
        noise = torch.randn(x.shape, generator=generator) * std
        out[start : start + _CHUNK] = _to_uint8(x + noise)
    return out


def _gaussian_kernel(sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: Tensor, severity: int) -> Tensor:
    """Blur with a separable Gaussian; the edges are extended by replication."""
    _check(images, severity)
    side = max(int(images.shape[2]), int(images.shape[3]))
    kernel = _gaussian_kernel(_BLUR_SIGMA_AT_32[severity - 1] * max(1.0, side / 32))
    radius = len(kernel) // 2
    channels = int(images.shape[1])
    rows = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    cols = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = torch.empty_like(images)
    for start in range(0, len(images), _CHUNK):
        x = images[start : start + _CHUNK].float().div(255.0)
        x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), rows, groups=channels)
        x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), cols, groups=channels)
        out[start : start + _CHUNK] = _to_uint8(x)
    return out


def reduce_contrast(images: Tensor, severity: int) -> Tensor:
    """Pull every pixel towards its image's per-channel mean."""
    _check(images, severity)
    factor = _CONTRAST_FACTOR[severity - 1]
    out = torch.empty_like(images)
    for start in range(0, len(images), _CHUNK):
        x = images[start : start + _CHUNK].float().div(255.0)
        mean = x.mean(dim=(2, 3), keepdim=True)
        out[start : start + _CHUNK] = _to_uint8(mean + (x - mean) * factor)
    return out


_CORRUPTIONS: dict[str, Callable[[Tensor, int, int], Tensor]] = {
    "noise": gaussian_noise,
    "blur": lambda images, severity, seed: gaussian_blur(images, severity),
    "contrast": lambda images, severity, seed: reduce_contrast(images, severity),
}
#: The corruption names :func:`corrupt` accepts.
CORRUPTIONS = tuple(_CORRUPTIONS)


def corrupt(images: Tensor, name: str, severity: int, seed: int = 0) -> Tensor:
    """The corrupted copy of ``images``: ``name`` in :data:`CORRUPTIONS`, severity 1..5.

    Example:
        >>> x = torch.full((2, 1, 8, 8), 200, dtype=torch.uint8)
        >>> corrupt(x, "contrast", 5).equal(x)  # a flat image has no contrast to lose
        True
    """
    if name not in _CORRUPTIONS:
        raise ConfigError(f"unknown corruption '{name}'; valid: {', '.join(CORRUPTIONS)}")
    return _CORRUPTIONS[name](images, severity, seed)
