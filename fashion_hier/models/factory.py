"""The model factory: raw RGB image -> preprocessing -> pooled backbone -> head -> three outputs.

``build_model`` reads like a ``keras.applications`` constructor (same ``weights`` and
``input_shape`` keywords); ``build_head_model`` builds the same head on a feature input, and
``copy_head_weights`` moves a head between the two by layer name (feature-cache training, then
fine-tuning of the full model).
"""
from __future__ import annotations

import numbers
import os
from typing import Sequence

import keras

from fashion_hier.labels import LEVELS, check_layout
from fashion_hier.models.backbones import backbone_spec, build_backbone
from fashion_hier.models.heads import HEADS, HeadSettings, normalised_features
from fashion_hier.models.preprocess import Preprocess

BACKBONE_LAYER = "backbone"


def build_model(num_categories: int, num_subcategories: int, num_attributes: int, *,
                backbone: str = "resnet50", weights: str | os.PathLike | None = "imagenet",
                input_shape: tuple[int, int, int] = (224, 224, 3), head: str = "message_passing",
                units: int = 1024, l2: float = 5e-4, dropout: float = 0.3,
                trainable_backbone: bool = True, top_down: bool = True,
                bottom_up: bool = True, input_norm: str = "none",
                attribute_layout: Sequence[tuple[str, int]] | None = None) -> keras.Model:
    """The unified structured-output model of Ferreira et al. 2018 (arXiv 1806.09445).

    Input ``image``: raw RGB, 0..255, shape ``input_shape``. Layers: ``preprocess`` (the backbone's
    own ``preprocess_input``), ``backbone`` (a functional sub-model, pooled features), the head's
    layers, and outputs ``category`` (softmax), ``subcategory`` (softmax), ``attributes`` (sigmoid).
    ``weights``: ``"imagenet"``, ``None`` or a local weights file for the backbone.
    ``input_norm``: ``"batchnorm"`` puts a BatchNormalization layer between the pooled features and the head.
    ``attribute_layout``: ``(kind, size)`` per attribute column (``LabelSpace.attribute_layout``): the
    attribute output is then a softmax per ``single`` group and sigmoids per ``multi`` group.
    """
    num_classes = _class_counts(num_categories, num_subcategories, num_attributes)
    layout = _layout(attribute_layout, num_classes["attributes"])
    input_shape = _image_shape(input_shape)
    settings = _head_settings(head, units, l2, dropout)
    spec = backbone_spec(backbone)

    image = keras.Input(shape=input_shape, name="image")
    pixels = Preprocess(spec.preprocess_mode, name="preprocess")(image)
    features_model = build_backbone(backbone, weights, input_shape, model_name=BACKBONE_LAYER)
    features_model.trainable = bool(trainable_backbone)
    pooled = normalised_features(features_model(pixels), input_norm)
    outputs = HEADS[head](pooled, num_classes, settings, top_down=top_down, bottom_up=bottom_up,
                          attribute_layout=layout)
    return keras.Model(image, outputs, name=f"{backbone}_{head}")


def build_head_model(num_categories: int, num_subcategories: int, num_attributes: int, *,
                     feature_dim: int = 2048, head: str = "message_passing", units: int = 1024,
                     l2: float = 5e-4, dropout: float = 0.3, top_down: bool = True,
                     bottom_up: bool = True, input_norm: str = "none",
                     attribute_layout: Sequence[tuple[str, int]] | None = None) -> keras.Model:
    """The head of ``build_model`` alone, on an input ``features`` of ``feature_dim`` pooled features.

    Its layers carry the same names as in ``build_model``, so ``copy_head_weights`` moves them.
    """
    num_classes = _class_counts(num_categories, num_subcategories, num_attributes)
    layout = _layout(attribute_layout, num_classes["attributes"])
    _check_positive_int("feature_dim", feature_dim)
    settings = _head_settings(head, units, l2, dropout)
    features = keras.Input(shape=(int(feature_dim),), name="features")
    outputs = HEADS[head](normalised_features(features, input_norm), num_classes, settings,
                          top_down=top_down, bottom_up=bottom_up, attribute_layout=layout)
    return keras.Model(features, outputs, name=f"{head}_head")


def model_keywords(config, *, include_backbone: bool = True) -> dict:
    """The ``build_model`` keywords (besides class counts) that a ``TrainConfig`` sets.

    ``include_backbone=False`` leaves out the image-side keywords, giving ``build_head_model``'s.
    """
    model = config.model
    keywords = dict(head=model.head, units=model.units, l2=model.l2, dropout=model.dropout,
                    top_down=model.top_down, bottom_up=model.bottom_up, input_norm=model.input_norm)
    if include_backbone:
        keywords.update(backbone=model.backbone, weights=model.weights, input_shape=(*config.data.image_size, 3),
                        trainable_backbone=model.trainable_backbone)
    return keywords


def build_model_from_config(config, label_space) -> keras.Model:
    """``build_model`` for a ``TrainConfig`` and the ``LabelSpace`` of its training split.

    The one place a config becomes model keywords: ``train``, the feature-cache trainer and
    fine-tuning all build through here, so a new model key is wired once.
    """
    return build_model(label_space.num_categories, label_space.num_subcategories, label_space.num_attributes,
                       attribute_layout=getattr(label_space, "attribute_layout", None), **model_keywords(config))


def build_head_model_from_config(config, label_space, feature_dim: int) -> keras.Model:
    """``build_head_model`` for a ``TrainConfig``: the head of ``build_model_from_config`` on features."""
    return build_head_model(label_space.num_categories, label_space.num_subcategories, label_space.num_attributes,
                            feature_dim=feature_dim, attribute_layout=getattr(label_space, "attribute_layout", None),
                            **model_keywords(config, include_backbone=False))


def network_of(model: keras.Model) -> keras.Model:
    """The ``build_model`` network of ``model``: the task's (``HierarchicalClassifier.network``) or ``model`` itself."""
    return getattr(model, "network", model)


def backbone_model(model: keras.Model) -> keras.Model:
    """The ``backbone`` sub-model (pooled feature extractor) of a ``build_model`` network or of the task."""
    try:
        return network_of(model).get_layer(BACKBONE_LAYER)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {BACKBONE_LAYER!r}; "
                         f"expected a model made by fashion_hier.build_model") from None


def copy_head_weights(source_model: keras.Model, target_model: keras.Model) -> int:
    """Copy every weighted head layer of ``source_model`` into the same-named layer of ``target_model``.

    The backbone is never copied. Raises if a head layer is missing from the target or its weight
    shapes differ (another head, switch or class count). Returns the number of layers copied.
    """
    copied = 0
    for layer in source_model.layers:
        if layer.name == BACKBONE_LAYER or not layer.weights:
            continue
        try:
            target = target_model.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"layer {layer.name!r} of {source_model.name!r} is missing from "
                             f"{target_model.name!r}; build both with the same head and switches") from None
        source_shapes = [tuple(w.shape) for w in layer.weights]
        target_shapes = [tuple(w.shape) for w in target.weights]
        if source_shapes != target_shapes:
            raise ValueError(f"layer {layer.name!r}: weight shapes {source_shapes} in {source_model.name!r} "
                             f"but {target_shapes} in {target_model.name!r}; build both with the same "
                             f"class counts, units and feature size")
        target.set_weights(layer.get_weights())
        copied += 1
    return copied


def _class_counts(num_categories, num_subcategories, num_attributes) -> dict[str, int]:
    arguments = {"num_categories": num_categories, "num_subcategories": num_subcategories,
                 "num_attributes": num_attributes}
    for name, count in arguments.items():
        _check_positive_int(name, count)
    return {level: int(count) for level, count in zip(LEVELS, arguments.values())}


def _layout(attribute_layout, num_attributes: int) -> tuple[tuple[str, int], ...] | None:
    """The checked layout, whose sizes must add up to ``num_attributes``; None stays None (all sigmoid)."""
    if attribute_layout is None:
        return None
    layout = check_layout(attribute_layout)
    if sum(size for _, size in layout) != num_attributes:
        raise ValueError(f"attribute_layout sizes add up to {sum(size for _, size in layout)} but num_attributes "
                         f"is {num_attributes}; pass LabelSpace.attribute_layout with its num_attributes")
    return layout


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _image_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or shape[2] != 3 or not all(
            isinstance(size, numbers.Integral) and size > 0 for size in shape):
        raise ValueError(f"input_shape must be (height, width, 3) with positive integers (RGB, channels "
                         f"last), got {input_shape!r}")
    return tuple(int(size) for size in shape)


def _head_settings(head: str, units, l2, dropout) -> HeadSettings:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known heads: {', '.join(sorted(HEADS))}")
    _check_positive_int("units", units)
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0:
        raise ValueError(f"l2 must be a number >= 0, got {l2!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return HeadSettings(units=int(units), l2=float(l2), dropout=float(dropout))
