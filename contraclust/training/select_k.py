"""Choosing the number of clusters K: ``--clusters auto`` and ``Clusterer(n_clusters="auto")``.

The search runs in three stages, so that the representation is learned only once:

1. a provisional model is trained with K = the largest candidate (a head with too few
   clusters would pull apart groups together) for ``k_search.epochs`` epochs;
2. every candidate K is scored on that model's embedding (:func:`search_k`);
3. the final model, with the chosen K, is trained starting from the provisional
   weights (every tensor whose shape does not depend on K is kept).

The score of a K combines two signals (in the spirit of ConCURL's consensus over
random transformations of the embedding):

* **stability**: k-means is run ``runs`` times, each with its own seed on its own
  Gaussian random projection of the embedding (the first on the embedding itself);
  the stability is the mean adjusted Rand index between every pair of partitions. A K
  that splits a natural group in two, or merges two, is split differently each time.
* **silhouette** of the partition on the embedding itself: compact, separated clusters.

``score = stability × max(silhouette, 0)``: a K must be both reproducible and
well separated. The smallest K whose score is within ``SCORE_TOLERANCE`` (2 %) of the
best wins: where the scores form a plateau, nothing speaks for the finer partition.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from contraclust.config import AUTO_CLUSTERS, RunConfig
from contraclust.errors import ConfigError

__all__ = [
    "KCandidate",
    "KSearchResult",
    "choose_k",
    "default_k_range",
    "parse_k_range",
    "pick_k",
    "search_k",
    "validate_k_search",
    "warm_start",
]

log = logging.getLogger("contraclust")

#: The largest K the default range goes to.
DEFAULT_K_MAX = 20
#: Least samples per cluster the default range allows (K_max <= N // this).
MIN_SAMPLES_PER_CLUSTER = 10
#: Scores within this fraction of the best count as equal (the smallest such K wins).
SCORE_TOLERANCE = 0.02


@dataclass
class KCandidate:
    """The scores of one candidate K."""

    k: int
    stability: float
    silhouette: float
    score: float


@dataclass
class KSearchResult:
    """The candidates, the chosen K and why (written as ``k_search.json``)."""

    chosen: int
    reason: str
    candidates: list[KCandidate] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"chosen", "reason", "candidates": [{"k", "stability", "silhouette", "score"}]}``."""
        return {
            "chosen": int(self.chosen),
            "reason": self.reason,
            "candidates": [
                {
                    "k": int(c.k),
                    "stability": float(c.stability),
                    "silhouette": float(c.silhouette),
                    "score": float(c.score),
                }
                for c in self.candidates
            ],
        }


def default_k_range(n_samples: int) -> tuple[int, int]:
    """2 to min(20, N // 10): at least ten samples per cluster on average."""
    k_max = min(DEFAULT_K_MAX, n_samples // MIN_SAMPLES_PER_CLUSTER)
    if k_max < 2:
        raise ConfigError(
            f"too few samples ({n_samples}) to choose K automatically (the default range "
            f"needs >= {2 * MIN_SAMPLES_PER_CLUSTER}); give n_clusters=K or k_range=MIN:MAX"
        )
    return 2, k_max


def parse_k_range(text: str | None, n_samples: int) -> tuple[int, int]:
    """``"MIN:MAX"`` (both included) checked against ``n_samples``; None: the default."""
    if text is None or str(text).strip() == "":
        return default_k_range(n_samples)
    low, sep, high = str(text).partition(":")
    try:
        k_min, k_max = int(low), int(high)
    except ValueError:
        k_min = k_max = -1
        sep = ""
    if not sep:
        raise ConfigError(f"k_range expects MIN:MAX with two integers, e.g. 2:30, got '{text}'")
    if k_min < 2:
        raise ConfigError(f"k_range={text}: the smallest K must be >= 2, got {k_min}")
    if k_max < k_min:
        raise ConfigError(f"k_range={text}: MAX ({k_max}) is smaller than MIN ({k_min})")
    if k_max > n_samples:
        raise ConfigError(
            f"k_range={text}: the largest K ({k_max}) exceeds the number of samples "
            f"({n_samples}); use k_range={k_min}:{n_samples} or less"
        )
    return k_min, k_max


def _projections(dim: int, runs: int, rng: np.random.Generator) -> list[np.ndarray | None]:
    """None (the embedding itself), then Gaussian random projections."""
    width = dim if dim <= 32 else max(32, dim // 2)
    return [None] + [
        rng.standard_normal((dim, width)) / np.sqrt(width) for _ in range(max(0, runs - 1))
    ]


def search_k(
    embedding: np.ndarray,
    k_min: int,
    k_max: int,
    *,
    runs: int = 6,
    seed: int = 0,
    max_samples: int = 3000,
    quiet: bool = True,
) -> KSearchResult:
    """Score every K in ``k_min..k_max`` on ``embedding`` (N x d) and choose one.

    Args:
        embedding: the learned embedding of the data (or any vectors).
        k_min, k_max: the candidates, both included (2 <= k_min <= k_max <= N).
        runs: k-means partitions per K, each with its own seed and random projection
            (at least 2, so that stability can be measured).
        seed: seeds the subsample, the projections and k-means.
        max_samples: a fixed random subset of this many samples is used when N is larger.
        quiet: no progress bar.

    Returns:
        The chosen K, a one-line reason and the scores of every candidate.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score
    from tqdm.auto import tqdm

    x = np.asarray(embedding, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ConfigError(f"the K search needs an N x d embedding, got shape {x.shape}")
    if runs < 2:
        raise ConfigError(f"k_search.runs must be >= 2 to measure stability, got {runs}")
    if not 2 <= k_min <= k_max <= len(x):
        raise ConfigError(f"invalid K range {k_min}:{k_max} for {len(x)} samples")
    rng = np.random.default_rng(seed)
    if len(x) > max_samples:
        x = x[np.sort(rng.choice(len(x), size=max_samples, replace=False))]
    spaces = [x if p is None else x @ p for p in _projections(x.shape[1], runs, rng)]
    candidates: list[KCandidate] = []
    for k in tqdm(
        range(k_min, k_max + 1), desc="K search", unit="K", disable=quiet, dynamic_ncols=True
    ):
        partitions = [
            KMeans(k, n_init=3, random_state=seed + run).fit_predict(space)
            for run, space in enumerate(spaces)
        ]
        stability = float(
            np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(partitions, 2)])
        )
        used = np.unique(partitions[0]).size
        if 2 <= used < len(x):
            silhouette = float(silhouette_score(x, partitions[0], random_state=seed))
        else:  # undefined: one cluster, or one sample per cluster
            silhouette = 0.0
        score = max(stability, 0.0) * max(silhouette, 0.0)
        candidates.append(KCandidate(k, stability, silhouette, score))
    return pick_k(candidates)


def pick_k(candidates: list[KCandidate]) -> KSearchResult:
    """The smallest K scoring within ``SCORE_TOLERANCE`` of the best, and why."""
    if not candidates:
        raise ConfigError("the K search has no candidates")
    top = max(candidates, key=lambda c: (c.score, -c.k))
    best = min(
        (c for c in candidates if c.score >= (1.0 - SCORE_TOLERANCE) * top.score),
        key=lambda c: c.k,
    )
    k_min, k_max = min(c.k for c in candidates), max(c.k for c in candidates)
    return KSearchResult(best.k, _reason(best, top, candidates, k_min, k_max), candidates)


def _reason(
    best: KCandidate, top: KCandidate, candidates: list[KCandidate], k_min: int, k_max: int
) -> str:
    scores = f"(stability {best.stability:.3f} x silhouette {best.silhouette:.3f})"
    if best is top:
        text = f"K={best.k} has the best score {best.score:.3f} {scores} among K={k_min}..{k_max}"
        others = sorted((c for c in candidates if c is not best), key=lambda c: -c.score)
        if others:
            text += f"; runner-up K={others[0].k} scores {others[0].score:.3f}"
    else:
        text = (
            f"K={best.k} scores {best.score:.3f} {scores}, within "
            f"{SCORE_TOLERANCE:.0%} of the best (K={top.k}: {top.score:.3f}) among "
            f"K={k_min}..{k_max}, and is the smallest such K"
        )
    if len(candidates) > 1 and best.k in (k_min, k_max):
        text += "; it is at the edge of the range: consider widening --k-range"
    return text


def warm_start(method: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``state`` whose name and shape match into ``method``.

    Returns the names left at their fresh values (those whose shape depends on K).
    """
    own = method.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    method.load_state_dict(matching, strict=False)
    return sorted(set(own) - set(matching))


def choose_k(
    cfg: RunConfig,
    data: torch.Tensor,
    train: Callable[[RunConfig], Any],
    quiet: bool = False,
) -> tuple[RunConfig, dict[str, torch.Tensor], KSearchResult]:
    """Stages 1 and 2 of the module docstring.

    Args:
        cfg: the run's configuration, with ``n_clusters == "auto"``.
        data: the training data (raw, as the dataset holds it).
        train: trains a configuration in memory and returns its ``FitResult``.
        quiet: no progress bars.

    Returns:
        The configuration of the final model (``n_clusters`` set to the chosen K), the
        provisional weights to start it from, and the search result.
    """
    from contraclust.training.predict import apply_batched
    from contraclust.utils import resolve_device

    if cfg.n_clusters != AUTO_CLUSTERS:
        raise ConfigError("choose_k needs n_clusters: auto")
    k_min, k_max = parse_k_range(cfg.k_search.k_range, len(data))
    provisional = copy.deepcopy(cfg)
    provisional.n_clusters = k_max
    epochs = cfg.k_search.epochs
    if epochs is None:
        epochs = max(1, cfg.train.epochs // 2) if cfg.train.epochs else 0
    provisional.train.epochs = epochs
    provisional.train.self_label_epochs = 0  # the search reads the embedding, not the head
    provisional.train.eval_every = 0
    log.info("K search: provisional model with K=%d for %d epochs", k_max, epochs)
    result = train(provisional)
    method = result.method
    device = resolve_device(cfg.train.device)
    method.to(device)
    try:
        embedding = apply_batched(method, data, method.embed, device).numpy()
    finally:
        method.cpu()
    search = search_k(
        embedding,
        k_min,
        k_max,
        runs=cfg.k_search.runs,
        seed=cfg.train.seed,
        max_samples=cfg.k_search.max_samples,
        quiet=quiet,
    )
    message = f"K search: chose K={search.chosen}: {search.reason}"
    log.info(message)
    if not quiet:
        import sys

        print(message, file=sys.stderr)
    final = copy.deepcopy(cfg)
    final.n_clusters = search.chosen
    state = {k: v.detach().cpu() for k, v in method.state_dict().items()}
    return final, state, search


def validate_k_search(cfg: RunConfig, n_samples: int) -> None:
    """Checks of ``n_clusters: auto`` that need no model (the range, the search settings)."""
    from contraclust.checks import check_int

    parse_k_range(cfg.k_search.k_range, n_samples)
    check_int("k_search.runs", cfg.k_search.runs, low=2)
    check_int("k_search.max_samples", cfg.k_search.max_samples, low=10)
    if cfg.k_search.epochs is not None:
        check_int("k_search.epochs", cfg.k_search.epochs, low=0)
    if cfg.train.devices > 1:
        raise ConfigError(
            "n_clusters=auto runs on one device; choose K first (its k_search.json), then "
            "train on several with n_clusters=K and devices=N"
        )
