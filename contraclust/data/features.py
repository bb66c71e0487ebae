"""Frozen features of a pretrained backbone, computed once and cached on disk.

With ``--features BACKBONE`` the images go once through a frozen, pretrained network
and the clustering method trains only its heads (an MLP) on the resulting vectors,
which is much cheaper than training a CNN and, with a good backbone, much better.

A backbone is named by one of:

* ``torchvision:NAME`` (``torchvision:resnet50``): torchvision's model with its
  default weights, which must already be in torch's hub cache (nothing is
  downloaded); the classification layer is removed.
* ``timm:NAME`` (``timm:vit_small_patch14_dinov2``): a timm model with its pretrained
  weights from the local Hugging Face cache, without its classifier.
* a path to a TorchScript file (``torch.jit.save`` of a module) mapping a float32
  batch ``(B, 3, S, S)`` of RGB images in [0, 1] to ``(B, D)`` vectors; it does its
  own normalisation. A ``(B, D, h, w)`` output is average-pooled.

Grey images are repeated to three channels; every image is resized (shorter side,
centre crop) to ``S`` = the ``image_size`` asked for, else 224 for torchvision and
timm, else the images' own (square) size. The features are cached under
``$CONTRACLUST_CACHE/features/`` (default ``~/.cache/contraclust/features/``) in a
file named by a hash of the backbone (its file's content for TorchScript), the image
content and ``S``, so a repeated run skips the backbone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from contraclust.data.dataset import ArrayDataset
from contraclust.data.readers.images import resize_images
from contraclust.errors import ConfigError, DataError
from contraclust.utils import atomic_torch_save

__all__ = [
    "CACHE_ENV",
    "FeatureBackbone",
    "feature_cache_dir",
    "features_dataset",
    "load_feature_backbone",
    "resolve_image_size",
]

log = logging.getLogger("contraclust")

#: Environment variable naming the cache folder (features go to its ``features/``).
CACHE_ENV = "CONTRACLUST_CACHE"
#: Input side for torchvision and timm backbones when no image size is given.
PRETRAINED_IMAGE_SIZE = 224
# The normalisation torchvision's and timm's ImageNet weights expect.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Bumped when the cached content changes meaning.
_CACHE_VERSION = 1
_HINT = (
    "or pass a TorchScript file instead (torch.jit.save of a module mapping (B, 3, S, S) "
    "RGB images in [0, 1] to (B, D) vectors)"
)


@dataclass
class FeatureBackbone:
    """A loaded frozen feature extractor.

    Attributes:
        spec: the name it was given by (``torchvision:resnet50`` or a file path).
        module: the network, in eval mode, mapping network inputs to features.
        identity: what the cache key uses for the backbone (a content hash for files).
        default_image_size: the input side when none is asked for (None: the images').
        normalize: whether the inputs get the ImageNet mean/std normalisation first.
    """

    spec: str
    module: nn.Module
    identity: str
    default_image_size: int | None
    normalize: bool


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _without_classifier(model: nn.Module) -> nn.Module:
    """The network up to its pooled features: the last classification layer removed."""
    for attribute in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, attribute, None), nn.Module):
            setattr(model, attribute, nn.Identity())
            return model
    return model


def _torchvision_backbone(name: str) -> FeatureBackbone:
    spec = f"torchvision:{name}"
    try:
        import torchvision
    except Exception as exc:  # not installed, or built for another torch (fails on import)
        raise ConfigError(
            f"features={spec} needs torchvision, which cannot be imported here "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
            f"install the torchvision build matching torch {torch.__version__}, {_HINT}"
        ) from None
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(
            f"features={spec}: torchvision has no model '{name}' with pretrained weights "
            f"(see torchvision.models.list_models()), {_HINT}"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(str(weights.url)).name
    if not cached.is_file():
        raise ConfigError(
            f"features={spec}: the weights are not on this machine (looked for {cached}); "
            "nothing is downloaded during a run: fetch them once with "
            f"`python -c \"import torchvision; torchvision.models.get_model('{name}', "
            f"weights='DEFAULT')\"`, {_HINT}"
        )
    model = torchvision.models.get_model(name, weights=weights)
    identity = f"{spec}:{weights}:{_file_digest(cached)}"
    return FeatureBackbone(spec, _without_classifier(model), identity, PRETRAINED_IMAGE_SIZE, True)


def _timm_backbone(name: str) -> FeatureBackbone:
    spec = f"timm:{name}"
    try:
        import timm
    except Exception as exc:
        raise ConfigError(
            f"features={spec} needs timm, which cannot be imported here "
            f"({type(exc).__name__}); pip install timm (with a torchvision matching torch "
            f"{torch.__version__}), {_HINT}"
        ) from None
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # weights come from the local cache or not at all
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as exc:
        raise ConfigError(
            f"features={spec}: cannot load the pretrained model from the local cache "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
            f"download its weights once with timm.create_model('{name}', pretrained=True), "
            f"{_HINT}"
        ) from None
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
    identity = f"{spec}:{getattr(timm, '__version__', '?')}"
    return FeatureBackbone(spec, model, identity, PRETRAINED_IMAGE_SIZE, True)


def _torchscript_backbone(spec: str) -> FeatureBackbone:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"features={spec}: no such file; give torchvision:NAME, timm:NAME or the path "
            "of a TorchScript file"
        )
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ConfigError(
            f"features={spec}: not a TorchScript file ({first}); save the backbone with "
            "torch.jit.save(torch.jit.script(module), path) or torch.jit.trace"
        ) from None
    identity = f"torchscript:{_file_digest(path)}"
    return FeatureBackbone(str(path), module, identity, None, False)


def load_feature_backbone(spec: str) -> FeatureBackbone:
    """Load the frozen backbone ``spec`` names (see the module docstring).

    Raises:
        ConfigError: when the package is missing or does not import, the model is
            unknown, its weights are not on this machine, or the file is not TorchScript.
    """
    scheme, sep, name = spec.partition(":")
    if sep and scheme in ("torchvision", "timm"):
        if not name:
            raise ConfigError(f"features={spec}: name the model, e.g. {scheme}:resnet50")
        backbone = _torchvision_backbone(name) if scheme == "torchvision" else _timm_backbone(name)
    else:
        backbone = _torchscript_backbone(spec)
    backbone.module.eval()
    for parameter in backbone.module.parameters():
        parameter.requires_grad_(False)
    return backbone


def feature_cache_dir() -> Path:
    """``$CONTRACLUST_CACHE/features``, or ``~/.cache/contraclust/features``."""
    root = os.environ.get(CACHE_ENV, "")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "contraclust"
    return base / "features"


def resolve_image_size(backbone: FeatureBackbone, images: Tensor, image_size: int | None) -> int:
    """The side the images are given to ``backbone`` at (see the module docstring)."""
    if image_size is not None:
        if image_size < 1:
            raise ConfigError(f"the feature image size must be >= 1, got {image_size}")
        return image_size
    if backbone.default_image_size is not None:
        return backbone.default_image_size
    height, width = int(images.shape[2]), int(images.shape[3])
    if height != width:
        raise ConfigError(
            f"features={backbone.spec}: the images are {height}×{width}; give the side the "
            "backbone expects with image_size=SIDE"
        )
    return height


def _cache_key(backbone: FeatureBackbone, images: Tensor, image_size: int) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"v{_CACHE_VERSION}|{backbone.identity}|{image_size}|".encode())
    digest.update(repr(tuple(images.shape)).encode())
    digest.update(np.ascontiguousarray(images.numpy()).data)
    return digest.hexdigest()


@torch.no_grad()
def extract_features(
    backbone: FeatureBackbone,
    images: Tensor,
    image_size: int,
    device: torch.device,
    batch_size: int = 128,
    quiet: bool = False,
) -> Tensor:
    """Run ``images`` (uint8 ``(N, C, H, W)``) through ``backbone``: float32 ``(N, D)``.

    Batched, without gradients, on ``device``, with a progress bar unless ``quiet``.
    """
    from tqdm.auto import tqdm

    module = backbone.module.to(device)
    mean = torch.tensor(_IMAGENET_MEAN, device=device)[None, :, None, None]
    std = torch.tensor(_IMAGENET_STD, device=device)[None, :, None, None]
    outs: list[Tensor] = []
    try:
        for start in tqdm(
            range(0, len(images), batch_size),
            desc=f"features {Path(backbone.spec).name}",
            unit="batch",
            disable=quiet,
            dynamic_ncols=True,
        ):
            batch = resize_images(images[start : start + batch_size].cpu(), image_size)
            x = batch.to(device).float().div_(255.0)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if backbone.normalize:
                x = (x - mean) / std
            try:
                out = module(x)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                raise DataError(
                    f"features={backbone.spec} failed on a batch of shape {tuple(x.shape)} "
                    f"({type(exc).__name__}: {first}); check the image size it expects "
                    "(--image-size)"
                ) from None
            out = _as_vectors(out, backbone.spec)
            outs.append(out.float().cpu())
    finally:
        module.cpu()
    features = torch.cat(outs)
    if not bool(torch.isfinite(features).all()):
        raise DataError(f"features={backbone.spec} produced NaN/inf features")
    return features.contiguous()


def _as_vectors(out: object, spec: str) -> Tensor:
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, Tensor):
        raise DataError(f"features={spec} returned {type(out).__name__}, not a tensor")
    if out.dim() == 4:  # a feature map: global average pooling
        out = out.mean(dim=(2, 3))
    if out.dim() != 2:
        raise DataError(
            f"features={spec} returned a tensor of shape {tuple(out.shape)}; expected "
            "(B, D) vectors or (B, D, h, w) maps"
        )
    return out


def _read_cache(path: Path, n_samples: int) -> Tensor | None:
    """The cached features, or None when the file is missing, unreadable or mismatched."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = state["features"]
    except Exception as exc:  # a damaged cache entry is recomputed, never fatal
        log.warning("feature cache %s is unreadable (%s); computing again", path, exc)
        return None
    if (
        not isinstance(features, Tensor)
        or features.dim() != 2
        or features.shape[0] != n_samples
        or features.dtype != torch.float32
    ):
        log.warning("feature cache %s does not match the data; computing again", path)
        return None
    return features


def _say(message: str, quiet: bool) -> None:
    log.info(message)
    if not quiet:
        print(message, file=sys.stderr)


def features_dataset(
    dataset: ArrayDataset,
    backbone: FeatureBackbone | str,
    image_size: int | None,
    device: torch.device,
    *,
    use_cache: bool = True,
    quiet: bool = False,
) -> tuple[ArrayDataset, int]:
    """The dataset of ``backbone``'s features of ``dataset``'s images, and the side used.

    With ``use_cache`` the features are read from the cache when an earlier run
    computed them for the same backbone, images and side, and written there
    (atomically) otherwise; a line says which happened.

    Raises:
        ConfigError: for a backbone that cannot be loaded or a vector dataset.
        DataError: when the backbone fails on the images or returns non-finite values.
    """
    if dataset.kind != "image":
        raise ConfigError(
            f"a feature network applies to images, but {dataset.name or 'the data'} holds "
            "vectors; drop features=... (vectors train an MLP directly)"
        )
    if isinstance(backbone, str):
        backbone = load_feature_backbone(backbone)
    side = resolve_image_size(backbone, dataset.data, image_size)
    features: Tensor | None = None
    path: Path | None = None
    if use_cache:
        path = feature_cache_dir() / f"{_cache_key(backbone, dataset.data, side)}.pt"
        features = _read_cache(path, len(dataset))
        if features is not None:
            _say(
                f"features: reusing cached {backbone.spec} features of {len(dataset)} images "
                f"({side}px) from {path}",
                quiet,
            )
    if features is None:
        features = extract_features(backbone, dataset.data, side, device, quiet=quiet)
        if path is not None:
            state = {"features": features, "backbone": backbone.spec, "image_size": side}
            try:
                atomic_torch_save(state, path)
            except OSError as exc:  # a cache that cannot be written only costs time
                log.warning("cannot write the feature cache %s (%s)", path, exc.strerror)
            else:
                _say(
                    f"features: computed {backbone.spec} features {tuple(features.shape)} "
                    f"({side}px), cached in {path}",
                    quiet,
                )
    out = ArrayDataset(
        data=features,
        labels=dataset.labels,
        name=dataset.name,
        paths=dataset.paths,
        class_names=dataset.class_names,
        skipped=list(dataset.skipped),
    )
    return out, side
