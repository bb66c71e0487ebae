"""A time budget for a run, and the estimate printed before it starts.

Before training, :func:`plan_run` times a few steps of the run, on the data and the
device it will train on, and prints one line: the settings chosen and the expected
wall time. What the user or a preset fixed is kept; what is left open is sized to
``train.budget``:

* the image size (``data.image_size`` unset), the backbone (``auto``) and its width
  (``model.width`` unset): at most four candidates of, cheapest first: the images at
  the smallest side of :func:`smaller_sides` with a narrow ``small_cnn``
  (:data:`NARROW_WIDTH`) and with the default ``small_cnn``, then with the backbone
  ``auto`` picks at each larger side and at their own size. The richest is timed
  first: when it fits, it runs. Otherwise the others are timed cheapest first, up to
  the first that cannot train :data:`MIN_EPOCHS` epochs (or the given epochs) within
  the budget (a richer one would not either);
* the epochs (``train.epochs`` unset): as many as fit, at most
  :data:`~contraclust.config.DEFAULT_EPOCHS`.

The richest candidate that affords :data:`MIN_EPOCHS` epochs is chosen (with no
budget: the images' own size and the ``auto`` backbone, as without planning); when
none does, the cheapest, with the epochs that fit. The batch size and the method's
recipe are never changed: the planner sizes a run, it does not tune it.

Precedence: epochs given by the user (``--epochs``, ``Clusterer(epochs=...)``) or a
preset win over the budget; the estimate is still printed, and a run expected to
exceed its budget by more than 20% gets a
:class:`~contraclust.errors.ContraclustWarning` saying how to fit it.

The estimate is the time the timing itself took, plus the training steps times the
measured seconds per step, plus the read-outs (the scoring after each evaluated epoch,
the final prediction, the report) from a measured inference time per sample. Not
counted: k-means read-outs (``predict_with: kmeans``), a method's own passes over the
data during training (DECA's target refreshes), and the decoding of streamed files
beyond one batch.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from contraclust.checks import parse_duration
from contraclust.config import AUTO_CLUSTERS, DEFAULT_EPOCHS, RunConfig
from contraclust.data import ArrayDataset
from contraclust.data.augment import build_augmentation, resolve_augmentation_name
from contraclust.data.source import make_source
from contraclust.data.streaming import StreamedImageDataset
from contraclust.errors import ContraclustWarning
from contraclust.methods import get_method
from contraclust.models.backbones import resolve_backbone_name
from contraclust.training.checkpoint import build_method
from contraclust.training.predict import apply_batched, conform_to_model
from contraclust.training.select_k import parse_k_range
from contraclust.utils import resolve_device

__all__ = [
    "CPU_BUDGET",
    "GPU_BUDGET",
    "MIN_EPOCHS",
    "Candidate",
    "Plan",
    "Timing",
    "Trial",
    "budget_seconds",
    "format_seconds",
    "measure_step",
    "parse_duration",
    "plan_run",
]

log = logging.getLogger("contraclust")

#: ``budget: auto`` on a CPU: the deca mnist-test preset (10,000 images) reaches ACC
#: .975 in under 4 minutes on 2 cores, so 5 minutes suits sets of this size.
CPU_BUDGET = 300.0
#: ``budget: auto`` on a GPU. Not measured by the planner's author (no GPU here): chosen
#: as 6x the CPU budget, to be confirmed by a GPU measurement.
GPU_BUDGET = 1800.0
#: A candidate must afford this many epochs to be preferred over a cheaper one.
MIN_EPOCHS = 25
#: A run whose estimate exceeds its budget by more than this factor is warned about.
OVERRUN = 1.2
#: Samples of a candidate's first, timed step (scaled to the full batch, an upper bound).
PROBE_BATCH = 8
#: Samples of the timing of a candidate too slow to time at the full batch.
ROUGH_BATCH = 32
#: Timed steps (their median counts), after one warm-up step.
TIMED_STEPS = 3
#: Seconds the full-batch timing (a warm-up and :data:`TIMED_STEPS` steps) may take.
FULL_TIMING_LIMIT = 6.0
#: Seconds a warm-up and one timed step at the full batch may take, where
#: :data:`FULL_TIMING_LIMIT` does not allow more; slower steps keep the scaled
#: small-batch timing. Scaling alone is not enough below this: a full-width small CNN
#: at 32 px took 2.5 s a step at batch 128 where batch 32 scaled said 1.7 s.
SINGLE_TIMING_LIMIT = 12.0
#: Seconds each epoch costs beyond its steps and its scoring: the checkpoint, the
#: metrics file, the log (0.5 to 0.7 s measured for a small CNN on 2 loaded cores).
EPOCH_SECONDS = 0.5
#: Seconds the report's figures take beyond one pass over the data (measured on
#: 1,440 images; the pass itself is counted from the inference timing).
REPORT_SECONDS = 5.0
#: Image sides the planner tries below the images' own (cheapest first).
SIDES = (32, 64)
#: A smaller side, tried for images of at most :data:`SMALL_IMAGE` px: digits and
#: thumbnails keep their content at 16 px, a third of the pixels of 28 px.
SMALL_SIDE = 16
SMALL_IMAGE = 64
#: The width of the cheapest candidate, ``small_cnn`` at a quarter of its default 64
#: channels (about 1/16 of the compute; the deca mnist-test preset trains this width).
NARROW_WIDTH = 16


def smaller_sides(own: int) -> list[int]:
    """The sides the planner tries below the images' own ``own`` (28 px: 16; 64: 16
    and 32; 128 and more: 32 and 64)."""
    small = [SMALL_SIDE] if own <= SMALL_IMAGE else []
    return [s for s in (*small, *SIDES) if s < own]


@dataclass(frozen=True)
class Candidate:
    """One configuration the planner may choose: an image side (None: the data's own),
    a backbone name and its width (None: the backbone's default)."""

    side: int | None
    backbone: str
    width: int | None = None


@dataclass(frozen=True)
class Trial:
    """What a timing function gets: the candidate's configuration, real raw training
    samples at the candidate's side (a batch, or K when more), the set size, the batch
    and the device.

    ``give_up_above``: seconds per step above which the candidate cannot fit; the timing
    may stop after a rough measurement once it is clearly exceeded.
    """

    config: RunConfig
    sample: Tensor
    n_samples: int
    batch: int
    device: torch.device
    give_up_above: float | None = None


@dataclass(frozen=True)
class Timing:
    """Seconds per training step at the run's batch, and per sample of a read-out."""

    step: float
    infer: float
    #: Scaled from a small batch only (a candidate given up, or too slow to time in full).
    rough: bool = False


#: How the planner times a candidate; tests inject a deterministic one.
StepTimer = Callable[[Trial], Timing]


@dataclass
class Plan:
    """What :func:`plan_run` decided, with the line it printed."""

    config: RunConfig
    dataset: ArrayDataset | StreamedImageDataset
    line: str
    estimate: float
    budget: float | None
    timing: Timing
    #: The configurations timed, in the order they were timed.
    timed: list[Candidate] = field(default_factory=list)
    #: The warning given (a run expected to exceed its budget), if any.
    warning: str | None = None


def budget_seconds(budget: str, device: torch.device) -> float | None:
    """Seconds of ``train.budget`` on ``device`` (None: no limit)."""
    if budget == "auto":
        return GPU_BUDGET if device.type == "cuda" else CPU_BUDGET
    return parse_duration("budget", budget)


def format_seconds(seconds: float) -> str:
    """``45 s``, ``4 min 40 s``, ``2 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def _optimizer(params: list[torch.nn.Parameter], cfg: RunConfig) -> torch.optim.Optimizer:
    # The optimiser's update is part of a step's cost; its settings do not matter here.
    if cfg.optim.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    if cfg.optim.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.optim.lr)
    return torch.optim.Adam(params, lr=cfg.optim.lr)


def _autocast(cfg: RunConfig, device: torch.device) -> torch.autocast:
    precision = cfg.train.precision
    if device.type == "cuda" and precision in ("auto", "bf16-mixed"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cuda" and precision == "16-mixed":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, enabled=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_step(trial: Trial) -> Timing:
    """Seconds of one training step and of the read-out per sample, measured.

    Does what one step of the training loop does (the method's views, augmented on the
    device, its loss, backward, the optimiser's update), on ``trial.sample``: a first
    step on :data:`PROBE_BATCH` samples, scaled to the batch (an upper bound: it pays
    the first call's costs), stops there when above ``give_up_above``; then one
    warm-up and :data:`TIMED_STEPS` timed steps on :data:`ROUGH_BATCH` samples, scaled;
    then, unless they would take more than :data:`FULL_TIMING_LIMIT`, as many at the
    full batch (or one, within :data:`SINGLE_TIMING_LIMIT`). The median timed step
    counts. The global random state is restored afterwards, so planning does not change
    what the run draws.
    """
    cfg, device, raw = trial.config, trial.device, trial.sample
    shape = tuple(int(s) for s in raw.shape[1:])
    kind = "image" if raw.dim() == 4 else "vector"
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(cfg.train.seed)
        method = build_method(cfg, shape, trial.n_samples)
        method.set_input_stats(raw)
        method.to(device)
        raw = raw.to(device)
        # Methods that start from the data (k-means centres) see the whole sample, which
        # holds at least K samples; the steps take one batch of it.
        whole = raw
        raw = raw[: trial.batch]
        augment_name = resolve_augmentation_name(cfg.augment.name, kind, shape)
        augment = build_augmentation(augment_name, kind, shape, cfg.augment.options).to(device)
        generator = torch.Generator(device=device).manual_seed(cfg.train.seed)

        def sample_views(index: Tensor) -> Tensor:
            unit = method.to_unit(whole[index.to(whole.device)])
            return _channels_last(method.normalize(augment(unit, generator=generator)))

        method.use_sample_views(sample_views)
        method.start_fit(
            lambda fn: apply_batched(method, whole, fn, device, batch_size=512),
            max(1, trial.n_samples // trial.batch),
            resumed=False,
            epochs=cfg.train.epochs or DEFAULT_EPOCHS,
        )
        method.on_step(0, 0)  # the hooks of the first step (a k-means start, a mining)
        optimizer = _optimizer(list(method.parameters()), cfg)

        def step(batch: Tensor) -> None:
            method.train()
            with _autocast(cfg, device):
                unit = method.to_unit(batch)
                views = [
                    _channels_last(method.normalize(augment(unit, generator=generator)))
                    for _ in range(method.n_views)
                ]
                index = torch.arange(len(batch), device=device)
                out = method.training_loss(views, _channels_last(method.normalize(unit)), index)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()

        def timed(batch: Tensor, steps: int) -> float:
            # The median step: one step slowed by another process does not count.
            times = []
            for _ in range(steps):
                _sync(device)
                start = time.perf_counter()
                step(batch)
                _sync(device)
                times.append(time.perf_counter() - start)
            return float(np.median(times))

        # A first step on a few samples, first-call costs included: an upper bound that
        # is enough to give up a candidate far too slow for the budget.
        probe = raw[: min(len(raw), PROBE_BATCH)]
        bound = timed(probe, 1) * trial.batch / len(probe)
        if trial.give_up_above is not None and bound > trial.give_up_above:
            return Timing(bound, _infer_seconds(method, probe, device), rough=True)
        small = raw[:ROUGH_BATCH]
        step(small)
        rough = timed(small, TIMED_STEPS) * trial.batch / len(small)
        # Small models cost more per sample at the full batch (their activations leave
        # the caches: up to twice as much for a small CNN at 32 px), so a step that is
        # cheap enough is timed at the full batch: several times, or once.
        if len(small) < len(raw):
            for steps, limit in ((TIMED_STEPS, FULL_TIMING_LIMIT), (1, SINGLE_TIMING_LIMIT)):
                if rough * (1 + steps) <= limit:
                    step(raw)
                    per_step = timed(raw, steps)
                    return Timing(per_step, _infer_seconds(method, raw, device))
        # The read-out runs at batches of 512: per sample, a small batch costs more.
        return Timing(rough, _infer_seconds(method, raw, device), rough=len(small) < len(raw))


def _channels_last(x: Tensor) -> Tensor:
    # The loop trains on channels-last images (faster convolutions); so does the timing.
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _infer_seconds(method: torch.nn.Module, raw: Tensor, device: torch.device) -> float:
    """Seconds per sample of the head read-out (the scoring and the final prediction)."""
    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        apply_batched(method, raw, method.cluster_probs, device, batch_size=512)
        _sync(device)
    return (time.perf_counter() - start) / len(raw)


@dataclass
class _Sizing:
    """The cost model of one candidate: seconds as a function of the epochs."""

    cfg: RunConfig
    n: int
    batch: int
    timing: Timing
    labelled: bool
    report: bool

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n // self.batch)

    def seconds(self, epochs: int) -> float:
        t = self.cfg.train
        trained = epochs + t.self_label_epochs
        if self.cfg.n_clusters == AUTO_CLUSTERS:  # the K search's provisional model
            k_epochs = self.cfg.k_search.epochs
            trained += max(1, epochs // 2) if k_epochs is None else k_epochs
        total_epochs = epochs + t.self_label_epochs
        passes = 1  # the final prediction (or the last epoch's scoring)
        if self.labelled and t.eval_every:
            passes = max(1, total_epochs // t.eval_every + (total_epochs % t.eval_every > 0))
        if self.report:
            passes += 1
        seconds = trained * (self.steps_per_epoch * self.timing.step + EPOCH_SECONDS)
        seconds += passes * self.n * self.timing.infer
        return seconds + (REPORT_SECONDS if self.report else 0.0)

    def epochs_within(self, budget: float) -> int:
        """The most epochs (at most DEFAULT_EPOCHS) whose estimate fits ``budget``; 0
        when not even one does."""
        best = 0
        low, high = 1, DEFAULT_EPOCHS
        while low <= high:  # seconds() grows with the epochs
            mid = (low + high) // 2
            if self.seconds(mid) <= budget:
                best, low = mid, mid + 1
            else:
                high = mid - 1
        return best


def _candidates(cfg: RunConfig, shape: tuple[int, ...], streamed: bool) -> list[Candidate]:
    """The configurations to time, cheapest first, at most four (the user's choices kept)."""
    own = None if len(shape) != 3 else max(shape[1:])
    sides: list[int | None] = [None]
    if cfg.data.image_size is None and not streamed and own is not None:
        sides = [*smaller_sides(own), None]
    out: list[Candidate] = []
    for side in sides:
        at = shape if side is None else (shape[0], side, side)
        options = [Candidate(side, resolve_backbone_name(cfg.model.backbone, at), cfg.model.width)]
        if side == sides[0] and len(at) == 3 and cfg.model.backbone in ("auto", "small_cnn"):
            # the cheap end: a small CNN, narrow unless the width is given
            cheap = [Candidate(side, "small_cnn", cfg.model.width)]
            if cfg.model.width is None:
                cheap.insert(0, Candidate(side, "small_cnn", NARROW_WIDTH))
            options = cheap + options
        for candidate in options:
            if candidate not in out:
                out.append(candidate)
    if len(out) > 4:  # the cheapest two and the richest two
        out = out[:2] + out[-2:]
    return out


def _sample(dataset: ArrayDataset | StreamedImageDataset, cfg: RunConfig, size: int) -> Tensor:
    """``size`` raw training samples drawn at random (seeded), on the CPU."""
    n = len(dataset)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.train.seed))[:size]
    if isinstance(dataset, ArrayDataset):
        return dataset.data[perm]
    source = make_source(dataset, torch.device("cpu"), cfg.data)
    return next(iter(source.train_batches(perm, size, 1)))[1]


def _configured(cfg: RunConfig, candidate: Candidate, n: int, batch: int) -> RunConfig:
    out = copy.deepcopy(cfg)
    out.model.backbone = candidate.backbone
    out.model.width = candidate.width
    out.train.batch_size = batch
    if candidate.side is not None:
        out.data.image_size = candidate.side
    out.n_clusters = _largest_k(cfg, n)  # with `auto`, timed at the search's largest K
    return out


def _largest_k(cfg: RunConfig, n: int) -> int:
    if cfg.n_clusters == AUTO_CLUSTERS:
        return parse_k_range(cfg.k_search.k_range, n)[1]
    return int(cfg.n_clusters)


def plan_run(
    cfg: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset,
    quiet: bool = False,
    report: bool = False,
    timer: StepTimer | None = None,
) -> tuple[RunConfig, ArrayDataset | StreamedImageDataset]:
    """Size ``cfg`` to its budget on ``dataset`` and print the plan line (stderr).

    Returns the configuration with every setting it chose written in (epochs, and
    image size and backbone when chosen) and the data at the chosen image size.
    Methods fitted in closed form are returned with the default epochs and no line.
    """
    if cfg.train.epochs is not None and cfg.train.budget == "none":
        return cfg, dataset  # nothing to size and no budget to warn about
    if not get_method(cfg.method).trainable or cfg.train.devices * cfg.train.num_nodes > 1:
        # Several processes would each time their own steps and could choose differently.
        if cfg.train.epochs is None:
            cfg = replace(cfg, train=replace(cfg.train, epochs=DEFAULT_EPOCHS))
        return cfg, dataset
    plan = make_plan(cfg, dataset, report=report, timer=timer)
    log.info("%s", plan.line)
    if not quiet:
        print(plan.line, file=sys.stderr)
    if plan.warning:
        log.warning("%s", plan.warning)
        warnings.warn(plan.warning, ContraclustWarning, stacklevel=3)
    return plan.config, plan.dataset


def make_plan(
    cfg: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset,
    report: bool = False,
    timer: StepTimer | None = None,
) -> Plan:
    """The plan of :func:`plan_run`, without printing it."""
    started = time.perf_counter()
    device = resolve_device(cfg.train.device)
    budget = budget_seconds(cfg.train.budget, device)
    if budget is not None:
        budget /= cfg.train.restarts  # each restart gets its share
    n = len(dataset)
    batch = cfg.train.batch_for(n)
    streamed = isinstance(dataset, StreamedImageDataset)
    shape = tuple(dataset.input_shape)
    candidates = _candidates(cfg, shape, streamed)
    epochs_fixed = cfg.train.epochs is not None
    sample = _sample(dataset, cfg, max(batch, _largest_k(cfg, n)))
    labelled = dataset.labels is not None
    timed: list[Candidate] = []

    def sizing(candidate: Candidate, give_up: float | None) -> _Sizing:
        c = _configured(cfg, candidate, n, batch)
        raw = sample
        if candidate.side is not None and raw.dim() == 4:
            raw = conform_to_model(raw, (shape[0], candidate.side, candidate.side))
        timing = (timer or measure_step)(Trial(c, raw, n, batch, device, give_up))
        timed.append(candidate)
        return _Sizing(c, n, batch, timing, labelled, report)

    need = cfg.train.epochs or MIN_EPOCHS  # given epochs must fit as they are
    chosen = _choose(candidates, sizing, budget, need, max(1, n // batch))
    run = chosen.cfg
    run.n_clusters = cfg.n_clusters
    # The timing is part of the run's wall time: the training gets what it left over.
    planning = (time.perf_counter() - started) / cfg.train.restarts
    if epochs_fixed:
        epochs = int(cfg.train.epochs)  # type: ignore[arg-type]
    elif budget is None:
        epochs = DEFAULT_EPOCHS
    else:
        epochs = max(1, chosen.epochs_within(budget - planning))
    run.train.epochs = epochs
    if not cfg.train.batch_size:
        run.train.batch_size = None  # the loop's own default (and its rounding per device)
    estimate = planning + chosen.seconds(epochs)
    side = chosen.cfg.data.image_size
    if side is not None and side != cfg.data.image_size and isinstance(dataset, ArrayDataset):
        dataset = replace(dataset, data=conform_to_model(dataset.data, (shape[0], side, side)))
    line = _plan_line(cfg, run, dataset, shape, chosen, epochs, estimate, budget)
    warning = None
    if budget is not None and estimate > OVERRUN * budget:
        warning = _overrun(cfg, run, chosen, shape, estimate, budget, planning)
    return Plan(run, dataset, line, estimate, budget, chosen.timing, timed, warning)


def _choose(
    candidates: list[Candidate],
    sizing: Callable[[Candidate, float | None], _Sizing],
    budget: float | None,
    need: int,
    steps_per_epoch: int,
) -> _Sizing:
    """The richest candidate whose ``need`` epochs fit ``budget``, else the cheapest.

    The richest is timed first (what runs without a budget): when it fits, nothing else
    is. Otherwise the others are timed cheapest first, up to the first that does not
    fit. All but the cheapest (the fallback) stop at a rough timing when far too slow.
    """
    if budget is None or len(candidates) == 1:
        return sizing(candidates[-1], None)
    # the training steps of `need` epochs (a lower bound: no K search, no self-labelling)
    steps = need * steps_per_epoch
    chosen = sizing(candidates[-1], 2 * budget / steps)
    if chosen.seconds(need) <= budget:
        return chosen
    for index, candidate in enumerate(candidates[:-1]):
        sized = sizing(candidate, None if index == 0 else 2 * budget / steps)
        affords = sized.seconds(need) <= budget
        if index == 0 or affords:
            chosen = sized
        if not affords:
            break
    return chosen


def _plan_line(
    asked: RunConfig,
    run: RunConfig,
    dataset: ArrayDataset | StreamedImageDataset,
    shape: tuple[int, ...],
    chosen: _Sizing,
    epochs: int,
    estimate: float,
    budget: float | None,
) -> str:
    kind = "images" if len(shape) == 3 else "vectors"
    what = f"{len(dataset)} {kind} " + "x".join(str(s) for s in shape)
    if run.data.image_size is not None and run.data.image_size != asked.data.image_size:
        what += f" -> {run.data.image_size} px"
    whose = "" if asked.train.epochs is None else " (given)"
    network = run.model.backbone
    if run.model.width is not None:
        network += f" width {run.model.width}"
    restarts = asked.train.restarts
    line = (
        f"plan: {what}, {network}, batch {chosen.batch}, "
        f"{f'{restarts} restarts of ' if restarts > 1 else ''}{epochs} epoch"
        f"{'' if epochs == 1 else 's'}{whose}"
        f"{_extra_epochs(run)}, about {format_seconds(estimate)} "
        f"({chosen.timing.step:.3g} s/step measured; budget "
        f"{'none' if budget is None else format_seconds(budget)}"
        f"{' each' if restarts > 1 else ''})"
    )
    if asked.train.epochs is None and budget is not None and epochs < MIN_EPOCHS:
        line += "; few epochs for this budget: a larger --budget gives the method more"
    if len(shape) == 3 and shape[0] == 3 and max(shape[1:]) > 32 and not asked.data.features:
        line += (
            "; colour photos: frozen features of a pretrained network train faster and "
            "cluster better (--features)"
        )
    return line


def _extra_epochs(run: RunConfig) -> str:
    extra = ""
    if run.train.self_label_epochs:
        extra += f" + {run.train.self_label_epochs} self-labelling"
    if run.n_clusters == AUTO_CLUSTERS:
        k = run.k_search.epochs
        extra += f" + {'half as many' if k is None else k} for the K search"
    return extra


def _overrun(
    asked: RunConfig,
    run: RunConfig,
    chosen: _Sizing,
    shape: tuple[int, ...],
    estimate: float,
    budget: float,
    planning: float,
) -> str:
    fits = chosen.epochs_within(budget - planning)
    ways = []
    if fits and fits < run.train.epochs:  # type: ignore[operator]
        ways.append(f"epochs={fits}")
    side = run.data.image_size or (max(shape[1:]) if len(shape) == 3 else None)
    if side is not None and side > 32:
        ways.append("image_size=32")
    ways.append("a larger budget")
    ways.append("budget=none to keep these settings")
    return (
        f"this run is expected to take about {format_seconds(estimate)}, more than its "
        f"budget of {format_seconds(budget)} (budget={asked.train.budget}); to fit it use "
        + ", ".join(ways[:-1])
        + f", or {ways[-1]}"
    )
