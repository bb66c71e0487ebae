"""ImageNet (ILSVRC-2012) and the ImageNet-10 and ImageNet-Dogs subsets of DAC.

ImageNet cannot be downloaded without an account, so it is obtained by hand and
unpacked as one folder per class, named by WordNet id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import ManualSource
from contraclust.data.readers.images import DEFAULT_IMAGE_SIZE
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, FileLayout, register_dataset
from contraclust.data.sets.class_folders import class_folders_dataset, subfolders
from contraclust.data.streaming import StreamedImageDataset
from contraclust.errors import DataError

__all__ = ["IMAGENET10_CLASSES", "IMAGENET_DOGS_CLASSES", "IMAGENET_SOURCE"]

IMAGENET10_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02056570", "king penguin"),
    ("n02085936", "Maltese dog"),
    ("n02128757", "snow leopard"),
    ("n02690373", "airliner"),
    ("n02692877", "airship"),
    ("n03095699", "container ship"),
    ("n04254680", "soccer ball"),
    ("n04285008", "sports car"),
    ("n04467665", "trailer truck"),
    ("n07747607", "orange"),
)

#: ImageNet-Dogs: (WordNet id, breed) of its 15 dog classes; 19,500 training images.
IMAGENET_DOGS_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02085936", "Maltese dog"),
    ("n02086646", "Blenheim spaniel"),
    ("n02088238", "basset"),
    ("n02091467", "Norwegian elkhound"),
    ("n02097130", "giant schnauzer"),
    ("n02099601", "golden retriever"),
    ("n02101388", "Brittany spaniel"),
    ("n02101556", "clumber"),
    ("n02102177", "Welsh springer spaniel"),
    ("n02105056", "groenendael"),
    ("n02105412", "kelpie"),
    ("n02105855", "Shetland sheepdog"),
    ("n02107142", "Doberman"),
    ("n02110958", "pug"),
    ("n02112137", "chow"),
)

IMAGENET_SOURCE = ManualSource(
    "ImageNet cannot be downloaded without an account; get ILSVRC-2012 from "
    "https://image-net.org/download and unpack train/ and val/ as one folder per "
    "class, named by WordNet id"
)


def _imagenet_subset_layout(classes: Sequence[tuple[str, str]]) -> FileLayout:
    return FileLayout(
        "ImageNet train class folders", {"train": tuple(f"train/{w}/" for w, _ in classes)}
    )


def _load_imagenet_subset(
    files: Mapping[str, Path], request: DatasetRequest, classes: Sequence[tuple[str, str]]
) -> ArrayDataset | StreamedImageDataset:
    return class_folders_dataset(
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
    origin=IMAGENET_SOURCE,
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
    origin=IMAGENET_SOURCE,
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
    origin=IMAGENET_SOURCE,
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
    classes = subfolders(roots[0][1])
    if not classes:
        raise DataError(f"{roots[0][1]} has no class folders; put one folder per class in it")
    index = {wnid: position for position, wnid in enumerate(classes)}
    folders: list[Path] = []
    prefixes: list[str] = []
    labels: list[int] = []
    for split_name, root in roots:
        for wnid in subfolders(root):
            if wnid not in index:
                raise DataError(
                    f"imagenet: {root / wnid} is a class missing from {roots[0][1]}; the "
                    "train and val folders must share their class folders"
                )
            folders.append(root / wnid)
            prefixes.append(f"{split_name}/{wnid}")
            labels.append(index[wnid])
    return class_folders_dataset(folders, prefixes, labels, classes, request)
