"""Faults during training: SIGKILL, Ctrl-C (SIGINT). Nothing written is lost or torn,
and a resumed CPU run ends with the assignments of a run that never stopped.

The in-process tests raise SIGINT from inside a training step, at a known step; the
subprocess tests signal a real ``contraclust fit`` while it waits, in the second
epoch, for the test to say go (an event, not a delay).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from contraclust.cli import main
from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.methods import register_method
from contraclust.methods.cc import ContrastiveClustering
from contraclust.training import fit, read_checkpoint
from contraclust.training.interrupt import StopRequest, TrainingInterrupted


@pytest.fixture(autouse=True)
def sigint_delivered():
    """Tests started in the background (``nohup``, ``&``) inherit SIGINT ignored, and
    StopRequest then rightly keeps ignoring it; these tests need it delivered."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def fixed_plan_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner times a few steps of its own copy of the method before training; the
    method below counts its steps, so the planner is given a fixed timing instead."""
    import contraclust.training.budget as budget

    monkeypatch.setattr(budget, "measure_step", lambda trial: budget.Timing(0.01, 1e-5))


# --------------------------------------------------------------------------- in process


@register_method
class _CtrlCAtStep(ContrastiveClustering):
    """CC that sends itself SIGINT during global step ``interrupt_at`` (counted from 1;
    None: never)."""

    name = "test-ctrl-c"
    interrupt_at: int | None = None

    def on_step(self, step: int, epoch: int) -> None:
        if step + 1 == type(self).interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def digits_small():
    return load_dataset("digits").subset(np.arange(200))


def ctrl_c_cfg(epochs: int = 3) -> RunConfig:
    return RunConfig.from_dict(
        {
            "method": "test-ctrl-c",
            "n_clusters": 10,
            "model": {"backbone": "small_cnn", "width": 8, "hidden_dim": 32, "projection_dim": 16},
            "optim": {"lr": 1e-3, "schedule": "cosine"},
            "train": {"epochs": epochs, "batch_size": 50, "device": "cpu"},
        }
    )


def test_ctrl_c_saves_mid_epoch_and_resume_is_exact(
    digits_small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = signal.getsignal(signal.SIGINT)
    straight = fit(ctrl_c_cfg(), digits_small, run_dir=tmp_path / "straight", quiet=True)

    out = tmp_path / "stopped"
    monkeypatch.setattr(_CtrlCAtStep, "interrupt_at", 6)  # epoch 2 (4 steps each), step 2
    with pytest.raises(TrainingInterrupted, match=r"epoch 2, step 2/4.*fit --resume --out"):
        fit(ctrl_c_cfg(), digits_small, run_dir=out, quiet=True)
    assert signal.getsignal(signal.SIGINT) is handler  # the usual Ctrl-C again
    state = read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert (state["epoch"], state["step"]) == (1, 2)
    assert len(state["history"]) == 1
    assert "interrupted in epoch 2, step 2/4" in (out / "train.log").read_text()
    assert not (out / "model.ckpt").exists() and not (out / ".lock").exists()

    monkeypatch.setattr(_CtrlCAtStep, "interrupt_at", None)
    resumed = fit(ctrl_c_cfg(), digits_small, run_dir=out, resume=True, quiet=True)
    np.testing.assert_array_equal(straight.prediction.labels, resumed.prediction.labels)
    np.testing.assert_array_equal(straight.prediction.probs, resumed.prediction.probs)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]


def test_ctrl_c_in_a_streamed_run_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed image folders continue inside the epoch too (the same batches follow)."""
    folder = tmp_path / "pngs"
    folder.mkdir()
    digits = load_dataset("digits")
    for i in range(200):
        Image.fromarray(digits.data[i, 0].numpy()).save(folder / f"{i:03d}.png")

    def cfg() -> RunConfig:
        config = ctrl_c_cfg(epochs=2)
        config.data.name, config.data.stream, config.data.workers = str(folder), "on", 0
        return config

    straight = fit(cfg(), run_dir=tmp_path / "straight", quiet=True)
    monkeypatch.setattr(_CtrlCAtStep, "interrupt_at", 6)
    with pytest.raises(TrainingInterrupted, match=r"epoch 2, step 2/4"):
        fit(cfg(), run_dir=tmp_path / "stopped", quiet=True)
    monkeypatch.setattr(_CtrlCAtStep, "interrupt_at", None)
    resumed = fit(cfg(), run_dir=tmp_path / "stopped", resume=True, quiet=True)
    for key, value in straight.method.state_dict().items():
        assert torch.equal(resumed.method.state_dict()[key], value), key


def test_ctrl_c_without_run_directory_says_nothing_was_saved(
    digits_small, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_CtrlCAtStep, "interrupt_at", 2)
    with pytest.raises(TrainingInterrupted, match=r"epoch 1, step 2/4; nothing was saved"):
        fit(ctrl_c_cfg(epochs=1), digits_small, quiet=True)


def test_second_ctrl_c_stops_at_once_and_the_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest().install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between two bytecodes of this thread
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_ignored_ctrl_c_stays_ignored() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop = StopRequest().install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        stop.restore()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


# --------------------------------------------------------------------------- subprocesses

SEED = 5
ATOMIC_TEMP = re.compile(r"^\.(config\.yaml|metrics\.csv|last\.ckpt)\..+\.tmp$")
EPOCHS = 8


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """300 digit images as a .npy file and a preset for a small, quick CC model."""
    folder = tmp_path_factory.mktemp("crash")
    images = (load_digits().images[:300] * 255 / 16).round().astype(np.uint8)
    np.save(folder / "digits300.npy", images)
    preset = {
        "method": "cc",
        "data": {"name": str(folder / "digits300.npy")},  # made for this data: no warning
        "n_clusters": 10,
        "model": {"backbone": "small_cnn", "width": 8, "hidden_dim": 32, "projection_dim": 16},
        "optim": {"lr": 1e-3},
        "train": {"epochs": EPOCHS, "batch_size": 30, "seed": SEED, "device": "cpu"},
    }
    (folder / "small.yaml").write_text(yaml.safe_dump(preset))
    return folder / "digits300.npy", folder / "small.yaml"


def fit_argv(small_set: tuple[Path, Path], out: Path) -> list[str]:
    data, preset = small_set
    return ["fit", str(data), "--preset", str(preset), "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(small_set, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(fit_argv(small_set, out)) == 0
    return cluster_column(out)


def cluster_column(run: Path) -> list[str]:
    with (run / "assignments.csv").open() as stream:
        return [row["cluster"] for row in csv.DictReader(stream)]


#: ``contraclust fit`` (the command line's ``main``), with CC's step hook made to
#: print "paused" before global step ``sys.argv[1]`` and wait for a line on stdin. The
#: hook changes nothing else: the run is the one the command line makes.
PAUSING_FIT = """
import sys
from contraclust.cli import main
from contraclust.methods.cc import ContrastiveClustering

PAUSE_AT = int(sys.argv[1])

def on_step(self, step, epoch):
    if step == PAUSE_AT:
        print("paused", flush=True)
        sys.stdin.readline()

ContrastiveClustering.on_step = on_step
sys.exit(main(sys.argv[2:]))
"""


def start_fit(small_set, out: Path, pause_at: int) -> subprocess.Popen:
    # The same number of threads as this process, so that sums are taken in the same order.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen(
        [sys.executable, "-c", PAUSING_FIT, str(pause_at), *fit_argv(small_set, out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def interrupt_fit(small_set, out: Path, signum: int) -> tuple[int, str]:
    """Start ``contraclust fit``, send ``signum`` while it waits before the second step
    of its second epoch (its first checkpoint written); returns the exit status and
    stderr."""
    steps_per_epoch = 300 // 30
    proc = start_fit(small_set, out, pause_at=steps_per_epoch + 1)
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()  # blocks until the run reaches the step, or ends
    assert line == "paused\n", proc.communicate()[1][-2000:]
    proc.send_signal(signum)
    if signum != signal.SIGKILL:
        # The signal is pending in the run once send_signal returns, so the run's
        # handler (which only sets a flag) has run before the step that follows.
        proc.stdin.write("go\n")
        proc.stdin.flush()
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def check_run_files_intact(out: Path) -> int:
    """Every file the run wrote parses; returns the epoch of the last checkpoint."""
    # A kill during an atomic write may leave its hidden temporary file, never a torn one.
    names = {p.name for p in out.iterdir() if not ATOMIC_TEMP.match(p.name)}
    assert names <= {"config.yaml", "metrics.csv", "train.log", "checkpoints", ".lock"}
    kept = [p.name for p in (out / "checkpoints").iterdir() if not ATOMIC_TEMP.match(p.name)]
    assert kept == ["last.ckpt"]
    assert yaml.safe_load((out / "config.yaml").read_text())["method"] == "cc"
    state = read_checkpoint(out / "checkpoints" / "last.ckpt")
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows][: state["epoch"]] == list(range(1, state["epoch"] + 1))
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    (out / "train.log").read_text(encoding="utf-8")
    return int(state["epoch"])


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(
    small_set, uninterrupted: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    code, _ = interrupt_fit(small_set, out, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert 1 <= check_run_files_intact(out) < EPOCHS
    assert (out / ".lock").exists()  # left behind by the dead process, taken over below

    assert main(["fit", "--resume", "--out", str(out), "--quiet"]) == 0
    assert cluster_column(out) == uninterrupted
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["epochs"] == EPOCHS and not (out / ".lock").exists()


@pytest.mark.slow
def test_sigint_saves_says_how_to_resume_and_resume_finishes(
    small_set, uninterrupted: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "ctrl-c"
    code, err = interrupt_fit(small_set, out, signal.SIGINT)
    assert code == 130, err[-2000:]
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[-1].startswith("contraclust: training interrupted in epoch ")
    assert lines[-1].endswith(f"continue with: contraclust fit --resume --out {out}")
    epoch = check_run_files_intact(out)
    assert "step" in read_checkpoint(out / "checkpoints" / "last.ckpt")
    assert 1 <= epoch < EPOCHS and not (out / ".lock").exists()

    assert main(["fit", "--resume", "--out", str(out), "--quiet"]) == 0
    assert cluster_column(out) == uninterrupted


def test_a_run_that_failed_before_its_first_checkpoint_leaves_no_run(tmp_path: Path) -> None:
    from contraclust.training import rundir

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for name in (rundir.LOG, rundir.CONFIG):
        (out / name).write_text("x")
    rundir.remove_unstarted(out)
    assert not rundir.holds_run(out)
    assert (out / "notes.txt").read_text() == "mine"  # not a run file: kept
    # A run with a checkpoint is kept whole.
    (out / rundir.LAST).parent.mkdir()
    for name in (rundir.LOG, rundir.CONFIG, str(rundir.LAST)):
        (out / name).write_text("x")
    rundir.remove_unstarted(out)
    assert all((out / name).is_file() for name in (rundir.LOG, rundir.CONFIG, str(rundir.LAST)))
