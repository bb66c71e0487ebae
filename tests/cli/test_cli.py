"""One end-to-end test per verb; bad input in a real subprocess (more in test_bad_input.py)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contraclust.cli import main

FAST = [
    "--epochs",
    "1",
    "--batch-size",
    "256",
    "--device",
    "cpu",
    "--quiet",
    "--param",
    "instance_temperature=0.5",
]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "contraclust.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(["fit", "digits", "--method", "cc", "--clusters", "10", "--out", str(out), *FAST]) == 0
    )
    return out


def test_fit_writes_run(trained: Path, capsys) -> None:
    summary = json.loads((trained / "metrics.json").read_text())
    assert summary["method"] == "cc" and summary["n_samples"] == 1797
    assert 0.0 <= summary["metrics"]["acc"] <= 1.0
    rows = list(csv.DictReader((trained / "assignments.csv").open()))
    assert len(rows) == 1797 and set(rows[0]) == {"index", "cluster", "confidence", "label"}


def test_evaluate(trained: Path, capsys) -> None:
    assert main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((trained / "metrics.json").read_text())
    assert f"{summary['metrics']['acc']:.4f}" in out and "nmi" in out


def test_predict_array_file(trained: Path, tmp_path: Path, capsys) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    arr = tmp_path / "new.npz"
    np.savez(arr, x=(d.images[:50] * 255 / 16).round().astype(np.uint8), y=d.target[:50])
    out = tmp_path / "pred.csv"
    assert main(["predict", str(trained), str(arr), "--out", str(out), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(out.open()))
    assigned = list(csv.DictReader((trained / "assignments.csv").open()))
    assert [r["cluster"] for r in rows] == [r["cluster"] for r in assigned[:50]]
    # never overwrite without being asked
    assert main(["predict", str(trained), str(arr), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_demo_listing_verbs(tmp_path: Path, capsys) -> None:
    assert (
        main(
            ["demo", "--epochs", "1", "--out", str(tmp_path / "demo"), "--quiet", "--device", "cpu"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "kmeans" in out and "default (deca)" in out and "ACC" in out
    assert (tmp_path / "demo" / "default" / "model.ckpt").is_file()
    assert main(["methods"]) == 0
    assert "kmeans" in capsys.readouterr().out
    assert main(["presets"]) == 0
    assert "cc/digits" in capsys.readouterr().out
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "mnist-test" in out and "missing" in out


def test_fit_on_data_root(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "usps"
    assert (
        main(
            [
                "fit",
                "usps",
                "--data-root",
                str(data_root),
                "--method",
                "kmeans",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_samples"] == 9298 and summary["metrics"]["acc"] > 0.5


@pytest.mark.slow
def test_resume_cli(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["fit", "--out", str(out), *FAST]) == 0
    assert (
        main(["fit", "--out", str(out), "--resume", "--device", "cpu", "--quiet", "--epochs", "2"])
        == 0
    )
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


# The bad-input cases (exit status 2, one line, nothing of the user's changed) are in
# test_bad_input.py; the two below run the real command in a subprocess.


def test_nan_array_subprocess(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    arr[7, 2] = np.nan
    path = tmp_path / "x.npy"
    np.save(path, arr)
    proc = run_cli("fit", str(path), "--out", str(tmp_path / "o"), "--clusters", "3")
    assert proc.returncode == 2
    assert "NaN" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "model.ckpt").exists()


def test_existing_run_not_overwritten_subprocess(trained: Path) -> None:
    before = (trained / "model.ckpt").read_bytes()
    proc = run_cli("fit", "--out", str(trained), "--epochs", "1", "--quiet")
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr and "Traceback" not in proc.stderr
    assert (trained / "model.ckpt").read_bytes() == before


def test_a_preset_schedule_longer_than_the_run_is_refused_before_any_file(
    tmp_path: Path,
) -> None:
    """deca/digits starts k-means at epoch 4: two epochs would end with one cluster."""
    out = tmp_path / "deca"
    proc = run_cli(
        "fit", "digits", "--method", "deca", "--preset", "deca/digits", "--epochs", "2",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "contraclust: error: deca: kmeans_init_epoch=4 is not reached within --epochs 2; "
        "lower kmeans_init_epoch or train longer"
    ]
    assert not out.exists()


def test_debug_shows_traceback() -> None:
    proc = run_cli("--debug", "fit", "--method", "nope", "--out", "/tmp/unused-cc-run")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("method", ["cc", "deca", "concurl", "clc"])
def test_fit_on_two_processes_ddp(method: str, tmp_path: Path) -> None:
    """`fit --devices 2` on CPU: two gloo processes, one run directory written once."""
    out = tmp_path / "ddp"
    report = method == "cc"  # one report (written by rank 0) is enough to check
    # concurl's self-labelling epoch leaves its exemplar head without gradient: DDP
    # must then be told to expect unused parameters
    self_label = method == "concurl"
    # deca's checks for emptied clusters (every 2 of 14 steps) are collectives (a
    # broadcast of the centres)
    checks = ["--param", "reseed_interval_epochs=0.143", "--param", "merge_confusion=0.15"]
    proc = run_cli(
        "fit", "digits", "--method", method, "--devices", "2", "--device", "cpu",
        "--epochs", "2", "--batch-size", "128", "--out", str(out), "--quiet",
        *([] if report else ["--no-report"]), *(["--self-label", "1"] if self_label else []),
        *(checks if method == "deca" else []),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"][: 3 if self_label else 2]
    assert ("confident" in rows[-1]) == self_label
    assert ("reseeded" in rows[-1]) == (method == "deca")
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["method"] == method
    assert summary["n_samples"] == 1797 and sum(summary["cluster_sizes"]) == 1797
    assert proc.stdout.count(f"{method} on digits: ACC") == 1
    assert not (out / ".lock").exists()
    assert (out / "report.html").is_file() == report


@pytest.mark.slow
def test_resume_on_two_processes_repeats_the_uninterrupted_run(tmp_path: Path) -> None:
    """Each process's augmentation generator is saved, so stopping after epoch 1 and
    resuming on 2 processes ends with the weights of a run that never stopped."""
    import torch

    from contraclust.training.checkpoint import read_checkpoint

    common = ["digits", "--method", "cc", "--devices", "2", "--device", "cpu"]
    common += ["--batch-size", "128", "--quiet", "--no-report", "--eval-every", "0"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for out, epochs in ((straight, "2"), (stopped, "1")):
        proc = run_cli("fit", *common, "--epochs", epochs, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = read_checkpoint(stopped / "checkpoints" / "last.ckpt")["rng"]["ranks"]
    assert len(ranks["aug"]) == 2 and not torch.equal(ranks["aug"][0], ranks["aug"][1])
    proc = run_cli("fit", "--out", str(stopped), "--resume", "--devices", "2", "--epochs", "2",
                   "--device", "cpu", "--quiet", "--no-report")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = read_checkpoint(straight / "model.ckpt")["state_dict"]
    b = read_checkpoint(stopped / "model.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
