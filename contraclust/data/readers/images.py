"""Folders of image files, read into one uint8 tensor, and resizing of image tensors.

:func:`load_image_folder` decodes every image under a folder (one sub-folder per
class gives labels); :func:`list_image_folder` lists them for streaming;
:func:`resize_images` brings a tensor of images to a square side.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.common import reason
from contraclust.errors import DataError

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "ImageFailure",
    "ImageProbe",
    "decode_image",
    "fail_unreadable",
    "folder_labels",
    "list_image_folder",
    "load_image_folder",
    "probe_image",
    "resize_images",
]

logger = logging.getLogger(__name__)

#: Side of the square images an image folder is brought to when its images differ in
#: size and no ``image_size`` is given.
DEFAULT_IMAGE_SIZE = 64

#: File extensions (lower case) read as images by :func:`load_image_folder`.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def _square_crop_box(
    width: int, height: int, size: int
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """The resized (w, h) with shorter side ``size`` and the centred square crop box."""
    scale = size / min(width, height)
    new_w = max(size, round(width * scale))
    new_h = max(size, round(height * scale))
    left = (new_w - size) // 2
    top = (new_h - size) // 2
    return (new_w, new_h), (left, top, left + size, top + size)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` images: shorter side to ``size``, centre-crop square.

    Images already ``size``×``size`` are returned unchanged. Down-sampling is
    antialiased, as in PIL.
    """
    if size < 1:
        raise DataError(f"image_size must be a positive integer, got {size}")
    height, width = int(images.shape[2]), int(images.shape[3])
    if (height, width) == (size, size):
        return images
    (new_w, new_h), (left, top, right, bottom) = _square_crop_box(width, height, size)
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):
        block = images[start : start + 4096].float()
        block = F.interpolate(
            block, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )
        block = block[:, :, top:bottom, left:right]
        out[start : start + 4096] = block.round().clamp(0, 255).to(torch.uint8)
    return out


_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F", "La"})


@dataclass
class ImageProbe:
    """What the header of one image file says, read without decoding the pixels."""

    size: tuple[int, int]
    colour: bool


@dataclass
class ImageFailure:
    """An image file that could not be read, and why."""

    relpath: str
    reason: str


def _palette_is_grey(image: Image.Image) -> bool:
    palette = image.getpalette()
    if not palette:
        return True
    rgb = np.asarray(palette[: len(palette) - len(palette) % 3]).reshape(-1, 3)
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _bomb_message(path: Path, exc: BaseException) -> str:
    return (
        f"{path} is too large to decode safely ({exc}); downscale or remove it, "
        "or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
    )


def probe_image(path: Path) -> ImageProbe:
    """The size and colour of an image file, from its header."""
    with Image.open(path) as image:
        mode = image.mode
        if mode == "P" or mode == "PA":
            colour = not _palette_is_grey(image)
        else:
            colour = mode not in _GREY_MODES
        return ImageProbe(size=image.size, colour=colour)


def _to_mode(image: Image.Image, colour: bool) -> Image.Image:
    """Convert a decoded image to RGB or L; transparency is composited on white."""
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F":
            scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        elif mode.startswith("I;16"):
            scale = 1.0 / 257.0
        else:  # 32-bit "I": some PIL versions open 16-bit PNGs this way
            scale = 1.0 / 257.0 if values.size and values.max() > 255 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
        return image.convert("RGB") if colour else image
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "RGB" if colour else "L"
    return image if image.mode == target else image.convert(target)


def decode_image(
    path: Path, colour: bool, out_size: tuple[int, int] | None, crop_to: int | None
) -> np.ndarray:
    """Decode one file to a (C, H, W) uint8 array of the dataset's common format."""
    with Image.open(path) as image:
        if crop_to is not None and image.format == "JPEG":
            width, height = image.size
            scale = crop_to / min(width, height)
            # JPEG can decode at 1/2, 1/4, 1/8 scale for free; never below the target
            image.draft(
                "RGB" if colour else "L", (math.ceil(width * scale), math.ceil(height * scale))
            )
        image.load()
        image = _to_mode(image, colour)
        if crop_to is not None:
            (new_w, new_h), box = _square_crop_box(image.size[0], image.size[1], crop_to)
            if image.size != (new_w, new_h):
                image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
            image = image.crop(box)
        elif out_size is not None and image.size != out_size:
            raise OSError(f"decoded size {image.size} differs from the header's {out_size}")
        array = np.asarray(image, dtype=np.uint8)
    return array[None, :, :] if array.ndim == 2 else np.moveaxis(array, 2, 0)


def _map_parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if len(items) < 64:
        return [function(item) for item in items]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items, chunksize=16))


def _list_image_files(root: Path) -> tuple[list[str], list[str]]:
    """Image files (relative POSIX paths, sorted) and the ignored non-image files."""
    images: list[tuple[tuple[str, ...], str]] = []
    ignored: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        base = Path(current).relative_to(root)
        for filename in filenames:
            if filename.startswith("."):
                continue
            relative = base / filename
            if Path(filename).suffix.lower() in IMAGE_EXTENSIONS:
                images.append((relative.parts, relative.as_posix()))
            else:
                ignored.append(relative.as_posix())
    images.sort()
    return [relpath for _, relpath in images], sorted(ignored)


def list_image_folder(root: Path, image_size: int | None = None) -> list[str]:
    """The image files under ``root`` (sorted relative paths), after checking the folder.

    Raises:
        DataError: for a missing path, a file, a bad ``image_size`` or a folder without
            images (naming the other files found, if any).
    """
    if not root.exists():
        raise DataError(f"no such file or directory: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of images")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size}")
    relpaths, ignored = _list_image_files(root)
    if ignored:
        logger.info("%s: ignored %d non-image file(s), e.g. %s", root, len(ignored), ignored[0])
    if not relpaths:
        if ignored:
            raise DataError(
                f"no image files in {root}: found {len(ignored)} other file(s) such as "
                f"{ignored[0]}; accepted extensions are {', '.join(sorted(IMAGE_EXTENSIONS))}"
            )
        raise DataError(f"{root} is empty: put image files (or one sub-folder per class) in it")
    return relpaths


def fail_unreadable(root: Path, failures: list[ImageFailure]) -> None:
    """Raise one :class:`DataError` naming the first three unreadable files."""
    failures = sorted(failures, key=lambda failure: failure.relpath)
    shown = ", ".join(f"{failure.relpath} ({failure.reason})" for failure in failures[:3])
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    raise DataError(
        f"{len(failures)} unreadable image file(s) in {root}: {shown}{more}; fix or remove "
        "them, or pass skip_bad=True (--skip-bad-images) to skip them"
    )


def load_image_folder(
    path: str | Path, image_size: int | None = None, skip_bad: bool = False
) -> ArrayDataset:
    """Read every image under a folder into one uint8 tensor.

    Files with the extensions in :data:`IMAGE_EXTENSIONS` are found recursively, in
    sorted path order; other files and hidden files and folders are ignored. When
    the images sit in two or more first-level sub-folders (and none at the top), the
    sub-folder names are the classes (sorted) and the labels index into them;
    otherwise the set is unlabelled.

    Colour: if any image is in colour, all become RGB (grey replicated), else all are
    one-channel grey. Transparency (RGBA, LA, palette) is composited on white.

    Size: with ``image_size`` each image's shorter side is resized to it and the centre
    square is cropped. Without it, images that all share one size keep it, and
    otherwise :data:`DEFAULT_IMAGE_SIZE` (64) is used as if given.

    Args:
        path: the folder.
        image_size: side of the square output images, or None (see above).
        skip_bad: skip unreadable, empty or truncated files (listed in ``skipped``)
            instead of raising.

    Raises:
        DataError: for a missing or empty folder, a folder without images, or
            unreadable images (unless ``skip_bad``), naming the first three.
    """
    root = Path(path)
    relpaths = list_image_folder(root, image_size)
    failures: list[ImageFailure] = []

    def probe(relpath: str) -> ImageProbe | ImageFailure:
        file = root / relpath
        try:
            if file.stat().st_size == 0:
                return ImageFailure(relpath, "empty file")
            return probe_image(file)
        except Image.DecompressionBombError as exc:
            if not skip_bad:
                raise DataError(_bomb_message(file, exc)) from exc
            return ImageFailure(relpath, "too large to decode")
        except Exception as exc:  # PIL's decoders raise many types; all mean unreadable
            return ImageFailure(relpath, reason(exc))

    probes = _map_parallel(probe, relpaths)
    good: list[tuple[str, ImageProbe]] = []
    for relpath, result in zip(relpaths, probes, strict=True):
        if isinstance(result, ImageFailure):
            failures.append(result)
        else:
            good.append((relpath, result))

    colour = any(probe_result.colour for _, probe_result in good)
    sizes = {probe_result.size for _, probe_result in good}
    crop_to = image_size
    if crop_to is None and len(sizes) > 1:
        crop_to = DEFAULT_IMAGE_SIZE
        logger.info(
            "%s: images differ in size; resizing to %d×%d (pass image_size to choose)",
            root,
            DEFAULT_IMAGE_SIZE,
            DEFAULT_IMAGE_SIZE,
        )
    common = next(iter(sizes)) if len(sizes) == 1 else None

    def decode(item: tuple[str, ImageProbe]) -> np.ndarray | ImageFailure:
        relpath, _ = item
        file = root / relpath
        try:
            return decode_image(file, colour, common, crop_to)
        except Image.DecompressionBombError as exc:
            if not skip_bad:
                raise DataError(_bomb_message(file, exc)) from exc
            return ImageFailure(relpath, "too large to decode")
        except Exception as exc:  # PIL's decoders raise many types; all mean unreadable
            return ImageFailure(relpath, reason(exc))

    decoded = _map_parallel(decode, good)
    arrays: list[np.ndarray] = []
    kept: list[str] = []
    for (relpath, _), result in zip(good, decoded, strict=True):
        if isinstance(result, ImageFailure):
            failures.append(result)
        else:
            arrays.append(result)
            kept.append(relpath)
    if failures and not skip_bad:
        fail_unreadable(root, failures)
    if not arrays:
        raise DataError(
            f"none of the {len(relpaths)} image file(s) in {root} could be read "
            f"(first: {failures[0].relpath}, {failures[0].reason})"
        )
    if failures:
        logger.warning("%s: skipped %d unreadable image file(s)", root, len(failures))

    data = torch.from_numpy(np.stack(arrays))
    labels, class_names = folder_labels(root, kept)
    dataset = ArrayDataset(
        data=data,
        labels=labels,
        name=root.resolve().name or str(root),
        paths=kept,
        class_names=class_names,
        skipped=sorted(failure.relpath for failure in failures),
    )
    dataset.validate()
    return dataset


def folder_labels(root: Path, relpaths: list[str]) -> tuple[np.ndarray | None, list[str] | None]:
    """Labels from first-level sub-folders, when there are two or more and no loose files."""
    tops = [relpath.split("/", 1)[0] if "/" in relpath else None for relpath in relpaths]
    folders = {top for top in tops if top is not None}
    if len(folders) < 2:
        return None, None
    if None in tops:
        logger.warning(
            "%s: images both at the top level and in sub-folders; treating them as unlabelled",
            root,
        )
        return None, None
    class_names = sorted(folders)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[top] for top in tops if top is not None], dtype=np.int64)
    return labels, class_names
