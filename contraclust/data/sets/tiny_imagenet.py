"""Tiny ImageNet: 64×64 colour images of 200 classes, one zip from Stanford's CS231n.

No SHA-256 of the zip is published; its MD5 is the one torchvision's code checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import DownloadSource, RemoteFile
from contraclust.data.readers.common import file_size
from contraclust.data.readers.images import list_image_folder, load_image_folder
from contraclust.data.registry import ALL_SPLIT, DatasetRequest, FileLayout, register_dataset
from contraclust.data.sets.class_folders import stack_parts, streamed_parts
from contraclust.data.streaming import StreamedImageDataset
from contraclust.errors import DataError

__all__ = ["TINY_IMAGENET_LAYOUT", "TINY_IMAGENET_SOURCE", "read_tiny_imagenet_annotations"]

TINY_IMAGENET_SOURCE = DownloadSource(
    "http://cs231n.stanford.edu/",
    (RemoteFile("tiny-imagenet-200.zip", md5="90528d7ca1a48142e341f4ef8d21d0de", unpack=True),),
)

_TINY = "tiny-imagenet-200"
TINY_IMAGENET_LAYOUT = FileLayout(
    "image folders",
    {
        "train": (f"{_TINY}/wnids.txt", f"{_TINY}/train/"),
        "test": (f"{_TINY}/wnids.txt", f"{_TINY}/val/val_annotations.txt", f"{_TINY}/val/images/"),
    },
)


def read_tiny_imagenet_annotations(path: str | Path) -> dict[str, str]:
    """The class (WordNet id) of each validation image, from ``val_annotations.txt``.

    Each line is ``file name, wnid, x0, y0, x1, y1``, tab-separated.

    Raises:
        DataError: for a missing file or a line without a file name and a wnid.
    """
    path = Path(path)
    file_size(path)
    classes: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a text file ({exc}); download it again") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise DataError(
                f"{path}, line {number}: expected 'file<TAB>wnid<TAB>box', found {line[:60]!r}"
            )
        classes[fields[0].strip()] = fields[1].strip()
    if not classes:
        raise DataError(f"{path} lists no images; download Tiny ImageNet again")
    return classes


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
    origin=TINY_IMAGENET_SOURCE,
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
        return streamed_parts(base, prefixes, labels, wnids, request, size)
    if annotations_path is not None:
        val = load_image_folder(
            files[f"{_TINY}/val/images/"], image_size=size, skip_bad=request.skip_bad
        )
        parts.append(val)
        labels.append(_tiny_val_labels(val.paths or [], annotations_path, index))
        prefixes.append("val/images")
    data, label_array, paths, skipped = stack_parts(parts, labels, prefixes)
    return ArrayDataset(
        data=data, labels=label_array, name="", paths=paths, class_names=wnids, skipped=skipped
    )
