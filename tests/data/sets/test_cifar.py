"""Tests of the CIFAR readers and sets: the real test batch, both layouts, bad input."""

from __future__ import annotations

import io
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contraclust.data import load_dataset
from contraclust.data.readers.safe_pickle import load_data_pickle
from contraclust.data.sets.cifar import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR100_SUPERCLASSES,
    read_cifar_binary,
    read_cifar_pickle,
)
from contraclust.errors import DataError

FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


# --------------------------------------------------------------------------- writers


def _short_string(text: str) -> bytes:
    data = text.encode("latin-1")
    assert len(data) < 256
    return b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING, a Python 2 str


def _int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def python2_batch(data: np.ndarray, labels: dict[str, list[int]], batch_label: str) -> bytes:
    """A batch pickled the way Python 2's cPickle wrote the official CIFAR files."""
    assert data.dtype == np.uint8 and data.ndim == 2
    raw = data.tobytes()
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        b"cnumpy\nndarray\n" + _int(0) + b"\x85" + _short_string("b") + b"\x87R"
        b"(" + _int(1) + _int(data.shape[0]) + _int(data.shape[1]) + b"\x86"
        b"cnumpy\ndtype\n" + _short_string("u1") + _int(0) + _int(1) + b"\x87R"
        b"(" + _int(3) + _short_string("|") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb"
        b"\x89" + b"T" + struct.pack("<i", len(raw)) + raw + b"tb"
    )
    body = _short_string("data") + array
    for key, values in labels.items():
        body += _short_string(key) + b"](" + b"".join(_int(v) for v in values) + b"e"
    body += _short_string("batch_label") + _short_string(batch_label)
    body += _short_string("filenames") + b"](" + _short_string("x.png") * len(data) + b"e"
    return b"\x80\x02}(" + body + b"u."


def cifar10_binary(images: np.ndarray, labels: np.ndarray) -> bytes:
    records = np.concatenate(
        [labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1
    )
    return records.tobytes()


def small_images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)


# --------------------------------------------------------------------------- the real batch


@pytest.fixture(scope="module")
def cifar10_test(data_root: Path):
    return load_dataset("cifar10", root=data_root, split="test")


def test_cifar10_test_batch_from_the_data_root(cifar10_test) -> None:
    dataset = cifar10_test
    assert dataset.name == "cifar10"
    assert tuple(dataset.data.shape) == (10000, 3, 32, 32)
    assert dataset.data.dtype == torch.uint8
    assert dataset.labels is not None
    assert dataset.labels[:10].tolist() == FIRST_TEST_LABELS
    assert np.bincount(dataset.labels).tolist() == [1000] * 10
    assert dataset.class_names == list(CIFAR10_CLASSES)
    # the published per-channel mean of the test images: planes are R, G, B in order
    mean = dataset.data.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4942, 0.4851, 0.4504]), atol=2e-4)


def test_cifar10_default_split_needs_the_train_batches(data_root: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=data_root)
    message = str(info.value)
    assert "cifar-10-batches-bin/{data_batch_1.bin, data_batch_2.bin" in message
    assert "for split 'all'" in message
    assert "cifar-10-batches-py/{data_batch_1" in message  # the other layout is named
    assert "contraclust datasets download cifar10" in message
    assert "test_batch.bin" not in message  # it is there
    assert "\n" not in message


def test_python_layout_reads_back_equal(cifar10_test, tmp_path: Path) -> None:
    images = cifar10_test.data.numpy()
    labels = cifar10_test.labels
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    blob = python2_batch(images.reshape(10000, 3072), {"labels": labels.tolist()}, "testing")
    (folder / "test_batch").write_bytes(blob)
    # the hand-written pickle is what Python's own pickle reads as the official batch
    reference = pickle.loads(blob, encoding="latin1")
    assert np.array_equal(reference["data"], images.reshape(10000, 3072))

    again = load_dataset("cifar10", root=tmp_path, split="test")

    assert torch.equal(again.data, cifar10_test.data)
    assert np.array_equal(again.labels, labels)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("key_type", [str, bytes])
def test_python3_pickles_of_each_protocol(protocol: int, key_type: type, tmp_path: Path) -> None:
    images = small_images(3, seed=protocol)
    batch = {
        key_type(b"data" if key_type is bytes else "data"): images.reshape(3, 3072),
        key_type(b"labels" if key_type is bytes else "labels"): [7, 0, 9],
        "filenames": ["a.png", "b.png", "c.png"],
    }
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    read_images, read_labels = read_cifar_pickle(path, ("labels",), (10,))
    assert np.array_equal(read_images, images)
    assert read_labels[:, 0].tolist() == [7, 0, 9]
    assert read_images.flags.writeable


def test_both_layouts_present_and_split_train(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10"
    for i in range(1, 6):
        images = small_images(2, seed=i)
        labels = np.array([i, i + 1])
        (folder / "cifar-10-batches-py").mkdir(parents=True, exist_ok=True)
        (folder / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(
            python2_batch(images.reshape(2, -1), {"labels": labels.tolist()}, f"batch {i}")
        )
    train = load_dataset("cifar10", root=tmp_path, split="train")
    assert len(train) == 10
    assert train.labels is not None
    assert train.labels.tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    assert torch.equal(train.data[:2], torch.from_numpy(small_images(2, seed=1)))


# --------------------------------------------------------------------------- CIFAR-100


def write_cifar100(root: Path, binary: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = small_images(7, seed=3)
    fine = np.array([0, 99, 50, 17, 3, 42, 64])
    coarse = np.array([4, 19, 0, 9, 8, 12, 4])
    if binary:
        folder = root / "cifar100" / "cifar-100-binary"
        folder.mkdir(parents=True)
        records = np.concatenate(
            [coarse[:, None], fine[:, None], images.reshape(7, -1)], axis=1
        ).astype(np.uint8)
        (folder / "train.bin").write_bytes(records[:5].tobytes())
        (folder / "test.bin").write_bytes(records[5:].tobytes())
    else:
        folder = root / "cifar100" / "cifar-100-python"
        folder.mkdir(parents=True)
        for name, part in (("train", slice(0, 5)), ("test", slice(5, 7))):
            labels = {"fine_labels": fine[part].tolist(), "coarse_labels": coarse[part].tolist()}
            blob = python2_batch(images[part].reshape(-1, 3072), labels, name)
            (folder / name).write_bytes(blob)
    return images, fine, coarse


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "python"])
def test_cifar100_fine_and_superclasses(binary: bool, tmp_path: Path) -> None:
    images, fine, coarse = write_cifar100(tmp_path, binary)

    hundred = load_dataset("cifar100", root=tmp_path)
    twenty = load_dataset("cifar100-20", root=tmp_path)

    assert torch.equal(hundred.data, torch.from_numpy(images))
    assert torch.equal(twenty.data, hundred.data)
    assert hundred.labels.tolist() == fine.tolist()
    assert twenty.labels.tolist() == coarse.tolist()
    assert hundred.class_names == list(CIFAR100_CLASSES)
    assert twenty.class_names == list(CIFAR100_SUPERCLASSES)
    assert twenty.num_classes == 20
    assert len(load_dataset("cifar100-20", root=tmp_path, split="train")) == 5
    assert load_dataset("cifar100", root=tmp_path, split="test").labels.tolist() == [42, 64]


def test_superclass_names() -> None:
    assert len(CIFAR100_SUPERCLASSES) == 20 == len(set(CIFAR100_SUPERCLASSES))
    assert CIFAR100_SUPERCLASSES[0] == "aquatic_mammals"
    assert CIFAR100_SUPERCLASSES[-1] == "vehicles_2"
    assert len(CIFAR100_CLASSES) == 100 == len(set(CIFAR100_CLASSES))


# --------------------------------------------------------------------------- refused pickles


class RunsOpen:
    """Unpickling this calls open(marker, "w"): creating the marker proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class RunsSystem:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    ("payload", "named"), [(RunsOpen, r"'(io|builtins)\.open'"), (RunsSystem, r"'\w+\.system'")]
)
def test_malicious_pickle_is_refused_and_never_runs(
    payload: type, named: str, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    batch = {"data": np.zeros((1, 3072), np.uint8), "labels": [payload(marker)]}
    path = tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=tmp_path, split="test")
    message = str(info.value)
    assert "refusing to read it" in message
    assert re.search(rf"asks for {named}", message)
    assert "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (np.array([1, "a"], dtype=object), "not a plain number type"),
        (np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]), "not a plain number type"),
        ({1, 2}, "type set"),
        (np.float32(1.5), r"numpy\.(_core|core)\.multiarray\.scalar"),
    ],
    ids=["object-array", "structured", "set", "numpy-scalar"],
)
def test_unexpected_types_are_refused(value: object, words: str, tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": value}, protocol=4))
    with pytest.raises(DataError, match=words):
        load_data_pickle(path)


def test_python2_pickle_naming_another_array_class_is_refused(tmp_path: Path) -> None:
    blob = python2_batch(np.zeros((1, 3072), np.uint8), {"labels": [0]}, "b")
    path = tmp_path / "batch"
    path.write_bytes(blob.replace(b"cnumpy\nndarray\n", b"cnumpy\nmatrix\n"))
    with pytest.raises(DataError, match=r"'numpy\.matrix'"):
        load_data_pickle(path)


@pytest.mark.parametrize(
    ("batch", "words"),
    [
        ([1, 2], "not a CIFAR batch dict"),
        ({"labels": [0]}, "no 'data' array"),
        ({"data": np.zeros((1, 3072), np.float32), "labels": [0]}, "expected uint8"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "for 2 images"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": [10]}, "span 10..10"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": ["a"]}, "not a list of integers"),
        ({"data": np.zeros((1, 3072), np.uint8)}, "no 'labels' entry"),
    ],
)
def test_wrong_batch_contents(batch: object, words: str, tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DataError, match=words):
        read_cifar_pickle(path, ("labels",), (10,))


# --------------------------------------------------------------------------- truncation


def test_truncated_pickle(tmp_path: Path) -> None:
    blob = python2_batch(small_images(2, 0).reshape(2, -1), {"labels": [1, 2]}, "b")
    path = tmp_path / "test_batch"
    for cut in (0, 1, 40, len(blob) // 2, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError, match="truncated or corrupt"):
            read_cifar_pickle(path, ("labels",), (10,))
    path.write_bytes(blob + b"extra")
    with pytest.raises(DataError, match="data after the end"):
        read_cifar_pickle(path, ("labels",), (10,))


def test_truncated_and_bad_binary(tmp_path: Path) -> None:
    images = small_images(3, 1)
    blob = cifar10_binary(images, np.array([0, 5, 9]))
    path = tmp_path / "test_batch.bin"
    path.write_bytes(blob)
    read_images, labels = read_cifar_binary(path, (10,))
    assert np.array_equal(read_images, images)
    assert labels[:, 0].tolist() == [0, 5, 9]
    for cut in (0, 100, 3073 + 7, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(DataError, match=r"empty|truncated"):
            read_cifar_binary(path, (10,))
    path.write_bytes(cifar10_binary(images, np.array([0, 5, 12])))
    with pytest.raises(DataError, match=r"labels span 0\.\.12, expected 0\.\.9"):
        read_cifar_binary(path, (10,))
    with pytest.raises(DataError, match="not a whole number of 3074-byte records"):
        read_cifar_binary(path, (20, 100))


# --------------------------------------------------------------------------- fuzzing


_VALID = python2_batch(small_images(1, 2).reshape(1, -1), {"labels": [4]}, "b")
_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _read_or_data_error(path: Path, blob: bytes, binary: bool) -> None:
    path.write_bytes(blob)
    try:
        if binary:
            images, labels = read_cifar_binary(path, (10,))
        else:
            images, labels = read_cifar_pickle(path, ("labels",), (10,))
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.shape == (len(images), 1)
    assert labels.min() >= 0 and labels.max() < 10


@_FUZZ
@given(blob=st.binary(max_size=4000))
def test_fuzz_pickle_reader_random_bytes(blob: bytes, tmp_path: Path) -> None:
    _read_or_data_error(tmp_path / "fuzz", blob, binary=False)


@_FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.integers(0, len(_VALID)),
)
def test_fuzz_pickle_reader_mutated_batch(
    edits: list[tuple[int, int]], cut: int, tmp_path: Path
) -> None:
    blob = bytearray(_VALID)
    for position, value in edits:
        blob[position] = value
    _read_or_data_error(tmp_path / "fuzz", bytes(blob[:cut] if cut > 8 else blob), binary=False)


@_FUZZ
@given(blob=st.binary(max_size=3 * 3073 + 5))
def test_fuzz_binary_reader(blob: bytes, tmp_path: Path) -> None:
    _read_or_data_error(tmp_path / "fuzz.bin", blob, binary=True)


def test_fuzz_inputs_reach_both_outcomes(tmp_path: Path) -> None:
    """The mutation fuzzer starts from a batch that reads cleanly."""
    path = tmp_path / "valid"
    path.write_bytes(_VALID)
    _, labels = read_cifar_pickle(path, ("labels",), (10,))
    assert labels.tolist() == [[4]]
    assert io.BytesIO(_VALID).read(2) == b"\x80\x02"
