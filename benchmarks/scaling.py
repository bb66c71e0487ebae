"""Scaling: time per epoch and peak memory against N, and cost against K.

N, on synthetic data, method ``cc``, batch 256, one thread per process (on the
shared two cores, two threads per process were several times slower under load):

* images: 28x28 grey uint8, the small CNN at width 8, the grey augmentation;
* vectors: 256 float32 features, the MLP backbone, the vector augmentation.

A full epoch at N = 100k does not fit the time a benchmark may take on two shared
cores, so the epoch time is estimated: a few training steps (the loop's step: index
a batch of the whole array, two augmented views, forward, backward, optimiser step)
are timed and scaled to the epoch's ``N // 256`` steps, plus the epoch's permutation.
What touches all N samples is measured in full: the input statistics and the
per-epoch read-out (a forward pass over all N, labels only). Each N runs in its own
process, so its peak resident memory (``ru_maxrss``) is its own; the memory above the
process's size before the data were made, and that minus the data array itself, are
reported too. Linearity: the exponent of a least-squares fit of log(time) on log(N).

K: for K in 10, 100, 1000, each in its own process: Sinkhorn-Knopp on a 1024 x K
score matrix (3 iterations), the cluster head (512 -> 512 -> K) forward and
backward on a batch of 256, and ``evaluate`` (Hungarian ACC, NMI, ARI, AMI) on
20,000 labels with K classes and K clusters, plus the three metrics the training
loop logs each epoch (``evaluate(..., keys=("acc", "nmi", "ari"))``), and the head
read-out ``predict`` of 20,000 vectors through an untrained MLP with K outputs, with
its N x K probabilities and without them (``keep_probs=False``, what the loop's
per-epoch scoring uses): median time of a few calls and the peak memory above the
process's size before the first call.

Queue: ConCURL's Sinkhorn step of one training step (both views) at K = 1000, batch
256 per process, 256-d embeddings, eps 0.05, 3 iterations: without a queue (each view's
256 x K scores balanced alone) and with SwAV's queue of 3840 (the queued embeddings
scored against the prototypes, 4096 x K balanced, the batch's rows kept, the batch
pushed into the queue). Each queue length in its own process: median time of a few
calls and the peak memory above the process's size before the first call; the queue
buffer is allocated (and filled) before that size is taken.

    python benchmarks/scaling.py                       # everything (a few minutes)
    python benchmarks/scaling.py --sizes 1000 3000 --ks 10 100 --no-write
    python benchmarks/scaling.py --queue-only          # the queue rows alone
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RESULTS_DIR,
    current_rss_mib,
    machine_meta,
    peak_rss_mib,
    write_json,
    write_section,
)

RESULTS = RESULTS_DIR / "scaling.json"
PLOT = RESULTS_DIR / "scaling.png"
SIZES = (1000, 3000, 10000, 30000, 100000)
KS = (10, 100, 1000)
KINDS = ("image", "vector")
COMPONENTS = ("sinkhorn", "head", "evaluate", "evaluate_logged", "predict", "predict_labels")
QUEUE_LENGTHS = (0, 3840)
QUEUE_K, QUEUE_BATCH, QUEUE_DIM = 1000, 256, 256


# --------------------------------------------------------------------------- children


def one_size(kind: str, n: int, steps: int, seed: int = 0) -> dict[str, Any]:
    """Epoch-time parts and peak memory for ``n`` synthetic samples; runs in a child.

    ``steps`` training steps (median time of one) of the loop's step (index a batch of
    the whole array,
    augment two views, forward, backward, optimiser step) are timed and scaled to
    the epoch's ``N // 256`` steps; the parts that touch all N samples (input
    statistics, the epoch's permutation, the per-epoch read-out with labels only)
    are timed in full.
    """
    import torch

    from contraclust.config import RunConfig
    from contraclust.data.augment import build_augmentation
    from contraclust.training.checkpoint import build_method
    from contraclust.training.predict import predict

    torch.set_num_threads(1)
    base = current_rss_mib()
    g = torch.Generator().manual_seed(seed)
    cfg = RunConfig(method="cc", n_clusters=10)
    if kind == "image":
        data = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        cfg.model.backbone, cfg.model.width, augment_name = "small_cnn", 8, "grey"
    else:
        data = torch.randn(n, 256, generator=g)
        cfg.model.backbone, augment_name = "mlp", "vector"
    shape = tuple(data.shape[1:])
    method = build_method(cfg, shape, n)
    augment = build_augmentation(augment_name, kind, shape)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-4)
    batch = 256

    start = time.perf_counter()
    method.set_input_stats(data)
    stats_s = time.perf_counter() - start
    start = time.perf_counter()
    perm = torch.randperm(n, generator=g)
    perm_s = time.perf_counter() - start

    def step(i: int) -> None:
        idx = perm[(i * batch) % (n - batch + 1) :][:batch]
        unit = method.to_unit(data[idx])
        views = [method.normalize(augment(unit, generator=g)) for _ in range(2)]
        out = method.training_loss(views, method.normalize(unit), idx)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()

    step(0)  # warm-up
    step_s = _median_time_per_call(step, steps)  # the median resists other jobs' bursts
    start = time.perf_counter()
    predict(method, data, torch.device("cpu"), keep_probs=False)
    readout_s = time.perf_counter() - start
    peak = peak_rss_mib()
    data_mib = data.numel() * data.element_size() / 2**20
    steps_per_epoch = max(1, n // batch)
    return {
        "kind": kind,
        "n": n,
        "steps": steps_per_epoch,
        "timed_steps": steps,
        "step_seconds": step_s,
        "epoch_seconds": steps_per_epoch * step_s + perm_s,
        "stats_seconds": stats_s,
        "readout_seconds": readout_s,
        "peak_rss_mib": peak,
        "peak_above_start_mib": peak - base,
        "data_mib": data_mib,
        "peak_above_start_minus_data_mib": peak - base - data_mib,
    }


def _median_time_per_call(fn: Any, steps: int) -> float:
    times = []
    for i in range(1, steps + 1):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_k(component: str, k: int, seed: int = 0) -> dict[str, Any]:
    """Time and memory of one K-dependent component; runs in a child process."""
    import torch

    from contraclust.evaluation import evaluate
    from contraclust.losses.sinkhorn import sinkhorn_knopp
    from contraclust.models import ClusterHead

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    if component == "sinkhorn":
        scores = torch.randn(1024, k, generator=g).clamp_(-1, 1)
        base = current_rss_mib()
        seconds = _median_time(lambda: sinkhorn_knopp(scores, eps=0.05, n_iter=3), 5)
        what = "1024 x K scores, eps 0.05, 3 iterations"
    elif component == "head":
        head = ClusterHead(512, k, 512)
        x = torch.randn(256, 512, generator=g)
        base = current_rss_mib()

        def step() -> None:
            head.zero_grad()
            torch.log_softmax(head(x), dim=1).mean().backward()

        seconds = _median_time(step, 5)
        what = "forward + backward, batch 256, 512 -> 512 -> K"
    elif component in ("predict", "predict_labels"):
        from contraclust.config import RunConfig
        from contraclust.training.checkpoint import build_method
        from contraclust.training.predict import predict

        n = 20000
        data = torch.randn(n, 64, generator=g)
        cfg = RunConfig(method="cc", n_clusters=k)
        cfg.model.backbone = "mlp"
        method = build_method(cfg, (64,), n)
        extra = {"keep_probs": False} if component == "predict_labels" else {}
        base = current_rss_mib()
        seconds = _median_time(lambda: predict(method, data, torch.device("cpu"), **extra), 2)
        what = f"head read-out of {n} vectors (64 -> MLP -> K)" + (", labels only" if extra else "")
    else:
        n = 20000
        y = rng.integers(0, k, n)
        p = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
        keys = ("acc", "nmi", "ari") if component == "evaluate_logged" else None
        base = current_rss_mib()
        seconds = _median_time(lambda: evaluate(y, p, keys=keys), 2)
        what = f"N = {n}, " + ("acc, nmi, ari" if keys else "all metrics")
    return {
        "component": component,
        "k": k,
        "seconds": seconds,
        "peak_above_start_mib": max(0.0, peak_rss_mib() - base),
        "what": what,
    }


def one_queue(length: int, k: int = QUEUE_K, seed: int = 0) -> dict[str, Any]:
    """Time and memory of ConCURL's Sinkhorn step with a queue of ``length`` (0: none)."""
    import functools

    import torch
    import torch.nn.functional as F

    from contraclust.losses import EmbeddingQueue, sinkhorn_knopp

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    prototypes = F.normalize(torch.randn(k, QUEUE_DIM, generator=g), dim=1)
    z = [F.normalize(torch.randn(QUEUE_BATCH, QUEUE_DIM, generator=g), dim=1) for _ in range(2)]
    scores = [e @ prototypes.T for e in z]
    balance = functools.partial(sinkhorn_knopp, eps=0.05, n_iter=3)
    queue_mib = 0.0
    if length:
        queue = EmbeddingQueue(length, QUEUE_DIM, n_views=2)
        while not queue.is_full():
            queue.push([F.normalize(torch.randn(QUEUE_BATCH, QUEUE_DIM, generator=g), dim=1)] * 2)
        queue_mib = queue.embeddings.numel() * queue.embeddings.element_size() / 2**20

        def step() -> None:
            queue.balanced_targets(scores, z, lambda e: e @ prototypes.T, balance)

        what = f"2 views: {length} queued + {QUEUE_BATCH} rows x K balanced, batch rows kept"
    else:

        def step() -> None:
            for view_scores in scores:
                balance(view_scores)

        what = f"2 views: {QUEUE_BATCH} x K balanced alone"
    base = current_rss_mib()
    seconds = _median_time(step, 5)
    return {
        "queue_length": length,
        "k": k,
        "batch": QUEUE_BATCH,
        "seconds": seconds,
        "peak_above_start_mib": max(0.0, peak_rss_mib() - base),
        "queue_buffer_mib": queue_mib,
        "what": what,
    }


def run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- analysis


def fitted_exponent(ns: list[int], seconds: list[float]) -> float:
    """Slope of log(seconds) on log(N): 1 for a linear cost."""
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def exponents(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Fitted exponents of the estimated epoch time and of the full read-out pass."""
    out: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["n"])
        if len(mine) < 2:
            continue
        ns = [r["n"] for r in mine]
        out[kind] = {
            "epoch": fitted_exponent(ns, [r["epoch_seconds"] for r in mine]),
            "readout": fitted_exponent(ns, [r["readout_seconds"] for r in mine]),
        }
        large = [r for r in mine if r["n"] >= 10000]
        if len(large) >= 2:
            out[kind]["readout_n_ge_10k"] = fitted_exponent(
                [r["n"] for r in large], [r["readout_seconds"] for r in large]
            )
    return out


def plot(rows: list[dict[str, Any]], krows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for kind, marker in zip(KINDS, ("o", "s"), strict=True):
        mine = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["n"])
        if not mine:
            continue
        ns = [r["n"] for r in mine]
        series = (
            (axes[0].loglog, "epoch_seconds", "-", "epoch"),
            (axes[0].loglog, "readout_seconds", "--", "read-out pass"),
            (axes[1].semilogx, "peak_rss_mib", "-", "peak RSS"),
            (axes[1].semilogx, "peak_above_start_minus_data_mib", "--", "above start - data"),
        )
        for draw, key, style, what in series:
            values = [r[key] for r in mine]
            draw(ns, values, marker=marker, linestyle=style, label=f"{kind}: {what}")
    if rows:
        ns = np.array(sorted({r["n"] for r in rows}), dtype=float)
        ref = min(r["epoch_seconds"] for r in rows if r["n"] == ns[0])
        axes[0].loglog(ns, ref * ns / ns[0], "k:", label="linear")
    axes[0].set(xlabel="N samples", ylabel="seconds", title="Epoch time (estimated) and read-out")
    axes[1].set(xlabel="N samples", ylabel="MiB", title="Peak resident memory")
    for comp, marker in zip(COMPONENTS, "o^svDx", strict=True):
        mine = sorted((r for r in krows if r["component"] == comp), key=lambda r: r["k"])
        if mine:
            axes[2].loglog(
                [r["k"] for r in mine], [r["seconds"] for r in mine], marker=marker, label=comp
            )
    axes[2].set(xlabel="K clusters", ylabel="seconds per call", title="Cost against K")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(saved: dict[str, Any]) -> str:
    meta, rows, krows = saved["meta"], saved["sizes"], saved["ks"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}, torch {meta['torch']}, CPU, load "
        f"average {meta['load_average'][0]:.1f} at the end (a shared, loaded machine). "
        f"Command: `{saved['command']}`.",
        "",
        "| data | N | steps/epoch | s/step | epoch s (est.) | read-out s | input stats s | "
        "peak RSS MiB | above start MiB | data MiB | above start - data MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["kind"], r["n"])):
        lines.append(
            f"| {r['kind']} | {r['n']:,} | {r['steps']} | {r['step_seconds']:.3f} | "
            f"{r['epoch_seconds']:.2f} | {r['readout_seconds']:.2f} | "
            f"{r['stats_seconds']:.3f} | {r['peak_rss_mib']:.0f} | "
            f"{r['peak_above_start_mib']:.0f} | {r['data_mib']:.1f} | "
            f"{r['peak_above_start_minus_data_mib']:.0f} |"
        )
    lines.append("")
    for kind, e in saved["exponents"].items():
        text = (
            f"- {kind}: fitted exponent of the estimated epoch time {e['epoch']:.2f}; of the "
            f"measured read-out pass over all N {e['readout']:.2f}"
        )
        if "readout_n_ge_10k" in e:
            text += f" ({e['readout_n_ge_10k']:.2f} for N >= 10k)"
        lines.append(text + ".")
    lines += [
        "",
        "| component | K | seconds per call | peak above start MiB | what |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(krows, key=lambda r: (COMPONENTS.index(r["component"]), r["k"])):
        lines.append(
            f"| {r['component']} | {r['k']} | {r['seconds']:.4f} | "
            f"{r['peak_above_start_mib']:.1f} | {r['what']} |"
        )
    lines += ["", f"![scaling plot](benchmarks/results/{PLOT.name})"]
    return "\n".join(lines)


def queue_markdown(saved: dict[str, Any]) -> str:
    meta = saved["queue_meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}, torch {meta['torch']}, CPU, one "
        f"thread, load average {meta['load_average'][0]:.1f} at the end (a shared, loaded "
        f"machine). Command: `{saved['queue_command']}`.",
        "",
        "| queue | K | batch | seconds per step | peak above start MiB | queue buffer MiB | what |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(saved["queue"], key=lambda r: r["queue_length"]):
        lines.append(
            f"| {r['queue_length']} | {r['k']} | {r['batch']} | {r['seconds']:.4f} | "
            f"{r['peak_above_start_mib']:.1f} | {r['queue_buffer_mib']:.1f} | {r['what']} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--ks", nargs="+", type=int, default=list(KS))
    p.add_argument("--steps", type=int, default=10, help="timed training steps per N")
    p.add_argument("--queue-lengths", nargs="+", type=int, default=list(QUEUE_LENGTHS))
    p.add_argument(
        "--queue-only",
        action="store_true",
        help="measure only the Sinkhorn step with a queue; keep the other saved results",
    )
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--one-size", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    p.add_argument("--one-k", nargs=2, metavar=("COMPONENT", "K"), help=argparse.SUPPRESS)
    p.add_argument("--one-queue", type=int, metavar="LENGTH", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one_queue is not None:
        print(json.dumps(one_queue(args.one_queue)))
        return
    command = "python benchmarks/scaling.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a != "--no-write"
    )
    qrows = []
    for length in args.queue_lengths:
        row = run_child(["--one-queue", str(length)])
        qrows.append(row)
        print(
            f"sinkhorn queue {length:>5} K={row['k']}: {row['seconds']:.4f} s, "
            f"+{row['peak_above_start_mib']:.1f} MiB",
            flush=True,
        )
    queue_saved = {"queue_meta": machine_meta(), "queue_command": command.strip(), "queue": qrows}
    if args.queue_only:
        if not args.no_write:
            saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            write_json(RESULTS, {**saved, **queue_saved})
            write_section("scaling-queue", queue_markdown(queue_saved), "Sinkhorn with a queue")
            print(f"wrote the queue rows to {RESULTS} and BENCHMARKS.md")
        return
    if args.one_size:
        print(json.dumps(one_size(args.one_size[0], int(args.one_size[1]), args.steps)))
        return
    if args.one_k:
        print(json.dumps(one_k(args.one_k[0], int(args.one_k[1]))))
        return
    rows, krows = [], []
    for kind in args.kinds:
        for n in args.sizes:
            row = run_child(["--one-size", kind, str(n), "--steps", str(args.steps)])
            rows.append(row)
            print(
                f"{kind:<6} N={n:>7,}: epoch {row['epoch_seconds']:.2f} s, read-out "
                f"{row['readout_seconds']:.2f} s, "
                f"peak {row['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    for comp in COMPONENTS:
        for k in args.ks:
            row = run_child(["--one-k", comp, str(k)])
            krows.append(row)
            print(
                f"{comp:<16} K={k:>5}: {row['seconds']:.4f} s, "
                f"+{row['peak_above_start_mib']:.1f} MiB",
                flush=True,
            )
    saved = {
        "meta": machine_meta(),
        "command": command.strip(),
        "sizes": rows,
        "ks": krows,
        "exponents": exponents(rows),
        **queue_saved,
    }
    print(json.dumps(saved["exponents"]))
    if args.no_write:
        return
    write_json(RESULTS, saved)
    plot(rows, krows, PLOT)
    write_section("scaling", markdown(saved), "Scaling with N and K")
    write_section("scaling-queue", queue_markdown(saved), "Sinkhorn with a queue")
    print(f"wrote {RESULTS}, {PLOT} and BENCHMARKS.md")


if __name__ == "__main__":
    main()
