"""Clustering quality at a fixed budget: methods x datasets x seeds.

Each run is a separate process (so its peak memory is its own), trained from the
committed preset ``contraclust/presets/<method>/<dataset>.yaml`` (k-means needs none). Results go
to ``benchmarks/results/quality.json`` and a Markdown table in ``BENCHMARKS.md``
(between the ``quality`` markers), each row with the command that reproduces it.

    python benchmarks/quality.py                          # every method on every set
    python benchmarks/quality.py --methods cc kmeans --datasets digits --seeds 0
    python benchmarks/quality.py --jobs 2 --merge ...     # two runs at once, 1 thread each

With ``--jobs N`` the runs go N at a time, each limited to (CPU cores / N) threads;
every row records the threads it had, and the table shows them.

The standard sets are read from a data root in the official layout; by default the
one the tests build from ``../shared/data`` (``.cache/test-data-root``), built here
when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "quality.json"
REPORT = REPO / "BENCHMARKS.md"
DEFAULT_METHODS = ("kmeans", "cc", "deca", "concurl", "clc", "scan")
DEFAULT_DATASETS = ("digits", "mnist-test", "usps")
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"


def ensure_data_root(root: Path | None) -> Path:
    """The given root, or the tests' cached root built from ../shared/data."""
    if root is not None:
        return root
    sys.path.insert(0, str(REPO / "tests"))
    import conftest  # the single definition of the test data-root layout

    cache = conftest.DATA_ROOT_CACHE
    if all((cache / e.target).is_file() for e in conftest.DATA_ROOT_LAYOUT):
        return cache
    shared = Path(os.environ.get(conftest.SHARED_DATA_ENV, REPO.parent / "shared" / "data"))
    if not (shared / "SHA256SUMS").is_file():
        raise SystemExit(
            f"error: no shared benchmark data at {shared} (its SHA256SUMS is missing); set "
            f"{conftest.SHARED_DATA_ENV} to the folder holding SHA256SUMS and the data files"
        )
    sums = {}
    for line in (shared / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest

    def get(name: str) -> Path:
        path = shared / name
        if conftest._sha256(path) != sums[name]:
            raise SystemExit(f"{path} fails its sha256 check; restore it")
        return path

    conftest._build_data_root(cache, get)
    return cache


def preset_for(method: str, dataset: str) -> str | None:
    """The name of the committed preset for this pair (``deca/usps``), or None."""
    from contraclust.config import available_presets

    name = f"{method}/{dataset}"
    return name if name in available_presets() else None


def command_for(method: str, dataset: str, seed: int) -> list[str]:
    cmd = ["contraclust", "fit", dataset, "--method", method, "--seed", str(seed)]
    preset = preset_for(method, dataset)
    if preset is not None:
        cmd += ["--preset", preset]
    if dataset != "digits":
        cmd += ["--data-root", "<root>"]
    return cmd


def run_one(method: str, dataset: str, seed: int, root: Path, out: Path) -> dict[str, Any]:
    """Train in this process and return the row (called in a child process)."""
    import torch

    from contraclust.config import RunConfig, load_preset
    from contraclust.training import fit

    preset = preset_for(method, dataset)
    raw = load_preset(preset) if preset else {"method": method}
    cfg = RunConfig.from_dict(raw)
    cfg.method = method
    cfg.data.name = dataset
    cfg.data.root = str(root)
    cfg.train.seed = seed
    cfg.train.device = "cpu"
    start = time.perf_counter()
    result = fit(cfg, run_dir=out, overwrite=True, quiet=True)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "epochs": cfg.train.epochs if result.method.trainable else 0,
        "self_label_epochs": cfg.train.self_label_epochs,
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        **{k: result.metrics[k] for k in ("acc", "nmi", "ari")},
        "command": " ".join(command_for(method, dataset, seed)),
    }


def with_threads(saved: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved runs, each with its torch threads (older runs share the file's)."""
    return [{"threads": saved["meta"]["threads"], **r} for r in saved["runs"]]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import numpy as np

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["dataset"]), []).append(row)
    out = []
    for (method, dataset), rs in groups.items():
        entry: dict[str, Any] = {"method": method, "dataset": dataset, "seeds": len(rs)}
        for key in ("acc", "nmi", "ari", "seconds", "peak_rss_mib"):
            values = np.array([r[key] for r in rs], dtype=float)
            entry[key] = float(values.mean())
            entry[f"{key}_std"] = float(values.std())
        entry["command"] = rs[0]["command"].replace(" --seed 0", " --seed S")
        entry["threads"] = "/".join(str(t) for t in sorted({r["threads"] for r in rs}))
        out.append(entry)
    return out


def _cell(entry: dict[str, Any], key: str) -> str:
    if entry["seeds"] == 1:
        return f"{entry[key]:.3f}"
    return f"{entry[key]:.3f} ± {entry[key + '_std']:.3f}"


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        f"Measured up to {meta['date']} on {meta['machine']} (CPU only; torch threads per run "
        "in the table); mean ± std over the seeds counted in the table (seeds 0, 1, 2 where "
        "there are 3).",
        "",
        "| dataset | method | seeds | ACC | NMI | ARI | seconds | threads | peak RSS MiB "
        "| command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(summary, key=lambda e: (e["dataset"], e["method"])):
        lines.append(
            f"| {e['dataset']} | {e['method']} | {e['seeds']} | {_cell(e, 'acc')} | "
            f"{_cell(e, 'nmi')} | {_cell(e, 'ari')} | {e['seconds']:.0f} | {e['threads']} | "
            f"{e['peak_rss_mib']:.0f} | `{e['command']}` |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_report(block: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Quality at a fixed budget\n\n" + block + "\n"
    REPORT.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--runs", type=Path, default=REPO / ".cache" / "bench-runs")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, each with CPU cores / jobs threads"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of earlier runs, replacing those of the runs made now",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the BENCHMARKS.md table from quality.json; train nothing",
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("METHOD", "DATASET", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads(RESULTS.read_text())
        write_report(markdown(summarise(with_threads(saved)), saved["meta"]))
        return
    root = ensure_data_root(args.data_root)

    if args.one:
        method, dataset, seed = args.one
        out = args.runs / f"{method}-{dataset}-{seed}"
        print(json.dumps(run_one(method, dataset, int(seed), root, out)))
        return

    from contraclust.methods import method_names

    methods = [m for m in args.methods if m in method_names()]
    skipped = sorted(set(args.methods) - set(methods))
    if skipped:
        print(f"not implemented here, skipped: {', '.join(skipped)}", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    if args.merge and RESULTS.exists():
        done = {(m, d, s) for m in methods for d in args.datasets for s in args.seeds}
        rows = [
            r
            for r in with_threads(json.loads(RESULTS.read_text()))
            if (r["method"], r["dataset"], r["seed"]) not in done
        ]
    jobs = [(m, d, s) for d in args.datasets for m in methods for s in args.seeds]
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    env = dict(os.environ)
    if args.jobs > 1:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def launch(job: tuple[str, str, int]) -> tuple[tuple[str, str, int], Any]:
        method, dataset, seed = job
        cmd = [sys.executable, __file__, "--one", method, dataset, str(seed)]
        cmd += ["--data-root", str(root), "--runs", str(args.runs)]
        return job, subprocess.run(cmd, capture_output=True, text=True, env=env)

    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for (method, dataset, seed), proc in pool.map(launch, jobs):
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                print(f"run failed: {method} {dataset} seed {seed}", file=sys.stderr)
                failed.append(f"{method} {dataset} seed {seed}")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{dataset:<11} {method:<8} seed {seed}: ACC {row['acc']:.4f} "
                f"NMI {row['nmi']:.4f} ARI {row['ari']:.4f} {row['seconds']:.0f} s "
                f"{row['peak_rss_mib']:.0f} MiB, {row['threads']} threads",
                flush=True,
            )
    import torch

    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "threads": torch.get_num_threads(),
        "seeds": sorted({r["seed"] for r in rows}),
        "torch": torch.__version__,
    }
    summary = summarise(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "summary": summary, "runs": rows}, indent=1))
    write_report(markdown(summary, meta))
    print(f"wrote {RESULTS.relative_to(REPO)} and {REPORT.relative_to(REPO)}")
    if failed:
        raise SystemExit(f"failed runs: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
