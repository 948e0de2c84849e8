"""Train a model from a ``TrainConfig`` into a run directory, resumably and exactly.

A straight line: catalogue -> split -> label space -> loaders -> model -> weighted losses ->
compile -> fit -> save. The run directory (``RunDir``, see docs/api.md) holds everything
``Predictor`` and ``evaluate`` need. After every epoch, ``backup/`` holds a checkpoint of every
model and optimiser variable (``fashion_hier.checkpoints``); the same command continues a killed
run from there and ends with the same weights as an uninterrupted run. A run is finished only
once ``RunDir.mark_finished`` has written its marker (after the model file), and a finished run is
never overwritten unless asked.

Training goes through the one loop of every trainer (``fashion_hier.training_loop``): early stopping
and the best epoch, which the run ends on (``best.keras`` is ``model.keras``), follow its ``MONITOR``, the validation
subcategory accuracy — an unweighted quantity: the class-weighted loss rewards rare classes at the
cost of accuracy, and following it stopped the shipped FPI run at 55% subcategory accuracy while
later epochs reached 73% (issue 11).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import warnings
from pathlib import Path
from typing import Sequence

import pandas as pd

from fashion_hier.atomic import atomic_path
from fashion_hier.config import ConfigError, TrainConfig, training_seed
from fashion_hier.data.catalog import config_splits, read_config_catalog
from fashion_hier.errors import RunDirectoryError
from fashion_hier.labels import IMAGE_PATH, LabelSpace
from fashion_hier.rundir import SPLIT_NAMES, RunDir
from fashion_hier.timings import StageTimer
from fashion_hier.compiling import compile_model, weighted_losses
from fashion_hier.training_loop import Stage, fit_resumable

logger = logging.getLogger(__name__)

def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = True,
          callbacks: Sequence = (), verbose: int | str = "auto") -> Path:
    """Train ``config`` into ``config.output_dir/config.name`` and return that run directory.

    Args:
        overwrite: clear a finished (or interrupted) run in the directory and start again.
        resume: continue an interrupted run (``backup/`` present) from its last finished epoch.
        callbacks: extra Keras callbacks, run after the run directory's own.
        verbose: Keras ``fit`` verbosity; "auto": per-step bars on a terminal, one line per epoch
            otherwise, nothing when the ``fashion_hier`` logger is quiet (``fashion_hier.logs``).
    """
    from fashion_hier.distribute import chief_output_dir

    config = resolved_config(config)
    config = dataclasses.replace(config, output_dir=chief_output_dir(config.output_dir))  # only the chief keeps files
    timer = StageTimer()
    with RunDir(config.run_dir).training_lock():  # one process writes a run at a time
        if config.training.cache_features:  # frozen backbone: the head trains on cached features, same run directory
            run_dir = _train_on_cached_features(config, overwrite=overwrite, resume=resume, callbacks=callbacks,
                                                verbose=verbose, timer=timer)
        else:
            with timer.stage("training"):
                run_dir = _train_images(config, overwrite=overwrite, resume=resume, callbacks=callbacks,
                                        verbose=verbose)
        if config.training.calibrate:
            with timer.stage("calibration"):
                _calibrate(RunDir(run_dir))
        timer.write(RunDir(run_dir))
        logger.info("seconds per stage: %s", ", ".join(f"{name} {seconds:.0f}"
                                                         for name, seconds in timer.record()["stages"].items()))
        return run_dir


def _calibrate(run: RunDir) -> None:
    """``training.calibrate``: temperatures fitted on the validation split, stored in the run's model."""
    from fashion_hier.calibrate import calibrate_run
    from fashion_hier.evaluation_data import read_split

    if not len(read_split(run.path, "validation")):
        logger.warning("training.calibrate: the run has no validation rows (data.split); left uncalibrated")
        return
    calibrate_run(run.path, progress=sys.stderr.isatty())


def _train_images(config: TrainConfig, *, overwrite: bool, resume: bool, callbacks: Sequence, verbose) -> Path:
    """The full model on image batches, through the one training loop (``train``'s main path, lock held)."""
    import keras

    from fashion_hier.checkpoints import Backup
    from fashion_hier.data import UnreadableImages, write_unreadable_report
    from fashion_hier.distribute import strategy_from_config
    from fashion_hier.logs import keras_verbosity
    from fashion_hier.models import build_model_from_config
    from fashion_hier.runtime import precision_policy, resolve_runtime

    prepared = prepare_run(config, overwrite=overwrite, resume=resume)
    run, label_space, train_labels = RunDir(prepared.run_dir), prepared.label_space, prepared.train_labels
    verbose = keras_verbosity() if verbose == "auto" else verbose

    unreadable = UnreadableImages(across_processes=config.data.use_multiprocessing)  # both loaders report here
    train_data = _loader(config, prepared.train_frame, train_labels, training=True, unreadable=unreadable)
    validation_data = (_loader(config, prepared.validation_frame, prepared.validation_labels, training=False,
                               unreadable=unreadable) if len(prepared.validation_frame) else None)

    # Keras draws initial weights and the dropout layers' first seeds from its global seed (it forces
    # a global here); everything random after that lives in model variables the checkpoint restores.
    keras.utils.set_random_seed(training_seed(config))
    jit_compile, policy = resolve_runtime(config.training.jit_compile, config.training.mixed_precision,
                                          distributed=config.training.distribution != "none")
    strategy = strategy_from_config(config.training.distribution)  # batch_size is global: split over replicas
    with precision_policy(policy), strategy.scope():
        model = build_model_from_config(config, label_space)
        logger.info("model: %s + %s head, %s parameters", config.model.backbone, config.model.head,
                    f"{model.count_params():,}")
        losses = weighted_losses(config, label_space, train_labels)
        steps_per_epoch = -(-len(prepared.train_frame) // config.training.batch_size)

        def stage(frozen: bool, first_epoch: int, end_epoch: int, learning_rate: float) -> Stage:
            def prepare(network) -> None:
                _set_backbone_trainable(network, config.model.trainable_backbone and not frozen)
                compile_model(network, config, losses, label_space, learning_rate, jit_compile,
                              steps_per_epoch=steps_per_epoch, epochs=end_epoch - first_epoch)
            return Stage(first_epoch, end_epoch, prepare)

        outcome = fit_resumable(model, [stage(*settings) for settings in _stages(config)], train_data,
                                validation_data, backup=Backup.of(run), history_path=run.history,
                                patience=config.training.early_stopping_patience,
                                callbacks=[*_extra_callbacks(config, run), *callbacks], verbose=verbose)

    save_final_model(model, run, config=config, label_space=label_space, train_labels=train_labels)
    link_best(run)
    write_unreadable_report(unreadable, run.unreadable_images)
    if len(unreadable):
        logger.warning("%d unreadable images were skipped in training; listed in %s", len(unreadable),
                       run.unreadable_images)
    run.mark_finished({"epochs": outcome.epochs, "monitor": outcome.monitor, "best_epoch": outcome.best_epoch})
    shutil.rmtree(run.backup, ignore_errors=True)  # only now: until the marker, the backup is the run
    logger.info("run saved in %s", run.path)
    return run.path


def _train_on_cached_features(config: TrainConfig, *, overwrite: bool, resume: bool, callbacks: Sequence,
                              verbose, timer: StageTimer) -> Path:
    """``training.cache_features``: extract (or reuse) the frozen backbone's caches, train the head on them.

    The caches live under ``output_dir/features/`` and are shared by every run of the same catalogue and
    backbone; extraction resumes where it stopped. With ``model.trainable_from`` each photo goes through the
    backbone once per view: the maps at the cut are cached for the fine-tune, and the head's pooled features
    are derived from them (``features.derived``). The run directory is a normal one (``model.keras`` is the
    full image model), so ``Predictor``, ``evaluate`` and ``predict`` use it as any other run.
    """
    from fashion_hier.features import ensure_feature_caches, train_head_on_features
    from fashion_hier.logs import keras_verbosity

    refuse_finished_run(RunDir(config.run_dir), overwrite=overwrite)  # before minutes of extraction
    catalog = read_config_catalog(config)
    progress = sys.stderr.isatty()  # minutes of extraction: a bar on a terminal (only the result lines in a log)
    from fashion_hier.engine import extraction_calibration_paths, extraction_engine

    logger.info("extraction engine: %s", extraction_engine(config).describe())
    if config.model.trainable_from:
        from fashion_hier.features.derived import derive_feature_caches
        from fashion_hier.finetune.stage import ensure_activation_cache

        with timer.stage("extraction: activations"):
            activations = ensure_activation_cache(config, catalog.paths, catalog=catalog)
        with timer.stage("extraction: pooled features from the activations"):
            cache_dir = derive_feature_caches(config, activations, progress=progress,
                                              calibration_paths=extraction_calibration_paths(config, catalog))
    else:
        with timer.stage("extraction: pooled features"):
            cache_dir = ensure_feature_caches(config, catalog.paths, progress=progress, catalog=catalog)
    verbose = keras_verbosity() if verbose == "auto" else verbose
    return train_head_on_features(config, cache_dir, overwrite=overwrite, resume=resume, callbacks=callbacks,
                                  verbose=verbose, catalog_paths=catalog.paths, timer=timer)


def save_final_model(model, run: RunDir, *, config: TrainConfig, label_space: LabelSpace,
                     train_labels: dict) -> Path:
    """Write the trained network as a ``HierarchicalClassifier`` to ``run.model``, atomically.

    The one place a run's final model is saved: the task carries the label space, image size and
    resize policy, the training class counts and the build settings, so ``model.keras`` alone is a
    usable model.
    """
    from fashion_hier.checkpoints import save_model_file
    from fashion_hier.task import HierarchicalClassifier, class_counts_from_labels

    task = HierarchicalClassifier(model, label_space, image_size=config.data.image_size, resize=config.data.resize,
                                  class_counts=class_counts_from_labels(train_labels, label_space),
                                  build_settings=dataclasses.asdict(config.model),
                                  loss_settings=dataclasses.asdict(config.loss),
                                  optimizer_settings=dataclasses.asdict(config.optimizer))
    return save_model_file(task, run.model)


def link_best(run: RunDir) -> None:
    """``best.keras`` is ``model.keras``: every trainer ends on its best epoch's weights, so one file has two names.

    A hard link where the file system has them (no second copy of the weights), else a copy; atomic either way.
    """
    from fashion_hier.checkpoints import link_file

    link_file(run.model, run.best)


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
    run_dir, resuming = _prepare_run_dir(config, overwrite=overwrite, resume=resume)
    catalog = read_config_catalog(config)
    logger.info("%s", catalog.report)
    splits = config_splits(config, catalog)
    if resuming:  # the epochs done were trained on the saved splits: continue only on exactly those rows
        check_same_splits(RunDir(run_dir), splits, config.data.columns.all)
    else:
        _save_splits(RunDir(run_dir), splits)
    label_space = LabelSpace.from_columns(splits.train, config.data.columns)
    label_space.save(RunDir(run_dir).labels)
    train_frame, train_labels = _encode_known(label_space, splits.train, "train")
    validation_frame, validation_labels = _encode_known(label_space, splits.validation, "validation")
    logger.info("splits: train %d, validation %d, test %d rows; %s", len(train_frame), len(validation_frame),
                len(splits.test), label_space)
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


def refuse_finished_run(run: RunDir, *, overwrite: bool) -> None:
    """A finished run is replaced only when asked."""
    if run.is_finished and not overwrite:
        raise RunDirectoryError(f"{run.path} already holds a finished run; pass overwrite=True "
                                f"(fashion-hier train --overwrite) to replace it, or choose another name (--set name=NEW)")


def _prepare_run_dir(config: TrainConfig, *, overwrite: bool, resume: bool) -> tuple[Path, bool]:
    """Create, clear or re-open the run directory; return it and whether an interrupted run is resumed.

    Only a directory the library made is ever cleared (``RunDir.clear``), and only of the files a run writes.
    """
    run = RunDir(config.run_dir)
    refuse_finished_run(run, overwrite=overwrite)
    interrupted = run.backup.exists() and not run.is_finished
    if interrupted and not resume and not overwrite:
        raise RunDirectoryError(
            f"{run.path} holds an interrupted run ({run.backup.name}/); pass resume=True to continue it "
            f"or overwrite=True (--overwrite) to start again")
    resuming = interrupted and not overwrite
    if resuming:
        _check_same_config(run.path, config)
        logger.info("resuming the interrupted run in %s", run.path)
    else:  # a new run, an overwritten one, or one stopped before its first checkpoint: nothing to keep
        run.clear()
    run.create()
    run.splits_dir.mkdir(parents=True, exist_ok=True)
    if not resuming:
        with atomic_path(run.config) as temporary:
            config.to_yaml(temporary)
    return run.path, resuming


def _check_same_config(run_dir: Path, config: TrainConfig) -> None:
    saved = TrainConfig.from_yaml(RunDir(run_dir).config)
    if saved != config:
        changed = [key for key, value in _flatten(config.to_dict()).items() if _flatten(saved.to_dict()).get(key) != value]
        raise RunDirectoryError(
            f"{run_dir} holds an interrupted run with a different config (changed: {', '.join(changed)}); "
            f"resume it with the config in {RunDir(run_dir).config}, or pass overwrite=True (--overwrite)")


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_same_splits(run: RunDir, splits, label_columns: Sequence[str]) -> None:
    """Refuse to resume when the catalogue's rows, their labels or their split differ from the saved splits.

    A resume that redrew its splits from a changed catalogue would evaluate on rows it had trained on; the
    saved ``splits/*.csv`` are the record of what the finished epochs saw. Refusing (rather than continuing on
    the saved splits) keeps the run reproducible from its own config and catalogue.
    """
    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        columns = [column for column in label_columns if column in frame.columns]
        keyed_frame = frame[[IMAGE_PATH, *columns]].astype("string").fillna("")
        return keyed_frame.set_index(IMAGE_PATH)

    from fashion_hier.evaluation_data import read_split  # the one reader of a run's split files

    saved = {name: keyed(read_split(run.path, name)) for name in SPLIT_NAMES if run.split(name).is_file()}
    if len(saved) < len(SPLIT_NAMES):
        return  # a run of version 0.1.0 did not keep its splits: nothing to compare with
    current = {name: keyed(getattr(splits, name)) for name in SPLIT_NAMES}
    saved_split = {path: name for name, frame in saved.items() for path in frame.index}
    current_split = {path: name for name, frame in current.items() for path in frame.index}
    added = [path for path in current_split if path not in saved_split]
    removed = [path for path in saved_split if path not in current_split]
    moved = [path for path, name in current_split.items() if saved_split.get(path, name) != name]
    saved_rows = pd.concat(saved.values())
    current_rows = pd.concat(current.values())
    common = current_rows.index.intersection(saved_rows.index).unique()
    relabelled = []
    if len(common) and not saved_rows.index.has_duplicates and not current_rows.index.has_duplicates:
        both = saved_rows.columns.intersection(current_rows.columns)
        differs = (saved_rows.loc[common, both] != current_rows.loc[common, both]).any(axis=1)
        relabelled = list(common[differs.to_numpy()])
    changes = [f"{len(rows)} rows {what}" for rows, what in ((added, "added"), (removed, "gone (no row or no image)"),
                                                             (moved, "in another split"), (relabelled, "relabelled"))
               if rows]
    if changes:
        example = (added or removed or moved or relabelled)[0]
        raise RunDirectoryError(
            f"{run.path}: the catalogue changed since this run started ({', '.join(changes)}; e.g. {example}); "
            f"a resume must train on the rows of {run.splits_dir}: restore the labels CSV and images, or start "
            f"again with --overwrite (or another --set name=NEW)")


def _save_splits(run: RunDir, splits) -> None:
    for name in SPLIT_NAMES:
        with atomic_path(run.split(name)) as temporary:
            getattr(splits, name).to_csv(temporary, index=False)


# ---- data -----------------------------------------------------------------------------------

def _encode_known(label_space: LabelSpace, frame: pd.DataFrame, split: str) -> tuple[pd.DataFrame, dict]:
    """Targets of the rows whose labels the (train) label space knows; the others are dropped with a warning."""
    known = label_space.known_rows(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = label_space.encode(frame, unknown="drop")
    for warning in caught:
        warnings.warn(f"{split} split: {warning.message}", stacklevel=3)
    return frame.loc[known], labels


def _loader(config: TrainConfig, frame: pd.DataFrame, labels: dict, *, training: bool, unreadable=None):
    """FashionSequence or tf.data pipeline over ``frame``; augmentation and shuffling for training only."""
    from fashion_hier.data import FashionSequence, make_dataset
    from fashion_hier.data.augment import training_preset

    data = config.data
    augment = training_preset(tuple(data.image_size), hue=data.hue) if training and data.augment else None
    options = dict(batch_size=config.training.batch_size, image_size=tuple(data.image_size), resize=data.resize,
                   augment=augment, shuffle=training, seed=data.seed, max_pixels=data.max_pixels, workers=data.workers,
                   use_multiprocessing=data.use_multiprocessing, unreadable=unreadable)
    paths = frame[IMAGE_PATH].to_numpy(dtype=str)
    if data.loader == "tfdata":
        return make_dataset(paths, labels, **options)
    return FashionSequence(paths, labels, **options)


# ---- model, losses, compile -----------------------------------------------------------------

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


def _extra_callbacks(config: TrainConfig, run: RunDir) -> list:
    """Optional callbacks from the config: TensorBoard."""
    import keras

    if config.training.tensorboard:
        return [keras.callbacks.TensorBoard(log_dir=str(run.tensorboard))]
    return []
