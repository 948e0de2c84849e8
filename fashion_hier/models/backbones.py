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
    """How to build one backbone: its constructor, preprocessing mode and pooled feature size.

    ``trunk``: the registry name of the network this one only adds pooled outputs to (same layers,
    names and weights), so an activation cache at a cut layer of one serves both; None: itself.
    ``pretrained``: whether pretrained (ImageNet) weights exist for it; False: it always starts random.
    """

    constructor: Callable[..., keras.Model]
    preprocess_mode: str
    feature_dim: int
    trunk: str | None = None
    pretrained: bool = True


def SmallCNN(*, include_top: bool = False, pooling: str = "avg", input_shape=None, weights=None,
             name: str = "small_cnn") -> keras.Model:
    """A four-stage VGG-style network (no batch norm) that learns from scratch in minutes on a CPU.

    For the demo, tests and CPU users without pretrained weights: ImageNet architectures trained
    from random initialisation for a few hundred steps predict poorly at evaluation time (their
    batch-norm moving averages have not settled), this one does not depend on them.
    Same keywords as ``keras.applications`` constructors; only ``include_top=False``,
    ``pooling="avg"`` and ``weights=None`` (or a weights file loaded by the caller) are meaningful.
    """
    if include_top or pooling != "avg" or weights not in (None,):
        raise ValueError("small_cnn is built without a top, average-pooled and randomly initialised "
                         f"(got include_top={include_top}, pooling={pooling!r}, weights={weights!r})")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for stage, filters in enumerate((32, 64, 128, 256), start=1):
        for conv in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"stage{stage}_conv{conv}")(x)
        if stage < 4:
            x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name=name)


def multiscale(constructor: Callable[..., keras.Model], stages: tuple[str, ...]) -> Callable[..., keras.Model]:
    """A ``keras.applications`` constructor whose pooled output also averages earlier stages' maps.

    The features are ``[GAP(last stage), GAP(stages[0]), GAP(stages[1]), ...]`` concatenated: the
    last stage is what ImageNet trained for objects, the earlier ones keep the textures and shapes
    that tell close product types apart (measured on Fashion Product Images:
    experiments/results/fpi/recipe.md). Same keywords as the constructor; the layers keep their
    names, so a weights file of the plain network loads and a cut such as ``conv4_block6_out`` works.
    """
    def build(*, include_top: bool = False, pooling: str = "avg", input_shape=None, weights=None,
              name: str = "backbone") -> keras.Model:
        if include_top or pooling != "avg":
            raise ValueError(f"a multi-scale backbone is built without a top and average-pooled "
                             f"(got include_top={include_top}, pooling={pooling!r})")
        network = constructor(include_top=False, pooling=None, input_shape=input_shape, weights=weights)
        pooled = [keras.layers.GlobalAveragePooling2D(name="avg_pool")(network.output)]
        pooled += [keras.layers.GlobalAveragePooling2D(name=f"{stage}_avg_pool")(network.get_layer(stage).output)
                   for stage in stages]
        return keras.Model(network.input, keras.layers.Concatenate(name="multiscale_features")(pooled), name=name)

    return build


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(keras.applications.ResNet50, "caffe", 2048),
    # conv5 + conv4 pooled (2048 + 1024): the recipe's; + conv3 (512) measured no better on validation
    "resnet50_multiscale": BackboneSpec(multiscale(keras.applications.ResNet50, ("conv4_block6_out",)), "caffe", 3072,
                                        trunk="resnet50"),
    "resnet50_multiscale_conv3": BackboneSpec(multiscale(keras.applications.ResNet50,
                                                         ("conv4_block6_out", "conv3_block4_out")), "caffe", 3584,
                                              trunk="resnet50"),
    "resnet50v2": BackboneSpec(keras.applications.ResNet50V2, "tf", 2048),
    "efficientnetb0": BackboneSpec(keras.applications.EfficientNetB0, "none", 1280),
    "mobilenetv2": BackboneSpec(keras.applications.MobileNetV2, "tf", 1280),
    "small_cnn": BackboneSpec(SmallCNN, "tf", 256, pretrained=False),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; a ValueError listing the known names otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def backbone_trunk(name: str) -> str:
    """The registry name whose layers ``name`` shares up to its pooling (``BackboneSpec.trunk``, else ``name``)."""
    return backbone_spec(name).trunk or name


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
