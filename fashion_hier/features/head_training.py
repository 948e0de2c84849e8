"""Heads trained on cached features: the recipe's fit loop, and a run directory that serves images.

The trained head is copied into a full ``build_model`` with the cache's backbone weights, so the
run directory serves ``Predictor`` and ``evaluate`` like any other run.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.config import TrainConfig, training_seed
from fashion_hier.features.cache import (
    HEAD_FILE,
    RUN_FEATURES_FILE,
    FeatureCacheMismatch,
    _check_cache_serves,
    _features_of,
    _identity,
    load_feature_cache,
)
from fashion_hier.labels import LEVELS, LabelSpace

logger = logging.getLogger(__name__)
EARLY_STOPPING_MONITOR = "val_subcategory_accuracy"  # unweighted: class weights must not pick the epoch


@dataclass
class FittedHead:
    """A head trained on features, its Keras history and the wall time of each epoch."""

    model: object            # keras.Model: features in, the three levels' probabilities out
    history: dict
    epoch_seconds: list


def fit_head(config: TrainConfig, label_space: LabelSpace, train_features: np.ndarray, train_labels: dict,
             validation_features: np.ndarray | None = None, validation_labels: dict | None = None, *,
             flipped_train_features: np.ndarray | None = None, callbacks: Sequence = (),
             verbose: int | str = 0) -> FittedHead:
    """Train ``config``'s head on pooled features: the recipe (loss, optimiser, schedule, early stopping).

    ``flipped_train_features`` (features of the mirrored training images, same row order) are
    appended to the training rows as augmentation. With validation data, early stopping follows the
    validation subcategory accuracy (an unweighted quantity, whatever the loss weighting) and the
    best epoch is restored; patience ``training.early_stopping_patience`` (null: the whole budget).
    """
    import keras

    from fashion_hier.losses import losses_from_config
    from fashion_hier.models import build_head_model_from_config
    from fashion_hier.optimizers import build_optimizer
    from fashion_hier.runtime import resolve_runtime

    features, labels = train_features, train_labels
    if flipped_train_features is not None:
        if flipped_train_features.shape != train_features.shape:
            raise ValueError(f"flipped_train_features has shape {flipped_train_features.shape} but "
                             f"train_features {train_features.shape}; pass the same rows' mirrored features")
        features = np.concatenate([train_features, flipped_train_features])
        labels = {level: np.concatenate([values, values]) for level, values in train_labels.items()}
    keras.utils.set_random_seed(training_seed(config))
    head = build_head_model_from_config(config, label_space, feature_dim=features.shape[1])
    batch_size, epochs = config.training.batch_size, config.training.epochs
    steps_per_epoch = -(-len(features) // batch_size)
    # float32 head: the cached features are float32 and the head is too small for mixed precision to pay
    jit_compile, _ = resolve_runtime(config.training.jit_compile, "off")
    head.compile(optimizer=build_optimizer(config.optimizer, steps_per_epoch=steps_per_epoch, epochs=epochs),
                 loss=losses_from_config(config.loss, label_space, train_labels), metrics=_level_metrics(),
                 jit_compile=jit_compile, run_eagerly=config.training.run_eagerly)
    has_validation = validation_features is not None and len(validation_features) > 0
    validation_data = (validation_features, validation_labels) if has_validation else None
    timer = _epoch_timer()
    history = head.fit(features, labels, validation_data=validation_data, batch_size=batch_size, epochs=epochs,
                       shuffle=True, verbose=verbose,
                       callbacks=[timer, _early_stopping(config, has_validation), *callbacks])
    return FittedHead(head, history.history, timer.seconds)


def train_head_on_features(config: TrainConfig, cache_dir: str | os.PathLike, *, overwrite: bool = False,
                           verbose: int | str = "auto") -> Path:
    """Train ``config``'s head on cached features; save a run directory that ``Predictor``/``evaluate`` read.

    Same split and label space as ``fashion_hier.train`` (``prepare_run``), the recipe of
    ``fit_head``; the backbone is frozen by construction. With ``data.flip_features`` the flipped
    views' cache (``CACHE/flipped``) augments the training rows. The head is then copied into a
    full model with the cache's backbone weights and saved as ``model.keras`` (``best.keras`` is
    the same file), beside ``head.keras`` and ``features.json``.
    """
    import keras

    from fashion_hier import train as training
    from fashion_hier.features.cache import flipped_cache_dir

    cache = load_feature_cache(cache_dir)
    config = training.resolved_config(config)
    _check_cache_serves(cache, config)
    flipped = None
    if config.data.flip_features:
        flipped = load_feature_cache(flipped_cache_dir(cache_dir))
        _check_cache_serves(flipped, config, flip=True)
    prepared = training.prepare_run(config, overwrite=overwrite, resume=False)
    run_dir, label_space = prepared.run_dir, prepared.label_space
    train_paths = _image_paths(prepared.train_frame)
    train_features = _features_of(cache, train_paths, "train split")
    flipped_features = None if flipped is None else _features_of(flipped, train_paths, "train split (flipped)")
    validation_features = None
    if len(prepared.validation_frame):
        validation_features = _features_of(cache, _image_paths(prepared.validation_frame), "validation split")
    logger.info("features: train %s, validation %d rows; %s", train_features.shape,
                len(prepared.validation_frame), label_space)

    fitted = fit_head(config, label_space, train_features, prepared.train_labels, validation_features,
                      prepared.validation_labels, flipped_train_features=flipped_features, verbose=verbose,
                      callbacks=[keras.callbacks.CSVLogger(str(run_dir / _history_file()))])
    fitted.model.save(run_dir / HEAD_FILE)
    _save_full_model(fitted.model, config, label_space, run_dir)
    (run_dir / RUN_FEATURES_FILE).write_text(json.dumps({"cache_dir": str(Path(cache_dir).resolve()),
                                                         **_identity(cache.manifest)}, indent=2), encoding="utf-8")
    logger.info(_timing_summary(fitted.epoch_seconds, len(train_features), cache.manifest))
    logger.info("run saved in %s", run_dir)
    return run_dir


def _level_metrics() -> dict:
    """Accuracy for category and subcategory: what early stopping reads.

    No PR-AUC for attributes here (``fashion_hier.train`` has it): its multi-label state costs more
    graph tracing than a whole head epoch on features; ``evaluate`` reports attribute mAP.
    """
    import keras

    return {level: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
            for level in ("category", "subcategory")}


def _early_stopping(config: TrainConfig, has_validation: bool):
    """Stop on the validation subcategory accuracy (training loss without validation); restore the best epoch."""
    import keras

    patience = config.training.early_stopping_patience
    return keras.callbacks.EarlyStopping(
        monitor=EARLY_STOPPING_MONITOR if has_validation else "loss", mode="max" if has_validation else "min",
        restore_best_weights=True, patience=config.training.epochs if patience is None else patience)


def _history_file() -> str:
    from fashion_hier.train import HISTORY_FILE

    return HISTORY_FILE


def _epoch_timer():
    """A Keras callback collecting the wall time of each epoch (for the head-vs-backbone comparison)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    return EpochTimer()


def predict_from_features(model, features: np.ndarray, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Probabilities per level from pooled features, with a head model or a head run's directory.

    ``model`` is a head model (``build_head_model``) or a run directory written by
    ``train_head_on_features`` (its ``head.keras``). Equals the run's full model on the images.
    """
    if isinstance(model, (str, os.PathLike)):
        model = _load_head(Path(model))
    outputs = model.predict(np.asarray(features, dtype=np.float32), batch_size=batch_size, verbose=0)
    if not isinstance(outputs, dict):
        outputs = dict(zip(model.output_names, outputs))
    return {level: np.asarray(outputs[level], dtype=np.float32) for level in LEVELS}


def scores_from_feature_cache(run_dir: str | os.PathLike, paths: Sequence[str], *,
                              batch_size: int = 256) -> dict[str, np.ndarray] | None:
    """The run's scores for ``paths`` from its feature cache, or None when that cannot be done exactly.

    None when the run was not trained on cached features, its cache is gone or unfinished, or the
    cache lacks one of ``paths``: the caller then runs the full model on the images (same numbers,
    slower). This is how ``evaluate`` can score a head-only run without a second backbone pass.
    """
    record_path = Path(run_dir) / RUN_FEATURES_FILE
    if not record_path.is_file() or not (Path(run_dir) / HEAD_FILE).is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    try:
        cache = load_feature_cache(record["cache_dir"])
    except (FileNotFoundError, FeatureCacheMismatch):
        return None
    if _identity(cache.manifest) != _identity(record):
        return None
    try:
        features = _features_of(cache, paths, "evaluated")
    except FeatureCacheMismatch:
        return None
    return predict_from_features(run_dir, features, batch_size=batch_size)


def _image_paths(frame) -> list[str]:
    return frame["image_path"].astype(str).tolist()


def _save_full_model(head, config: TrainConfig, label_space: LabelSpace, run_dir: Path) -> None:
    """The head's weights in a full image model (the cache's backbone), as model.keras and best.keras."""
    from fashion_hier.models import build_model_from_config, copy_head_weights
    from fashion_hier.train import BEST_FILE, MODEL_FILE

    model = build_model_from_config(config, label_space)
    copy_head_weights(head, model)
    model.save(run_dir / MODEL_FILE)
    best = run_dir / BEST_FILE
    best.unlink(missing_ok=True)
    try:
        os.link(run_dir / MODEL_FILE, best)  # the best epoch is the final one: one file, two names
    except OSError:
        import shutil

        shutil.copyfile(run_dir / MODEL_FILE, best)


def _load_head(run_dir: Path):
    import keras

    import fashion_hier.models  # noqa: F401  registers the head's custom layers for loading

    path = run_dir / HEAD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} was not trained on cached features; "
                                f"use Predictor.load({str(run_dir)!r}) to score images with its full model")
    return keras.saving.load_model(path, compile=False)


def _timing_summary(epoch_seconds: list, train_rows: int, manifest: dict) -> str:
    """One head epoch on features against one backbone forward pass over the same images."""
    if not epoch_seconds:
        return "head training ran no epoch"
    epoch = float(np.median(epoch_seconds))
    images_per_second = manifest["rows_done"] / manifest["seconds"] if manifest["seconds"] > 0 else float("nan")
    forward = train_rows / images_per_second
    return (f"timing: one head epoch on {train_rows} cached feature rows took {epoch:.2f} s (median of "
            f"{len(epoch_seconds)}); one {manifest['backbone']} forward pass over the same images takes "
            f"{forward:.1f} s at the extraction rate of {images_per_second:.1f} images/s "
            f"({forward / epoch:.0f}x; a full-model training epoch costs about 3x that forward pass)")


