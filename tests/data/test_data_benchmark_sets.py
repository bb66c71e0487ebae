"""Tests of STL-10, Tiny ImageNet, the ImageNet sets and splits, from small files in the
official layouts built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contraclust.data import find_dataset_files, list_datasets, load_dataset
from contraclust.data.sets.imagenet import IMAGENET10_CLASSES, IMAGENET_DOGS_CLASSES
from contraclust.data.sets.stl10 import STL10_CLASSES
from contraclust.errors import DataError

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


# --------------------------------------------------------------------------- STL-10


def write_stl10(root: Path, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Images with a distinct value at each (channel, row, column), stored column-major."""
    folder = root / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for part, count in counts.items():
        array = rng.integers(0, 256, (count, 3, 96, 96), dtype=np.uint8)
        array[:, 0, 0, 1] = 200  # row 0, column 1 of red differs from row 1, column 0
        array[:, 0, 1, 0] = 10
        images[part] = array
        (folder / f"{part}_X.bin").write_bytes(array.transpose(0, 1, 3, 2).tobytes())
        if part != "unlabeled":
            labels = (np.arange(count) % 10 + 1).astype(np.uint8)
            (folder / f"{part}_y.bin").write_bytes(labels.tobytes())
    return images


def test_stl10_splits_and_column_major_images(tmp_path: Path) -> None:
    images = write_stl10(tmp_path, {"train": 3, "test": 2, "unlabeled": 4})

    full = load_dataset("stl10", root=tmp_path)
    train = load_dataset("stl10", root=tmp_path, split="train")
    unlabeled = load_dataset("stl10", root=tmp_path, split="unlabeled")

    assert full.input_shape == (3, 96, 96)
    assert torch.equal(
        full.data, torch.from_numpy(np.concatenate([images["train"], images["test"]]))
    )
    assert int(full.data[0, 0, 0, 1]) == 200 and int(full.data[0, 0, 1, 0]) == 10
    assert full.labels is not None
    assert full.labels.tolist() == [0, 1, 2, 0, 1]
    assert full.class_names == list(STL10_CLASSES)
    assert len(train) == 3
    assert unlabeled.labels is None
    assert torch.equal(unlabeled.data, torch.from_numpy(images["unlabeled"]))
    assert len(load_dataset("stl10", root=tmp_path, split="test", image_size=32)) == 2


def test_stl10_bad_files(tmp_path: Path) -> None:
    write_stl10(tmp_path, {"train": 2, "test": 1})
    folder = tmp_path / "stl10" / "stl10_binary"
    (folder / "test_y.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match=r"test_y\.bin holds 2 labels for 1 images"):
        load_dataset("stl10", root=tmp_path)
    (folder / "test_y.bin").write_bytes(b"\x0b")
    with pytest.raises(DataError, match=r"span 10\.\.10"):
        load_dataset("stl10", root=tmp_path, split="test")
    data = (folder / "train_X.bin").read_bytes()
    (folder / "train_X.bin").write_bytes(data[:-5])
    with pytest.raises(DataError, match=r"train_X\.bin is truncated"):
        load_dataset("stl10", root=tmp_path, split="train")
    with pytest.raises(DataError, match=r"stl10: missing .*unlabeled_X\.bin for split 'unlabeled'"):
        load_dataset("stl10", root=tmp_path, split="unlabeled")


# --------------------------------------------------------------------------- Tiny ImageNet


def save_image(path: Path, value: int, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (value, 255 - value, 7) if mode == "RGB" else value
    Image.new(mode, size, colour).save(path, format="JPEG" if path.suffix == ".JPEG" else None)


def write_tiny_imagenet(root: Path) -> list[str]:
    base = root / "tiny-imagenet" / "tiny-imagenet-200"
    wnids = ["n03000001", "n01000001", "n02000001"]  # wnids.txt is not sorted
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for position, wnid in enumerate(wnids):
        for k in range(2):
            save_image(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 40 * position)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("boxes\n")
    annotations = []
    for k, wnid in enumerate(["n02000001", "n03000001", "n02000001"]):
        save_image(base / "val" / "images" / f"val_{k}.JPEG", 100 + k, mode="L" if k else "RGB")
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return sorted(wnids)


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    classes = write_tiny_imagenet(tmp_path)

    train = load_dataset("tiny-imagenet", root=tmp_path)
    test = load_dataset("tiny-imagenet", root=tmp_path, split="test")
    both = load_dataset("tiny-imagenet", root=tmp_path, split="all", image_size=32)

    assert train.class_names == classes
    assert train.input_shape == (3, 64, 64)
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.paths[0] == "train/n01000001/images/n01000001_0.JPEG"
    assert test.labels.tolist() == [1, 2, 1]
    assert test.input_shape == (3, 64, 64)  # grey validation JPEGs become RGB
    assert test.paths == [f"val/images/val_{k}.JPEG" for k in range(3)]
    assert len(both) == 9 and both.input_shape == (3, 32, 32)


def test_tiny_imagenet_unlisted_validation_image(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    extra = tmp_path / "tiny-imagenet" / "tiny-imagenet-200" / "val" / "images" / "val_9.JPEG"
    save_image(extra, 3)
    with pytest.raises(DataError, match=r"val_9\.JPEG is not listed in .*val_annotations\.txt"):
        load_dataset("tiny-imagenet", root=tmp_path, split="test")


# --------------------------------------------------------------------------- ImageNet


@pytest.mark.parametrize(
    ("name", "classes"),
    [("imagenet10", IMAGENET10_CLASSES), ("imagenet-dogs", IMAGENET_DOGS_CLASSES)],
)
def test_imagenet_subsets_read_only_their_classes(
    name: str, classes: tuple[tuple[str, str], ...], tmp_path: Path
) -> None:
    train = tmp_path / "imagenet" / "train"
    for position, (wnid, _) in enumerate(classes):
        save_image(train / wnid / f"{wnid}_1.JPEG", position, size=(50 + position, 40))
        save_image(train / wnid / f"{wnid}_2.JPEG", position, size=(40, 40), mode="L")
    save_image(train / "n09999999" / "n09999999_1.JPEG", 9)  # a class outside the subset

    dataset = load_dataset(name, root=tmp_path, image_size=16)

    assert len(dataset) == 2 * len(classes)
    assert dataset.input_shape == (3, 16, 16)
    assert dataset.labels.tolist() == [k // 2 for k in range(2 * len(classes))]
    assert dataset.class_names == [label for _, label in classes]
    assert all(not path.startswith("train/n09999999") for path in dataset.paths)
    assert load_dataset(name, root=tmp_path).input_shape == (3, 64, 64)  # the default size


def test_imagenet_subset_lists() -> None:
    assert len(IMAGENET10_CLASSES) == 10 and len(IMAGENET_DOGS_CLASSES) == 15
    for classes in (IMAGENET10_CLASSES, IMAGENET_DOGS_CLASSES):
        wnids = [wnid for wnid, _ in classes]
        assert wnids == sorted(set(wnids))
        assert all(len(wnid) == 9 and wnid.startswith("n") for wnid in wnids)


def test_imagenet_subset_names_a_missing_class_folder(tmp_path: Path) -> None:
    train = tmp_path / "imagenet" / "train"
    for wnid, _ in IMAGENET10_CLASSES[1:]:
        save_image(train / wnid / "a.JPEG", 1)
    with pytest.raises(DataError) as info:
        load_dataset("imagenet10", root=tmp_path)
    message = str(info.value)
    assert f"{train / IMAGENET10_CLASSES[0][0]}/" in message
    assert IMAGENET10_CLASSES[1][0] not in message
    assert "image-net.org" in message


def test_imagenet_train_and_val(tmp_path: Path) -> None:
    base = tmp_path / "imagenet"
    for wnid, value in (("n01", 10), ("n02", 20)):
        save_image(base / "train" / wnid / "x.JPEG", value, size=(80, 60))
        save_image(base / "val" / wnid / "y.JPEG", value, size=(60, 80))
    save_image(base / "train" / "n03" / "x.JPEG", 30)

    train = load_dataset("imagenet", root=tmp_path, image_size=8)
    both = load_dataset("imagenet", root=tmp_path, split="all", image_size=8)
    val = load_dataset("imagenet", root=tmp_path, split="test", image_size=8)

    assert train.class_names == ["n01", "n02", "n03"] and train.labels.tolist() == [0, 1, 2]
    assert both.labels.tolist() == [0, 1, 2, 0, 1]
    assert both.paths[-1] == "val/n02/y.JPEG"
    assert val.labels.tolist() == [0, 1]
    save_image(base / "val" / "n04" / "z.JPEG", 40)
    with pytest.raises(DataError, match=r"n04 is a class missing from"):
        load_dataset("imagenet", root=tmp_path, split="all", image_size=8)


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


def test_mnist_splits_from_the_data_root(data_root: Path) -> None:
    train = load_dataset("mnist", root=data_root, split="train")
    test = load_dataset("mnist", root=data_root, split="TEST")
    assert len(train) == 60000 and len(test) == 10000
    assert torch.equal(test.data, load_dataset("mnist-test", root=data_root).data)
    assert len(load_dataset("usps", root=data_root, split="test")) == 2007
    files = find_dataset_files("mnist", root=data_root, split="test")
    assert sorted(files) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_split_only_needs_its_own_files(tmp_path: Path) -> None:
    write_stl10(tmp_path, {"test": 2})
    assert len(load_dataset("stl10", root=tmp_path, split="test")) == 2
    with pytest.raises(DataError, match=r"train_X\.bin, .*train_y\.bin for split 'all'"):
        load_dataset("stl10", root=tmp_path)
