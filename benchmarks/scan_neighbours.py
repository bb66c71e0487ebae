"""How right SCAN's mined neighbours are, by length of the pretext stage.

SCAN's clustering stage can only be as good as the neighbours it is given. For one
data set and seed this trains the pretext stage of the committed preset
(``contraclust/presets/scan/<dataset>.yaml``) for each given number of epochs, then
one epoch of the clustering stage with the backbone frozen (``update_backbone:
false``), so that the backbone read afterwards is the pretext's. It records:

- the share of the mined neighbours (the table the run used) that carry the class of
  their image;
- the same share for 5, 10 and 20 neighbours mined in the projection and in the
  backbone feature;
- k-means ACC (n_init 5) on each of the two embeddings;
- the seconds of the run and its torch threads.

Results go to ``benchmarks/results/scan_neighbours.json`` (rows of earlier calls are
kept, those of the same data set, seed and length replaced) and a table in
BENCHMARKS.md between the ``scan-neighbours`` markers.

    python benchmarks/scan_neighbours.py mnist-test --pretext 40 100 200 --seed 0
    python benchmarks/scan_neighbours.py --table     # rebuild the table only

The instance head still moves a little in the extra epoch (Adam keeps its momentum
with a zero gradient), so the projection figures for 5 and 10 neighbours are those
of a head one epoch on; the mined table is the exact one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, read_rows, save_row, write_section
from quality import ensure_data_root

if TYPE_CHECKING:
    from contraclust.config import RunConfig

RESULTS = RESULTS_DIR / "scan_neighbours.json"
NEIGHBOURS = (5, 10, 20)


def purity(labels: np.ndarray, table: np.ndarray) -> float:
    """Share of the entries of ``table`` (N x k indices) whose label is their row's."""
    return float((labels[table] == labels[:, None]).mean())


def preset_config(dataset: str, seed: int, root: Path) -> RunConfig:
    """The committed SCAN preset of ``dataset`` with ``seed``, its data under ``root``,
    on the CPU and with no time budget (the preset's epochs as written)."""
    from contraclust.config import RunConfig, load_preset

    cfg = RunConfig.from_dict(load_preset(f"scan/{dataset}"))
    cfg.data.root = str(root)
    cfg.train.seed = seed
    cfg.train.device = "cpu"
    cfg.train.budget = "none"
    return cfg


def measure(dataset: str, seed: int, pretext: float, root: Path) -> dict[str, Any]:
    import torch
    from sklearn.cluster import KMeans
    from torch.nn import functional as F

    from contraclust.data.source import load_training_data
    from contraclust.evaluation.metrics import cluster_accuracy
    from contraclust.methods.scan import mine_neighbours
    from contraclust.training import fit
    from contraclust.training.predict import apply_batched

    cfg = preset_config(dataset, seed, root)
    cfg.train.epochs = int(np.ceil(pretext)) + 1
    cfg.train.self_label_epochs = 0
    cfg.train.eval_every = cfg.train.epochs
    cfg.params.update(pretext_epochs=pretext, update_backbone=False)
    data = load_training_data(cfg.data)
    labels = np.asarray(data.labels)
    start = time.perf_counter()
    result = fit(cfg, data, quiet=True)
    seconds = time.perf_counter() - start
    method = result.method
    row: dict[str, Any] = {
        "dataset": dataset,
        "seed": seed,
        "pretext_epochs": pretext,
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "mined": round(purity(labels, method.neighbours.numpy()), 4),
        "mining_space": method.params.mining_space,
        "n_neighbours": method.params.n_neighbours,
    }
    for space in ("projection", "backbone"):
        # Normalised in both spaces, so that k-means compares directions, as mining does.
        z = apply_batched(
            method,
            data.data,
            lambda x, space=space: F.normalize(method.kmeans_features(x, space), dim=1),
            torch.device("cpu"),
        )
        for k in NEIGHBOURS:
            row[f"{space}_{k}"] = round(purity(labels, mine_neighbours(z, k).numpy()), 4)
        km = KMeans(cfg.n_clusters, n_init=5, random_state=seed).fit(z.numpy())
        row[f"kmeans_{space}"] = round(cluster_accuracy(labels, km.labels_), 4)
    return row


def table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    head = (
        f"Measured up to {meta['date']} on {meta['machine']}, torch {meta['torch']}, "
        f"one run at a time, load {meta['load_average'][0]} at the end of the last. "
        "Share of mined neighbours with the class of their image (the run's own table, "
        "then 5 / 10 / 20 neighbours per space) and k-means ACC on each embedding.\n\n"
        "| set | seed | pretext epochs | mined | projection 5 / 10 / 20 | "
        "backbone 5 / 10 / 20 | k-means on projection | k-means on backbone | seconds | threads |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: (r["dataset"], r["seed"], r["pretext_epochs"])):
        proj = " / ".join(f"{r[f'projection_{k}']:.3f}" for k in NEIGHBOURS)
        back = " / ".join(f"{r[f'backbone_{k}']:.3f}" for k in NEIGHBOURS)
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['pretext_epochs']:g} | {r['mined']:.3f} | "
            f"{proj} | {back} | {r['kmeans_projection']:.3f} | {r['kmeans_backbone']:.3f} | "
            f"{r['seconds']:.0f} | {r['threads']} |"
        )
    return head + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", choices=("digits", "mnist-test", "usps"))
    parser.add_argument("--pretext", nargs="+", type=float, default=[40.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--table", action="store_true", help="rebuild the table; train nothing")
    args = parser.parse_args()
    saved = read_rows(RESULTS)
    if not args.table:
        if args.dataset is None:
            parser.error("name a data set, or give --table")
        root = ensure_data_root(args.data_root)
        for pretext in args.pretext:
            row = measure(args.dataset, args.seed, pretext, root)
            print(json.dumps(row), flush=True)
            saved = save_row(RESULTS, row, ("dataset", "seed", "pretext_epochs"))
    if not saved["rows"]:
        raise SystemExit(f"no results yet in {RESULTS}; name a data set to measure one")
    write_section("scan-neighbours", table(saved["rows"], saved["meta"]), "SCAN neighbours")


if __name__ == "__main__":
    main()
