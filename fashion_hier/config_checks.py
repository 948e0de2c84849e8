"""Value checks run when a config is loaded, before a run writes anything: one line per mistake.

``config.py`` checks each value's type; this module checks that the values make sense together
(positive counts and rates, dropout below 1, split fractions adding up to 1, known names).
Kept free of TensorFlow so that loading a config stays fast: the known backbone names live here
as plain data, and ``tests/test_bad_input.py`` checks them against ``fashion_hier.models.BACKBONES``.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

from fashion_hier.errors import ConfigError
from fashion_hier.data.images import DEFAULT_MAX_PIXELS

# the names fashion_hier.models.BACKBONES registers (a test keeps the two equal)
BACKBONE_NAMES = ("resnet50", "resnet50_multiscale", "resnet50_multiscale_conv3", "resnet50v2", "efficientnetb0",
                  "mobilenetv2", "small_cnn")
SPLIT_TOLERANCE = 1e-6
_ABSENT = object()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


def _at_least(minimum: int) -> Callable[[Any], bool]:
    return lambda value: _number(value) and value >= minimum


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _folder_name(value: Any) -> bool:
    """One path component that stays inside its parent: ``name`` can never write outside ``output_dir``."""
    return (isinstance(value, str) and value.strip() == value and value not in ("", ".", "..")
            and not any(separator in value for separator in ("/", "\\", "\0")))


# (dotted key, check, what is expected). Keys a config does not have are skipped.
RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("name", _folder_name, "one folder name inside output_dir (no '/', '\\' or '..'; e.g. resnet50_run1)"),
    ("optimizer.learning_rate", _positive, "a number > 0 (e.g. 0.001)"),
    ("training.finetune_learning_rate", _positive, "a number > 0 (e.g. 0.0001)"),
    ("training.batch_size", _at_least(1), "an integer >= 1"),
    ("training.epochs", _at_least(1), "an integer >= 1"),
    ("training.freeze_epochs", _at_least(0), "an integer >= 0"),
    ("training.finetune_epochs", _at_least(1), "an integer >= 1"),
    ("training.finetune_crop", _optional(lambda value: _number(value) and 0 < value <= 1),
     "a side fraction in (0, 1] (e.g. 0.7), or null (no crops)"),
    ("training.early_stopping_patience", _optional(_at_least(0)), "an integer >= 0, or null (no early stopping)"),
    ("training.seed", _optional(_at_least(0)), "an integer >= 0, or null (use data.seed)"),
    ("model.units", _at_least(1), "an integer >= 1 (the paper uses 1024)"),
    ("model.dropout", lambda value: _number(value) and 0 <= value < 1, "a rate in [0, 1) (the paper uses 0.3)"),
    ("model.l2", _at_least(0), "a number >= 0 (the paper uses 0.0005)"),
    ("loss.power", _at_least(0), "a number >= 0 (1 = inverse frequency, 0 = no weighting)"),
    ("loss.cap", _optional(_positive), "a number > 0, or null (no cap)"),
    ("data.seed", _at_least(0), "an integer >= 0"),
    ("data.workers", _at_least(1), "an integer >= 1"),
    ("data.cap_factor", _optional(_positive), "a number > 0, or null (no cap)"),
    ("data.target_samples", _optional(_at_least(1)), "an integer >= 1, or null (keep every row)"),
    ("data.max_pixels", _at_least(1), f"an integer >= 1, pixels per image (default {DEFAULT_MAX_PIXELS})"),
)


def validate_config(config: Any) -> None:
    """Raise ``ConfigError`` naming the first key whose value cannot work, what is expected and what was given."""
    for key, check, expected in RULES:
        value = _lookup(config, key)
        if value is not _ABSENT and not check(value):
            raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    _check_image_size(_lookup(config, "data.image_size"))
    _check_split(_lookup(config, "data.split"))
    _check_name(_lookup(config, "model.backbone"), "model.backbone", BACKBONE_NAMES)
    if _lookup(config, "training.cache_features") is True and _lookup(config, "model.trainable_backbone") is True:
        raise ConfigError("training.cache_features: true needs a frozen backbone (model.trainable_backbone: false); "
                          "cached features cannot fine-tune the backbone")
    trainable_from = _lookup(config, "model.trainable_from")
    if trainable_from not in (None, _ABSENT) and _lookup(config, "training.cache_features") is False:
        raise ConfigError("model.trainable_from fine-tunes the backbone above that layer from cached activations, "
                          "after the head trained on cached features: set training.cache_features: true too, or "
                          "model.trainable_from: null")


def _lookup(config: Any, dotted: str) -> Any:
    node = config
    for name in dotted.split("."):
        node = getattr(node, name, _ABSENT)
        if node is _ABSENT:
            return _ABSENT
    return node


def _check_image_size(size: Any) -> None:
    if size is _ABSENT:
        return
    if not all(_at_least(1)(side) for side in size):
        raise ConfigError(f"data.image_size: expected [height, width] in pixels, both >= 1 (e.g. [224, 224]), "
                          f"got {list(size)}")


def _check_split(fractions: Any) -> None:
    if fractions is _ABSENT:
        return
    fractions = list(fractions)
    if not all(_number(f) and 0 <= f <= 1 for f in fractions):
        raise ConfigError(f"data.split: expected [train, validation, test] fractions each in [0, 1], got {fractions}")
    if abs(sum(fractions) - 1) > SPLIT_TOLERANCE:
        raise ConfigError(f"data.split: the fractions must add up to 1, got {fractions} (sum {sum(fractions):g}); "
                          f"e.g. [0.7, 0.15, 0.15]")
    if fractions[0] <= 0:
        raise ConfigError(f"data.split: the train fraction must be > 0, got {fractions}")


def _check_name(name: Any, key: str, known: tuple[str, ...]) -> None:
    if name is not _ABSENT and name not in known:
        raise ConfigError(f"{key}: unknown name {name!r}; known: {', '.join(known)}")


def yaml_error_message(path: str | os.PathLike, error: Exception) -> str:
    """One line for a YAML syntax (or text encoding) error: the file, the line and column (1-based), and the problem."""
    if isinstance(error, UnicodeDecodeError):
        line = error.object[:error.start].count(b"\n") + 1
        return f"{os.fspath(path)} line {line}: not UTF-8 text; save the config file as UTF-8"
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return (f"{os.fspath(path)}{where}: YAML syntax error: {detail}; check the indentation, colons and quotes "
            f"there")
