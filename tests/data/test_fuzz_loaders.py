"""Fuzzing of the file loaders not fuzzed next to their own tests: STL-10 binaries,
USPS HDF5 and image folders. (IDX and .npy/.npz: test_data_formats.py; CIFAR pickle
and binary: test_data_cifar.py.)

Each loader gets random bytes and damaged or oddly shaped versions of a valid file,
and must either load cleanly or raise :class:`DataError`; any other exception fails.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from contraclust.data.readers.images import load_image_folder
from contraclust.data.sets.stl10 import STL10_IMAGE_BYTES, read_stl10_images, read_stl10_labels
from contraclust.data.sets.usps import read_usps_h5
from contraclust.errors import DataError

#: Examples per fuzz test; with the tests below about 1,000 per run, in a few seconds.
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def damage(data: st.DataObject, valid: bytes) -> bytes:
    """``valid`` cut short, with a few bytes changed, or both."""
    blob = bytearray(valid)
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    return bytes(blob)


def noise(seed: int, size: int) -> bytes:
    """``size`` random bytes (hypothesis draws the seed: large blobs stay cheap)."""
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------- STL-10


@FUZZ
@given(
    count=st.integers(0, 2),
    extra=st.sampled_from([0, 0, 1, -1, 100, -27_000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_stl10_images_load_or_data_error(count: int, extra: int, seed: int) -> None:
    size = max(0, count * STL10_IMAGE_BYTES + extra)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train_X.bin"
        path.write_bytes(noise(seed, size))
        try:
            images = read_stl10_images(path)
        except DataError:
            event("DataError")
            assert size == 0 or size % STL10_IMAGE_BYTES
            return
        event("loaded")
    assert images.shape == (size // STL10_IMAGE_BYTES, 3, 96, 96)
    assert images.dtype == np.uint8


@FUZZ
@given(
    blob=st.binary(max_size=40) | st.lists(st.integers(0, 11), max_size=40).map(bytes),
    count=st.none() | st.integers(0, 40),
)
def test_stl10_labels_load_or_data_error(blob: bytes, count: int | None) -> None:
    count = len(blob) if count is None else count  # None: as many labels as images
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train_y.bin"
        path.write_bytes(blob)
        try:
            labels = read_stl10_labels(path, count)
        except DataError:
            event("DataError")
            return
        event("loaded")
    assert labels.shape == (count,) and labels.min(initial=0) >= 0 and labels.max(initial=0) < 10


# --------------------------------------------------------------------------- USPS HDF5


def usps_h5_bytes(parts: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for key, array in parts.items():
            handle.create_dataset(key, data=array)
    return buffer.getvalue()


_VALID_USPS = usps_h5_bytes(
    {
        "train/data": np.linspace(0, 1, 3 * 256, dtype=np.float32).reshape(3, 256),
        "train/target": np.array([0, 1, 9]),
        "test/data": np.zeros((2, 256), np.float64),
        "test/target": np.array([3.0, 4.0]),
    }
)

_DTYPES = st.sampled_from([np.float32, np.float64, np.uint8, np.int64, np.bool_, "S3"])


@st.composite
def usps_like(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """The USPS keys (some left out) with random shapes, types and values."""
    parts: dict[str, np.ndarray] = {}
    for key in ("train/data", "train/target", "test/data", "test/target"):
        if draw(st.integers(0, 9)) == 0:
            continue
        shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 256]), max_size=3)))
        values = np.random.default_rng(draw(st.integers(0, 99))).normal(0.5, 1, size=shape)
        parts[key] = values.astype(draw(_DTYPES))
    return parts


def read_usps_or_data_error(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "usps.h5"
        path.write_bytes(blob)
        try:
            arrays = read_usps_h5(path)
        except DataError:
            event("DataError")
            return
        event("loaded")
    for split in ("train", "test"):
        assert arrays[f"{split}_x"].dtype == np.uint8
        assert arrays[f"{split}_x"].shape[1:] == (1, 16, 16)
        assert arrays[f"{split}_y"].shape == (len(arrays[f"{split}_x"]),)


@FUZZ
@given(data=st.data(), mode=st.sampled_from(["random", "damaged", "shapes"]))
def test_usps_h5_load_or_data_error(data: st.DataObject, mode: str) -> None:
    if mode == "random":
        blob = data.draw(st.binary(max_size=600))
    elif mode == "damaged":
        blob = damage(data, _VALID_USPS)
    else:
        blob = usps_h5_bytes(data.draw(usps_like()))
    read_usps_or_data_error(blob)


def test_the_usps_fuzz_seed_file_is_valid() -> None:
    """The damaged-file fuzzer starts from a file that reads cleanly."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "usps.h5"
        path.write_bytes(_VALID_USPS)
        arrays = read_usps_h5(path)
    assert arrays["train_y"].tolist() == [0, 1, 9] and arrays["test_y"].tolist() == [3, 4]


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
