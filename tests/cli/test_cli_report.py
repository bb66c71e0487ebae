"""The run report end to end: written by `fit`, rebuilt by `report`, shown by a browser.

The browser test opens report.html from disk in headless Chromium (Debian's
`chromium` package, installed by `make test`) and reads what the page's own check
wrote into the DOM after load: how many images decoded and how many did not.
A missing browser fails the test: in CI it would otherwise hide a broken set-up.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contraclust.cli import main

CHROMIUM = "chromium"
# k-means needs no training, which keeps this fast; the training curves of a trained
# method are checked in tests/training/test_training_report.py.
FIT_DIGITS = ["fit", "digits", "--method", "kmeans", "--device", "cpu", "--quiet"]


def cluster_sections(page: str) -> list[str]:
    return re.findall(r'<section class="cluster[^"]*" id="cluster-(\d+)"', page)


def browser_dom(page: Path) -> str:
    """The DOM of ``page`` after load, as headless Chromium serialises it."""
    binary = shutil.which(CHROMIUM)
    assert binary, (
        "chromium is not installed (apt-get install -y chromium); `make test` installs it"
    )
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def image_check(dom: str) -> tuple[int, int]:
    found = re.search(r'id="image-check" data-loaded="(\d+)" data-broken="(\d+)"', dom)
    assert found, "the page's image check did not run"
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    assert main([*FIT_DIGITS, "--out", str(out)]) == 0
    return out


def test_fit_writes_report_that_a_browser_shows(digits_run: Path, tmp_path: Path) -> None:
    page = digits_run / "report.html"
    html = page.read_text()
    n_images = html.count("<img ")
    assert n_images == 3 + 2 * 10  # sizes, map, confusion, and two grids per cluster
    dom = browser_dom(page)
    assert image_check(dom) == (n_images, 0)
    assert cluster_sections(dom) == [str(k) for k in range(10)]
    pngs = {p.name for p in (digits_run / "report").glob("*.png")}
    assert {"sizes.png", "map.png", "confusion.png", "cluster-9-least.png"} <= pngs
    # The check can fail: a page with one damaged image reports it.
    broken = tmp_path / "broken.html"
    broken.write_text(html.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    assert image_check(browser_dom(broken)) == (n_images - 1, 1)


def test_report_verb_rebuilds_it(digits_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "copy"
    shutil.copytree(digits_run, run)
    (run / "report.html").unlink()
    k_search = {
        "chosen": 10,
        "reason": "best score <stability & silhouette>",
        "candidates": [{"k": 8, "score": 0.4}, {"k": 10, "stability": 0.9, "score": 0.6}],
    }
    (run / "k_search.json").write_text(json.dumps(k_search))
    assert main(["report", str(run), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines() == [f"report written to {run / 'report.html'}"]
    assert captured.err == ""
    html = (run / "report.html").read_text()
    assert len(cluster_sections(html)) == 10
    assert "best score &lt;stability &amp; silhouette&gt;" in html
    assert (run / "report" / "k-search.png").is_file()
    # The assignments are the run's own, not a new prediction.
    summary = json.loads((run / "metrics.json").read_text())
    for k, size in enumerate(summary["cluster_sizes"]):
        section = html.split(f'id="cluster-{k}"')[1].split("</section>")[0]
        assert (f"{size} samples" in section) if size else ("empty" in section)


def write_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 210)):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(level + rng.integers(-20, 20, size=(8, 8)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / name / f"{i}.png")
    (root / "dark" / "<b>broken.png").write_bytes(b"not an image")


@pytest.mark.parametrize("stream", ["off", "on"])
def test_report_of_a_folder_run_and_after_its_data_are_gone(
    stream: str, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "photos"
    write_folder(folder)
    out = tmp_path / "run"
    argv = ["fit", str(folder), "--method", "kmeans", "--clusters", "2", "--skip-bad-images"]
    argv += ["--stream", stream]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    html = (out / "report.html").read_text()
    assert "&lt;b&gt;broken.png" in html and "<b>broken" not in html
    assert len(cluster_sections(html)) == 2
    assert "<img " in html.split('id="cluster-0"')[1].split("</section>")[0]
    assert (out / "report" / "cluster-0-confident.png").is_file()
    grid = (out / "report" / "cluster-0-confident.png").read_bytes()
    capsys.readouterr()

    assert main(["report", str(out)]) == 0  # the data are still there: the same grids
    assert capsys.readouterr().err == ""
    assert (out / "report" / "cluster-0-confident.png").read_bytes() == grid

    with_images = (out / "report.html").read_text()
    folder.rename(tmp_path / "moved")
    assert main(["report", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2 and "warning: report without images" in warnings[0]
    assert str(folder) in warnings[0]
    assert "is kept" in warnings[1] and "report-without-data.html" in warnings[1]
    beside = out / "report-without-data.html"
    assert captured.out.strip() == f"report written to {beside}"
    html = beside.read_text()
    assert "report without images" in html and len(cluster_sections(html)) == 2
    assert "confusion matrix" in html  # the labels come from assignments.csv
    # The report that shows the images is never replaced by one that shows less.
    assert (out / "report.html").read_text() == with_images
    assert (out / "report" / "cluster-0-confident.png").read_bytes() == grid


def test_no_report_flag(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["fit", "digits", "--method", "kmeans", "--no-report", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "model.ckpt").is_file() and not (out / "report.html").exists()


def test_report_of_a_directory_without_run(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no finished run" in err and len(err.strip().splitlines()) == 1
