"""Tests of the corruptions used for distribution-shift evaluation."""

from __future__ import annotations

import itertools

import pytest
import torch

from contraclust.data.corruptions import (
    CORRUPTIONS,
    corrupt,
    gaussian_blur,
    gaussian_noise,
    reduce_contrast,
)
from contraclust.errors import ConfigError, DataError


def images(n: int = 6, channels: int = 3, side: int = 16) -> torch.Tensor:
    return torch.randint(
        0,
        256,
        (n, channels, side, side),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.uint8,
    )


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_input_untouched_and_stronger_with_severity(name: str) -> None:
    x = images()
    before = x.clone()
    outs = [corrupt(x, name, severity, seed=1) for severity in range(1, 6)]
    assert torch.equal(x, before)
    for out in outs:
        assert out.shape == x.shape and out.dtype == torch.uint8
    distances = [distance(out, x) for out in outs]
    assert distances[0] > 0
    assert all(a < b for a, b in itertools.pairwise(distances)), distances


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic(name: str) -> None:
    x = images()
    assert torch.equal(corrupt(x, name, 3, seed=5), corrupt(x, name, 3, seed=5))


def test_noise_depends_on_the_seed_and_has_the_stated_spread() -> None:
    x = torch.full((50, 1, 16, 16), 128, dtype=torch.uint8)
    a, b = gaussian_noise(x, 2, seed=0), gaussian_noise(x, 2, seed=1)
    assert not torch.equal(a, b)
    std = float(a.float().div(255).std())
    assert 0.07 < std < 0.09  # severity 2: 0.08 of the pixel range


def test_blur_keeps_flat_images_and_smooths_edges() -> None:
    flat = torch.full((2, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 5), flat)
    edge = torch.zeros((1, 1, 32, 32), dtype=torch.uint8)
    edge[..., 16:] = 255
    row = gaussian_blur(edge, 3)[0, 0, 10]
    assert row[0] == 0 and row[-1] == 255 and 0 < row[15] < 128 < row[16] < 255
    # the same relative blur at a larger size: sigma scales with the side above 32
    big = torch.nn.functional.interpolate(edge.float(), scale_factor=2).to(torch.uint8)
    big_row = gaussian_blur(big, 3)[0, 0, 20]
    spread, big_spread = (
        int(((row > 0) & (row < 255)).sum()),
        int(((big_row > 0) & (big_row < 255)).sum()),
    )
    assert 2 * spread - 2 <= big_spread <= 2 * spread + 2
    # below 32 pixels sigma stays in pixels, so small images are still blurred
    small = gaussian_blur(edge[..., 8:24, 8:24], 3)[0, 0, 3]
    assert small[7] == row[15]


def test_contrast_keeps_the_mean_and_shrinks_the_spread() -> None:
    x = images(channels=1)
    out = reduce_contrast(x, 5)
    assert torch.allclose(out.float().mean(dim=(2, 3)), x.float().mean(dim=(2, 3)), atol=1)
    ratio = out.float().std() / x.float().std()
    assert 0.05 < float(ratio) < 0.15  # severity 5: factor 0.1


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="severity must be 1 to 5"):
        corrupt(images(), "noise", 6)
    with pytest.raises(ConfigError, match="unknown corruption 'fog'"):
        corrupt(images(), "fog", 1)
    with pytest.raises(DataError, match="uint8 images"):
        corrupt(torch.zeros(3, 4), "blur", 1)
