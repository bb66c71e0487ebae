"""Typed run configuration, YAML presets and strict validation.

A run is described by one :class:`RunConfig`: the method and its own parameters, the
data, the model, the augmentation, the optimiser and the training schedule. Presets
are YAML files with the same nesting, shipped inside the package
(``contraclust/presets/<method>/<dataset>.yaml``); flat options (:func:`build_config`,
shared by the command line and the estimator) override them, and the resolved
configuration is written into the run directory and every checkpoint, so a result
always carries the settings behind it.

Unknown keys and values of the wrong type are refused with a :class:`ConfigError`
naming the key, never ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from contraclust.checks import check_choice, check_int, check_number, parse_duration
from contraclust.errors import ConfigError, ContraclustWarning, did_you_mean

T = TypeVar("T")

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")
#: ``data.stream``: decode image files batch by batch (``on``), hold them (``off``), or
#: decide by their decoded size (``auto``).
STREAM_MODES = ("auto", "on", "off")
#: The epochs of a trained method when neither the user, a preset nor a budget sets them.
DEFAULT_EPOCHS = 50
#: The global batch when neither the user nor a preset sets one (fewer samples: all).
#: 128 rather than the 256 of CC's paper: twice the steps in a CPU budget; screened
#: with the default recipe as a whole (BENCHMARKS.md, Defaults).
DEFAULT_BATCH = 128

#: Folder of the committed presets (``<method>/<dataset>.yaml``), installed with the package.
PRESET_DIR = Path(__file__).resolve().parent / "presets"
#: The preset of a run given neither a method nor a preset: a recipe for any data
#: (``presets/default.yaml``; chosen across data sets, see BENCHMARKS.md).
DEFAULT_RECIPE = "default"


def _check_known(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(
            f"unknown {name} '{value}'{did_you_mean(str(value), valid)}; valid: {', '.join(valid)}"
        )


@dataclass
class DataConfig:
    """Which data to cluster and how to read it."""

    #: A registered dataset name (``contraclust datasets``), an image folder or an array file.
    name: str = "digits"
    #: Root holding the standard sets; None: ``$CONTRACLUST_DATA`` or ``~/.cache/contraclust``.
    root: str | None = None
    #: Square side images are resized to; None keeps the native size.
    image_size: int | None = None
    #: Split of a registered set: ``train``, ``test`` or ``all`` (train + test); None:
    #: the set's default (``contraclust datasets`` lists each set's splits).
    split: str | None = None
    #: Skip (and report) images that cannot be decoded instead of stopping.
    skip_bad_images: bool = False
    #: Decode image files batch by batch in worker processes instead of holding the
    #: whole set in memory: ``on``, ``off``, or ``auto`` (stream image folders and the
    #: ImageNet-style sets whose decoded images exceed 2 GiB; array sets never stream).
    stream: str = "auto"
    #: DataLoader worker processes that decode streamed images; None: min(4, CPU count).
    workers: int | None = None
    #: Column of labels in a ``.csv``/``.parquet`` table; None: ``label`` when present.
    label_column: str | None = None
    #: A frozen, pretrained feature extractor the images go through once (cached on
    #: disk): ``torchvision:NAME``, ``timm:NAME`` or a TorchScript file. The method then
    #: trains only on the feature vectors; ``predict`` uses the same extractor.
    features: str | None = None
    #: Side of the images given to the ``features`` backbone; None: 224 for torchvision
    #: and timm, the images' own size for TorchScript (the run records the side used).
    features_image_size: int | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """The rules of these settings that need no data (run again after changes)."""
        _check_known("data.stream", self.stream, STREAM_MODES)
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"data.workers must be >= 0, got {self.workers}")
        if self.image_size is not None and self.image_size < 1:
            raise ConfigError(f"image_size must be a positive integer, got {self.image_size}")


@dataclass
class ModelConfig:
    """Backbone and head sizes shared by the deep methods."""

    backbone: str = "auto"
    #: Width of ``small_cnn`` (first-stage channels) or ``mlp`` (hidden size); None:
    #: the backbone's default.
    width: int | None = None
    projection_dim: int = 128
    hidden_dim: int = 512


@dataclass
class AugmentConfig:
    """Batched augmentation used to make the views of each sample."""

    #: ``auto`` picks by data kind: ``grey`` for 1-channel images, ``simclr`` for colour,
    #: ``vector`` for feature vectors; ``none`` disables augmentation.
    name: str = "auto"
    #: Changes to the image augmentation's settings, by field of
    #: ``contraclust.data.augment.ImageAugmentationConfig``, e.g. ``crop_scale: [0.8, 1.0]``.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule."""

    name: str = "adam"
    lr: float = 3e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    #: ``constant`` or ``cosine`` (decays to 0 over the run, after the warm-up).
    schedule: str = "constant"
    #: Epochs of linear warm-up of the learning rate (a fraction allowed; 0: none).
    warmup_epochs: float = 0.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """The rules of these settings that need no data (run again after changes)."""
        _check_known("optimizer", self.name, OPTIMIZERS)
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        _check_known("schedule", self.schedule, SCHEDULES)
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")


#: The read-outs of ``train.predict_with`` (see :class:`TrainConfig`).
READOUTS = ("head", "kmeans", "sinkhorn")
#: The spaces of ``train.kmeans_space``; each method offers some of them.
KMEANS_SPACES = ("backbone", "projection", "exemplar")


@dataclass
class TrainConfig:
    """Training schedule, hardware and read-out."""

    #: Epochs of the method; None: as many as ``budget`` allows, at most
    #: :data:`DEFAULT_EPOCHS` (see :mod:`contraclust.training.budget`).
    epochs: int | None = None
    #: Wall time the run is sized to when epochs, image size, backbone or batch are not
    #: given: ``90s``, ``5m``, ``1h``, ``1h30m``; ``none`` (no limit: the default
    #: epochs); ``auto``: 5 minutes on a CPU, 30 on a GPU. Fixed epochs win over it: the
    #: budget then only warns when the run is expected to exceed it by more than 20%.
    budget: str = "auto"
    #: Independent trainings with the seeds ``seed``, ``seed + 1``, ...; the run keeps
    #: the partition that agrees most with the others (adjusted Rand index; see
    #: :mod:`contraclust.evaluation.agreement`) and reports their agreement. The budget
    #: is shared among them. One process, K given.
    restarts: int = 1
    #: Global batch size (split across devices); None: :data:`DEFAULT_BATCH`, or the
    #: number of samples when fewer (see :meth:`batch_for`).
    batch_size: int | None = None
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = "auto"
    #: Processes (DDP) per node: one per GPU, or CPU processes.
    devices: int = 1
    #: Nodes (machines) of the run; each runs ``devices`` processes. The launcher
    #: (torchrun, srun, or the same command on every node) says which node is which.
    num_nodes: int = 1
    #: Batch-norm statistics over the global batch when training on several GPUs
    #: (PyTorch's SyncBatchNorm needs CUDA: on CPU processes keep local statistics).
    sync_batchnorm: bool = True
    #: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``32``, ``bf16-mixed`` or ``16-mixed``.
    precision: str = "auto"
    #: Score the predictions every N epochs when labels exist (0: only at the end).
    eval_every: int = 1
    #: How clusters are read out: ``head`` (argmax of the cluster head), ``kmeans``
    #: (k-means on the features of ``kmeans_space``) or ``sinkhorn`` (argmax of a
    #: Sinkhorn-balanced assignment computed over the whole data set, so that every
    #: cluster gets about N / K samples; ConCURL's authors report it).
    predict_with: str = "head"
    #: Where the k-means read-out runs: ``backbone`` (every method), ``projection``
    #: (the projection head's output) or ``exemplar`` (ConCURL's exemplar head); each
    #: method lists the spaces it has (docs/methods.md).
    kmeans_space: str = "backbone"
    #: k-means restarts of the k-means read-out (ConCURL's authors: 20).
    kmeans_n_init: int = 10
    #: Epochs of self-labelling after the method's ``epochs`` (0: none): the confident
    #: clean predictions become cross-entropy targets of the augmented views (SCAN's
    #: third step, ``contraclust.losses.SelfLabelLoss``); not part of the methods' papers.
    self_label_epochs: int = 0
    #: Smallest top probability that makes a prediction a self-labelling target.
    self_label_threshold: float = 0.99
    #: Weight each pseudo-class by the inverse of its count in the batch (SCAN's class
    #: balancing). False suits data whose classes differ much in size.
    self_label_balance: bool = True
    #: Constant learning rate of the self-labelling epochs; None: ``optim.lr / 10``
    #: (on mnist-test, ConCURL's ``optim.lr`` of 1e-3 emptied a cluster; 1e-4 gained 2 points).
    self_label_lr: float | None = None

    def __post_init__(self) -> None:
        self.check()

    def batch_for(self, n_samples: int) -> int:
        """The global batch of a run on ``n_samples`` samples."""
        return self.batch_size or min(DEFAULT_BATCH, n_samples)

    def check(self) -> None:
        """The rules of these settings that need no data (run again after changes)."""
        check_choice("predict_with", self.predict_with, READOUTS)
        check_choice("kmeans_space", self.kmeans_space, KMEANS_SPACES)
        check_int("kmeans_n_init", self.kmeans_n_init)
        if self.budget != "auto":
            parse_duration("budget", self.budget)
        check_int("restarts", self.restarts)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(
                f"epochs must be >= 1, got {self.epochs}; a run needs at least one epoch"
            )
        if self.batch_size is not None and self.batch_size < 2:
            raise ConfigError(f"batch size must be >= 2, got {self.batch_size}")
        if self.devices < 1:
            raise ConfigError(f"devices must be >= 1, got {self.devices}")
        if self.num_nodes < 1:
            raise ConfigError(
                f"num_nodes must be >= 1, got {self.num_nodes}; use num_nodes=1 for one machine"
            )
        _check_known("precision", self.precision, PRECISIONS)
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {self.eval_every}")
        check_int("self_label_epochs", self.self_label_epochs, low=0)
        check_number("self_label_threshold", self.self_label_threshold)
        if self.self_label_threshold >= 1:
            raise ConfigError(
                f"self_label_threshold must be < 1, got {self.self_label_threshold!r}"
            )
        if self.self_label_lr is not None:
            check_number("self_label_lr", self.self_label_lr)


@dataclass
class KSearchConfig:
    """How ``n_clusters: auto`` chooses K (see :mod:`contraclust.training.select_k`)."""

    #: Candidates ``MIN:MAX`` (both included); None: 2 to min(20, N // 10).
    k_range: str | None = None
    #: Epochs of the provisional model whose embedding is searched; None: half of
    #: ``train.epochs`` (at least 1). The final model starts from its weights.
    epochs: int | None = None
    #: k-means partitions per candidate K, each with its own seed and random projection.
    runs: int = 6
    #: Samples the partitions and silhouettes are computed on (a fixed random subset
    #: when there are more), which bounds the cost of the search.
    max_samples: int = 3000

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """The rules of these settings that need no data (K against N is checked with
        the data, in :func:`contraclust.training.select_k.parse_k_range`)."""
        check_int("k_search.runs", self.runs, low=2)
        check_int("k_search.max_samples", self.max_samples, low=10)
        if self.epochs is not None:
            check_int("k_search.epochs", self.epochs, low=0)


#: The value of ``n_clusters`` that asks for a search of K.
AUTO_CLUSTERS = "auto"


@dataclass
class RunConfig:
    """Everything that defines a run."""

    method: str = "cc"
    #: The number of clusters K, or ``auto`` to choose it (see ``k_search``).
    n_clusters: int | str = 10
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    k_search: KSearchConfig = field(default_factory=KSearchConfig)
    #: The method's own parameters, checked against the method's ``Params`` dataclass.
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.n_clusters, str) and self.n_clusters != AUTO_CLUSTERS:
            raise ConfigError(
                f"n_clusters: expected an integer or '{AUTO_CLUSTERS}', got {self.n_clusters!r}"
            )

    def check(self) -> None:
        """Check every rule that needs no data; call it again after changing fields."""
        self.__post_init__()
        self.data.check()
        self.optim.check()
        self.train.check()
        self.k_search.check()

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return from_dict(cls, raw)


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-able form of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted where lossless."""
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: a value is required, got null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        # "n_clusters: expected an integer, got True" + "... a string, got True" -> one line
        wanted = [text.partition(": expected ")[2].rpartition(", got ")[0] for text in errors]
        if all(wanted):
            raise ConfigError(f"{where}: expected {' or '.join(wanted)}, got {value!r}")
        raise ConfigError(f"{where}: invalid value {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of options, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (dict,):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported option type {_type_name(tp)}")


def from_dict(cls: type[T], raw: dict[str, Any], where: str = "") -> T:
    """Build the dataclass ``cls`` from ``raw``, refusing unknown keys and wrong types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown option '{prefix}{unknown[0]}'; valid options"
            f"{' in ' + where if where else ''}: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name in raw:
            key = f"{where}.{name}" if where else name
            kwargs[name] = _coerce(raw[name], hints[name], key)
    return cls(**kwargs)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dictionary merge: values in ``override`` win."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def available_presets() -> list[str]:
    """Names of the committed presets, as ``<method>/<dataset>``."""
    if not PRESET_DIR.is_dir():
        return []
    return sorted(
        str(p.relative_to(PRESET_DIR).with_suffix("")) for p in PRESET_DIR.rglob("*.yaml")
    )


def preset_path(name_or_path: str) -> Path:
    """Resolve a preset name (``cc/digits``) or a YAML file path."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file not found: {path}")
        return path
    candidate = PRESET_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    valid = available_presets()
    names = ", ".join(valid) or "(none installed)"
    raise ConfigError(
        f"unknown preset '{name_or_path}'{did_you_mean(name_or_path, valid)}; "
        f"valid presets: {names}, or a YAML file"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning parse errors into a ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path}: not valid YAML{where} ({exc.__class__.__name__}); correct the file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return raw


def load_preset(name_or_path: str) -> dict[str, Any]:
    """The raw mapping of a preset, validated as a RunConfig (errors name the file)."""
    path = preset_path(name_or_path)
    raw = read_yaml(path)
    try:
        RunConfig.from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"preset {path}: {exc}") from None
    return raw


def save_yaml(data: dict[str, Any], path: Path) -> None:
    """Write a mapping as YAML atomically (temporary file, then rename)."""
    from contraclust.utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


#: The flat options shared by ``contraclust fit`` and :class:`~contraclust.Clusterer`,
#: by their Python name, and where each goes in :class:`RunConfig`. The command line's
#: flags are the same names (``--batch-size`` is ``batch_size``), except ``--seed``
#: (``random_state``, scikit-learn's name), ``--clusters`` (``n_clusters``),
#: ``--self-label`` (``self_label_epochs``) and ``--optimizer`` (``optimizer``).
FLAT_OPTIONS: dict[str, tuple[str, ...]] = {
    "method": ("method",),
    "n_clusters": ("n_clusters",),
    "data": ("data", "name"),
    "data_root": ("data", "root"),
    "image_size": ("data", "image_size"),
    "split": ("data", "split"),
    "stream": ("data", "stream"),
    "workers": ("data", "workers"),
    "label_column": ("data", "label_column"),
    "features": ("data", "features"),
    "features_image_size": ("data", "features_image_size"),
    "skip_bad_images": ("data", "skip_bad_images"),
    "k_range": ("k_search", "k_range"),
    "backbone": ("model", "backbone"),
    "augment": ("augment", "name"),
    "lr": ("optim", "lr"),
    "optimizer": ("optim", "name"),
    "epochs": ("train", "epochs"),
    "budget": ("train", "budget"),
    "restarts": ("train", "restarts"),
    "self_label_epochs": ("train", "self_label_epochs"),
    "batch_size": ("train", "batch_size"),
    "random_state": ("train", "seed"),
    "device": ("train", "device"),
    "devices": ("train", "devices"),
    "num_nodes": ("train", "num_nodes"),
    "precision": ("train", "precision"),
    "predict_with": ("train", "predict_with"),
    "kmeans_space": ("train", "kmeans_space"),
    "eval_every": ("train", "eval_every"),
}


def preset_dataset(name_or_path: str) -> str | None:
    """The data set a preset was made for (see :func:`build_config`)."""
    return _preset_dataset(name_or_path, read_yaml(preset_path(name_or_path)))


def _preset_dataset(name_or_path: str, raw: dict[str, Any]) -> str | None:
    """The data set a preset was made for: its ``data.name``, else its file name (None
    for the default recipe, made for any data)."""
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        return data["name"]
    if name_or_path == DEFAULT_RECIPE:
        return None
    stem = Path(name_or_path).stem
    return stem or None


def _absolute_if_path(spec: str | None) -> str | None:
    """A path that exists, made absolute (so a run's config still finds it from another
    working directory); anything else unchanged."""
    if not spec:
        return spec
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    return spec


def build_config(
    preset: str | None = None,
    options: dict[str, Any] | None = None,
    sets: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    """The one mapping of flat options onto :class:`RunConfig`, used by the command line
    and by :class:`~contraclust.Clusterer`: defaults < ``preset`` < ``options`` < ``sets``.

    With neither a preset nor ``options["method"]``, the preset is the default recipe
    (:data:`DEFAULT_RECIPE`); a method given alone starts from its own defaults.

    ``options`` uses the names of :data:`FLAT_OPTIONS` plus ``params`` (a mapping of
    the method's own parameters); ``None`` values are left to the preset or default.
    ``sets`` are dotted assignments, ``train.eval_every=5`` or ``params.alpha=0.5``.
    A preset made for another data set than ``data`` is applied with a
    :class:`~contraclust.errors.ContraclustWarning`, and without its image size.
    The data root and a feature network's file are stored as absolute paths.
    """
    import warnings

    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(FLAT_OPTIONS) - {"params"})
    if unknown:
        valid = sorted([*FLAT_OPTIONS, "params"])
        raise ConfigError(
            f"unknown option '{unknown[0]}'{did_you_mean(unknown[0], valid)}; "
            f"valid: {', '.join(valid)}"
        )
    if not preset and options.get("method") is None:
        preset = DEFAULT_RECIPE
    raw: dict[str, Any] = load_preset(preset) if preset else {}
    data = options.get("data")
    made_for = _preset_dataset(preset, raw) if preset else None
    if preset and data is not None and made_for is not None and not _same_data(data, made_for):
        dropped = ""
        if isinstance(raw.get("data"), dict) and raw["data"].pop("image_size", None) is not None:
            dropped = "; its image size is not applied (give image_size=SIDE to choose one)"
        warnings.warn(
            f"preset '{preset}' was made for {made_for}, not {data}; its settings may not "
            f"suit this data{dropped}",
            ContraclustWarning,
            stacklevel=2,
        )
    over: dict[str, Any] = {}
    for name, value in options.items():
        if name == "params":
            over["params"] = dict(value)
            continue
        if name in ("data_root", "features"):
            value = _absolute_if_path(value)
        if name == "k_range" and isinstance(value, (tuple, list)):
            value = ":".join(str(k) for k in value)
        *sections, key = FLAT_OPTIONS[name]
        node = over
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    method = options.get("method")
    if method is not None and raw.get("method", method) != method:
        raw.pop("params", None)  # a preset of another method has parameters that do not apply
    for text in sets:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"set expects SECTION.KEY=VALUE, got '{text}'")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"set {key}: cannot parse value '{value}'") from None
        node = over
        *sections, last = key.strip().split(".")
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"set {key}: '{section}' is not a section")
        node[last] = parsed
    return RunConfig.from_dict(merge(raw, over))


def _same_data(data: str, made_for: str) -> bool:
    def norm(text: str) -> str:
        return Path(text).name.lower().replace("_", "-")

    return norm(data) == norm(made_for)
