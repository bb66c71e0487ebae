"""The bad-input suite: every input a user can get wrong, through the CLI and the API.

Each CLI case must end with exit status 2 and exactly one line on stderr that names
the problem (``problem``) and says what to do (``fix``), with no traceback; and the
files the user had before (data, presets, earlier runs) must be byte-for-byte the
same afterwards. The cases run in-process through ``contraclust.cli.main``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contraclust import Clusterer, load
from contraclust.cli import main
from contraclust.data import load_array_file
from contraclust.errors import CheckpointError, ConfigError, ContraclustError, DataError
from contraclust.training.rundir import holds_run

#: One epoch of a small CC model on digits: enough for a run directory to point at.
TINY = ["--epochs", "1", "--batch-size", "256", "--device", "cpu", "--quiet"]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (the user's files before and after a case)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    small = folder / "small-cc.yaml"  # a narrow network: the run takes about a second
    small.write_text("method: cc\nmodel: {width: 8, hidden_dim: 32, projection_dim: 16}\n")
    out = folder / "run"
    assert main(["fit", "digits", "--preset", str(small), "--out", str(out), *TINY]) == 0
    return out


# --------------------------------------------------------------------------- inputs


def digits_like(count: int = 30) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, 8, 8), dtype=np.uint8)


def save_npy(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return str(path)


def png_bytes(seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def image_folder(tmp: Path, bad_name: str | None = None, bad: bytes = b"") -> str:
    """Six good images, plus one bad file when ``bad_name`` is given."""
    folder = tmp / "images"
    folder.mkdir()
    for i in range(6):
        (folder / f"good{i}.png").write_bytes(png_bytes(i))
    if bad_name is not None:
        (folder / bad_name).write_bytes(bad)
    return str(folder)


def empty_folder(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def text_folder(tmp: Path) -> str:
    folder = tmp / "notes"
    folder.mkdir()
    for i in range(3):
        (folder / f"note{i}.txt").write_text("not an image\n")
    return str(folder)


def vectors_with(value: float, tmp: Path) -> str:
    array = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    array[7, 2] = value
    return save_npy(tmp / "vectors.npy", array)


def mismatched_labels(tmp: Path) -> str:
    path = tmp / "labelled.npz"
    np.savez(path, x=digits_like(30), y=np.arange(29) % 3)
    return str(path)


def preset_file(tmp: Path, text: str) -> str:
    path = tmp / "preset.yaml"
    path.write_text(text)
    return str(path)


def copy_run(run: Path, tmp: Path) -> Path:
    target = tmp / "copied-run"
    shutil.copytree(run, target)
    return target


def run_of_other_version(run: Path, tmp: Path) -> Path:
    """A run directory whose checkpoints were written in a future checkpoint format."""
    target = copy_run(run, tmp)
    for name in ("checkpoints/last.ckpt", "model.ckpt"):
        state = torch.load(target / name, weights_only=True)
        state["format_version"] = 99
        state["contraclust_version"] = "9.0.0"
        torch.save(state, target / name)
    return target


def user_file(tmp: Path, name: str, text: str = "mine") -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def locked_run(run: Path, tmp: Path) -> Path:
    """A run directory another machine's process is training in."""
    target = copy_run(run, tmp)
    (target / ".lock").write_text("otherhost:1")
    return target


def truncated_checkpoint(run: Path, tmp: Path) -> Path:
    target = copy_run(run, tmp)
    raw = (target / "model.ckpt").read_bytes()
    (target / "model.ckpt").write_bytes(raw[: len(raw) // 2])
    return target


def unwritable_out(tmp: Path) -> str:
    """A directory nobody may create: root ignores file modes, so it gets a path in /sys."""
    if os.geteuid() == 0:
        return "/sys/contraclust-bad-input/out"
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return str(locked / "out")


# --------------------------------------------------------------------------- CLI cases


@dataclass(frozen=True)
class Case:
    """One bad command line: ``argv(tmp, run)`` builds it; ``problem``/``fix`` are in the
    error line (regular expressions)."""

    argv: Callable[[Path, Path], list[str]]
    problem: str
    fix: str


def fit(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: ["fit", *TINY, *args, "--out", str(tmp / "out")]


def fit_on(make: Callable[[Path], str], *args: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: ["fit", make(tmp), *TINY, *args, "--out", str(tmp / "out")]


CASES: dict[str, Case] = {
    # data
    "nonexistent path": Case(
        fit("/nonexistent/images"),
        r"no such file or directory: /nonexistent/images",
        r"check the path",
    ),
    "empty folder": Case(fit_on(empty_folder), r"is empty", r"put image files"),
    "folder of non-images": Case(
        fit_on(text_folder), r"no image files in .*note0\.txt", r"accepted extensions"
    ),
    "truncated PNG": Case(
        fit_on(lambda t: image_folder(t, "cut.png", png_bytes(9)[:60])),
        r"cut\.png",
        r"--skip-bad-images",
    ),
    "truncated JPEG": Case(
        fit_on(lambda t: image_folder(t, "cut.jpg", jpeg_bytes(9)[:200])),
        r"cut\.jpg",
        r"--skip-bad-images",
    ),
    "zero-byte image": Case(
        fit_on(lambda t: image_folder(t, "zero.png", b"")),
        r"zero\.png.*empty",
        r"--skip-bad-images",
    ),
    "zero-byte array file": Case(
        fit_on(lambda t: user_file(t, "zero.npy", "")),
        r"zero\.npy",
        r"save it with numpy\.save",
    ),
    "unsupported file type": Case(
        fit_on(lambda t: user_file(t, "data.xlsx", "1,2\n")),
        r"unsupported file type '\.xlsx'",
        r"give a folder of images, a \.npy, \.npz, \.csv or \.parquet file",
    ),
    "table of one row": Case(
        fit_on(lambda t: user_file(t, "one.csv", "1,2\n")),
        r"only 1 sample",
        r"at least 2",
    ),
    "array with NaN": Case(
        fit_on(lambda t: vectors_with(np.nan, t), "--clusters", "3"),
        r"NaN/inf values .*row 7",
        r"remove or impute",
    ),
    "array with inf": Case(
        fit_on(lambda t: vectors_with(np.inf, t), "--clusters", "3"),
        r"NaN/inf values .*row 7",
        r"remove or impute",
    ),
    "wrong rank (1-D)": Case(
        fit_on(lambda t: save_npy(t / "flat.npy", np.zeros(50, np.float32))),
        r"shape \(50,\)",
        r"accepted",
    ),
    "wrong rank (5-D)": Case(
        fit_on(lambda t: save_npy(t / "deep.npy", np.zeros((4, 2, 3, 8, 8), np.uint8))),
        r"\(4, 2, 3, 8, 8\)",
        r"accepted",
    ),
    "mismatched labels length": Case(
        fit_on(mismatched_labels), r"29 labels for 30 samples", r"one label per sample"
    ),
    # configuration
    "K < 2": Case(fit("--clusters", "1"), r"clusters must be >= 2, got 1", r"use --clusters 2"),
    "K > N": Case(
        fit("--clusters", "5000", "--method", "kmeans"),
        r"clusters \(5000\) is larger than the number of samples \(1797\)",
        r"use --clusters 1797 or fewer",
    ),
    "unknown method": Case(fit("--method", "nope"), r"unknown method 'nope'", r"valid methods"),
    "k-means space the method lacks": Case(
        fit("digits", "--method", "cc", "--predict-with", "kmeans", "--kmeans-space", "exemplar"),
        r"method 'cc' has no 'exemplar' space",
        r"valid kmeans_space: backbone, projection",
    ),
    "unknown dataset": Case(fit("no-such-set"), r"unknown dataset 'no-such-set'", r"valid names"),
    "unknown preset": Case(
        fit("--preset", "nope/none"), r"unknown preset .nope/none.", r"valid presets: .*cc/digits"
    ),
    "unknown preset key": Case(
        lambda tmp, run: fit("--preset", preset_file(tmp, "method: cc\ntrain:\n  epoch: 3\n"))(
            tmp, run
        ),
        r"unknown option 'train\.epoch'",
        r"valid",
    ),
    "wrong type in preset": Case(
        lambda tmp, run: fit("--preset", preset_file(tmp, "train:\n  epochs: many\n"))(tmp, run),
        r"train\.epochs: .*got 'many'",
        r"expected an integer",
    ),
    "preset not YAML": Case(
        lambda tmp, run: fit("--preset", preset_file(tmp, "train: [1, 2\n"))(tmp, run),
        r"preset\.yaml: not valid YAML at line 2",
        r"correct the file",
    ),
    "unknown method parameter": Case(
        fit("--param", "bogus=1"), r"unknown option 'params\.bogus'", r"valid"
    ),
    "out-of-range method parameter": Case(
        fit("--param", "instance_temperature=0"),
        r"temperature.*got 0\.0",
        r"must be a finite number > 0",
    ),
    "--param without '='": Case(
        fit("--param", "bogus"), r"got 'bogus'", r"--param expects KEY=VALUE"
    ),
    "zero epochs": Case(fit("--epochs", "0"), r"got 0", r"epochs must be >= 1"),
    "batch size larger than N": Case(
        fit("--batch-size", "5000"),
        r"batch size 5000 is larger than the number of samples \(1797\)",
        r"use --batch-size 1797 or less",
    ),
    "negative learning rate": Case(fit("--lr", "-0.1"), r"got -0\.1", r"learning rate must be > 0"),
    "unknown precision": Case(fit("--precision", "64"), r"unknown precision '64'", r"valid"),
    "zero devices": Case(fit("--devices", "0"), r"got 0", r"devices must be >= 1"),
    "zero nodes": Case(fit("--num-nodes", "0"), r"num_nodes must be >= 1, got 0", r"--num-nodes 1"),
    "negative self-label epochs": Case(
        fit("--self-label", "-2"), r"got -2", r"self_label_epochs must be an integer >= 0"
    ),
    "self-labelling k-means": Case(
        fit("--method", "kmeans", "--self-label", "2"),
        r"'kmeans' is fitted in closed form",
        r"set train.self_label_epochs to 0",
    ),
    "CUDA without a GPU": Case(
        fit("--device", "cuda"), r"no CUDA GPU is available", r"use --device cpu"
    ),
    "missing data root": Case(
        fit("mnist-test", "--data-root", "/nonexistent-root"),
        r"missing /nonexistent-root/mnist/t10k",
        r"contraclust datasets download mnist-test",
    ),
    # output and run directories
    "unwritable output directory": Case(
        lambda tmp, run: ["fit", "--out", unwritable_out(tmp), *TINY],
        r"cannot (create|write to) output directory",
        r"choose another --out",
    ),
    "output path is a file": Case(
        lambda tmp, run: ["fit", "--out", user_file(tmp, "file.txt"), *TINY],
        r"file\.txt exists and is not a directory",
        r"choose another --out",
    ),
    "existing run without --overwrite": Case(
        lambda tmp, run: ["fit", "--out", str(copy_run(run, tmp)), *TINY],
        r"already holds a run",
        r"--resume .*--overwrite",
    ),
    "a schedule longer than the run": Case(
        lambda tmp, run: [
            *["fit", "digits", "--method", "deca", "--preset", "deca/digits"],
            *["--epochs", "2", "--out", str(tmp / "deca"), "--device", "cpu", "--quiet"],
        ],
        r"deca: kmeans_init_epoch=4 is not reached within --epochs 2",
        r"lower kmeans_init_epoch or train longer",
    ),
    "a setting counted in steps": Case(
        lambda tmp, run: ["fit", "--method", "deca", "-p", "reseed_interval=144", *TINY],
        r"params\.reseed_interval is no longer a deca option",
        r"reseed_interval_epochs = reseed_interval / steps per epoch",
    ),
    "--resume with no run": Case(
        lambda tmp, run: ["fit", "--out", str(tmp / "none"), "--resume", *TINY],
        r"nothing to resume",
        r"start without --resume",
    ),
    "run directory from another version": Case(
        lambda tmp, run: ["fit", "--out", str(run_of_other_version(run, tmp)), "--resume", *TINY],
        r"checkpoint format 99",
        r"open it with that version of contraclust or train again",
    ),
    "checkpoint of another method": Case(
        lambda tmp, run: [
            "fit",
            "--out",
            str(copy_run(run, tmp)),
            "--resume",
            "--method",
            "kmeans",
            *TINY,
        ],
        r"trains method 'cc', not 'kmeans'",
        r"resume it with --method cc",
    ),
    "run directory in use": Case(
        lambda tmp, run: [
            "fit",
            "--out",
            str(locked_run(run, tmp)),
            "--resume",
            *TINY,
        ],
        r"in use by process otherhost:1",
        r"wait for it to finish",
    ),
    "evaluate a folder without a run": Case(
        lambda tmp, run: ["evaluate", str(tmp)], r"holds no finished run", r"contraclust fit"
    ),
    "predict from a missing run": Case(
        lambda tmp, run: ["predict", str(tmp / "none"), "digits", "--out", str(tmp / "p.csv")],
        r"checkpoint not found",
        r"give a run directory or a model\.ckpt",
    ),
    "predict from a truncated checkpoint": Case(
        lambda tmp, run: [
            "predict",
            str(truncated_checkpoint(run, tmp)),
            "digits",
            "--out",
            str(tmp / "p.csv"),
        ],
        r"truncated or corrupt",
        r"restore it from a copy or train again",
    ),
    "predict from another version": Case(
        lambda tmp, run: [
            "predict",
            str(run_of_other_version(run, tmp)),
            "digits",
            "--out",
            str(tmp / "p.csv"),
        ],
        r"checkpoint format 99",
        r"open it with that version of contraclust or train again",
    ),
    "predict with the wrong input shape": Case(
        lambda tmp, run: [
            "predict",
            str(run),
            vectors_with(0.0, tmp),
            "--out",
            str(tmp / "p.csv"),
            "--device",
            "cpu",
        ],
        r"trained on images .*\(1, 8, 8\).*\(5,\)",
        r"resize or select matching data",
    ),
    "predict onto an existing file": Case(
        lambda tmp, run: [
            "predict",
            str(run),
            "digits",
            "--out",
            user_file(tmp, "mine.csv"),
        ],
        r"mine\.csv exists",
        r"--overwrite",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line(
    name: str, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    run_before = tree_digest(trained_run)
    argv = case.argv(tmp_path, trained_run)
    user_before = tree_digest(tmp_path)
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    out_held_a_run = out is not None and holds_run(out)
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("contraclust: error: ")
    assert "Traceback" not in captured.err
    assert re.search(case.problem, lines[0]), lines[0]
    assert re.search(case.fix, lines[0]), lines[0]
    after = tree_digest(tmp_path)
    assert {k: after.get(k) for k in user_before} == user_before  # nothing lost or changed
    assert not [k for k in after if k.endswith(".lock") and k not in user_before]
    if out is not None and not out_held_a_run:  # the corrected command can use --out
        assert not holds_run(out), sorted(p.name for p in out.iterdir())
    assert tree_digest(trained_run) == run_before


# --------------------------------------------------------------------------- API cases


def vectors(count: int = 40, dim: int = 5) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(count, dim)).astype(np.float32)


def with_value(value: float) -> np.ndarray:
    array = vectors()
    array[3, 1] = value
    return array


def fitted_kmeans() -> Clusterer:
    return Clusterer("kmeans", 3, device="cpu").fit(vectors())


def saved_model(tmp: Path, change: Callable[[dict], None] | None = None) -> Path:
    path = tmp / "model.ckpt"
    fitted_kmeans().save(path)
    if change is not None:
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)
    return path


def cut_in_half(path: Path) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def future_format(state: dict) -> None:
    state["format_version"] = 99


def labels_file_missing(tmp: Path) -> object:
    return load_array_file(save_npy(tmp / "x.npy", vectors()), tmp / "absent-labels.npy")


#: name -> (call(tmp), error type, message pattern)
API_CASES: dict[str, tuple[Callable[[Path], object], type[ContraclustError], str]] = {
    "NaN in X": (lambda t: Clusterer("kmeans", 3).fit(with_value(np.nan)), DataError, "NaN"),
    "inf in X": (lambda t: Clusterer("kmeans", 3).fit(with_value(np.inf)), DataError, "NaN/inf"),
    "1-D X": (lambda t: Clusterer("kmeans", 3).fit(np.zeros(30)), DataError, r"shape \(30,\)"),
    "5-D X": (
        lambda t: Clusterer("kmeans", 3).fit(np.zeros((3, 2, 3, 4, 4), np.uint8)),
        DataError,
        r"\(3, 2, 3, 4, 4\)",
    ),
    "no samples": (
        lambda t: Clusterer("kmeans", 3).fit(np.zeros((0, 5))),
        DataError,
        r"empty array of shape \(0, 5\); need N >= 1",
    ),
    "strings as X": (
        lambda t: Clusterer("kmeans", 3).fit(np.array([["a", "b"]] * 10)),
        DataError,
        "dtype <U1 are not numbers",
    ),
    "labels of another length": (
        lambda t: Clusterer("kmeans", 3).fit(vectors(), np.zeros(39)),
        DataError,
        "39 labels for 40 samples",
    ),
    "K < 2": (lambda t: Clusterer("kmeans", 1).fit(vectors()), ConfigError, ">= 2"),
    "K > N": (lambda t: Clusterer("kmeans", 41).fit(vectors()), ConfigError, r"\(41\) is larger"),
    "negative epochs": (lambda t: Clusterer(epochs=-1).fit(vectors()), ConfigError, "epochs"),
    "batch size larger than N": (
        lambda t: Clusterer(n_clusters=3, batch_size=41).fit(vectors()),
        ConfigError,
        "batch size 41",
    ),
    "unknown method": (lambda t: Clusterer("nope").fit(vectors()), ConfigError, "unknown method"),
    "unknown preset": (
        lambda t: Clusterer(preset="nope/none").fit(vectors()),
        ConfigError,
        "unknown preset",
    ),
    "unknown method parameter": (
        lambda t: Clusterer(n_clusters=3, params={"bogus": 1}).fit(vectors()),
        ConfigError,
        "params.bogus",
    ),
    "a schedule longer than the run": (
        lambda t: Clusterer("deca", preset="deca/digits", epochs=2).fit(vectors()),
        ConfigError,
        "kmeans_init_epoch=4 is not reached within epochs=2",
    ),
    "unknown estimator parameter": (
        lambda t: Clusterer().set_params(clusters=3),
        ConfigError,
        "unknown parameter 'clusters'",
    ),
    "CUDA without a GPU": (
        lambda t: Clusterer("kmeans", 3, device="cuda").fit(vectors()),
        ConfigError,
        "no CUDA GPU",
    ),
    "predict before fit": (lambda t: Clusterer().predict(vectors()), ConfigError, "not fitted"),
    "predict with the wrong shape": (
        lambda t: fitted_kmeans().predict(vectors(dim=6)),
        DataError,
        r"vectors of length \(5,\).*\(6,\)",
    ),
    "load a missing file": (lambda t: load(t / "none.ckpt"), CheckpointError, "not found"),
    "load a truncated file": (
        lambda t: load(cut_in_half(saved_model(t))),
        CheckpointError,
        "truncated or corrupt",
    ),
    "load another format version": (
        lambda t: load(saved_model(t, future_format)),
        CheckpointError,
        "format 99",
    ),
    "labels file missing": (labels_file_missing, DataError, "absent-labels.npy"),
}


@pytest.mark.parametrize("name", list(API_CASES))
def test_api_bad_input_raises_library_errors(name: str, tmp_path: Path) -> None:
    call, error, pattern = API_CASES[name]
    before = tree_digest(tmp_path)
    with pytest.raises(error, match=pattern) as info:
        call(tmp_path)
    assert "\n" not in str(info.value)
    after = tree_digest(tmp_path)
    assert {k: after.get(k) for k in before} == before
