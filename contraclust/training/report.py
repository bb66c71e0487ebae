"""Gather what the report of a run shows, and write it.

Two ways in: :func:`report_after_fit` at the end of training, with the model, the
data and the prediction still in memory, and :func:`rebuild_report` for
``contraclust report DIR``, which reads the run directory and reloads the data
named in its configuration. Both read the run's own files (``metrics.json``,
``metrics.csv``, ``k_search.json``) and hand plain arrays to
:mod:`contraclust.evaluation.report`, which draws them.

The assignments shown are those of ``assignments.csv`` (the result of the run),
never a new prediction, so a rebuilt report cannot disagree with the run. The
network is only run on the few thousand samples of the 2-D map. When the data can
no longer be loaded, or are not the data of the run, the report is still written,
without images and map, and says why.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contraclust.data import ArrayDataset
from contraclust.data.source import load_training_data
from contraclust.data.streaming import StreamedImageDataset
from contraclust.errors import ContraclustError, RunDirectoryError
from contraclust.evaluation.report import ReportContent, subsample, write_report
from contraclust.methods import ClusteringMethod
from contraclust.training import rundir
from contraclust.training.checkpoint import (
    config_from_checkpoint,
    method_from_checkpoint,
    read_checkpoint,
)
from contraclust.training.predict import Prediction, apply_batched, check_input_shape
from contraclust.utils import resolve_device

log = logging.getLogger("contraclust")

#: Samples embedded for the 2-D map; t-SNE on this many takes a second or two on a CPU.
MAP_POINTS = 1000


@dataclass
class RunRecord:
    """The parts of a run directory the report reads (each may be missing)."""

    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    k_search: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def read_run_record(run_dir: Path) -> RunRecord:
    """metrics.json, metrics.csv and k_search.json, tolerating absent or damaged files
    (a note says which could not be read)."""
    record = RunRecord()
    summary = _read_json(run_dir / rundir.METRICS_JSON, record.notes)
    record.summary = summary if isinstance(summary, dict) else {}
    k_search = _read_json(run_dir / rundir.K_SEARCH, record.notes)
    record.k_search = k_search if isinstance(k_search, dict) else None
    csv_path = run_dir / rundir.METRICS_CSV
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8") as fh:
            record.history = [dict(row) for row in csv.DictReader(fh)]
    return record


def _read_json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} could not be read ({exc.__class__.__name__}); it is left out")
        return None


def _facts(summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    facts: dict[str, Any] = {"run directory": str(run_dir)}
    for key, label in (
        ("method", "method"),
        ("dataset", "data"),
        ("n_samples", "samples"),
        ("n_clusters", "clusters (K)"),
        ("epochs", "epochs"),
        ("readout", "read-out"),
        ("seconds", "training time (s)"),
    ):
        if key in summary:
            facts[label] = summary[key]
    return facts


AnyDataset = ArrayDataset | StreamedImageDataset


def samples(dataset: AnyDataset, index: np.ndarray) -> torch.Tensor:
    """The raw samples ``index`` of a set in memory or streamed (decoded here, in this
    process: the report needs a few thousand at most)."""
    if isinstance(dataset, StreamedImageDataset):
        return torch.stack([dataset[int(i)][0] for i in index])
    return dataset.data[torch.from_numpy(np.asarray(index, dtype=np.int64))]


class _DecodedOnDemand:
    """The images of a streamed set, decoded only when the report indexes them (the
    grids show a few dozen per cluster)."""

    def __init__(self, dataset: StreamedImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return samples(self.dataset, np.atleast_1d(index)).numpy()


def _images(dataset: AnyDataset) -> Any:
    if isinstance(dataset, StreamedImageDataset):
        return _DecodedOnDemand(dataset)
    return dataset.data.numpy() if dataset.kind == "image" else None


def _vectors(dataset: AnyDataset) -> np.ndarray | None:
    if isinstance(dataset, ArrayDataset) and dataset.kind == "vector":
        return dataset.data.numpy()
    return None


def _map_embedding(
    method: ClusteringMethod,
    dataset: AnyDataset,
    device: torch.device,
    seed: int,
    notes: list[str],
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The method's embedding of the map's subsample, and the subsample's indices."""
    index = subsample(len(dataset), MAP_POINTS, seed)
    try:
        rows = samples(dataset, index)
        check_input_shape(method, rows)
        return apply_batched(method, rows, method.embed, device).numpy(), index
    except (ContraclustError, NotImplementedError, RuntimeError) as exc:
        notes.append(f"no map: the embedding could not be computed ({exc})")
        return None, None


def report_after_fit(
    run_dir: Path,
    method: ClusteringMethod,
    dataset: AnyDataset,
    prediction: Prediction,
    device: torch.device,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write the report of a run that has just finished (its files already written);
    ``progress`` shows a bar over its two steps (embedding, drawing the map)."""
    record = read_run_record(run_dir)
    notes = list(record.notes)
    bar = _stages(2, progress)
    bar.set_postfix_str("embedding")
    embedding, index = _map_embedding(method, dataset, device, seed, notes)
    bar.update()
    bar.set_postfix_str("drawing the map and figures")
    content = ReportContent(
        title=f"contraclust run {run_dir.name}",
        n_clusters=method.n_clusters,
        assignments=prediction.labels,
        confidence=prediction.confidence,
        true_labels=dataset.labels,
        class_names=dataset.class_names,
        images=_images(dataset),
        vectors=_vectors(dataset),
        paths=dataset.paths,
        embedding=embedding,
        embedding_index=index,
        history=record.history,
        metrics=(record.summary.get("metrics") or None),
        skipped_files=record.summary.get("skipped_files") or list(dataset.skipped),
        k_search=record.k_search,
        facts=_facts(record.summary, run_dir),
        notes=notes,
        seed=seed,
    )
    try:
        return write_report(run_dir, content)
    finally:
        bar.update()
        bar.close()


@dataclass
class _Assignments:
    clusters: np.ndarray
    confidence: np.ndarray
    labels: list[str] | None
    paths: list[str] | None


def _read_assignments(path: Path) -> _Assignments:
    if not path.is_file():
        raise RunDirectoryError(
            f"{path.parent} holds no finished run ({path.name} is missing); train one with "
            "contraclust fit"
        )
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    try:
        clusters = np.asarray([int(r["cluster"]) for r in rows], dtype=np.int64)
        confidence = np.asarray([float(r["confidence"]) for r in rows], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise RunDirectoryError(
            f"{path} is not an assignments file written by contraclust (it needs the columns "
            "cluster and confidence); rerun the training or restore the file"
        ) from None
    labels = [r["label"] for r in rows] if rows and "label" in rows[0] else None
    paths = [r["path"] for r in rows] if rows and "path" in rows[0] else None
    return _Assignments(clusters, confidence, labels, paths)


def _labels_from_csv(
    labels: list[str], class_names: list[str] | None
) -> tuple[np.ndarray, list[str] | None]:
    """Class indices of the ``label`` column, which holds class names when the run
    had them and integers otherwise."""
    if class_names and set(labels) <= set(class_names):
        position = {name: i for i, name in enumerate(class_names)}
        return np.asarray([position[x] for x in labels], dtype=np.int64), list(class_names)
    try:
        return np.asarray([int(x) for x in labels], dtype=np.int64), None
    except ValueError:
        names, inverse = np.unique(np.asarray(labels), return_inverse=True)
        return inverse.astype(np.int64), [str(x) for x in names]


def _load_run_data(
    cfg: Any, state: dict[str, Any], table: _Assignments
) -> tuple[AnyDataset | None, str | None]:
    """The run's data (opened as the run opened them: in memory or streamed), or None
    and the reason they cannot be shown."""
    name = cfg.data.name
    try:
        dataset = load_training_data(cfg.data)
    except (ContraclustError, OSError) as exc:
        return None, f"the training data '{name}' could not be loaded ({exc})"
    trained_on = (state.get("dataset") or {}).get("name")
    if trained_on and trained_on != dataset.name:
        return None, (
            f"the run was trained on '{trained_on}', which the configuration does not name "
            f"(it names '{name}')"
        )
    if len(dataset) != len(table.clusters):
        return None, (
            f"'{name}' now holds {len(dataset)} samples, the run assigned "
            f"{len(table.clusters)}: the data changed since training"
        )
    if table.paths is not None and dataset.paths is not None and table.paths != dataset.paths:
        return None, f"the files of '{name}' changed since training"
    return dataset, None


#: Where a rebuilt report goes when it would show less than the one it would replace.
REPORT_BESIDE = "report-without-data.html"


def _stages(total: int, enabled: bool) -> Any:
    """A progress bar over the steps of writing a report (the map takes seconds), on a
    terminal only: redirected output stays free of bar redraws."""
    import sys

    from tqdm.auto import tqdm

    shown = enabled and sys.stderr.isatty()
    return tqdm(total=total, desc="report", unit="step", disable=not shown, leave=False)


def rebuild_report(
    run_dir: str | Path, device: str = "auto", progress: bool = False
) -> tuple[Path, list[str]]:
    """Write the report of the finished run in ``run_dir`` again.

    Returns the report's path and the warnings (for example, that the data could
    not be found, so the page has no images); those are also shown on the page. A
    page without the data's images never replaces a ``report.html`` that has them: it
    is written beside it, as ``report-without-data.html``, and a warning says so.
    ``progress`` shows a bar over the steps (loading, embedding, drawing the map).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is not a directory; pass the --out of a finished run")
    table = _read_assignments(run_dir / rundir.ASSIGNMENTS)
    state = read_checkpoint(run_dir / rundir.MODEL)
    cfg = config_from_checkpoint(state)
    method = method_from_checkpoint(state)
    record = read_run_record(run_dir)
    warnings: list[str] = []
    bar = _stages(3, progress)
    bar.set_postfix_str("loading the data")
    dataset, why = _load_run_data(cfg, state, table)
    bar.update()
    bar.set_postfix_str("embedding")
    class_names = (state.get("dataset") or {}).get("class_names")
    true_labels: np.ndarray | None = None
    images = vectors = embedding = index = None
    if dataset is None:
        warnings.append(f"report without images or map: {why}")
        if table.labels is not None:
            true_labels, class_names = _labels_from_csv(table.labels, class_names)
    else:
        true_labels, class_names = dataset.labels, dataset.class_names
        images, vectors = _images(dataset), _vectors(dataset)
        torch_device = resolve_device(device)
        method.to(torch_device)
        embedding, index = _map_embedding(method, dataset, torch_device, cfg.train.seed, warnings)
    bar.update()
    bar.set_postfix_str("drawing the map and figures")
    content = ReportContent(
        title=f"contraclust run {run_dir.name}",
        n_clusters=cfg.n_clusters,
        assignments=table.clusters,
        confidence=table.confidence,
        true_labels=true_labels,
        class_names=class_names,
        images=images,
        vectors=vectors,
        paths=table.paths,
        embedding=embedding,
        embedding_index=index,
        history=record.history,
        metrics=(record.summary.get("metrics") or None) if true_labels is not None else None,
        skipped_files=record.summary.get("skipped_files") or [],
        k_search=record.k_search,
        facts=_facts(record.summary, run_dir),
        notes=record.notes + warnings,
        seed=cfg.train.seed,
    )
    try:
        path = write_report(run_dir, content, beside=REPORT_BESIDE)
        if path.name == REPORT_BESIDE:
            warnings.append(
                f"{run_dir / rundir.REPORT} shows more (the data's images) and is kept; this "
                f"report is written beside it as {REPORT_BESIDE}"
            )
        return path, warnings
    finally:
        bar.update()
        bar.close()
