"""The named data sets, and :func:`load_dataset`, the one entry point for loading data.

A data set is registered by decorating a small loader function with
:func:`register_dataset`. The decorator records the official file names the loader
needs; :func:`load_dataset` finds them under ``<data root>/<family>/`` (a ``.gz`` name
is also accepted uncompressed), reports every missing one in a single message that
says where the data root came from and where to download the files, and only then
calls the loader with the paths it found. Adding a data set touches nothing else.

The data root is ``--data-root`` when given, else ``$CONTRACLUST_DATA``, else
``~/.cache/contraclust``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from contraclust.data.dataset import ArrayDataset
from contraclust.data.formats import (
    load_array_file,
    load_image_folder,
    read_idx,
    read_usps_h5,
    resize_images,
)
from contraclust.errors import DataError

__all__ = [
    "DATA_ROOT_ENV",
    "DatasetInfo",
    "DatasetLoader",
    "dataset_names",
    "get_dataset_info",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "resolve_data_root",
]

#: Environment variable naming the data root when ``--data-root`` is not given.
DATA_ROOT_ENV = "CONTRACLUST_DATA"

#: A registered loader: receives the path of each official file, keyed by its name.
DatasetLoader = Callable[[Mapping[str, Path]], ArrayDataset]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set.

    Attributes:
        name: the name given to :func:`load_dataset` (``"mnist-test"``).
        family: the group of sets sharing files; also the sub-folder of the data root
            holding them (``"mnist"`` for ``mnist`` and ``mnist-test``).
        description: one line for ``contraclust datasets``.
        files: the official file names the loader reads (empty when embedded).
        url_hint: where to download those files.
    """

    name: str
    family: str
    description: str
    files: tuple[str, ...]
    url_hint: str
    loader: DatasetLoader = field(repr=False, compare=False)

    @property
    def needs_download(self) -> bool:
        """Whether the set is read from files under the data root."""
        return bool(self.files)


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str, family: str, description: str, files: list[str], url_hint: str
) -> Callable[[DatasetLoader], DatasetLoader]:
    """Register the decorated loader under ``name``.

    Example:
        >>> @register_dataset("toy", family="toy", description="two points",
        ...                   files=[], url_hint="")  # doctest: +SKIP
        ... def _load_toy(files):
        ...     return ArrayDataset(torch.zeros(2, 3), None, "toy")
    """
    key = _normalise(name)
    if key != name:
        raise ValueError(f"dataset names are lower case with hyphens, got {name!r}")

    def decorate(loader: DatasetLoader) -> DatasetLoader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = DatasetInfo(
            name=name,
            family=family,
            description=description,
            files=tuple(files),
            url_hint=url_hint,
            loader=loader,
        )
        return loader

    return decorate


def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, in registration order."""
    return list(_REGISTRY.values())


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` accepts, in registration order."""
    return list(_REGISTRY)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registration of ``name`` (case and ``_``/``-`` insensitive)."""
    info = _REGISTRY.get(_normalise(name))
    if info is None:
        raise DataError(f"unknown dataset '{name}': valid names are {', '.join(_REGISTRY)}")
    return info


def resolve_data_root(root: str | Path | None) -> tuple[Path, str]:
    """The data root and where it came from.

    Returns:
        ``(path, source)`` with source ``"--data-root"`` (``root`` given),
        ``"$CONTRACLUST_DATA"`` (environment) or ``"default ~/.cache/contraclust"``.
    """
    if root is not None and str(root) != "":
        return Path(root).expanduser().absolute(), "--data-root"
    env = os.environ.get(DATA_ROOT_ENV, "")
    if env:
        return Path(env).expanduser().absolute(), f"${DATA_ROOT_ENV}"
    return Path.home() / ".cache" / "contraclust", "default ~/.cache/contraclust"


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _candidates(folder: Path, official: str) -> list[Path]:
    names = [official]
    if official.endswith(".gz"):
        names.append(official[: -len(".gz")])
    return [folder / candidate for candidate in names]


def _locate_files(info: DatasetInfo, root: str | Path | None) -> dict[str, Path]:
    if not info.files:
        return {}
    data_root, source = resolve_data_root(root)
    folder = data_root / info.family
    found: dict[str, Path] = {}
    missing: list[Path] = []
    for official in info.files:
        existing = [path for path in _candidates(folder, official) if path.is_file()]
        if existing:
            found[official] = existing[0]
        else:
            missing.append(folder / official)
    if missing:
        plural = "files" if len(missing) > 1 else "file"
        gz_note = " (.gz or uncompressed)" if missing[0].suffix == ".gz" else ""
        raise DataError(
            f"{info.name}: missing {', '.join(str(path) for path in missing)}{gz_note} "
            f"(data root {data_root} from {source}); download the official {plural} from "
            f"{info.url_hint} into {folder}/"
        )
    return found


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or spec.startswith((".", "~"))
        or Path(spec).suffix.lower() in (".npy", ".npz")
    )


def load_dataset(
    spec: str | Path,
    root: str | Path | None = None,
    image_size: int | None = None,
    skip_bad: bool = False,
) -> ArrayDataset:
    """Load a registered data set by name, an image folder, or a ``.npy``/``.npz`` file.

    Args:
        spec: a registered name (see :func:`list_datasets`; case-insensitive, ``_`` or
            ``-``), a folder of images, or an array file. A name wins over a folder of
            the same name in the working directory; write ``./name`` for the folder.
        root: the data root for registered sets (see :func:`resolve_data_root`).
        image_size: side of the square images returned (shorter side resized, centre
            crop); None keeps the native size. Ignored for feature vectors.
        skip_bad: for image folders, skip unreadable files instead of failing.

    Raises:
        DataError: for an unknown name, a missing path or file, or bad data.

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.input_shape, len(ds)
        ((1, 8, 8), 1797)
    """
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size}")
    text = str(spec)
    info = None if isinstance(spec, Path) else _REGISTRY.get(_normalise(text))
    if info is not None:
        files = _locate_files(info, root)
        dataset = info.loader(files)
        dataset = replace(dataset, name=info.name)
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            dataset = load_image_folder(path, image_size=image_size, skip_bad=skip_bad)
        elif path.is_file():
            if path.suffix.lower() not in (".npy", ".npz"):
                raise DataError(
                    f"{path}: unsupported file type '{path.suffix}'; give a folder of images, "
                    "a .npy or .npz file, or a dataset name"
                )
            dataset = load_array_file(path)
        elif isinstance(spec, Path) or _looks_like_path(text):
            raise DataError(f"no such file or directory: {path.absolute()}")
        else:
            raise DataError(
                f"unknown dataset '{text}': valid names are {', '.join(_REGISTRY)} "
                "or a path to an image folder or a .npy/.npz file"
            )
    if image_size is not None and dataset.kind == "image":
        dataset = replace(dataset, data=resize_images(dataset.data, image_size))
    dataset.validate()
    return dataset


# --------------------------------------------------------------------------- built-in sets

_DIGIT_NAMES = [str(digit) for digit in range(10)]
_FASHION_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
_TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
_TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_USPS_URL = "https://www.kaggle.com/datasets/bistaumanga/usps-dataset"


def _idx_split(
    files: Mapping[str, Path], images_name: str, labels_name: str
) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(files[images_name])
    labels = read_idx(files[labels_name])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{files[images_name]} holds {images.dtype} data of shape {images.shape}; "
            "expected uint8 images (N, H, W)"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{files[labels_name]} holds labels of shape {labels.shape} for "
            f"{images.shape[0]} images in {files[images_name]}; download both again"
        )
    return images, labels.astype(np.int64)


def _idx_dataset(
    files: Mapping[str, Path], splits: list[tuple[str, str]], class_names: list[str]
) -> ArrayDataset:
    parts = [_idx_split(files, images, labels) for images, labels in splits]
    images = np.concatenate([part[0] for part in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([part[1] for part in parts]) if len(parts) > 1 else parts[0][1]
    return ArrayDataset(
        data=torch.from_numpy(np.ascontiguousarray(images[:, None])),
        labels=labels,
        name="",
        class_names=list(class_names),
    )


@register_dataset(
    "digits",
    family="digits",
    description="scikit-learn's 1,797 8×8 handwritten digits, 10 classes (embedded; the default)",
    files=[],
    url_hint="bundled with scikit-learn",
)
def _load_digits(files: Mapping[str, Path]) -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # pixel values are counts 0..16; map them onto the 0..255 range of other images
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0))
    return ArrayDataset(
        data=torch.from_numpy(images.astype(np.uint8)[:, None]),
        labels=np.asarray(bunch.target, dtype=np.int64),
        name="digits",
        class_names=list(_DIGIT_NAMES),
    )


@register_dataset(
    "mnist",
    family="mnist",
    description="MNIST train + test, 70,000 28×28 handwritten digits, 10 classes",
    files=[_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS],
    url_hint=_MNIST_URL,
)
def _load_mnist(files: Mapping[str, Path]) -> ArrayDataset:
    splits = [(_TRAIN_IMAGES, _TRAIN_LABELS), (_TEST_IMAGES, _TEST_LABELS)]
    return _idx_dataset(files, splits, _DIGIT_NAMES)


@register_dataset(
    "mnist-test",
    family="mnist",
    description="MNIST test split, 10,000 28×28 handwritten digits, 10 classes",
    files=[_TEST_IMAGES, _TEST_LABELS],
    url_hint=_MNIST_URL,
)
def _load_mnist_test(files: Mapping[str, Path]) -> ArrayDataset:
    return _idx_dataset(files, [(_TEST_IMAGES, _TEST_LABELS)], _DIGIT_NAMES)


@register_dataset(
    "fashion-mnist",
    family="fashion-mnist",
    description="Fashion-MNIST train + test, 70,000 28×28 clothing images, 10 classes",
    files=[_TRAIN_IMAGES, _TRAIN_LABELS, _TEST_IMAGES, _TEST_LABELS],
    url_hint=_FASHION_URL,
)
def _load_fashion_mnist(files: Mapping[str, Path]) -> ArrayDataset:
    splits = [(_TRAIN_IMAGES, _TRAIN_LABELS), (_TEST_IMAGES, _TEST_LABELS)]
    return _idx_dataset(files, splits, _FASHION_NAMES)


@register_dataset(
    "fashion-mnist-test",
    family="fashion-mnist",
    description="Fashion-MNIST test split, 10,000 28×28 clothing images, 10 classes",
    files=[_TEST_IMAGES, _TEST_LABELS],
    url_hint=_FASHION_URL,
)
def _load_fashion_mnist_test(files: Mapping[str, Path]) -> ArrayDataset:
    return _idx_dataset(files, [(_TEST_IMAGES, _TEST_LABELS)], _FASHION_NAMES)


@register_dataset(
    "usps",
    family="usps",
    description="USPS train + test, 9,298 16×16 handwritten digits, 10 classes",
    files=["usps.h5"],
    url_hint=_USPS_URL,
)
def _load_usps(files: Mapping[str, Path]) -> ArrayDataset:
    arrays = read_usps_h5(files["usps.h5"])
    images = np.concatenate([arrays["train_x"], arrays["test_x"]])
    labels = np.concatenate([arrays["train_y"], arrays["test_y"]])
    return ArrayDataset(
        data=torch.from_numpy(images),
        labels=labels,
        name="usps",
        class_names=list(_DIGIT_NAMES),
    )
