"""Backbone registry: ``keras.applications`` feature extractors by name, each with its preprocessing.

Like the backbone tables of segmentation_models and timm: one entry per name, no if/elif chain.
Every backbone is built without its ImageNet top and globally average-pooled, so the heads read
pooled features (as in Ferreira et al. 2018), never the ImageNet class probabilities.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Callable

import keras


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: its constructor, preprocessing mode and pooled feature size."""

    constructor: Callable[..., keras.Model]
    preprocess_mode: str
    feature_dim: int


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(keras.applications.ResNet50, "caffe", 2048),
    "resnet50v2": BackboneSpec(keras.applications.ResNet50V2, "tf", 2048),
    "efficientnetb0": BackboneSpec(keras.applications.EfficientNetB0, "none", 1280),
    "mobilenetv2": BackboneSpec(keras.applications.MobileNetV2, "tf", 1280),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; a ValueError listing the known names otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def build_backbone(name: str, weights: str | os.PathLike | None, input_shape: tuple[int, int, int],
                   *, model_name: str = "backbone") -> keras.Model:
    """The pooled feature extractor ``name`` (no top, ``pooling="avg"``) as a model called ``model_name``.

    ``weights``: ``"imagenet"`` (Keras download), ``None`` (random initialisation) or the path of a
    local weights file for this architecture without its top (e.g. the one written by
    ``shared/tools/get_resnet50_imagenet.sh``).
    """
    spec = backbone_spec(name)
    weights_file = _local_weights_file(weights)
    model = spec.constructor(include_top=False, pooling="avg", input_shape=tuple(input_shape),
                             weights=None if weights_file else weights, name=model_name)
    if weights_file is not None:
        try:
            model.load_weights(weights_file)
        except (ValueError, OSError) as error:
            raise ValueError(
                f"could not load backbone weights {weights_file} into {name!r} (no top, pooling='avg'): "
                f"{error}. Pass a weights file of this architecture without its top, "
                f"weights='imagenet' or weights=None") from error
    return model


def _local_weights_file(weights: str | os.PathLike | None) -> str | None:
    """The path when ``weights`` names a file, None for ``"imagenet"``/None; an error if it is missing."""
    if weights is None or (isinstance(weights, str) and weights == "imagenet"):
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be 'imagenet', None or a file path, got {type(weights).__name__}")
    path = pathlib.Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights file not found: {path}. Pass weights='imagenet' (download), weights=None "
            f"(random initialisation), or write the file first (shared/tools/get_resnet50_imagenet.sh "
            f"writes ResNet-50 weights)")
    return str(path)
