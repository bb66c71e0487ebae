"""Tests of the dataset registry, the data root and :func:`load_dataset`."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_idx
from PIL import Image

from contraclust.data import (
    ArrayDataset,
    DatasetInfo,
    list_datasets,
    load_dataset,
    register_dataset,
    resolve_data_root,
)
from contraclust.data import registry as registry_module
from contraclust.errors import DataError

BUILT_IN = ["digits", "mnist", "mnist-test", "fashion-mnist", "fashion-mnist-test", "usps"]


# --------------------------------------------------------------------------- data root


def test_data_root_from_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTRACLUST_DATA", "/elsewhere")
    assert resolve_data_root(tmp_path) == (tmp_path, "--data-root")
    assert resolve_data_root(str(tmp_path)) == (tmp_path, "--data-root")


def test_data_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTRACLUST_DATA", str(tmp_path))
    assert resolve_data_root(None) == (tmp_path, "$CONTRACLUST_DATA")


def test_data_root_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_data_env) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    root, source = resolve_data_root(None)
    assert root == tmp_path / ".cache" / "contraclust"
    assert source == "default ~/.cache/contraclust"


# --------------------------------------------------------------------------- registry


def test_built_in_datasets_are_listed() -> None:
    infos = list_datasets()
    assert [info.name for info in infos][: len(BUILT_IN)] == BUILT_IN
    for info in infos:
        assert isinstance(info, DatasetInfo)
        assert info.description
    by_name = {info.name: info for info in infos}
    assert by_name["digits"].files == ()
    assert by_name["mnist-test"].family == "mnist"
    assert "t10k-images-idx3-ubyte.gz" in by_name["mnist-test"].files
    assert by_name["usps"].files == ("usps.h5",)


def test_register_dataset_finds_files_under_its_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    monkeypatch.setattr(registry_module, "_ORIGINS", dict(registry_module._ORIGINS))

    @register_dataset(
        "toy-set",
        family="toys",
        description="three vectors",
        files=["toy.npy"],
        origin="https://example.org/toys",
    )
    def _load_toy(files: Mapping[str, Path]) -> ArrayDataset:
        return ArrayDataset(torch.from_numpy(np.load(files["toy.npy"])), None, "ignored")

    with pytest.raises(DataError, match=r"toy-set: missing .*toys/toy\.npy .*example\.org/toys"):
        load_dataset("toy-set", root=tmp_path)
    (tmp_path / "toys").mkdir()
    np.save(tmp_path / "toys" / "toy.npy", np.ones((3, 2), dtype=np.float32))
    dataset = load_dataset("toy-set", root=tmp_path)
    assert dataset.name == "toy-set"
    assert dataset.kind == "vector"
    assert "toy-set" in [info.name for info in list_datasets()]
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy-set", "toys", "again", [], "")(_load_toy)


def test_environment_data_root_is_honoured(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTRACLUST_DATA", str(data_root))
    assert len(load_dataset("mnist-test")) == 10000


def test_uncompressed_official_names_are_accepted(data_root: Path, tmp_path: Path) -> None:
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        target = tmp_path / "mnist" / name
        target.parent.mkdir(exist_ok=True)
        with (
            gzip.open(data_root / "mnist" / f"{name}.gz", "rb") as source,
            target.open("wb") as out,
        ):
            shutil.copyfileobj(source, out)
    dataset = load_dataset("mnist-test", root=tmp_path)
    assert len(dataset) == 10000


# --------------------------------------------------------------------------- messages


def test_missing_file_names_path_and_root_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTRACLUST_DATA", str(tmp_path))
    with pytest.raises(DataError) as info:
        load_dataset("mnist-test")
    message = str(info.value)
    assert message.startswith("mnist-test: missing ")
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in message
    assert f"(data root {tmp_path} from $CONTRACLUST_DATA)" in message
    assert "https://" in message
    assert f"into {tmp_path / 'mnist'}/" in message
    assert "\n" not in message


def test_missing_file_with_explicit_and_default_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_data_env
) -> None:
    with pytest.raises(DataError, match=r"usps: missing .*usps\.h5 .*from --data-root"):
        load_dataset("usps", root=tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataError, match=r"from default ~/\.cache/contraclust"):
        load_dataset("usps")


def test_only_the_missing_files_are_named(tmp_path: Path) -> None:
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(DataError) as info:
        load_dataset("mnist-test", root=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert "t10k-images" not in str(info.value)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("foo")
    message = str(info.value)
    assert message.startswith("unknown dataset 'foo': valid names are digits, mnist, ")
    for name in BUILT_IN:
        assert name in message
    assert "image folder" in message
    assert ".npy/.npz" in message


@pytest.mark.parametrize("spec", ["./nope", "data/nope", "nope.npy", "~/nope-xyz"])
def test_missing_path(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="no such file or directory: "):
        load_dataset(spec)


# --------------------------------------------------------------------------- paths


def test_folder_and_array_paths(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        Image.new("L", (5, 5), 9).save(tmp_path / "imgs" / name / "x.png")
    folder = load_dataset(str(tmp_path / "imgs"))
    assert folder.class_names == ["a", "b"]
    np.save(tmp_path / "v.npy", np.ones((4, 3)))
    vectors = load_dataset(tmp_path / "v.npy", image_size=32)  # ignored for vectors
    assert vectors.input_shape == (3,)
    (tmp_path / "t.txt").write_text("1")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_dataset(tmp_path / "t.txt")


def test_image_size_applies_to_registered_sets() -> None:
    dataset = load_dataset("digits", image_size=16)
    assert dataset.input_shape == (1, 16, 16)
    assert dataset.data.dtype == torch.uint8
    with pytest.raises(DataError, match="image_size must be a positive integer"):
        load_dataset("digits", image_size=0)


# --------------------------------------------------------------------------- registered sets

NEW_SETS = [
    "cifar10",
    "cifar100",
    "cifar100-20",
    "stl10",
    "tiny-imagenet",
    "imagenet10",
    "imagenet-dogs",
    "imagenet",
]


def test_benchmark_sets_are_registered_with_their_splits() -> None:
    by_name = {info.name: info for info in list_datasets()}
    for name in NEW_SETS:
        assert name in by_name
        assert "split" in by_name[name].description
    assert by_name["cifar100-20"].family == by_name["cifar100"].family == "cifar100"
    for name in ("cifar10", "cifar100-20", "stl10", "mnist"):
        assert by_name[name].default_split == "all"
        assert "all (default" in by_name[name].description
    assert by_name["stl10"].splits == ("train", "test", "unlabeled", "all")
    assert by_name["tiny-imagenet"].default_split == "train"
    assert by_name["imagenet10"].splits == ("train", "all")
    assert by_name["mnist-test"].splits == ("all",)


# --------------------------------------------------------------------------- splits


def test_split_is_validated(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"cifar10 has no split 'val'; choose one of train, test, all"
    ):
        load_dataset("cifar10", root=tmp_path, split="val")
    with pytest.raises(DataError, match=r"digits has no train/test splits; drop split 'test'"):
        load_dataset("digits", split="test")
    assert len(load_dataset("digits", split="all")) == 1797
    np.save(tmp_path / "v.npy", np.ones((4, 3), np.float32))
    with pytest.raises(DataError, match="applies to registered data sets only"):
        load_dataset(tmp_path / "v.npy", split="train")
