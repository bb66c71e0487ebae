"""The scikit-learn-style estimator.

>>> from sklearn.datasets import load_digits
>>> from contraclust import Clusterer
>>> X = load_digits().images            # (1797, 8, 8) grey images
>>> model = Clusterer(n_clusters=10, budget="1m").fit(X)  # doctest: +SKIP
>>> model.labels_[:5], model.predict(X[:5])                         # doctest: +SKIP

Constructor arguments are stored unchanged; fitted state lives in attributes ending
in ``_``. ``X`` may be a numpy array or tensor of images ``(N, H, W)``,
``(N, H, W, C)`` or ``(N, C, H, W)`` (uint8, or floats in [0, 1]), of vectors
``(N, D)``, an :class:`~contraclust.data.ArrayDataset`, or a dataset name / path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.multiclass import type_of_target

from contraclust.config import RunConfig, build_config
from contraclust.data import ArrayDataset, array_to_dataset, load_dataset
from contraclust.data.features import FeatureBackbone, features_dataset, load_feature_backbone
from contraclust.errors import ConfigError, DataError, NotFittedError, did_you_mean
from contraclust.methods import ClusteringMethod
from contraclust.training import (
    config_from_checkpoint,
    fit,
    method_from_checkpoint,
    predict,
    read_checkpoint,
    rundir,
)
from contraclust.training.checkpoint import make_checkpoint, save_checkpoint
from contraclust.training.predict import apply_batched, check_input_shape, conform_to_model
from contraclust.utils import resolve_device


def as_dataset(X: Any, y: Any = None, name: str = "array", skip_bad: bool = False) -> ArrayDataset:
    """Accept the input forms listed in the module docstring."""
    if isinstance(X, (str, Path)):
        X = load_dataset(str(X), skip_bad=skip_bad)
    if isinstance(X, ArrayDataset):
        # Labels given here replace the set's own (and its class names), paths are kept.
        return X if y is None else ArrayDataset(X.data, np.asarray(y), X.name, X.paths)
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if scipy.sparse.issparse(X):
        raise DataError(
            f"sparse input ({type(X).__name__}) is not supported; pass a dense array, "
            "e.g. X.toarray()"
        )
    X = np.asarray(X)
    if X.dtype == object:  # numbers held as Python objects (a DataFrame's .values)
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(
                "X holds objects that are not numbers; give an array of numbers"
            ) from None
    if np.iscomplexobj(X):
        raise DataError("Complex data not supported: X holds complex numbers; give real numbers")
    if y is not None:
        y = np.asarray(y)
        if y.dtype == object:
            try:
                type_of_target(y, raise_unknown=True)
            except ValueError as exc:
                raise DataError(f"y: {exc}; labels must be integers or strings") from None
    return array_to_dataset(np.asarray(X), None if y is None else np.asarray(y), name)


#: scikit-learn's estimator checks that cannot apply to a deep clusterer, with the
#: reason; ``check_estimator(Clusterer(...), expected_failed_checks=...)`` takes them
#: from :meth:`Clusterer.expected_failed_checks`.
_ONE_CLUSTER = (
    "sets n_clusters=1; a partition into one cluster has nothing to learn, so contraclust "
    "refuses K < 2 with a ConfigError"
)
_NOT_APPLICABLE: dict[str, str] = {
    "check_dont_overwrite_parameters": _ONE_CLUSTER,
    "check_fit2d_1feature": _ONE_CLUSTER,
    "check_fit2d_predict1d": _ONE_CLUSTER,
    "check_methods_subset_invariance": _ONE_CLUSTER,
    "check_dtype_object": (
        "expects numpy's TypeError for an object that is not a number; contraclust "
        "raises a DataError (a ValueError) that says so"
    ),
    "check_estimators_empty_data_messages": (
        "asks for scikit-learn's own wording; contraclust's DataError says that the "
        "vectors of shape (N, 0) have no features"
    ),
}


class Clusterer(ClusterMixin, TransformerMixin, BaseEstimator):
    """Deep clustering with the scikit-learn estimator interface.

    Every argument is stored unchanged (``get_params``/``set_params``, ``clone`` and
    grid search work as for any scikit-learn estimator); ``None`` leaves a setting to
    the preset, or to the library's default. The names are those of the command line's
    flags (``batch_size`` is ``--batch-size``), except ``n_clusters`` (``--clusters``),
    ``random_state`` (``--seed``) and ``self_label_epochs`` (``--self-label``).

    Args:
        method: ``deca``, ``cc``, ``kmeans`` ... (``contraclust methods`` lists them);
            None: the default recipe (``presets/default.yaml``: DECA with a late k-means
            start and cluster repair), unless a preset names the method. A method given
            without a preset starts from its own defaults.
        n_clusters: number of clusters K (>= 2 and <= number of samples), or ``"auto"``
            to choose it (see :mod:`contraclust.training.select_k`); the chosen K is
            ``n_clusters_`` and the search ``k_search_``.
        epochs: training epochs (None: the preset's, or as many as ``budget`` allows,
            at most 50).
        budget: the wall time the run is sized to, ``"90s"``, ``"5m"``, ``"1h30m"``,
            ``"none"`` or ``"auto"`` (None: auto, 5 minutes on a CPU and 30 on a GPU).
            Unset image size, backbone and epochs are chosen to fit it after timing a
            few steps (see :mod:`contraclust.training.budget`); given or preset epochs
            are kept, with a warning when the run is expected to exceed it by > 20%.
        restarts: trainings with the seeds ``random_state``, ``random_state + 1``, ...
            sharing the budget; the partition that agrees most with the others is kept
            (None: 1; see :mod:`contraclust.evaluation.agreement`).
        batch_size: global batch size (None: the preset's, or min(128, N)).
        lr: learning rate (None: the preset's or 3e-4).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (None: the preset's or adam).
        backbone: ``auto`` or a backbone name (``small_cnn``, ``resnet18``, ``mlp`` ...).
        augment: ``auto``, ``grey``, ``simclr``, ``vector`` or ``none``.
        image_size: side images are resized to (None: their own).
        self_label_epochs: epochs of self-labelling after training (None: 0).
        preset: a preset name (``cc/digits``) or YAML path applied before the above.
        predict_with: ``head`` (argmax of the cluster head), ``kmeans`` (on the features
            of ``kmeans_space``) or ``sinkhorn`` (argmax of an assignment balanced over
            the whole data set); see docs/methods.md.
        kmeans_space: where the k-means read-out runs: ``backbone``, ``projection`` or
            ``exemplar``, as the method offers (None: the preset's or ``backbone``).
        device: ``auto``, ``cpu`` or ``cuda``.
        num_nodes: machines the training runs on (DDP), one process each; every node
            runs the same script, started by torchrun or srun (see
            ``docs/tutorial-multi-gpu.md``). Every process ends with the same model.
        random_state: seed; the same seed on CPU gives the same assignments.
        params: the method's own hyper-parameters (see its ``Params`` dataclass).
        verbose: show a progress bar.
        k_range: candidates of ``n_clusters="auto"``, ``"MIN:MAX"`` or ``(MIN, MAX)``
            (None: 2 to min(20, N // 10)).
        features: a frozen feature backbone the images go through first
            (``torchvision:NAME``, ``timm:NAME`` or a TorchScript file; see
            :mod:`contraclust.data.features`); ``predict`` uses it too.
        skip_bad_images: when ``X`` is a folder, skip (and report) files that cannot be
            decoded instead of stopping.
    """

    def __init__(
        self,
        method: str | None = None,
        n_clusters: int | str = 10,
        *,
        epochs: int | None = None,
        budget: str | None = None,
        restarts: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        optimizer: str | None = None,
        backbone: str | None = None,
        augment: str | None = None,
        image_size: int | None = None,
        self_label_epochs: int | None = None,
        preset: str | None = None,
        predict_with: str | None = None,
        kmeans_space: str | None = None,
        device: str = "auto",
        num_nodes: int = 1,
        random_state: int = 0,
        params: dict[str, Any] | None = None,
        verbose: bool = False,
        k_range: str | tuple[int, int] | None = None,
        features: str | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.epochs = epochs
        self.budget = budget
        self.restarts = restarts
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.backbone = backbone
        self.augment = augment
        self.image_size = image_size
        self.self_label_epochs = self_label_epochs
        self.preset = preset
        self.predict_with = predict_with
        self.kmeans_space = kmeans_space
        self.device = device
        self.num_nodes = num_nodes
        self.random_state = random_state
        self.params = params
        self.verbose = verbose
        self.k_range = k_range
        self.features = features
        self.skip_bad_images = skip_bad_images

    # ------------------------------------------------------------------ configuration
    def _config(self) -> RunConfig:
        options = self.get_params()
        for name in ("preset", "verbose"):
            options.pop(name)
        options["skip_bad_images"] = self.skip_bad_images or None
        return build_config(self.preset, options)

    def set_params(self, **params: Any) -> Clusterer:
        valid = list(self.get_params())
        for key in params:
            if key not in valid:
                raise ConfigError(
                    f"unknown parameter '{key}'{did_you_mean(key, valid)}; "
                    f"valid: {', '.join(valid)}"
                )
        return super().set_params(**params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.device not in ("cpu",) and torch.cuda.is_available()
        return tags

    def expected_failed_checks(self) -> dict[str, str]:
        """scikit-learn's estimator checks that cannot apply to this estimator, with the
        reason for each (pass them to ``check_estimator(..., expected_failed_checks=)``)."""
        checks = dict(_NOT_APPLICABLE)
        if self.method != "kmeans" and (self.epochs is None or self.epochs < 20):
            checks["check_clustering"] = (
                "asks for ARI > 0.4 on 50 points after a short deep training (here "
                f"epochs={self.epochs}: one step per epoch on 50 samples); the learning "
                "tests in tests/methods show what the methods reach"
            )
        return checks

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> Clusterer:
        """Train on ``X``; ``y`` (optional) is used only to report metrics."""
        cfg = self._config()
        dataset = as_dataset(X, y, skip_bad=self.skip_bad_images)
        if self.image_size is not None and dataset.kind == "image":
            shape = (dataset.input_shape[0], self.image_size, self.image_size)
            dataset = replace(dataset, data=conform_to_model(dataset.data, shape))
        result = fit(cfg, dataset, quiet=not self.verbose)
        self._set_fitted(result.method, result.config, result.prediction.centers)
        self.k_search_ = result.k_search
        self.labels_ = result.prediction.labels
        self.confidence_ = result.prediction.confidence
        self.history_ = result.history
        self.metrics_ = result.metrics
        return self

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
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

    def prepare_input(self, X: Any, split: str | None = None) -> ArrayDataset:
        """New data as the model takes it: read (arrays, a folder, a file or a data set
        name, with the training run's data root), through the feature network when the
        model was fitted on features, and with images converted to the model's
        channels (grey / colour) and side."""
        self._check_fitted()
        cfg = self.config_
        if isinstance(X, (str, Path)):
            image_size = None
            if cfg.data.features:  # the images go through the feature backbone as in training
                image_size = cfg.data.image_size
            X = load_dataset(
                str(X),
                root=cfg.data.root,
                image_size=image_size,
                skip_bad=cfg.data.skip_bad_images or self.skip_bad_images,
                split=split,
                label_column=cfg.data.label_column,
            )
        dataset = replace(as_dataset(X))  # a copy: the caller's set is not changed
        if cfg.data.features:
            if self.feature_backbone_ is None:
                self.feature_backbone_ = load_feature_backbone(cfg.data.features)
            dataset, _ = features_dataset(
                dataset,
                self.feature_backbone_,
                cfg.data.features_image_size,
                self._device(),
                use_cache=False,
                quiet=not self.verbose,
            )
            return dataset
        shape = self.model_.input_shape
        if dataset.kind == "vector" and len(shape) == 1 and dataset.input_shape != shape:
            raise DataError(  # scikit-learn's wording, then ours
                f"X has {dataset.input_shape[0]} features, but {type(self).__name__} is "
                f"expecting {shape[0]} features as input (trained on vectors of length "
                f"{tuple(shape)}, given {tuple(dataset.input_shape)}); select matching data"
            )
        if dataset.kind == "image" and len(shape) == 3:
            dataset.data = conform_to_model(dataset.data, shape)
        elif dataset.kind == "image" or len(shape) == 3:
            what = "images" if len(shape) == 3 else "vectors"
            raise DataError(
                f"this model was trained on {what} of shape {tuple(shape)}; the new data "
                f"hold {dataset.kind}s of shape {tuple(dataset.input_shape)}; resize or select "
                "matching data"
            )
        return dataset

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X) before using it"
            )

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X: Any) -> np.ndarray:
        """N x K cluster probabilities of new data (same read-out as in training)."""
        return self._predict(self.prepare_input(X)).probs

    def predict(self, X: Any) -> np.ndarray:
        """Cluster index of each sample of new data."""
        return self._predict(self.prepare_input(X)).labels

    def _predict(self, dataset: ArrayDataset):
        """Read out ``dataset``, already made ready by :meth:`prepare_input`."""
        self._check_fitted()
        device = self._device()
        self.model_.to(device)
        try:
            return predict(
                self.model_,
                dataset.data,
                device,
                self.config_.train.predict_with,
                self.config_.train.seed,
                centers=self.readout_centers_,
                kmeans_space=self.config_.train.kmeans_space,
                kmeans_n_init=self.config_.train.kmeans_n_init,
                progress="predicting" if self.verbose else None,
            )
        finally:
            self.model_.cpu()

    def transform(self, X: Any) -> np.ndarray:
        """The learned embedding of each sample (N x d)."""
        self._check_fitted()
        raw = self.prepare_input(X).data
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


def params_of_config(cfg: RunConfig) -> dict[str, Any]:
    """The estimator's arguments that reproduce the settings a model was trained with."""
    return {
        "method": cfg.method,
        "n_clusters": cfg.n_clusters,
        "epochs": cfg.train.epochs,
        "budget": cfg.train.budget,
        "batch_size": cfg.train.batch_size,
        "lr": cfg.optim.lr,
        "optimizer": cfg.optim.name,
        "backbone": cfg.model.backbone,
        "augment": cfg.augment.name,
        "image_size": cfg.data.image_size,
        "self_label_epochs": cfg.train.self_label_epochs,
        "predict_with": cfg.train.predict_with,
        "kmeans_space": cfg.train.kmeans_space,
        "random_state": cfg.train.seed,
        "params": dict(cfg.params) or None,
        "k_range": cfg.k_search.k_range,
        "features": cfg.data.features,
        "skip_bad_images": cfg.data.skip_bad_images,
    }


def load(path: str | Path) -> Clusterer:
    """Load a model saved by :meth:`Clusterer.save` or a run's ``model.ckpt`` / run dir."""
    path = Path(path)
    if path.is_dir():
        path = path / rundir.MODEL
    state = read_checkpoint(path)
    cfg = config_from_checkpoint(state)
    method = method_from_checkpoint(state)
    est = Clusterer()
    valid = est.get_params()
    saved = dict(state.get("estimator") or {})
    if "augmentation" in saved:  # the name of ``augment`` before 0.2
        saved.setdefault("augment", saved.pop("augmentation"))
    # What the model was trained with, then what the saved estimator said of the rest
    # (device, verbose; its preset is already part of the trained settings).
    est.set_params(**{k: v for k, v in saved.items() if k in valid and k != "preset"})
    est.set_params(**params_of_config(cfg))
    centers = state.get("readout_centers")
    est._set_fitted(method, cfg, None if centers is None else centers.numpy())
    return est


def evaluate_shift(
    run: str | Path,
    data: str | None = None,
    split: str | None = None,
    corruption: str | None = None,
    severity: int | None = None,
    seed: int = 0,
    data_root: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Score the trained run in ``run`` on other data, another split of its data, or a
    corrupted copy (``noise``, ``blur`` or ``contrast`` at ``severity`` 1 to 5, 3 when
    not given). The result is written to ``run/shift/<data>-<split>-<shift>.json``;
    returns it and that path."""
    from contraclust.data.corruptions import corrupt
    from contraclust.data.registry import get_dataset_info
    from contraclust.evaluation import evaluate
    from contraclust.training.loop import cluster_summary
    from contraclust.utils import atomic_write_json

    if severity is not None and not corruption:
        raise ConfigError("severity needs corruption: give corruption=noise, blur or contrast")
    run = Path(run)
    est = load(run)
    cfg = est.config_
    if data_root:
        cfg.data.root = data_root
    spec = data or cfg.data.name
    try:
        info = get_dataset_info(spec)
        split = split or info.default_split or "all"
    except DataError:  # a folder or an array file: always read whole
        info = None
    ds = est.prepare_input(spec, split=split)
    split = split or "all"
    if corruption:
        if ds.kind != "image":
            raise ConfigError(f"corruption applies to images; {ds.name} holds vectors")
        severity = 3 if severity is None else severity
        ds.data = corrupt(ds.data, corruption, severity, seed=seed)
    pred = est._predict(ds)
    metrics = evaluate(ds.labels, pred.labels) if ds.labels is not None else None
    data_name = info.name if info else (Path(spec).name or "data")
    shift = f"{corruption}-{severity}" if corruption else "clean"
    result = {
        "run": str(run),
        "method": cfg.method,
        "trained_on": {"data": cfg.data.name, "split": cfg.data.split},
        "data": spec,
        "split": split,
        "corruption": corruption,
        "severity": severity,
        "seed": seed if corruption == "noise" else None,
        "n_samples": len(ds),
        "metrics": metrics,
        "note": None if metrics else "the data have no labels: metrics need labels",
        **cluster_summary(pred.labels, est.model_.n_clusters),
    }
    out = run / "shift" / f"{_slug(data_name)}-{_slug(split)}-{shift}.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_json(out, result)
    return result, out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


__all__ = [
    "Clusterer",
    "NotFittedError",
    "as_dataset",
    "evaluate_shift",
    "load",
    "params_of_config",
]
