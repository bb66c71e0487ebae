"""What ``auto`` resolves to is printed and written into config.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from contraclust.config import RunConfig
from contraclust.data import array_to_dataset
from contraclust.training import fit


@pytest.mark.parametrize(
    ("shape", "backbone", "augmentation"),
    [((8,), "mlp", "vector"), ((1, 8, 8), "small_cnn", "grey"), ((3, 8, 8), "resnet18", "simclr")],
)
def test_auto_settings_are_resolved_and_saved(
    shape: tuple[int, ...], backbone: str, augmentation: str, tmp_path: Path, capsys
) -> None:
    rng = np.random.default_rng(0)
    data = rng.random((40, *shape)).astype(np.float32)
    if len(shape) == 3:  # channels-first images in [0, 1]
        data = np.moveaxis(data, 1, -1)
    ds = array_to_dataset(data, None, "toy")
    cfg = RunConfig.from_dict(
        {
            "method": "cc",
            "n_clusters": 3,
            "model": {"hidden_dim": 16, "projection_dim": 8},
            "train": {"epochs": 1, "batch_size": 20, "device": "cpu"},
        }
    )
    fit(cfg, ds, run_dir=tmp_path / "run", quiet=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["backbone"] == backbone
    assert saved["augment"]["name"] == augmentation
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("settings:"))
    assert f"backbone {backbone}, augmentation {augmentation}" in line
    assert "40 " in line and "K=3" in line
    assert line in (tmp_path / "run" / "train.log").read_text()
