"""The tutorials in docs/ run as written.

Every ```bash and ```python block of a page runs in order, in one fresh folder, with
this interpreter's `contraclust` on PATH. ```console blocks (GPU runs, large
downloads) are shown, not run. To keep CI short, each ``--epochs N`` becomes
``--epochs max(1, N // 20)`` and each ``--budget`` 15 seconds; the checks below then
look at what the page promised.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", flags=re.S | re.M)


def _fast(code: str) -> str:
    code = re.sub(r"--budget \S+", "--budget 15s", code)
    return re.sub(r"--epochs (\d+)", lambda m: f"--epochs {max(1, int(m.group(1)) // 20)}", code)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_image_folder(work: Path, output: str) -> None:
    rows = _rows(work / "runs/photos/assignments.csv")
    assert len(rows) == 1697
    assert rows[0]["path"].endswith(".png")
    assert {int(r["cluster"]) for r in rows} <= set(range(10))
    new = _rows(work / "new_assignments.csv")
    assert len(new) == 100
    assert "metrics    none: the data had no labels" in output
    assert 'id="cluster-9"' in (work / "runs/photos/report.html").read_text()
    # The resumed run went on past the first run's last epoch.
    history = _rows(work / "runs/photos/metrics.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert "plan: 1697 images 1x16x16, small_cnn, batch 128, 1 epoch (given), about" in output
    # Section 7: a run on cached features, then one that reuses them.
    assert len(_rows(work / "runs/features-12/assignments.csv")) == 1697
    assert "plan: 1697 vectors 256, mlp, batch 128" in output
    assert output.count("features: reusing cached") == 1


def _check_reproduce(work: Path, output: str) -> None:
    assert "deca/digits" in output  # listed by `contraclust presets`
    assert re.search(r"acc\s+0\.\d{4}", output)
    config = (work / "runs/deca-anchor/config.yaml").read_text()
    assert "anchor_weight: 0.5" in config


def _check_multi_gpu(work: Path, output: str) -> None:
    assert "devices: 2" in (work / "runs/ddp-check/config.yaml").read_text()
    assert len(_rows(work / "runs/ddp-check/assignments.csv")) == 1797
    # the two "nodes": one run, written once
    assert "num_nodes: 2" in (work / "runs/nodes-check/config.yaml").read_text()
    assert (work / "runs/nodes-check/train.log").read_text().count(" INFO run ") == 1
    assert len(_rows(work / "runs/nodes-check/assignments.csv")) == 1797


PAGES: dict[str, Callable[[Path, str], None]] = {
    "tutorial-image-folder.md": _check_image_folder,
    "tutorial-reproduce.md": _check_reproduce,
    "tutorial-multi-gpu.md": _check_multi_gpu,
}


def test_every_tutorial_is_tested() -> None:
    assert sorted(p.name for p in DOCS.glob("tutorial-*.md")) == sorted(PAGES)


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_tutorial_runs(page: str, tmp_path: Path) -> None:
    blocks = BLOCK.findall((DOCS / page).read_text())
    runnable = [(lang, code) for lang, code in blocks if lang in ("bash", "python")]
    assert runnable, f"{page} has no runnable block"
    assert {lang for lang, _ in blocks} <= {"bash", "python", "console", "text"}
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["CONTRACLUST_CACHE"] = str(tmp_path / "cache")  # features cached per test
    output = []
    for lang, code in runnable:
        argv = (
            ["bash", "-euo", "pipefail", "-c", _fast(code)]
            if lang == "bash"
            else [sys.executable, "-c", code]
        )
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{page}: block failed:\n{code}\n{done.stderr[-3000:]}"
        output.append(done.stdout + done.stderr)
    PAGES[page](tmp_path, "\n".join(output))


ROOT = DOCS.parent
#: The pages users read: they must stand alone, inside the repository.
LINKED_PAGES = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *DOCS.glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (lower case, punctuation dropped)."""
    text = BLOCK.sub("", page.read_text())
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    text = page.read_text()
    assert "../shared/docs" not in text, f"{page.name} points at the internal specification"
    for target in LINK.findall(BLOCK.sub("", text)):
        assert not re.match(r"[a-z]+:", target), f"{page.name}: external link {target}"
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        assert dest.exists(), f"{page.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading for #{anchor}"


def test_methods_page_covers_every_method() -> None:
    from contraclust.methods import get_method, method_names

    text = (DOCS / "methods.md").read_text()
    for name in method_names():
        if not get_method(name).__module__.startswith("contraclust."):
            continue  # a method a test module registered for itself
        assert f"--method {name}" in text or f"`{get_method(name).name}`" in text, name
