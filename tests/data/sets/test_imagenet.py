"""Tests of ImageNet and its DAC subsets (``data/sets/imagenet.py``), from small class folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import save_image

from contraclust.data import load_dataset
from contraclust.data.sets.imagenet import IMAGENET10_CLASSES, IMAGENET_DOGS_CLASSES
from contraclust.errors import DataError

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
