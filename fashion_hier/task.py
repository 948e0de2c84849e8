"""The task: one Keras model that turns a product photo into a catalogue entry.

``HierarchicalClassifier`` follows keras-hub's ``Task`` (e.g. ``ImageClassifier``): a functional
``keras.Model`` subclass that wraps the network made by ``build_model`` and carries everything needed to
use it — the label space (class names, category -> subcategory tree, attribute names), per-attribute
thresholds, image size and resize policy, and what its default ``compile()`` needs to go on training as the
run trained (the training class counts, the run's ``LossConfig`` and ``OptimizerConfig``).
``get_config`` holds all of it, so one ``.keras`` file is a usable model::

    import keras, fashion_hier
    model = keras.saving.load_model(path)   # a run's model file (RunDir.MODEL): a HierarchicalClassifier
    model.predict_catalog(["shoe.jpg"], consistent=True)
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import keras
import numpy as np
import pandas as pd

import fashion_hier.losses  # noqa: F401  (registers the losses a compiled task is saved with)
import fashion_hier.models  # noqa: F401  (registers the Preprocess layer inside the network)
from fashion_hier import preprocessing, streaming  # modules: preprocessing may be mid-import (keras' hook)
from fashion_hier.decoding import decode_scores, prediction_columns
from fashion_hier.labels import LEVELS, LabelSpace, group_counts
from fashion_hier.models.calibration import TemperatureScaling
from fashion_hier.thresholds import DEFAULT_THRESHOLD

RESIZE_POLICIES = ("stretch", "pad")
LEVEL_ACTIVATIONS = {"category": "softmax", "subcategory": "softmax", "attributes": "sigmoid"}
SELECTIVE_LEVELS = ("category", "subcategory")  # the levels min_confidence can leave for a person

if TYPE_CHECKING:
    from fashion_hier.config import LossConfig, OptimizerConfig


@keras.saving.register_keras_serializable(package="fashion_hier")
class HierarchicalClassifier(keras.Model):
    """A ``build_model`` network plus what turns its three outputs into names.

    Args:
        network: a functional model taking raw RGB 0..255 images and returning
            ``{"category", "subcategory", "attributes"}`` (``build_model``'s output).
        label_space: the ``LabelSpace`` (or its ``to_dict()``) that names the outputs.
        thresholds: per-attribute thresholds (A,) or one number; default ``DEFAULT_THRESHOLD``.
        image_size: ``(height, width)`` images are resized to; default the network's input size.
        resize: ``"stretch"`` or ``"pad"`` (letterbox), as in training.
        class_counts: training counts per level (``class_counts_from_labels``), for ``compile()``'s
            class-weighted losses; ``None`` gives unweighted losses.
        build_settings: the ``build_model`` keywords the network was made with (a record, JSON-able).
        loss_settings: the run's ``LossConfig`` (``dataclasses.asdict(config.loss)``, JSON-able): the weighting,
            label smoothing and level weights of ``compile()``'s losses; ``None``: ``LossConfig()``'s defaults.
        optimizer_settings: the run's ``OptimizerConfig`` (``dataclasses.asdict(config.optimizer)``): the
            optimiser ``compile()`` continues training with; ``None``: ``OptimizerConfig()`` (Adam 1e-3).
        temperatures: ``{level: T}`` temperature scaling per level (``TemperatureScaling``), fitted on
            validation data (``fashion_hier.calibrate``); missing levels keep T = 1 (scores as trained).
        min_confidence: ``{"category": P, "subcategory": P}``: below its P a level's answer is left for a
            person (``Predictor.decode``); missing or None: always answer.
    """

    def __init__(self, network: keras.Model, label_space: LabelSpace | dict, *,
                 thresholds: Sequence[float] | float | None = None, image_size: Sequence[int] | None = None,
                 resize: str = "stretch", class_counts: dict[str, Sequence[int]] | None = None,
                 build_settings: dict[str, Any] | None = None, temperatures: dict[str, float] | None = None,
                 min_confidence: dict[str, float | None] | None = None, loss_settings: dict[str, Any] | None = None,
                 optimizer_settings: dict[str, Any] | None = None, **kwargs):
        label_space = label_space if isinstance(label_space, LabelSpace) else LabelSpace.from_dict(label_space)
        loss_settings = _check_settings(loss_settings, "loss", "loss_settings")
        optimizer_settings = _check_settings(optimizer_settings, "optimizer", "optimizer_settings")
        temperatures = _check_temperatures(temperatures)
        if label_space.grouped and temperatures["attributes"] != 1.0:
            raise ValueError("temperatures['attributes'] must be 1 with attribute columns: calibration covers "
                             "category and subcategory (fashion_hier.calibrate.calibrated_levels)")
        image = keras.Input(shape=tuple(network.input_shape[1:]), name="image")
        scores = network(image)
        if not isinstance(scores, dict) or set(scores) != set(LEVELS):
            raise ValueError(f"network must return a dict with keys {LEVELS}; build it with fashion_hier.build_model")
        _check_widths({level: int(scores[level].shape[-1]) for level in LEVELS}, label_space)
        # calibrated scores (T = 1: unchanged), under the level names (output_names, exported signatures)
        outputs = {level: keras.layers.Identity(name=level)(
            TemperatureScaling(temperatures[level], LEVEL_ACTIVATIONS[level], name=f"{level}_temperature")(scores[level]))
            for level in LEVELS}
        super().__init__(inputs=image, outputs=outputs, **kwargs)
        # === what the task knows besides its weights (all of it in get_config) ===
        self.network = network
        self._label_space = label_space
        self._thresholds = _threshold_vector(DEFAULT_THRESHOLD if thresholds is None else thresholds,
                                             label_space.num_attributes)
        self._image_size = tuple(int(v) for v in (image_size or network.input_shape[1:3]))
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
        self._resize = resize
        self._class_counts = _check_counts(class_counts, label_space) if class_counts is not None else None
        self._build_settings = dict(build_settings or {})
        self._temperatures = temperatures
        self._min_confidence = _check_min_confidence(min_confidence)
        self._loss_settings = loss_settings
        self._optimizer_settings = optimizer_settings

    # ---- what it knows -----------------------------------------------------------------------
    @property
    def label_space(self) -> LabelSpace:
        return self._label_space

    @property
    def thresholds(self) -> np.ndarray:
        """Per-attribute thresholds (A,), a copy."""
        return self._thresholds.copy()

    @property
    def image_size(self) -> tuple[int, int]:
        return self._image_size

    @property
    def resize(self) -> str:
        return self._resize

    @property
    def preprocessor(self) -> preprocessing.ImagePreprocessor:
        """The task's image preprocessor (its ``image_size`` and ``resize``): what prediction and the export
        decode and resize with, as keras-hub's ``ImageClassifier.preprocessor``."""
        return preprocessing.ImagePreprocessor(self._image_size, self._resize)

    @property
    def class_counts(self) -> dict[str, np.ndarray] | None:
        return None if self._class_counts is None else {k: np.array(v) for k, v in self._class_counts.items()}

    @property
    def build_settings(self) -> dict[str, Any]:
        return dict(self._build_settings)

    @property
    def loss_settings(self) -> dict[str, Any] | None:
        """The run's ``LossConfig`` as a dict (every key), or None for a task saved without it."""
        return None if self._loss_settings is None else dict(self._loss_settings)

    @property
    def optimizer_settings(self) -> dict[str, Any] | None:
        """The run's ``OptimizerConfig`` as a dict (every key), or None for a task saved without it."""
        return None if self._optimizer_settings is None else dict(self._optimizer_settings)

    @property
    def temperatures(self) -> dict[str, float]:
        """Temperature per level (1.0: not calibrated)."""
        return dict(self._temperatures)

    @property
    def min_confidence(self) -> dict[str, float | None]:
        """The confidence each single-label level needs to be answered (None: always answered)."""
        return dict(self._min_confidence)

    def set_thresholds(self, thresholds: Sequence[float] | float) -> None:
        """Replace the attribute thresholds (saved with the model from then on)."""
        self._thresholds = _threshold_vector(thresholds, self._label_space.num_attributes)

    def with_thresholds(self, thresholds: Sequence[float] | float) -> "HierarchicalClassifier":
        """The same model (shared weights) with other thresholds; this one is left as it is."""
        return self._replace(thresholds=thresholds)

    def with_temperatures(self, temperatures: dict[str, float]) -> "HierarchicalClassifier":
        """The same model (shared weights) with other temperatures (levels not given keep theirs)."""
        return self._replace(temperatures={**self._temperatures, **temperatures})

    def with_min_confidence(self, min_confidence: dict[str, float | None]) -> "HierarchicalClassifier":
        """The same model (shared weights) answering a level only at or above its confidence."""
        return self._replace(min_confidence={**self._min_confidence, **min_confidence})

    def _replace(self, **changes) -> "HierarchicalClassifier":
        settings = {"thresholds": self._thresholds, "image_size": self._image_size, "resize": self._resize,
                    "class_counts": self._class_counts, "build_settings": self._build_settings,
                    "temperatures": self._temperatures, "min_confidence": self._min_confidence,
                    "loss_settings": self._loss_settings, "optimizer_settings": self._optimizer_settings}
        return HierarchicalClassifier(self.network, self._label_space, **{**settings, **changes})

    # ---- catalogue entries -------------------------------------------------------------------
    def predict_scores(self, images_or_paths, *, batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
        """Probabilities per level: category (N, C), subcategory (N, S), attributes (N, A).

        For paths, N counts the readable images only (unreadable ones are logged and skipped).
        """
        chunks = [scores for _, scores in streaming.iter_chunks(self, images_or_paths, batch_size=batch_size,
                                                                progress=progress)]
        return streaming.concatenate(chunks, self._label_space)

    def predict_catalog(self, images_or_paths, *, consistent: bool = True, batch_size: int = 32,
                        progress: bool = False) -> pd.DataFrame:
        """One row per image: ``fashion_hier.decoding.prediction_columns(label_space)`` (names, scores, attributes).

        ``images_or_paths``: image paths (resized to ``image_size`` with ``resize`` on load) or an
        (N, h, w, 3) RGB 0..255 array. ``consistent``: the subcategory always belongs to the category.
        """
        tables = [self.decode(scores, paths, consistent=consistent) for paths, scores in
                  streaming.iter_chunks(self, images_or_paths, batch_size=batch_size, progress=progress)]
        return (pd.concat(tables, ignore_index=True) if tables
                else pd.DataFrame(columns=list(prediction_columns(self._label_space))))

    def decode(self, scores: dict[str, np.ndarray], image_paths: Sequence[str | None] | None = None, *,
               consistent: bool = False, min_confidence: dict[str, float | None] | None = None) -> pd.DataFrame:
        """Scores to names with this task's thresholds and confidences (``min_confidence`` overrides them)."""
        return decode_scores(scores, self._label_space, self._thresholds,
                             {**self._min_confidence, **(min_confidence or {})}, image_paths, consistent=consistent)

    # ---- training ----------------------------------------------------------------------------
    def compile(self, optimizer: Any = "default", loss: Any = "default", metrics: Any = "default",
                loss_weights: Any = "default", **kwargs) -> None:
        """keras' ``compile`` with training's defaults, so that fitting a loaded task goes on as its run trained.

        Defaults: the stored ``LossConfig``'s losses from the stored class counts (``default_losses``) and its
        ``level_weights``; the stored ``OptimizerConfig``'s optimiser at a constant ``learning_rate``
        (``continuation_optimizer``: a schedule's remaining steps are unknown here); ``default_metrics``.
        Without stored settings (tasks saved before they were kept): ``LossConfig()`` and Adam 1e-3.
        Any argument passed explicitly is used as given, as in keras-hub's tasks.
        """
        loss_config = self.loss_config()
        if _is_default(optimizer):
            optimizer = continuation_optimizer(self.optimizer_config())
        if _is_default(loss):
            loss = default_losses(self._label_space, self.class_counts, loss_config)
        if _is_default(loss_weights):
            loss_weights = loss_config.level_weights
        if _is_default(metrics):
            metrics = default_metrics(self._label_space)
        super().compile(optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics, **kwargs)

    def loss_config(self) -> LossConfig:
        """The stored ``LossConfig`` (``LossConfig()`` when none was stored)."""
        from fashion_hier.config import LossConfig

        return LossConfig(**(self._loss_settings or {}))

    def optimizer_config(self) -> OptimizerConfig:
        """The stored ``OptimizerConfig`` (``OptimizerConfig()``, Adam 1e-3, when none was stored)."""
        from fashion_hier.config import OptimizerConfig

        return OptimizerConfig(**(self._optimizer_settings or {}))

    # ---- saving ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        # Not chained to super(): a functional model's config is a layer graph, which this
        # constructor does not take (keras-hub's Task does the same).
        return {
            "name": self.name,
            "trainable": self.trainable,
            "network": keras.saving.serialize_keras_object(self.network),
            "label_space": self._label_space.to_dict(),
            "thresholds": [float(t) for t in self._thresholds],
            "image_size": list(self._image_size),
            "resize": self._resize,
            "class_counts": self._class_counts,
            "build_settings": self._build_settings,
            "temperatures": self._temperatures,
            "min_confidence": self._min_confidence,
            "loss_settings": self._loss_settings,
            "optimizer_settings": self._optimizer_settings,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "HierarchicalClassifier":
        config = dict(config)
        if isinstance(config.get("network"), dict):
            config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


# ---- defaults for compile -------------------------------------------------------------------

def continuation_optimizer(optimizer_config: OptimizerConfig) -> keras.optimizers.Optimizer:
    """``optimizer_config``'s optimiser (``build_optimizer``) at its ``learning_rate``, constant.

    For going on training a finished model: a cosine schedule or warm-up belongs to the original run's step
    budget, which a loaded task does not know, so the continuation runs at the configured rate; pass
    ``compile(optimizer=build_optimizer(config, steps_per_epoch=..., epochs=...))`` for a schedule.
    """
    from fashion_hier.optimizers import build_optimizer

    constant = dataclasses.replace(optimizer_config, schedule="constant", warmup_epochs=0)
    return build_optimizer(constant, steps_per_epoch=1, epochs=1)


def class_counts_from_labels(targets: dict[str, np.ndarray], label_space: LabelSpace) -> dict[str, list[int]]:
    """Training counts per level from encoded targets (``label_space.encode``): what ``compile`` weights by.

    ``attributes`` holds the positives per label followed by the number of samples (flat tag set), or the
    positives per value followed by the rows where each value is known (attribute columns).
    """
    attributes = np.asarray(targets["attributes"])
    if label_space.grouped:
        positives, known = group_counts(attributes)
        attribute_counts = [*positives.tolist(), *known.tolist()]
    else:
        attribute_counts = [*attributes.sum(axis=0).astype(int).tolist(), int(len(attributes))]
    return {
        "category": _counts(targets["category"], label_space.num_categories),
        "subcategory": _counts(targets["subcategory"], label_space.num_subcategories),
        "attributes": attribute_counts,
    }


def _counts(labels, num_classes: int) -> list[int]:
    """Samples per class from class indices (N,) / (N, 1) or one-hot rows (N, num_classes)."""
    labels = np.asarray(labels)
    indices = labels.argmax(axis=1) if labels.ndim == 2 and labels.shape[1] > 1 else labels.ravel()
    return np.bincount(indices.astype(int), minlength=num_classes).tolist()


def default_losses(label_space: LabelSpace, class_counts: dict[str, np.ndarray] | None,
                   loss_config: Any = None) -> dict[str, keras.losses.Loss]:
    """The per-level losses that ``loss_config`` (a ``LossConfig``; default: the library's default weighting)
    asks for, from the stored training counts; unweighted when the counts are unknown.

    The losses depend on the counts only, so they equal those built from the training labels themselves.
    """
    from fashion_hier.config import LossConfig
    from fashion_hier.losses import losses_from_config

    config = loss_config or LossConfig()
    if class_counts is None:
        attributes = [0] * label_space.num_attributes + ([1] * label_space.num_attributes if label_space.grouped
                                                         else [1])
        return losses_from_config(dataclasses.replace(config, weighting="none", label_smoothing=0.0), label_space,
                                  labels_from_counts({"category": [1] * label_space.num_categories,
                                                      "subcategory": [1] * label_space.num_subcategories,
                                                      "attributes": attributes}, label_space))
    return losses_from_config(config, label_space, labels_from_counts(class_counts, label_space))


def labels_from_counts(class_counts: dict[str, Sequence[int]], label_space: LabelSpace) -> dict[str, np.ndarray]:
    """Encoded labels with exactly the stored counts (``class_counts_from_labels`` undone, up to row order)."""
    category = np.repeat(np.arange(label_space.num_categories), class_counts["category"])
    subcategory = np.repeat(np.arange(label_space.num_subcategories), class_counts["subcategory"])
    counts = [int(v) for v in class_counts["attributes"]]
    if label_space.grouped:  # per column: its positives, then known negatives, then unknown (-1)
        positives, known = np.asarray(counts[:label_space.num_attributes]), np.asarray(counts[label_space.num_attributes:])
        rows = np.arange(max(int(known.max(initial=0)), 1))[:, None]
        attributes = np.where(rows < positives[None, :], 1, np.where(rows < known[None, :], 0, -1)).astype(np.int8)
    else:
        *positives, samples = counts
        attributes = (np.arange(samples)[:, None] < np.asarray(positives)[None, :]).astype(np.int8)
    return {"category": category, "subcategory": subcategory, "attributes": attributes}


def default_metrics(label_space: LabelSpace) -> dict[str, list]:
    """Accuracy for the two single-label levels, PR-AUC over the flat tag set.

    Attribute columns have none here (their unknown targets are -1, which Keras's AUC would count):
    ``evaluate`` scores them per group.
    """
    metrics = {
        "category": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        "subcategory": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    }
    if not label_space.grouped:
        metrics["attributes"] = [keras.metrics.AUC(curve="PR", multi_label=True,
                                                   num_labels=label_space.num_attributes, name="pr_auc")]
    return metrics


# ---- saving a run's model as the task -------------------------------------------------------

def save_task_model(network: keras.Model, label_space: LabelSpace, path: str | os.PathLike, *,
                    thresholds: Sequence[float] | float | None = None, image_size: Sequence[int] | None = None,
                    resize: str = "stretch", class_counts: dict[str, Sequence[int]] | None = None,
                    build_settings: dict[str, Any] | None = None, loss_settings: dict[str, Any] | None = None,
                    optimizer_settings: dict[str, Any] | None = None) -> HierarchicalClassifier:
    """Wrap ``network`` (``build_model``'s model, trained) as the task and save it atomically to ``path``.

    ``train`` calls this for its final save, so ``model.keras`` alone is a usable model.
    """
    from fashion_hier.atomic import atomic_path

    if isinstance(network, HierarchicalClassifier):  # already the task: only new thresholds can change
        task = network if thresholds is None else network.with_thresholds(thresholds)
    else:
        task = HierarchicalClassifier(network, label_space, thresholds=thresholds, image_size=image_size,
                                      resize=resize, class_counts=class_counts, build_settings=build_settings,
                                      loss_settings=loss_settings, optimizer_settings=optimizer_settings)
    with atomic_path(Path(path)) as temporary:
        task.save(temporary)
    return task


def _is_default(argument: Any) -> bool:
    return isinstance(argument, str) and argument == "default"


def _check_settings(settings: dict[str, Any] | None, section: str, argument: str) -> dict[str, Any] | None:
    """``settings`` checked as the config's ``section`` (keys, types, values), every key filled in; None stays None."""
    if settings is None:
        return None
    from fashion_hier.config import TrainConfig

    if not isinstance(settings, dict):
        raise ValueError(f"{argument} must be a dict (dataclasses.asdict of the run's config.{section}), "
                         f"got {type(settings).__name__}")
    try:
        checked = getattr(TrainConfig.from_dict({section: settings}), section)
    except ValueError as error:
        raise ValueError(f"{argument}: {error}") from None
    return dataclasses.asdict(checked)


def _threshold_vector(thresholds: Sequence[float] | float, num_attributes: int) -> np.ndarray:
    values = np.asarray(thresholds, dtype=float)
    try:
        values = np.broadcast_to(values, (num_attributes,)).copy()
    except ValueError:
        raise ValueError(f"thresholds must be one number or {num_attributes} (one per attribute), "
                         f"got shape {values.shape}") from None
    if not (np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()):
        raise ValueError(f"thresholds must lie in [0, 1], got {values[(values < 0) | (values > 1) | ~np.isfinite(values)][:5]}")
    return values


def _check_temperatures(temperatures: dict[str, float] | None) -> dict[str, float]:
    """One temperature > 0 per level (1.0 where not given); unknown levels refused."""
    temperatures = dict(temperatures or {})
    unknown = sorted(set(temperatures) - set(LEVELS))
    if unknown:
        raise ValueError(f"temperatures has levels {unknown}; expected levels among {list(LEVELS)}")
    checked = {}
    for level in LEVELS:
        value = float(temperatures.get(level, 1.0))
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"temperatures[{level!r}] must be a finite number > 0, got {temperatures[level]!r}")
        checked[level] = value
    return checked


def _check_min_confidence(min_confidence: dict[str, float | None] | None) -> dict[str, float | None]:
    """A confidence in [0, 1] or None per selective level."""
    min_confidence = dict(min_confidence or {})
    unknown = sorted(set(min_confidence) - set(SELECTIVE_LEVELS))
    if unknown:
        raise ValueError(f"min_confidence has levels {unknown}; expected levels among {list(SELECTIVE_LEVELS)}")
    checked = {}
    for level in SELECTIVE_LEVELS:
        value = min_confidence.get(level)
        if value is not None:
            value = float(value)
            if not 0 <= value <= 1:
                raise ValueError(f"min_confidence[{level!r}] must lie in [0, 1] (a probability), got {value!r}")
        checked[level] = value
    return checked


def _check_widths(widths: dict[str, int], label_space: LabelSpace) -> None:
    expected = dict(zip(LEVELS, (label_space.num_categories, label_space.num_subcategories, label_space.num_attributes)))
    if widths != expected:
        raise ValueError(f"model outputs {widths} do not match the label space {expected}; "
                         "pass the label space the model was trained with (its run's labels file)")


def _check_counts(class_counts: dict[str, Sequence[int]], label_space: LabelSpace) -> dict[str, list[int]]:
    attributes = 2 * label_space.num_attributes if label_space.grouped else label_space.num_attributes + 1
    expected = {"category": label_space.num_categories, "subcategory": label_space.num_subcategories,
                "attributes": attributes}
    counts = {level: [int(v) for v in class_counts.get(level, ())] for level in LEVELS}
    wrong = {level: len(counts[level]) for level in LEVELS if len(counts[level]) != expected[level]}
    if wrong:
        raise ValueError(f"class_counts lengths {wrong} do not match the label space {expected} "
                         "(attributes: positives per label, then the number of samples; attribute columns: "
                         "positives per value, then known rows per value)")
    return counts
