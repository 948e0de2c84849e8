"""Heads trained on cached features: the recipe's fit loop, and a run directory that serves images.

The trained head is copied into a full ``build_model`` with the cache's backbone weights, so the
run directory serves ``Predictor`` and ``evaluate`` like any other run.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.config import TrainConfig, training_seed
from fashion_hier.data.catalog import read_config_catalog
from fashion_hier.data.unreadable import write_unreadable_report
from fashion_hier.features.cache import (
    FeatureCache,
    _check_cache_serves,
    _features_of,
    _identity,
    load_feature_cache,
)
from fashion_hier.atomic import atomic_path, atomic_write_text
from fashion_hier.labels import IMAGE_PATH, LabelSpace
from fashion_hier.rundir import RunDir
from fashion_hier.checkpoints import Backup
from fashion_hier.features.batches import ArrayBatches
from fashion_hier.timings import StageTimer
from fashion_hier.training_loop import FitOutcome, Stage, fit_resumable

logger = logging.getLogger(__name__)


@dataclass
class FittedHead:
    """A head trained on features, its Keras-shaped history, the wall time of each epoch and the loop's outcome."""

    model: object            # keras.Model: features in, the three levels' probabilities out
    history: dict
    epoch_seconds: list
    outcome: FitOutcome


def fit_head(config: TrainConfig, label_space: LabelSpace, train_features: np.ndarray, train_labels: dict,
             validation_features: np.ndarray | None = None, validation_labels: dict | None = None, *,
             flipped_train_features: np.ndarray | None = None, callbacks: Sequence = (),
             verbose: int | str = 0, backup: Backup | None = None, history_path: Path | None = None) -> FittedHead:
    """Train ``config``'s head on pooled features: the recipe (loss, optimiser, schedule, early stopping).

    ``flipped_train_features`` (features of the mirrored training images, same row order) are
    appended to the training rows as augmentation. It trains through the one training loop
    (``fashion_hier.training_loop``): with validation data, early stopping follows the validation
    subcategory accuracy (an unweighted quantity, whatever the loss weighting), patience
    ``training.early_stopping_patience`` (null: the whole budget), and the head ends on its best epoch.
    ``backup``/``history_path``: where a run keeps this fit's checkpoints and history, so that a killed fit
    resumes exactly (``train_head_on_features``); without them, a temporary folder that is removed after.
    """
    import keras

    from fashion_hier.compiling import compile_model, weighted_losses
    from fashion_hier.models import build_head_model_from_config
    from fashion_hier.runtime import resolve_runtime

    features, labels = train_features, train_labels
    if flipped_train_features is not None:
        if flipped_train_features.shape != train_features.shape:
            raise ValueError(f"flipped_train_features has shape {flipped_train_features.shape} but "
                             f"train_features {train_features.shape}; pass the same rows' mirrored features")
        features = np.concatenate([train_features, flipped_train_features])
        labels = {level: np.concatenate([values, values]) for level, values in train_labels.items()}
    seed = training_seed(config)
    keras.utils.set_random_seed(seed)
    head = build_head_model_from_config(config, label_space, feature_dim=features.shape[1])
    batch_size, epochs = config.training.batch_size, config.training.epochs
    steps_per_epoch = -(-len(features) // batch_size)
    # float32 head: the cached features are float32 and the head is too small for mixed precision to pay
    jit_compile, _ = resolve_runtime(config.training.jit_compile, "off")

    def prepare(model) -> None:
        compile_model(model, config, weighted_losses(config, label_space, train_labels), label_space,
                      config.optimizer.learning_rate, jit_compile, steps_per_epoch=steps_per_epoch, epochs=epochs,
                      metrics=_level_metrics())

    has_validation = validation_features is not None and len(validation_features) > 0
    validation_data = ArrayBatches(validation_features, validation_labels, batch_size) if has_validation else None
    outcome = fit_resumable(head, [Stage(0, epochs, prepare)], ArrayBatches(features, labels, batch_size, seed=seed),
                            validation_data, backup=backup, history_path=history_path,
                            patience=config.training.early_stopping_patience, callbacks=callbacks, verbose=verbose)
    return FittedHead(head, outcome.history, outcome.epoch_seconds, outcome)


def train_head_on_features(config: TrainConfig, cache_dir: str | os.PathLike, *, overwrite: bool = False,
                           resume: bool = True, callbacks: Sequence = (), verbose: int | str = "auto",
                           catalog_paths: Sequence[str] | None = None, timer: StageTimer | None = None) -> Path:
    """Train ``config``'s head on cached features; save a run directory that ``Predictor``/``evaluate`` read.

    Same split and label space as ``fashion_hier.train`` (``prepare_run``), the recipe of
    ``fit_head``; the backbone is frozen by construction. With ``data.flip_features`` the flipped
    views' cache (``CACHE/flipped``) augments the training rows. The head is then copied into a
    full model with the cache's backbone weights and saved as ``model.keras`` (``best.keras`` is
    the same file), beside ``head.keras`` and ``features.json``.

    With ``model.trainable_from`` the backbone above that layer is then fine-tuned with the head from
    the activation cache of ``catalog_paths`` (default: the config's catalogue), extracted or reused
    first (``fashion_hier.finetune.stage``); the fine-tuned image model is ``model.keras``, and there is
    no ``head.keras``/``features.json``, since the frozen features no longer describe the model.

    ``overwrite``/``resume`` mean what they mean for ``fashion_hier.train.train``: the head and the fine-tune
    each checkpoint every epoch (``backup/head``, ``backup/finetune``; ``fashion_hier.training_loop``), so a
    killed run resumes where it stopped and ends with an uninterrupted run's weights. ``callbacks`` run in
    the head's fit and in the fine-tune's. The run directory's lock is held throughout. ``timer`` (``fashion_hier.timings``) times
    the activation extraction, the head and the fine-tune.
    """
    from fashion_hier import train as training

    config = training.resolved_config(config)
    with RunDir(config.run_dir).training_lock():
        return _train_head_locked(config, cache_dir, overwrite=overwrite, resume=resume, callbacks=callbacks,
                                  verbose=verbose, catalog_paths=catalog_paths, timer=timer or StageTimer())


def _train_head_locked(config: TrainConfig, cache_dir: str | os.PathLike, *, overwrite: bool, resume: bool,
                       callbacks: Sequence, verbose: int | str, catalog_paths: Sequence[str] | None,
                       timer: StageTimer) -> Path:
    from fashion_hier import train as training
    from fashion_hier.features.cache import flipped_cache_dir

    cache = load_feature_cache(cache_dir)
    _check_cache_serves(cache, config)
    flipped = None
    if config.data.flip_features:
        flipped = load_feature_cache(flipped_cache_dir(cache_dir))
        _check_cache_serves(flipped, config, flip=True)
    activation_cache = None
    if config.model.trainable_from:  # before the run directory is touched: extraction is the long part
        from fashion_hier.finetune.stage import ensure_activation_cache

        if catalog_paths is None:
            catalog_paths = read_config_catalog(config).paths
        with timer.stage("extraction: activations"):
            activation_cache = ensure_activation_cache(config, catalog_paths)
    prepared = training.prepare_run(config, overwrite=overwrite, resume=resume)
    run_dir, label_space = prepared.run_dir, prepared.label_space
    run = RunDir(run_dir)
    train_paths, train_labels = _readable(cache, _image_paths(prepared.train_frame), prepared.train_labels)
    train_features = _features_of(cache, train_paths, "train split")
    flipped_features = None if flipped is None else _features_of(flipped, train_paths, "train split (flipped)")
    validation_features, validation_labels, validation_paths = None, prepared.validation_labels, None
    if len(prepared.validation_frame):
        validation_paths, validation_labels = _readable(cache, _image_paths(prepared.validation_frame),
                                                        validation_labels)
        validation_features = _features_of(cache, validation_paths, "validation split")
    write_unreadable_report(sorted(cache.unreadable.items()), RunDir(run_dir).unreadable_images)
    logger.info("features: train %s, validation %d rows; %s", train_features.shape,
                len(prepared.validation_frame), label_space)

    with timer.stage("head"):
        fitted = fit_head(config, label_space, train_features, train_labels, validation_features,
                          validation_labels, flipped_train_features=flipped_features, verbose=verbose,
                          callbacks=callbacks, backup=Backup.of(run, run.HEAD_BACKUP), history_path=run.history)
    logger.info(_timing_summary(fitted.epoch_seconds, len(train_features), cache.manifest))
    finished = {"epochs": fitted.outcome.epochs, "monitor": fitted.outcome.monitor,
                "best_epoch": fitted.outcome.best_epoch, "trainer": "head on cached features"}
    if activation_cache is not None:
        with timer.stage("fine-tune"):
            finished.update(_finetune(config, activation_cache, label_space, fitted, train_paths, train_labels,
                                      validation_paths, validation_labels, run_dir, prepared.train_labels,
                                      callbacks=callbacks, verbose=verbose))
    else:
        with atomic_path(RunDir(run_dir).head) as temporary:
            fitted.model.save(temporary)
        _save_full_model(fitted.model, config, label_space, run_dir, prepared.train_labels)
        atomic_write_text(RunDir(run_dir).features_record, json.dumps(
            {"cache_dir": str(Path(cache_dir).resolve()), **_identity(cache.manifest)}, indent=2))
    run.mark_finished(finished)
    shutil.rmtree(run.backup, ignore_errors=True)  # only now: until the marker, the backup is the run
    logger.info("run saved in %s", run_dir)
    return run_dir


def _finetune(config: TrainConfig, activation_cache, label_space: LabelSpace, fitted: FittedHead,
              train_paths: list[str], train_labels: dict, validation_paths: list[str] | None,
              validation_labels: dict | None, run_dir: Path, all_train_labels: dict, *, callbacks: Sequence,
              verbose) -> dict:
    """The partial fine-tune after the head; saves the kept model as the run's ``model.keras``; returns its record."""
    from fashion_hier.finetune.stage import finetune_stage

    run = RunDir(run_dir)
    unreadable = set(activation_cache.paths[~activation_cache.readable].tolist())  # out of the fine-tune too
    train_paths, train_labels = _without(train_paths, train_labels, unreadable)
    if validation_paths is not None:
        validation_paths, validation_labels = _without(validation_paths, validation_labels, unreadable)
    outcome = finetune_stage(config, activation_cache, label_space, fitted.model, fitted.history, train_paths,
                             train_labels, validation_paths, validation_labels, verbose=verbose, callbacks=callbacks,
                             backup=Backup.of(run, run.FINETUNE_BACKUP), history_path=run.finetune_history)
    if outcome.kept:
        from fashion_hier.train import link_best, save_final_model

        save_final_model(outcome.result.model, run, config=config, label_space=label_space,
                         train_labels=all_train_labels)
        link_best(run)
    else:
        _save_full_model(fitted.model, config, label_space, run_dir, all_train_labels)
    return {"trainer": "head on cached features, then the backbone above "
                       f"{config.model.trainable_from} fine-tuned with it from cached activations",
            "finetune": {"cut_layer": config.model.trainable_from, "kept": outcome.kept,
                         "best_epoch": outcome.result.best_epoch, "epochs": len(outcome.result.epoch_seconds),
                         "epoch_seconds": [round(s, 1) for s in outcome.result.epoch_seconds],
                         "frozen_" + fitted.outcome.monitor: outcome.frozen_score,
                         "finetuned_" + fitted.outcome.monitor: outcome.finetuned_score}}


def _without(paths: list[str], labels: dict, dropped: set[str]) -> tuple[list[str], dict]:
    """``paths`` and their ``labels`` without the paths in ``dropped``."""
    if not dropped:
        return paths, labels
    keep = np.array([path not in dropped for path in paths], dtype=bool)
    return [p for p, k in zip(paths, keep) if k], {level: values[keep] for level, values in labels.items()}


def _level_metrics() -> dict:
    """Accuracy for category and subcategory: what early stopping reads.

    No PR-AUC for attributes here (``fashion_hier.train`` has it): its multi-label state costs more
    graph tracing than a whole head epoch on features; ``evaluate`` reports attribute mAP.
    """
    import keras

    return {level: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
            for level in ("category", "subcategory")}


def _readable(cache: FeatureCache, paths: list[str], labels: dict) -> tuple[list[str], dict]:
    """``paths`` and their ``labels`` without the images the cache could not read (their rows are placeholders)."""
    kept_paths, kept_labels = _without(paths, labels, set(cache.unreadable))
    if len(kept_paths) < len(paths):
        logger.warning("%d images of this split could not be read at extraction; left out",
                       len(paths) - len(kept_paths))
    return kept_paths, kept_labels


def _image_paths(frame) -> list[str]:
    return frame[IMAGE_PATH].astype(str).tolist()


def _save_full_model(head, config: TrainConfig, label_space: LabelSpace, run_dir: Path, train_labels: dict) -> None:
    """The head's weights in a full image model (the cache's backbone), saved as the run's task model.

    ``best.keras`` is the same file (the head restored its best epoch): one file, two names.
    """
    from fashion_hier.models import build_model_from_config, copy_head_weights
    from fashion_hier.train import link_best, save_final_model

    run = RunDir(run_dir)
    model = build_model_from_config(config, label_space)
    copy_head_weights(head, model)
    save_final_model(model, run, config=config, label_space=label_space, train_labels=train_labels)
    link_best(run)


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


