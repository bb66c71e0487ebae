from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import contraclust
from contraclust import Clusterer
from contraclust.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images[:300] / 16.0, d.target[:300], d.data[:300]


def small(**kw) -> Clusterer:
    kw.setdefault("epochs", 2)
    return Clusterer(
        "cc", 10, batch_size=100, device="cpu", params={"instance_temperature": 0.5}, **kw
    )


def test_fit_predict_transform_save_load(digits, tmp_path: Path) -> None:
    images, y, _ = digits
    est = small()
    labels = est.fit_predict(images, y)
    assert labels.shape == (300,) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, est.labels_)
    assert set(est.metrics_) >= {"acc", "nmi", "ari"}
    np.testing.assert_array_equal(est.predict(images), labels)
    proba = est.predict_proba(images[:7])
    assert proba.shape == (7, 10)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    emb = est.transform(images[:5])
    assert emb.ndim == 2 and emb.shape[0] == 5
    path = tmp_path / "model.ckpt"
    est.save(path)
    again = contraclust.load(path)
    np.testing.assert_array_equal(again.predict(images), labels)
    assert again.get_params()["epochs"] == 2


def test_constructor_stores_arguments_unchanged() -> None:
    params = {"entropy_weight": 2.0}
    est = Clusterer("cc", 4, epochs=3, params=params, random_state=7)
    assert est.get_params()["params"] is params
    assert est.get_params()["random_state"] == 7
    est.set_params(n_clusters=5)
    assert est.n_clusters == 5
    with pytest.raises(ConfigError, match="unknown parameter 'k'"):
        est.set_params(k=3)


def test_vectors_and_kmeans_readout(digits) -> None:
    _, _y, flat = digits
    est = Clusterer("cc", 10, epochs=2, batch_size=100, device="cpu", predict_with="kmeans")
    est.fit(flat.astype(np.float32))
    assert est.readout_centers_ is not None
    np.testing.assert_array_equal(est.predict(flat.astype(np.float32)), est.labels_)


def test_kmeans_readout_in_the_projection_space_survives_save_and_load(digits, tmp_path) -> None:
    _, _y, flat = digits
    x = flat.astype(np.float32)[:300]
    est = Clusterer(
        "cc",
        10,
        epochs=1,
        batch_size=100,
        device="cpu",
        predict_with="kmeans",
        kmeans_space="projection",
    )
    est.fit(x)
    assert est.get_params()["kmeans_space"] == "projection"
    # Centres live in the 128-d instance projection, not in the 256-d MLP feature.
    assert est.readout_centers_ is not None and est.readout_centers_.shape == (10, 128)
    est.save(tmp_path / "model.ckpt")
    again = contraclust.load(tmp_path / "model.ckpt")
    assert again.config_.train.kmeans_space == "projection"
    np.testing.assert_array_equal(again.predict(x), est.labels_)


def test_kmeans_baseline_beats_chance(digits) -> None:
    images, y, _ = digits
    est = Clusterer("kmeans", 10).fit(images, y)
    assert est.metrics_["acc"] > 0.6


def test_errors(digits) -> None:
    images, _, _ = digits
    with pytest.raises(ConfigError, match="not fitted"):
        Clusterer().predict(images)
    with pytest.raises(ConfigError, match=r"unknown method 'nope'.*cc.*kmeans"):
        Clusterer("nope").fit(images)
    bad = images.copy()
    bad[3, 2, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        small().fit(bad)
    est = small(epochs=1).fit(images)
    # Images of another size are resized as in the CLI; vectors cannot be.
    assert est.predict(np.zeros((3, 9, 9), dtype=np.uint8)).shape == (3,)
    with pytest.raises(DataError, match="shape"):
        est.predict(np.zeros((3, 5), dtype=np.float32))
