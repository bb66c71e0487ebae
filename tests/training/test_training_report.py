"""Gathering a run's report: at the end of fit, and rebuilt from the run directory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.errors import RunDirectoryError
from contraclust.training import fit
from contraclust.training.report import _labels_from_csv, read_run_record, rebuild_report


def sections(page: str) -> int:
    return len(re.findall(r'<section class="cluster', page))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A 1-epoch cc run on 300 digits given in memory (not what `digits` loads)."""
    cfg = RunConfig.from_dict(
        {
            "method": "cc",
            "n_clusters": 6,
            "model": {"backbone": "small_cnn", "hidden_dim": 32, "projection_dim": 16},
            "train": {"epochs": 1, "batch_size": 100, "device": "cpu"},
        }
    )
    out = tmp_path_factory.mktemp("training-report") / "run"
    fit(cfg, load_dataset("digits").subset(np.arange(300)), run_dir=out, quiet=True, report=True)
    return out


def test_fit_with_report_writes_it(small_run: Path) -> None:
    page = (small_run / "report.html").read_text()
    assert sections(page) == 6
    assert "t-SNE of the embedding (300 of 300 samples)" in page or "UMAP" in page
    assert (small_run / "report" / "training.png").is_file()


def test_rebuild_with_data_that_are_not_the_runs(small_run: Path) -> None:
    # The configuration names `digits` (1797 samples); the run saw 300 of them. No
    # earlier report (an earlier one with images would be kept: see test_cli_report).
    (small_run / "report.html").unlink(missing_ok=True)
    shutil.rmtree(small_run / "report", ignore_errors=True)
    path, warnings = rebuild_report(small_run, device="cpu")
    assert len(warnings) == 1 and "1797" in warnings[0] and "300" in warnings[0]
    page = path.read_text()
    assert sections(page) == 6 and "the data changed since training" in page
    assert not list((small_run / "report").glob("cluster-*.png"))
    assert "confusion matrix" in page  # labels are read from assignments.csv


def test_damaged_run_files_are_noted_not_fatal(small_run: Path, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    (tmp_path / "k_search.json").write_text('["a list, not an object"]')
    record = read_run_record(tmp_path)
    assert record.summary == {} and record.k_search is None and record.history == []
    assert len(record.notes) == 1 and "metrics.json" in record.notes[0]


def test_rebuild_needs_a_finished_run(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="holds no finished run"):
        rebuild_report(tmp_path)
    with pytest.raises(RunDirectoryError, match="not a directory"):
        rebuild_report(tmp_path / "missing")


def test_labels_from_the_assignments_column() -> None:
    labels, names = _labels_from_csv(["cat", "dog", "cat"], ["bird", "cat", "dog"])
    assert labels.tolist() == [1, 2, 1] and names == ["bird", "cat", "dog"]
    labels, names = _labels_from_csv(["3", "0", "3"], None)
    assert labels.tolist() == [3, 0, 3] and names is None
    labels, names = _labels_from_csv(["b", "a", "b"], ["x"])  # names unknown to the run
    assert labels.tolist() == [1, 0, 1] and names == ["a", "b"]
