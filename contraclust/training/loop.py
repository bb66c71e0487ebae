"""The training loop, on Lightning Fabric.

Fabric supplies devices, data parallelism and mixed precision; the loop itself is
short and explicit so that its randomness is under control: one CPU generator draws
the sample order and one generator on the training device draws every augmentation,
both seeded from ``train.seed`` and both saved in each checkpoint (the augmentation
generator of every process), so a CPU run that is stopped and resumed, on as many
processes, ends with the same weights as a run that never stopped.

The data stay as uint8 (images) or float32 (vectors) tensors; each step indexes a
batch, moves it to the device and augments it there. Sets too large for memory are
streamed instead (``data.stream``): DataLoader workers decode the files of each step's
indices, drawn from the same permutation (see :mod:`contraclust.data.source`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contraclust.config import AUTO_CLUSTERS, RunConfig, save_yaml
from contraclust.data import ArrayDataset
from contraclust.data.augment import build_augmentation, resolve_augmentation_name
from contraclust.data.features import features_dataset
from contraclust.data.registry import absolute_spec
from contraclust.data.source import InMemorySource, load_training_data, make_source
from contraclust.data.streaming import StreamedImageDataset
from contraclust.errors import ConfigError, ContraclustError, ContraclustWarning, DataError
from contraclust.evaluation import evaluate
from contraclust.evaluation.agreement import central_partition
from contraclust.losses import SelfLabelLoss
from contraclust.methods import ClusteringMethod, get_method
from contraclust.methods.base import steps_in
from contraclust.models.backbones import resolve_backbone_name
from contraclust.training import rundir
from contraclust.training.budget import plan_run
from contraclust.training.checkpoint import (
    build_method,
    config_from_checkpoint,
    epoch_length,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from contraclust.training.interrupt import StopRequest, TrainingInterrupted
from contraclust.training.predict import Prediction, apply_batched, predict
from contraclust.training.select_k import choose_k, validate_k_search, warm_start
from contraclust.utils import atomic_write_json, resolve_device, run_lock

log = logging.getLogger("contraclust")


#: Mean ARI between restarts below which the run warns that its clusters are unstable.
UNSTABLE_ARI = 0.5


class TrainingDivergedError(ContraclustError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    """What a finished run returns."""

    method: ClusteringMethod
    config: RunConfig
    prediction: Prediction
    metrics: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    run_dir: Path | None = None
    #: The K search (``k_search.json``) when ``n_clusters`` was ``auto``.
    k_search: dict[str, Any] | None = None
    #: A degenerate partition, said (see :func:`degenerate_result`).
    warnings: list[str] = field(default_factory=list)
    #: With ``train.restarts`` > 1: the seeds, their agreement and the one kept
    #: (``restarts.json``).
    restarts: dict[str, Any] | None = None


def validate_config(cfg: RunConfig, n_samples: int) -> None:
    """Range checks that need no model; each error names the option and its range."""
    t = cfg.train
    if n_samples < 2:
        raise DataError(
            f"the data holds only {n_samples} sample(s); clustering needs at least 2 "
            "(and at least K)"
        )
    if t.restarts > 1 and (cfg.n_clusters == AUTO_CLUSTERS or t.devices * t.num_nodes > 1):
        raise ConfigError(
            f"restarts={t.restarts} needs a given number of clusters and one process; "
            "give n_clusters=K and devices=1, or restarts=1"
        )
    if cfg.n_clusters == AUTO_CLUSTERS:
        validate_k_search(cfg, n_samples)
    elif cfg.n_clusters < 2:
        raise ConfigError(
            f"the number of clusters must be >= 2, got {cfg.n_clusters}; use n_clusters=2 or more"
        )
    elif cfg.n_clusters > n_samples:
        raise ConfigError(
            f"the number of clusters ({cfg.n_clusters}) is larger than the number of "
            f"samples ({n_samples}); use n_clusters={n_samples} or fewer"
        )
    if t.batch_size is not None and t.batch_size > n_samples:
        raise ConfigError(
            f"batch size {t.batch_size} is larger than the number of samples "
            f"({n_samples}); use batch_size={n_samples} or less"
        )
    cfg.check()


def _make_optimizer(params: list[torch.nn.Parameter], cfg: RunConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


def _lr_factor(cfg: RunConfig, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, cfg.train.epochs * steps_per_epoch)
    warmup = steps_in(cfg.optim.warmup_epochs, steps_per_epoch)
    self_label_lr = cfg.train.self_label_lr or cfg.optim.lr / 10

    def factor(step: int) -> float:
        if cfg.train.self_label_epochs and step >= cfg.train.epochs * steps_per_epoch:
            # self-labelling: constant (only then: a run that is later lengthened must
            # not have taken the self-labelling rate at the end of its epochs)
            return self_label_lr / cfg.optim.lr
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.optim.schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def _fabric(cfg: RunConfig):
    from lightning.fabric import Fabric

    device = resolve_device(cfg.train.device)
    precision = cfg.train.precision
    if precision == "auto":
        precision = "bf16-mixed" if device.type == "cuda" else "32-true"
    elif precision == "32":
        precision = "32-true"
    devices, nodes = cfg.train.devices, cfg.train.num_nodes
    several = devices * nodes > 1
    strategy = "ddp" if several else "auto"
    if several and cfg.train.self_label_epochs:
        # self-labelling leaves the method's other heads without gradient
        strategy = "ddp_find_unused_parameters_true"
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise ConfigError(
            f"{devices} devices requested but {torch.cuda.device_count()} CUDA GPU(s) found"
        )
    return Fabric(
        accelerator=device.type,
        devices=devices,
        num_nodes=nodes,
        strategy=strategy,
        precision=precision,
    )


def model_input(x: Tensor) -> Tensor:
    """A training batch in the layout convolutions run fastest on: channels-last images.

    oneDNN (CPU) and cuDNN (GPU) work natively on NHWC; the first convolution then
    keeps every later activation in that layout. Only the training views change: the
    read-outs keep the default layout, so a saved model predicts exactly as it did at
    the end of training. Measured in BENCHMARKS.md ("Speed changes").
    """
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class _Module(torch.nn.Module):
    """Routes the training step through ``forward`` so DDP and autocast wrap it."""

    def __init__(self, method: ClusteringMethod) -> None:
        super().__init__()
        self.method = method
        #: Set during the self-labelling epochs, which replace the method's losses.
        self.self_label: SelfLabelLoss | None = None

    def forward(self, views: list[Tensor], clean: Tensor, index: Tensor) -> dict[str, Tensor]:
        if self.self_label is not None:
            return self.method.self_label_loss(views, clean, self.self_label)
        return self.method.training_loss(views, clean, index)


def _setup_logging(run_dir: Path | None, quiet: bool) -> logging.Handler | None:
    log.setLevel(logging.INFO)
    if run_dir is None:
        return None
    handler = logging.FileHandler(run_dir / rundir.LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return handler


def launched_rank(devices_per_node: int = 1) -> int:
    """Global rank of this process, read from its launcher before Fabric starts.

    0 when not launched. The cluster environments are tried in Fabric's order:
    torchrun (``RANK``), SLURM's srun (``SLURM_PROCID``), LSF and MPI give the rank
    itself. Fabric's own launcher, and the same command started by hand on each node,
    give only ``NODE_RANK`` and ``LOCAL_RANK``: the rank is then
    ``NODE_RANK * devices_per_node + LOCAL_RANK``, which is 0 on the first process
    of node 0 alone whatever ``devices_per_node`` is. Only that process may lock and
    write the run directory: a test of ``LOCAL_RANK`` alone would let the first
    process of every node write it.
    """
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    for kind in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if kind.detect():
            return kind().global_rank()
    env = LightningEnvironment()
    return env.node_rank() * devices_per_node + env.local_rank()


def fit(
    cfg: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    report: bool = False,
) -> FitResult:
    """Train ``cfg`` on ``dataset`` (loaded from ``cfg.data`` when None).

    With ``run_dir`` the run writes its files there (see :mod:`rundir`) and can be
    resumed, and with ``report`` it ends with ``report.html`` (the command line asks
    for it; library callers opt in, since the figures cost seconds); without
    ``run_dir`` nothing is written (the estimator's in-memory mode).

    With ``train.devices > 1`` Fabric starts the other processes of this node by
    running the same command again; with ``train.num_nodes > 1`` a launcher (torchrun,
    srun, or the user) starts the command on every node. Everything that can fail on
    bad input is checked before the processes join, only global rank 0 locks, cleans
    and writes the run directory, and every process returns once it is complete.
    """
    run_path = Path(run_dir) if run_dir is not None else None
    cfg.check()
    if not resume:
        check_method_settings(cfg)  # before the run directory is made
    with contextlib.ExitStack() as stack:
        result = _fit_in(stack, cfg, dataset, run_path, resume, overwrite, quiet, report)
    return result


#: What a resumed run takes from its checkpoint unless the resuming call gives it: the
#: method, its length and the processes it runs on.
RESUME_SETTINGS = ("method", "epochs", "self_label_epochs", "devices", "num_nodes")


def keep_run_settings(cfg: RunConfig, run_dir: Path, given: Collection[str] = ()) -> None:
    """Make ``cfg`` continue the run in ``run_dir``: each of :data:`RESUME_SETTINGS`
    not named in ``given`` (the options the caller set) is taken from the run's last
    checkpoint. Nothing changes when there is no checkpoint (``fit`` says so)."""
    last = Path(run_dir) / rundir.LAST
    if not last.is_file():
        return
    saved = read_checkpoint(last)["config"]
    train = saved["train"]
    if "method" not in given:
        cfg.method = saved["method"]
    if "epochs" not in given:
        cfg.train.epochs = train["epochs"]
    if "self_label_epochs" not in given:
        cfg.train.self_label_epochs = train.get("self_label_epochs", 0)
    if "devices" not in given:
        cfg.train.devices = train["devices"]
    if "num_nodes" not in given:
        cfg.train.num_nodes = train.get("num_nodes", 1)


def check_method_settings(cfg: RunConfig) -> None:
    """The method's parameters (refusing unknown keys and settings once counted in
    steps) and its schedules against ``train.epochs``: ConfigError, before anything
    is trained or written."""
    cls = get_method(cfg.method)
    params = cls.parse_params(cfg.params)
    if cfg.train.epochs is not None:  # None: sized by the budget, checked once planned
        cls.check_schedule(params, cfg.train.epochs)


def _fit_in(
    stack: contextlib.ExitStack,
    cfg: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset | None,
    run_path: Path | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    report: bool,
) -> FitResult:
    """``fit`` inside its exit stack (the run lock, the log file, the clean-up)."""
    main_process = launched_rank(cfg.train.devices) == 0
    if run_path is not None and main_process:
        # A refused run leaves no folder behind that it created (runs last).
        stack.callback(_remove_if_created_empty, run_path, _first_missing(run_path))
        stack.enter_context(run_lock(run_path))
        resume, note = rundir.prepare_run_dir(run_path, resume=resume, overwrite=overwrite)
        if note:
            _tell(note, quiet)
        if not resume:
            # Runs after the log file is closed (exit callbacks run last-in first).
            stack.push(_cleanup_on_failure(run_path))
    elif run_path is not None and resume:
        resume = (run_path / rundir.LAST).is_file()
    resume_state: dict[str, Any] | None = None
    if run_path is not None and resume:
        resume_state = read_checkpoint(run_path / rundir.LAST)
        cfg = _resumed_config(cfg, resume_state, run_path)
    cfg.data.name = absolute_spec(cfg.data.name)
    if dataset is None:
        dataset = load_training_data(cfg.data)
    dataset.validate()
    validate_config(cfg, len(dataset))
    fabric = _fabric(cfg)
    if run_path is not None and main_process:
        handler = _setup_logging(run_path, quiet)
        stack.callback(_close_handler, handler)
    dataset, cfg = _prepare_data(dataset, cfg, quiet or not main_process)
    if resume_state is None:  # a resumed run keeps its settings
        cfg, dataset = plan_run(cfg, dataset, quiet or not main_process, report)
        check_method_settings(cfg)
    init_state, search = None, None
    if cfg.n_clusters == AUTO_CLUSTERS:
        loaded = dataset

        def train(c: RunConfig) -> FitResult:  # the provisional model, in memory
            return _fit(_fabric(c), c, loaded, None, None, quiet)

        cfg, init_state, search = choose_k(cfg, dataset.data, train, quiet)
        if run_path is not None and main_process:
            atomic_write_json(run_path / rundir.K_SEARCH, search.to_dict())
    if cfg.train.restarts > 1 and resume_state is None:
        result = _fit_restarts(fabric, cfg, dataset, run_path, quiet, report)
    else:
        result = _fit(fabric, cfg, dataset, run_path, resume_state, quiet, init_state, report)
    result.k_search = None if search is None else search.to_dict()
    degenerate = degenerate_result(result.prediction, result.config.n_clusters)
    if degenerate and main_process:
        log.warning("%s", degenerate)
        warnings.warn(degenerate, ContraclustWarning, stacklevel=3)
        result.warnings.append(degenerate)
    return result


def _resumed_config(cfg: RunConfig, state: dict[str, Any], run_path: Path) -> RunConfig:
    """The checkpoint's configuration, with the length ``cfg`` asks for."""
    saved = config_from_checkpoint(state)
    if saved.method != cfg.method:
        raise ConfigError(
            f"the run in {run_path} trains method '{saved.method}', not "
            f"'{cfg.method}'; resume it with method={saved.method}"
        )
    # The run continues with its own settings; only the length may change, and the
    # processes it runs on are this command's.
    saved.train.epochs = cfg.train.epochs or saved.train.epochs
    saved.train.self_label_epochs = cfg.train.self_label_epochs
    saved.train.devices = cfg.train.devices
    saved.train.num_nodes = cfg.train.num_nodes
    check_method_settings(saved)
    return saved


def _prepare_data(
    dataset: ArrayDataset | StreamedImageDataset, cfg: RunConfig, quiet: bool
) -> tuple[ArrayDataset | StreamedImageDataset, RunConfig]:
    """The frozen extractor's features instead of the images, when asked for."""
    if isinstance(dataset, StreamedImageDataset) and (
        cfg.data.features or cfg.n_clusters == AUTO_CLUSTERS
    ):
        option = "--features" if cfg.data.features else "--clusters auto"
        raise ConfigError(
            f"{option} needs the images in memory, but {dataset.name} is streamed "
            "(larger than the memory budget, or --stream on); pass --stream off if "
            "it fits, or give K with --clusters"
        )
    if cfg.data.features:
        device = resolve_device(cfg.train.device)
        dataset, side = features_dataset(
            dataset, cfg.data.features, cfg.data.features_image_size, device, quiet=quiet
        )
        cfg = replace(cfg, data=replace(cfg.data, features_image_size=side))
    return dataset, cfg


def _gather_states(fabric: Any, state: Tensor, device: torch.device) -> Tensor:
    """Every process's generator state (a byte tensor), stacked in rank order."""
    # NCCL gathers device tensors only; the states are small (5 KiB at most).
    gathered = fabric.all_gather(state.to(device))
    return gathered.cpu()


def _saved_generators(rng: dict[str, Any], rank: int, world: int) -> tuple[Tensor | None, Tensor]:
    """The augmentation and torch generator states this process resumes from.

    A run saved by as many processes as resume it gives each process its own states,
    so the resumed run draws what the uninterrupted one would have drawn. Otherwise
    (one process, or another number of processes) the first process's states are
    used; with several processes the augmentation generators then keep their fresh
    per-process seeds (None), and the run is equivalent in distribution only.
    """
    per_rank = rng.get("ranks")
    if per_rank is not None and len(per_rank["aug"]) == world:
        # Copies: a generator reads a state that is a row of a larger tensor wrongly
        # (torch 2.13 rejects it or crashes).
        return per_rank["aug"][rank].clone(), per_rank["torch"][rank].clone()
    if world == 1:
        return rng["aug"], rng["torch"]
    if rank == 0:
        saved = "one process" if per_rank is None else f"{len(per_rank['aug'])} processes"
        log.warning(
            "the checkpoint was written by %s and is resumed on %d: the augmentations "
            "will not repeat those of an uninterrupted run",
            saved,
            world,
        )
    return None, rng["torch"]


def _sample_views(
    method: ClusteringMethod,
    data: Any,
    augment: Any,
    aug_gen: torch.Generator,
    device: torch.device,
) -> Callable[[Tensor], Tensor]:
    """One augmented, normalised view of the training samples at ``index``, for
    methods that need samples beside the batch (see ``use_sample_views``)."""

    def views(index: Tensor) -> Tensor:
        if isinstance(data, InMemorySource):
            raw = data.data[index.to(data.data.device)]
        else:  # streamed: decoded here, one file at a time (an unreadable one is blank)
            raw = torch.stack([data.dataset[i][0] for i in index.tolist()])
        unit = method.to_unit(raw.to(device, non_blocking=True))
        return model_input(method.normalize(augment(unit, generator=aug_gen)))

    return views


def _cleanup_on_failure(run_path: Path) -> Callable[..., bool]:
    """An exit callback that, on an exception, removes what the failed run wrote."""

    def cleanup(exc_type: type[BaseException] | None, *_: Any) -> bool:
        if exc_type is not None:
            rundir.remove_unstarted(run_path)
        return False  # the exception goes on

    return cleanup


def _close_handler(handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()


@dataclass
class _Position:
    """Where a run stands: the epoch, the step inside it and the loss sums so far."""

    epoch: int = 0
    step: int = 0
    sums: dict[str, Tensor] = field(default_factory=dict)


class _Trainer:
    """One training run, read as set-up, restore, epochs (train, evaluate, save), finish.

    The trainer owns the step and epoch counters and calls the method's hooks (see
    :mod:`contraclust.methods.base`) with them.
    """

    def __init__(
        self,
        fabric: Any,
        cfg: RunConfig,
        dataset: ArrayDataset | StreamedImageDataset,
        run_dir: Path | None,
        quiet: bool,
        init_state: dict[str, Tensor] | None,
        resume_state: dict[str, Any] | None,
    ) -> None:
        fabric.launch()
        self.start_time = time.perf_counter()
        self.fabric, self.cfg, self.dataset, self.run_dir = fabric, cfg, dataset, run_dir
        self.rank, self.world = fabric.global_rank, fabric.world_size
        self.is_main = self.rank == 0
        self.device = fabric.device
        self.quiet = quiet
        self.show = not quiet and self.is_main
        torch.manual_seed(cfg.train.seed)
        n = self.n = len(dataset)
        self.global_batch, self.steps_per_epoch = epoch_length(cfg, n, self.world)
        if self.global_batch < 2 * self.world:
            raise ConfigError(
                f"batch size {self.global_batch} is too small for {self.world} devices"
            )
        self.method = method = self.build_method()
        self.data = make_source(dataset, self.device, cfg.data)
        self.load_state(init_state, resume_state)
        if method.trainable:
            _resolve_auto_settings(cfg, dataset)
            cfg.train.batch_size = self.global_batch
        if run_dir is not None and self.is_main:
            save_yaml(cfg.to_dict(), run_dir / rundir.CONFIG)
            log.info("run %s: %s on %s (%d samples)", run_dir, cfg.method, dataset.name, n)
        if self.is_main:
            settings = _settings_line(cfg, dataset, self.global_batch, method.trainable)
            if run_dir is not None:
                settings += f" -> {run_dir}"
            log.info("%s", settings)
            if not quiet:
                print(settings, file=sys.stderr)
        self.perm_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(
            cfg.train.seed * 1000 + self.rank
        )
        self.history: list[dict[str, Any]] = []
        self.position = _Position()
        self.epochs = cfg.train.epochs
        #: The epochs that schedules given as a share of the run refer to.
        self.schedule_epochs = self.epochs
        self.total_epochs = self.epochs + cfg.train.self_label_epochs
        if not method.trainable and cfg.train.self_label_epochs:
            raise ConfigError(
                f"self_label_epochs needs a trained method; '{cfg.method}' is fitted in "
                "closed form: set train.self_label_epochs to 0"
            )

    # ------------------------------------------------------------------ set-up
    def build_method(self) -> ClusteringMethod:
        cfg = self.cfg
        method = build_method(cfg, self.dataset.input_shape, self.n)
        if self.world > 1 and self.device.type == "cuda" and cfg.train.sync_batchnorm:
            method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        return method

    def load_state(
        self, init_state: dict[str, Tensor] | None, resume_state: dict[str, Any] | None
    ) -> None:
        """The checkpoint's state; for a new run the input statistics of the data, and
        the K search's weights when given."""
        method = self.method
        if resume_state is not None:
            method.load_state_dict(resume_state["state_dict"])
            return
        method.set_input_stats(self.data.batches(4096))
        if init_state is not None:  # the final model of a K search
            fresh = warm_start(method, init_state)
            log.info("started from the K search's model; fresh: %s", ", ".join(fresh) or "none")

    def fit_closed_form(self, resume_state: dict[str, Any] | None) -> None:
        self.method.to(self.device)
        if resume_state is None:
            self.method.fit_closed_form(self.method.to_unit(self.data.materialize()))

    def set_up_training(self, resume_state: dict[str, Any] | None) -> None:
        """Augmentation, optimiser and schedule; the checkpoint's state on resume; the
        method's ``start_fit``; then Fabric's wrapping."""
        cfg, method, dataset = self.cfg, self.method, self.dataset
        t = cfg.train
        self.self_label = (
            SelfLabelLoss(t.self_label_threshold, t.self_label_balance)
            if t.self_label_epochs
            else None
        )
        augment = build_augmentation(
            cfg.augment.name, dataset.kind, dataset.input_shape, cfg.augment.options
        )
        self.augment = augment.to(self.device)
        method.to(self.device)
        self.core = _Module(method)
        optimizer = _make_optimizer(list(method.parameters()), cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_factor(cfg, self.steps_per_epoch)
        )
        if resume_state is not None:
            self.restore(optimizer, resume_state)
        device, data = self.device, self.data
        method.use_sample_views(_sample_views(method, data, self.augment, self.aug_gen, device))
        # Schedules given as a share of the run ("40%") keep the first run's epochs when
        # a resumed run is lengthened, so that nothing already done happens again.
        if resume_state is not None:
            self.schedule_epochs = int(resume_state.get("schedule_epochs", self.epochs))
        method.start_fit(
            lambda fn: apply_batched(method, data, fn, device, batch_size=512),
            self.steps_per_epoch,
            resumed=resume_state is not None,
            epochs=self.schedule_epochs,
        )
        self.module, self.optimizer = self.fabric.setup(self.core, optimizer)

    def restore(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Optimiser, schedule, generators, history and position of a checkpoint."""
        optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.perm_gen.set_state(state["rng"]["perm"])
        aug_state, torch_state = _saved_generators(state["rng"], self.rank, self.world)
        if aug_state is not None:
            self.aug_gen.set_state(aug_state.to(self.aug_gen.get_state().device))
        torch.set_rng_state(torch_state)
        self.history = list(state["history"])
        # A run stopped by Ctrl-C continues inside its epoch (see _stop_at_step).
        self.position = _Position(
            epoch=int(state["epoch"]),
            step=int(state.get("step", 0)),
            sums={k: v.to(self.device) for k, v in state.get("partial_sums", {}).items()},
        )

    # ------------------------------------------------------------------ epochs
    def train(self) -> Prediction | None:
        """Every remaining epoch; returns the final read-out when an epoch made it."""
        from tqdm.auto import tqdm

        start = self.position
        stop = StopRequest(enabled=self.world == 1).install()
        self.bar = tqdm(
            total=(self.total_epochs - start.epoch) * self.steps_per_epoch - start.step,
            disable=not self.show,
            unit="step",
            dynamic_ncols=True,
            desc=f"{self.cfg.method} {self.dataset.name}",
        )
        prediction = None
        try:
            for epoch in range(start.epoch, self.total_epochs):
                first = start.step if epoch == start.epoch else 0
                sums = start.sums if first else {}
                read_out = self.run_epoch(epoch, first, sums, stop)
                if read_out is not None:
                    prediction = read_out
        finally:
            stop.restore()
            self.bar.close()
        return prediction

    def run_epoch(
        self, epoch: int, first: int, sums: dict[str, Tensor], stop: StopRequest
    ) -> Prediction | None:
        """Epoch ``epoch`` from its step ``first``, then its row, read-out and checkpoint."""
        epoch_start = time.perf_counter()
        own_loss = epoch < self.epochs  # the method's losses (else self-labelling)
        self.core.self_label = None if own_loss else self.self_label
        if epoch == self.epochs and not first:
            # Self-labelling starts afresh (as SCAN's does): momentum from the
            # method's losses would keep moving the weights without a target.
            self.optimizer.state.clear()
        self.module.train()
        perm_state = self.perm_gen.get_state()
        perm = torch.randperm(self.n, generator=self.perm_gen)
        if own_loss:
            self.method.on_epoch_start(epoch)
        # after Ctrl-C the epoch continues at step `first` of the same order
        spe, batch = self.steps_per_epoch, self.global_batch
        batches = self.data.train_batches(
            perm[first * batch :], batch, spe - first, self.rank, self.world
        )
        for step, (idx, raw) in enumerate(batches, start=first):
            if stop.requested:
                where = (epoch, step, spe)
                _stop_at_step(self.run_dir, where, self.save_last, perm_state, sums)
            logged = self.method.on_step(epoch * spe + step, epoch) if own_loss else None
            out = self.train_step(idx, raw)
            if logged:
                out = {**logged, **out}
            for key, value in out.items():
                value = value.detach().float()
                sums[key] = sums[key] + value if key in sums else value
            self.bar.update(1)
        if own_loss:
            self.method.on_epoch_end(epoch)
            if epoch + 1 == self.epochs:
                self.method.on_fit_end()
        row = self.epoch_row(epoch, sums, epoch_start)
        prediction = self.evaluate(epoch, row)
        self.history.append(row)
        self.bar.set_postfix({k: f"{row[k]:.4f}" for k in ("loss", "acc") if k in row})
        log.info(
            "epoch %d/%d %s",
            epoch + 1,
            self.total_epochs,
            " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
        )
        self.save_last(epoch + 1, self.perm_gen.get_state())
        if self.run_dir is not None and self.is_main:
            rundir.write_history_csv(self.run_dir / rundir.METRICS_CSV, self.history)
        if self.world > 1:
            self.fabric.barrier()
        return prediction

    def train_step(self, idx: Tensor, raw: Tensor) -> dict[str, Tensor]:
        """Augment one batch on the device, take one optimiser step; the losses."""
        method, device = self.method, self.device
        raw = raw.to(device, non_blocking=True)
        unit = method.to_unit(raw)
        views = [
            model_input(method.normalize(self.augment(unit, generator=self.aug_gen)))
            for _ in range(method.n_views)
        ]
        out = self.module(views, model_input(method.normalize(unit)), idx.to(device))
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(out["loss"])
        self.optimizer.step()
        self.scheduler.step()
        return out

    def epoch_row(self, epoch: int, sums: dict[str, Tensor], started: float) -> dict[str, Any]:
        """The epoch's line of ``metrics.csv``: mean losses, learning rate, seconds."""
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update({k: float(v) / self.steps_per_epoch for k, v in sums.items()})
        if not math.isfinite(row["loss"]):
            where = self.run_dir / rundir.LAST if self.run_dir is not None else None
            raise TrainingDivergedError(
                f"the loss became {row['loss']} in epoch {epoch + 1}; "
                + (f"the last good checkpoint is kept at {where}; " if where else "")
                + "lower the learning rate (--lr) or check the data for extreme values"
            )
        row["lr"] = self.scheduler.get_last_lr()[0]
        row["seconds"] = round(time.perf_counter() - started, 3)
        return row

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, epoch: int, row: dict[str, Any]) -> Prediction | None:
        """Score the read-out into ``row`` on the epochs ``eval_every`` asks for and at
        the end (when labels exist); returns the final read-out."""
        last = epoch + 1 == self.total_epochs
        every = self.cfg.train.eval_every
        if self.dataset.labels is None or not (last or (every and (epoch + 1) % every == 0)):
            return None
        pred = predict(
            self.method,
            self.data,
            self.device,
            self.cfg.train.predict_with,
            self.cfg.train.seed,
            keep_probs=last,  # only the final read-out keeps the N x K probs
            kmeans_space=self.cfg.train.kmeans_space,
            kmeans_n_init=self.cfg.train.kmeans_n_init,
            progress="scoring" if self.show else None,
        )
        # Only what the row logs: AMI alone costs seconds at K = 1000.
        row.update(evaluate(self.dataset.labels, pred.labels, keys=("acc", "nmi", "ari")))
        if self.method.clusters_ready:  # no centres yet: every sample falls in one cluster
            warn_empty_clusters(pred.labels, self.cfg.n_clusters, f"after epoch {epoch + 1}")
        return pred if last else None  # the final read-out: not computed again at the end

    # ------------------------------------------------------------------ save
    def save_last(self, epoch: int, perm_state: Tensor, **position: Any) -> None:
        """Write ``last.ckpt``: a collective with several processes (each gives its
        generators), so every process calls it at an epoch's end."""
        if self.run_dir is None:
            return
        device, world = self.device, self.world
        per_rank = None
        if world > 1:
            per_rank = {
                "aug": _gather_states(self.fabric, self.aug_gen.get_state(), device),
                "torch": _gather_states(self.fabric, torch.get_rng_state(), device),
            }
        if not self.is_main:
            return
        state = make_checkpoint(
            self.method,
            self.cfg,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            epoch=epoch,
            rng={
                "perm": perm_state,
                "aug": self.aug_gen.get_state().cpu(),
                "torch": torch.get_rng_state(),
                **({} if per_rank is None else {"ranks": per_rank}),
            },
            history=self.history,
            schedule_epochs=self.schedule_epochs,
            **position,
        )
        save_checkpoint(state, self.run_dir / rundir.LAST)

    # ------------------------------------------------------------------ finish
    def finish(self, prediction: Prediction | None, report: bool) -> FitResult:
        """The final read-out and metrics; the run's files on the main process."""
        method, cfg, dataset = self.method, self.cfg, self.dataset
        method.eval()
        if prediction is None:
            prediction = predict(
                method,
                self.data,
                self.device,
                cfg.train.predict_with,
                cfg.train.seed,
                progress="predicting" if self.show else None,
                kmeans_space=cfg.train.kmeans_space,
                kmeans_n_init=cfg.train.kmeans_n_init,
            )
        labels = dataset.labels
        metrics = evaluate(labels, prediction.labels) if labels is not None else None
        seconds = time.perf_counter() - self.start_time
        method.cpu()
        run_dir = self.run_dir
        if run_dir is not None and self.is_main:
            _write_outputs(
                run_dir, cfg, method, dataset, prediction, metrics, self.history, seconds
            )
            if report:
                _write_report(run_dir, method, dataset, prediction, cfg.train.seed, self.quiet)
        if self.fabric.world_size > 1:
            # The other processes (on other nodes too) return once the run directory is
            # complete, so that what follows them on their node can read it.
            self.fabric.barrier()
        return FitResult(method, cfg, prediction, metrics, self.history, seconds, run_dir)


def _fit(
    fabric: Any,
    cfg: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset,
    run_dir: Path | None,
    resume_state: dict[str, Any] | None,
    quiet: bool,
    init_state: dict[str, Tensor] | None = None,
    report: bool = False,
) -> FitResult:
    trainer = _Trainer(fabric, cfg, dataset, run_dir, quiet, init_state, resume_state)
    prediction = None
    if trainer.method.trainable:
        trainer.set_up_training(resume_state)
        prediction = trainer.train()
    else:
        trainer.fit_closed_form(resume_state)
    return trainer.finish(prediction, report)


def _fit_restarts(
    fabric: Any,
    cfg: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset,
    run_dir: Path | None,
    quiet: bool,
    report: bool,
) -> FitResult:
    """``train.restarts`` trainings in memory, seeds ``seed``, ``seed + 1``, ...; the
    one whose partition agrees most with the others is the run's result, written to
    ``run_dir`` as a run of its own seed (``restarts.json`` records them all)."""
    results, seeds = [], [cfg.train.seed + i for i in range(cfg.train.restarts)]
    for i, seed in enumerate(seeds):
        _tell(f"restart {i + 1}/{len(seeds)}: seed {seed}", quiet)
        one = copy.deepcopy(cfg)
        one.train.seed, one.train.restarts = seed, 1
        results.append(_fit(fabric, one, dataset, None, None, quiet))
    agreement = central_partition([r.prediction.labels for r in results])
    chosen = results[agreement.chosen]
    scores = agreement.mean_to_others
    summary: dict[str, Any] = {
        "seeds": seeds,
        "chosen_seed": seeds[agreement.chosen],
        "mean_ari": round(agreement.mean, 4),
        "mean_ari_to_others": [round(float(x), 4) for x in scores],
        "ari": np.round(agreement.ari, 4).tolist(),
        "metrics": [r.metrics for r in results],
    }
    _tell(
        f"restarts agree with ARI {agreement.mean:.3f} on average; kept seed "
        f"{summary['chosen_seed']} (ARI {scores[agreement.chosen]:.3f} to the others)",
        quiet,
    )
    if agreement.mean < UNSTABLE_ARI:
        message = (
            f"the {len(seeds)} restarts disagree (mean ARI {agreement.mean:.2f}): these "
            "clusters are not stable; a larger budget or another number of clusters may help"
        )
        log.warning("%s", message)
        warnings.warn(message, ContraclustWarning, stacklevel=4)
    chosen.seconds = sum(r.seconds for r in results)
    chosen.restarts = summary
    if run_dir is not None and fabric.global_rank == 0:
        c = chosen.config
        save_yaml(c.to_dict(), run_dir / rundir.CONFIG)
        _write_outputs(
            run_dir,
            c,
            chosen.method,
            dataset,
            chosen.prediction,
            chosen.metrics,
            chosen.history,
            chosen.seconds,
        )
        atomic_write_json(run_dir / rundir.RESTARTS, summary)
        if report:
            _write_report(run_dir, chosen.method, dataset, chosen.prediction, c.train.seed, quiet)
        chosen.run_dir = run_dir
    return chosen


def _write_report(
    run_dir: Path,
    method: ClusteringMethod,
    dataset: ArrayDataset | StreamedImageDataset,
    prediction: Prediction,
    seed: int,
    quiet: bool = True,
) -> None:
    # The run's results are written by now: a failing figure must not fail the run.
    from contraclust.training.report import report_after_fit

    try:
        path = report_after_fit(
            run_dir, method, dataset, prediction, torch.device("cpu"), seed, progress=not quiet
        )
    except Exception as exc:
        log.warning("no report: %s; rebuild it with `contraclust report %s`", exc, run_dir)
    else:
        log.info("report: %s", path)


def _stop_at_step(
    run_dir: Path | None,
    position: tuple[int, int, int],
    save_last: Any,
    perm_state: Tensor,
    sums: dict[str, Tensor],
) -> None:
    """Save where training stands (between two steps) and raise TrainingInterrupted.

    The checkpoint records the sample order's generator as it was before this epoch's
    shuffle, the step reached and the loss sums so far, so that a resumed run redoes
    the same shuffle, skips the finished steps and ends as if it had never stopped.
    """
    epoch, step, steps_per_epoch = position
    where = f"epoch {epoch + 1}, step {step}/{steps_per_epoch}"
    if run_dir is None:
        raise TrainingInterrupted(f"training interrupted in {where}; nothing was saved")
    save_last(epoch, perm_state, step=step, partial_sums=sums)
    log.warning("interrupted in %s; saved %s", where, run_dir / rundir.LAST)
    raise TrainingInterrupted(
        f"training interrupted in {where}; saved {run_dir / rundir.LAST}; "
        f"continue with: contraclust fit --resume --out {run_dir}"
    )


def _resolve_auto_settings(cfg: RunConfig, dataset: ArrayDataset | StreamedImageDataset) -> None:
    """Write what ``auto`` chose into the config, so config.yaml says what ran."""
    cfg.model.backbone = resolve_backbone_name(cfg.model.backbone, dataset.input_shape)
    cfg.augment.name = resolve_augmentation_name(
        cfg.augment.name, dataset.kind, dataset.input_shape
    )


def _settings_line(
    cfg: RunConfig, dataset: ArrayDataset | StreamedImageDataset, batch: int, trainable: bool
) -> str:
    shape = "x".join(str(s) for s in dataset.input_shape)
    kind = "images" if dataset.kind == "image" else "vectors"
    line = f"settings: {len(dataset)} {kind} of {shape}, {cfg.method}, K={cfg.n_clusters}"
    if trainable:
        line += (
            f", backbone {cfg.model.backbone}, augmentation {cfg.augment.name}, "
            f"{cfg.train.epochs} epochs of batch {batch}, {cfg.optim.name} lr {cfg.optim.lr:g}"
        )
        if cfg.train.self_label_epochs:
            line += f", then {cfg.train.self_label_epochs} self-labelling epochs"
    return line


def cluster_summary(labels: np.ndarray, n_clusters: int) -> dict[str, Any]:
    sizes = np.bincount(labels, minlength=n_clusters)
    return {
        "cluster_sizes": [int(s) for s in sizes],
        "empty_clusters": [int(k) for k in np.flatnonzero(sizes == 0)],
    }


def degenerate_result(prediction: Prediction, n_clusters: int) -> str | None:
    """A one-line warning, with the likely cause and a fix, when a partition is
    degenerate: fewer than half of the K clusters hold a sample, or the mean confidence
    is within 10% of 1/K (the model cannot tell the clusters apart)."""
    used = int(np.count_nonzero(np.bincount(prediction.labels, minlength=n_clusters)))
    confidence = float(np.mean(prediction.confidence)) if len(prediction.confidence) else 0.0
    if used < n_clusters / 2:
        what = f"only {used} of {n_clusters} clusters hold samples"
    elif confidence <= 1.1 / n_clusters:
        what = f"mean confidence {confidence:.3f} is close to 1/K = {1 / n_clusters:.3f}"
    else:
        return None
    return (
        f"degenerate result: {what}. Likely cause: too few epochs for the method's "
        "schedule, or a learning rate too high; train longer (epochs=N with a larger N), "
        "lower the learning rate (lr=...), or use a preset made for this kind of data"
    )


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None: it exists)."""
    missing = None
    for folder in [path, *path.absolute().parents]:
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_if_created_empty(run_path: Path, first_created: Path | None) -> None:
    """Remove the folders this run created for ``run_path`` when they are left empty."""
    if first_created is None:
        return
    folder = run_path.absolute()
    while True:
        if not folder.is_dir() or any(folder.iterdir()):
            return
        with contextlib.suppress(OSError):
            folder.rmdir()
        if folder == first_created.absolute():
            return
        folder = folder.parent


def _tell(message: str, quiet: bool) -> None:
    log.info("%s", message)
    if not quiet:
        print(f"contraclust: {message}", file=sys.stderr)


def warn_empty_clusters(labels: np.ndarray, n_clusters: int, when: str) -> list[int]:
    """Log (to train.log) the clusters no sample is assigned to; returns them.

    A cluster that empties is a symptom of collapse: the run goes on, but the user
    should know that fewer than K clusters are in use.
    """
    empty = cluster_summary(labels, n_clusters)["empty_clusters"]
    if empty:
        log.warning("%d of %d clusters are empty %s: %s", len(empty), n_clusters, when, empty)
    return empty


def _write_outputs(
    run_dir: Path,
    cfg: RunConfig,
    method: ClusteringMethod,
    dataset: ArrayDataset | StreamedImageDataset,
    prediction: Prediction,
    metrics: dict[str, Any] | None,
    history: list[dict[str, Any]],
    seconds: float,
) -> None:
    epochs = cfg.train.epochs + cfg.train.self_label_epochs
    state = make_checkpoint(method, cfg, epoch=epochs, history=history)
    if prediction.centers is not None:
        state["readout_centers"] = torch.from_numpy(prediction.centers)
    state["dataset"] = {
        "name": dataset.name,
        "n_samples": len(dataset),
        "class_names": list(dataset.class_names) if dataset.class_names else None,
    }
    save_checkpoint(state, run_dir / rundir.MODEL)
    rundir.write_assignments(
        run_dir / rundir.ASSIGNMENTS,
        prediction.labels,
        prediction.confidence,
        dataset.labels,
        dataset.paths,
        dataset.class_names,
    )
    summary = {
        "method": cfg.method,
        "dataset": dataset.name,
        "n_samples": len(dataset),
        "n_clusters": cfg.n_clusters,
        "epochs": cfg.train.epochs,
        "self_label_epochs": cfg.train.self_label_epochs,
        "readout": cfg.train.predict_with,
        "seconds": round(seconds, 3),
        "metrics": metrics,
        **cluster_summary(prediction.labels, cfg.n_clusters),
    }
    if dataset.skipped:
        summary["skipped_files"] = list(dataset.skipped)
    atomic_write_json(run_dir / rundir.METRICS_JSON, summary)
    if history:
        rundir.write_history_csv(run_dir / rundir.METRICS_CSV, history)
    warn_empty_clusters(prediction.labels, cfg.n_clusters, "at the end of training")
