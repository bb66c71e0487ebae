"""What a user gets with no preset: `contraclust fit DATA -k K`, across six data sets.

Each run is the command a user would type, with no preset and no tuning for the set,
at the default time budget (``--budget auto``: 5 minutes on a CPU); k-means on the
same pixels is the floor. Sets (read from ``../shared/data``, or
``$CONTRACLUST_SHARED_DATA``):

* ``digits`` (built in), ``mnist-test``, ``usps`` and ``cifar10-test`` (``cifar10
  --split test``) from a data root in the official layout (the tests' cached root);
* ``coil20`` (1,440 grey 128 px images, 20 objects) and ``olivetti`` (400 grey 64 px
  faces, 40 people), written once as folders of PNG files, one sub-folder per class,
  as a user would have them.

A *candidate* is a named list of extra ``fit`` arguments (``--candidate NAME --extra
"..."``); ``default`` adds none, ``kmeans`` is ``--method kmeans`` (at 32 px for the
two image folders, the side the budget planner picks for them). Rows are kept in
``benchmarks/results/defaults.json`` by (candidate, set, seed), so screening runs and
the final table share one file; ``--table CANDIDATE`` writes the table of one
candidate against k-means into BENCHMARKS.md (``defaults`` markers).

    python benchmarks/defaults.py --sets digits,coil20 --seeds 0 --jobs 2
    python benchmarks/defaults.py --candidate cc --extra "--method cc" --sets usps
    python benchmarks/defaults.py --table default   # rebuild the table, train nothing

With ``--jobs N`` the runs go N at a time with (CPU cores / N) torch threads each: the
budget planner times its steps under that load, so each run is sized for the share
of the machine it has.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS_DIR, machine_meta, write_json, write_section

RESULTS = RESULTS_DIR / "defaults.json"
FOLDERS = REPO / ".cache" / "defaults-data"
RUNS = REPO / ".cache" / "defaults-runs"
#: Set name -> (K, how the data is named on the command line).
SETS: dict[str, tuple[int, list[str]]] = {
    "digits": (10, ["digits"]),
    "mnist-test": (10, ["mnist-test", "--data-root", "<root>"]),
    "usps": (10, ["usps", "--data-root", "<root>"]),
    "coil20": (20, [str(FOLDERS / "coil20")]),
    "olivetti": (40, [str(FOLDERS / "olivetti")]),
    "cifar10-test": (10, ["cifar10", "--split", "test", "--data-root", "<root>"]),
}
#: The input k-means sees where it is not the images' own size.
KMEANS_SIDE = {"coil20": 32, "olivetti": 32}
#: The best committed preset of each set (its mean ACC over 3 seeds in BENCHMARKS.md).
BEST_PRESET = {"digits": 0.971, "mnist-test": 0.977, "usps": 0.970}


def _write_folder(name: str, images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    target = FOLDERS / name
    if (target / ".complete").is_file():
        return
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = target / f"class{int(label):02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    (target / ".complete").write_text("")


def prepare() -> Path:
    """The data root of the registered sets, and the two image folders."""
    from budget import load  # the readers of COIL-20 and Olivetti from ../shared/data
    from quality import ensure_data_root

    root = ensure_data_root(None)
    for name in ("coil20", "olivetti"):
        _write_folder(name, *load(name))
    return root


def command(candidate: str, extra: list[str], dataset: str, seed: int, out: Path) -> list[str]:
    k, data = SETS[dataset]
    cmd = ["contraclust", "fit", *data, "-k", str(k), "--seed", str(seed), "--out", str(out)]
    if candidate == "kmeans":
        cmd += ["--method", "kmeans"]
        if dataset in KMEANS_SIDE:
            cmd += ["--image-size", str(KMEANS_SIDE[dataset])]
    return cmd + extra


def run_one(
    candidate: str, extra: list[str], dataset: str, seed: int, root: Path, env: dict[str, str]
) -> dict[str, Any]:
    out = RUNS / f"{candidate}-{dataset}-{seed}"
    cmd = command(candidate, extra, dataset, seed, out)
    shown = " ".join(shlex.quote(c) for c in cmd).replace(str(out), "RUN")
    shown = shown.replace(str(FOLDERS), "FOLDERS").replace(f"--seed {seed}", "--seed S")
    real = [str(root) if c == "<root>" else c for c in cmd] + ["--overwrite"]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(real, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {
        "candidate": candidate,
        "set": dataset,
        "seed": seed,
        "command": shown,
        "seconds": round(seconds, 1),
        "load_before": round(load_before, 2),
        "exit": proc.returncode,
    }
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
        return row
    metrics = json.loads((out / "metrics.json").read_text())
    row.update({k: round(float(metrics["metrics"][k]), 4) for k in ("acc", "nmi", "ari")})
    sizes = metrics.get("cluster_sizes") or []
    row["empty_clusters"] = int(sum(1 for s in sizes if s == 0)) + max(
        0, SETS[dataset][0] - len(sizes)
    )
    row["epochs"] = metrics.get("epochs")
    row["degenerate"] = "DEGENERATE" in proc.stdout + proc.stderr
    restarts = out / "restarts.json"
    if restarts.is_file():  # each restart's ACC, which one was kept, and their agreement
        saved = json.loads(restarts.read_text())
        row["restarts"] = {
            "acc": [round(m["acc"], 4) for m in saved["metrics"]],
            "chosen": saved["seeds"].index(saved["chosen_seed"]),
            "mean_ari": saved["mean_ari"],
        }
    log = out / "train.log"
    if log.is_file():
        plans = [
            line.split(" INFO ", 1)[-1]
            for line in log.read_text().splitlines()
            if " plan: " in line
        ]
        if plans:
            row["plan"] = plans[0]
    return row


def _load() -> dict[str, Any]:
    if RESULTS.is_file():
        return json.loads(RESULTS.read_text())
    return {"runs": []}


def summarise(rows: list[dict[str, Any]], candidate: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dataset in SETS:
        rs = [r for r in rows if r["candidate"] == candidate and r["set"] == dataset and "acc" in r]
        if not rs:
            continue
        entry: dict[str, Any] = {"seeds": len(rs), "command": rs[0]["command"]}
        for key in ("acc", "nmi", "ari", "seconds"):
            values = np.array([r[key] for r in rs], dtype=float)
            entry[key], entry[f"{key}_std"] = float(values.mean()), float(values.std())
        entry["empty_clusters"] = sum(r["empty_clusters"] for r in rs)
        entry["degenerate"] = sum(bool(r["degenerate"]) for r in rs)
        entry["load"] = round(float(np.mean([r["load_before"] for r in rs])), 2)
        out[dataset] = entry
    return out


def _cell(entry: dict[str, Any], key: str) -> str:
    if entry["seeds"] == 1:
        return f"{entry[key]:.3f}"
    return f"{entry[key]:.3f} ± {entry[key + '_std']:.3f}"


def markdown(payload: dict[str, Any], candidate: str) -> str:
    ours = summarise(payload["runs"], candidate)
    floor = summarise(payload["runs"], "kmeans")
    meta = payload["meta"]
    lines = [
        f"Measured up to {meta['date']} on {meta['machine']}, torch {meta['torch']}, CPU; "
        f"{payload.get('jobs', 1)} runs at a time with {meta['threads']} torch thread(s) "
        f"each; mean ± std over seeds. Candidate `{candidate}`; commands below (RUN: the "
        "run folder, FOLDERS: the image folders the script writes, S: the seed).",
        "",
        "| set | seeds | ACC | NMI | ARI | seconds | k-means ACC | ACC - k-means | "
        "best preset ACC | empty clusters | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, e in ours.items():
        base = floor.get(dataset)
        gain = f"{e['acc'] - base['acc']:+.3f}" if base else "-"
        best = BEST_PRESET.get(dataset)
        lines.append(
            f"| {dataset} | {e['seeds']} | {_cell(e, 'acc')} | {_cell(e, 'nmi')} | "
            f"{_cell(e, 'ari')} | {e['seconds']:.0f} | "
            f"{base['acc']:.3f} | {gain} | {best if best else '-'} | {e['empty_clusters']} | "
            f"{e['load']} |"
            if base
            else f"| {dataset} | {e['seeds']} | {_cell(e, 'acc')} | {_cell(e, 'nmi')} | "
            f"{_cell(e, 'ari')} | {e['seconds']:.0f} | - | - | {best if best else '-'} | "
            f"{e['empty_clusters']} | {e['load']} |"
        )
    others = sorted({r["candidate"] for r in payload["runs"]} - {candidate, "kmeans"})
    if others:
        lines += [
            "",
            "Other candidates (screening; the extra `fit` arguments of each are in "
            "`benchmarks/results/defaults.json`):",
            "",
            "| candidate | set | seeds | ACC | NMI | seconds | empty clusters |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in others:
            for dataset, e in summarise(payload["runs"], name).items():
                lines.append(
                    f"| {name} | {dataset} | {e['seeds']} | {_cell(e, 'acc')} | "
                    f"{_cell(e, 'nmi')} | {e['seconds']:.0f} | {e['empty_clusters']} |"
                )
    lines += ["", "Commands:", ""]
    for dataset, e in ours.items():
        lines.append(f"- {dataset}: `{e['command']}`")
        if dataset in floor:
            lines.append(f"  (k-means: `{floor[dataset]['command']}`)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", default="default", help="name of the settings tried")
    parser.add_argument("--extra", default="", help="fit arguments the candidate adds")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--table", metavar="CANDIDATE", help="write the table; train nothing")
    args = parser.parse_args()
    if args.table:
        payload = _load()
        write_section("defaults", markdown(payload, args.table), "Defaults: no preset, any data")
        return
    unknown = sorted(set(args.sets.split(",")) - set(SETS))
    if unknown:
        raise SystemExit(f"unknown set {unknown[0]}; valid: {', '.join(SETS)}")
    root = prepare()
    extra = shlex.split(args.extra)
    if args.candidate == "kmeans":
        extra = []
    jobs = [(d, int(s)) for d in args.sets.split(",") for s in args.seeds.split(",")]
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    payload = _load()
    done = {(args.candidate, d, s) for d, s in jobs}

    def launch(job: tuple[str, int]) -> dict[str, Any]:
        return run_one(args.candidate, extra, job[0], job[1], root, env)

    rows = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for row in pool.map(launch, jobs):
            rows.append(row)
            print(json.dumps(row), flush=True)
    kept = [r for r in payload["runs"] if (r["candidate"], r["set"], r["seed"]) not in done]
    payload["runs"] = kept + rows
    meta = machine_meta()
    meta["threads"] = threads
    payload["meta"] = meta
    payload["jobs"] = args.jobs
    payload.setdefault("candidates", {})[args.candidate] = args.extra
    write_json(RESULTS, payload)


if __name__ == "__main__":
    main()
