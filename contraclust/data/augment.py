"""Batched data augmentation that runs on the training device.

Every transform here works on a whole batch at once and draws a separate random
parameter for every sample, so two views of a batch cost a handful of tensor
operations rather than a Python loop over images. All randomness comes from an
explicit :class:`torch.Generator` (on the batch's device); passing the same
seeded generator reproduces the output exactly, and ``generator=None`` falls back
to PyTorch's global random state.

Images are float tensors of shape ``(B, C, H, W)`` with values in ``[0, 1]``;
``C == 3`` is read as RGB. Vectors are float tensors of shape ``(B, D)``.

Image pipeline, in this fixed order:

1. **Geometry** - random resized crop, horizontal flip, rotation, translation,
   scale and shear, composed into *one* affine matrix per sample and applied with
   a single :func:`torch.nn.functional.affine_grid` /
   :func:`~torch.nn.functional.grid_sample` call (bilinear,
   ``align_corners=False``). The crop also resizes to ``output_size``.
2. **Colour jitter** (probability ``jitter_p`` per sample) - brightness,
   contrast, saturation, hue, always in that order (no random order). Hue is a
   rotation of the chroma plane in YIQ space, which keeps the luma of every
   pixel; it is close to, but not the same as, torchvision's HSV hue shift.
3. **Greyscale** (probability ``grey_p``) - ITU-R 601 luma copied to the three
   channels.

   Brightness and contrast are each clamped to ``[0, 1]``. Saturation, hue and
   greyscale are linear maps of RGB, so they are fused into one 3x3 matrix per
   sample, applied with a single batched matmul and clamped once (torchvision
   clamps after every step; the two differ only where an intermediate value
   leaves ``[0, 1]``).
4. **Gaussian blur** (probability ``blur_p``) - separable kernel with a
   per-sample sigma (in output pixels), reflect padding.

For one-channel images only brightness and contrast act; saturation, hue and
greyscale leave them unchanged. A stage whose probability or strength is 0 is
skipped without drawing random numbers.

The geometry and colour operations are checked against kornia's, on fixed
parameters, in ``tests/data/test_augment_kornia.py``, which also lists where the two
differ on purpose (hue, two-axis shear, crop edges).

Example::

    >>> import torch
    >>> aug = simclr_augmentation(image_size=32, channels=3)
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(8, 3, 32, 32)
    >>> aug(x, generator=g).shape
    torch.Size([8, 3, 32, 32])
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contraclust.errors import ConfigError, DataError

__all__ = [
    "AUGMENTATIONS",
    "ImageAugmentation",
    "ImageAugmentationConfig",
    "ImageAugmentationParams",
    "NoAugmentation",
    "VectorAugmentation",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "apply_colour_matrix",
    "build_augmentation",
    "compose_geometry",
    "gaussian_blur",
    "grey_augmentation",
    "grey_matrix",
    "hue_matrix",
    "rgb_to_grey",
    "saturation_matrix",
    "simclr_augmentation",
    "vector_augmentation",
    "warp_affine",
]

# ITU-R BT.601 luma weights, the ones torchvision and PIL use for greyscale.
_LUMA = (0.299, 0.587, 0.114)
# RGB -> YIQ (NTSC). Y is the luma above; I and Q span the chroma plane.
_RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)
_PADDING_MODES = ("zeros", "border", "reflection")
# Tries per sample when drawing a crop that fits in the image, as torchvision does.
_CROP_TRIES = 10


# --------------------------------------------------------------------------- config


def _check_range(
    name: str,
    value: tuple[float, float],
    low: float,
    high: float,
    *,
    low_open: bool = False,
) -> None:
    """Raise ConfigError unless ``value`` is an ordered pair inside [low, high]."""
    if len(value) != 2:
        raise ConfigError(f"{name} must be a pair (low, high), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    ok_low = lo > low if low_open else lo >= low
    if not (ok_low and lo <= hi <= high):
        relation = "<" if low_open else "<="
        raise ConfigError(
            f"{name} must be a pair (low, high) with {low} {relation} low <= high <= {high}, "
            f"got {value!r}"
        )


def _check_scalar(
    name: str, value: float, low: float, high: float, *, high_open: bool = False
) -> None:
    ok_high = value < high if high_open else value <= high
    if not (value >= low and ok_high):
        bracket = ")" if high_open else "]"
        raise ConfigError(f"{name} must lie in [{low}, {high}{bracket}, got {value!r}")


@dataclass(frozen=True)
class ImageAugmentationConfig:
    """Parameters of :class:`ImageAugmentation`.

    Every stage except the crop defaults to *off*, so a config names exactly what
    it turns on; the presets :func:`simclr_augmentation` and
    :func:`grey_augmentation` fill in the usual settings.

    Args:
        crop_scale: range of the crop's area as a fraction of the image area.
            ``(1.0, 1.0)`` disables cropping.
        crop_ratio: range of the crop's width / height, drawn log-uniformly. A
            sample whose ten draws never fit inside the image falls back to the
            largest centred crop with its aspect ratio clamped into this range
            (torchvision's rule).
        hflip_p: probability of a horizontal flip.
        rotation_deg: rotation angle drawn uniformly from
            ``[-rotation_deg, rotation_deg]``; positive is counter-clockwise on
            screen.
        translate: shift drawn uniformly from ``[-translate, translate]`` times the
            output width (x) and height (y), independently.
        scale_range: zoom factor drawn uniformly from this range (> 1 enlarges).
        shear_deg: shear angles along x and along y, each drawn uniformly from
            ``[-shear_deg, shear_deg]``.
        padding_mode: what ``grid_sample`` reads outside the image: ``"zeros"``
            (black, right for digits on a dark background), ``"border"`` or
            ``"reflection"``. Crops alone never sample outside the image.
        jitter_p: probability that a sample gets colour jitter.
        brightness: multiplicative factor drawn from ``[max(0, 1 - b), 1 + b]``.
        contrast: blend with the image's mean luma, factor from
            ``[max(0, 1 - c), 1 + c]``.
        saturation: blend with the pixel's luma, factor from
            ``[max(0, 1 - s), 1 + s]``.
        hue: hue rotation drawn from ``[-hue, hue]`` in turns (0.5 = 180 degrees).
        grey_p: probability of converting a sample to greyscale.
        blur_p: probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation in output pixels.
        output_size: side of the square output; ``None`` keeps the input size.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    hflip_p: float = 0.0
    rotation_deg: float = 0.0
    translate: float = 0.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    shear_deg: float = 0.0
    padding_mode: str = "zeros"
    jitter_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    grey_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    output_size: int | None = None

    def __post_init__(self) -> None:
        _check_range("crop_scale", self.crop_scale, 0.0, 1.0, low_open=True)
        _check_range("crop_ratio", self.crop_ratio, 0.0, math.inf, low_open=True)
        _check_scalar("hflip_p", self.hflip_p, 0.0, 1.0)
        _check_scalar("rotation_deg", self.rotation_deg, 0.0, 180.0)
        _check_scalar("translate", self.translate, 0.0, 1.0)
        _check_range("scale_range", self.scale_range, 0.0, math.inf, low_open=True)
        _check_scalar("shear_deg", self.shear_deg, 0.0, 45.0, high_open=True)
        if self.padding_mode not in _PADDING_MODES:
            raise ConfigError(
                f"padding_mode must be one of {', '.join(_PADDING_MODES)}, "
                f"got {self.padding_mode!r}"
            )
        _check_scalar("jitter_p", self.jitter_p, 0.0, 1.0)
        _check_scalar("brightness", self.brightness, 0.0, math.inf)
        _check_scalar("contrast", self.contrast, 0.0, math.inf)
        _check_scalar("saturation", self.saturation, 0.0, math.inf)
        _check_scalar("hue", self.hue, 0.0, 0.5)
        _check_scalar("grey_p", self.grey_p, 0.0, 1.0)
        _check_scalar("blur_p", self.blur_p, 0.0, 1.0)
        _check_range("blur_sigma", self.blur_sigma, 0.0, math.inf, low_open=True)
        if self.output_size is not None and (
            isinstance(self.output_size, bool)
            or not isinstance(self.output_size, int)
            or self.output_size < 1
        ):
            raise ConfigError(
                f"output_size must be None or an integer >= 1, got {self.output_size!r}"
            )
        # Store plain float tuples so equal configs compare and hash equal.
        for name in ("crop_scale", "crop_ratio", "scale_range", "blur_sigma"):
            value = getattr(self, name)
            object.__setattr__(self, name, (float(value[0]), float(value[1])))

    @property
    def jitter_active(self) -> bool:
        """Whether colour jitter can change anything."""
        strengths = (self.brightness, self.contrast, self.saturation, self.hue)
        return self.jitter_p > 0 and any(s > 0 for s in strengths)

    @property
    def affine_active(self) -> bool:
        """Whether flip, rotation, translation, scale or shear can change anything."""
        return (
            self.hflip_p > 0
            or self.rotation_deg > 0
            or self.translate > 0
            or self.scale_range != (1.0, 1.0)
            or self.shear_deg > 0
        )


@dataclass(frozen=True)
class ImageAugmentationParams:
    """The random draws for one batch, as sampled by :meth:`ImageAugmentation.sample_params`.

    All tensors have the batch as first dimension and live on the batch's device
    (float32). A field is ``None`` when its stage is skipped.

    Attributes:
        output_size: ``(height, width)`` of the augmented images.
        theta: ``(B, 2, 3)`` affine matrices mapping output to input coordinates
            in ``affine_grid``'s normalised convention (``align_corners=False``).
        jitter: ``(B,)`` bool, which samples get colour jitter.
        brightness, contrast, saturation: ``(B,)`` factors (1 = unchanged).
        hue: ``(B,)`` hue rotation in turns.
        grey: ``(B,)`` bool, which samples become greyscale.
        blur: ``(B,)`` bool, which samples are blurred.
        blur_sigma: ``(B,)`` blur standard deviations in pixels.
    """

    output_size: tuple[int, int]
    theta: Tensor | None = None
    jitter: Tensor | None = None
    brightness: Tensor | None = None
    contrast: Tensor | None = None
    saturation: Tensor | None = None
    hue: Tensor | None = None
    grey: Tensor | None = None
    blur: Tensor | None = None
    blur_sigma: Tensor | None = None


# ------------------------------------------------------------------ functional ops


def compose_geometry(
    crop_center: Tensor,
    crop_size: Tensor,
    flip: Tensor,
    angle_deg: Tensor,
    translate: Tensor,
    scale: Tensor,
    shear_deg: Tensor,
    output_size: tuple[int, int],
) -> Tensor:
    """Fuse crop, flip and affine transform into one sampling matrix per sample.

    The crop is read first and resized to ``output_size``; the flip and then the
    affine transform act on that resized crop. The result maps *output*
    coordinates to *input* coordinates, both normalised to ``[-1, 1]`` across the
    full image extent (``affine_grid`` with ``align_corners=False``).

    Args:
        crop_center: ``(B, 2)`` crop centre (x, y) in normalised input coordinates.
        crop_size: ``(B, 2)`` crop width and height as fractions of the input's.
        flip: ``(B,)`` bool, horizontal flip.
        angle_deg: ``(B,)`` rotation, counter-clockwise on screen.
        translate: ``(B, 2)`` shift (x, y) as fractions of the output width/height.
        scale: ``(B,)`` zoom factor.
        shear_deg: ``(B, 2)`` shear angles along x and along y.
        output_size: ``(height, width)`` of the output.

    Returns:
        ``(B, 2, 3)`` matrices for :func:`warp_affine`.
    """
    out_h, out_w = output_size
    angle = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(angle), torch.sin(angle)
    shx = torch.tan(torch.deg2rad(shear_deg[:, 0]))
    shy = torch.tan(torch.deg2rad(shear_deg[:, 1]))
    # Forward content transform in pixel units (x right, y down):
    # A = scale * R * Sh with R counter-clockwise on screen, Sh = [[1, shx], [shy, 1]].
    a00 = scale * (cos + sin * shy)
    a01 = scale * (cos * shx + sin)
    a10 = scale * (-sin + cos * shy)
    a11 = scale * (-sin * shx + cos)
    det = a00 * a11 - a01 * a10
    # Inverse of A, then moved from pixel to normalised units: N = P^-1 A^-1 P with
    # P = diag(W/2, H/2); only the off-diagonal terms see the aspect ratio.
    n00 = a11 / det
    n01 = -a01 / det * (out_h / out_w)
    n10 = -a10 / det * (out_w / out_h)
    n11 = a00 / det
    # Translation t in pixels is 2 * translate in normalised units.
    tx, ty = 2.0 * translate[:, 0], 2.0 * translate[:, 1]
    off_x = -(n00 * tx + n01 * ty)
    off_y = -(n10 * tx + n11 * ty)
    # Flip and crop: n_in = diag(sw, sh) * diag(f, 1) * n + c.
    sign = 1.0 - 2.0 * flip.to(angle.dtype)
    sx = crop_size[:, 0] * sign
    sy = crop_size[:, 1]
    row0 = torch.stack([sx * n00, sx * n01, sx * off_x + crop_center[:, 0]], dim=-1)
    row1 = torch.stack([sy * n10, sy * n11, sy * off_y + crop_center[:, 1]], dim=-1)
    return torch.stack([row0, row1], dim=1)


def warp_affine(
    images: Tensor,
    theta: Tensor,
    output_size: tuple[int, int],
    padding_mode: str = "zeros",
) -> Tensor:
    """Resample a batch through per-sample affine maps in one ``grid_sample`` call.

    ``theta`` maps output to input coordinates (see :func:`compose_geometry`);
    sampling is bilinear with ``align_corners=False``, so the identity matrix
    reproduces the input exactly.
    """
    b, c = images.shape[:2]
    grid = F.affine_grid(
        theta.to(images.dtype), [b, c, output_size[0], output_size[1]], align_corners=False
    )
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def _where_sample(mask: Tensor, values: Tensor, default: float) -> Tensor:
    return torch.where(mask, values, torch.full_like(values, default))


def _where_matrix(mask: Tensor, matrices: Tensor) -> Tensor:
    eye = torch.eye(3, dtype=matrices.dtype, device=matrices.device).expand_as(matrices)
    return torch.where(mask.view(-1, 1, 1), matrices, eye)


def rgb_to_grey(images: Tensor) -> Tensor:
    """ITU-R 601 luma of RGB images, shape ``(B, 1, H, W)``."""
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _luma(images: Tensor) -> Tensor:
    return rgb_to_grey(images) if images.shape[1] == 3 else images.mean(dim=1, keepdim=True)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Scale intensities by a per-sample factor and clamp to ``[0, 1]``."""
    return (images * _per_sample(factor, images)).clamp_(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its mean luma by a per-sample factor, clamped."""
    mean = _luma(images).mean(dim=(1, 2, 3), keepdim=True)
    f = _per_sample(factor, images)
    # One fused pass: mean * (1 - f) + images * f.
    return torch.addcmul(mean * (1.0 - f), images, f).clamp_(0.0, 1.0)


def saturation_matrix(factor: Tensor) -> Tensor:
    """``(B, 3, 3)`` RGB maps blending each pixel with its luma: ``f I + (1 - f) 1 w^T``."""
    f = factor.view(-1, 1, 1)
    luma = factor.new_tensor(_LUMA).expand(3, 3)
    eye = torch.eye(3, dtype=factor.dtype, device=factor.device)
    return f * eye + (1.0 - f) * luma


def hue_matrix(hue: Tensor) -> Tensor:
    """``(B, 3, 3)`` RGB maps rotating the YIQ chroma plane by ``hue`` turns."""
    to_yiq = torch.tensor(_RGB_TO_YIQ, dtype=torch.float64, device=hue.device)
    from_yiq = torch.linalg.inv(to_yiq)
    angle = 2.0 * math.pi * hue.to(torch.float64)
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rotation = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], dim=-1).view(
        -1, 3, 3
    )
    return (from_yiq @ rotation @ to_yiq).to(hue.dtype)


def grey_matrix(batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(B, 3, 3)`` RGB maps replacing every channel by the luma."""
    return torch.tensor(_LUMA, dtype=dtype, device=device).expand(batch_size, 3, 3)


def apply_colour_matrix(images: Tensor, matrix: Tensor) -> Tensor:
    """Apply per-sample ``(B, 3, 3)`` maps to RGB images ``(B, 3, H, W)``, unclamped."""
    b, c, h, w = images.shape
    out = torch.bmm(matrix.to(images.dtype), images.reshape(b, c, h * w))
    return out.view(b, c, h, w)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each RGB pixel with its luma by a per-sample factor, clamped.

    One-channel images are returned unchanged.
    """
    if images.shape[1] != 3:
        return images
    return apply_colour_matrix(images, saturation_matrix(factor)).clamp_(0.0, 1.0)


def adjust_hue(images: Tensor, hue: Tensor) -> Tensor:
    """Rotate the chroma (I, Q) plane in YIQ space by ``hue`` turns per sample.

    Luma is kept; the result is clamped to ``[0, 1]``. One-channel images are
    returned unchanged.
    """
    if images.shape[1] != 3:
        return images
    return apply_colour_matrix(images, hue_matrix(hue)).clamp_(0.0, 1.0)


def gaussian_blur(images: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Blur each image with its own Gaussian (separable, reflect padding).

    Args:
        images: ``(B, C, H, W)``.
        sigma: ``(B,)`` standard deviations in pixels; ``0`` leaves a sample as is.
        radius: kernel half-width; capped at ``min(H, W) - 1`` for reflect padding.
    """
    b, c, h, w = images.shape
    radius = max(0, min(radius, h - 1, w - 1))
    if radius == 0:
        return images
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    s = sigma.to(images.dtype).view(b, 1)
    safe = s.clamp_min(1e-6)
    kernel = torch.exp(-0.5 * (taps / safe) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    delta = (taps == 0).to(images.dtype).expand_as(kernel)
    kernel = torch.where(s > 0, kernel, delta)
    kernel = kernel.repeat_interleave(c, dim=0)  # one kernel per (sample, channel)
    size = 2 * radius + 1
    flat = images.reshape(1, b * c, h, w)
    flat = F.conv2d(
        F.pad(flat, (radius, radius, 0, 0), mode="reflect"),
        kernel.view(b * c, 1, 1, size),
        groups=b * c,
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, radius, radius), mode="reflect"),
        kernel.view(b * c, 1, size, 1),
        groups=b * c,
    )
    return flat.view(b, c, h, w)


# ------------------------------------------------------------------------- modules


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device} but the batch is on {device}; "
            "create the generator on the batch's device"
        )


def _uniform(
    low: float,
    high: float,
    size: tuple[int, ...],
    device: torch.device,
    generator: torch.Generator | None,
) -> Tensor:
    u = torch.rand(size, device=device, generator=generator)
    return low + (high - low) * u


def _bernoulli(
    p: float, size: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    if p >= 1.0:
        return torch.ones(size, dtype=torch.bool, device=device)
    return torch.rand(size, device=device, generator=generator) < p


def _factor_range(strength: float) -> tuple[float, float]:
    return max(0.0, 1.0 - strength), 1.0 + strength


class ImageAugmentation(nn.Module):
    """Random image augmentation for a batch, with per-sample parameters.

    Build it from an :class:`ImageAugmentationConfig`, from keyword arguments
    (the config's fields), or both (keywords override the config). See the
    module docstring for the pipeline.

    Example::

        >>> aug = ImageAugmentation(crop_scale=(0.5, 1.0), hflip_p=0.5)
        >>> g = torch.Generator().manual_seed(1)
        >>> aug(torch.rand(4, 1, 28, 28), generator=g).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(self, config: ImageAugmentationConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = config if config is not None else ImageAugmentationConfig()
        if overrides:
            known = {f.name for f in dataclasses.fields(ImageAugmentationConfig)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ConfigError(
                    f"unknown ImageAugmentation option(s) {unknown}; valid: {sorted(known)}"
                )
            config = dataclasses.replace(config, **overrides)
        self.config = config

    def extra_repr(self) -> str:
        return repr(self.config)

    def _output_size(self, height: int, width: int) -> tuple[int, int]:
        size = self.config.output_size
        return (height, width) if size is None else (size, size)

    def _crop_is_identity(self, height: int, width: int) -> bool:
        lo, hi = self.config.crop_ratio
        return self.config.crop_scale[0] >= 1.0 and lo <= width / height <= hi

    def geometry_is_identity(self, height: int, width: int) -> bool:
        """Whether geometry leaves an ``height x width`` image unchanged (and is skipped)."""
        return (
            self._crop_is_identity(height, width)
            and not self.config.affine_active
            and self._output_size(height, width) == (height, width)
        )

    def _sample_crop(
        self,
        b: int,
        height: int,
        width: int,
        device: torch.device,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        cfg = self.config
        lo, hi = cfg.crop_ratio
        # Fallback: the largest centred crop whose aspect ratio is clamped into range.
        ratio = min(max(width / height, lo), hi)
        fallback = torch.tensor(
            [min(1.0, ratio * height / width), min(1.0, width / (ratio * height))],
            device=device,
        )
        if cfg.crop_scale[0] >= 1.0:
            return torch.zeros(b, 2, device=device), fallback.expand(b, 2).clone()
        area = _uniform(*cfg.crop_scale, (b, _CROP_TRIES), device, generator)
        log_ratio = _uniform(math.log(lo), math.log(hi), (b, _CROP_TRIES), device, generator)
        r = torch.exp(log_ratio)
        sw = torch.sqrt(area * r * (height / width))
        sh = torch.sqrt(area / r * (width / height))
        fits = (sw <= 1.0) & (sh <= 1.0)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting try
        size = torch.cat([sw.gather(1, first), sh.gather(1, first)], dim=1)
        size = torch.where(fits.any(dim=1, keepdim=True), size, fallback)
        center = (2.0 * torch.rand(b, 2, device=device, generator=generator) - 1.0) * (1.0 - size)
        return center, size

    def sample_params(
        self,
        batch_size: int,
        channels: int,
        height: int,
        width: int,
        *,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
        force_geometry: bool = False,
    ) -> ImageAugmentationParams:
        """Draw the random parameters for a batch of ``batch_size`` images.

        Draws always happen in the same order, so a seeded generator gives the
        same parameters for the same config and batch shape. With
        ``force_geometry=True`` the affine matrices are produced even when the
        geometry is the identity (useful to test the warp itself).
        """
        cfg = self.config
        device = torch.device(device)
        _check_generator(generator, device)
        b = batch_size
        out_size = self._output_size(height, width)
        theta: Tensor | None = None
        if force_geometry or not self.geometry_is_identity(height, width):
            center, size = self._sample_crop(b, height, width, device, generator)
            zeros = torch.zeros(b, device=device)
            flip = (
                _bernoulli(cfg.hflip_p, b, device, generator)
                if cfg.hflip_p > 0
                else torch.zeros(b, dtype=torch.bool, device=device)
            )
            angle = (
                _uniform(-cfg.rotation_deg, cfg.rotation_deg, (b,), device, generator)
                if cfg.rotation_deg > 0
                else zeros
            )
            shift = (
                _uniform(-cfg.translate, cfg.translate, (b, 2), device, generator)
                if cfg.translate > 0
                else torch.zeros(b, 2, device=device)
            )
            s_lo, s_hi = cfg.scale_range
            scale = (
                _uniform(s_lo, s_hi, (b,), device, generator)
                if s_hi > s_lo
                else torch.full((b,), s_lo, device=device)
            )
            shear = (
                _uniform(-cfg.shear_deg, cfg.shear_deg, (b, 2), device, generator)
                if cfg.shear_deg > 0
                else torch.zeros(b, 2, device=device)
            )
            theta = compose_geometry(center, size, flip, angle, shift, scale, shear, out_size)

        fields: dict[str, Tensor] = {}
        if cfg.jitter_active:
            fields["jitter"] = _bernoulli(cfg.jitter_p, b, device, generator)
            if cfg.brightness > 0:
                fields["brightness"] = _uniform(
                    *_factor_range(cfg.brightness), (b,), device, generator
                )
            if cfg.contrast > 0:
                fields["contrast"] = _uniform(*_factor_range(cfg.contrast), (b,), device, generator)
            if channels == 3 and cfg.saturation > 0:
                fields["saturation"] = _uniform(
                    *_factor_range(cfg.saturation), (b,), device, generator
                )
            if channels == 3 and cfg.hue > 0:
                fields["hue"] = _uniform(-cfg.hue, cfg.hue, (b,), device, generator)
        if channels == 3 and cfg.grey_p > 0:
            fields["grey"] = _bernoulli(cfg.grey_p, b, device, generator)
        if cfg.blur_p > 0:
            fields["blur"] = _bernoulli(cfg.blur_p, b, device, generator)
            fields["blur_sigma"] = _uniform(*cfg.blur_sigma, (b,), device, generator)
        return ImageAugmentationParams(output_size=out_size, theta=theta, **fields)

    def apply(self, images: Tensor, params: ImageAugmentationParams) -> Tensor:
        """Apply previously sampled parameters to a batch; the result is clamped to [0, 1]."""
        x = images
        if params.theta is not None:
            x = warp_affine(x, params.theta, params.output_size, self.config.padding_mode)
        # Samples left out of a stage get identity factors (1, or the identity
        # matrix), which leave values in [0, 1] exactly as they were; this avoids
        # a masked copy of the batch per stage.
        jitter = params.jitter
        if jitter is not None and params.brightness is not None:
            x = adjust_brightness(x, _where_sample(jitter, params.brightness, 1.0))
        if jitter is not None and params.contrast is not None:
            x = adjust_contrast(x, _where_sample(jitter, params.contrast, 1.0))
        if x.shape[1] == 3:
            matrix = self._colour_matrix(params)
            if matrix is not None:
                x = apply_colour_matrix(x, matrix).clamp_(0.0, 1.0)
        if params.blur is not None and params.blur_sigma is not None:
            sigma = torch.where(params.blur, params.blur_sigma, torch.zeros_like(params.blur_sigma))
            radius = math.ceil(3.0 * self.config.blur_sigma[1])
            x = gaussian_blur(x, sigma, radius)
        if x is not images:
            # Resampling, colour matrices and blur kernels can overshoot by an ulp.
            x = x.clamp_(0.0, 1.0)
        return x

    @staticmethod
    def _colour_matrix(params: ImageAugmentationParams) -> Tensor | None:
        """Saturation, then hue, then greyscale, fused into one RGB map per sample.

        Built in float64 (3 x 3 per sample, cheap); samples a stage skips get the
        exact identity.
        """
        matrices: list[Tensor] = []
        jitter = params.jitter
        if jitter is not None and params.saturation is not None:
            factor = _where_sample(jitter, params.saturation, 1.0).double()
            matrices.append(saturation_matrix(factor))
        if jitter is not None and params.hue is not None:
            matrices.append(_where_matrix(jitter, hue_matrix(params.hue.double())))
        if params.grey is not None:
            grey = grey_matrix(params.grey.shape[0], params.grey.device, torch.float64)
            matrices.append(_where_matrix(params.grey, grey))
        if not matrices:
            return None
        matrix = matrices[0]
        for later in matrices[1:]:
            matrix = later @ matrix
        return matrix

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a ``(B, C, H, W)`` batch in ``[0, 1]``; same dtype and device out."""
        if images.dim() != 4 or not images.is_floating_point():
            raise DataError(
                "ImageAugmentation expects a float tensor of shape (B, C, H, W), "
                f"got {images.dtype} with shape {tuple(images.shape)}"
            )
        b, c, h, w = images.shape
        params = self.sample_params(b, c, h, w, device=images.device, generator=generator)
        return self.apply(images, params)


class VectorAugmentation(nn.Module):
    """Random augmentation of feature vectors ``(B, D)``, per sample.

    Steps, in order: per-sample scaling by a factor from ``scale_range``;
    additive Gaussian noise whose standard deviation is ``noise_std`` times each
    feature's standard deviation over the batch (detached, so features on
    different scales get comparable noise; a batch of one gets none); feature
    masking, which sets each entry to 0 with probability ``dropout_p`` without
    rescaling the others.

    Args:
        noise_std: noise level relative to the feature scale, ``>= 0``.
        dropout_p: masking probability in ``[0, 1)``.
        scale_range: range of the per-sample scale factor; ``(1, 1)`` disables it.
    """

    def __init__(
        self,
        noise_std: float = 0.1,
        dropout_p: float = 0.0,
        scale_range: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        super().__init__()
        _check_scalar("noise_std", noise_std, 0.0, math.inf)
        _check_scalar("dropout_p", dropout_p, 0.0, 1.0, high_open=True)
        _check_range("scale_range", scale_range, 0.0, math.inf, low_open=True)
        self.noise_std = float(noise_std)
        self.dropout_p = float(dropout_p)
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))

    def extra_repr(self) -> str:
        return (
            f"noise_std={self.noise_std}, dropout_p={self.dropout_p}, "
            f"scale_range={self.scale_range}"
        )

    def forward(self, vectors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a ``(B, D)`` float batch; same shape, dtype and device out."""
        if vectors.dim() != 2 or not vectors.is_floating_point():
            raise DataError(
                "VectorAugmentation expects a float tensor of shape (B, D), "
                f"got {vectors.dtype} with shape {tuple(vectors.shape)}"
            )
        _check_generator(generator, vectors.device)
        b, d = vectors.shape
        x = vectors
        lo, hi = self.scale_range
        if hi > lo:
            factor = _uniform(lo, hi, (b, 1), x.device, generator).to(x.dtype)
            x = x * factor
        elif lo != 1.0:
            x = x * lo
        if self.noise_std > 0:
            scale = x.detach().std(dim=0, unbiased=False, keepdim=True)
            noise = torch.randn((b, d), device=x.device, generator=generator).to(x.dtype)
            x = x + noise * (self.noise_std * scale)
        if self.dropout_p > 0:
            keep = torch.rand((b, d), device=x.device, generator=generator) >= self.dropout_p
            x = x * keep.to(x.dtype)
        return x


class NoAugmentation(nn.Module):
    """Return the batch unchanged (the same tensor); ``generator`` is ignored."""

    def forward(self, inputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return inputs


# ------------------------------------------------------------------------- presets


def _check_image_size(image_size: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be an integer >= 1, got {image_size!r}")


def simclr_augmentation(
    image_size: int,
    channels: int = 3,
    crop_scale: tuple[float, float] = (0.08, 1.0),
) -> ImageAugmentation:
    """The SimCLR augmentation set (Chen et al. 2020), for natural colour images.

    Random resized crop (area ``crop_scale``, default the paper's ``(0.08, 1)``;
    ``(0.2, 1)`` is a common gentler choice for small images), horizontal flip
    with probability 0.5, colour jitter with probability 0.8 at strength 0.5
    (brightness, contrast, saturation 0.4, hue 0.1, the CIFAR setting),
    greyscale with probability 0.2, and Gaussian blur with probability 0.5 and
    sigma in ``[0.1, 2]`` for images of 64 px and more. Blur is off for smaller
    images, as is usual for CIFAR. Output is ``image_size`` square.

    For ``channels == 1`` only crop, flip, brightness, contrast and blur act.
    """
    _check_image_size(image_size)
    if channels < 1:
        raise ConfigError(f"channels must be >= 1, got {channels!r}")
    return ImageAugmentation(
        ImageAugmentationConfig(
            crop_scale=crop_scale,
            crop_ratio=(3.0 / 4.0, 4.0 / 3.0),
            hflip_p=0.5,
            jitter_p=0.8,
            brightness=0.4,
            contrast=0.4,
            saturation=0.4,
            hue=0.1,
            grey_p=0.2,
            blur_p=0.5 if image_size >= 64 else 0.0,
            blur_sigma=(0.1, 2.0),
            output_size=image_size,
        )
    )


def grey_augmentation(image_size: int) -> ImageAugmentation:
    """Augmentation for digits and other grey images, where a flip changes the class.

    Mild random resized crop (area 0.6-1, aspect 0.9-1.1), a small random affine
    transform (rotation +-15 deg, translation up to 10 % of the side, scale
    0.9-1.1, shear +-10 deg, zero padding = dark background), and mild
    brightness/contrast jitter (0.3, probability 0.8). No flip, no hue, no blur.
    Output is ``image_size`` square.
    """
    _check_image_size(image_size)
    return ImageAugmentation(
        ImageAugmentationConfig(
            crop_scale=(0.6, 1.0),
            crop_ratio=(0.9, 1.0 / 0.9),
            rotation_deg=15.0,
            translate=0.1,
            scale_range=(0.9, 1.1),
            shear_deg=10.0,
            padding_mode="zeros",
            jitter_p=0.8,
            brightness=0.3,
            contrast=0.3,
            output_size=image_size,
        )
    )


def vector_augmentation(dim: int) -> VectorAugmentation:
    """Default augmentation for ``dim``-dimensional feature vectors.

    Noise at 10 % of each feature's spread, per-sample scaling in ``[0.9, 1.1]``
    and, for ``dim >= 16`` only, masking 10 % of the features (with few features,
    masking one removes too much of the sample).
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim must be an integer >= 1, got {dim!r}")
    return VectorAugmentation(
        noise_std=0.1, dropout_p=0.1 if dim >= 16 else 0.0, scale_range=(0.9, 1.1)
    )


# ------------------------------------------------------------------------- factory

_KINDS = ("image", "vector")


def _image_preset(
    builder: Callable[[int, int], nn.Module],
) -> Callable[[tuple[int, ...]], nn.Module]:
    def build(shape: tuple[int, ...]) -> nn.Module:
        c, h, w = shape
        return builder(max(h, w), c)

    return build


AUGMENTATIONS: dict[str, tuple[str | None, Callable[[tuple[int, ...]], nn.Module]]] = {
    "simclr": ("image", _image_preset(lambda size, c: simclr_augmentation(size, c))),
    "grey": ("image", _image_preset(lambda size, c: grey_augmentation(size))),
    "vector": ("vector", lambda shape: vector_augmentation(shape[0])),
    "none": (None, lambda shape: NoAugmentation()),
}
"""Named presets: name -> (kind it accepts or None for any, builder from input shape)."""


def resolve_augmentation_name(name: str, kind: str, input_shape: tuple[int, ...]) -> str:
    """The preset ``"auto"`` stands for with this data; other names pass through."""
    if name != "auto":
        return name
    return "vector" if kind == "vector" else ("grey" if input_shape[0] == 1 else "simclr")


def build_augmentation(
    name: str,
    kind: str,
    input_shape: tuple[int, ...],
    options: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a named augmentation for data of one kind and shape.

    Args:
        name: ``"auto"``, ``"simclr"``, ``"grey"``, ``"vector"`` or ``"none"``.
            ``"auto"`` picks ``"vector"`` for vectors, ``"grey"`` for one-channel
            images and ``"simclr"`` for colour images.
        kind: ``"image"`` or ``"vector"``.
        input_shape: ``(C, H, W)`` for images, ``(D,)`` for vectors (no batch).
            Image presets output squares of side ``max(H, W)``.
        options: settings of an image preset to change, by field of
            :class:`ImageAugmentationConfig` (lists become pairs), e.g.
            ``{"crop_scale": [0.8, 1.0]}``.

    Raises:
        ConfigError: unknown name or kind, a shape that does not fit the kind,
            a preset meant for the other kind, or options that are unknown, out of
            range, or given to a preset that is not an image augmentation.
    """
    if kind not in _KINDS:
        raise ConfigError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    shape = tuple(int(s) for s in input_shape)
    expected_len = 3 if kind == "image" else 1
    if len(shape) != expected_len or any(s < 1 for s in shape):
        layout = "(C, H, W)" if kind == "image" else "(D,)"
        raise ConfigError(
            f"input_shape for kind {kind!r} must be {layout} with positive sizes, "
            f"got {tuple(input_shape)!r}"
        )
    name = resolve_augmentation_name(name, kind, shape)
    if name not in AUGMENTATIONS:
        valid = ", ".join(["auto", *AUGMENTATIONS])
        raise ConfigError(f"unknown augmentation {name!r}; valid names: {valid}")
    accepted, builder = AUGMENTATIONS[name]
    if accepted is not None and accepted != kind:
        raise ConfigError(
            f"augmentation {name!r} is for {accepted} data but kind is {kind!r}; "
            "use 'auto' to pick a matching one"
        )
    module = builder(shape)
    if not options:
        return module
    if not isinstance(module, ImageAugmentation):
        raise ConfigError(
            f"augment.options change the image augmentations (grey, simclr); "
            f"{name!r} takes none, got {sorted(options)}"
        )
    pairs = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    for key, value in pairs.items():
        current = getattr(module.config, key, None)
        if isinstance(current, tuple) != isinstance(value, tuple):
            shape = "a pair [low, high]" if isinstance(current, tuple) else "a single value"
            raise ConfigError(f"augment.options.{key} must be {shape}, got {value!r}")
    return ImageAugmentation(module.config, **pairs)
