"""Tests of the array readers (``data/readers/arrays.py``): ``.npy``/``.npz`` files and
arrays in memory."""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contraclust.data import array_to_dataset, load_array_file
from contraclust.errors import DataError

# --------------------------------------------------------------------------- array files

RNG = np.random.default_rng(42)
GREY = RNG.integers(0, 256, (4, 5, 6), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (GREY, GREY[:, None]),
        (GREY[..., None], GREY[:, None]),
        (GREY[:, None], GREY[:, None]),
        (COLOUR, np.moveaxis(COLOUR, 3, 1)),
        (np.moveaxis(COLOUR, 3, 1), np.moveaxis(COLOUR, 3, 1)),
        (GREY.astype(np.int64), GREY[:, None]),
        (GREY.astype(np.float64) / 255.0, GREY[:, None]),
        (GREY.astype(np.float32) / 255.0, GREY[:, None]),
    ],
    ids=["NHW", "NHW1", "N1HW", "NHW3", "N3HW", "int64", "float64", "float32"],
)
def test_npy_image_shapes(tmp_path: Path, array: np.ndarray, expected: np.ndarray) -> None:
    path = tmp_path / "images.npy"
    np.save(path, array)
    dataset = load_array_file(path)
    assert dataset.kind == "image"
    assert dataset.data.dtype == torch.uint8
    assert dataset.labels is None
    assert dataset.name == "images"
    np.testing.assert_array_equal(dataset.data.numpy(), expected)


def test_npy_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 2, 4), dtype=np.uint8)
    rgba[0, 0, 0] = (200, 100, 0, 255)  # opaque: kept
    rgba[0, 0, 1] = (0, 0, 0, 0)  # transparent: white
    rgba[1, 0, 0] = (0, 0, 0, 128)  # half black over white
    rgba[1, 0, 1] = (100, 100, 100, 255)
    np.save(tmp_path / "rgba.npy", rgba)
    data = load_array_file(tmp_path / "rgba.npy").data
    assert tuple(data.shape) == (2, 3, 2, 2)
    assert data[0, :, 0, 0].tolist() == [200, 100, 0]
    assert data[0, :, 0, 1].tolist() == [255, 255, 255]
    assert data[1, :, 0, 0].tolist() == [127, 127, 127]
    assert data[1, :, 0, 1].tolist() == [100, 100, 100]


def test_ambiguous_rank4_reads_channels_first(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 8, 3), dtype=np.uint8))
    assert load_array_file(tmp_path / "a.npy").input_shape == (3, 8, 3)


def test_float_images_are_scaled_and_rounded(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.array([[[0.0, 0.5, 1.0, 0.002]]], dtype=np.float32))
    assert load_array_file(tmp_path / "f.npy").data.flatten().tolist() == [0, 128, 255, 1]


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.full((2, 4, 4), 2.0), r"span \[2, 2\]; expected values in \[0, 1\]"),
        (np.full((2, 4, 4), -1, dtype=np.int16), "span -1..-1; expected 0..255"),
        (np.full((2, 4, 4), np.nan), "NaN/inf pixel"),
        (np.zeros(5), r"found shape \(5,\); accepted"),
        (np.zeros((2, 3, 4, 5, 6)), r"found shape \(2, 3, 4, 5, 6\); accepted"),
        (np.zeros((2, 5, 5, 5)), r"found shape \(2, 5, 5, 5\)"),
        (np.zeros((2, 4, 4, 2)), r"found shape \(2, 4, 4, 2\)"),
        (np.zeros((0, 4)), "empty array"),
        (np.zeros((3, 0)), "no features"),
        (np.array([["a", "b"]]), "not numbers"),
        (np.zeros((2, 2), dtype=np.complex64), "not numbers"),
    ],
    ids=[
        "float>1",
        "negative-int",
        "nan-image",
        "rank1",
        "rank5",
        "5-channels",
        "2-channels-last",
        "zero-rows",
        "zero-features",
        "strings",
        "complex",
    ],
)
def test_rejected_arrays(tmp_path: Path, array: np.ndarray, pattern: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError, match=pattern) as info:
        load_array_file(path)
    assert str(path) in str(info.value)


def test_vectors_become_float32(tmp_path: Path) -> None:
    vectors = RNG.normal(size=(7, 3))
    np.save(tmp_path / "v.npy", vectors)
    dataset = load_array_file(tmp_path / "v.npy")
    assert dataset.kind == "vector"
    assert dataset.data.dtype == torch.float32
    assert dataset.input_shape == (3,)
    np.testing.assert_allclose(dataset.data.numpy(), vectors, rtol=1e-6)


def test_nan_vectors_name_count_and_first_row(tmp_path: Path) -> None:
    vectors = np.zeros((10, 4), dtype=np.float32)
    vectors[6, 1] = np.nan
    vectors[6, 2] = np.inf
    vectors[8, 0] = np.nan
    np.save(tmp_path / "v.npy", vectors)
    with pytest.raises(DataError, match=r"3 NaN/inf values in the vectors \(first in row 6\)"):
        load_array_file(tmp_path / "v.npy")


@pytest.mark.parametrize(
    ("data_key", "label_key"),
    [("x", "y"), ("X", "labels"), ("data", "targets"), ("images", "target"), ("features", "y")],
)
def test_npz_keys(tmp_path: Path, data_key: str, label_key: str) -> None:
    labels = np.array([0, 1, 1, 2])
    np.savez(tmp_path / "set.npz", **{data_key: GREY, label_key: labels, "extra": np.ones(3)})
    dataset = load_array_file(tmp_path / "set.npz")
    assert dataset.input_shape == (1, 5, 6)
    assert dataset.labels is not None
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(dataset.labels, labels)


def test_npz_compressed_lone_array_is_unlabelled(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "one.npz", whatever=COLOUR)
    dataset = load_array_file(tmp_path / "one.npz")
    assert dataset.labels is None
    assert dataset.input_shape == (3, 5, 6)


def test_npz_without_known_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=GREY, b=GREY)
    with pytest.raises(DataError, match=r"has arrays \(a, b\) but none named x"):
        load_array_file(tmp_path / "two.npz")


def test_npz_with_two_data_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", x=GREY, data=GREY)
    with pytest.raises(DataError, match="several data arrays"):
        load_array_file(tmp_path / "two.npz")


def test_string_labels_become_class_names(tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", x=GREY, y=np.array(["cat", "dog", "cat", "ant"]))
    dataset = load_array_file(tmp_path / "s.npz")
    assert dataset.class_names == ["ant", "cat", "dog"]
    assert dataset.labels is not None
    assert dataset.labels.tolist() == [1, 2, 1, 0]


@pytest.mark.parametrize("suffix", [".npy", ".txt", ".csv"])
def test_separate_labels_file(tmp_path: Path, suffix: str) -> None:
    np.save(tmp_path / "x.npy", GREY)
    labels = np.array([3, 1, 0, 3])
    if suffix == ".npy":
        np.save(tmp_path / "y.npy", labels.astype(np.float64))
    else:
        (tmp_path / f"y{suffix}").write_text("\n".join(str(v) for v in labels) + "\n")
    dataset = load_array_file(tmp_path / "x.npy", labels_path=tmp_path / f"y{suffix}")
    assert dataset.labels is not None
    assert dataset.labels.tolist() == labels.tolist()


def test_labels_length_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", x=GREY, y=np.arange(3))
    with pytest.raises(DataError, match="3 labels for 4 samples"):
        load_array_file(tmp_path / "m.npz")


def test_fractional_labels_are_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", GREY)
    np.save(tmp_path / "y.npy", np.array([0.5, 1, 2, 3]))
    with pytest.raises(DataError, match="whole numbers"):
        load_array_file(tmp_path / "x.npy", labels_path=tmp_path / "y.npy")


def test_truncated_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.zeros((100, 8), dtype=np.float32))
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"t\.npy is truncated: expected 3200 bytes .* found 3100"):
        load_array_file(tmp_path / "t.npy")


def test_object_array_npy_is_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects"):
        load_array_file(tmp_path / "o.npy")


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("junk.npy", "not a NumPy .npy array"),
        ("junk.npz", "not a valid .npz archive"),
        ("junk.csv", "unsupported array file type"),
    ],
)
def test_not_an_array_file(tmp_path: Path, name: str, pattern: str) -> None:
    (tmp_path / name).write_bytes(b"hello, this is text\n")
    with pytest.raises(DataError, match=pattern):
        load_array_file(tmp_path / name)


def test_missing_array_file(tmp_path: Path) -> None:
    expected = re.escape(f"no such file or directory: {tmp_path / 'x.npy'}")
    with pytest.raises(DataError, match=expected):
        load_array_file(tmp_path / "x.npy")


def _valid_array_file_bytes(data: st.DataObject, as_npz: bool) -> bytes:
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=5)))
    dtype = data.draw(st.sampled_from(["u1", "i2", "f4", "f8", "<U2", "b1", "c8"]))
    array = np.zeros(shape, dtype=dtype)
    buffer = io.BytesIO()
    if as_npz:
        keys = data.draw(
            st.lists(st.sampled_from(["x", "y", "data", "a"]), min_size=1, max_size=2, unique=True)
        )
        np.savez(buffer, **{key: array for key in keys})
    else:
        np.save(buffer, array)
    return buffer.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), as_npz=st.booleans(), mode=st.sampled_from(["random", "cut", "flip"]))
def test_load_array_file_random_bytes_load_or_data_error(
    data: st.DataObject, as_npz: bool, mode: str
) -> None:
    if mode == "random":
        payload = data.draw(st.binary(max_size=200))
    else:
        payload = bytearray(_valid_array_file_bytes(data, as_npz))
        position = data.draw(st.integers(0, max(0, len(payload) - 1)))
        if mode == "cut":
            payload = payload[:position]
        elif payload:
            payload[position] ^= data.draw(st.integers(1, 255))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("random.npz" if as_npz else "random.npy")
        path.write_bytes(bytes(payload))
        try:
            dataset = load_array_file(path)
        except DataError:
            return
        assert len(dataset) >= 1
        dataset.validate()


def test_zip_member_corruption_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    np.savez_compressed(path, x=np.arange(1000, dtype=np.float32).reshape(100, 10))
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 60] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError):
        load_array_file(path)


# --------------------------------------------------------------------------- in memory


def test_array_to_dataset_vectors_and_string_labels() -> None:
    dataset = array_to_dataset(np.ones((3, 2)), np.array(["b", "a", "b"]), name="mem")
    assert dataset.kind == "vector"
    assert dataset.name == "mem"
    assert dataset.class_names == ["a", "b"]
    assert dataset.labels is not None
    assert dataset.labels.tolist() == [1, 0, 1]


def test_array_to_dataset_copies_read_only_input() -> None:
    images = np.zeros((2, 4, 4), dtype=np.uint8)
    images.flags.writeable = False
    dataset = array_to_dataset(images)
    assert dataset.input_shape == (1, 4, 4)
    dataset.data += 1  # would fail or warn on a read-only buffer


def test_array_to_dataset_label_mismatch() -> None:
    with pytest.raises(DataError, match=r"array 'array': 2 labels for 3 samples"):
        array_to_dataset(np.zeros((3, 4)), np.array([0, 1]))
