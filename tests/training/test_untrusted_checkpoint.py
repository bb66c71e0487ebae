"""A checkpoint from a stranger must not run code: one whose unpickling would create a
file is refused by every reader (``contraclust predict``, ``fit --resume``,
``contraclust.load``) with one clear error, and the file never appears."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from contraclust import Clusterer, load
from contraclust.cli import main
from contraclust.errors import CheckpointError


class CreatesFile:
    """Unpickling this calls ``open(marker, "w")``: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def booby_trapped(genuine: Path, target: Path, marker: Path) -> Path:
    """A genuine contraclust checkpoint with one extra entry that runs code when loaded."""
    state = torch.load(genuine, weights_only=True)
    state["notes"] = CreatesFile(marker)
    torch.save(state, target)
    return target


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with model.ckpt and checkpoints/last.ckpt (k-means: quick)."""
    run = tmp_path_factory.mktemp("untrusted") / "run"
    points = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    model = Clusterer("kmeans", 3, device="cpu").fit(points)
    (run / "checkpoints").mkdir(parents=True)
    model.save(run / "model.ckpt")
    shutil.copy(run / "model.ckpt", run / "checkpoints" / "last.ckpt")
    np.save(run.parent / "new.npy", points[:10])
    return run


def test_the_trap_is_live(saved_run: Path, tmp_path: Path) -> None:
    """Control: an unrestricted unpickler does run the payload."""
    marker = tmp_path / "pwned"
    trap = booby_trapped(saved_run / "model.ckpt", tmp_path / "trap.ckpt", marker)
    torch.load(trap, weights_only=False)
    assert marker.exists()


def test_load_refuses_and_runs_nothing(saved_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    trap = booby_trapped(saved_run / "model.ckpt", tmp_path / "model.ckpt", marker)
    with pytest.raises(CheckpointError, match=r"refused to load.*not safe to open") as info:
        load(trap)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="refused to load"):
        load(tmp_path)  # the run-directory form
    assert not marker.exists()


@pytest.mark.parametrize("verb", ["predict", "fit --resume"])
def test_cli_refuses_and_runs_nothing(
    verb: str, saved_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    marker = tmp_path / "pwned"
    name = "model.ckpt" if verb == "predict" else "checkpoints/last.ckpt"
    booby_trapped(run / name, run / name, marker)
    trap_bytes = (run / name).read_bytes()
    if verb == "predict":
        new = str(saved_run.parent / "new.npy")
        argv = ["predict", str(run), new, "--out", str(tmp_path / "p.csv")]
    else:
        argv = ["fit", "--resume", "--out", str(run), "--quiet", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contraclust: error: ")
    assert "refused to load" in err[0] and "Traceback" not in err[0]
    assert not marker.exists()
    assert (run / name).read_bytes() == trap_bytes  # the evidence is not deleted either
