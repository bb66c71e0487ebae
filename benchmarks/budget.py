"""The time budget's plan line against the wall time of the run it plans.

For each set, with no preset and the default settings (the default recipe,
``--budget auto``, that is 5 minutes on a CPU), the script times the planning
(:func:`make_plan`, what ``fit`` does before training) and records what it chose
and the time it expects. With ``--run`` it then trains the planned run
(``contraclust.training.fit`` with a run directory and the report, as ``contraclust
fit`` does) and records its wall time from the end of the planning to the end of the
report, which is what the estimate covers.

Sets, read from ``../shared/data`` (``$CONTRACLUST_SHARED_DATA``): ``coil20`` (1,440
grey 128 px images, 20 objects), ``olivetti`` (400 grey 64 px faces, 40 people) and
``cifar10-test`` (10,000 colour 32 px images). Their sizes and shapes are those of the
runs that started this work (ResNets chosen for them took 80 minutes to 4 hours).

Results go to ``benchmarks/results/budget.json`` and a table in ``BENCHMARKS.md``
between the ``budget`` markers. Usage::

    python benchmarks/budget.py                    # plan the three sets
    python benchmarks/budget.py --run coil20       # and train the planned COIL-20 run
    python benchmarks/budget.py --markdown-only    # rebuild the table
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS_DIR, machine_meta, write_json, write_section

RESULTS = RESULTS_DIR / "budget.json"
SETS = {"coil20": 20, "olivetti": 40, "cifar10-test": 10}


def shared_dir() -> Path:
    return Path(os.environ.get("CONTRACLUST_SHARED_DATA", REPO.parent / "shared" / "data"))


def _gunzip(path: Path) -> bytes:
    with gzip.open(path) as stream:
        return stream.read()


def _idx(path: Path) -> np.ndarray:
    raw = _gunzip(path)
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` or ``(N, H, W, 3)`` as uint8, and labels."""
    root = shared_dir()
    if name == "coil20":
        stem = "coil20-proc-128x128-images-idx3-ubyte"
        parts = [_idx(root / f"{stem}.part{i}of4.gz") for i in (1, 2, 3, 4)]
        labels = _idx(root / "coil20-proc-labels-idx1-ubyte.gz").astype(np.int64)
        return np.concatenate(parts), labels
    if name == "olivetti":
        import scipy.io

        faces = scipy.io.loadmat(root / "olivettifaces.mat")["faces"]
        images = np.stack([faces[:, i].reshape(64, 64).T for i in range(faces.shape[1])])
        return images, np.arange(len(images)) // 10
    if name == "cifar10-test":
        records = np.concatenate(
            [
                np.frombuffer(
                    _gunzip(root / f"cifar10-test_batch.bin.part{i:02d}of10.gz"), np.uint8
                ).reshape(-1, 3073)
                for i in range(1, 11)
            ]
        )
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), records[:, 0].astype(np.int64)
    raise SystemExit(f"unknown set {name}; valid: {', '.join(SETS)}")


def one(name: str, train: bool) -> dict[str, Any]:
    from contraclust.config import build_config
    from contraclust.data import array_to_dataset
    from contraclust.training import fit
    from contraclust.training.budget import make_plan

    images, labels = load(name)
    dataset = array_to_dataset(images, labels, name)
    cfg = build_config(None, {"data": name, "n_clusters": SETS[name], "device": "cpu"})
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    plan = make_plan(cfg, dataset, report=True)
    planning = time.perf_counter() - start
    row: dict[str, Any] = {
        "set": name,
        "shape": "x".join(str(s) for s in dataset.input_shape),
        "n": len(dataset),
        "plan": plan.line,
        "planning_s": round(planning, 1),
        "estimate_s": round(plan.estimate, 1),
        "step_s": round(plan.timing.step, 3),
        "timed": len(plan.timed),
        "load_before": round(load_before, 2),
    }
    if train:
        folder = Path(tempfile.mkdtemp(prefix="budget-"))
        try:
            planned, data = plan.config, plan.dataset
            planned.train.budget = "none"  # run the plan as made (no second planning)
            start = time.perf_counter()
            result = fit(planned, data, run_dir=folder / "run", quiet=True, report=True)
            row["run_s"] = round(time.perf_counter() - start, 1)
            row["acc"] = round(float(result.metrics["acc"]), 3) if result.metrics else None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        row["load_after"] = round(os.getloadavg()[0], 2)
    return row


def markdown(payload: dict[str, Any]) -> str:
    meta = payload["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}, torch {meta['torch']}, "
        f"{meta['threads']} thread(s), CPU, while other jobs shared the cores (load "
        "average in the table: timings of a loaded machine). "
        f"Command: `{payload['command']}`.",
        "",
        "| set | images | planning s | plan line | estimate s | run s | load before/after | ACC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        run = r.get("run_s", "not run")
        after = r.get("load_after", "-")
        acc = "-" if r.get("acc") is None else r["acc"]
        lines.append(
            f"| {r['set']} | {r['n']} x {r['shape']} | {r['planning_s']} | `{r['plan']}` | "
            f"{r['estimate_s']} | {run} | {r['load_before']} / {after} | {acc} |"
        )
    lines += [
        "",
        "*planning*: the timing of the candidates and the choice (what `fit` adds before "
        "training). *run*: from the end of the planning to the end of the report, the span "
        "the estimate covers (it includes the few seconds `fit` spends timing the planned "
        "configuration again). The estimate scales the steps timed under the load of the "
        "planning: a load that changes during the run moves the wall time with it.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--run", default="", help="sets whose planned run is trained too")
    parser.add_argument("--markdown-only", action="store_true")
    args = parser.parse_args()
    if not args.markdown_only:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        runs = set(filter(None, args.run.split(",")))
        rows = []
        for name in args.sets.split(","):
            rows.append(one(name, name in runs))
            print(json.dumps(rows[-1]), flush=True)
        command = "OMP_NUM_THREADS=1 python benchmarks/budget.py" + (
            f" --run {args.run}" if args.run else ""
        )
        write_json(RESULTS, {"meta": machine_meta(), "command": command, "rows": rows})
    payload = json.loads(RESULTS.read_text())
    write_section("budget", markdown(payload), "Time budget: the plan line and the run")


if __name__ == "__main__":
    main()
