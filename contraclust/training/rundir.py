"""The run directory: what a run writes, and the rules that protect earlier runs.

Layout of ``DIR``::

    config.yaml          resolved configuration (written before training starts)
    metrics.csv          one row per epoch: losses, learning rate, time, metrics
    train.log            the log of the run
    checkpoints/last.ckpt  written atomically after every epoch (for --resume)
    model.ckpt           the final model (for predict / evaluate / Clusterer.load)
    assignments.csv      index, cluster, confidence[, label][, path] for every sample
    metrics.json         final metrics (when labels exist), cluster sizes, timings
    k_search.json        with ``--clusters auto``: every candidate K, its scores, the choice
    restarts.json        with ``--restarts N``: the seeds, their agreement (ARI), the one kept
    report.html          the report (figures also as PNGs in report/)
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from contraclust.errors import RunDirectoryError
from contraclust.evaluation.report import REPORT_DIR, REPORT_HTML
from contraclust.utils import atomic_write_text

CONFIG = "config.yaml"
METRICS_CSV = "metrics.csv"
LOG = "train.log"
LAST = Path("checkpoints") / "last.ckpt"
MODEL = "model.ckpt"
ASSIGNMENTS = "assignments.csv"
METRICS_JSON = "metrics.json"
K_SEARCH = "k_search.json"
RESTARTS = "restarts.json"
#: The report page, and the folder of its figures (named by the report writer).
REPORT = REPORT_HTML
REPORT_FIGURES = REPORT_DIR
RUN_FILES = (
    CONFIG,
    METRICS_CSV,
    LOG,
    str(LAST),
    MODEL,
    ASSIGNMENTS,
    METRICS_JSON,
    K_SEARCH,
    RESTARTS,
    REPORT,
)


def holds_run(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run worth keeping: a checkpoint or a final model.

    A folder with only the log and config of a run that stopped before its first
    checkpoint holds nothing to continue or keep, so it is not a run.
    """
    return (run_dir / LAST).exists() or (run_dir / MODEL).exists()


def remove_unstarted(run_dir: Path) -> None:
    """Remove what a run that failed before its first checkpoint wrote in ``run_dir``.

    Its log and config hold nothing a later run needs. A run with a checkpoint or a
    model is left alone, and so is everything that is not a run file (the directory
    stays, possibly empty).
    """
    if not holds_run(run_dir):
        _remove_run_files(run_dir)


def _remove_run_files(run_dir: Path) -> None:
    """Delete the files a run writes, and nothing else."""
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file():
            path.unlink()


def prepare_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> tuple[bool, str | None]:
    """Refuse to clobber an earlier run unless asked; with ``overwrite`` remove only
    the files a run writes (never anything else the user keeps there).

    Returns whether the run resumes, and a note for the user when the folder held a
    run that stopped before its first checkpoint: such a folder is reused for a new
    run, also when ``resume`` was asked (there is nothing to continue).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"output path {run_dir} exists and is not a directory")
    leftovers = [name for name in RUN_FILES if (run_dir / name).is_file()]
    note = None
    if resume:
        if (run_dir / LAST).is_file():
            return True, None
        if holds_run(run_dir) or not leftovers:
            raise RunDirectoryError(
                f"nothing to resume: {run_dir / LAST} does not exist; start without resume=True"
            )
    if holds_run(run_dir):
        if not overwrite:
            raise RunDirectoryError(
                f"{run_dir} already holds a run; pass resume=True to continue it, "
                "overwrite=True to replace it, or choose another run_dir"
            )
        _remove_run_files(run_dir)
    elif leftovers:
        _remove_run_files(run_dir)
        note = (
            f"{run_dir} held a run that stopped before its first checkpoint; "
            "starting a new run there"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirectoryError(
            f"cannot write to output directory {run_dir}: {exc.strerror}; choose another run_dir"
        ) from None
    return False, note


def write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(row.get(k, "")) for k in keys})
    atomic_write_text(path, buf.getvalue())


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def assignments_csv(
    labels: np.ndarray,
    confidence: np.ndarray,
    true_labels: np.ndarray | None = None,
    paths: list[str] | None = None,
    class_names: list[str] | None = None,
) -> str:
    """One row per sample: index, cluster, confidence, and label / path when known."""
    header = ["index", "cluster", "confidence"]
    if true_labels is not None:
        header.append("label")
    if paths is not None:
        header.append("path")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i in range(len(labels)):
        row: list[Any] = [i, int(labels[i]), f"{float(confidence[i]):.4f}"]
        if true_labels is not None:
            lab = int(true_labels[i])
            row.append(class_names[lab] if class_names else lab)
        if paths is not None:
            row.append(paths[i])
        writer.writerow(row)
    return buf.getvalue()


def write_assignments(
    path: Path,
    labels: np.ndarray,
    confidence: np.ndarray,
    true_labels: np.ndarray | None = None,
    paths: list[str] | None = None,
    class_names: list[str] | None = None,
) -> None:
    """Write :func:`assignments_csv` to ``path`` atomically."""
    atomic_write_text(path, assignments_csv(labels, confidence, true_labels, paths, class_names))
