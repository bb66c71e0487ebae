"""CIFAR-10 test set (10,000 images) on one GPU in under 8 minutes, in one process.

Phases, each written to ``<out>/gpu_cifar10.json`` as soon as it ends:

1. data: the CIFAR-10 test batch, read by the library's CIFAR binary reader from a
   data root small enough to travel with the code (``--prepare`` assembles it from
   ``../shared/data`` into ``.gpudata/``, 30 MB, with its sha256 in ``MANIFEST.json``).
2. throughput: ``throughput.compare``, our pipeline against the CC-style one
   (per-image PIL augmentations in 16 DataLoader workers) on the same method,
   backbone, batch size and precision (bf16 autocast on CUDA), in alternating rounds;
   images/s and the peak GPU memory of each.
3. training: ``contraclust.training.fit`` of the method's CIFAR-10 preset on the
   10,000 images, in memory (no run folder, so no checkpoint per epoch), with ACC/NMI
   every few epochs and the seconds since training started. The number of epochs is
   what our measured speed fits into the training budget, so the preset's schedule
   (warm-up, cosine) runs to its end; should it run over, a timer stops training at
   the budget and the curve so far is kept.

Run it through ``benchmarks/gpu_cifar10.sh``; ``--tiny`` is the CPU check (a few
hundred images, the small CNN, two short epochs).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine_meta, write_json

from contraclust.config import RunConfig, load_preset, merge
from contraclust.data import ArrayDataset, load_dataset

#: The CIFAR-10 test batch inside a data root, in the official binary layout.
CIFAR_TEST = Path("cifar10") / "cifar-10-batches-bin" / "test_batch.bin"
MANIFEST = "MANIFEST.json"
PRECISION_NAMES = {"bf16": "bf16 autocast", "32": "float32"}
RESULT = "gpu_cifar10.json"
#: Share of the training budget the automatic epoch count plans to fill: the loop's
#: scoring, its first (slower) steps and Fabric's set-up are not in the measured speed.
FILL = 0.75
#: Points on the ACC/NMI curve when the scoring interval is chosen here.
CURVE_POINTS = 12
#: Seconds kept free before the deadline for the end of the run and the JSON.
MARGIN_S = 20.0

#: Settings of the GPU run and of the CPU check (``--tiny``); None: the preset's.
MODES: dict[str, dict[str, Any]] = {
    "gpu": {
        "device": "cuda",
        "n": 10000,
        "backbone": None,
        "batch_size": None,
        "workers": 16,
        "steps": 30,
        "rounds": 4,
        "train_budget_s": 270.0,
        "deadline_s": 450.0,
        "epochs": None,
        "eval_every": None,
    },
    "tiny": {
        "device": "cpu",
        "n": 256,
        "backbone": "small_cnn",
        "batch_size": 32,
        "workers": 2,
        "steps": 2,
        "rounds": 2,
        "train_budget_s": 120.0,
        "deadline_s": 300.0,
        "epochs": 2,
        "eval_every": 1,
    },
}


class BudgetReached(BaseException):
    """Raised by the timer at the training budget (a BaseException, like Ctrl-C, so
    that no ``except Exception`` on the way swallows it)."""


def say(line: str) -> None:
    print(line, flush=True)


# --------------------------------------------------------------------------- data


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # 30 MB: read at once


def prepare(dest: Path) -> Path:
    """Copy the CIFAR-10 test batch into ``dest`` (a data root) with its sha256."""
    from quality import ensure_data_root

    source = ensure_data_root(None) / CIFAR_TEST
    target = dest / CIFAR_TEST
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    (dest / MANIFEST).write_text(json.dumps({str(CIFAR_TEST): sha256(target)}, indent=1) + "\n")
    n = len(load_dataset("cifar10", root=str(dest), split="test"))
    mib = target.stat().st_size / 2**20
    say(f"wrote {target} ({n} images, {mib:.1f} MiB) and {dest / MANIFEST}")
    return target


def load_images(root: Path, n: int) -> ArrayDataset:
    """The first ``n`` images of the CIFAR-10 test batch in ``root``, checked against
    the manifest ``--prepare`` wrote."""
    path = root / CIFAR_TEST
    if not path.is_file() or not (root / MANIFEST).is_file():
        raise SystemExit(
            f"error: {path} or {root / MANIFEST} is missing; run "
            "`bash benchmarks/gpu_cifar10.sh --prepare` where ../shared/data exists and "
            f"carry {root.name}/ with the code (or set GPU_DATA to the folder it wrote)"
        )
    expected = json.loads((root / MANIFEST).read_text())[str(CIFAR_TEST)]
    actual = sha256(path)
    if actual != expected:
        raise SystemExit(
            f"error: {path} has sha256 {actual}, the manifest says {expected}; "
            "run `bash benchmarks/gpu_cifar10.sh --prepare` again"
        )
    ds = load_dataset("cifar10", root=str(root), split="test")
    assert isinstance(ds, ArrayDataset)
    if n >= len(ds):
        return ds
    assert ds.labels is not None
    return ArrayDataset(ds.data[:n].contiguous(), ds.labels[:n], f"{ds.name}[:{n}]")


# --------------------------------------------------------------------------- training


class EpochLog(logging.Handler):
    """Collects the loop's per-epoch log lines (``epoch E/T key=value ...``) with the
    seconds since ``start``; ``on_score`` is called with each scored row."""

    PATTERN = re.compile(r"^epoch (\d+)/(\d+) (.*)$")
    KEYS = ("loss", "acc", "nmi", "ari", "seconds")

    def __init__(self, start: float, on_score: Any) -> None:
        super().__init__(logging.INFO)
        self.start = start
        self.on_score = on_score
        self.rows: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.match(record.getMessage())
        if not match:
            return
        values = dict(item.split("=", 1) for item in match.group(3).split() if "=" in item)
        row: dict[str, Any] = {
            "epoch": int(match.group(1)),
            "elapsed_s": round(record.created - self.start, 2),
        }
        row.update({k: float(values[k]) for k in self.KEYS if k in values})
        self.rows.append(row)
        if "acc" in row:
            self.on_score(row)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise BudgetReached


def train(cfg: RunConfig, dataset: ArrayDataset, budget_s: float, on_score: Any) -> dict[str, Any]:
    """Fit ``cfg`` in memory until it ends or ``budget_s`` passes; the scored epochs."""
    from contraclust.training import fit

    device = torch.device(cfg.train.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.time()
    handler = EpochLog(start, on_score)
    logger = logging.getLogger("contraclust")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    previous = signal.signal(signal.SIGALRM, _stop)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    final: dict[str, float] | None = None
    try:
        result = fit(cfg, dataset, quiet=True)
        final = {k: float(v) for k, v in (result.metrics or {}).items()}
    except BudgetReached:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        logger.removeHandler(handler)
        logger.setLevel(level)
    seconds = time.time() - start
    epoch_seconds = [r["seconds"] for r in handler.rows if "seconds" in r]
    return {
        "seconds": round(seconds, 2),  # as elapsed_s: rounding keeps their order
        "stopped_by_budget": final is None,
        "epochs_done": len(handler.rows),
        "epoch_seconds_median": statistics.median(epoch_seconds) if epoch_seconds else None,
        "peak_gpu_mib": _peak(device, torch.cuda.max_memory_allocated),
        "peak_gpu_reserved_mib": _peak(device, torch.cuda.max_memory_reserved),
        "curve": [r for r in handler.rows if "acc" in r],
        "final": final,
    }


def _peak(device: torch.device, counter: Any) -> float | None:
    return round(counter(device) / 2**20, 1) if device.type == "cuda" else None


def training_config(
    args: argparse.Namespace, epochs: int, eval_every: int, device: torch.device
) -> RunConfig:
    """The preset with our length, scoring interval, device, backbone and batch."""
    train = {
        "epochs": epochs,
        "eval_every": eval_every,
        "device": device.type,
        "precision": "auto",  # bf16 autocast on CUDA, as in the throughput phase
        "batch_size": args.batch_size,
        "self_label_epochs": 0,  # the budget is for the method's own training
        "seed": args.seed,
    }
    over = {"method": args.method, "n_clusters": 10, "model": {"backbone": args.backbone}}
    return RunConfig.from_dict(merge(load_preset(args.preset), {**over, "train": train}))


def plan_epochs(budget_s: float, images_per_s: float, n: int, cap: int) -> int:
    """Epochs that fill ``FILL`` of ``budget_s`` at ``images_per_s``, 1 to ``cap``."""
    return max(1, min(cap, int(FILL * budget_s * images_per_s / n)))


# --------------------------------------------------------------------------- report


def device_meta(device: torch.device) -> dict[str, Any]:
    meta = machine_meta()
    meta["cuda"] = torch.version.cuda
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        meta["gpu_memory_mib"] = round(props.total_memory / 2**20)
    return meta


def table(summary: dict[str, Any]) -> str:
    """The short summary printed at the end."""
    s, lines = summary["settings"], []
    t = summary.get("throughput")
    if t:
        lines.append(
            f"throughput, {s['method']} {s['backbone']} batch {s['batch_size']} "
            f"{PRECISION_NAMES[s['precision']]} on {s['device']} "
            f"({summary['data']['images']} images):"
        )
        lines.append(f"  {'pipeline':<28} {'images/s':>9} {'peak GPU MiB':>13}")
        for name, label in (("ours", "ours"), ("reference", f"CC-style, {s['workers']} workers")):
            row = t[name]
            peak = "-" if row["peak_gpu_mib"] is None else f"{row['peak_gpu_mib']:.0f}"
            lines.append(f"  {label:<28} {row['images_per_s']:>9.1f} {peak:>13}")
        lines.append(f"  ours / reference: {t['ratio']:.2f}x (median of the rounds)")
    r = summary.get("training")
    if r:
        peak = "-" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:.0f} MiB"
        end = "stopped at the budget" if r["stopped_by_budget"] else "finished"
        lines.append(
            f"training {s['method']}: {r['epochs_done']}/{r['epochs']} epochs in "
            f"{r['seconds']:.0f} s ({end}), peak GPU {peak}"
        )
        lines.append(f"  {'epoch':>5} {'seconds':>8} {'ACC':>6} {'NMI':>6}")
        for row in r["curve"]:
            lines.append(
                f"  {row['epoch']:>5} {row['elapsed_s']:>8.1f} {row['acc']:>6.3f} "
                f"{row['nmi']:>6.3f}"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", action="store_true", help="write the data root and exit")
    p.add_argument("--data", type=Path, default=REPO / ".gpudata", help="the data root")
    p.add_argument("--out", type=Path, default=None, help="folder of the JSON file")
    p.add_argument("--tiny", action="store_true", help="the CPU check")
    p.add_argument("--method", default="clc")
    p.add_argument("--preset", default=None, help="default: <method>/cifar10")
    p.add_argument("--seed", type=int, default=0)
    for key in MODES["gpu"]:
        p.add_argument("--" + key.replace("_", "-"), default=None, type=type_of(key))
    args = p.parse_args(argv)
    for key, value in MODES["tiny" if args.tiny else "gpu"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.preset = args.preset or f"{args.method}/cifar10"
    raw = load_preset(args.preset)
    args.backbone = args.backbone or raw.get("model", {}).get("backbone", "resnet18")
    args.batch_size = args.batch_size or raw.get("train", {}).get("batch_size") or 256
    args.preset_epochs = int(raw.get("train", {}).get("epochs", 1000))
    args.precision = "bf16" if args.device == "cuda" else "32"  # throughput.py's names
    args.dataset, args.variants = "cifar10", []  # what throughput.compare reads
    return args


def type_of(key: str) -> type:
    return {"device": str, "backbone": str}.get(key, float if key.endswith("_s") else int)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.prepare:
        prepare(args.data)
        return {}
    launched = float(os.environ.get("GPU_CIFAR10_START", time.time()))
    out = args.out or REPO / "runs" / time.strftime("gpu-cifar10-%Y%m%dT%H%M%SZ", time.gmtime())
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU visible to torch; TINY=1 runs the CPU check")
    dataset = load_images(args.data, args.n)
    import throughput

    settings = {
        k: getattr(args, k)
        for k in ("method", "preset", "backbone", "batch_size", "precision", "device")
    }
    settings.update(workers=args.workers, steps=args.steps, rounds=args.rounds, seed=args.seed)
    summary: dict[str, Any] = {
        "complete": False,
        "tiny": args.tiny,
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "meta": device_meta(device),
        "data": {"set": "CIFAR-10 test batch", "images": len(dataset), "root": str(args.data)},
        "settings": settings,
    }

    def save() -> None:
        summary["elapsed_s"] = round(time.time() - launched, 1)
        write_json(out / RESULT, summary)

    say(f"data: {len(dataset)} images; writing {out / RESULT}")
    save()
    phase = time.time()
    result = throughput.compare(args, dataset.data, device, log=say)
    ours, ref = result["summary"]["ours"], result["summary"]["reference"]
    keep = ("images_per_s", "images_per_s_rounds", "peak_gpu_mib", "shares")
    summary["throughput"] = {
        "ours": {k: ours[k] for k in keep},
        "reference": {k: ref[k] for k in keep},
        "ratio": ours["ratio_to_reference"],
        "ratio_rounds": ours["ratio_rounds"],
        "reference_augment_cpu_s_per_batch": result["reference_augment_cpu_s_per_batch"],
        "torchvision": result["torchvision"],
        "seconds": round(time.time() - phase, 1),
    }
    save()
    del result
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    left = args.deadline_s - (time.time() - launched) - MARGIN_S
    budget = max(1.0, min(args.train_budget_s, left))
    epochs = args.epochs or plan_epochs(
        budget, ours["images_per_s"], len(dataset), args.preset_epochs
    )
    eval_every = args.eval_every or max(1, round(epochs / CURVE_POINTS))
    training: dict[str, Any] = {
        "epochs": epochs,
        "eval_every": eval_every,
        "budget_s": budget,
        "started_s": round(time.time() - launched, 1),  # the curve's time 0, since launch
    }
    summary["training"] = {**training, "curve": []}
    say(
        f"training {args.method}: {epochs} epochs, scored every {eval_every}, budget {budget:.0f} s"
    )

    def on_score(row: dict[str, Any]) -> None:
        summary["training"]["curve"].append(row)
        at = f"epoch {row['epoch']} at {row['elapsed_s']:.1f} s"
        say(f"{at}: ACC {row['acc']:.3f} NMI {row['nmi']:.3f}")
        save()

    cfg = training_config(args, epochs, eval_every, device)
    summary["training"] = {**training, **train(cfg, dataset, budget, on_score)}
    summary["complete"] = True
    save()
    say(table(summary))
    say(f"wrote {out / RESULT}")
    return summary


if __name__ == "__main__":
    main()
