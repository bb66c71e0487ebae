"""The default recipe (a run with no method and no preset) and ``--restarts``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import contraclust
from contraclust import Clusterer
from contraclust.cli import main
from contraclust.config import DEFAULT_BATCH, DEFAULT_RECIPE, build_config, load_preset
from contraclust.data import load_dataset
from contraclust.errors import ConfigError, ContraclustWarning
from contraclust.evaluation.agreement import central_partition
from contraclust.methods.deca import DECA, DECAParams
from contraclust.training import fit


def test_no_method_and_no_preset_is_the_default_recipe() -> None:
    cfg = build_config(None, {"data": "digits", "n_clusters": 10})
    recipe = load_preset(DEFAULT_RECIPE)
    assert cfg.method == recipe["method"] == "deca"
    assert cfg.params == recipe["params"]
    assert cfg.params["kmeans_init_epoch"] == "40%"
    assert "merge_confusion" not in cfg.params  # repair without merges (BENCHMARKS.md)
    assert (cfg.optim.lr, cfg.model.hidden_dim) == (1e-3, 256)
    # the budget sizes what the recipe leaves open
    assert cfg.train.epochs is None and cfg.data.image_size is None
    assert cfg.model.backbone == "auto" and cfg.model.width is None
    DECA.check_schedule(DECAParams(**cfg.params), 1)  # fits a run of any length


def test_a_method_given_alone_starts_from_its_own_defaults() -> None:
    deca = build_config(None, {"method": "deca"})
    assert deca.params == {} and deca.optim.lr == 3e-4
    cc = build_config(None, {"method": "cc"})
    assert cc.method == "cc" and cc.params == {}
    # a preset names its method; the recipe does not join it
    preset = build_config("cc/digits", {})
    assert preset.method == "cc" and "kmeans_init_epoch" not in preset.params


def test_the_default_batch_is_128_or_the_whole_set() -> None:
    cfg = build_config(None, {})
    assert cfg.train.batch_size is None
    assert cfg.train.batch_for(10_000) == DEFAULT_BATCH == 128
    assert cfg.train.batch_for(50) == 50


def test_presets_lists_the_recipe_for_any_data(capsys) -> None:
    assert main(["presets"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.split()[0] == "default")
    assert "for any data" in line and "no --method and no --preset" in line


def test_the_recipe_runs_on_fewer_samples_than_its_batch_for_two_epochs() -> None:
    x = load_dataset("digits").data[:90].numpy()
    est = Clusterer(n_clusters=3, epochs=2, device="cpu", random_state=0).fit(x)
    assert est.labels_.shape == (90,) and set(np.unique(est.labels_)) <= {0, 1, 2}
    assert est.get_params()["method"] is None
    assert est.model_.name == "deca"


# ------------------------------------------------------------------ agreement
def test_the_central_partition_is_the_one_the_others_agree_with() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(4), 50)
    relabelled = (truth + 1) % 4  # the same partition under other ids
    noisy = truth.copy()
    noisy[:30] = rng.integers(0, 4, 30)
    wrong = rng.integers(0, 4, 200)  # a seed that went astray
    agreement = central_partition([wrong, noisy, relabelled, truth])
    assert agreement.chosen == 2  # the first of the two identical ones
    assert agreement.ari[2, 3] == pytest.approx(1.0)
    assert agreement.mean_to_others[0] < 0.1 < agreement.mean_to_others[1]
    assert 0 < agreement.mean < 1


def test_central_partition_refuses_what_it_cannot_compare() -> None:
    with pytest.raises(ValueError, match="at least two"):
        central_partition([np.zeros(3)])
    with pytest.raises(ValueError, match="different numbers"):
        central_partition([np.zeros(3), np.zeros(4)])


# ------------------------------------------------------------------ restarts
def test_restarts_keep_the_central_run_and_record_them_all(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["fit", "digits", "-k", "10", "--epochs", "2", "--restarts", "3", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ContraclustWarning)  # two epochs may disagree
        code = main([*args, "--device", "cpu", "--no-report", "--quiet"])
    assert code == 0
    saved = json.loads((out / "restarts.json").read_text())
    assert saved["seeds"] == [0, 1, 2] and saved["chosen_seed"] in (0, 1, 2)
    chosen = saved["seeds"].index(saved["chosen_seed"])
    scores = saved["mean_ari_to_others"]
    assert scores[chosen] == max(scores)
    assert len(saved["metrics"]) == 3 and all(m["acc"] > 0.2 for m in saved["metrics"])
    # the run folder is the chosen restart's run: its metrics, its seed, a model to load
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["acc"] == pytest.approx(saved["metrics"][chosen]["acc"])
    est = contraclust.load(out)
    assert est.get_params()["random_state"] == saved["chosen_seed"]
    assert main(["predict", str(out), "digits", "--out", str(tmp_path / "p.csv")]) == 0


def test_restarts_need_a_given_k_and_one_process(tmp_path: Path) -> None:
    x = load_dataset("digits").data[:200].numpy()
    with pytest.raises(ConfigError, match="restarts=2 needs a given number of clusters"):
        Clusterer(n_clusters="auto", restarts=2, epochs=1, device="cpu").fit(x)
    with pytest.raises(ConfigError, match="restarts must be an integer >= 1"):
        build_config(None, {"restarts": 0})


def test_disagreeing_restarts_are_said(tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)  # no clusters
    with pytest.warns(ContraclustWarning, match="restarts disagree"):
        result = fit(
            build_config(
                None, {"data": "x", "n_clusters": 6, "epochs": 2, "restarts": 2, "device": "cpu"}
            ),
            _dataset(x),
            quiet=True,
        )
    assert result.restarts is not None and result.restarts["mean_ari"] < 0.5


def _dataset(x: np.ndarray):
    from contraclust.data import array_to_dataset

    return array_to_dataset(x, None, "noise")
