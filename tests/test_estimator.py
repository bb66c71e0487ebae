"""Clusterer is a scikit-learn estimator: scikit-learn's own checks, and its conventions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_estimator

from contraclust import Clusterer
from contraclust.api import load
from contraclust.errors import ConfigError


def _run_checks(estimator: Clusterer) -> tuple[list[str], list[str], int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            estimator,
            on_fail=None,
            expected_failed_checks=estimator.expected_failed_checks(),
        )
    failed = [
        f"{r['check_name']}: {r['exception']!r}"[:300] for r in results if r["status"] == "failed"
    ]
    expected = sorted({r["check_name"] for r in results if r["status"] == "xfail"})
    passed = sum(r["status"] == "passed" for r in results)
    return failed, expected, passed


def test_sklearn_checks_pass_for_kmeans() -> None:
    est = Clusterer("kmeans", 3, device="cpu")
    failed, xfailed, passed = _run_checks(est)
    assert not failed, failed
    assert set(xfailed) == set(est.expected_failed_checks())  # each one a check that exists
    assert "check_clustering" not in xfailed  # k-means must cluster the blobs
    assert passed >= 40


@pytest.mark.slow
def test_sklearn_checks_pass_for_cc_one_epoch() -> None:
    est = Clusterer("cc", 3, epochs=1, device="cpu")
    failed, xfailed, passed = _run_checks(est)
    assert not failed, failed
    assert set(xfailed) == set(est.expected_failed_checks())
    assert passed >= 40


def test_every_declared_exception_has_a_reason() -> None:
    for name, reason in Clusterer("cc", epochs=1).expected_failed_checks().items():
        assert name.startswith("check_") and len(reason) > 30, name


def test_predict_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        Clusterer("kmeans", 3).predict(np.zeros((5, 2)))


def test_errors_name_python_parameters() -> None:
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"n_clusters=12 or fewer") as info:
        Clusterer("kmeans", 20).fit(x)
    assert "--" not in str(info.value)
    with pytest.raises(ConfigError, match=r"did you mean 'n_clusters'"):
        Clusterer().set_params(n_cluster=3)


def test_clone_and_same_names_as_the_command_line() -> None:
    est = Clusterer("cc", 4, augment="none", skip_bad_images=True, batch_size=8)
    assert clone(est).get_params() == est.get_params()
    from contraclust.cli import build_parser

    fit_parser = build_parser()._subparsers._group_actions[0].choices["fit"]
    dests = {a.dest for a in fit_parser._actions}
    for name in ("augment", "batch_size", "epochs", "lr", "backbone", "predict_with", "features"):
        assert name in dests and name in est.get_params(), name


def test_skip_bad_images_in_python(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    est = Clusterer("kmeans", 3, skip_bad_images=True).fit(str(folder))
    assert len(est.labels_) == 12


def test_predict_converts_colour_and_size_like_fit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (30, 8, 8), dtype=np.uint8)
    est = Clusterer("kmeans", 3).fit(grey)
    colour_big = np.repeat(np.kron(grey, np.ones((2, 2), np.uint8))[..., None], 3, axis=-1)
    np.testing.assert_array_equal(est.predict(colour_big), est.predict(grey))


def test_loaded_model_reports_its_training_settings(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    est = Clusterer("cc", 3, epochs=1, batch_size=20, lr=1e-3, device="cpu").fit(x)
    est.save(tmp_path / "m.ckpt")
    params = load(tmp_path / "m.ckpt").get_params()
    assert params["epochs"] == 1 and params["batch_size"] == 20 and params["lr"] == 1e-3
    assert params["augment"] == "vector" and params["backbone"] == "mlp"
