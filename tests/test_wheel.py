"""The installed wheel works: what a user gets from ``pip install contraclust``.

A wheel is built from the checkout and installed, with its dependencies, into a fresh
virtual environment outside the source tree; every command then runs with an empty
folder as its working directory and ``PYTHONPATH`` empty, so nothing can be read from
the checkout (a file missing from the wheel fails here, as it would for a user). torch
is installed first from ``$TORCH_SPEC`` (default ``torch==2.13.0``, the Makefile's).

Each command's output is checked, not only its exit status: a command that prints a
wrong answer and exits 0 fails.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
PACKAGE_PRESETS = REPO_ROOT / "contraclust" / "presets"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
N_DIGITS = 1797


@dataclass(frozen=True)
class Installed:
    """A virtual environment holding the wheel, and an empty folder to work in."""

    wheel: Path
    venv: Path
    site_packages: Path
    work: Path
    env: dict[str, str]

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv; fail with its output unless it exits 0."""
        proc = subprocess.run(
            list(args),
            cwd=cwd or self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, (
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
        return proc

    def contraclust(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin("contraclust"), *args, cwd=cwd)


def _pip(python: Path, *args: str, env: dict[str, str]) -> None:
    command = [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}"


def _user_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user who activated ``venv``: no path into the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PYTHONPATH="",
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        # downloads and feature caches go to the test's folder, not the user's
        CONTRACLUST_DATA=str(home / "data"),
        CONTRACLUST_CACHE=str(home / "cache"),
        MPLBACKEND="Agg",
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(REPO_ROOT), "the venv must be outside the checkout"
    dist = base / "dist"
    build_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _pip(Path(sys.executable), "wheel", "--no-deps", "-w", str(dist), str(REPO_ROOT), env=build_env)
    wheels = sorted(dist.glob("contraclust-*.whl"))
    assert len(wheels) == 1, f"expected one contraclust wheel in {dist}, found {wheels}"

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _user_env(venv, base)
    python = venv / "bin" / "python"
    _pip(python, "install", TORCH_SPEC, env=env)
    _pip(python, "install", str(wheels[0]), env=env)

    work = base / "empty"
    work.mkdir()
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Installed(wheels[0], venv, Path(site).resolve(), work, env)


@pytest.fixture(scope="module")
def deca_run(installed: Installed) -> Path:
    """``contraclust fit digits --preset deca/digits`` from the empty folder."""
    proc = installed.contraclust(
        "fit", "digits", "--preset", "deca/digits", "-q", "--out", "runs/deca"
    )
    run = installed.work / "runs" / "deca"
    assert "deca on digits" in proc.stdout, proc.stdout
    return run


def _hungarian_acc(truth: np.ndarray, pred: np.ndarray) -> float:
    """ACC after the best one-to-one matching of clusters to classes (own reference)."""
    counts = np.zeros((pred.max() + 1, truth.max() + 1), dtype=np.int64)
    np.add.at(counts, (pred, truth), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(truth))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_wheel_ships_every_preset_and_no_tests(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        f"contraclust/presets/{p.relative_to(PACKAGE_PRESETS).as_posix()}"
        for p in PACKAGE_PRESETS.rglob("*.yaml")
    }
    assert len(expected) >= 4, f"no presets found in {PACKAGE_PRESETS}"
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert "contraclust/py.typed" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_package_imports_from_the_venv(installed: Installed) -> None:
    proc = installed.run(
        installed.bin("python"), "-c", "import contraclust; print(contraclust.__file__)"
    )
    location = Path(proc.stdout.strip()).resolve()
    assert location.is_relative_to(installed.site_packages), location
    assert not location.is_relative_to(REPO_ROOT), location


def test_presets_lists_the_installed_presets(installed: Installed) -> None:
    out = installed.contraclust("presets").stdout
    header = re.search(r"presets in (.+):", out)
    assert header, out
    assert Path(header.group(1)).resolve().is_relative_to(installed.site_packages), out
    rows = dict(re.findall(r"^\s+(\S+/\S+)\s+for (\S+)$", out, flags=re.M))
    listed = set(rows)
    expected = {
        p.relative_to(PACKAGE_PRESETS).with_suffix("").as_posix()
        for p in PACKAGE_PRESETS.rglob("*/*.yaml")
    }
    assert listed == expected
    assert re.search(r"^\s+default\s+for any data", out, flags=re.M), out  # the recipe
    assert "deca/digits" in listed
    assert rows["deca/usps"] == "usps" and rows["cc/cifar10"] == "cifar10"  # its data set


def test_demo_prints_kmeans_and_the_default_recipe(installed: Installed) -> None:
    # The demo with 4 epochs of the default recipe instead of its budget's.
    out = installed.contraclust("demo", "--epochs", "4", "--out", "demo", "-q").stdout
    rows = dict(re.findall(r"^(kmeans|default \(deca\))\s+([0-9.]+)\s", out, flags=re.M))
    assert set(rows) == {"kmeans", "default (deca)"}, out
    # k-means on digits' pixels is .79 (seed 0); chance is about .1
    assert float(rows["kmeans"]) > 0.7, out
    assert float(rows["default (deca)"]) > 0.3, out
    for name in ("kmeans", "default"):
        assert (installed.work / "demo" / name / "metrics.json").is_file()


def test_fit_deca_preset_learns_digits(installed: Installed, deca_run: Path) -> None:
    summary = json.loads((deca_run / "metrics.json").read_text())
    assert summary["method"] == "deca" and summary["n_samples"] == N_DIGITS
    assert summary["epochs"] == 12  # the preset's, read from the installed file
    assert summary["metrics"]["acc"] > 0.9, summary["metrics"]
    rows = _read_csv(deca_run / "assignments.csv")
    assert len(rows) == N_DIGITS
    truth = np.array([int(r["label"]) for r in rows])
    pred = np.array([int(r["cluster"]) for r in rows])
    assert _hungarian_acc(truth, pred) == pytest.approx(summary["metrics"]["acc"], abs=1e-9)
    assert len(_read_csv(deca_run / "metrics.csv")) >= 1
    for name in ("config.yaml", "model.ckpt", "report.html"):
        assert (deca_run / name).is_file(), name


def _report_figures(run: Path) -> tuple[str, int]:
    page = (run / "report.html").read_text()
    return page, len(re.findall(r"<img ", page))


def test_report_rebuilds_the_page_with_images(installed: Installed, deca_run: Path) -> None:
    page_path = deca_run / "report.html"
    fitted_page, fitted_images = _report_figures(deca_run)
    page_path.unlink()
    proc = installed.contraclust("report", "runs/deca")
    assert "report written" in proc.stdout, proc.stdout
    page, images = _report_figures(deca_run)
    assert "report without images" not in page
    assert "confusion matrix" in page
    # sizes, map, curves, confusion and two strips per cluster: as after fit
    assert images == fitted_images and images >= 10 * 2 + 4, (images, fitted_images)
    assert fitted_page.count("<h3>") == page.count("<h3>") == 10


def test_report_from_another_folder_keeps_images(installed: Installed, tmp_path: Path) -> None:
    """A run trained on a relative image folder, its report rebuilt from elsewhere."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(60):
        folder = installed.work / "photos" / f"class{digits.target[i] % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * 16).astype(np.uint8)
        Image.fromarray(pixels).resize((16, 16)).save(folder / f"{i}.png")
    installed.contraclust(
        "fit", "photos", "--method", "cc", "--clusters", "3", "--epochs", "1", "-q",
        "--out", "runs/photos",
    )  # fmt: skip
    run = installed.work / "runs" / "photos"
    _, fitted_images = _report_figures(run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = installed.contraclust("report", str(run), cwd=elsewhere)
    page, images = _report_figures(run)
    assert "without images" not in proc.stderr + page, proc.stderr
    assert images == fitted_images, (images, fitted_images)


def test_predict_assigns_new_rows_as_the_run_did(installed: Installed, deca_run: Path) -> None:
    from sklearn.datasets import load_digits

    n = 100
    images = (load_digits().images[:n] / 16.0).astype(np.float32)
    np.save(installed.work / "new.npy", images)
    proc = installed.contraclust("predict", "runs/deca", "new.npy", "--out", "new.csv", "-q")
    assert f"{n} samples" in proc.stdout, proc.stdout
    rows = _read_csv(installed.work / "new.csv")
    assert [int(r["index"]) for r in rows] == list(range(n))
    # the same images as rows 0..99 of the training data: the same clusters
    trained = _read_csv(deca_run / "assignments.csv")[:n]
    assert [r["cluster"] for r in rows] == [r["cluster"] for r in trained]
    assert len({r["cluster"] for r in rows}) == 10


def test_readme_python_example_runs_against_the_wheel(installed: Installed) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    code = blocks[0]
    fast = code.replace("random_state=0)", "random_state=0, epochs=3, device='cpu')")
    assert fast != code, "the example's Clusterer(...) call changed: update this test"
    check = (
        "\nimport json as _json\n"
        "_json.dump({'file': contraclust.__file__, 'labels': labels.tolist(),"
        " 'emb_rows': len(emb), 'again': again.predict(X[:10]).tolist(),"
        " 'metrics': {k: float(v) for k, v in contraclust.evaluate(y, labels).items()}},"
        " open('snippet.json', 'w'))\n"
    )
    script = installed.work / "readme_example.py"
    script.write_text(fast + check)
    proc = installed.run(installed.bin("python"), script.name)
    assert "acc" in proc.stdout, proc.stdout
    result = json.loads((installed.work / "snippet.json").read_text())
    assert Path(result["file"]).resolve().is_relative_to(installed.site_packages)
    assert len(result["labels"]) == result["emb_rows"] == N_DIGITS
    assert result["again"] == result["labels"][:10]
    assert result["metrics"]["acc"] > 0.3, result["metrics"]  # chance is about .1
    assert (installed.work / "digits.ckpt").is_file()
