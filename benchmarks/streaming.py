"""Streamed versus in-memory image folders: loading speed and peak memory.

For each size (default 1k, 10k and 100k files) the script writes a folder of small
random PNG images (10 class folders, under the system temporary folder, removed
afterwards) and measures, each in a fresh process:

* ``streamed``: the pre-scan (headers + PIL verify in the workers), then one
  training-style pass: the loop's batches of a random permutation decoded by the
  DataLoader workers, and two views of each made by the batched augmentation;
* ``memory``: the same pass from the whole folder decoded into one tensor first.

Peak memory is sampled every 50 ms over the measuring process and all its child
processes (the DataLoader workers): the sum of their resident set sizes (RSS, which
counts pages the forked workers share with the parent once per process) and the sum
of their proportional set sizes (PSS, which splits shared pages; from
``/proc/<pid>/smaps_rollup``). No model is trained: the numbers are what the data
path costs.

Results go to ``benchmarks/results/streaming.json`` and a table in ``BENCHMARKS.md``
between the ``streaming`` markers. Usage::

    python benchmarks/streaming.py                       # 1k, 10k, 100k
    python benchmarks/streaming.py --sizes 1000          # a quick run
    python benchmarks/streaming.py --markdown-only       # rebuild the table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "streaming.json"
REPORT = REPO / "BENCHMARKS.md"
BEGIN, END = "<!-- streaming:begin -->", "<!-- streaming:end -->"
MODES = ("streamed", "memory")


# --------------------------------------------------------------------------- memory


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from the parent ids in ``/proc/*/stat``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def _kib(path: str, field: str) -> int:
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over ``pid`` and its descendants."""
    rss = pss = 0
    for proc in _descendants(pid):
        rss += _kib(f"/proc/{proc}/status", "VmRSS:") * 1024
        pss += _kib(f"/proc/{proc}/smaps_rollup", "Pss:") * 1024
    return rss, pss


class PeakSampler:
    """Samples :func:`tree_memory` of this process in a thread; keeps the maxima."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = tree_memory(os.getpid())
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- one measurement


def measure(
    mode: str,
    root: Path,
    workers: int,
    batch_size: int,
    max_pass: int | None,
    device_name: str = "cpu",
) -> dict[str, Any]:
    """One pass over ``root`` as the training loop makes it (run in a fresh process)."""
    import torch

    from contraclust.data import load_image_folder
    from contraclust.data.augment import build_augmentation
    from contraclust.data.source import InMemorySource, StreamedSource
    from contraclust.data.streaming import stream_image_folder

    device = torch.device(device_name)
    baseline_rss, _ = tree_memory(os.getpid())
    with PeakSampler() as sampler:
        start = time.perf_counter()
        if mode == "streamed":
            dataset = stream_image_folder(root, workers=workers)
            source: Any = StreamedSource(dataset, workers=workers, pin_memory=device.type == "cuda")
            shape = dataset.input_shape
        else:
            loaded = load_image_folder(root)
            source = InMemorySource(loaded.data)
            shape = loaded.input_shape
        prepare = time.perf_counter() - start
        n = len(source)
        augment = build_augmentation("auto", "image", shape).to(device)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
        generator = torch.Generator(device=device).manual_seed(0)
        steps = n // batch_size
        if max_pass:  # a shorter pass on the largest folders; the pre-scan stays whole
            steps = min(steps, max(1, max_pass // batch_size))
        seen = 0
        start = time.perf_counter()
        for _, raw in source.train_batches(perm, batch_size, steps):
            unit = raw.to(device, non_blocking=True).float().div_(255.0)
            for _ in range(2):
                augment(unit, generator=generator)
            seen += len(raw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        passed = time.perf_counter() - start
    return {
        "mode": mode,
        "files": n,
        "workers": workers if mode == "streamed" else 0,
        "device": device_name,
        "batch_size": batch_size,
        "pass_images": seen,
        "prepare_s": round(prepare, 2),
        "pass_s": round(passed, 2),
        "images_per_s": round(seen / passed, 1),
        "images_per_s_with_prepare": round(seen / (passed + prepare), 1),
        "baseline_rss_mib": round(baseline_rss / 2**20, 1),
        "peak_rss_tree_mib": round(sampler.peak_rss / 2**20, 1),
        "peak_pss_tree_mib": round(sampler.peak_pss / 2**20, 1),
    }


# --------------------------------------------------------------------------- folders


def write_folder(root: Path, n: int, side: int) -> None:
    """``n`` random ``side``×``side`` RGB PNG files in 10 class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(10):
        (root / f"class{k}").mkdir(parents=True)
    # smooth images (a few random colours, upsampled) compress like photos, not noise
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR)
        image.save(root / f"class{i % 10}" / f"{i:07d}.png")


def run_size(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"contraclust-stream-{n}-", dir=args.tmp))
    rows = []
    try:
        start = time.perf_counter()
        write_folder(tmp / "images", n, args.side)
        made = time.perf_counter() - start
        print(f"{n} files written in {made:.1f} s to {tmp}", file=sys.stderr)
        for mode in args.modes:
            command = [
                sys.executable,
                __file__,
                "--measure",
                mode,
                "--root",
                str(tmp / "images"),
                "--workers",
                str(args.workers),
                "--batch-size",
                str(args.batch_size),
                "--max-pass",
                str(args.max_pass or 0),
                "--device",
                args.device,
            ]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["side"] = args.side
            row["generate_s"] = round(made, 1)
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    finally:
        shutil.rmtree(tmp)
    return rows


# --------------------------------------------------------------------------- report


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured runs (a file from before ``--append`` holds a single one)."""
    return results.get("runs", [results])


def markdown(results: dict[str, Any]) -> str:
    lines = [BEGIN]
    for run in _runs(results):
        meta = run["meta"]
        lines += [
            f"Measured {meta['date']} on {meta['machine']}. {meta.get('load', '')} "
            f"Command: `{meta['command']}` ({meta['total_s']} s in all, folders included).",
            "",
            "| files | source | workers | augmented on | prepare s | pass images | pass s | "
            "images/s (pass) | peak RSS tree MiB | peak PSS tree MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in run["rows"]:
            lines.append(
                f"| {row['files']} | {row['mode']} | {row['workers']} | "
                f"{row.get('device', 'cpu')} | {row['prepare_s']} | {row['pass_images']} | "
                f"{row['pass_s']} | {row['images_per_s']} | {row['peak_rss_tree_mib']} | "
                f"{row['peak_pss_tree_mib']} |"
            )
        if meta.get("note"):
            lines += ["", meta["note"]]
        lines.append("")
    lines += [
        "*prepare*: streamed, listing and pre-scanning the files (header + verify); in "
        "memory, decoding every file into one tensor. *pass*: training-style batches of a "
        "random permutation (all files, or the first *pass images* of them) with two "
        "augmented views each (batched augmentation on the CPU), no model. RSS sums count "
        "pages the forked workers share with the main process once per process; PSS "
        "splits them.",
        END,
    ]
    return "\n".join(lines)


def write_report(results: dict[str, Any]) -> None:
    text = REPORT.read_text(encoding="utf-8")
    block = markdown(results)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (
            text.rstrip("\n")
            + "\n\n## Streaming image folders\n\n"
            + "`python benchmarks/streaming.py [--sizes 1000,10000,100000]` writes folders of "
            + "small PNG files and measures the streamed source (`--stream on`) against the "
            + "in-memory one.\n\n"
            + block
            + "\n"
        )
    REPORT.write_text(text, encoding="utf-8")


def _machine(device: str) -> str:
    text = f"{platform.machine()}, {os.cpu_count()} CPUs"
    if device.startswith("cuda"):
        import torch

        text += f", {torch.cuda.get_device_name(torch.device(device))}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated counts")
    parser.add_argument("--modes", default=",".join(MODES), help="streamed,memory")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--max-pass", type=int, default=0, help="images in the timed pass (0: all files)"
    )
    parser.add_argument("--device", default="cpu", help="where batches are augmented")
    parser.add_argument("--side", type=int, default=32, help="image side in pixels")
    parser.add_argument("--tmp", default="/tmp", help="where the folders are written")
    parser.add_argument("--note", default="", help="a line added under the table")
    parser.add_argument(
        "--load",
        default="CPU shared with other jobs: timings are those of a loaded machine.",
        help="how loaded the machine was (printed with the table)",
    )
    parser.add_argument(
        "--append", action="store_true", help="add this run to the results instead of replacing"
    )
    parser.add_argument("--markdown-only", action="store_true", help="rebuild the table")
    parser.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        row = measure(
            args.measure, Path(args.root), args.workers, args.batch_size, args.max_pass, args.device
        )
        print(json.dumps(row))
        return 0
    if args.markdown_only:
        write_report(json.loads(RESULTS.read_text(encoding="utf-8")))
        return 0
    args.modes = [mode for mode in args.modes.split(",") if mode]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for n in (int(size) for size in args.sizes.split(",")):
        rows.extend(run_size(n, args))
    run = {
        "meta": {
            "date": time.strftime("%Y-%m-%d"),
            "machine": _machine(args.device),
            "load": args.load,
            "command": "python benchmarks/streaming.py " + " ".join(argv or sys.argv[1:]),
            "total_s": round(time.perf_counter() - start, 1),
            "note": args.note,
        },
        "rows": rows,
    }
    earlier = _runs(json.loads(RESULTS.read_text())) if args.append and RESULTS.is_file() else []
    results = {"runs": [*earlier, run]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_report(results)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
