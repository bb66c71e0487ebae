"""Checkpoints: what they hold, how they are written (atomically) and read (safely).

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts,
written with ``torch.save`` to a temporary file and renamed, and read back with
``torch.load(weights_only=True)``: loading one never runs code from the file.
It carries the resolved configuration, so a model file is enough to predict.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from contraclust import __version__
from contraclust.config import RunConfig
from contraclust.errors import CheckpointError, ConfigError
from contraclust.methods import ClusteringMethod, get_method
from contraclust.utils import atomic_torch_save

FORMAT = "contraclust-checkpoint"
#: Bumped when the layout of a checkpoint changes incompatibly.
FORMAT_VERSION = 1


def epoch_length(cfg: RunConfig, n_samples: int, world: int) -> tuple[int, int]:
    """The global batch of a run on ``world`` processes (a multiple of ``world``) and
    the number of steps in one of its epochs."""
    batch = cfg.train.batch_for(n_samples)
    batch -= batch % world
    return batch, max(1, n_samples // max(1, batch))


def build_method(cfg: RunConfig, input_shape: tuple[int, ...], n_samples: int) -> ClusteringMethod:
    """Instantiate the configured method for ``n_samples`` samples of ``input_shape``."""
    cls = get_method(cfg.method)
    if not isinstance(cfg.n_clusters, int) or cfg.n_clusters < 2:
        raise ConfigError(
            f"the number of clusters must be >= 2, got {cfg.n_clusters}; use --clusters 2 or more"
        )
    params = cls.parse_params(cfg.params)
    method = cls(params, cfg.n_clusters, tuple(input_shape), cfg.model, n_samples)
    # Before any training: a read-out the method lacks would only fail at the end.
    method.check_readout(cfg.train.predict_with, cfg.train.kmeans_space)
    return method


def make_checkpoint(method: ClusteringMethod, cfg: RunConfig, **extra: Any) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "contraclust_version": __version__,
        "method": cfg.method,
        "config": cfg.to_dict(),
        "input_shape": list(method.input_shape),
        "n_samples": method.n_samples,
        "state_dict": {k: v.detach().cpu() for k, v in method.state_dict().items()},
        **extra,
    }


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    atomic_torch_save(state, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint file without executing anything it contains."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}; give a run directory or a model.ckpt written by "
            "contraclust fit (or Clusterer.save)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects other than tensors and plain "
            f"data ({str(exc).splitlines()[0][:200]}); it was not written by contraclust "
            "or it is not safe to open"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({exc.__class__.__name__}); the file is "
            "truncated or corrupt: restore it from a copy or train again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a contraclust checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by contraclust {state.get('contraclust_version')} in checkpoint "
            f"format {state.get('format_version')}; this is {__version__}, which reads format "
            f"{FORMAT_VERSION}: open it with that version of contraclust or train again"
        )
    return state


def config_from_checkpoint(state: dict[str, Any]) -> RunConfig:
    """The run's configuration; settings an older version counted in steps are given
    in epochs (the same steps for the run's batch size and processes)."""
    cfg = RunConfig.from_dict(state["config"])
    try:
        cls = get_method(cfg.method)
    except ConfigError:
        return cfg  # said where the method is needed
    if any(key in cfg.params for key in cls.step_settings):
        _, steps = epoch_length(cfg, int(state["n_samples"]), cfg.train.devices)
        cfg.params = cls.epoch_settings(cfg.params, steps)
    return cfg


def method_from_checkpoint(state: dict[str, Any]) -> ClusteringMethod:
    """Rebuild the method of a checkpoint with its trained weights, in eval mode."""
    cfg = config_from_checkpoint(state)
    method = build_method(cfg, tuple(state["input_shape"]), int(state["n_samples"]))
    try:
        method.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint weights do not fit method '{cfg.method}': {str(exc).splitlines()[0]}"
        ) from None
    return method.eval()
