"""Heads on pooled backbone features: the message-passing block of Ferreira et al. 2018 and baselines.

Each maps a pooled feature tensor to three outputs named ``category`` (softmax), ``subcategory``
(softmax) and ``attributes`` (sigmoid; or, with an ``attribute_layout`` of attribute columns, a Dense
``attributes_logits`` followed by ``GroupActivation``: softmax per single-valued group). Layer names are fixed and meaningful, so a head trained on
cached features (``build_head_model``) transfers into a full image model by layer name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras

from fashion_hier.labels import LEVELS
from fashion_hier.models.attribute_groups import GroupActivation

OUTPUT_ACTIVATIONS = {"category": "softmax", "subcategory": "softmax", "attributes": "sigmoid"}


@dataclass(frozen=True)
class HeadSettings:
    """What every hidden layer of a head shares (paper: 1024 units, ReLU, L2 5e-4, dropout 0.3)."""

    units: int = 1024
    l2: float = 5e-4
    dropout: float = 0.3

    def dense(self, name: str, units: int | None = None, activation: str = "relu",
              dtype: str | None = None) -> keras.layers.Dense:
        return keras.layers.Dense(units or self.units, activation=activation, name=name, dtype=dtype,
                                  kernel_regularizer=keras.regularizers.L2(self.l2))

    def dropout_layer(self, name: str) -> keras.layers.Dropout:
        return keras.layers.Dropout(self.dropout, name=name)


def _sum(tensors: list, name: str):
    """The element-wise sum of ``tensors`` (a single tensor passes through unchanged)."""
    return tensors[0] if len(tensors) == 1 else keras.layers.Add(name=name)(tensors)


def branches(features, settings: HeadSettings) -> dict:
    """Three parallel Dense branches on the pooled features, one per level (Ferreira et al. 2018)."""
    return {level: settings.dense(f"{level}_branch")(features) for level in LEVELS}


def message(pass_name: str, level: str, own, incoming: dict, settings: HeadSettings):
    """One level's state in one pass: ``Drop(D(D(own) + sum of D(message) over incoming messages)))``.

    Layers: ``{pass}_{level}_1`` reads the level's own branch, ``{pass}_{level}_from_{source}``
    reads another level's state, ``{pass}_{level}_sum`` adds them, ``{pass}_{level}_2`` is the
    path's last Dense and ``{pass}_{level}_dropout`` follows it.
    """
    prefix = f"{pass_name}_{level}"
    terms = [settings.dense(f"{prefix}_1")(own)]
    terms += [settings.dense(f"{prefix}_from_{source}")(state) for source, state in incoming.items()]
    hidden = settings.dense(f"{prefix}_2")(_sum(terms, f"{prefix}_sum"))
    return settings.dropout_layer(f"{prefix}_dropout")(hidden)


def top_down_pass(branch: dict, settings: HeadSettings) -> dict:
    """Category information sent down to subcategory and attributes (8 Dense layers)."""
    category = message("topdown", "category", branch["category"], {}, settings)
    return {
        "category": category,
        "subcategory": message("topdown", "subcategory", branch["subcategory"],
                               {"category": category}, settings),
        "attributes": message("topdown", "attributes", branch["attributes"],
                              {"category": category}, settings),
    }


def bottom_up_pass(branch: dict, settings: HeadSettings) -> dict:
    """Subcategory and attribute information sent up to category (8 Dense layers)."""
    attributes = message("bottomup", "attributes", branch["attributes"], {}, settings)
    subcategory = message("bottomup", "subcategory", branch["subcategory"], {}, settings)
    category = message("bottomup", "category", branch["category"],
                       {"subcategory": subcategory, "attributes": attributes}, settings)
    return {"category": category, "subcategory": subcategory, "attributes": attributes}


def output_layer(level: str, state, num_classes: dict[str, int], settings: HeadSettings, attribute_layout=None):
    """A level's output Dense (L2 too); attribute columns get linear logits and a per-group activation."""
    if level == "attributes" and attribute_layout is not None:
        logits = settings.dense("attributes_logits", num_classes[level], None, dtype="float32")(state)
        return GroupActivation(attribute_layout, name=level, dtype="float32")(logits)
    return settings.dense(level, num_classes[level], OUTPUT_ACTIVATIONS[level], dtype="float32")(state)


def output_layers(states: list[dict], num_classes: dict[str, int], settings: HeadSettings,
                  attribute_layout=None) -> dict:
    """Each level's output reading the sum of that level's states (``{level}_sum``)."""
    return {
        level: output_layer(level, _sum([state[level] for state in states], f"{level}_sum"), num_classes, settings,
                            attribute_layout)
        for level in LEVELS
    }


def message_passing_head(features, num_classes: dict[str, int], settings: HeadSettings, *,
                         top_down: bool = True, bottom_up: bool = True, attribute_layout=None) -> dict:
    """The paper's structured-output block: branches, top-down and/or bottom-up pass, outputs.

    Each output reads ``top-down state + bottom-up state``; with one pass switched off (ablation)
    it reads the other pass's state alone.
    """
    if not (top_down or bottom_up):
        raise ValueError("message_passing head needs top_down or bottom_up (or both); "
                         "for no message passing at all use head='independent'")
    branch = branches(features, settings)
    passes = [run(branch, settings) for run, on in ((top_down_pass, top_down), (bottom_up_pass, bottom_up))
              if on]
    return output_layers(passes, num_classes, settings, attribute_layout)


def independent_head(features, num_classes: dict[str, int], settings: HeadSettings, *,
                     top_down: bool = True, bottom_up: bool = True, attribute_layout=None) -> dict:
    """Baseline without message passing: per level one Dense branch, its dropout, its output."""
    if not (top_down and bottom_up):
        raise ValueError("top_down/bottom_up switch passes of head='message_passing'; "
                         "head='independent' has no passes to switch off")
    states = {level: settings.dropout_layer(f"{level}_branch_dropout")(hidden)
              for level, hidden in branches(features, settings).items()}
    return output_layers([states], num_classes, settings, attribute_layout)


def linear_head(features, num_classes: dict[str, int], settings: HeadSettings, *,
                top_down: bool = True, bottom_up: bool = True, attribute_layout=None) -> dict:
    """Baseline without hidden layers: dropout on the features, then each level's output Dense.

    A multinomial (category, subcategory) and per-label logistic (attributes) regression on the
    pooled features, trained jointly: what scikit-learn's LogisticRegression does per level.
    """
    if not (top_down and bottom_up):
        raise ValueError("top_down/bottom_up switch passes of head='message_passing'; "
                         "head='linear' has no passes to switch off")
    state = settings.dropout_layer("features_dropout")(features) if settings.dropout > 0 else features
    return {level: output_layer(level, state, num_classes, settings, attribute_layout) for level in LEVELS}


HEADS: dict[str, Callable[..., dict]] = {
    "message_passing": message_passing_head,
    "independent": independent_head,
    "linear": linear_head,
}

INPUT_NORMS = ("none", "batchnorm")
INPUT_NORM_LAYER = "input_norm"


def normalised_features(features, input_norm: str):
    """The pooled features as the head reads them: unchanged, or through a BatchNormalization layer.

    ResNet-50's pooled features are non-negative with scales differing by orders of magnitude between
    channels; standardising them (what BatchNorm does on a frozen backbone) is what makes a linear
    classifier on them train well with one learning rate.
    """
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"unknown input_norm {input_norm!r}; expected one of {', '.join(INPUT_NORMS)}")
    if input_norm == "batchnorm":
        return keras.layers.BatchNormalization(name=INPUT_NORM_LAYER)(features)
    return features
