"""A streamed run trains, evaluates and predicts exactly like the in-memory run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contraclust.cli import main
from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.errors import ConfigError
from contraclust.training import fit


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 of scikit-learn's digits as 8×8 PNG files, one folder per class."""
    root = tmp_path_factory.mktemp("digits") / "folder"
    digits = load_dataset("digits")
    for i in range(150):
        label = int(digits.labels[i])  # type: ignore[index]
        folder = root / f"d{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.data[i, 0].numpy()).save(folder / f"{i:04d}.png")
    return root


def config(method: str, folder: Path, stream: str, workers: int = 2) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": method,
            "n_clusters": 10,
            "data": {"name": str(folder), "stream": stream, "workers": workers},
            "model": {"backbone": "small_cnn", "hidden_dim": 32, "projection_dim": 16},
            "train": {"epochs": 2, "batch_size": 50, "device": "cpu", "seed": 7},
        }
    )


@pytest.mark.parametrize("method", ["cc", "deca"])
def test_streamed_fit_equals_in_memory_fit(digit_folder: Path, method: str) -> None:
    # deca also passes over the whole set (k-means initialisation, DEC targets)
    memory = fit(config(method, digit_folder, "off"), quiet=True)
    streamed = fit(config(method, digit_folder, "on"), quiet=True)
    assert [row["loss"] for row in streamed.history] == [row["loss"] for row in memory.history]
    assert [row["acc"] for row in streamed.history] == [row["acc"] for row in memory.history]
    np.testing.assert_array_equal(streamed.prediction.probs, memory.prediction.probs)
    for key, value in memory.method.state_dict().items():
        assert torch.equal(streamed.method.state_dict()[key], value), key


def test_streamed_cli_run_writes_paths_and_skipped_files(
    digit_folder: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    for src in sorted(digit_folder.rglob("*.png"))[:60]:
        dst = copy / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    (copy / "d0" / "zz_bad.png").write_bytes(b"not an image")
    out = tmp_path / "run"
    args = [
        "fit", str(copy), "--stream", "on", "--workers", "1", "--epochs", "1",
        "--batch-size", "40", "--device", "cpu", "--backbone", "small_cnn",
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    assert main(args) == 2  # without --skip-bad-images: one error naming the file
    assert main([*args, "--skip-bad-images", "--overwrite"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["skipped_files"] == ["d0/zz_bad.png"]
    assert summary["n_samples"] == 60 and summary["metrics"] is not None
    with open(out / "assignments.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and rows[0]["path"].startswith("d")


def test_streamed_run_resumes_to_the_same_weights(digit_folder: Path, tmp_path: Path) -> None:
    straight = fit(config("cc", digit_folder, "on", workers=0), quiet=True)
    first = config("cc", digit_folder, "on", workers=0)
    first.train.epochs = 1
    fit(first, run_dir=tmp_path / "run", quiet=True)
    resumed = fit(
        config("cc", digit_folder, "on", workers=0),
        run_dir=tmp_path / "run",
        resume=True,
        quiet=True,
    )
    for key, value in straight.method.state_dict().items():
        assert torch.equal(resumed.method.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("change", "option"),
    [({"n_clusters": "auto"}, "--clusters auto"), ({"features": "net.pt"}, "--features")],
)
def test_options_that_need_the_images_in_memory_refuse_a_streamed_set(
    digit_folder: Path, change: dict[str, str], option: str
) -> None:
    cfg = config("cc", digit_folder, "on")
    if "n_clusters" in change:
        cfg.n_clusters = change["n_clusters"]
    else:
        cfg.data.features = change["features"]
    with pytest.raises(ConfigError, match=f"{option} needs the images in memory.*--stream off"):
        fit(cfg, quiet=True)
