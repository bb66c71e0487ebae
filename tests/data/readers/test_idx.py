"""Tests of the IDX reader (``data/readers/idx.py``)."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import idx_bytes, write_idx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contraclust.data import read_idx
from contraclust.errors import DataError

# --------------------------------------------------------------------------- IDX

IDX_ARRAYS = [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-128, 0, 127], dtype=np.int8),
    np.array([[-300, 2], [7, 32000]], dtype=np.int16),
    np.array([[1, -(2**31)], [2**31 - 1, 0]], dtype=np.int32),
    np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2),
    np.array([np.pi, -np.e], dtype=np.float64),
    np.zeros((0, 28, 28), dtype=np.uint8),
]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("array", IDX_ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_idx_round_trip(tmp_path: Path, array: np.ndarray, suffix: str) -> None:
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    loaded = read_idx(path)
    assert loaded.dtype == array.dtype.newbyteorder("=")
    assert loaded.dtype.isnative
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_idx_compression_is_detected_from_content(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_without_suffix = tmp_path / "images-idx2-ubyte"
    gz_without_suffix.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_idx_names_file_and_byte_counts(tmp_path: Path, compressed: bool) -> None:
    payload = idx_bytes(np.ones((10, 4, 4), dtype=np.uint8))[:-37]
    path = tmp_path / ("cut.idx.gz" if compressed else "cut.idx")
    path.write_bytes(gzip.compress(payload) if compressed else payload)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "expected 160 bytes" in message
    assert "found 123" in message


def test_gzip_cut_short_is_reported_as_truncated(tmp_path: Path) -> None:
    data = gzip.compress(
        idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 9, 9)).astype(np.uint8))
    )
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated.*expected 4050 bytes"):
        read_idx(path)


def test_idx_with_trailing_bytes_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(np.ones(4, dtype=np.uint8)) + b"junk")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx(path)


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        (b"\x00\x01\x08\x01", "bad magic"),
        (b"PK\x03\x04", "bad magic"),
        (b"\x00\x00\x07\x01", "unknown data type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
    ],
)
def test_bad_idx_header(tmp_path: Path, header: bytes, pattern: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(header + b"\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x00", b"\x00\x00\x08"])
def test_idx_shorter_than_its_magic(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "short.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_missing_idx_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        read_idx(tmp_path / "absent.gz")


def _random_idx_like(data: st.DataObject) -> bytes:
    """Bytes that are often almost-valid IDX: a plausible header and a random payload."""
    code = data.draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
    dims = data.draw(st.lists(st.integers(0, 6), min_size=0, max_size=4))
    if data.draw(st.booleans()):
        dims = [*dims, data.draw(st.integers(0, 2**32 - 1))]
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + data.draw(st.binary(max_size=64))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), compress=st.booleans(), raw=st.booleans())
def test_read_idx_random_bytes_load_or_data_error(
    data: st.DataObject, compress: bool, raw: bool
) -> None:
    payload = data.draw(st.binary(max_size=80)) if raw else _random_idx_like(data)
    if compress:
        payload = gzip.compress(payload)
        cut = data.draw(st.integers(0, len(payload)))
        payload = payload[:cut] if data.draw(st.booleans()) else payload
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.idx"
        path.write_bytes(payload)
        try:
            array = read_idx(path)
        except DataError:
            return
        assert isinstance(array, np.ndarray)
