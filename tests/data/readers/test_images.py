"""Tests of the image-folder reader (``data/readers/images.py``): layout, labels, colour,
size and bad files, fuzzed files, and resizing."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import damage
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from contraclust.data.readers.images import DEFAULT_IMAGE_SIZE, load_image_folder, resize_images
from contraclust.errors import DataError


def _grey(path: Path, value: int = 100, size: tuple[int, int] = (6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def _rgb(path: Path, colour: tuple[int, int, int] = (10, 20, 30), size=(6, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _truncated_png(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def test_sub_folders_give_sorted_class_labels(tmp_path: Path) -> None:
    for name, count in (("zebra", 2), ("ant", 3), ("cat", 1)):
        for i in range(count):
            _grey(tmp_path / name / f"{i}.png", value=10 * i)
    dataset = load_image_folder(tmp_path)
    assert dataset.class_names == ["ant", "cat", "zebra"]
    assert dataset.labels is not None
    assert dataset.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert dataset.paths == [
        "ant/0.png",
        "ant/1.png",
        "ant/2.png",
        "cat/0.png",
        "zebra/0.png",
        "zebra/1.png",
    ]
    assert dataset.data.dtype == torch.uint8
    assert dataset.input_shape == (1, 4, 6)
    assert dataset.name == tmp_path.name


def test_nested_files_count_for_their_first_level_folder(tmp_path: Path) -> None:
    _grey(tmp_path / "a" / "deep" / "er" / "x.png")
    _grey(tmp_path / "b" / "y.jpg")
    dataset = load_image_folder(tmp_path)
    assert dataset.paths == ["a/deep/er/x.png", "b/y.jpg"]
    assert dataset.labels is not None
    assert dataset.labels.tolist() == [0, 1]


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    for i in (3, 1, 2):
        _grey(tmp_path / f"img{i}.bmp", value=i)
    dataset = load_image_folder(tmp_path)
    assert dataset.labels is None
    assert dataset.class_names is None
    assert dataset.paths == ["img1.bmp", "img2.bmp", "img3.bmp"]
    assert dataset.data[:, 0, 0, 0].tolist() == [1, 2, 3]


def test_single_sub_folder_is_unlabelled(tmp_path: Path) -> None:
    _grey(tmp_path / "only" / "a.png")
    _grey(tmp_path / "only" / "b.png")
    assert load_image_folder(tmp_path).labels is None


def test_loose_files_beside_sub_folders_make_it_unlabelled(tmp_path: Path) -> None:
    _grey(tmp_path / "a" / "1.png")
    _grey(tmp_path / "b" / "1.png")
    _grey(tmp_path / "stray.png")
    assert load_image_folder(tmp_path).labels is None


def test_hidden_and_non_image_files_are_ignored(tmp_path: Path) -> None:
    _grey(tmp_path / "a.png")
    _grey(tmp_path / ".hidden.png")
    _grey(tmp_path / ".cache" / "b.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "labels.csv").write_text("a,1\n")
    dataset = load_image_folder(tmp_path)
    assert dataset.paths == ["a.png"]


def test_all_formats_and_upper_case_extensions(tmp_path: Path) -> None:
    for suffix in ("png", "JPG", "jpeg", "bmp", "gif", "webp", "tif", "TIFF"):
        _grey(tmp_path / f"x.{suffix}", value=128)
    dataset = load_image_folder(tmp_path)
    assert len(dataset) == 8
    assert (dataset.data.int() - 128).abs().max() <= 2  # JPEG/WEBP are lossy


def test_same_size_non_square_images_keep_their_size(tmp_path: Path) -> None:
    _grey(tmp_path / "a.png", size=(10, 7))
    _grey(tmp_path / "b.png", size=(10, 7))
    assert load_image_folder(tmp_path).input_shape == (1, 7, 10)


def test_mixed_sizes_default_to_64(tmp_path: Path) -> None:
    _grey(tmp_path / "a.png", size=(100, 80))
    _grey(tmp_path / "b.png", size=(30, 50))
    dataset = load_image_folder(tmp_path)
    assert dataset.input_shape == (1, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE) == (1, 64, 64)


def test_image_size_resizes_shorter_side_and_centre_crops(tmp_path: Path) -> None:
    # left half black, right half white, 40×20: the centre crop keeps both halves
    array = np.zeros((20, 40), dtype=np.uint8)
    array[:, 20:] = 255
    Image.fromarray(array).save(tmp_path / "wide.png")
    dataset = load_image_folder(tmp_path, image_size=10)
    assert dataset.input_shape == (1, 10, 10)
    row = dataset.data[0, 0, 5].tolist()
    assert row[0] == 0
    assert row[-1] == 255


def test_jpeg_draft_decoding_reaches_requested_size(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (400, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.jpg", quality=90)
    Image.fromarray(noise[:200]).save(tmp_path / "small.jpg", quality=90)
    dataset = load_image_folder(tmp_path, image_size=32)
    assert dataset.input_shape == (3, 32, 32)


def test_grey_and_colour_mix_becomes_rgb(tmp_path: Path) -> None:
    _grey(tmp_path / "a.png", value=77)
    _rgb(tmp_path / "b.png", colour=(1, 2, 3))
    dataset = load_image_folder(tmp_path)
    assert dataset.input_shape == (3, 4, 6)
    assert dataset.data[0, :, 0, 0].tolist() == [77, 77, 77]
    assert dataset.data[1, :, 0, 0].tolist() == [1, 2, 3]


def test_rgba_la_and_palette_transparency_are_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    rgba[0, 1] = (0, 0, 0, 0)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    dataset = load_image_folder(tmp_path)
    assert dataset.input_shape == (3, 2, 2)
    assert dataset.data[0, :, 0, 0].tolist() == [255, 0, 0]
    assert dataset.data[0, :, 0, 1].tolist() == [255, 255, 255]

    grey_folder = tmp_path / "la"
    grey_folder.mkdir()
    la = np.zeros((2, 2, 2), dtype=np.uint8)
    la[..., 1] = 255
    la[0, 1] = (0, 0)
    Image.fromarray(la, mode="LA").save(grey_folder / "b.png")
    grey = load_image_folder(grey_folder)
    assert grey.input_shape == (1, 2, 2)
    assert grey.data[0, 0].tolist() == [[0, 255], [0, 0]]

    palette_folder = tmp_path / "pal"
    palette_folder.mkdir()
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 50, 50, 50] + [0, 0, 0] * 254)
    image.putdata([0, 1])
    image.save(palette_folder / "c.png", transparency=0)
    palette = load_image_folder(palette_folder)
    assert palette.input_shape == (1, 1, 2)  # grey palette stays one channel
    assert palette.data[0, 0, 0].tolist() == [255, 50]


def test_colour_palette_is_colour(tmp_path: Path) -> None:
    image = Image.new("P", (2, 2))
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    image.save(tmp_path / "red.gif")
    assert load_image_folder(tmp_path).input_shape == (3, 2, 2)


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    array = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    dataset = load_image_folder(tmp_path)
    assert dataset.data[0, 0, 0].tolist() == [0, 100, 255]


def test_bad_files_are_named_or_skipped(tmp_path: Path) -> None:
    _grey(tmp_path / "good1.png")
    _grey(tmp_path / "good2.png")
    _truncated_png(tmp_path / "cut.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("I am not a PNG")
    with pytest.raises(DataError) as info:
        load_image_folder(tmp_path)
    message = str(info.value)
    assert "3 unreadable image file(s)" in message
    for name in ("cut.png", "empty.jpg", "text.png"):
        assert name in message
    assert "empty file" in message
    assert "skip_bad" in message
    assert "\n" not in message

    dataset = load_image_folder(tmp_path, skip_bad=True)
    assert dataset.paths == ["good1.png", "good2.png"]
    assert dataset.skipped == ["cut.png", "empty.jpg", "text.png"]


def test_error_names_first_three_and_counts_the_rest(tmp_path: Path) -> None:
    _grey(tmp_path / "ok.png")
    for i in range(5):
        (tmp_path / f"bad{i}.png").write_bytes(b"")
    with pytest.raises(
        DataError, match=r"5 unreadable .*bad0\.png.*bad1\.png.*bad2\.png.* and 2 more"
    ):
        load_image_folder(tmp_path)


def test_all_files_bad_even_when_skipping(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1 image file"):
        load_image_folder(tmp_path, skip_bad=True)


def test_decompression_bomb_gets_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _grey(tmp_path / "huge.png", size=(40, 40))
    _grey(tmp_path / "fine.png", size=(5, 5))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"huge\.png is too large to decode safely"):
        load_image_folder(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is empty"):
        load_image_folder(tmp_path)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("hi")
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(DataError, match=r"no image files in .*found 2 other file\(s\)"):
        load_image_folder(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load_image_folder(tmp_path / "nope")


def test_many_files_use_the_thread_pool_and_keep_order(tmp_path: Path) -> None:
    for i in range(100):
        _grey(tmp_path / f"{i:03d}.png", value=i, size=(8, 8))
    dataset = load_image_folder(tmp_path)
    assert len(dataset) == 100
    assert dataset.data[:, 0, 0, 0].tolist() == list(range(100))


def test_decompression_bomb_is_skipped_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _grey(tmp_path / "huge.png", size=(40, 40))
    _grey(tmp_path / "fine.png", size=(5, 5))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    dataset = load_image_folder(tmp_path, skip_bad=True)
    assert dataset.paths == ["fine.png"]
    assert dataset.skipped == ["huge.png"]


def test_resize_images_short_side_then_centre_crop() -> None:
    images = torch.zeros(2, 1, 10, 20, dtype=torch.uint8)
    images[:, :, :, 10:] = 255
    out = resize_images(images, 6)
    assert tuple(out.shape) == (2, 1, 6, 6)
    assert out.dtype == torch.uint8
    assert int(out[0, 0, 3, 0]) == 0
    assert int(out[0, 0, 3, 5]) == 255
    assert resize_images(out, 6) is out


# --------------------------------------------------------------------------- images


def encoded(image_format: str, seed: int) -> bytes:
    mode = "L" if image_format == "GIF" else "RGB"
    pixels = np.random.default_rng(seed).integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=image_format)
    return buffer.getvalue()


_VALID_IMAGES = {
    suffix: encoded(image_format, 7)
    for suffix, image_format in (("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"), ("gif", "GIF"))
}


@st.composite
def image_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(sorted(_VALID_IMAGES)))
    kind = draw(st.sampled_from(["valid", "damaged", "random"]))
    if kind == "valid":
        return suffix, _VALID_IMAGES[suffix]
    if kind == "random":
        return suffix, draw(st.binary(max_size=300))
    return suffix, damage(draw(st.data()), _VALID_IMAGES[suffix])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(image_files(), min_size=1, max_size=4),
    skip_bad=st.booleans(),
    image_size=st.sampled_from([None, 8]),
)
def test_image_folder_loads_or_data_error(
    files: list[tuple[str, bytes]], skip_bad: bool, image_size: int | None
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for i, (suffix, blob) in enumerate(files):
            (Path(folder) / f"{i}.{suffix}").write_bytes(blob)
        try:
            dataset = load_image_folder(folder, image_size=image_size, skip_bad=skip_bad)
        except DataError:
            event("DataError")
            return
        event("loaded")
    dataset.validate()
    assert 1 <= len(dataset) == len(files) - len(dataset.skipped)
    assert skip_bad or not dataset.skipped
