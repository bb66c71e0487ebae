"""The read-outs of predict(): the label-only path agrees with the full one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contraclust.config import RunConfig
from contraclust.data import load_dataset
from contraclust.training.checkpoint import build_method
from contraclust.training.predict import apply_batched, predict


@pytest.fixture(scope="module")
def method_and_data():
    """k-means on 300 digits: a method whose read-out spreads over the clusters."""
    data = load_dataset("digits").data[:300]
    cfg = RunConfig.from_dict({"method": "kmeans"})
    method = build_method(cfg, tuple(data.shape[1:]), len(data))
    method.fit_closed_form(method.to_unit(data))
    return method, data


def test_labels_only_matches_full_prediction(method_and_data) -> None:
    method, data = method_and_data
    device = torch.device("cpu")
    full = predict(method, data, device, batch_size=64)
    light = predict(method, data, device, batch_size=64, keep_probs=False)
    np.testing.assert_array_equal(light.labels, full.labels)
    np.testing.assert_allclose(light.confidence, full.confidence, rtol=0, atol=1e-6)
    assert light.probs.shape == (len(data), 0)
    assert full.probs.shape == (len(data), 10)
    assert len(np.unique(full.labels)) > 1  # a constant labelling would prove nothing


def test_apply_batched_keeps_order_across_a_partial_last_batch(method_and_data) -> None:
    method, data = method_and_data
    out = apply_batched(method, data, method.embed, torch.device("cpu"), batch_size=128)
    one = apply_batched(method, data[250:], method.embed, torch.device("cpu"), batch_size=512)
    assert out.shape[0] == len(data) == 300
    torch.testing.assert_close(out[250:], one, rtol=1e-5, atol=1e-5)


def test_progress_bar_only_when_asked(method_and_data, capsys) -> None:
    method, data = method_and_data
    device = torch.device("cpu")
    quiet = predict(method, data, device, batch_size=64)
    assert capsys.readouterr().err == ""
    shown = predict(method, data, device, batch_size=64, progress="predicting")
    err = capsys.readouterr().err
    assert "predicting" in err and "/5 " in err  # 300 samples in batches of 64
    np.testing.assert_array_equal(shown.labels, quiet.labels)
