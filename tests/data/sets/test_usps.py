"""Tests of USPS (``data/sets/usps.py``): its HDF5 reader, from the shared copy, small
files built here and fuzzed ones, and the registered set."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import FUZZ, damage
from hypothesis import event, given
from hypothesis import strategies as st

from contraclust.data import (
    load_dataset,
    read_usps_h5,
)
from contraclust.errors import DataError

USPS_COUNTS = [1553, 1269, 929, 824, 852, 716, 834, 792, 708, 821]  # train + test


def test_usps_from_data_root(data_root: Path) -> None:
    dataset = load_dataset("usps", root=data_root)
    assert tuple(dataset.data.shape) == (9298, 1, 16, 16)
    assert dataset.labels is not None
    assert np.bincount(dataset.labels).tolist() == USPS_COUNTS


# --------------------------------------------------------------------------- USPS


def test_usps_h5_from_shared_data(shared_file) -> None:
    arrays = read_usps_h5(shared_file("usps.h5"))
    assert arrays["train_x"].shape == (7291, 1, 16, 16)
    assert arrays["test_x"].shape == (2007, 1, 16, 16)
    assert arrays["train_x"].dtype == np.uint8
    assert arrays["train_y"].dtype == np.int64
    assert arrays["train_y"].shape == (7291,)
    assert np.bincount(arrays["test_y"]).tolist() == [
        359,
        264,
        198,
        166,
        200,
        160,
        170,
        147,
        166,
        177,
    ]
    with h5py.File(shared_file("usps.h5"), "r") as handle:
        first = handle["train/data"][0]
    expected = np.rint(first * 255).astype(np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(arrays["train_x"][0, 0], expected)


def _write_usps(path: Path, drop: str | None = None, scale: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as handle:
        for split, n in (("train", 5), ("test", 3)):
            if f"{split}/data" != drop:
                handle[f"{split}/data"] = rng.random((n, 256), dtype=np.float32) * scale
            if f"{split}/target" != drop:
                handle[f"{split}/target"] = rng.integers(0, 10, n)
    return path


def test_usps_h5_synthetic_round_trip(tmp_path: Path) -> None:
    arrays = read_usps_h5(_write_usps(tmp_path / "usps.h5"))
    assert arrays["train_x"].shape == (5, 1, 16, 16)
    assert arrays["test_y"].shape == (3,)


def test_usps_h5_missing_key(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no 'test/target' dataset"):
        read_usps_h5(_write_usps(tmp_path / "usps.h5", drop="test/target"))


def test_usps_h5_values_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"outside \[0, 1\]"):
        read_usps_h5(_write_usps(tmp_path / "usps.h5", scale=255.0))


def test_usps_h5_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "usps.h5"
    path.write_bytes(b"definitely not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        read_usps_h5(path)


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
