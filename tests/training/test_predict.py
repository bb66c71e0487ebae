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


# ---------------------------------------------------------------- read-outs of trained methods

K = 4
#: Each method's k-means spaces (``train.kmeans_space``), as docs/methods.md lists them.
SPACES = {
    "cc": ("backbone", "projection"),
    "clc": ("backbone", "projection"),
    "deca": ("backbone", "projection"),
    "concurl": ("backbone", "projection", "exemplar"),
    "scan": ("backbone", "projection"),
}


def blobs(per_cluster: int = 60, dim: int = 8) -> torch.Tensor:
    """K well separated Gaussian blobs of equal size (a balanced data set)."""
    gen = torch.Generator().manual_seed(0)
    centres = 6.0 * torch.randn(K, dim, generator=gen)
    noise = torch.randn(K, per_cluster, dim, generator=gen)
    return (centres[:, None, :] + noise).reshape(-1, dim)


def vector_method(name: str, **train: object):
    """An untrained method on vectors, its BatchNorm statistics set by one pass."""
    torch.manual_seed(0)
    params = {"n_negatives": 16} if name == "concurl" else {}
    cfg = RunConfig.from_dict(
        {
            "method": name,
            "n_clusters": K,
            "model": {"backbone": "mlp", "hidden_dim": 32, "projection_dim": 16},
            "train": dict(train),
            "params": params,
        }
    )
    data = blobs()
    method = build_method(cfg, tuple(data.shape[1:]), len(data))
    method.set_input_stats(data)
    if name == "deca":  # its centres come from k-means at the start of a fit
        with torch.no_grad():
            method.centers.copy_(method.embed(method.prepare(data))[:: len(data) // K][:K])
    return method.eval(), data


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_read_out_runs_and_gives_k_clusters(name: str) -> None:
    method, data = vector_method(name)
    assert method.kmeans_spaces() == SPACES[name]
    device = torch.device("cpu")
    runs = {
        "head": predict(method, data, device),
        "sinkhorn": predict(method, data, device, "sinkhorn"),
    }
    for space in SPACES[name]:
        runs[space] = predict(method, data, device, "kmeans", kmeans_space=space)
    for readout, pred in runs.items():
        assert pred.labels.shape == (len(data),), readout
        assert pred.probs.shape == (len(data), K), readout
        np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0, rtol=1e-5, err_msg=readout)
        assert pred.labels.min() >= 0 and pred.labels.max() < K, readout
    for space in SPACES[name]:  # separated blobs: k-means finds all K in every space
        assert len(np.unique(runs[space].labels)) == K, space
        assert runs[space].centers is not None and runs[space].centers.shape[0] == K
    # The exemplar, projection and backbone spaces are different features.
    x = method.prepare(data[:3])
    features = [method.kmeans_features(x, space) for space in SPACES[name]]
    for i, a in enumerate(features):
        for b in features[i + 1 :]:
            assert a.shape != b.shape or not torch.allclose(a, b)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sinkhorn_read_out_is_balanced_where_the_head_is_not(name: str) -> None:
    """Scores that tell the blobs apart but favour cluster 0 for every sample: the head
    puts all samples in cluster 0, the data-set-level Sinkhorn gives each about N / K."""
    method, data = vector_method(name)
    device = torch.device("cpu")
    centres = blobs().reshape(K, -1, data.shape[1]).mean(dim=1)

    def biased_scores(x: torch.Tensor) -> torch.Tensor:
        # ``x`` is the standardised input: undo it to measure distances to the blobs.
        raw = x * method.input_std + method.input_mean
        scores = torch.log_softmax(-torch.cdist(raw, centres) / 4.0, dim=1)
        return scores + torch.tensor([20.0, 0.0, 0.0, 0.0])

    method.sinkhorn_scores = biased_scores  # type: ignore[method-assign]
    method.cluster_probs = lambda x: biased_scores(x).softmax(dim=1)  # type: ignore[method-assign]
    unbalanced = np.bincount(predict(method, data, device).labels, minlength=K)
    balanced = np.bincount(predict(method, data, device, "sinkhorn").labels, minlength=K)
    assert unbalanced[0] == len(data)
    mean = len(data) / K
    assert balanced.min() >= 0.8 * mean and balanced.max() <= 1.2 * mean, balanced


def test_kmeans_read_out_uses_the_configured_restarts(monkeypatch) -> None:
    import sklearn.cluster

    seen: list[int] = []
    real = sklearn.cluster.KMeans

    def recording(*args, **kwargs):
        seen.append(kwargs["n_init"])
        return real(*args, **kwargs)

    monkeypatch.setattr(sklearn.cluster, "KMeans", recording)
    method, data = vector_method("cc")
    predict(method, data, torch.device("cpu"), "kmeans", kmeans_n_init=3)
    assert seen == [3]


def test_bad_read_outs_are_refused_naming_the_valid_ones() -> None:
    from contraclust.errors import ConfigError

    method, data = vector_method("cc")
    device = torch.device("cpu")
    with pytest.raises(ConfigError, match="predict_with must be one of head, kmeans, sinkhorn"):
        predict(method, data, device, "centroids")
    with pytest.raises(
        ConfigError, match=r"no 'exemplar' space.*valid kmeans_space: backbone, projection"
    ):
        predict(method, data, device, "kmeans", kmeans_space="exemplar")
    with pytest.raises(ConfigError, match="kmeans_space must be one of"):
        RunConfig.from_dict({"train": {"kmeans_space": "pixels"}})
    with pytest.raises(ConfigError, match="kmeans_n_init"):
        RunConfig.from_dict({"train": {"kmeans_n_init": 0}})
    # Refused when the method is built, before any training, not at the final read-out.
    with pytest.raises(ConfigError, match="no 'exemplar' space"):
        vector_method("cc", predict_with="kmeans", kmeans_space="exemplar")
    # ConCURL without an exemplar head (beta = 0) has no exemplar space either.
    cfg = RunConfig.from_dict(
        {
            "method": "concurl",
            "n_clusters": K,
            "model": {"backbone": "mlp"},
            "train": {"predict_with": "kmeans", "kmeans_space": "exemplar"},
            "params": {"beta": 0.0},
        }
    )
    with pytest.raises(ConfigError, match="valid kmeans_space: backbone, projection"):
        build_method(cfg, (8,), 100)
