"""Time the batched augmentation presets on CPU (not a test).

Usage: ``python benchmarks/augment_speed.py [--batch 256] [--repeats 20] [--threads N]``.
Prints images per second (batch size over the median time per call) for the grey
preset on 28 px one-channel images and the SimCLR preset on 32 px (and 96 px)
colour images.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from contraclust.data.augment import grey_augmentation, simclr_augmentation


def images_per_second(
    aug: nn.Module, shape: tuple[int, int, int, int], repeats: int, generator: torch.Generator
) -> float:
    """Batch size over the median time of one call (robust to a busy machine)."""
    x = torch.rand(shape, generator=generator)
    times: list[float] = []
    with torch.no_grad():
        for _ in range(3):  # warm-up
            aug(x, generator=generator)
        for _ in range(repeats):
            start = time.perf_counter()
            aug(x, generator=generator)
            times.append(time.perf_counter() - start)
    return shape[0] / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    b = args.batch
    cases = [
        ("grey, 1x28x28", grey_augmentation(28), (b, 1, 28, 28)),
        ("simclr, 3x32x32", simclr_augmentation(32, 3), (b, 3, 32, 32)),
        ("simclr, 3x96x96 (with blur)", simclr_augmentation(96, 3), (b, 3, 96, 96)),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}")
    for name, aug, shape in cases:
        rate = images_per_second(aug, shape, args.repeats, generator)
        print(f"{name:<30s} {rate:>12,.0f} images/s")


if __name__ == "__main__":
    main()
