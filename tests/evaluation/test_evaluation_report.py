"""The report's rendering functions: arrays in, PNG bytes and HTML out."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contraclust.evaluation import cluster_accuracy
from contraclust.evaluation.report import (
    ReportContent,
    confident_indices,
    embed_2d,
    image_grid,
    matched_confusion,
    plot_k_search,
    plot_training_curves,
    render_html,
    subsample,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cluster_sections(page: str) -> list[str]:
    return re.findall(r'<section class="cluster[^"]*" id="cluster-(\d+)"', page)


def best_permutation_hits(true: np.ndarray, pred: np.ndarray, k: int) -> int:
    """Brute force: the most samples any one-to-one cluster -> class map gets right."""
    return max(
        sum(int(np.sum((pred == c) & (true == perm[c]))) for c in range(k))
        for perm in itertools.permutations(range(k))
    )


def test_matched_confusion_puts_the_hungarian_matching_on_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, size=300)
    relabel = np.array([2, 0, 3, 1])
    pred = relabel[true]
    noisy = rng.random(300) < 0.3
    pred[noisy] = rng.integers(0, 4, size=int(noisy.sum()))
    confusion = matched_confusion(true, pred, 4)
    assert confusion.classes == [0, 1, 2, 3]
    assert confusion.clusters == [2, 0, 3, 1]  # class i's cluster sits in column i
    diagonal = int(np.trace(confusion.matrix))
    assert diagonal == best_permutation_hits(true, pred, 4)
    assert confusion.accuracy == pytest.approx(cluster_accuracy(true, pred))
    assert confusion.matrix.sum() == 300


def test_matched_confusion_shows_every_cluster_and_class() -> None:
    # 3 classes, K = 5: cluster 4 is empty, cluster 3 takes some of class 0.
    true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([1, 1, 1, 3, 0, 0, 0, 2, 2, 2])
    confusion = matched_confusion(true, pred, 5)
    assert confusion.matrix.shape == (3, 5)
    assert confusion.clusters[:3] == [1, 0, 2] and sorted(confusion.clusters) == [0, 1, 2, 3, 4]
    assert confusion.matrix[:, confusion.clusters.index(4)].sum() == 0
    assert confusion.accuracy == pytest.approx(0.9)


def test_matched_confusion_with_fewer_clusters_than_classes() -> None:
    true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([1, 1, 0, 0, 0, 1, 1, 0])
    confusion = matched_confusion(true, pred, 2)
    assert confusion.n_matched == 2 and len(confusion.classes) == 4
    assert set(confusion.classes[2:]) | set(confusion.classes[:2]) == {0, 1, 2, 3}
    assert confusion.accuracy == pytest.approx(cluster_accuracy(true, pred))


def test_confident_indices_most_and_least_without_overlap() -> None:
    assignments = np.array([0, 1, 0, 0, 0, 1, 0])
    confidence = np.array([0.9, 0.5, 0.2, 0.7, 0.7, 0.8, 0.4])
    top, bottom = confident_indices(assignments, confidence, 0, n_top=3, n_bottom=2)
    assert top.tolist() == [0, 3, 4]  # the tie 3/4 is broken by index
    assert bottom.tolist() == [2, 6]  # least confident first, never one of `top`
    top, bottom = confident_indices(assignments, confidence, 0, n_top=16, n_bottom=8)
    assert len(top) == 5 and len(bottom) == 0
    empty = confident_indices(assignments, confidence, 2, n_top=3, n_bottom=2)
    assert all(len(part) == 0 for part in empty)


def test_subsample_is_bounded_sorted_and_seeded() -> None:
    assert subsample(5, 10).tolist() == [0, 1, 2, 3, 4]
    a, b = subsample(1000, 50, seed=1), subsample(1000, 50, seed=1)
    assert len(a) == 50 and len(set(a.tolist())) == 50
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0)


def test_image_grid_tiles_grey_and_colour() -> None:
    grey = np.full((5, 1, 8, 8), 200, dtype=np.uint8)
    png = image_grid(grey, columns=4)
    assert png.startswith(PNG_MAGIC)
    im = Image.open(io.BytesIO(png))
    assert im.mode == "L" and im.size == (4 * (48 + 2) + 2, 2 * (48 + 2) + 2)
    colour = np.zeros((3, 3, 200, 100), dtype=np.uint8)
    im = Image.open(io.BytesIO(image_grid(colour)))
    assert im.mode == "RGB" and im.size == (3 * (48 + 2) + 2, 96 + 4)
    with pytest.raises(ValueError):
        image_grid(np.zeros((2, 8), dtype=np.float32))


def test_training_curves_accept_csv_strings_and_gaps() -> None:
    history = [
        {"epoch": "1", "loss": "2.5", "instance": "1.5", "lr": "0.001", "acc": ""},
        {"epoch": "2", "loss": "2.0", "instance": "1.1", "lr": "0.001", "acc": "0.61"},
    ]
    assert plot_training_curves(history).startswith(PNG_MAGIC)
    assert plot_training_curves([]) is None
    assert plot_training_curves([{"epoch": "1", "lr": "0.1"}]) is None


def test_k_search_tolerates_missing_fields() -> None:
    full = {
        "chosen": 4,
        "reason": "highest score",
        "candidates": [
            {"k": 3, "stability": 0.8, "silhouette": 0.3, "score": 0.5},
            {"k": 4, "stability": 0.9, "silhouette": 0.4, "score": 0.7},
        ],
    }
    assert plot_k_search(full).startswith(PNG_MAGIC)
    partial = {"candidates": [{"k": 2, "score": 0.1}, {"k": 5}, "junk", {"score": 1}]}
    assert plot_k_search(partial).startswith(PNG_MAGIC)
    assert plot_k_search({}) is None
    assert plot_k_search({"chosen": 3, "candidates": [{"k": 3}]}) is None


def test_embed_2d_gives_finite_points() -> None:
    x = np.random.default_rng(0).normal(size=(30, 80))  # fewer rows than PCA components
    points, how = embed_2d(x)
    assert points.shape == (30, 2) and np.isfinite(points).all()
    assert how in ("UMAP", "t-SNE")
    with pytest.raises(ValueError):
        embed_2d(x[:3])


def labelled_content(**kw) -> ReportContent:
    rng = np.random.default_rng(0)
    n = 60
    true = rng.integers(0, 3, size=n)
    base = dict(
        n_clusters=5,  # clusters 3 and 4 stay empty
        assignments=true.copy(),
        confidence=rng.random(n),
        true_labels=true,
        class_names=["a", "b", "c"],
        images=rng.integers(0, 255, size=(n, 1, 8, 8), dtype=np.uint8),
        embedding=rng.normal(size=(n, 4)),
        embedding_index=np.arange(n),
        history=[{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}],
        metrics={"acc": 1.0, "nmi": 1.0},
    )
    base.update(kw)
    return ReportContent(**base)


def test_one_section_per_cluster_including_empty_ones() -> None:
    page, files = render_html(labelled_content())
    assert cluster_sections(page) == ["0", "1", "2", "3", "4"]
    assert page.count('class="cluster empty"') == 2
    assert {"sizes.png", "map.png", "training.png", "confusion.png"} <= set(files)
    assert "cluster-0-confident.png" in files and "cluster-3-confident.png" not in files
    assert all(data.startswith(PNG_MAGIC) for data in files.values())
    # Every figure is embedded, so the page alone is complete.
    assert page.count("data:image/png;base64,") == len(files)
    assert "http://" not in page and "https://" not in page


def test_user_text_is_escaped() -> None:
    evil = "<script>alert('x')</script>"
    n = 12
    content = ReportContent(
        n_clusters=2,
        assignments=np.arange(n) % 2,
        confidence=np.linspace(0.5, 1.0, n),
        paths=[f"/data/{evil}{i}.png" for i in range(n)],
        skipped_files=[f"/data/{evil}.jpg"],
        k_search={"chosen": 2, "reason": f"because {evil}", "candidates": []},
        title=f"run {evil}",
        facts={"run directory": f"/runs/{evil}"},
        notes=[f"note {evil}"],
    )
    page, _ = render_html(content)
    assert "alert(" in page  # the text is shown ...
    assert "<script>alert" not in page  # ... but never as markup
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # only the page's own image check


def test_vector_data_shows_rows_instead_of_images() -> None:
    vectors = np.arange(60 * 9, dtype=np.float32).reshape(60, 9)
    content = labelled_content(images=None, vectors=vectors, paths=[f"row-{i}" for i in range(60)])
    page, files = render_html(content)
    assert not any(name.startswith("cluster-") for name in files)
    assert "most confident rows" in page and "<th>x[5]</th><th>...</th>" in page
    assert len(cluster_sections(page)) == 5
    top, _ = confident_indices(content.assignments, content.confidence, 0, 16, 8)
    i = int(top[0])
    row = f"<tr><td>{i}</td><td>{content.confidence[i]:.3f}</td><td><code>row-{i}</code></td>"
    row += "".join(f"<td>{9 * i + j:.3g}</td>" for j in range(6)) + "<td></td></tr>"
    assert row in page.split('id="cluster-0"')[1].split("</section>")[0]


def test_unlabelled_data_have_no_metrics_section_content() -> None:
    page, files = render_html(labelled_content(true_labels=None, metrics=None))
    assert "confusion.png" not in files and "no labels" in page


def test_write_report_writes_pngs_and_removes_only_its_stale_ones(tmp_path: Path) -> None:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "cluster-9-confident.png").write_bytes(b"old")  # from an earlier K
    (folder / "mine.png").write_bytes(b"user")
    path = write_report(tmp_path, labelled_content())
    assert path == tmp_path / "report.html" and path.read_text().startswith("<!DOCTYPE html>")
    assert not (folder / "cluster-9-confident.png").exists()
    assert (folder / "mine.png").read_bytes() == b"user"
    assert (folder / "sizes.png").read_bytes().startswith(PNG_MAGIC)
