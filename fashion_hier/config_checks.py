"""The config checks that span several fields: values each fine alone that cannot work together.

Each single value's type, range and choices are declared beside its field in ``config.py`` and checked
there by one function; ``TrainConfig`` runs the rules below after that, on every construction. Kept free
of TensorFlow so that loading a config stays fast: the known backbone names live here as plain data (the
``model.backbone`` rule, ``fashion_hier.audit``), and ``tests/test_bad_input.py`` checks them against
``fashion_hier.models.BACKBONES``.
"""
from __future__ import annotations

from typing import Any, Callable

from fashion_hier.errors import ConfigError

# the names fashion_hier.models.BACKBONES registers (a test keeps the two equal)
BACKBONE_NAMES = ("resnet50", "resnet50_multiscale", "resnet50_multiscale_conv3", "resnet50v2", "efficientnetb0",
                  "mobilenetv2", "small_cnn")


def _freeze_within_epochs(config: Any) -> str | None:
    training = config.training
    if training.freeze_epochs > training.epochs:
        return (f"training.freeze_epochs must lie in [0, training.epochs={training.epochs}], "
                f"got {training.freeze_epochs}")
    return None


def _cache_needs_frozen_backbone(config: Any) -> str | None:
    if config.training.cache_features and config.model.trainable_backbone:
        return ("training.cache_features: true needs a frozen backbone (model.trainable_backbone: false); "
                "cached features cannot fine-tune the backbone")
    return None


def _trainable_from_needs_cache(config: Any) -> str | None:
    if config.model.trainable_from is not None and not config.training.cache_features:
        return ("model.trainable_from fine-tunes the backbone above that layer from cached activations, "
                "after the head trained on cached features: set training.cache_features: true too, or "
                "model.trainable_from: null")
    return None


def _precision_needs_openvino(config: Any) -> str | None:
    training = config.training
    if training.extraction_precision != "f32" and training.extraction_engine == "keras":
        return (f"training.extraction_precision: {training.extraction_precision} needs "
                f"training.extraction_engine: openvino or auto (Keras extracts in float32)")
    return None


# each returns None when its fields fit together, else the one-line message naming them and what to do
RULES: tuple[Callable[[Any], str | None], ...] = (
    _freeze_within_epochs, _cache_needs_frozen_backbone, _trainable_from_needs_cache, _precision_needs_openvino)


def check_across_fields(config: Any) -> None:
    """Raise ``ConfigError`` for the first values of ``config`` (a ``TrainConfig``) that cannot work together."""
    for rule in RULES:
        problem = rule(config)
        if problem:
            raise ConfigError(problem)
