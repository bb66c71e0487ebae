"""Training throughput: our pipeline against a CC/SCAN-style reference, side by side.

Ours: the data stay a uint8 tensor; each step indexes a batch, moves it to the
device and makes both views there with the batched augmentation of
``contraclust.data.augment``, in the channels-last layout the loop hands to the model
(the loop's code path, without Fabric; variant ``contiguous`` is the old NCHW path,
``channels_last_model`` converts the weights too, ``bf16`` autocasts, ``compile``
wraps the step in ``torch.compile``). Reference: the
way the CC and SCAN code bases feed the same model: a ``Dataset`` of PIL images whose
``__getitem__`` applies per-image transforms twice (random resized crop, flip,
colour jitter with probability 0.8, greyscale with probability 0.2, to tensor,
normalise: the operations of our SimCLR preset), batched by a ``DataLoader`` with
worker processes. torchvision is used for those transforms when it is importable;
otherwise (as on the project machines) the same operations are written here with
PIL and numpy, following torchvision's definitions.

Both pipelines train the same method (same backbone, heads, loss, batch size and
optimiser) in one process. They run in alternating rounds (ours first in even
rounds, the reference first in odd ones) so that load from other processes hits
both alike; the reported ratio is the median of the per-round ratios.

Each step is split into phases (data loading, augmentation, forward, backward with
the optimiser step) by a timer that synchronises the device only here, in the
harness; on CUDA the shares come from one extra round with those synchronisations
and the throughput rounds have none.

    python benchmarks/throughput.py                           # small CNN, CIFAR-10 test
    python benchmarks/throughput.py --backbone resnet18 --batch-size 128 --steps 4
    python benchmarks/throughput.py --variants channels_last   # ours with a change, too
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine_meta, write_json, write_section

from contraclust.config import RunConfig, load_preset, merge
from contraclust.data.augment import build_augmentation
from contraclust.errors import ConfigError
from contraclust.methods import ClusteringMethod
from contraclust.training.checkpoint import build_method
from contraclust.training.loop import model_input

RESULTS = RESULTS_DIR / "throughput.json"
PHASES = ("load", "augment", "forward", "backward")
VARIANTS = ("contiguous", "channels_last_model", "compile", "bf16")


# --------------------------------------------------------------------------- data


def load_images(dataset: str, data_root: Path | None, n: int, seed: int) -> Tensor:
    """uint8 (N, 3, 32, 32) images: the CIFAR-10 test batch or uniform noise."""
    if dataset == "synthetic":
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    from quality import ensure_data_root

    from contraclust.data import load_dataset

    root = ensure_data_root(data_root)
    data = load_dataset("cifar10", root=str(root), split="test").data
    return data[:n].contiguous()


# --------------------------------------------------------------------------- reference


class ReferenceTransform:
    """One random view of a PIL image, as torchvision's SimCLR recipe makes it.

    RandomResizedCrop(size, scale, ratio 3/4-4/3), RandomHorizontalFlip(0.5),
    RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(0.2),
    ToTensor, Normalize. Random numbers come from torch's global generator, which the
    DataLoader seeds differently in every worker, as torchvision's transforms do.
    """

    def __init__(
        self,
        size: int,
        mean: list[float],
        std: list[float],
        scale: tuple[float, float] = (0.08, 1.0),
    ) -> None:
        self.size = size
        self.scale = scale
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.tv = self._torchvision()

    def _torchvision(self) -> Callable[[Any], Tensor] | None:
        try:
            from torchvision import transforms as T
        except ImportError:
            return None
        return T.Compose(
            [
                T.RandomResizedCrop(self.size, scale=self.scale),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.ToTensor(),
                T.Normalize(self.mean.flatten().tolist(), self.std.flatten().tolist()),
            ]
        )

    @staticmethod
    def _uniform(lo: float, hi: float) -> float:
        return float(torch.empty(1).uniform_(lo, hi))

    def _crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        area = width * height
        log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
        for _ in range(10):
            target = area * self._uniform(*self.scale)
            aspect = math.exp(self._uniform(log_lo, log_hi))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,)))
                left = int(torch.randint(0, width - w + 1, (1,)))
                return left, top, left + w, top + h
        w, h = width, height  # the image is square here: ratio 1 is in range
        return 0, 0, w, h

    @staticmethod
    def _hue(img: Any, shift: float) -> Any:
        from PIL import Image

        h, s, v = img.convert("HSV").split()
        hue = np.asarray(h, dtype=np.uint8).copy()
        hue += np.uint8(int(shift * 255) % 256)  # wraps around, as torchvision does
        merged = Image.merge("HSV", (Image.fromarray(hue, "L"), s, v))
        return merged.convert("RGB")

    def __call__(self, img: Any) -> Tensor:
        if self.tv is not None:
            return self.tv(img)
        from PIL import Image, ImageEnhance

        box = self._crop_box(*img.size)
        img = img.resize((self.size, self.size), Image.BILINEAR, box=box)
        if float(torch.rand(1)) < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if float(torch.rand(1)) < 0.8:
            for op in torch.randperm(4).tolist():  # ColorJitter's random order
                if op == 0:
                    img = ImageEnhance.Brightness(img).enhance(self._uniform(0.6, 1.4))
                elif op == 1:
                    img = ImageEnhance.Contrast(img).enhance(self._uniform(0.6, 1.4))
                elif op == 2:
                    img = ImageEnhance.Color(img).enhance(self._uniform(0.6, 1.4))
                else:
                    img = self._hue(img, self._uniform(-0.1, 0.1))
        if float(torch.rand(1)) < 0.2:
            img = img.convert("L").convert("RGB")
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return (x.float().div_(255.0) - self.mean) / self.std


class TwoViewDataset(torch.utils.data.Dataset):
    """CC's ``TransformsSimCLR`` on a CIFAR-style dataset: (view 1, view 2, index)."""

    def __init__(self, images: Tensor, transform: ReferenceTransform) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC, as PIL wants
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return self.transform(img), self.transform(img), i


# --------------------------------------------------------------------------- harness


def _same(x: Tensor) -> Tensor:
    return x


class PhaseTimer:
    """Wall time per phase of a step; synchronises the device only when ``sync``."""

    def __init__(self, device: torch.device, sync: bool) -> None:
        self.device = device
        self.sync = sync and device.type == "cuda"
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.last = 0.0

    def start(self) -> None:
        if self.sync:
            torch.cuda.synchronize(self.device)
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        if self.sync:
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.totals[phase] += now - self.last
        self.last = now


def make_config(args: argparse.Namespace) -> RunConfig:
    """The method to train: its preset (``args.preset``) when given, with K = 10 and
    ``args.backbone``; only the method, its parameters and the model are used."""
    preset = getattr(args, "preset", None)
    raw: dict[str, Any] = load_preset(preset) if preset else {}
    if raw.get("method", args.method) != args.method:
        raise ConfigError(
            f"preset '{preset}' trains method '{raw['method']}', not '{args.method}'; "
            f"pass --method {raw['method']} or a preset of {args.method}"
        )
    over = {"method": args.method, "n_clusters": 10, "model": {"backbone": args.backbone}}
    return RunConfig.from_dict(merge(raw, over))


class Pipeline:
    """One way of feeding the method: ``step(timer)`` runs one training step."""

    name = ""

    def __init__(self, args: argparse.Namespace, images: Tensor, device: torch.device) -> None:
        torch.manual_seed(args.seed)  # same initial weights in every pipeline
        self.device = device
        self.batch = args.batch_size
        self.method: ClusteringMethod = build_method(
            make_config(args), tuple(images.shape[1:]), len(images)
        )
        self.method.set_input_stats(images)
        self.method.to(device)
        self.optimizer = torch.optim.Adam(self.method.parameters(), lr=3e-4)
        self.autocast = args.precision == "bf16"
        self.loss_fn: Callable[..., dict[str, Tensor]] = self.method.training_loss

    def train_step(self, views: list[Tensor], clean: Tensor, idx: Tensor, timer: PhaseTimer):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.loss_fn(views, clean, idx)
        timer.mark("forward")
        self.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.optimizer.step()
        timer.mark("backward")

    def prepare_round(self) -> None:
        """Called before the untimed warm-up step of every round."""

    def step(self, timer: PhaseTimer) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Ours(Pipeline):
    name = "ours"

    def __init__(
        self,
        args: argparse.Namespace,
        images: Tensor,
        device: torch.device,
        variant: str | None = None,
    ) -> None:
        super().__init__(args, images, device)
        if variant:
            self.name = f"ours+{variant}"
        self.data = images.to(device) if device.type == "cuda" else images
        self.augment = build_augmentation("simclr", "image", tuple(images.shape[1:])).to(device)
        self.gen = torch.Generator().manual_seed(args.seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(args.seed)
        self.perm = torch.randperm(len(images), generator=self.gen)
        self.pos = 0
        self.to_model = model_input  # the loop's layout: channels-last views
        if variant == "contiguous":  # the loop before it switched to channels-last
            self.to_model = _same
        elif variant == "channels_last_model":  # the weights too
            self.method.to(memory_format=torch.channels_last)
        elif variant == "compile":
            self.loss_fn = torch.compile(self.method.training_loss)
        elif variant == "bf16":  # autocast on any device, as Fabric's bf16-mixed does
            self.autocast = True

    def next_index(self) -> Tensor:
        if self.pos + self.batch > len(self.perm):
            self.perm = torch.randperm(len(self.perm), generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return idx

    def step(self, timer: PhaseTimer) -> None:
        m = self.method
        timer.start()
        idx = self.next_index()
        raw = self.data[idx.to(self.data.device)].to(self.device, non_blocking=True)
        unit = m.to_unit(raw)
        timer.mark("load")
        views = [
            self.to_model(m.normalize(self.augment(unit, generator=self.aug_gen))) for _ in range(2)
        ]
        clean = self.to_model(m.normalize(unit))
        timer.mark("augment")
        self.train_step(views, clean, idx.to(self.device), timer)


class Reference(Pipeline):
    name = "reference"

    def __init__(self, args: argparse.Namespace, images: Tensor, device: torch.device) -> None:
        super().__init__(args, images, device)
        mean = self.method.input_mean.cpu().tolist()
        std = self.method.input_std.cpu().tolist()
        self.transform = ReferenceTransform(images.shape[-1], mean, std)
        self.dataset = TwoViewDataset(images, self.transform)
        self.workers = args.workers
        sampler = torch.utils.data.RandomSampler(
            self.dataset,
            replacement=True,
            num_samples=10**9,
            generator=torch.Generator().manual_seed(args.seed),
        )
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch,
            sampler=sampler,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
            persistent_workers=args.workers > 0,
        )
        self.prefetched = 2 * args.workers  # DataLoader's default prefetch_factor
        self.it: Iterator[Any] = iter(self.loader)

    def prepare_round(self) -> None:
        # Batches the workers finished while the other pipeline was running would be
        # free time for this one: drop them so each round starts from an empty queue.
        for _ in range(self.prefetched):
            next(self.it)

    def step(self, timer: PhaseTimer) -> None:
        timer.start()
        v1, v2, idx = next(self.it)
        v1 = v1.to(self.device, non_blocking=True)
        v2 = v2.to(self.device, non_blocking=True)
        idx = idx.to(self.device, non_blocking=True)
        timer.mark("load")
        timer.mark("augment")  # done in the workers, overlapped with training
        self.train_step([v1, v2], v1, idx, timer)

    def augment_cpu_seconds(self, n: int) -> float:
        """CPU seconds one process spends making both views of ``n`` images."""
        start = time.process_time()
        for i in range(n):
            self.dataset[i]
        return time.process_time() - start

    def close(self) -> None:
        del self.it


def run_round(pipe: Pipeline, steps: int, device: torch.device, sync_phases: bool) -> dict:
    """``steps`` timed steps of ``pipe`` after one untimed one. On CUDA the row also
    has the peak memory allocated during the round (every pipeline's weights, optimiser
    state and data stay resident, so they count in each pipeline's peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pipe.prepare_round()
    pipe.step(PhaseTimer(device, sync=True))  # warm-up, untimed
    timer = PhaseTimer(device, sync=sync_phases)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        pipe.step(timer)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "pipeline": pipe.name,
        "seconds": seconds,
        "images_per_s": steps * pipe.batch / seconds,
        "phases": {k: v / steps for k, v in timer.totals.items()},
        "synced_phases": sync_phases or device.type == "cpu",
        "peak_gpu_mib": (
            torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        ),
    }


def _say(line: str) -> None:
    print(line, flush=True)


def compare(
    args: argparse.Namespace,
    images: Tensor,
    device: torch.device,
    log: Callable[[str], None] = _say,
) -> dict[str, Any]:
    """Our pipeline, the reference and ``args.variants`` in alternating rounds.

    Returns the per-pipeline ``summary`` (see :func:`summarise`), the ``rounds``, the
    reference's augmentation CPU seconds per batch and whether torchvision made its
    views. Every pipeline is closed (its DataLoader workers stopped) on return.
    """
    pipes: list[Pipeline] = [Ours(args, images, device), Reference(args, images, device)]
    pipes += [Ours(args, images, device, variant=v) for v in args.variants]
    names = [p.name for p in pipes]
    rounds: list[dict] = []
    sync_phases = device.type != "cuda"
    try:
        for r in range(args.rounds):
            order = pipes if r % 2 == 0 else pipes[::-1]
            for pipe in order:
                row = run_round(pipe, args.steps, device, sync_phases)
                row["round"] = r
                rounds.append(row)
                log(f"round {r} {pipe.name:<20s} {row['images_per_s']:8.1f} images/s")
        if not sync_phases:  # CUDA: one more round per pipeline with a synchronised timer
            for pipe in pipes:
                row = run_round(pipe, args.steps, device, sync_phases=True)
                row.update(round=args.rounds, breakdown_only=True)
                rounds.append(row)
        reference = pipes[1]
        assert isinstance(reference, Reference)
        sample = min(args.batch_size, 64)
        aug_cpu = reference.augment_cpu_seconds(sample) * (args.batch_size / sample)
        torchvision = reference.transform.tv is not None
    finally:
        for pipe in pipes:
            pipe.close()
    return {
        "summary": summarise(rounds, names),
        "rounds": rounds,
        "reference_augment_cpu_s_per_batch": aug_cpu,
        "torchvision": torchvision,
    }


def summarise(rounds: list[dict], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        rows = [r for r in rounds if r["pipeline"] == name]
        timed = [r for r in rows if not r.get("breakdown_only")]
        rates = [r["images_per_s"] for r in timed]
        phased = [r for r in rows if r["synced_phases"]]
        step = statistics.median(sum(r["phases"].values()) for r in phased)
        shares = {
            k: statistics.median(r["phases"][k] / sum(r["phases"].values()) for r in phased)
            for k in PHASES
        }
        peaks = [r["peak_gpu_mib"] for r in rows if r.get("peak_gpu_mib") is not None]
        out[name] = {
            "images_per_s": statistics.median(rates),
            "images_per_s_rounds": rates,
            "step_seconds": step,
            "shares": shares,
            "peak_gpu_mib": max(peaks) if peaks else None,
        }
    base = [r["images_per_s"] for r in rounds if r["pipeline"] == "reference"]
    for name in names:
        if name == "reference":
            continue
        mine = [r["images_per_s"] for r in rounds if r["pipeline"] == name]
        ratios = [a / b for a, b in zip(mine, base, strict=False)]
        out[name]["ratio_to_reference"] = statistics.median(ratios)
        out[name]["ratio_rounds"] = ratios
    if "ours" in out:
        for name in names:
            if name.startswith("ours+"):
                mine = out[name]["images_per_s_rounds"]
                ours = out["ours"]["images_per_s_rounds"]
                out[name]["ratio_to_ours"] = statistics.median(
                    a / b for a, b in zip(mine, ours, strict=False)
                )
    return out


# --------------------------------------------------------------------------- report


def entry_key(entry: dict[str, Any]) -> str:
    c, threads = entry["config"], entry["meta"]["threads"]
    return (
        f"{c['method']}/{c['backbone']}/b{c['batch_size']}/{c['precision']}/{c['device']}/"
        f"t{threads}/w{c['workers']}/{_layout(entry)}"
    )


#: Variant names of the entries measured before the loop switched to channels-last.
VARIANT_NAMES = {("NCHW", "ours+channels_last"): "ours+channels-last views and weights"}


def _layout(entry: dict[str, Any]) -> str:
    """The layout of our views: NCHW until the loop switched to channels-last (the
    entries measured since have the old layout as their ``contiguous`` variant)."""
    return "NHWC" if "ours+contiguous" in entry["summary"] else "NCHW"


def markdown(entries: dict[str, Any]) -> str:
    lines = [
        "| method | backbone | batch | device | workers | threads | ours: layout | ours img/s | "
        "reference img/s | ratio (rounds) | ours: load / aug / fwd / bwd | reference: load / "
        "fwd / bwd | ref. aug CPU s/batch | measured | load avg before, after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(entries):
        e = entries[key]
        c, s, m = e["config"], e["summary"], e["meta"]
        ours, ref = s["ours"], s["reference"]
        o, r = ours["shares"], ref["shares"]
        lines.append(
            f"| {c['method']} | {c['backbone']} | {c['batch_size']} | {c['device']} | "
            f"{c['workers']} | {m['threads']} | {_layout(e)} | {ours['images_per_s']:.1f} | "
            f"{ref['images_per_s']:.1f} | **{ours['ratio_to_reference']:.2f}x** "
            f"({min(ours['ratio_rounds']):.2f}-{max(ours['ratio_rounds']):.2f}) | "
            f"{o['load']:.0%} / {o['augment']:.0%} / {o['forward']:.0%} / {o['backward']:.0%} | "
            f"{r['load']:.0%} / {r['forward']:.0%} / {r['backward']:.0%} | "
            f"{e['reference_augment_cpu_s_per_batch']:.2f} | {m['date']} | "
            f"{m['load_average_before'][0]:.1f}, {m['load_average'][0]:.1f} |"
        )
    variant_rows = [
        (key, name, s)
        for key, e in sorted(entries.items())
        for name, s in e["summary"].items()
        if name.startswith("ours+")
    ]
    if variant_rows:
        lines += [
            "",
            "Variants of our pipeline, measured in the same alternating rounds:",
            "",
            "| setting | variant | ours img/s | variant img/s | variant / ours |",
            "|---|---|---|---|---|",
        ]
        for key, name, s in variant_rows:
            ours = entries[key]["summary"]["ours"]["images_per_s"]
            shown = VARIANT_NAMES.get((_layout(entries[key]), name), name)
            lines.append(
                f"| {key} | {shown} | {ours:.1f} | {s['images_per_s']:.1f} | "
                f"{s['ratio_to_ours']:.2f} |"
            )
    cmds = sorted({e["command"] for e in entries.values()})
    lines += ["", "Commands:", ""] + [f"- `{c}`" for c in cmds]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("cifar10", "synthetic"), default="cifar10")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--n", type=int, default=10000, help="images to sample batches from")
    p.add_argument("--method", default="cc")
    p.add_argument("--preset", default=None, help="the method's preset (default: its defaults)")
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=8, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=4, help="rounds per pipeline")
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--precision", choices=("auto", "32", "bf16"), default="auto")
    p.add_argument("--variants", nargs="*", default=[], choices=VARIANTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print only; keep the results")
    p.add_argument(
        "--report-only", action="store_true", help="rebuild the BENCHMARKS.md section only"
    )
    args = p.parse_args(argv)
    if args.precision == "auto":
        args.precision = "bf16" if args.device.startswith("cuda") else "32"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report_only:
        import json

        entries = json.loads(RESULTS.read_text())["entries"]
        entries = {entry_key(e): e for e in entries.values()}
        write_json(RESULTS, {"entries": entries})
        write_section("throughput", markdown(entries), "Training throughput")
        return {}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    meta_before = machine_meta()
    images = load_images(args.dataset, args.data_root, args.n, args.seed)
    result = compare(args, images, device)
    summary, aug_cpu = result["summary"], result["reference_augment_cpu_s_per_batch"]
    meta = machine_meta()
    meta["load_average_before"] = meta_before["load_average"]
    meta["torchvision"] = result["torchvision"]
    config = {k: v for k, v in vars(args).items() if k not in ("no_write", "data_root", "threads")}
    command = "python benchmarks/throughput.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-write"
    )
    entry = {
        "config": config,
        "meta": meta,
        "summary": summary,
        "reference_augment_cpu_s_per_batch": aug_cpu,
        "rounds": result["rounds"],
        "command": command.strip(),
    }
    for name, s in summary.items():
        extra = f", {s['ratio_to_reference']:.2f}x the reference" if name != "reference" else ""
        shares = " ".join(f"{k} {v:.0%}" for k, v in s["shares"].items())
        print(f"{name:<20s} {s['images_per_s']:8.1f} images/s{extra}; {shares}")
    print(f"reference augmentation: {aug_cpu:.2f} CPU s per batch of {args.batch_size}")
    if not args.no_write:
        import json

        saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"entries": {}}
        entries = [*saved["entries"].values(), entry]
        saved["entries"] = {entry_key(e): e for e in entries}  # the newest per setting
        write_json(RESULTS, saved)
        write_section("throughput", markdown(saved["entries"]), "Training throughput")
        print(f"wrote {RESULTS} and BENCHMARKS.md")
    return entry


if __name__ == "__main__":
    main()
