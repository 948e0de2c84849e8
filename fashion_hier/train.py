"""Train a model from a ``TrainConfig`` into a run directory, resumably.

A straight line: catalogue -> split -> label space -> loaders -> model -> weighted losses ->
compile -> fit -> save. The run directory (see docs/api.md) holds everything ``Predictor`` and
``evaluate`` need. A killed run keeps its last finished epoch in ``backup/`` and the same command
continues it; a finished run is never overwritten unless asked.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import pandas as pd

from fashion_hier.config import ConfigError, TrainConfig, add_override_argument, training_seed
from fashion_hier.labels import LabelSpace

CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.json"
MODEL_FILE = "model.keras"
BEST_FILE = "best.keras"
HISTORY_FILE = "history.csv"
SPLITS_DIR = "splits"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"
FROZEN_STAGE_WEIGHTS = "frozen_stage_done.weights.h5"  # in backup/: the frozen stage finished
SPLIT_NAMES = ("train", "validation", "test")


class RunDirectoryError(RuntimeError):
    """The run directory holds a run that this call must not continue or overwrite."""


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = True,
          callbacks: Sequence = (), verbose: int | str = "auto") -> Path:
    """Train ``config`` into ``config.output_dir/config.name`` and return that run directory.

    Args:
        overwrite: clear a finished (or interrupted) run in the directory and start again.
        resume: continue an interrupted run (``backup/`` present) from its last finished epoch.
        callbacks: extra Keras callbacks, run after the run directory's own.
        verbose: Keras ``fit`` verbosity.
    """
    import keras

    from fashion_hier.distribute import chief_output_dir, strategy_from_config
    from fashion_hier.models import build_model
    from fashion_hier.runtime import precision_policy, resolve_runtime

    config = resolved_config(config)
    config = dataclasses.replace(config, output_dir=chief_output_dir(config.output_dir))  # only the chief keeps files
    prepared = prepare_run(config, overwrite=overwrite, resume=resume)
    run_dir, label_space, train_labels = prepared.run_dir, prepared.label_space, prepared.train_labels

    train_data = _loader(config, prepared.train_frame, train_labels, training=True)
    validation_data = (_loader(config, prepared.validation_frame, prepared.validation_labels, training=False)
                       if len(prepared.validation_frame) else None)

    keras.utils.set_random_seed(training_seed(config))  # weight initialisation and dropout
    jit_compile, policy = resolve_runtime(config.training.jit_compile, config.training.mixed_precision,
                                          distributed=config.training.distribution != "none")
    strategy = strategy_from_config(config.training.distribution)  # batch_size is global: split over replicas
    with precision_policy(policy), strategy.scope():
        model = build_model(
            label_space.num_categories, label_space.num_subcategories, label_space.num_attributes,
            backbone=config.model.backbone, weights=config.model.weights,
            input_shape=(*config.data.image_size, 3), head=config.model.head, units=config.model.units,
            l2=config.model.l2, dropout=config.model.dropout, trainable_backbone=config.model.trainable_backbone,
            top_down=config.model.top_down, bottom_up=config.model.bottom_up,
        )
        print(f"model: {config.model.backbone} + {config.model.head} head, {model.count_params():,} parameters")
        losses = weighted_losses(config, label_space, train_labels)
        fit_callbacks = [*_run_callbacks(config, run_dir, has_validation=validation_data is not None), *callbacks]
        stages = _stages(config)
        for stage, (frozen, first_epoch, last_epoch, learning_rate) in enumerate(stages):
            stage_done = run_dir / BACKUP_DIR / FROZEN_STAGE_WEIGHTS
            if frozen and stage_done.exists():
                model.load_weights(stage_done)  # finished before an interruption: do not repeat it
                continue
            _set_backbone_trainable(model, config.model.trainable_backbone and not frozen)
            compile_model(model, config, losses, label_space, learning_rate, jit_compile)
            model._initial_epoch = None  # Keras keeps an epoch restored by BackupAndRestore across fit calls
            backup = keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR / f"stage{stage}"))
            _trim_history(run_dir / HISTORY_FILE, _backed_up_epoch(run_dir / BACKUP_DIR / f"stage{stage}", first_epoch))
            # shuffle=False: the loader reshuffles itself from the seed; Keras would add an unseeded
            # shuffle of the batch order on top and break run-to-run reproducibility.
            model.fit(train_data, validation_data=validation_data, epochs=last_epoch, initial_epoch=first_epoch,
                      callbacks=[backup, *fit_callbacks], verbose=verbose, shuffle=False)
            if frozen:
                model.save_weights(stage_done)

    model.save(run_dir / MODEL_FILE)
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    print(f"run saved in {run_dir}")
    return run_dir


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """What every trainer starts from: the run directory, the saved split and label space, encoded targets."""

    run_dir: Path
    splits: object  # fashion_hier.data.Splits
    label_space: LabelSpace
    train_frame: pd.DataFrame
    train_labels: dict
    validation_frame: pd.DataFrame
    validation_labels: dict


def prepare_run(config: TrainConfig, *, overwrite: bool, resume: bool) -> PreparedRun:
    """Open the run directory, read and split the catalogue, save the splits and the train label space.

    ``config`` must be resolved (``resolved_config``). Shared by ``train`` and the feature-cache
    trainer (``fashion_hier.features``), so both write the same run directory layout.
    """
    run_dir = _prepare_run_dir(config, overwrite=overwrite, resume=resume)
    catalog = read_config_catalog(config)
    print(catalog.report)
    splits = catalog.split(tuple(config.data.split), by=config.data.split_by, seed=config.data.seed)
    _save_splits(run_dir, splits)
    label_space = LabelSpace.from_frame(splits.train, **asdict(config.data.columns))
    label_space.save(run_dir / LABELS_FILE)
    train_frame, train_labels = _encode_known(label_space, splits.train, "train")
    validation_frame, validation_labels = _encode_known(label_space, splits.validation, "validation")
    print(f"splits: train {len(train_frame)}, validation {len(validation_frame)}, test {len(splits.test)} rows; "
          f"{label_space}")
    return PreparedRun(run_dir, splits, label_space, train_frame, train_labels, validation_frame, validation_labels)


# ---- run directory --------------------------------------------------------------------------

def resolved_config(config: TrainConfig) -> TrainConfig:
    """The config with absolute paths, so the saved copy works from any working directory."""
    if not config.data.labels_csv or not config.data.image_dir:
        raise ConfigError("data.labels_csv and data.image_dir must be set (in the YAML file or with "
                         "--set data.labels_csv=PATH --set data.image_dir=DIR)")
    absolute = lambda path: str(Path(path).expanduser().resolve())  # noqa: E731
    data = dataclasses.replace(config.data, labels_csv=absolute(config.data.labels_csv),
                               image_dir=absolute(config.data.image_dir))
    return dataclasses.replace(config, data=data, output_dir=absolute(config.output_dir))


def _prepare_run_dir(config: TrainConfig, *, overwrite: bool, resume: bool) -> Path:
    """Create, clear or re-open the run directory; refuse to clobber a finished run."""
    run_dir = config.run_dir
    finished = (run_dir / MODEL_FILE).exists()
    interrupted = (run_dir / BACKUP_DIR).exists() and not finished
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    elif finished:
        raise RunDirectoryError(
            f"{run_dir} already holds a finished run ({MODEL_FILE}); pass overwrite=True "
            f"(fashion-hier train --overwrite) to replace it, or choose another name (--set name=NEW)")
    elif interrupted and not resume:
        raise RunDirectoryError(
            f"{run_dir} holds an interrupted run ({BACKUP_DIR}/); pass resume=True to continue it "
            f"or overwrite=True (--overwrite) to start again")
    elif interrupted:
        _check_same_config(run_dir, config)
        print(f"resuming the interrupted run in {run_dir}")
    elif run_dir.exists() and any(run_dir.iterdir()):
        if not (run_dir / CONFIG_FILE).exists():
            raise RunDirectoryError(f"{run_dir} is not empty and is not a run directory (no {CONFIG_FILE}); "
                                    f"choose another output_dir or name")
        shutil.rmtree(run_dir)  # a run stopped before its first epoch finished: nothing to keep
    (run_dir / SPLITS_DIR).mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / CONFIG_FILE)
    return run_dir


def _check_same_config(run_dir: Path, config: TrainConfig) -> None:
    saved = TrainConfig.from_yaml(run_dir / CONFIG_FILE)
    if saved != config:
        changed = [key for key, value in _flatten(config.to_dict()).items() if _flatten(saved.to_dict()).get(key) != value]
        raise RunDirectoryError(
            f"{run_dir} holds an interrupted run with a different config (changed: {', '.join(changed)}); "
            f"resume it with the config in {run_dir / CONFIG_FILE}, or pass overwrite=True (--overwrite)")


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _save_splits(run_dir: Path, splits) -> None:
    for name in SPLIT_NAMES:
        getattr(splits, name).to_csv(run_dir / SPLITS_DIR / f"{name}.csv", index=False)


def _backed_up_epoch(backup_dir: Path, default: int) -> int:
    """The epoch a BackupAndRestore directory will resume from (``default`` when there is none)."""
    import json

    metadata = backup_dir / "training_metadata.json"
    if not metadata.exists():
        return default
    return int(json.loads(metadata.read_text())["epoch"])


def _trim_history(history_csv: Path, epochs_done: int) -> None:
    """Drop history rows of epochs that will be run again, so each epoch is logged once."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return
    history = pd.read_csv(history_csv)
    if (history["epoch"] >= epochs_done).any():
        history[history["epoch"] < epochs_done].to_csv(history_csv, index=False)


# ---- data -----------------------------------------------------------------------------------

def read_config_catalog(config: TrainConfig):
    """The catalogue that ``config.data`` describes (``read_catalog`` with the config's options)."""
    from fashion_hier.data import read_catalog

    data = config.data
    return read_catalog(data.labels_csv, data.image_dir, columns=data.columns, id_column=data.id_column,
                        verify_images=data.verify_images, cap_factor=data.cap_factor,
                        target_samples=data.target_samples, seed=data.seed)


def _encode_known(label_space: LabelSpace, frame: pd.DataFrame, split: str) -> tuple[pd.DataFrame, dict]:
    """Targets of the rows whose labels the (train) label space knows; the others are dropped with a warning."""
    known = label_space.known_rows(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = label_space.encode(frame, unknown="drop")
    for warning in caught:
        warnings.warn(f"{split} split: {warning.message}", stacklevel=3)
    return frame.loc[known], labels


def _loader(config: TrainConfig, frame: pd.DataFrame, labels: dict, *, training: bool):
    """FashionSequence or tf.data pipeline over ``frame``; augmentation and shuffling for training only."""
    from fashion_hier.data import FashionSequence, make_dataset
    from fashion_hier.data.augment import training_preset

    data = config.data
    augment = training_preset(tuple(data.image_size), hue=data.hue) if training and data.augment else None
    options = dict(batch_size=config.training.batch_size, image_size=tuple(data.image_size), resize=data.resize,
                   augment=augment, shuffle=training, seed=data.seed, workers=data.workers,
                   use_multiprocessing=data.use_multiprocessing)
    paths = frame["image_path"].to_numpy(dtype=str)
    if data.loader == "tfdata":
        return make_dataset(paths, labels, **options)
    return FashionSequence(paths, labels, **options)


# ---- model, losses, compile -----------------------------------------------------------------

def weighted_losses(config: TrainConfig, label_space: LabelSpace, train_labels: dict) -> dict:
    """Per-level cross-entropies weighted by inverse class frequency in the training split."""
    from fashion_hier.losses import (
        WeightedBinaryCrossentropy,
        WeightedCategoricalCrossentropy,
        attribute_weights,
        inverse_frequency_weights,
    )

    if config.loss.weighting == "none":
        return {"category": WeightedCategoricalCrossentropy(), "subcategory": WeightedCategoricalCrossentropy(),
                "attributes": WeightedBinaryCrossentropy()}
    smoothing = dict(power=config.loss.power, cap=config.loss.cap)
    pos, neg = attribute_weights(train_labels["attributes"], **smoothing)
    return {
        "category": WeightedCategoricalCrossentropy(
            inverse_frequency_weights(train_labels["category"], label_space.num_categories, **smoothing)),
        "subcategory": WeightedCategoricalCrossentropy(
            inverse_frequency_weights(train_labels["subcategory"], label_space.num_subcategories, **smoothing)),
        "attributes": WeightedBinaryCrossentropy(pos, neg),
    }


def _level_metrics(label_space: LabelSpace) -> dict:
    import keras

    return {
        "category": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        "subcategory": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        "attributes": [keras.metrics.AUC(curve="PR", multi_label=True, num_labels=label_space.num_attributes,
                                         name="pr_auc")],
    }


def compile_model(model, config: TrainConfig, losses: dict, label_space: LabelSpace, learning_rate: float,
                  jit_compile: bool) -> None:
    """Adam at ``learning_rate``, the given losses, and the per-level training metrics."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=losses,
                  metrics=_level_metrics(label_space), jit_compile=jit_compile,
                  run_eagerly=config.training.run_eagerly)


def _stages(config: TrainConfig) -> list[tuple[bool, int, int, float]]:
    """(backbone frozen, first epoch, end epoch, learning rate) of each fit call."""
    training, learning_rate = config.training, config.optimizer.learning_rate
    if training.freeze_epochs == 0:
        return [(False, 0, training.epochs, learning_rate)]
    stages = [(True, 0, training.freeze_epochs, learning_rate)]
    if training.freeze_epochs < training.epochs:
        stages.append((False, training.freeze_epochs, training.epochs, training.finetune_learning_rate))
    return stages


def _set_backbone_trainable(model, trainable: bool) -> None:
    from fashion_hier.models import backbone_model

    backbone_model(model).trainable = trainable


def _run_callbacks(config: TrainConfig, run_dir: Path, *, has_validation: bool) -> list:
    """History CSV (appended on resume), best checkpoint, early stopping and TensorBoard."""
    import keras

    monitor = "val_loss" if has_validation else "loss"
    history = run_dir / HISTORY_FILE
    callbacks = [
        keras.callbacks.CSVLogger(str(history), append=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / BEST_FILE), monitor=monitor, save_best_only=True,
                                        initial_value_threshold=_best_so_far(history, monitor)),
    ]
    if config.training.early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, restore_best_weights=True,
                                                       patience=config.training.early_stopping_patience))
    if config.training.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / TENSORBOARD_DIR)))
    return callbacks


def _best_so_far(history_csv: Path, monitor: str) -> float | None:
    """The best ``monitor`` value of a resumed run, so its checkpoint is only replaced by a better one."""
    if not history_csv.exists() or history_csv.stat().st_size == 0:
        return None
    values = pd.read_csv(history_csv).get(monitor)
    return None if values is None or values.dropna().empty else float(values.min())


# ---- command line ---------------------------------------------------------------------------

def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier train --config cfg.yaml [--set key=value ...] [--overwrite]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier train", description="train a model into a run directory")
    parser.add_argument("--config", required=True, help="YAML file of a TrainConfig")
    add_override_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run of the same name")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="refuse to continue an interrupted run (use with --overwrite to start again)")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.from_yaml(args.config).with_overrides(args.overrides)
        train(config, overwrite=args.overwrite, resume=args.resume)
    except (ConfigError, FileNotFoundError, RunDirectoryError) as error:
        print(f"fashion-hier train: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
