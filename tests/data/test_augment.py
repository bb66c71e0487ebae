from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from contraclust.data.augment import (
    ImageAugmentation,
    ImageAugmentationConfig,
    NoAugmentation,
    VectorAugmentation,
    adjust_hue,
    adjust_saturation,
    build_augmentation,
    compose_geometry,
    gaussian_blur,
    grey_augmentation,
    rgb_to_grey,
    simclr_augmentation,
    vector_augmentation,
    warp_affine,
)
from contraclust.errors import ConfigError, DataError

# Scale 1 with a ratio range containing the image shape: the crop is the whole image.
IDENTITY = {"crop_scale": (1.0, 1.0), "crop_ratio": (0.1, 10.0)}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def geometry(
    b: int,
    *,
    center: tuple[float, float] = (0.0, 0.0),
    size: tuple[float, float] = (1.0, 1.0),
    flip: bool = False,
    angle: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    shear: tuple[float, float] = (0.0, 0.0),
    output_size: tuple[int, int],
) -> torch.Tensor:
    """compose_geometry with the same parameters for every sample."""
    return compose_geometry(
        torch.tensor([center] * b),
        torch.tensor([size] * b),
        torch.full((b,), flip),
        torch.full((b,), angle),
        torch.tensor([translate] * b),
        torch.full((b,), scale),
        torch.tensor([shear] * b),
        output_size,
    )


# ----------------------------------------------------------------- shapes, dtypes


@pytest.mark.parametrize("size", [8, 16, 28, 32, 96])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", ["simclr", "grey"])
def test_presets_keep_shape_dtype_and_range(preset: str, channels: int, size: int) -> None:
    aug = build_augmentation(preset, "image", (channels, size, size))
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(6, channels, size, size, generator=gen(0)).to(dtype)
        y = aug(x, generator=gen(1))
        assert y.shape == x.shape
        assert y.dtype == dtype
        assert y.device == x.device
        assert y.min() >= 0.0 and y.max() <= 1.0
        assert torch.isfinite(y).all()


def test_output_size_resizes_non_square_input() -> None:
    aug = ImageAugmentation(crop_scale=(0.5, 1.0), output_size=16)
    y = aug(torch.rand(3, 3, 20, 30), generator=gen(0))
    assert y.shape == (3, 3, 16, 16)


def test_float64_and_float32_draw_the_same_parameters() -> None:
    aug = simclr_augmentation(32, 3)
    x = torch.rand(4, 3, 32, 32, generator=gen(0), dtype=torch.float64)
    y64 = aug(x, generator=gen(5))
    y32 = aug(x.float(), generator=gen(5))
    torch.testing.assert_close(y32.double(), y64, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("preset", ["simclr", "grey"])
def test_same_seed_same_output_different_seed_different(preset: str) -> None:
    aug = build_augmentation(preset, "image", (3, 32, 32))
    x = torch.rand(8, 3, 32, 32, generator=gen(0))
    a = aug(x, generator=gen(123))
    b = aug(x, generator=gen(123))
    c = aug(x, generator=gen(124))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_global_rng_used_without_generator() -> None:
    aug = simclr_augmentation(32, 3)
    x = torch.rand(4, 3, 32, 32, generator=gen(0))
    torch.manual_seed(7)
    a = aug(x)
    torch.manual_seed(7)
    b = aug(x)
    assert torch.equal(a, b)


def test_samples_in_a_batch_get_different_parameters() -> None:
    aug = simclr_augmentation(32, 3)
    params = aug.sample_params(16, 3, 32, 32, generator=gen(0))
    assert params.theta is not None
    flat = params.theta.reshape(16, -1)
    assert torch.cdist(flat, flat).add(torch.eye(16)).min() > 0
    assert params.brightness is not None and params.brightness.unique().numel() == 16
    # The same image repeated gives a different view in every slot.
    x = torch.rand(1, 3, 32, 32, generator=gen(1)).expand(16, -1, -1, -1).contiguous()
    y = aug(x, generator=gen(2)).reshape(16, -1)
    assert torch.cdist(y, y).add(torch.eye(16)).min() > 1e-3


def test_skipped_stages_draw_no_random_numbers() -> None:
    aug = ImageAugmentation(**IDENTITY)
    g = gen(3)
    state = g.get_state()
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(aug(x, generator=g), x)
    assert torch.equal(g.get_state(), state)


# ------------------------------------------------------------ geometry conventions


@pytest.mark.parametrize("shape", [(16, 16), (12, 20), (8, 8)])
def test_identity_geometry_reproduces_input(shape: tuple[int, int]) -> None:
    h, w = shape
    aug = ImageAugmentation(crop_scale=(1.0, 1.0), crop_ratio=(0.1, 10.0))
    x = torch.rand(3, 3, h, w, generator=gen(0))
    assert aug.geometry_is_identity(h, w)
    params = aug.sample_params(3, 3, h, w, generator=gen(1), force_geometry=True)
    assert params.theta is not None
    torch.testing.assert_close(params.theta, torch.eye(2, 3).expand(3, 2, 3))
    torch.testing.assert_close(aug.apply(x, params), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(aug(x, generator=gen(1)), x, atol=1e-5, rtol=0)


def test_all_probabilities_zero_with_identity_ranges_is_identity() -> None:
    config = ImageAugmentationConfig(
        **IDENTITY, jitter_p=0.0, brightness=0.4, grey_p=0.0, blur_p=0.0, hflip_p=0.0
    )
    aug = ImageAugmentation(config)
    x = torch.rand(4, 3, 32, 32, generator=gen(0))
    params = aug.sample_params(4, 3, 32, 32, generator=gen(0), force_geometry=True)
    torch.testing.assert_close(aug.apply(x, params), x, atol=1e-5, rtol=0)


def test_pure_horizontal_flip() -> None:
    aug = ImageAugmentation(**IDENTITY, hflip_p=1.0)
    x = torch.rand(4, 3, 16, 24, generator=gen(0))
    torch.testing.assert_close(aug(x, generator=gen(1)), x.flip(-1), atol=1e-5, rtol=0)


def test_rotation_is_counter_clockwise_and_respects_aspect() -> None:
    x = torch.rand(2, 1, 16, 16, generator=gen(0))
    theta = geometry(2, angle=90.0, output_size=(16, 16))
    expected = torch.rot90(x, 1, dims=(-2, -1))
    torch.testing.assert_close(warp_affine(x, theta, (16, 16)), expected, atol=1e-5, rtol=0)
    # 180 degrees on a non-square image is a flip of both axes.
    x = torch.rand(2, 3, 12, 20, generator=gen(1))
    theta = geometry(2, angle=180.0, output_size=(12, 20))
    torch.testing.assert_close(warp_affine(x, theta, (12, 20)), x.flip(-1, -2), atol=1e-5, rtol=0)


def test_translation_moves_content_right_and_down_with_zero_padding() -> None:
    x = torch.rand(1, 1, 16, 16, generator=gen(0))
    theta = geometry(1, translate=(0.25, 0.125), output_size=(16, 16))
    y = warp_affine(x, theta, (16, 16))
    torch.testing.assert_close(y[..., 2:, 4:], x[..., :-2, :-4], atol=1e-5, rtol=0)
    assert y[..., :2, :].abs().max() < 1e-6 and y[..., :, :4].abs().max() < 1e-6


def test_scale_two_zooms_into_the_centre() -> None:
    x = torch.rand(1, 1, 16, 16, generator=gen(0))
    zoom = warp_affine(x, geometry(1, scale=2.0, output_size=(16, 16)), (16, 16))
    crop = warp_affine(x, geometry(1, size=(0.5, 0.5), output_size=(16, 16)), (16, 16))
    torch.testing.assert_close(zoom, crop, atol=1e-5, rtol=0)


def test_crop_of_top_left_quarter_matches_bilinear_resize() -> None:
    x = torch.rand(2, 3, 32, 32, generator=gen(0))
    theta = geometry(2, center=(-0.5, -0.5), size=(0.5, 0.5), output_size=(24, 24))
    # Border padding clamps at the top-left edge as the resize does; the last row and
    # column read one pixel past the quarter, where the resize clamps instead.
    y = warp_affine(x, theta, (24, 24), padding_mode="border")
    expected = F.interpolate(x[..., :16, :16], size=(24, 24), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[..., :-1, :-1], expected[..., :-1, :-1], atol=1e-5, rtol=0)
    assert (y - expected).abs().mean() < 0.02


def crop_of(aug: ImageAugmentation, b: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre, size) of sampled crops; with only a crop, theta is diag(size) | centre."""
    params = aug.sample_params(b, 3, h, w, generator=gen(0), force_geometry=True)
    assert params.theta is not None
    theta = params.theta
    assert torch.equal(theta[:, 0, 1], torch.zeros(b)) and torch.equal(
        theta[:, 1, 0], torch.zeros(b)
    )
    return theta[:, :, 2], torch.stack([theta[:, 0, 0], theta[:, 1, 1]], dim=1)


def test_sampled_crops_stay_inside_and_respect_ranges() -> None:
    aug = ImageAugmentation(crop_scale=(0.2, 0.6), crop_ratio=(0.5, 2.0))
    h, w = 24, 40
    center, size = crop_of(aug, 512, h, w)
    assert ((center.abs() + size) <= 1.0 + 1e-6).all()
    area = size.prod(dim=1)
    ratio = size[:, 0] * w / (size[:, 1] * h)
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 0.6 + 1e-5
    assert ratio.min() >= 0.5 - 1e-4 and ratio.max() <= 2.0 + 1e-4
    assert area.std() > 0.05 and center.std(dim=0).min() > 0.1


def test_crop_fallback_is_largest_centred_crop() -> None:
    # scale 1 with a ratio range excluding the image's 2:1 shape -> centred 4:3 crop.
    aug = ImageAugmentation(crop_scale=(1.0, 1.0), crop_ratio=(0.75, 4.0 / 3.0))
    assert not aug.geometry_is_identity(10, 20)
    center, size = crop_of(aug, 3, 10, 20)
    torch.testing.assert_close(center, torch.zeros(3, 2))
    torch.testing.assert_close(size, torch.tensor([[2.0 / 3.0, 1.0]] * 3))


def test_grey_preset_never_flips() -> None:
    assert grey_augmentation(28).config.hflip_p == 0.0
    x = torch.zeros(64, 1, 28, 28)
    x[..., 6:22, 3:9] = 1.0  # a bar in the left part of the image
    y = grey_augmentation(28)(x, generator=gen(0))
    left, right = y[..., :14].sum(dim=(1, 2, 3)), y[..., 14:].sum(dim=(1, 2, 3))
    assert (left > right).all()
    # The SimCLR preset does flip about half of the samples.
    x3 = x.expand(-1, 3, -1, -1).contiguous()
    y3 = simclr_augmentation(28, 3)(x3, generator=gen(0))
    flipped = (y3[..., 14:].sum(dim=(1, 2, 3)) > y3[..., :14].sum(dim=(1, 2, 3))).float()
    assert 0.2 < flipped.mean() < 0.8


# ------------------------------------------------------------------ colour, blur


def test_brightness_only_scales_each_sample_by_its_factor() -> None:
    aug = ImageAugmentation(**IDENTITY, jitter_p=1.0, brightness=0.5)
    x = torch.rand(5, 3, 8, 8, generator=gen(0))
    params = aug.sample_params(5, 3, 8, 8, generator=gen(1))
    assert params.brightness is not None
    expected = (x * params.brightness.view(5, 1, 1, 1)).clamp(0, 1)
    torch.testing.assert_close(aug.apply(x, params), expected)


def test_jitter_probability_selects_samples() -> None:
    aug = ImageAugmentation(**IDENTITY, jitter_p=0.5, brightness=0.5, contrast=0.5)
    x = torch.rand(200, 1, 4, 4, generator=gen(0))
    params = aug.sample_params(200, 1, 4, 4, generator=gen(1))
    y = aug.apply(x, params)
    assert params.jitter is not None
    untouched = ~params.jitter
    assert torch.equal(y[untouched], x[untouched])
    assert 60 < int(params.jitter.sum()) < 140


def test_colour_only_ops_are_no_ops_on_one_channel() -> None:
    aug = ImageAugmentation(**IDENTITY, jitter_p=1.0, saturation=0.8, hue=0.4, grey_p=1.0)
    x = torch.rand(4, 1, 16, 16, generator=gen(0))
    assert torch.equal(aug(x, generator=gen(1)), x)


def test_greyscale_makes_channels_equal() -> None:
    aug = ImageAugmentation(**IDENTITY, grey_p=1.0)
    x = torch.rand(4, 3, 8, 8, generator=gen(0))
    y = aug(x, generator=gen(1))
    torch.testing.assert_close(y, rgb_to_grey(x).expand_as(x))


def test_hue_rotation_keeps_luma_and_greys() -> None:
    x = 0.4 + 0.2 * torch.rand(4, 3, 8, 8, generator=gen(0))
    hue = torch.tensor([0.05, -0.05, 0.02, 0.0])
    y = adjust_hue(x.clone(), hue)
    torch.testing.assert_close(rgb_to_grey(y), rgb_to_grey(x), atol=1e-5, rtol=0)
    assert not torch.allclose(y[0], x[0])
    torch.testing.assert_close(y[3], x[3], atol=1e-5, rtol=0)
    grey = torch.rand(2, 1, 8, 8, generator=gen(1)).expand(-1, 3, -1, -1)
    torch.testing.assert_close(adjust_hue(grey.clone(), hue[:2]), grey, atol=1e-5, rtol=0)


def test_fused_colour_matrix_matches_step_by_step_ops() -> None:
    aug = ImageAugmentation(
        **IDENTITY, jitter_p=0.7, saturation=0.3, hue=0.05, brightness=0.1, grey_p=0.5
    )
    # Mid-range colours, so no intermediate value leaves [0, 1].
    x = 0.4 + 0.2 * torch.rand(32, 3, 6, 6, generator=gen(0))
    params = aug.sample_params(32, 3, 6, 6, generator=gen(1))
    assert params.jitter is not None and params.grey is not None
    assert params.brightness is not None and params.saturation is not None
    assert params.hue is not None
    expected = adjust_saturation(x * params.brightness.view(-1, 1, 1, 1), params.saturation)
    expected = adjust_hue(expected, params.hue)
    expected = torch.where(params.jitter.view(-1, 1, 1, 1), expected, x)
    expected = torch.where(params.grey.view(-1, 1, 1, 1), rgb_to_grey(expected), expected)
    torch.testing.assert_close(aug.apply(x, params), expected.expand_as(x), atol=1e-5, rtol=0)


def test_saturation_zero_gives_grey() -> None:
    aug = ImageAugmentation(**IDENTITY, jitter_p=1.0, saturation=1.0)
    x = torch.rand(64, 3, 4, 4, generator=gen(0))
    params = aug.sample_params(64, 3, 4, 4, generator=gen(1))
    assert params.saturation is not None
    y = aug.apply(x, params)
    spread = (y.amax(dim=1) - y.amin(dim=1)).mean(dim=(1, 2))
    # Spread between channels shrinks where the factor is below 1.
    low = params.saturation < 0.5
    high = params.saturation > 1.5
    assert spread[low].mean() < spread[high].mean()


def high_frequency_energy(x: torch.Tensor) -> torch.Tensor:
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return dx.pow(2).mean(dim=(1, 2, 3)) + dy.pow(2).mean(dim=(1, 2, 3))


def test_blur_reduces_high_frequency_energy() -> None:
    aug = ImageAugmentation(**IDENTITY, blur_p=1.0, blur_sigma=(0.8, 2.0))
    x = torch.rand(8, 3, 32, 32, generator=gen(0))
    y = aug(x, generator=gen(1))
    assert (high_frequency_energy(y) < 0.5 * high_frequency_energy(x)).all()
    assert y.min() >= 0 and y.max() <= 1
    # Per-sample sigma: larger sigma, smoother image.
    params = aug.sample_params(8, 3, 32, 32, generator=gen(1))
    assert params.blur_sigma is not None
    order = params.blur_sigma.argsort()
    energy = high_frequency_energy(aug.apply(x, params))[order]
    assert energy[0] > energy[-1]


def test_blur_keeps_constant_images_and_zero_sigma_is_identity() -> None:
    x = torch.full((2, 3, 10, 10), 0.3)
    torch.testing.assert_close(gaussian_blur(x, torch.tensor([1.0, 2.0]), radius=6), x)
    x = torch.rand(2, 1, 10, 10, generator=gen(0))
    torch.testing.assert_close(gaussian_blur(x, torch.zeros(2), radius=3), x)


@settings(max_examples=25, deadline=None)
@given(
    rotation=st.floats(0.0, 180.0),
    scale=st.floats(0.5, 2.0),
    strength=st.floats(0.0, 2.0),
    hue=st.floats(0.0, 0.5),
    padding=st.sampled_from(["zeros", "border", "reflection"]),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**31 - 1),
)
def test_outputs_stay_in_unit_range(
    rotation: float,
    scale: float,
    strength: float,
    hue: float,
    padding: str,
    channels: int,
    seed: int,
) -> None:
    aug = ImageAugmentation(
        crop_scale=(0.1, 1.0),
        hflip_p=0.5,
        rotation_deg=rotation,
        translate=0.3,
        scale_range=(min(scale, 1.0), max(scale, 1.0)),
        shear_deg=30.0,
        padding_mode=padding,
        jitter_p=0.9,
        brightness=strength,
        contrast=strength,
        saturation=strength,
        hue=hue,
        grey_p=0.3,
        blur_p=0.5,
        output_size=12,
    )
    x = torch.rand(4, channels, 10, 14, generator=gen(seed % 1000))
    y = aug(x, generator=gen(seed))
    assert y.shape == (4, channels, 12, 12)
    assert y.min() >= 0.0 and y.max() <= 1.0


# ----------------------------------------------------------------------- vectors


def test_vector_augmentation_shape_dtype_and_reproducibility() -> None:
    aug = vector_augmentation(32)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(16, 32, generator=gen(0), dtype=dtype)
        a = aug(x, generator=gen(1))
        assert a.shape == x.shape and a.dtype == dtype
        assert torch.equal(a, aug(x, generator=gen(1)))
        assert not torch.allclose(a, aug(x, generator=gen(2)))


def test_vector_noise_follows_feature_scale() -> None:
    aug = VectorAugmentation(noise_std=0.1)
    x = torch.randn(4096, 2, generator=gen(0)) * torch.tensor([1.0, 1000.0])
    noise = aug(x, generator=gen(1)) - x
    std = noise.std(dim=0)
    assert math.isclose(float(std[0]), 0.1, rel_tol=0.1)
    assert math.isclose(float(std[1]), 100.0, rel_tol=0.1)


def test_vector_dropout_and_scaling() -> None:
    x = torch.rand(1000, 50, generator=gen(0)) + 1.0
    y = VectorAugmentation(noise_std=0.0, dropout_p=0.2)(x, generator=gen(1))
    assert math.isclose(float((y == 0).float().mean()), 0.2, abs_tol=0.02)
    assert torch.equal(y[y != 0], x[y != 0])
    y = VectorAugmentation(noise_std=0.0, scale_range=(0.5, 2.0))(x, generator=gen(1))
    factor = y / x
    torch.testing.assert_close(factor, factor[:, :1].expand_as(factor))
    assert factor.min() >= 0.5 and factor.max() <= 2.0
    plain = VectorAugmentation(noise_std=0.0)
    assert torch.equal(plain(x), x)
    assert vector_augmentation(2).dropout_p == 0.0


def test_no_augmentation_returns_input() -> None:
    x = torch.rand(3, 5)
    assert NoAugmentation()(x, generator=gen(0)) is x


# ------------------------------------------------------------------ factory, errors


def test_build_augmentation_auto_choices() -> None:
    assert isinstance(build_augmentation("auto", "vector", (10,)), VectorAugmentation)
    grey = build_augmentation("auto", "image", (1, 28, 28))
    assert isinstance(grey, ImageAugmentation) and grey.config.hflip_p == 0.0
    colour = build_augmentation("auto", "image", (3, 96, 96))
    assert isinstance(colour, ImageAugmentation)
    assert colour.config.hflip_p == 0.5 and colour.config.blur_p == 0.5
    small = build_augmentation("simclr", "image", (3, 32, 32))
    assert isinstance(small, ImageAugmentation) and small.config.blur_p == 0.0
    assert small.config.output_size == 32
    assert isinstance(build_augmentation("none", "image", (3, 8, 8)), NoAugmentation)
    assert isinstance(build_augmentation("none", "vector", (3,)), NoAugmentation)


def test_build_augmentation_errors() -> None:
    with pytest.raises(ConfigError, match="valid names: auto, simclr, grey, vector, none"):
        build_augmentation("fancy", "image", (3, 32, 32))
    with pytest.raises(ConfigError, match="kind"):
        build_augmentation("auto", "audio", (3, 32, 32))
    with pytest.raises(ConfigError, match="vector"):
        build_augmentation("vector", "image", (3, 32, 32))
    with pytest.raises(ConfigError, match="image"):
        build_augmentation("simclr", "vector", (10,))
    with pytest.raises(ConfigError, match="input_shape"):
        build_augmentation("auto", "image", (10,))


def test_build_augmentation_options_change_one_setting() -> None:
    base = build_augmentation("grey", "image", (1, 16, 16))
    changed = build_augmentation("grey", "image", (1, 16, 16), {"crop_scale": [0.8, 1.0]})
    assert isinstance(changed, ImageAugmentation) and isinstance(base, ImageAugmentation)
    assert changed.config.crop_scale == (0.8, 1.0)  # a YAML list becomes a pair
    assert changed.config.rotation_deg == base.config.rotation_deg == 15.0
    assert changed.config.output_size == 16
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 16, 16)
    assert not torch.equal(base(x, generator=g1), changed(x, generator=g2))


@pytest.mark.parametrize(
    ("name", "kind", "shape", "options", "message"),
    [
        ("grey", "image", (1, 8, 8), {"crop_scale": 0.5}, r"crop_scale must be a pair \[low"),
        ("grey", "image", (1, 8, 8), {"rotation_deg": [1, 2]}, "must be a single value"),
        ("grey", "image", (1, 8, 8), {"rotation": 5}, r"unknown ImageAugmentation option"),
        ("grey", "image", (1, 8, 8), {"rotation_deg": 500}, r"rotation_deg must lie in"),
        ("vector", "vector", (5,), {"noise_std": 0.2}, "'vector' takes none"),
        ("none", "image", (1, 8, 8), {"hflip_p": 0.5}, "'none' takes none"),
    ],
)
def test_build_augmentation_bad_options(name, kind, shape, options, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_augmentation(name, kind, shape, options)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"hflip_p": 1.5}, "hflip_p"),
        ({"crop_scale": (0.6, 0.2)}, "crop_scale"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"shear_deg": 60.0}, "shear_deg"),
        ({"hue": 0.7}, "hue"),
        ({"blur_sigma": (0.0, 1.0)}, "blur_sigma"),
        ({"padding_mode": "wrap"}, "padding_mode"),
        ({"output_size": 0}, "output_size"),
        ({"translate": -0.1}, "translate"),
        ({"colour": 1.0}, "unknown"),
    ],
)
def test_invalid_options_raise_config_error(options: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ImageAugmentation(**options)  # type: ignore[arg-type]


def test_invalid_inputs_raise() -> None:
    with pytest.raises(DataError):
        simclr_augmentation(32)(torch.rand(3, 32, 32))
    with pytest.raises(DataError):
        vector_augmentation(4)(torch.rand(3, 4, 1))
    with pytest.raises(ConfigError, match="noise_std"):
        VectorAugmentation(noise_std=-1.0)
    with pytest.raises(ConfigError, match="dropout_p"):
        VectorAugmentation(dropout_p=1.0)
    with pytest.raises(ConfigError, match="image_size"):
        grey_augmentation(0)
