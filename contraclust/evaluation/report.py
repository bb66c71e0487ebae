"""The run report: PNG figures and one HTML page, rendered from plain arrays.

Everything here takes arrays and dictionaries and returns PNG bytes or HTML text;
loading a run (model, data, run files) is the training layer's job
(:mod:`contraclust.training.report`), so this module imports no training code.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas
directly rather than through ``pyplot``: no global backend is switched and no
window can open, so rendering works the same in a terminal, a notebook or CI.
Image grids are tiled with Pillow, which keeps small images (8x8 digits) crisp.

The page embeds every figure as a ``data:`` URI, so ``report.html`` alone opens
from disk anywhere; the same PNGs are also written next to it for slides and
documents. All text that comes from the user (file paths, class names, the reason
of a K search) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from contraclust.evaluation.metrics import hungarian_mapping
from contraclust.utils import atomic_write_bytes, atomic_write_text

__all__ = [
    "METRIC_COLUMNS",
    "ImageSource",
    "MatchedConfusion",
    "ReportContent",
    "confident_indices",
    "embed_2d",
    "image_grid",
    "matched_confusion",
    "plot_cluster_sizes",
    "plot_confusion",
    "plot_embedding_map",
    "plot_k_search",
    "plot_training_curves",
    "render_html",
    "subsample",
    "write_report",
]

REPORT_HTML = "report.html"
REPORT_DIR = "report"
#: Columns of metrics.csv that are scores, not losses.
METRIC_COLUMNS = ("acc", "acc_many_to_one", "nmi", "ari", "ami")
#: Columns of metrics.csv that are neither (bookkeeping).
_OTHER_COLUMNS = ("epoch", "lr", "seconds")
#: Fewer points than this make no meaningful 2-D map.
_MIN_MAP_POINTS = 10
#: Skipped files listed in full on the page; the rest are counted.
_MAX_LISTED_SKIPPED = 200
_DPI = 100


class ImageSource(Protocol):
    """Images by index: ``source[indices]`` gives ``uint8`` ``(n, C, H, W)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: NDArray[np.int64]) -> NDArray[np.uint8]: ...


@dataclass
class ReportContent:
    """What the report shows. Only ``n_clusters``, ``assignments`` and ``confidence``
    are required; every other part is drawn when present and explained when absent.

    Args:
        title: heading of the page (the run directory's name, usually).
        n_clusters: K; every cluster gets a section, empty ones included.
        assignments: ``(N,)`` cluster of each sample.
        confidence: ``(N,)`` probability of the assigned cluster.
        true_labels: ``(N,)`` class index of each sample, when labels exist.
        class_names: name of each class index.
        images: ``uint8`` ``(N, C, H, W)`` images for the grids (None for vectors or
            when the data could not be loaded), or any :class:`ImageSource` (a set
            decoded on demand): only the images the grids show are read.
        paths: source file of each sample.
        vectors: ``(N, D)`` feature vectors; their leading values are shown in the
            table of each cluster's most confident rows (vector data have no grids).
        embedding: ``(M, d)`` embedding of the samples ``embedding_index`` (a
            subsample; see :func:`subsample`).
        history: rows of ``metrics.csv`` (epoch, losses, lr, seconds, scores).
        metrics: the final scores (``acc``, ``nmi``, ...), when labels exist.
        skipped_files: files that could not be decoded and were skipped.
        k_search: the contents of ``k_search.json`` (``--clusters auto``).
        facts: short key/value lines shown under the title (method, data, ...).
        notes: warnings shown at the top (for example, why images are missing).
    """

    n_clusters: int
    assignments: NDArray[np.int64]
    confidence: NDArray[np.floating]
    title: str = "contraclust run"
    true_labels: NDArray[np.int64] | None = None
    class_names: Sequence[str] | None = None
    images: ImageSource | None = None
    paths: Sequence[str] | None = None
    vectors: NDArray[np.floating] | None = None
    embedding: NDArray[np.floating] | None = None
    embedding_index: NDArray[np.int64] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: Mapping[str, Any] | None = None
    skipped_files: Sequence[str] = ()
    k_search: Mapping[str, Any] | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_top: int = 16
    n_bottom: int = 8
    seed: int = 0


# ---------------------------------------------------------------- selection
def subsample(n: int, max_points: int, seed: int = 0) -> NDArray[np.int64]:
    """Sorted indices of at most ``max_points`` of ``n`` samples, drawn without
    replacement with a fixed seed, so that a rebuilt report shows the same map."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False)).astype(np.int64)


def confident_indices(
    assignments: NDArray[np.int64],
    confidence: NDArray[np.floating],
    cluster: int,
    n_top: int,
    n_bottom: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The ``n_top`` most and ``n_bottom`` least confident members of ``cluster``.

    The two sets never overlap: a cluster of 20 members with 16 + 8 requested gives
    its 16 most confident and the remaining 4, so a sample is never shown twice.
    Ties are broken by sample index, so the choice is deterministic.
    """
    members = np.flatnonzero(np.asarray(assignments) == cluster)
    if members.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    conf = np.asarray(confidence, dtype=np.float64)[members]
    order = members[np.lexsort((members, -conf))]  # most confident first
    top = order[:n_top]
    rest = order[len(top) :]
    bottom = rest[::-1][:n_bottom] if n_bottom > 0 else rest[:0]
    return top.astype(np.int64), bottom.astype(np.int64)


class MatchedConfusion(NamedTuple):
    """A confusion matrix laid out along the Hungarian matching (see
    :func:`matched_confusion`)."""

    matrix: NDArray[np.int64]  # rows: classes, columns: clusters
    classes: list[int]  # class id of each row
    clusters: list[int]  # cluster id of each column
    n_matched: int  # the first n_matched rows and columns are the matched pairs

    @property
    def accuracy(self) -> float:
        """ACC: the share of samples on the matched diagonal."""
        total = int(self.matrix.sum())
        diagonal = int(np.trace(self.matrix[: self.n_matched, : self.n_matched]))
        return diagonal / total if total else 0.0


def matched_confusion(
    true_labels: NDArray[np.int64], assignments: NDArray[np.int64], n_clusters: int
) -> MatchedConfusion:
    """Class x cluster counts, ordered so that the Hungarian matching is the diagonal.

    The matching is :func:`~contraclust.evaluation.metrics.hungarian_mapping` (the
    one ACC uses). Rows: the matched classes in id order, then classes left without
    a cluster. Columns: the cluster matched to each of those rows, then the clusters
    left without a class (surplus or empty ones), so all ``n_clusters`` columns are
    shown. The diagonal of the first ``n_matched`` rows thus holds the correctly
    assigned samples, and its share of the total is ACC.
    """
    true = np.asarray(true_labels, dtype=np.int64)
    pred = np.asarray(assignments, dtype=np.int64)
    cluster_to_class = hungarian_mapping(true, pred)
    class_to_cluster = {c: k for k, c in cluster_to_class.items()}
    matched = sorted(class_to_cluster)
    classes = matched + [int(c) for c in np.unique(true) if int(c) not in class_to_cluster]
    clusters = [class_to_cluster[c] for c in matched]
    clusters += [k for k in range(n_clusters) if k not in cluster_to_class]
    row_of = {c: i for i, c in enumerate(classes)}
    col_of = {k: j for j, k in enumerate(clusters)}
    matrix = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    np.add.at(matrix, ([row_of[c] for c in true.tolist()], [col_of[k] for k in pred.tolist()]), 1)
    return MatchedConfusion(matrix, classes, clusters, len(matched))


# ---------------------------------------------------------------- 2-D map
def embed_2d(x: NDArray[np.floating], seed: int = 0) -> tuple[NDArray[np.float64], str]:
    """Project ``x`` to two dimensions: UMAP when umap-learn is installed, t-SNE
    otherwise. Returns the points and the name of the projection used.

    Wide embeddings are first reduced to 50 principal components, which keeps t-SNE
    fast and changes the map little.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < _MIN_MAP_POINTS:
        raise ValueError(f"need at least {_MIN_MAP_POINTS} rows of a 2-D array, got {x.shape}")
    if x.shape[1] > 50:
        from sklearn.decomposition import PCA

        x = PCA(min(50, len(x)), random_state=seed).fit_transform(x)
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        umap = None
    if umap is not None:
        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(x) - 1))
        return np.asarray(reducer.fit_transform(x), dtype=np.float64), "UMAP"
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(x) - 1) / 3.0))
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=400, angle=0.8)
    return np.asarray(tsne.fit_transform(x), dtype=np.float64), "t-SNE"


# ---------------------------------------------------------------- figures
def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _cluster_colours(n_clusters: int) -> Any:
    from matplotlib import colormaps

    if n_clusters <= 10:
        return colormaps["tab10"].colors[:n_clusters]
    if n_clusters <= 20:
        return colormaps["tab20"].colors[:n_clusters]
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_clusters))


def plot_cluster_sizes(sizes: Sequence[int]) -> bytes:
    """Bar chart of the number of samples per cluster (empty clusters show as gaps)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    k = len(sizes)
    fig = _figure(max(4.0, min(16.0, 0.35 * k + 2)), 3.0)
    ax = fig.add_subplot()
    ax.bar(np.arange(k), sizes, color=_cluster_colours(k))
    if k:
        mean = sizes.sum() / k
        ax.axhline(mean, color="0.4", lw=0.8, ls="--", label=f"uniform ({mean:.0f})")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_xlabel("cluster")
    ax.set_ylabel("samples")
    if k <= 40:
        ax.set_xticks(np.arange(k))
    ax.set_title("cluster sizes")
    return _png(fig)


def image_grid(images: NDArray[np.uint8], columns: int = 8, tile: int | None = None) -> bytes:
    """Tile ``uint8`` images ``(n, C, H, W)`` (C = 1 or 3) into one PNG.

    Small images are enlarged with nearest-neighbour sampling (to about 48 pixels)
    and large ones reduced (to at most 96) so that grids of any data set read alike.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (n, 1|3, H, W), got {images.dtype} {images.shape}")
    n, c, h, w = images.shape
    if n == 0:
        raise ValueError("no images to tile")
    if tile is None:
        side = max(h, w)
        tile = side * math.ceil(48 / side) if side < 48 else min(side, 96)
    scale = tile / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    pad = 2
    mode = "L" if c == 1 else "RGB"
    sheet = Image.new(mode, (columns * (tw + pad) + pad, rows * (th + pad) + pad), color=255)
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    for i in range(n):
        arr = images[i, 0] if c == 1 else np.transpose(images[i], (1, 2, 0))
        im = Image.fromarray(np.ascontiguousarray(arr), mode=mode).resize((tw, th), resample)
        r, col = divmod(i, columns)
        sheet.paste(im, (pad + col * (tw + pad), pad + r * (th + pad)))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def plot_embedding_map(
    points: NDArray[np.floating], assignments: NDArray[np.int64], n_clusters: int, title: str
) -> bytes:
    """Scatter of 2-D points coloured by cluster, each cluster's id at its median."""
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(assignments, dtype=np.int64)
    colours = np.asarray(_cluster_colours(n_clusters))
    fig = _figure(6.5, 6.0)
    ax = fig.add_subplot()
    size = 12.0 if len(points) <= 1000 else 6.0
    ax.scatter(points[:, 0], points[:, 1], c=colours[labels], s=size, linewidths=0, alpha=0.8)
    if n_clusters <= 60:
        for k in np.unique(labels):
            cx, cy = np.median(points[labels == k], axis=0)
            ax.annotate(
                str(k),
                (cx, cy),
                ha="center",
                va="center",
                fontsize=9,
                weight="bold",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return _png(fig)


def _column(history: Sequence[Mapping[str, Any]], key: str) -> NDArray[np.float64]:
    values = []
    for row in history:
        try:
            values.append(float(row.get(key, "nan")))
        except (TypeError, ValueError):
            values.append(float("nan"))
    return np.asarray(values, dtype=np.float64)


def plot_training_curves(history: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Losses per epoch (one panel) and scores per epoch (a second panel, when the
    run recorded any); None when there is no numeric history to draw."""
    if not history:
        return None
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    epochs = _column(history, "epoch")
    if np.isnan(epochs).all():
        epochs = np.arange(1, len(history) + 1, dtype=np.float64)
    curves = {k: _column(history, k) for k in keys if k not in _OTHER_COLUMNS}
    curves = {k: v for k, v in curves.items() if not np.isnan(v).all()}
    losses = {k: v for k, v in curves.items() if k not in METRIC_COLUMNS}
    scores = {k: v for k, v in curves.items() if k in METRIC_COLUMNS}
    if not losses and not scores:
        return None
    from matplotlib.ticker import MaxNLocator

    panels = [p for p in ((losses, "loss"), (scores, "score")) if p[0]]
    fig = _figure(5.0 * len(panels), 3.4)
    marker = "o" if len(history) <= 30 else None
    for i, (series, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, values in series.items():
            ok = ~np.isnan(values)
            ax.plot(epochs[ok], values[ok], marker=marker, ms=3, label=name)
        ax.set_xlabel("epoch")
        if len(history) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    return _png(fig)


def plot_confusion(
    matrix: NDArray[np.int64], row_names: Sequence[str], columns: Sequence[int]
) -> bytes:
    """Heat map of a :func:`matched_confusion` matrix, counts written in small ones."""
    matrix = np.asarray(matrix)
    n_rows, n_cols = matrix.shape
    fig = _figure(max(4.0, min(18.0, 0.45 * n_cols + 2.5)), max(3.5, min(18.0, 0.4 * n_rows + 2)))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.04)
    if n_cols <= 40:
        ax.set_xticks(np.arange(n_cols), [str(c) for c in columns], fontsize=8)
    if n_rows <= 40:
        ax.set_yticks(np.arange(n_rows), [str(r) for r in row_names], fontsize=8)
    if n_rows * n_cols <= 400:
        top = matrix.max() if matrix.size else 0
        for (i, j), v in np.ndenumerate(matrix):
            if v:
                colour = "white" if v > 0.6 * top else "black"
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("cluster")
    ax.set_ylabel("class")
    return _png(fig)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def plot_k_search(k_search: Mapping[str, Any]) -> bytes | None:
    """The K-search curve: score, stability and silhouette per candidate K, with the
    chosen K marked. Missing fields are left out; None when nothing can be drawn."""
    candidates = [c for c in k_search.get("candidates") or [] if isinstance(c, Mapping)]
    ks = np.asarray([_as_float(c.get("k")) for c in candidates])
    if not candidates or np.isnan(ks).all():
        return None
    order = np.argsort(ks)
    fig = _figure(5.5, 3.4)
    ax = fig.add_subplot()
    drawn = False
    for key in ("score", "stability", "silhouette"):
        values = np.asarray([_as_float(c.get(key)) for c in candidates])[order]
        ok = ~np.isnan(values) & ~np.isnan(ks[order])
        if ok.any():
            ax.plot(ks[order][ok], values[ok], marker="o", ms=4, label=key)
            drawn = True
    if not drawn:
        return None
    chosen = _as_float(k_search.get("chosen"))
    if not math.isnan(chosen):
        ax.axvline(chosen, color="0.3", ls="--", lw=1, label=f"chosen K = {chosen:g}")
    ax.set_xlabel("K")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title("choice of K")
    return _png(fig)


# ---------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:2px 8px}
th{background:#f4f4f4;text-align:left} .facts td:first-child{color:#666}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
section.cluster{border:1px solid #e4e4e4;border-radius:6px;padding:.2em 1em 1em;margin:1em 0}
section.cluster.empty{color:#888} figure{margin:.5em 0} figcaption{font-size:.85em;color:#555}
img{max-width:100%} code{font-size:.85em;word-break:break-all} .muted{color:#777}
nav a{margin-right:.6em}
"""

# Counts the images that decoded, so that a broken page says so (and a headless
# browser test can read the result from the DOM).
_IMAGE_CHECK = """
<script>
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  var out = document.getElementById("image-check");
  out.setAttribute("data-loaded", String(loaded));
  out.setAttribute("data-broken", String(images.length - loaded));
  out.textContent = loaded + " of " + images.length + " figures shown";
});
</script>
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _figure_html(data: bytes | None, alt: str, caption: str = "") -> str:
    if data is None:
        return ""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f"<figure>{_img(data, alt)}{cap}</figure>"


def _fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


#: Leading features of a vector shown in the rows table.
_SHOWN_FEATURES = 6


def _rows_table(
    indices: NDArray[np.int64],
    confidence: NDArray[np.floating],
    paths: Sequence[str] | None,
    vectors: NDArray[np.floating] | None = None,
) -> str:
    head = ["index", "confidence"] + (["file"] if paths else [])
    if vectors is not None:
        width = vectors.shape[1]
        head += [f"x[{j}]" for j in range(min(width, _SHOWN_FEATURES))]
        head += ["..."] if width > _SHOWN_FEATURES else []
    body = []
    for i in indices.tolist():
        cells = [str(i), f"{float(confidence[i]):.3f}"]
        if paths:
            cells.append(f"<code>{_e(paths[i])}</code>")
        if vectors is not None:
            cells += [f"{float(v):.3g}" for v in vectors[i, :_SHOWN_FEATURES]]
            cells += [""] if vectors.shape[1] > _SHOWN_FEATURES else []
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return f"<table>{header}{''.join(body)}</table>"


@dataclass
class _Rendered:
    """Figures of one report: file name -> PNG bytes, in page order."""

    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, data: bytes | None) -> bytes | None:
        if data is not None:
            self.files[name] = data
        return data


def _cluster_section(
    content: ReportContent, k: int, sizes: NDArray[np.int64], figures: _Rendered
) -> str:
    n = len(content.assignments)
    size = int(sizes[k])
    if size == 0:
        return (
            f'<section class="cluster empty" id="cluster-{k}"><h3>Cluster {k}: empty</h3>'
            "<p>No sample was assigned to this cluster.</p></section>"
        )
    members = content.assignments == k
    lines = [
        f"{size} samples ({100.0 * size / n:.1f}%), mean confidence "
        f"{float(np.mean(content.confidence[members])):.3f}"
    ]
    if content.true_labels is not None:
        counts = np.bincount(content.true_labels[members])
        top = int(counts.argmax())
        name = _class_name(content.class_names, top)
        lines.append(f"mostly class {name} ({100.0 * counts[top] / size:.0f}%)")
    parts = [
        f'<section class="cluster" id="cluster-{k}"><h3>Cluster {k}</h3>',
        f"<p>{_e('; '.join(lines))}</p>",
    ]
    top_idx, bottom_idx = confident_indices(
        content.assignments, content.confidence, k, content.n_top, content.n_bottom
    )
    if content.images is not None:
        for chosen, which, caption in (
            (top_idx, "confident", f"{len(top_idx)} most confident"),
            (bottom_idx, "least", f"{len(bottom_idx)} least confident"),
        ):
            if len(chosen):
                grid = image_grid(np.asarray(content.images[chosen]))
                figures.add(f"cluster-{k}-{which}.png", grid)
                parts.append(_figure_html(grid, f"cluster {k}: {caption}", caption))
        if content.paths:
            parts.append(
                "<details><summary>files of the most confident samples</summary>"
                + _rows_table(top_idx, content.confidence, content.paths)
                + "</details>"
            )
    else:
        parts.append(
            "<details open><summary>most confident rows</summary>"
            + _rows_table(top_idx, content.confidence, content.paths, content.vectors)
            + "</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _class_label(class_names: Sequence[str] | None, index: int) -> str:
    if class_names and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


def _class_name(class_names: Sequence[str] | None, index: int) -> str:
    """The class for a sentence: its name quoted, or its index."""
    if class_names and 0 <= index < len(class_names):
        return f"'{class_names[index]}'"
    return str(index)


_METRIC_NAMES = {
    "acc": "ACC (one-to-one matching)",
    "acc_many_to_one": "ACC (many-to-one)",
    "nmi": "NMI",
    "ari": "ARI",
    "ami": "AMI",
    "n_clusters": "non-empty clusters",
    "n_classes": "classes",
}


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(_METRIC_NAMES.get(key, key))}</th><td>{_e(_fmt_number(value))}</td></tr>"
        for key, value in metrics.items()
        if isinstance(value, (int, float))
    )
    return f"<table>{rows}</table>"


def render_html(content: ReportContent) -> tuple[str, dict[str, bytes]]:
    """The report page and its figures (file name -> PNG bytes).

    One ``<section class="cluster">`` per cluster, empty clusters included.
    """
    assignments = np.asarray(content.assignments, dtype=np.int64)
    content = replace(
        content,
        assignments=assignments,
        confidence=np.asarray(content.confidence, dtype=np.float64),
        true_labels=None
        if content.true_labels is None
        else np.asarray(content.true_labels, dtype=np.int64),
    )
    k_total = int(content.n_clusters)
    if assignments.size and (assignments.min() < 0 or assignments.max() >= k_total):
        raise ValueError(f"cluster ids must lie in [0, {k_total}), got {assignments.max()}")
    sizes = np.bincount(assignments, minlength=k_total)
    figures = _Rendered()
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(content.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(content.title)}</h1>",
    ]
    facts = dict(content.facts)
    facts.setdefault("report written", time.strftime("%Y-%m-%d %H:%M:%S"))
    out.append(
        "<table class='facts'>"
        + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in facts.items())
        + "</table>"
    )
    out.extend(f"<p class='note'>{_e(note)}</p>" for note in content.notes)
    nav = ["sizes", "map", "training", "metrics", "skipped", "clusters"]
    if content.k_search is not None:
        nav.insert(4, "k-search")
    out.append("<nav>" + "".join(f"<a href='#{s}'>{s}</a>" for s in nav) + "</nav>")

    out.append("<h2 id='sizes'>Cluster sizes</h2>")
    out.append(_figure_html(figures.add("sizes.png", plot_cluster_sizes(sizes)), "cluster sizes"))
    empty = np.flatnonzero(sizes == 0).tolist()
    if empty:
        out.append(f"<p class='note'>{len(empty)} empty cluster(s): {_e(empty)}</p>")

    out.append("<h2 id='map'>Map of the embedding</h2>")
    out.append(_map_html(content, figures))

    out.append("<h2 id='training'>Training curves</h2>")
    curves = figures.add("training.png", plot_training_curves(content.history))
    out.append(
        _figure_html(curves, "training curves")
        if curves
        else "<p class='muted'>No training history (the method trains no network, or "
        "metrics.csv is missing).</p>"
    )

    out.append("<h2 id='metrics'>Metrics</h2>")
    out.append(_labels_html(content, figures))

    if content.k_search is not None:
        out.append("<h2 id='k-search'>Choice of K</h2>")
        out.append(_k_search_html(content.k_search, figures))

    out.append("<h2 id='skipped'>Skipped files</h2>")
    out.append(_skipped_html(content.skipped_files))

    out.append(f"<h2 id='clusters'>Clusters ({k_total})</h2>")
    out.extend(_cluster_section(content, k, sizes, figures) for k in range(k_total))
    out.append("<p class='muted' id='image-check'>figures not checked (scripts are off)</p>")
    out.append(_IMAGE_CHECK)
    out.append("</body></html>")
    return "\n".join(out), figures.files


def _map_html(content: ReportContent, figures: _Rendered) -> str:
    if content.embedding is None or content.embedding_index is None:
        return "<p class='muted'>No map: the embedding could not be computed for this report.</p>"
    index = np.asarray(content.embedding_index, dtype=np.int64)
    if len(index) < _MIN_MAP_POINTS:
        return f"<p class='muted'>No map: fewer than {_MIN_MAP_POINTS} samples.</p>"
    points, how = embed_2d(content.embedding, seed=content.seed)
    title = f"{how} of the embedding ({len(index)} of {len(content.assignments)} samples)"
    data = plot_embedding_map(points, content.assignments[index], content.n_clusters, title)
    return _figure_html(figures.add("map.png", data), title, f"coloured by cluster; {how}")


def _labels_html(content: ReportContent, figures: _Rendered) -> str:
    if content.true_labels is None:
        return "<p class='muted'>The data have no labels: no metrics.</p>"
    parts = []
    if content.metrics:
        parts.append(_metrics_html(content.metrics))
    confusion = matched_confusion(content.true_labels, content.assignments, content.n_clusters)
    names = [_class_label(content.class_names, c) for c in confusion.classes]
    data = figures.add("confusion.png", plot_confusion(confusion.matrix, names, confusion.clusters))
    parts.append(
        _figure_html(
            data,
            "confusion matrix",
            "confusion matrix after Hungarian matching: each matched class and its cluster "
            f"on the diagonal (its share of all samples is ACC, {confusion.accuracy:.4f})",
        )
    )
    return "".join(parts)


def _k_search_html(k_search: Mapping[str, Any], figures: _Rendered) -> str:
    parts = []
    chosen = k_search.get("chosen")
    if chosen is not None:
        parts.append(f"<p>Chosen K: <b>{_e(chosen)}</b></p>")
    reason = k_search.get("reason")
    if reason:
        parts.append(f"<p>{_e(reason)}</p>")
    data = figures.add("k-search.png", plot_k_search(k_search))
    parts.append(
        _figure_html(data, "K search curve")
        if data
        else "<p class='muted'>k_search.json holds no candidates to draw.</p>"
    )
    return "".join(parts)


def _skipped_html(skipped: Sequence[str]) -> str:
    if not skipped:
        return "<p class='muted'>None: every file was read.</p>"
    items = "".join(f"<li><code>{_e(p)}</code></li>" for p in skipped[:_MAX_LISTED_SKIPPED])
    more = len(skipped) - _MAX_LISTED_SKIPPED
    tail = f"<p>... and {more} more (all in metrics.json)</p>" if more > 0 else ""
    return (
        f"<p>{len(skipped)} file(s) could not be decoded and were skipped:</p>"
        f"<ul>{items}</ul>{tail}"
    )


_OUR_PNG = re.compile(
    r"^(sizes|map|training|confusion|k-search|cluster-\d+-(confident|least))\.png$"
)


def write_report(
    run_dir: str | Path,
    content: ReportContent,
    name: str = REPORT_HTML,
    beside: str | None = None,
) -> Path:
    """Write ``run_dir/report.html`` (or ``name``) and its figures as PNGs in
    ``run_dir/report/``.

    With ``beside``, a page that would show fewer images than the one already at
    ``name`` does not replace it: the self-contained page goes to ``run_dir/beside``
    instead (its figures are not written), and that path is returned. Figures of an
    earlier report that this one no longer draws (a cluster that no longer exists)
    are removed; other files in ``report/`` are left alone.
    """
    run_dir = Path(run_dir)
    page, files = render_html(content)
    existing = run_dir / name
    if (
        beside is not None
        and existing.is_file()
        and page.count("<img") < existing.read_text(encoding="utf-8").count("<img")
    ):
        path = run_dir / beside
        atomic_write_text(path, page)
        return path
    folder = run_dir / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file() and _OUR_PNG.match(stale.name) and stale.name not in files:
            stale.unlink()
    for figure, data in files.items():
        atomic_write_bytes(folder / figure, data)
    path = run_dir / name
    atomic_write_text(path, page)
    return path
