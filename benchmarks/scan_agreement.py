"""Does SCAN's own objective prefer the true classes to the partition SCAN found?

SCAN's clustering loss rewards a partition for two things: that a sample and its
mined neighbours share a cluster (consistency), and that the clusters are of even
size (entropy). With confident predictions the consistency term grows with the share
of neighbour links that cross clusters, so two partitions can be compared on that
share and on the entropy of their sizes. For one data set and seed this trains the
committed preset (``contraclust/presets/scan/<dataset>.yaml``) end to end and scores
two partitions of the training set on the run's own neighbour table:

- the true classes;
- the run's final partition (its prediction).

For each it records the share of neighbour links that stay inside a cluster and the
entropy of the cluster sizes (nats; ``log K`` is the most). When SCAN's partition
scores at least as well as the classes on both, its loss has no reason to move
towards the classes: the errors left come from the neighbours, not from the
optimisation. Also recorded: ACC and NMI of the run, its seconds and torch threads.

Results go to ``benchmarks/results/scan_agreement.json`` (rows of earlier calls are
kept, those of the same data set and seed replaced) and a table in BENCHMARKS.md
between the ``scan-agreement`` markers.

    python benchmarks/scan_agreement.py mnist-test --seed 0
    python benchmarks/scan_agreement.py --table     # rebuild the table only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, read_rows, save_row, write_section
from quality import ensure_data_root
from scan_neighbours import preset_config, purity

RESULTS = RESULTS_DIR / "scan_agreement.json"


def size_entropy(labels: np.ndarray, k: int) -> float:
    """Entropy (nats) of the share of samples in each of ``k`` clusters."""
    p = np.bincount(labels, minlength=k) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def measure(dataset: str, seed: int, root: Path, epochs: int | None = None) -> dict[str, Any]:
    """Train the preset and score both partitions; ``epochs`` (tests) shortens the run
    to that many epochs, the last one of the clustering stage, with no self-labelling."""
    import torch

    from contraclust.data.source import load_training_data
    from contraclust.training import fit

    cfg = preset_config(dataset, seed, root)
    if epochs is not None:
        cfg.train.epochs, cfg.train.self_label_epochs = epochs, 0
        cfg.params["pretext_epochs"] = epochs - 1
    cfg.train.eval_every = cfg.train.epochs + cfg.train.self_label_epochs
    data = load_training_data(cfg.data)
    truth = np.asarray(data.labels)
    start = time.perf_counter()
    result = fit(cfg, data, quiet=True)
    seconds = time.perf_counter() - start
    table = result.method.neighbours.cpu().numpy()
    found = np.asarray(result.prediction.labels)
    k = cfg.n_clusters
    return {
        "dataset": dataset,
        "seed": seed,
        "acc": round(float(result.metrics["acc"]), 4),
        "nmi": round(float(result.metrics["nmi"]), 4),
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "n_neighbours": int(table.shape[1]),
        "agree_classes": round(purity(truth, table), 4),
        "agree_scan": round(purity(found, table), 4),
        "entropy_classes": round(size_entropy(truth, k), 4),
        "entropy_scan": round(size_entropy(found, k), 4),
        "entropy_max": round(float(np.log(k)), 4),
    }


def table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    head = (
        f"Measured up to {meta['date']} on {meta['machine']}, torch {meta['torch']}, "
        f"load {meta['load_average'][0]} at the end of the last run. Each run is the "
        "committed preset, end to end. *Links inside*: share of the run's mined "
        "neighbour links whose two ends share a cluster. *Size entropy*: of the cluster "
        "sizes, in nats (log 10 = 2.303 is the most).\n\n"
        "| set | seed | ACC | NMI | links inside: classes / SCAN | "
        "size entropy: classes / SCAN | seconds | threads |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['dataset']} | {r['seed']} | {r['acc']:.3f} | {r['nmi']:.3f} | "
        f"{r['agree_classes']:.4f} / {r['agree_scan']:.4f} | "
        f"{r['entropy_classes']:.3f} / {r['entropy_scan']:.3f} | {r['seconds']:.0f} | "
        f"{r['threads']} |"
        for r in sorted(rows, key=lambda r: (r["dataset"], r["seed"]))
    ]
    return head + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", choices=("digits", "mnist-test", "usps"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--table", action="store_true", help="rebuild the table; train nothing")
    args = parser.parse_args()
    if args.table:
        saved = read_rows(RESULTS)
    else:
        if args.dataset is None:
            parser.error("name a data set, or give --table")
        row = measure(args.dataset, args.seed, ensure_data_root(args.data_root))
        print(json.dumps(row), flush=True)
        saved = save_row(RESULTS, row, ("dataset", "seed"))
    if not saved["rows"]:
        raise SystemExit(f"no results yet in {RESULTS}; name a data set to measure one")
    write_section("scan-agreement", table(saved["rows"], saved["meta"]), "SCAN's agreement")


if __name__ == "__main__":
    main()
