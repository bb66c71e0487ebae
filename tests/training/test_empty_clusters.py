"""A cluster that empties is reported in train.log (when it happens and at the end)
and in metrics.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.methods import register_method
from contraclust.methods.cc import ContrastiveClustering
from contraclust.training import fit
from contraclust.training.loop import cluster_summary, warn_empty_clusters


def test_cluster_summary_and_warning(caplog: pytest.LogCaptureFixture) -> None:
    labels = np.array([0, 0, 3, 3, 3])
    assert cluster_summary(labels, 5) == {
        "cluster_sizes": [2, 0, 0, 3, 0],
        "empty_clusters": [1, 2, 4],
    }
    with caplog.at_level(logging.WARNING, logger="contraclust"):
        assert warn_empty_clusters(labels, 5, "after epoch 7") == [1, 2, 4]
        assert warn_empty_clusters(np.array([1, 0]), 2, "at the end") == []
    assert [r.getMessage() for r in caplog.records] == [
        "3 of 5 clusters are empty after epoch 7: [1, 2, 4]"
    ]


@register_method
class _CollapsedHead(ContrastiveClustering):
    """CC whose read-out puts every sample in cluster 1: the others are empty."""

    name = "test-collapsed"

    def cluster_probs(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.zeros_like(super().cluster_probs(x))
        probs[:, 1] = 1
        return probs


def test_emptied_clusters_reach_the_log_and_metrics_json(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict(
        {
            "method": "test-collapsed",
            "n_clusters": 4,
            "model": {"backbone": "small_cnn", "width": 8, "hidden_dim": 32, "projection_dim": 16},
            "train": {"epochs": 2, "batch_size": 50, "device": "cpu", "eval_every": 1},
        }
    )
    dataset = load_dataset("digits").subset(np.arange(100))
    out = tmp_path / "run"
    fit(cfg, dataset, run_dir=out, quiet=True)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["empty_clusters"] == [0, 2, 3]
    assert summary["cluster_sizes"] == [0, 100, 0, 0]
    log = (out / "train.log").read_text()
    for when in ("after epoch 1", "after epoch 2", "at the end of training"):
        assert f"WARNING 3 of 4 clusters are empty {when}: [0, 2, 3]" in log
