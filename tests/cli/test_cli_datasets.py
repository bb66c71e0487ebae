"""The ``datasets`` verb (list, download, verify) and ``fit --split/--download``, against a
local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import write_idx
from local_http import ServerState, set_origin

from contraclust.cli import build_config, build_parser, main
from contraclust.data import download
from contraclust.data.download import DownloadSource, RemoteFile


@pytest.fixture
def mirror(
    http_server: str, http_state: ServerState, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[str, ServerState]:
    """A mirror serving a small MNIST (30 test images) whose checksums replace the real ones."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(12, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(30, dtype=np.uint8) % 3,
    }
    remote = []
    for name, array in arrays.items():
        data = write_idx(tmp_path / "built" / name, array).read_bytes()
        http_state.files[f"/mirror/mnist/{name}"] = data
        remote.append(RemoteFile(name, md5=hashlib.md5(data).hexdigest()))
    set_origin(monkeypatch, "mnist", DownloadSource(f"{http_server}/not-served/", tuple(remote)))
    return f"{http_server}/mirror", http_state


def test_download_verify_and_list(
    mirror: tuple[str, ServerState], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, state = mirror
    root = str(tmp_path / "data")
    assert main(["datasets", "download", "mnist", "--data-root", root, "--mirror", url, "-q"]) == 0
    assert f"mnist: ready in {Path(root) / 'mnist'}" in capsys.readouterr().out
    assert len(state.requests) == 4

    assert main(["datasets", "--data-root", root, "verify", "mnist"]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == 4 and out.rstrip().endswith("mnist: verified")

    assert main(["datasets", "list", "--data-root", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    status = {
        line.split()[0]: line.split()[1]
        for line in lines
        if line.startswith("  ") and line.split()[0] in ("mnist", "mnist-test", "cifar10", "digits")
    }
    assert status == {
        "digits": "built",
        "mnist": "verified",
        "mnist-test": "verified",
        "cifar10": "missing",
    }
    assert any("contraclust datasets download cifar10" in line for line in lines)

    labels = Path(root) / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-1])
    assert main(["datasets", "verify", "mnist", "--data-root", root]) == 1
    out = capsys.readouterr().out
    assert "FAIL t10k-labels-idx1-ubyte.gz: md5 " in out and "1 problem(s)" in out


def test_datasets_without_action_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path} (from --data-root)" in out
    assert "stl10" in out and "missing" in out and "imagenet-dogs" in out


def test_download_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "download", "usps", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contraclust: error: usps cannot be downloaded") and "kaggle" in err
    assert err.count("\n") == 1
    assert main(["datasets", "download", "nope", "--data-root", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_fit_split_reaches_the_config() -> None:
    args = build_parser().parse_args(["fit", "cifar10", "--split", "test", "--image-size", "24"])
    cfg = build_config(args)
    assert cfg.data.split == "test" and cfg.data.image_size == 24
    assert build_config(build_parser().parse_args(["fit", "cifar10"])).data.split is None


def test_fit_downloads_a_missing_set_and_reads_its_split(
    mirror: tuple[str, ServerState],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, state = mirror
    monkeypatch.setenv(download.MIRROR_ENV, url)
    out = tmp_path / "run"
    argv = ["fit", "mnist", "--split", "test", "--method", "kmeans", "--clusters", "3"]
    argv += ["--data-root", str(tmp_path / "data"), "--out", str(out), "--quiet"]
    assert main([*argv, "--device", "cpu"]) == 2  # without --download: missing, one line
    err = capsys.readouterr().err
    assert "run `contraclust datasets download mnist`" in err and "for split 'test'" in err
    assert state.requests == []

    assert main([*argv, "--device", "cpu", "--download"]) == 0

    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_samples"] == 30
    assert (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").is_file()
