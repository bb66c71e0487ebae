"""The scikit-learn-style estimator.

>>> from sklearn.datasets import load_digits
>>> from contraclust import Clusterer
>>> X = load_digits().images            # (1797, 8, 8) grey images
>>> model = Clusterer(method="cc", n_clusters=10, epochs=2).fit(X)  # doctest: +SKIP
>>> model.labels_[:5], model.predict(X[:5])                         # doctest: +SKIP

Constructor arguments are stored unchanged; fitted state lives in attributes ending
in ``_``. ``X`` may be a numpy array or tensor of images ``(N, H, W)``,
``(N, H, W, C)`` or ``(N, C, H, W)`` (uint8, or floats in [0, 1]), of vectors
``(N, D)``, an :class:`~contraclust.data.ArrayDataset`, or a dataset name / path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from contraclust.config import RunConfig, load_preset, merge
from contraclust.data import ArrayDataset, load_dataset
from contraclust.data.features import FeatureBackbone, features_dataset, load_feature_backbone
from contraclust.data.formats import array_to_dataset
from contraclust.errors import ConfigError
from contraclust.methods import ClusteringMethod
from contraclust.training import (
    config_from_checkpoint,
    fit,
    method_from_checkpoint,
    predict,
    read_checkpoint,
)
from contraclust.training.checkpoint import make_checkpoint, save_checkpoint
from contraclust.training.predict import apply_batched, check_input_shape
from contraclust.utils import resolve_device


def as_dataset(X: Any, y: Any = None, name: str = "array") -> ArrayDataset:
    """Accept the input forms listed in the module docstring."""
    if isinstance(X, (str, Path)):
        X = load_dataset(str(X))
    if isinstance(X, ArrayDataset):
        # Labels given here replace the set's own (and its class names), paths are kept.
        return X if y is None else ArrayDataset(X.data, np.asarray(y), X.name, X.paths)
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    return array_to_dataset(np.asarray(X), None if y is None else np.asarray(y), name)


class Clusterer:
    """Deep clustering with the scikit-learn estimator interface.

    Args:
        method: ``cc``, ``kmeans`` (and the methods listed by ``contraclust methods``).
        n_clusters: number of clusters K (>= 2 and <= number of samples), or ``"auto"``
            to choose it (see :mod:`contraclust.training.select_k`); the chosen K is
            ``n_clusters_`` and the search ``k_search_``.
        epochs: training epochs (None: the preset's or 50).
        batch_size: global batch size (None: the preset's, or min(256, N)).
        lr: learning rate (None: the preset's or the method default).
        backbone: ``auto`` or a backbone name (``small_cnn``, ``resnet18``, ``mlp`` ...).
        augmentation: ``auto``, ``grey``, ``simclr``, ``vector`` or ``none``.
        preset: a preset name (``cc/digits``) or YAML path applied before the above.
        predict_with: ``head`` (argmax of the cluster head) or ``kmeans`` on the embedding.
        device: ``auto``, ``cpu`` or ``cuda``.
        num_nodes: machines the training runs on (DDP), each with one process; every
            node runs the same script, started by torchrun or srun (see
            ``docs/tutorial-multi-gpu.md``). Every process ends with the same model.
        random_state: seed; the same seed on CPU gives the same assignments.
        params: the method's own hyper-parameters (see its ``Params`` dataclass).
        verbose: show a progress bar.
        k_range: candidates of ``n_clusters="auto"``, ``"MIN:MAX"`` or ``(MIN, MAX)``
            (None: 2 to min(20, N // 10)).
        features: a frozen feature backbone the images go through first
            (``torchvision:NAME``, ``timm:NAME`` or a TorchScript file; see
            :mod:`contraclust.data.features`); ``predict`` uses it too.
    """

    def __init__(
        self,
        method: str = "cc",
        n_clusters: int | str = 10,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        backbone: str | None = None,
        augmentation: str | None = None,
        preset: str | None = None,
        predict_with: str | None = None,
        device: str = "auto",
        num_nodes: int = 1,
        random_state: int = 0,
        params: dict[str, Any] | None = None,
        verbose: bool = False,
        k_range: str | tuple[int, int] | None = None,
        features: str | None = None,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.backbone = backbone
        self.augmentation = augmentation
        self.preset = preset
        self.predict_with = predict_with
        self.device = device
        self.num_nodes = num_nodes
        self.random_state = random_state
        self.params = params
        self.verbose = verbose
        self.k_range = k_range
        self.features = features

    # ------------------------------------------------------------------ configuration
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = [
            "method",
            "n_clusters",
            "epochs",
            "batch_size",
            "lr",
            "backbone",
            "augmentation",
            "preset",
            "predict_with",
            "device",
            "num_nodes",
            "random_state",
            "params",
            "verbose",
            "k_range",
            "features",
        ]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> Clusterer:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(f"unknown parameter '{key}'; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def _config(self) -> RunConfig:
        raw: dict[str, Any] = load_preset(self.preset) if self.preset else {}
        override: dict[str, Any] = {"method": self.method, "n_clusters": self.n_clusters}
        train: dict[str, Any] = {
            "seed": self.random_state,
            "device": self.device,
            "num_nodes": self.num_nodes,
        }
        if self.epochs is not None:
            train["epochs"] = self.epochs
        if self.batch_size is not None:
            train["batch_size"] = self.batch_size
        if self.predict_with is not None:
            train["predict_with"] = self.predict_with
        override["train"] = train
        if self.lr is not None:
            override["optim"] = {"lr": self.lr}
        if self.backbone is not None:
            override["model"] = {"backbone": self.backbone}
        if self.augmentation is not None:
            override["augment"] = {"name": self.augmentation}
        if self.params:
            override["params"] = dict(self.params)
        if self.features is not None:
            override["data"] = {"features": self.features}
        if self.k_range is not None:
            k_range = self.k_range
            if isinstance(k_range, (tuple, list)):
                k_range = ":".join(str(k) for k in k_range)
            override["k_search"] = {"k_range": str(k_range)}
        if raw.get("method", self.method) != self.method:
            # A preset of another method carries parameters that do not apply.
            raw.pop("params", None)
        return RunConfig.from_dict(merge(raw, override))

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> Clusterer:
        """Train on ``X``; ``y`` (optional) is used only to report metrics."""
        dataset = as_dataset(X, y)
        cfg = self._config()
        result = fit(cfg, dataset, quiet=not self.verbose)
        self._set_fitted(result.method, result.config, result.prediction.centers)
        self.k_search_ = result.k_search
        self.labels_ = result.prediction.labels
        self.confidence_ = result.prediction.confidence
        self.history_ = result.history
        self.metrics_ = result.metrics
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X, y).labels_

    def _set_fitted(
        self, method: ClusteringMethod, cfg: RunConfig, centers: np.ndarray | None
    ) -> None:
        self.model_ = method.eval()
        self.config_ = cfg
        self.readout_centers_ = centers
        self.n_features_in_ = int(np.prod(method.input_shape))
        #: The number of clusters of the fitted model (the chosen one with ``"auto"``).
        self.n_clusters_ = int(method.n_clusters)
        #: The K search (the content of ``k_search.json``) when K was chosen by ``fit``.
        self.k_search_: dict[str, Any] | None = None
        self.feature_backbone_: FeatureBackbone | None = None

    def _inputs(self, X: Any) -> torch.Tensor:
        """The model's input for ``X``: its features when the model was fitted on them."""
        dataset = as_dataset(X)
        spec = self.config_.data.features
        if not spec:
            return dataset.data
        if self.feature_backbone_ is None:
            self.feature_backbone_ = load_feature_backbone(spec)
        dataset, _ = features_dataset(
            dataset,
            self.feature_backbone_,
            self.config_.data.features_image_size,
            self._device(),
            use_cache=False,
            quiet=not self.verbose,
        )
        return dataset.data

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("this Clusterer is not fitted yet; call fit(X) first")

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X: Any) -> np.ndarray:
        """N x K cluster probabilities of new data (same read-out as in training)."""
        return self._predict(X).probs

    def predict(self, X: Any) -> np.ndarray:
        """Cluster index of each sample of new data."""
        return self._predict(X).labels

    def _predict(self, X: Any):
        self._check_fitted()
        raw = self._inputs(X)
        device = self._device()
        self.model_.to(device)
        try:
            return predict(
                self.model_,
                raw,
                device,
                self.config_.train.predict_with,
                self.config_.train.seed,
                centers=self.readout_centers_,
                progress="predicting" if self.verbose else None,
            )
        finally:
            self.model_.cpu()

    def transform(self, X: Any) -> np.ndarray:
        """The learned embedding of each sample (N x d)."""
        self._check_fitted()
        raw = self._inputs(X)
        check_input_shape(self.model_, raw)
        device = self._device()
        self.model_.to(device)
        try:
            return apply_batched(self.model_, raw, self.model_.embed, device).numpy()
        finally:
            self.model_.cpu()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model (weights + configuration) to one checkpoint file."""
        self._check_fitted()
        state = make_checkpoint(self.model_, self.config_, estimator=self.get_params())
        if self.readout_centers_ is not None:
            state["readout_centers"] = torch.from_numpy(self.readout_centers_)
        save_checkpoint(state, path)


def load(path: str | Path) -> Clusterer:
    """Load a model saved by :meth:`Clusterer.save` or a run's ``model.ckpt`` / run dir."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.ckpt"
    state = read_checkpoint(path)
    cfg = config_from_checkpoint(state)
    method = method_from_checkpoint(state)
    params = dict(state.get("estimator") or {})
    est = Clusterer(method=cfg.method, n_clusters=cfg.n_clusters)
    valid = est.get_params()
    est.set_params(**{k: v for k, v in params.items() if k in valid})
    centers = state.get("readout_centers")
    est._set_fitted(method, cfg, None if centers is None else centers.numpy())
    return est


__all__ = ["Clusterer", "as_dataset", "load"]
