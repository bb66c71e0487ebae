"""`contraclust evaluate DIR --data/--split/--corruption`: distribution-shift scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contraclust.cli import main


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shift") / "run"
    args = ["fit", "digits", "--method", "cc", "--epochs", "1", "--device", "cpu",
            "--backbone", "small_cnn", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    return out


def test_corrupted_copy_is_scored_and_named(digits_run: Path, capsys) -> None:
    metrics_before = (digits_run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["evaluate", str(digits_run), "--corruption", "noise", "--severity", "5"]) == 0
    printed = capsys.readouterr().out
    assert "digits  split all, noise, severity 5  (1797 samples)" in printed
    result = json.loads((digits_run / "shift" / "digits-all-noise-5.json").read_text())
    assert (result["data"], result["split"], result["corruption"]) == ("digits", "all", "noise")
    assert result["severity"] == 5 and result["seed"] == 0 and result["n_samples"] == 1797
    assert set(result["metrics"]) >= {"acc", "nmi", "ari"}
    assert sum(result["cluster_sizes"]) == 1797
    assert (digits_run / "metrics.json").read_bytes() == metrics_before
    # the clean score is the run's own, and the copy scores differently
    assert main(["evaluate", str(digits_run), "--data", "digits"]) == 0
    clean = json.loads((digits_run / "shift" / "digits-all-clean.json").read_text())
    own = json.loads(metrics_before)
    assert clean["metrics"]["acc"] == pytest.approx(own["metrics"]["acc"])
    assert clean["cluster_sizes"] != result["cluster_sizes"]


def test_unlabelled_data_reports_cluster_sizes_only(
    digits_run: Path, tmp_path: Path, capsys
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (30, 8, 8), dtype=np.uint8))
    capsys.readouterr()
    assert main(["evaluate", str(digits_run), "--data", str(data), "--corruption", "blur"]) == 0
    assert "metrics need labels" in capsys.readouterr().out
    result = json.loads((digits_run / "shift" / "x.npy-all-blur-3.json").read_text())
    assert result["metrics"] is None and sum(result["cluster_sizes"]) == 30
    assert result["note"] == "the data have no labels: metrics need labels"


def test_bad_requests_give_one_line(digits_run: Path, capsys) -> None:
    assert main(["evaluate", str(digits_run), "--severity", "2"]) == 2
    assert "--severity needs --corruption" in capsys.readouterr().err
    assert main(["evaluate", str(digits_run), "--corruption", "noise", "--severity", "9"]) == 2
    assert "severity must be 1 to 5" in capsys.readouterr().err
    assert main(["evaluate", str(digits_run), "--data", "digits", "--split", "test"]) == 2
    assert "no train/test splits" in capsys.readouterr().err
