"""Choosing K: the search on data with an obvious K, the range checks, the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from contraclust import Clusterer
from contraclust.cli import main
from contraclust.config import RunConfig
from contraclust.errors import ConfigError
from contraclust.training.select_k import (
    KCandidate,
    default_k_range,
    parse_k_range,
    pick_k,
    search_k,
    warm_start,
)

CANDIDATE_KEYS = {"k", "stability", "silhouette", "score"}


def blobs(k: int, n: int = 400, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_blobs(n, n_features=dim, centers=k, cluster_std=1.0, random_state=seed)
    return x.astype(np.float32), y


@pytest.mark.parametrize(
    ("k_true", "k_range"),
    [(4, (2, 10)), (4, (3, 12)), (4, (2, 6)), (6, (2, 10)), (3, (2, 8))],
)
def test_search_finds_the_obvious_k(k_true: int, k_range: tuple[int, int]) -> None:
    x, _ = blobs(k_true, seed=k_true)
    result = search_k(x, *k_range, runs=4, seed=0)
    assert result.chosen == k_true
    assert [c.k for c in result.candidates] == list(range(k_range[0], k_range[1] + 1))
    best = max(result.candidates, key=lambda c: c.score)
    assert best.k == k_true and best.stability > 0.95
    assert f"K={k_true} has the best score" in result.reason and "edge" not in result.reason


def test_search_is_not_drawn_to_the_edges() -> None:
    # A range whose edges sit just around the true K: neither neighbour is taken.
    x, _ = blobs(5, seed=2)
    assert search_k(x, 4, 6, runs=4).chosen == 5
    # K at the lower edge is found, and the reason says it sits at the edge.
    edge = search_k(x, 5, 8, runs=4)
    assert edge.chosen == 5 and "edge of the range" in edge.reason


def test_stability_separates_real_from_arbitrary_splits() -> None:
    x, _ = blobs(4, seed=1)
    scores = {c.k: c for c in search_k(x, 2, 8, runs=4).candidates}
    assert scores[4].stability > 0.95
    assert scores[8].stability < scores[4].stability - 0.2  # splitting blobs is arbitrary
    assert all(-1.0 <= c.silhouette <= 1.0 and 0.0 <= c.score <= 1.0 for c in scores.values())


def candidates(scores: dict[int, float]) -> list[KCandidate]:
    return [KCandidate(k, 1.0, score, score) for k, score in scores.items()]


def test_a_plateau_gives_the_smallest_k_near_the_best() -> None:
    # Scores measured on digits (cc, 15 provisional epochs) around their plateau.
    plateau = pick_k(candidates({8: 0.286, 9: 0.365, 10: 0.382, 12: 0.36, 15: 0.385}))
    assert plateau.chosen == 10
    assert "within 2% of the best (K=15: 0.385)" in plateau.reason
    peak = pick_k(candidates({2: 0.3, 3: 0.5, 4: 0.81, 5: 0.52}))
    assert peak.chosen == 4 and peak.reason.startswith("K=4 has the best score 0.810")
    assert "runner-up K=5 scores 0.520" in peak.reason
    edge = pick_k(candidates({2: 0.2, 3: 0.4, 4: 0.6}))
    assert edge.chosen == 4 and "edge of the range" in edge.reason


def test_search_result_format() -> None:
    x, _ = blobs(3, n=90)
    out = search_k(x, 2, 4, runs=3).to_dict()
    assert set(out) == {"chosen", "reason", "candidates"}
    assert isinstance(out["chosen"], int) and isinstance(out["reason"], str)
    for candidate in out["candidates"]:
        assert set(candidate) == CANDIDATE_KEYS and isinstance(candidate["k"], int)
        assert all(isinstance(candidate[key], float) for key in CANDIDATE_KEYS - {"k"})
    json.dumps(out)  # plain JSON


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1:5", "smallest K must be >= 2, got 1"),
        ("0:5", "smallest K must be >= 2"),
        ("6:3", r"MAX \(3\) is smaller than MIN \(6\)"),
        ("2:101", r"largest K \(101\) exceeds the number of samples \(100\)"),
        ("2-5", "expects MIN:MAX"),
        ("a:b", "expects MIN:MAX"),
    ],
)
def test_k_range_errors(text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        parse_k_range(text, 100)


def test_k_range_defaults() -> None:
    assert parse_k_range("3:30", 100) == (3, 30)
    assert parse_k_range(None, 1797) == (2, 20)
    assert default_k_range(55) == (2, 5)
    with pytest.raises(ConfigError, match=r"too few samples \(19\).*k_range=MIN:MAX"):
        default_k_range(19)


def test_n_clusters_accepts_only_integers_or_auto() -> None:
    assert RunConfig.from_dict({"n_clusters": "auto"}).n_clusters == "auto"
    with pytest.raises(ConfigError, match="integer or 'auto'"):
        RunConfig.from_dict({"n_clusters": "many"})


def test_warm_start_keeps_what_does_not_depend_on_k() -> None:
    source = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5))
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    fresh = warm_start(target, source.state_dict())
    assert fresh == ["1.bias", "1.weight"]
    torch.testing.assert_close(target[0].weight, source[0].weight)


def test_estimator_with_auto_clusters() -> None:
    x, y = blobs(4, n=240, seed=4)
    est = Clusterer("cc", "auto", epochs=2, batch_size=80, device="cpu", k_range=(2, 7))
    est.fit(x, y)
    assert est.n_clusters == "auto"  # the argument is kept as given
    assert est.n_clusters_ == 4 == est.k_search_["chosen"]
    assert est.model_.n_clusters == 4 and est.config_.n_clusters == 4
    assert est.predict(x).max() < 4
    with pytest.raises(ConfigError, match="largest K"):
        Clusterer("cc", "auto", epochs=1, device="cpu", k_range="2:500").fit(x)


def test_cli_auto_clusters_writes_k_search(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, _ = blobs(4, n=200, seed=5)
    data = tmp_path / "blobs.npy"
    np.save(data, x)
    out = tmp_path / "run"
    args = ["fit", str(data), "--clusters", "auto", "--k-range", "2:6", "--epochs", "2"]
    assert main([*args, "-b", "50", "--device", "cpu", "-q", "--out", str(out)]) == 0
    assert "K=4 (chosen)" in capsys.readouterr().out
    search = json.loads((out / "k_search.json").read_text())
    assert search["chosen"] == 4 and [c["k"] for c in search["candidates"]] == [2, 3, 4, 5, 6]
    assert "n_clusters: 4" in (out / "config.yaml").read_text()
    assert "K search: chose K=4" in (out / "train.log").read_text()
    assert json.loads((out / "metrics.json").read_text())["n_clusters"] == 4
    # fewer samples than the range asks for: one line, exit status 2
    bad = ["fit", str(data), "--clusters", "auto", "--k-range", "1:4", "-q"]
    assert main([*bad, "--out", str(tmp_path / "bad")]) == 2
    assert "smallest K must be >= 2" in capsys.readouterr().err
