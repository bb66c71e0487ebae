"""The batched augmentation's geometry and colour operations against kornia, as an oracle
written outside this project.

Each test applies one operation of ``contraclust.data.augment`` with fixed per-sample
parameters and the matching kornia operation with the same parameters. Where the
semantics match, the results agree to float precision. Intended differences, which
the tests avoid:

* Hue: ours rotates the YIQ chroma plane (luma is kept exactly); kornia, like
  torchvision, shifts the HSV hue. Only the kept luma is checked here.
* Shear along both axes at once: ours is the single map ``[[1, tan x], [tan y, 1]]``;
  kornia shears along x and then along y (an extra ``tan x tan y`` term), with
  tangents of the opposite sign. Shears along one axis are compared.
* Crop: ours resamples the crop from the whole image in one ``grid_sample`` call, so
  its edges blend with the pixels just outside the crop where a crop-then-resize
  would repeat the crop's edge. Crops halved in size sample no pixel outside, and
  are compared with a crop followed by kornia's resize.
* Brightness: ours multiplies (torchvision's rule), which is kornia's
  ``adjust_brightness_accumulative``, not its additive ``adjust_brightness``.
"""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from contraclust.data.augment import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_colour_matrix,
    compose_geometry,
    gaussian_blur,
    grey_matrix,
    rgb_to_grey,
    saturation_matrix,
    warp_affine,
)

B, H, W = 4, 20, 26  # not square, so an aspect-ratio mistake shows


def images(channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(B, channels, H, W, generator=torch.Generator().manual_seed(seed))


def geometry(
    angle: list[float] | None = None,
    scale: list[float] | None = None,
    translate: list[tuple[float, float]] | None = None,
    shear: list[tuple[float, float]] | None = None,
    flip: list[bool] | None = None,
    crop: tuple[torch.Tensor, torch.Tensor] | None = None,
    size: tuple[int, int] = (H, W),
) -> torch.Tensor:
    """Our sampling matrices for the given per-sample parameters (identity elsewhere)."""
    centre, extent = crop if crop is not None else (torch.zeros(B, 2), torch.ones(B, 2))
    return compose_geometry(
        crop_center=centre,
        crop_size=extent,
        flip=torch.tensor(flip or [False] * B),
        angle_deg=torch.tensor(angle or [0.0] * B),
        translate=torch.tensor(translate or [(0.0, 0.0)] * B),
        scale=torch.tensor(scale or [1.0] * B),
        shear_deg=torch.tensor(shear or [(0.0, 0.0)] * B),
        output_size=size,
    )


def pixel_centre() -> torch.Tensor:
    """The image centre in pixel-index coordinates, where both rotate and shear."""
    return torch.tensor([[(W - 1) / 2, (H - 1) / 2]]).expand(B, 2)


def kornia_warp(x: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """kornia's resampling through a forward pixel map (its pixel-centre convention)."""
    return kornia.geometry.transform.warp_affine(
        x, forward[:, :2], (H, W), mode="bilinear", padding_mode="zeros", align_corners=True
    )


# --------------------------------------------------------------------------- geometry


def test_rotation_scale_and_translation_match_kornia() -> None:
    angle = [-30.0, 10.0, 45.0, 90.0]
    scale = [1.0, 0.8, 1.25, 1.0]
    translate = [(0.0, 0.0), (0.1, -0.05), (-0.2, 0.15), (0.05, 0.0)]
    x = images()
    ours = warp_affine(x, geometry(angle=angle, scale=scale, translate=translate), (H, W))

    forward = kornia.geometry.transform.get_rotation_matrix2d(
        pixel_centre(), torch.tensor(angle), torch.tensor(scale)[:, None].expand(B, 2)
    )
    forward[:, :, 2] += torch.tensor(translate) * torch.tensor([W, H])  # fractions of the size
    torch.testing.assert_close(ours, kornia_warp(x, forward), atol=1e-4, rtol=0)


@pytest.mark.parametrize("axis", [0, 1], ids=["along-x", "along-y"])
def test_shear_along_one_axis_matches_kornia(axis: int) -> None:
    degrees = [-20.0, -5.0, 10.0, 25.0]
    shear = [(d, 0.0) if axis == 0 else (0.0, d) for d in degrees]
    x = images(seed=1)
    ours = warp_affine(x, geometry(shear=shear), (H, W))

    # kornia's shear tangents have the opposite sign (x' = x - tan(sx) * (y - cy))
    radians = -torch.deg2rad(torch.tensor(degrees))
    zero = torch.zeros(B)
    forward = kornia.geometry.transform.get_shear_matrix2d(
        pixel_centre(),
        sx=radians if axis == 0 else zero,
        sy=zero if axis == 0 else radians,
    )
    torch.testing.assert_close(ours, kornia_warp(x, forward), atol=1e-4, rtol=0)


def test_flip_matches_kornia() -> None:
    flip = [True, False, True, False]
    x = images(seed=2)
    ours = warp_affine(x, geometry(flip=flip), (H, W))
    mask = torch.tensor(flip).view(B, 1, 1, 1)
    expected = torch.where(mask, kornia.geometry.transform.hflip(x), x)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_crop_halved_in_size_matches_a_crop_then_kornia_resize() -> None:
    boxes = [(2, 4), (0, 0), (8, 10), (4, 6)]  # (top, left) of 12×16 crops
    h, w, out_h, out_w = 12, 16, 6, 8  # halved: every sample lies inside its crop
    x = images(seed=3)
    centre = torch.tensor(
        [[2 * (left + w / 2) / W - 1, 2 * (top + h / 2) / H - 1] for top, left in boxes]
    )
    extent = torch.tensor([[w / W, h / H]]).expand(B, 2)
    ours = warp_affine(x, geometry(crop=(centre, extent), size=(out_h, out_w)), (out_h, out_w))

    crops = torch.stack(
        [x[i, :, top : top + h, left : left + w] for i, (top, left) in enumerate(boxes)]
    )
    expected = kornia.geometry.transform.resize(
        crops, (out_h, out_w), interpolation="bilinear", align_corners=False
    )
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- colour


def factors() -> torch.Tensor:
    return torch.tensor([0.0, 0.6, 1.0, 1.7])


def test_greyscale_matches_kornia() -> None:
    x = images()
    torch.testing.assert_close(rgb_to_grey(x), kornia.color.rgb_to_grayscale(x))
    fused = apply_colour_matrix(x, grey_matrix(B, x.device, x.dtype))
    expected = kornia.color.rgb_to_grayscale(x).expand(-1, 3, -1, -1)
    torch.testing.assert_close(fused, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_brightness_matches_kornia_multiplicative_rule(channels: int) -> None:
    x = images(channels)
    expected = kornia.enhance.adjust_brightness_accumulative(x, factors())
    torch.testing.assert_close(adjust_brightness(x.clone(), factors()), expected)


@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_matches_kornia_blend_with_mean_grey(channels: int) -> None:
    x = images(channels, seed=4)
    expected = kornia.enhance.adjust_contrast_with_mean_subtraction(x, factors())
    torch.testing.assert_close(adjust_contrast(x.clone(), factors()), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_saturation_matches_kornia_blend_with_grey(channels: int) -> None:
    x = images(channels, seed=5)
    expected = kornia.enhance.adjust_saturation_with_gray_subtraction(x, factors())
    torch.testing.assert_close(adjust_saturation(x.clone(), factors()), expected, atol=1e-6, rtol=0)


def test_fused_saturation_then_greyscale_matches_kornia_in_sequence() -> None:
    """Inside the gamut the single fused matrix equals the steps applied one by one."""
    x = 0.25 + 0.5 * images(seed=6)  # factors <= 1 keep every step inside [0, 1]
    f = torch.tensor([0.0, 0.3, 0.7, 1.0])
    fused = apply_colour_matrix(x, grey_matrix(B, x.device, x.dtype) @ saturation_matrix(f))
    stepwise = kornia.enhance.adjust_saturation_with_gray_subtraction(x, f)
    stepwise = kornia.color.rgb_to_grayscale(stepwise).expand(-1, 3, -1, -1)
    torch.testing.assert_close(fused, stepwise, atol=1e-6, rtol=0)


def test_hue_rotation_keeps_kornia_greyscale() -> None:
    """Our hue turns the chroma plane (not kornia's HSV shift); the luma stays put."""
    x = 0.4 + 0.2 * images(seed=7)  # near grey: a turn of the chroma stays in gamut
    hue = torch.tensor([-0.5, -0.1, 0.2, 0.45])
    shifted = adjust_hue(x.clone(), hue)
    assert not torch.allclose(shifted, x, atol=1e-3)
    torch.testing.assert_close(
        kornia.color.rgb_to_grayscale(shifted), kornia.color.rgb_to_grayscale(x), atol=1e-5, rtol=0
    )


# --------------------------------------------------------------------------- blur


def test_gaussian_blur_matches_kornia_per_sample_sigma() -> None:
    x = images(seed=8)
    sigma = torch.tensor([0.5, 1.0, 1.7, 2.5])
    radius = 4
    ours = gaussian_blur(x, sigma, radius)
    expected = kornia.filters.gaussian_blur2d(
        x, (2 * radius + 1, 2 * radius + 1), sigma[:, None].expand(B, 2), border_type="reflect"
    )
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    assert not math.isclose(float((ours - x).abs().max()), 0.0)
