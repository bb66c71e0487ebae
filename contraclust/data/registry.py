"""The named data sets, and :func:`load_dataset`, the one entry point for loading data.

A data set is registered by decorating a small loader function with
:func:`register_dataset`. The decorator records the official file names the loader
needs; :func:`load_dataset` finds them under ``<data root>/<family>/`` (a ``.gz`` name
is also accepted uncompressed), reports every missing one in a single message that
says where the data root came from and where to download the files, and only then
calls the loader with the paths it found. Adding a data set touches nothing else: the
sets themselves are registered by their family modules in :mod:`contraclust.data.sets`,
each with its :mod:`origin <contraclust.data.origins>` (the remote files and their
checksums, or how to obtain the set by hand), which the messages here quote.

Sets that come in parts (train and test) or in several official layouts (CIFAR's
pickle batches or binary records) declare them as :class:`FileLayout` objects: each
names the files every split reads, ``split="all"`` reads train and test together, and
the first layout whose files are all present is used. Such loaders also receive a
:class:`DatasetRequest` (the split, image size and ``skip_bad``).

The data root is ``--data-root`` when given, else ``$CONTRACLUST_DATA``, else
``~/.cache/contraclust``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from contraclust.data.dataset import ArrayDataset
from contraclust.data.origins import DownloadSource, ManualSource, Origin
from contraclust.data.readers.arrays import load_array_file
from contraclust.data.readers.images import load_image_folder, resize_images
from contraclust.data.readers.tables import TABLE_SUFFIXES, load_table_file
from contraclust.data.streaming import StreamedImageDataset, stream_image_folder
from contraclust.errors import DataError, did_you_mean

__all__ = [
    "ALL_SPLIT",
    "DATA_ROOT_ENV",
    "DatasetInfo",
    "DatasetLoader",
    "DatasetRequest",
    "FileLayout",
    "dataset_names",
    "family_origin",
    "find_dataset_files",
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
#: The loader of a set with layouts: also receives the :class:`DatasetRequest`.
SplitDatasetLoader = Callable[[Mapping[str, Path], "DatasetRequest"], ArrayDataset]
_Loader = TypeVar("_Loader", bound=Callable[..., ArrayDataset])

#: The split that reads every labelled part of a set (its train and test files).
ALL_SPLIT = "all"


@dataclass(frozen=True)
class FileLayout:
    """One official way a set's files are laid out under its family folder.

    Attributes:
        label: a few words naming the layout in messages (``"binary records"``).
        splits: the official files each split reads, as paths relative to the family
            folder; a name ending in ``/`` is a folder. ``"all"`` need not be given: it
            reads the files of ``"train"`` and ``"test"``.

    Example:
        >>> FileLayout("binary records", {"test": ("cifar-10-batches-bin/test_batch.bin",)})
        ... # doctest: +SKIP
    """

    label: str
    splits: Mapping[str, tuple[str, ...]] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "splits", {name: tuple(files) for name, files in self.splits.items()}
        )

    @property
    def split_names(self) -> tuple[str, ...]:
        """The splits this layout offers, ``"all"`` included."""
        names = list(self.splits)
        if ALL_SPLIT not in names:
            names.append(ALL_SPLIT)
        return tuple(names)

    def files_for(self, split: str) -> tuple[str, ...]:
        """The official files ``split`` reads (empty for a split the layout lacks)."""
        if split in self.splits:
            return self.splits[split]
        if split != ALL_SPLIT:
            return ()
        files: list[str] = []
        for part in ("train", "test"):
            files.extend(name for name in self.splits.get(part, ()) if name not in files)
        return tuple(files)


@dataclass(frozen=True)
class DatasetRequest:
    """What :func:`load_dataset` was asked for, handed to loaders of sets with layouts.

    Attributes:
        split: the split to read (``"train"``, ``"test"``, ``"all"``, ...), validated.
        image_size: the requested square side, for loaders that decode image files.
        skip_bad: skip unreadable image files instead of failing.
        stream: return a :class:`~contraclust.data.streaming.StreamedImageDataset`
            (only asked of sets registered as ``streamable``).
        workers: processes that pre-scan streamed files (None: the default).
    """

    split: str
    image_size: int | None = None
    skip_bad: bool = False
    stream: bool = False
    workers: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set.

    Attributes:
        name: the name given to :func:`load_dataset` (``"mnist-test"``).
        family: the group of sets sharing files; also the sub-folder of the data root
            holding them (``"mnist"`` for ``mnist`` and ``mnist-test``).
        description: one line for ``contraclust datasets``.
        files: the official file names the loader reads (empty when embedded); for a
            set with layouts, those its first layout reads for the default split.
        layouts: the official layouts of a set with splits (see :class:`FileLayout`).
        default_split: the split read when none is asked for.
        streamable: the loader can return the set as files streamed from disk.
    """

    name: str
    family: str
    description: str
    files: tuple[str, ...]
    loader: Callable[..., ArrayDataset] = field(repr=False, compare=False)
    layouts: tuple[FileLayout, ...] = ()
    default_split: str | None = None
    streamable: bool = False

    @property
    def origin(self) -> Origin:
        """Where the family's files come from (see :func:`family_origin`)."""
        return family_origin(self.family)

    @property
    def needs_download(self) -> bool:
        """Whether the set is read from files under the data root."""
        return bool(self.files)

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names :func:`load_dataset` accepts for this set."""
        if not self.layouts:
            return (ALL_SPLIT,)
        names: list[str] = []
        for layout in self.layouts:
            names.extend(name for name in layout.split_names if name not in names)
        return tuple(names)


_REGISTRY: dict[str, DatasetInfo] = {}
#: The origin of each family, given by the first set registered in it.
_ORIGINS: dict[str, Origin] = {}


def register_dataset(
    name: str,
    family: str,
    description: str,
    files: Sequence[str],
    origin: Origin | str,
    *,
    layouts: Sequence[FileLayout] = (),
    default_split: str | None = None,
    streamable: bool = False,
) -> Callable[[_Loader], _Loader]:
    """Register the decorated loader under ``name``.

    Without ``layouts`` the loader is called as ``loader(files)`` with every name in
    ``files``. With ``layouts`` it is called as ``loader(files, request)`` with the
    files of the split asked for, from the first layout that has them all; ``files``
    may then be empty (it is filled from the first layout and ``default_split``).
    A ``streamable`` set (it needs ``layouts``) returns a streamed set of files when
    its request says ``stream``.

    ``origin`` says where the family's files come from: a
    :class:`~contraclust.data.origins.DownloadSource` (fetched by ``contraclust
    datasets download``), a :class:`~contraclust.data.origins.ManualSource`, a plain
    address (a manual source), or None for a set bundled with a library. Every set of
    a family shares one origin.

    Example:
        >>> @register_dataset("toy", family="toy", description="two points",
        ...                   files=[], origin=None)  # doctest: +SKIP
        ... def _load_toy(files):
        ...     return ArrayDataset(torch.zeros(2, 3), None, "toy")
    """
    key = _normalise(name)
    if key != name:
        raise ValueError(f"dataset names are lower case with hyphens, got {name!r}")

    split = default_split or ALL_SPLIT
    if layouts and not all(split in layout.split_names for layout in layouts):
        raise ValueError(f"dataset {name!r}: default split {split!r} missing from a layout")
    listed = tuple(files) or (layouts[0].files_for(split) if layouts else ())
    if isinstance(origin, str):
        origin = ManualSource(f"download the official files from {origin}")

    def decorate(loader: _Loader) -> _Loader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        known = _ORIGINS.setdefault(family, origin)
        if known != origin:
            raise ValueError(
                f"dataset {name!r}: family {family!r} is already registered with another origin"
            )
        _REGISTRY[name] = DatasetInfo(
            name=name,
            family=family,
            description=description,
            files=listed,
            loader=loader,
            layouts=tuple(layouts),
            default_split=split if layouts else None,
            streamable=streamable,
        )
        return loader

    return decorate


def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, in registration order."""
    return list(_REGISTRY.values())


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` accepts, in registration order."""
    return list(_REGISTRY)


def absolute_spec(spec: str) -> str:
    """A data spec as a run should store it: a registered name unchanged, the path of
    an existing folder or file made absolute (so the run finds its data again from any
    working directory)."""
    if _normalise(spec) in _REGISTRY:
        return spec
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def family_origin(family: str) -> Origin:
    """Where the files of ``family`` come from (None: bundled, or no such family)."""
    return _ORIGINS.get(family)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registration of ``name`` (case and ``_``/``-`` insensitive)."""
    info = _REGISTRY.get(_normalise(name))
    if info is None:
        raise DataError(
            f"unknown dataset '{name}'{did_you_mean(_normalise(name), list(_REGISTRY))}: "
            f"valid names are {', '.join(_REGISTRY)}"
        )
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


def _find(folder: Path, official: str) -> Path | None:
    if official.endswith("/"):
        path = folder / official.rstrip("/")
        return path if path.is_dir() else None
    existing = [path for path in _candidates(folder, official) if path.is_file()]
    return existing[0] if existing else None


def _missing_text(folder: Path, names: Sequence[str]) -> str:
    """The missing paths, those sharing a folder written once: ``dir/{a, b, c}``."""
    groups: dict[str, list[str]] = {}
    for official in names:
        parent, _, base = official.rstrip("/").rpartition("/")
        groups.setdefault(parent, []).append(base + ("/" if official.endswith("/") else ""))
    parts = []
    for parent, bases in groups.items():
        where = folder / parent if parent else folder
        if len(bases) > 2:
            parts.append(f"{where}/{{{', '.join(bases)}}}")
        else:
            parts.extend(f"{where / base}{'/' if base.endswith('/') else ''}" for base in bases)
    return ", ".join(parts)


def _resolve_split(info: DatasetInfo, split: str | None) -> str:
    if split is None:
        return info.default_split or ALL_SPLIT
    chosen = split.strip().lower()
    if chosen not in info.splits:
        if not info.layouts:
            raise DataError(f"{info.name} has no train/test splits; drop split '{split}' (--split)")
        raise DataError(
            f"{info.name} has no split '{split}'; choose one of {', '.join(info.splits)}"
        )
    return chosen


def _locate_files(
    info: DatasetInfo, root: str | Path | None, split: str | None = None
) -> dict[str, Path]:
    if not info.files and not info.layouts:
        return {}
    chosen = _resolve_split(info, split)
    layouts = info.layouts or (FileLayout("official files", {ALL_SPLIT: info.files}),)
    data_root, source = resolve_data_root(root)
    folder = data_root / info.family
    attempts: list[tuple[FileLayout, list[str]]] = []
    for layout in layouts:
        needed = layout.files_for(chosen)
        if not needed:
            continue
        found = {official: _find(folder, official) for official in needed}
        missing = [official for official, path in found.items() if path is None]
        if not missing:
            return {official: path for official, path in found.items() if path is not None}
        attempts.append((layout, missing))
    if not attempts:
        raise DataError(f"{info.name}: no layout provides split '{chosen}'")
    best, missing = min(attempts, key=lambda attempt: len(attempt[1]))
    gz_note = " (.gz or uncompressed)" if missing[0].endswith(".gz") else ""
    split_note = f" for split '{chosen}'" if info.layouts and len(info.splits) > 1 else ""
    others = [
        f"or, as {layout.label}, {_missing_text(folder, layout.files_for(chosen))}"
        for layout, _ in attempts
        if layout is not best
    ]
    other_note = f" ({'; '.join(others)})" if others else ""
    raise DataError(
        f"{info.name}: missing {_missing_text(folder, missing)}{gz_note}{split_note}"
        f"{other_note} (data root {data_root} from {source}); "
        f"{_download_advice(info, folder)}"
    )


def _download_advice(info: DatasetInfo, folder: Path) -> str:
    """How to get a missing set: the download command when there is one, and the source."""
    origin = info.origin
    if isinstance(origin, DownloadSource):
        archives = [remote.name for remote in origin.archives if (folder / remote.name).is_file()]
        if archives:
            return (
                f"{', '.join(archives)} is there but not unpacked: run `contraclust datasets "
                f"download {info.name}` to check and unpack it"
            )
        return (
            f"run `contraclust datasets download {info.name}` or {origin.how_to_get(str(folder))}"
        )
    if isinstance(origin, ManualSource):
        return origin.how_to_get(str(folder))
    return f"reinstall the library that provides {info.name}"


def find_dataset_files(
    name: str, root: str | Path | None = None, split: str | None = None
) -> dict[str, Path]:
    """The path of each official file a registered set reads, without loading it.

    Args:
        name: a registered name.
        root: the data root (see :func:`resolve_data_root`).
        split: the split (see :func:`load_dataset`); None: the set's default.

    Raises:
        DataError: for an unknown name or split, or missing files (naming them, where
            the data root came from, and how to download them).
    """
    info = get_dataset_info(name)
    return _locate_files(info, root, split)


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec
        or os.sep in spec
        or spec.startswith((".", "~"))
        or Path(spec).suffix.lower() in _ARRAY_SUFFIXES
    )


#: Suffixes of the files read as arrays (images or vectors) or tables (vectors).
_ARRAY_SUFFIXES = (".npy", ".npz", *TABLE_SUFFIXES)


def load_dataset(
    spec: str | Path,
    root: str | Path | None = None,
    image_size: int | None = None,
    skip_bad: bool = False,
    split: str | None = None,
    stream: bool = False,
    workers: int | None = None,
    label_column: str | None = None,
) -> ArrayDataset | StreamedImageDataset:
    """Load a registered data set by name, an image folder, or an array or table file.

    Args:
        spec: a registered name (see :func:`list_datasets`; case-insensitive, ``_`` or
            ``-``), a folder of images, or an array file. A name wins over a folder of
            the same name in the working directory; write ``./name`` for the folder.
            Array files are ``.npy``/``.npz`` (images or vectors) and ``.csv``/
            ``.parquet`` tables of vectors (see
            :func:`~contraclust.data.readers.tables.load_table_file`).
        root: the data root for registered sets (see :func:`resolve_data_root`).
        image_size: side of the square images returned (shorter side resized, centre
            crop); None keeps the native size. Ignored for feature vectors.
        skip_bad: for image folders, skip unreadable files instead of failing.
        split: for registered sets with splits, ``"train"``, ``"test"`` or ``"all"``
            (train then test; some sets offer more, see each set's description). None
            reads the set's default, which is ``"all"`` for the sets clustering papers
            train on whole (MNIST, CIFAR, STL-10) and ``"train"`` for the ImageNet ones.
            Folders and array files are always read whole.
        stream: for an image folder or a ``streamable`` set, return a
            :class:`~contraclust.data.streaming.StreamedImageDataset` (files listed and
            pre-scanned, nothing decoded); other sets are loaded into memory anyway.
        workers: pre-scan processes of a streamed set (None: min(4, CPU count)).
        label_column: for ``.csv``/``.parquet`` tables, the column of labels (None:
            a column named ``label`` when there is one).

    Raises:
        DataError: for an unknown name or split, a missing path or file, or bad data.

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
        chosen = _resolve_split(info, split)
        files = _locate_files(info, root, chosen)
        if info.layouts:
            request = DatasetRequest(
                split=chosen,
                image_size=image_size,
                skip_bad=skip_bad,
                stream=stream and info.streamable,
                workers=workers,
            )
            dataset = info.loader(files, request)
        else:
            dataset = info.loader(files)
        if isinstance(dataset, StreamedImageDataset):
            dataset.name = info.name
            dataset.validate()
            return dataset
        dataset = replace(dataset, name=info.name)
    else:
        if split is not None and split.strip().lower() != ALL_SPLIT:
            raise DataError(
                f"split '{split}' applies to registered data sets only; {text} is read "
                "whole: drop --split"
            )
        path = Path(text).expanduser()
        if path.is_dir() and stream:
            return stream_image_folder(path, image_size, skip_bad, workers)
        if path.is_dir():
            dataset = load_image_folder(path, image_size=image_size, skip_bad=skip_bad)
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix not in _ARRAY_SUFFIXES:
                raise DataError(
                    f"{path}: unsupported file type '{path.suffix}'; give a folder of images, "
                    "a .npy, .npz, .csv or .parquet file, or a dataset name"
                )
            if suffix in TABLE_SUFFIXES:
                dataset = load_table_file(path, label_column=label_column)
            else:
                dataset = load_array_file(path)
        elif isinstance(spec, Path) or _looks_like_path(text):
            raise DataError(
                f"no such file or directory: {path.absolute()}; check the path, or give a "
                "dataset name (see contraclust datasets)"
            )
        else:
            raise DataError(
                f"unknown dataset '{text}'{did_you_mean(_normalise(text), list(_REGISTRY))}: "
                f"valid names are {', '.join(_REGISTRY)} "
                "or a path to an image folder or a .npy/.npz/.csv/.parquet file"
            )
    if image_size is not None and dataset.kind == "image":
        dataset = replace(dataset, data=resize_images(dataset.data, image_size))
    dataset.validate()
    return dataset
