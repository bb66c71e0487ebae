"""The standard image benchmarks of deep clustering, registered by name.

Each set is read from its official distribution, unpacked under
``<data root>/<family>/`` (``contraclust datasets download NAME`` fetches, checks and
unpacks the public ones):

=================  ===========================================================
``cifar10``        ``cifar10/cifar-10-batches-bin/`` or ``cifar-10-batches-py/``
``cifar100``,      ``cifar100/cifar-100-binary/`` or ``cifar-100-python/``
``cifar100-20``
``stl10``          ``stl10/stl10_binary/``
``tiny-imagenet``  ``tiny-imagenet/tiny-imagenet-200/``
``imagenet10``,    ``imagenet/train/<wnid>/`` (and ``imagenet/val/<wnid>/`` for
``imagenet-dogs``, ``imagenet``'s test split)
``imagenet``
=================  ===========================================================

Splits follow the clustering literature: CIFAR and STL-10 default to ``all`` (train
and test together, as CC and ConCURL train and evaluate), the ImageNet-derived sets to
``train``. The image-folder sets are decoded into memory (resized to ``image_size``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from contraclust.data.benchmark_formats import (
    read_cifar_binary,
    read_cifar_pickle,
    read_stl10_images,
    read_stl10_labels,
    read_tiny_imagenet_annotations,
)
from contraclust.data.class_lists import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR100_SUPERCLASSES,
    IMAGENET10_CLASSES,
    IMAGENET_DOGS_CLASSES,
    STL10_CLASSES,
)
from contraclust.data.dataset import ArrayDataset
from contraclust.data.formats import (
    DEFAULT_IMAGE_SIZE,
    list_image_folder,
    load_image_folder,
    resize_images,
)
from contraclust.data.registry import (
    ALL_SPLIT,
    DatasetRequest,
    FileLayout,
    register_dataset,
)
from contraclust.data.streaming import StreamedImageDataset, stream_image_files
from contraclust.errors import DataError

logger = logging.getLogger(__name__)

_TORONTO = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR10_PY = "cifar-10-batches-py"
_CIFAR10_BIN = "cifar-10-batches-bin"
_CIFAR100_PY = "cifar-100-python"
_CIFAR100_BIN = "cifar-100-binary"
_STL = "stl10_binary"
_TINY = "tiny-imagenet-200"

CIFAR10_LAYOUTS = (
    FileLayout(
        "binary records",
        {
            "train": tuple(f"{_CIFAR10_BIN}/data_batch_{i}.bin" for i in range(1, 6)),
            "test": (f"{_CIFAR10_BIN}/test_batch.bin",),
        },
    ),
    FileLayout(
        "python pickle batches",
        {
            "train": tuple(f"{_CIFAR10_PY}/data_batch_{i}" for i in range(1, 6)),
            "test": (f"{_CIFAR10_PY}/test_batch",),
        },
    ),
)
CIFAR100_LAYOUTS = (
    FileLayout(
        "binary records",
        {"train": (f"{_CIFAR100_BIN}/train.bin",), "test": (f"{_CIFAR100_BIN}/test.bin",)},
    ),
    FileLayout(
        "python pickles",
        {"train": (f"{_CIFAR100_PY}/train",), "test": (f"{_CIFAR100_PY}/test",)},
    ),
)
STL10_LAYOUT = FileLayout(
    "binary files",
    {
        "train": (f"{_STL}/train_X.bin", f"{_STL}/train_y.bin"),
        "test": (f"{_STL}/test_X.bin", f"{_STL}/test_y.bin"),
        "unlabeled": (f"{_STL}/unlabeled_X.bin",),
    },
)
TINY_IMAGENET_LAYOUT = FileLayout(
    "image folders",
    {
        "train": (f"{_TINY}/wnids.txt", f"{_TINY}/train/"),
        "test": (f"{_TINY}/wnids.txt", f"{_TINY}/val/val_annotations.txt", f"{_TINY}/val/images/"),
    },
)


# --------------------------------------------------------------------------- CIFAR


def _read_cifar_parts(
    files: Mapping[str, Path], label_keys: Sequence[str], label_classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Images and label columns of every file given, in order (train batches, then test)."""
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for official, path in files.items():
        if official.endswith(".bin"):
            part_images, part_labels = read_cifar_binary(path, label_classes)
        else:
            part_images, part_labels = read_cifar_pickle(path, label_keys, label_classes)
        images.append(part_images)
        labels.append(part_labels)
    if len(images) == 1:
        return images[0], labels[0]
    return np.concatenate(images), np.concatenate(labels)


def _cifar_dataset(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> ArrayDataset:
    return ArrayDataset(
        data=torch.from_numpy(np.ascontiguousarray(images)),
        labels=np.ascontiguousarray(labels),
        name="",
        class_names=list(class_names),
    )


@register_dataset(
    "cifar10",
    family="cifar10",
    description="CIFAR-10, 32×32 colour, 10 classes; split all (default, as CC and ConCURL "
    "train): train + test, 60,000; train: 50,000; test: 10,000",
    files=[],
    url_hint=_TORONTO,
    layouts=CIFAR10_LAYOUTS,
    default_split=ALL_SPLIT,
)
def _load_cifar10(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    images, labels = _read_cifar_parts(files, ("labels",), (10,))
    return _cifar_dataset(images, labels[:, 0], CIFAR10_CLASSES)


@register_dataset(
    "cifar100",
    family="cifar100",
    description="CIFAR-100, 32×32 colour, 100 fine classes; split all (default): train + "
    "test, 60,000; train: 50,000; test: 10,000",
    files=[],
    url_hint=_TORONTO,
    layouts=CIFAR100_LAYOUTS,
    default_split=ALL_SPLIT,
)
def _load_cifar100(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    images, labels = _read_cifar_parts(files, ("coarse_labels", "fine_labels"), (20, 100))
    return _cifar_dataset(images, labels[:, 1], CIFAR100_CLASSES)


@register_dataset(
    "cifar100-20",
    family="cifar100",
    description="CIFAR-100 with its 20 superclasses (coarse labels) as classes, as clustering "
    "papers report it; split all (default, as CC and ConCURL): 60,000; train: 50,000; "
    "test: 10,000",
    files=[],
    url_hint=_TORONTO,
    layouts=CIFAR100_LAYOUTS,
    default_split=ALL_SPLIT,
)
def _load_cifar100_20(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    images, labels = _read_cifar_parts(files, ("coarse_labels", "fine_labels"), (20, 100))
    return _cifar_dataset(images, labels[:, 0], CIFAR100_SUPERCLASSES)


# --------------------------------------------------------------------------- STL-10


@register_dataset(
    "stl10",
    family="stl10",
    description="STL-10, 96×96 colour, 10 classes; split all (default, as CC): train + test, "
    "13,000; train: 5,000; test: 8,000; unlabeled: 100,000 without labels",
    files=[],
    url_hint="https://cs.stanford.edu/~acoates/stl10/ (stl10_binary.tar.gz, unpacked)",
    layouts=[STL10_LAYOUT],
    default_split=ALL_SPLIT,
)
def _load_stl10(files: Mapping[str, Path], request: DatasetRequest) -> ArrayDataset:
    if request.split == "unlabeled":
        images = read_stl10_images(files[f"{_STL}/unlabeled_X.bin"])
        return ArrayDataset(data=torch.from_numpy(images), labels=None, name="")
    parts = ["train", "test"] if request.split == ALL_SPLIT else [request.split]
    images_parts: list[np.ndarray] = []
    labels_parts: list[np.ndarray] = []
    for part in parts:
        part_images = read_stl10_images(files[f"{_STL}/{part}_X.bin"])
        images_parts.append(part_images)
        labels_parts.append(read_stl10_labels(files[f"{_STL}/{part}_y.bin"], len(part_images)))
    images = images_parts[0] if len(parts) == 1 else np.concatenate(images_parts)
    return ArrayDataset(
        data=torch.from_numpy(images),
        labels=np.concatenate(labels_parts),
        name="",
        class_names=list(STL10_CLASSES),
    )


# --------------------------------------------------------------------------- image folders


def _stack_parts(
    parts: Sequence[ArrayDataset], labels: Sequence[int | np.ndarray], prefixes: Sequence[str]
) -> tuple[torch.Tensor, np.ndarray, list[str], list[str]]:
    """Join decoded folders: one channel count and size, labels, and data-root paths."""
    channels = max(int(part.data.shape[1]) for part in parts)
    sizes = {tuple(part.data.shape[2:]) for part in parts}
    tensors = []
    for part in parts:
        data = part.data
        if data.shape[1] != channels:
            data = data.expand(-1, channels, -1, -1)
        if len(sizes) > 1:
            data = resize_images(data, DEFAULT_IMAGE_SIZE)
        tensors.append(data)
    if len(sizes) > 1:
        logger.info("images differ in size across folders; resized to %d", DEFAULT_IMAGE_SIZE)
    label_array = np.concatenate(
        [
            np.broadcast_to(np.asarray(label, dtype=np.int64), (len(part),))
            for part, label in zip(parts, labels, strict=True)
        ]
    )
    paths = [
        f"{prefix}/{relpath}"
        for part, prefix in zip(parts, prefixes, strict=True)
        for relpath in (part.paths or [])
    ]
    skipped = [
        f"{prefix}/{relpath}"
        for part, prefix in zip(parts, prefixes, strict=True)
        for relpath in part.skipped
    ]
    return torch.cat(tensors), label_array, paths, skipped


def _streamed_parts(
    base: Path,
    prefixes: Sequence[str],
    labels: Sequence[int | np.ndarray],
    class_names: Sequence[str],
    request: DatasetRequest,
    image_size: int | None,
) -> StreamedImageDataset:
    """Folders ``base/prefix`` listed (not decoded) into one streamed set."""
    paths: list[str] = []
    parts: list[np.ndarray] = []
    for prefix, label in zip(prefixes, labels, strict=True):
        relpaths = list_image_folder(base / prefix)
        paths.extend(f"{prefix}/{relpath}" for relpath in relpaths)
        parts.append(np.broadcast_to(np.asarray(label, dtype=np.int64), (len(relpaths),)))
    return stream_image_files(
        base,
        paths,
        np.concatenate(parts),
        name="",
        image_size=image_size,
        skip_bad=request.skip_bad,
        workers=request.workers,
        class_names=class_names,
    )


def _class_folders_dataset(
    folders: Sequence[Path],
    prefixes: Sequence[str],
    labels: Sequence[int],
    class_names: Sequence[str],
    request: DatasetRequest,
) -> ArrayDataset | StreamedImageDataset:
    """One class per folder, every image decoded and resized (default 64×64)."""
    size = request.image_size or DEFAULT_IMAGE_SIZE
    if request.stream:
        base = folders[0]
        for _ in prefixes[0].split("/"):
            base = base.parent
        return _streamed_parts(base, prefixes, labels, class_names, request, size)
    parts = [
        load_image_folder(folder, image_size=size, skip_bad=request.skip_bad) for folder in folders
    ]
    data, label_array, paths, skipped = _stack_parts(parts, labels, prefixes)
    return ArrayDataset(
        data=data,
        labels=label_array,
        name="",
        paths=paths,
        class_names=list(class_names),
        skipped=skipped,
    )


def _subfolders(folder: Path) -> list[str]:
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    )


def _read_wnids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file; download it again") from None
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"{path} should list distinct class ids, one a line; download it again")
    return sorted(wnids)


def _tiny_val_labels(
    relpaths: Sequence[str], annotations_path: Path, index: Mapping[str, int]
) -> np.ndarray:
    annotations = read_tiny_imagenet_annotations(annotations_path)
    val_labels = []
    for relpath in relpaths:
        wnid = annotations.get(Path(relpath).name)
        if wnid is None or wnid not in index:
            found = "not listed" if wnid is None else f"of unknown class {wnid}"
            raise DataError(
                f"tiny-imagenet: validation image {relpath} is {found} in "
                f"{annotations_path}; unpack tiny-imagenet-200.zip again"
            )
        val_labels.append(index[wnid])
    return np.asarray(val_labels, dtype=np.int64)


@register_dataset(
    "tiny-imagenet",
    family="tiny-imagenet",
    description="Tiny ImageNet, 64×64 colour, 200 classes; split train (default, as CC): "
    "100,000; test: the 10,000 labelled validation images; all: both",
    files=[],
    url_hint="http://cs231n.stanford.edu/tiny-imagenet-200.zip (unpacked)",
    layouts=[TINY_IMAGENET_LAYOUT],
    default_split="train",
    streamable=True,
)
def _load_tiny_imagenet(
    files: Mapping[str, Path], request: DatasetRequest
) -> ArrayDataset | StreamedImageDataset:
    wnids = _read_wnids(files[f"{_TINY}/wnids.txt"])
    index = {wnid: position for position, wnid in enumerate(wnids)}
    parts: list[ArrayDataset] = []
    labels: list[int | np.ndarray] = []
    prefixes: list[str] = []
    size = request.image_size
    with_val = request.split in ("test", ALL_SPLIT)
    annotations_path = files[f"{_TINY}/val/val_annotations.txt"] if with_val else None
    if request.split in ("train", ALL_SPLIT):
        train = files[f"{_TINY}/train/"]
        for wnid in wnids:
            folder = train / wnid
            if not folder.is_dir():
                raise DataError(
                    f"tiny-imagenet: missing class folder {folder} listed in wnids.txt; "
                    "unpack tiny-imagenet-200.zip again"
                )
            if not request.stream:
                parts.append(load_image_folder(folder, image_size=size, skip_bad=request.skip_bad))
            labels.append(index[wnid])
            prefixes.append(f"train/{wnid}")
    if request.stream:
        base = files[f"{_TINY}/wnids.txt"].parent
        if annotations_path is not None:
            relpaths = list_image_folder(base / "val/images")
            labels.append(_tiny_val_labels(relpaths, annotations_path, index))
            prefixes.append("val/images")
        return _streamed_parts(base, prefixes, labels, wnids, request, size)
    if annotations_path is not None:
        val = load_image_folder(
            files[f"{_TINY}/val/images/"], image_size=size, skip_bad=request.skip_bad
        )
        parts.append(val)
        labels.append(_tiny_val_labels(val.paths or [], annotations_path, index))
        prefixes.append("val/images")
    data, label_array, paths, skipped = _stack_parts(parts, labels, prefixes)
    return ArrayDataset(
        data=data, labels=label_array, name="", paths=paths, class_names=wnids, skipped=skipped
    )


def _imagenet_subset_layout(classes: Sequence[tuple[str, str]]) -> FileLayout:
    return FileLayout(
        "ImageNet train class folders", {"train": tuple(f"train/{w}/" for w, _ in classes)}
    )


_IMAGENET_HINT = (
    "https://image-net.org/download (ILSVRC-2012, account needed; unpack train/ and val/ "
    "as one folder per class, named by WordNet id)"
)


def _load_imagenet_subset(
    files: Mapping[str, Path], request: DatasetRequest, classes: Sequence[tuple[str, str]]
) -> ArrayDataset | StreamedImageDataset:
    return _class_folders_dataset(
        [files[f"train/{wnid}/"] for wnid, _ in classes],
        [f"train/{wnid}" for wnid, _ in classes],
        list(range(len(classes))),
        [name for _, name in classes],
        request,
    )


@register_dataset(
    "imagenet10",
    family="imagenet",
    description="ImageNet-10 (DAC; as CC): 10 ImageNet classes, their 13,000 train images, "
    f"split train only; resized to image_size (default {DEFAULT_IMAGE_SIZE})",
    files=[],
    url_hint=_IMAGENET_HINT,
    layouts=[_imagenet_subset_layout(IMAGENET10_CLASSES)],
    default_split="train",
    streamable=True,
)
def _load_imagenet10(
    files: Mapping[str, Path], request: DatasetRequest
) -> ArrayDataset | StreamedImageDataset:
    return _load_imagenet_subset(files, request, IMAGENET10_CLASSES)


@register_dataset(
    "imagenet-dogs",
    family="imagenet",
    description="ImageNet-Dogs (DAC; as CC): 15 dog breeds, their 19,500 ImageNet train "
    f"images, split train only; resized to image_size (default {DEFAULT_IMAGE_SIZE})",
    files=[],
    url_hint=_IMAGENET_HINT,
    layouts=[_imagenet_subset_layout(IMAGENET_DOGS_CLASSES)],
    default_split="train",
    streamable=True,
)
def _load_imagenet_dogs(
    files: Mapping[str, Path], request: DatasetRequest
) -> ArrayDataset | StreamedImageDataset:
    return _load_imagenet_subset(files, request, IMAGENET_DOGS_CLASSES)


@register_dataset(
    "imagenet",
    family="imagenet",
    description="ILSVRC-2012, 1,000 classes, decoded into memory; split train (default): "
    f"1.28 M; test: the 50,000 validation images; all: both; resized to image_size "
    f"(default {DEFAULT_IMAGE_SIZE})",
    files=[],
    url_hint=_IMAGENET_HINT,
    layouts=[FileLayout("class folders", {"train": ("train/",), "test": ("val/",)})],
    default_split="train",
    streamable=True,
)
def _load_imagenet(
    files: Mapping[str, Path], request: DatasetRequest
) -> ArrayDataset | StreamedImageDataset:
    roots = []
    if request.split in ("train", ALL_SPLIT):
        roots.append(("train", files["train/"]))
    if request.split in ("test", ALL_SPLIT):
        roots.append(("val", files["val/"]))
    classes = _subfolders(roots[0][1])
    if not classes:
        raise DataError(f"{roots[0][1]} has no class folders; put one folder per class in it")
    index = {wnid: position for position, wnid in enumerate(classes)}
    folders: list[Path] = []
    prefixes: list[str] = []
    labels: list[int] = []
    for split_name, root in roots:
        for wnid in _subfolders(root):
            if wnid not in index:
                raise DataError(
                    f"imagenet: {root / wnid} is a class missing from {roots[0][1]}; the "
                    "train and val folders must share their class folders"
                )
            folders.append(root / wnid)
            prefixes.append(f"{split_name}/{wnid}")
            labels.append(index[wnid])
    return _class_folders_dataset(folders, prefixes, labels, classes, request)
