from __future__ import annotations

from pathlib import Path

import pytest

from contraclust.config import (
    DEFAULT_RECIPE,
    RunConfig,
    available_presets,
    from_dict,
    load_preset,
    merge,
    preset_path,
    save_yaml,
)
from contraclust.errors import ConfigError
from contraclust.methods import get_method


def test_defaults_round_trip() -> None:
    cfg = RunConfig()
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"train\.epoch\b.*valid options in train"):
        RunConfig.from_dict({"train": {"epoch": 3}})


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match="unknown option 'clusters'"):
        RunConfig.from_dict({"clusters": 3})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epochs": "ten"}}, r"train\.epochs: expected an integer"),
        ({"train": {"epochs": 2.5}}, r"train\.epochs: expected an integer"),
        ({"optim": {"lr": "fast"}}, r"optim\.lr: expected a number"),
        ({"data": {"skip_bad_images": "yes"}}, r"expected true or false"),
        ({"n_clusters": True}, r"n_clusters: expected an integer"),
        ({"data": [1, 2]}, r"data: expected a mapping"),
    ],
)
def test_wrong_types_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(raw)


def test_int_is_accepted_for_float_and_null_for_optional() -> None:
    cfg = RunConfig.from_dict({"optim": {"lr": 1}, "train": {"batch_size": None}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.batch_size is None


def test_merge_is_recursive() -> None:
    out = merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 5}})
    assert out == {"a": {"b": 1, "c": 5}, "d": 3}


def test_every_committed_preset_is_valid() -> None:
    names = available_presets()
    assert "cc/digits" in names
    for name in names:
        raw = load_preset(name)
        cfg = RunConfig.from_dict(raw)
        # the method's own parameters must be valid too
        from_dict(get_method(cfg.method).Params, cfg.params, "params")
        # a preset sits in its method's folder; the default recipe names its own
        assert name.split("/")[0] == cfg.method or name == DEFAULT_RECIPE


def test_preset_from_file_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    save_yaml({"method": "kmeans", "train": {"epochs": 1}}, good)
    assert load_preset(str(good))["method"] == "kmeans"
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.epochs"):
        load_preset(str(bad))
    with pytest.raises(ConfigError, match="preset file not found"):
        preset_path(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"unknown preset 'nope/nothing'.*cc/digits"):
        preset_path("nope/nothing")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_preset(str(broken))
