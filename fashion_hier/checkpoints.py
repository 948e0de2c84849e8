"""Exact-resume checkpoints of a training run, the per-epoch bookkeeping that writes them, and the one
reader of model files.

Format, in the run's ``backup/`` directory (``RunDir.backup``):

- ``epoch-NNNN.npz`` (``RunDir.backup_checkpoint``): every variable after NNNN finished epochs —
  ``model.variables`` (weights, BatchNorm statistics and the dropout layers' seed-generator
  states, which ``model.weights`` leaves out) as ``model/0000...`` and ``optimizer.variables``
  (iteration count, moments) as ``optimizer/0000...``; ``model_paths``/``optimizer_paths`` hold
  the variable paths, checked on load; ``state`` holds that point's ``TrainingState`` as JSON, so
  each checkpoint can be resumed from on its own.
- ``state.json`` (``RunDir.backup_state``): ``{"epochs_done", "checkpoint", "history"}``, written
  after the ``.npz`` it names. Both are atomic, so a kill at any point leaves a consistent pair:
  the new one, or the previous one.

The newest checkpoint and the one before it are kept. A file damaged after it was written (a
truncated copy, a failing disk) is found on resume by the zip archive's checksums; the resume then
continues from the newest checkpoint that reads back whole, with a warning. Restoring every variable
(seed states included) and setting the loader's epoch makes a resumed run end with the same weights
as an uninterrupted one (tests/test_faults.py, tests/test_damaged_files.py), whichever epoch it
resumed from.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fashion_hier.atomic import atomic_open, atomic_path, atomic_write_text
from fashion_hier.errors import DamagedFileError
from fashion_hier.jsonio import read_json
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

START_AFRESH = "run again with --overwrite to start afresh"
MODEL_REMEDY = "copy the file again, or train the run again ('fashion-hier train --config CFG --overwrite')"
_STATE_KEYS = ("epochs_done", "checkpoint", "history")


class CheckpointError(ValueError):
    """The checkpoint in ``backup/`` does not fit the model being trained."""


@dataclasses.dataclass
class TrainingState:
    """How far a run got: epochs finished, their history rows, and the checkpoint file of that point."""

    epochs_done: int = 0
    checkpoint: str | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        """A state as ``state.json`` and each checkpoint's ``state`` entry hold it."""
        return cls(int(data["epochs_done"]), data.get("checkpoint"), list(data.get("history", [])))

    @classmethod
    def load(cls, run: RunDir) -> TrainingState:
        """The state to resume from, or a fresh one when the run has none.

        That is ``state.json``'s; when it or the checkpoint it names is damaged, the state of the newest
        checkpoint that reads back whole, with a warning naming the damaged files. Raises
        ``DamagedFileError`` when the run has a backup but no checkpoint in it can be read.
        """
        if not run.backup_state.is_file():
            return cls()
        damaged: list[DamagedFileError] = []
        candidates = _checkpoints(run)
        try:
            recorded = cls.from_dict(read_json(run.backup_state, remedy=START_AFRESH, keys=_STATE_KEYS))
        except DamagedFileError as error:
            damaged.append(error)
        else:
            named = run.backup / str(recorded.checkpoint)
            try:
                check_archive(named, START_AFRESH)
                return recorded
            except DamagedFileError as error:
                damaged.append(error)
            candidates = [path for path in candidates if path.name < named.name]  # state.json says these came before
        for path in candidates:
            try:
                state = _embedded_state(path)
            except DamagedFileError as error:
                damaged.append(error)
                continue
            logger.warning("%s; resuming from epoch %d (%s)", "; ".join(_damage(run, error) for error in damaged),
                           state.epochs_done, os.path.relpath(path, run.path))
            return state
        first = damaged[0]
        others = f"; no other checkpoint in {run.backup} reads back whole" if len(damaged) > 1 else ""
        raise DamagedFileError(first.path, first.problem + others, START_AFRESH)

    def save(self, run: RunDir) -> None:
        atomic_write_text(run.backup_state, json.dumps(dataclasses.asdict(self), indent=1, allow_nan=True) + "\n")


def _checkpoints(run: RunDir) -> list[Path]:
    """The run's checkpoints (``RunDir.backup_checkpoint``), newest first: their epoch counts are zero-padded.

    A temporary file a kill left behind (``.epoch-0003.npz.*.npz``) is hidden, so not among them.
    """
    return sorted((path for path in run.backup.glob("*.npz") if not path.name.startswith(".")), reverse=True)


def _damage(run: RunDir, error: DamagedFileError) -> str:
    """``backup/epoch-0003.npz is damaged (...)``: a damaged backup file, named within the run."""
    return f"{os.path.relpath(error.path, run.path)} is damaged ({error.problem})"


def _embedded_state(path: Path) -> TrainingState:
    """The ``TrainingState`` stored in a checkpoint, once the whole archive has passed its checksums."""
    check_archive(path, START_AFRESH)
    with np.load(path) as saved:
        if "state" not in saved.files:
            raise DamagedFileError(path, "it holds no training state (written by an older version)", START_AFRESH)
        return TrainingState.from_dict(json.loads(saved["state"].item()))


def check_archive(path: Path, remedy: str) -> None:
    """Raise ``DamagedFileError`` unless ``path`` is a whole zip archive (``.keras``, ``.npz``).

    Every member's CRC-32 is checked, so a truncated, overwritten or bit-rotten file is named here
    instead of failing later inside Keras or NumPy with a message about something else.
    """
    path = Path(path)
    if not path.is_file():
        raise DamagedFileError(path, "the file is missing", remedy)
    if not zipfile.is_zipfile(path):
        raise DamagedFileError(path, "not a complete zip archive: truncated or overwritten", remedy)
    try:
        with zipfile.ZipFile(path) as archive:
            failed = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DamagedFileError(path, f"unreadable zip archive: {error}", remedy) from None
    if failed is not None:
        raise DamagedFileError(path, f"its member {failed} fails its checksum", remedy)


def _values(variables) -> dict[str, np.ndarray]:
    return {f"{index:04d}": np.asarray(variable.numpy()) for index, variable in enumerate(variables)}


def save_checkpoint(run: RunDir, model, state: TrainingState) -> None:
    """Write every model and optimiser variable with ``state``, then ``state.json`` naming that file.

    Older checkpoints are dropped only now, and the one before this is kept: the point to resume from
    should this one be found damaged.
    """
    path = run.backup_checkpoint(state.epochs_done)
    optimizer_variables = list(model.optimizer.variables) if model.optimizer is not None else []
    arrays = {f"model/{key}": value for key, value in _values(model.variables).items()}
    arrays.update({f"optimizer/{key}": value for key, value in _values(optimizer_variables).items()})
    arrays["model_paths"] = np.array([variable.path for variable in model.variables])
    arrays["optimizer_paths"] = np.array([variable.path for variable in optimizer_variables])
    arrays["state"] = np.array(json.dumps(dataclasses.asdict(dataclasses.replace(state, checkpoint=path.name))))
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    state.checkpoint = path.name
    state.save(run)
    older = [stale.name for stale in _checkpoints(run) if stale.name < path.name]
    keep = {path.name, *older[:1]}
    for stale in run.backup.glob("*.npz"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def restore_checkpoint(run: RunDir, model, state: TrainingState, *, optimizer: bool) -> None:
    """Load ``state``'s checkpoint into ``model`` (and, with ``optimizer``, into its built optimiser)."""
    path = run.backup / state.checkpoint
    try:
        with np.load(path) as saved:
            _assign(model.variables, saved, "model", path)
            if optimizer:
                if not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                _assign(model.optimizer.variables, saved, "optimizer", path)
    except (zipfile.BadZipFile, EOFError, zlib.error, KeyError) as error:  # damaged since TrainingState.load
        raise DamagedFileError(path, f"unreadable: {error}", START_AFRESH) from None
    logger.debug("restored %s (%d epochs done)", path, state.epochs_done)


def _assign(variables, saved, group: str, path: Path) -> None:
    """Assign the saved arrays in order; their count and shapes must match (Keras's automatic layer names,
    and so variable paths, change with what the process built before, so they are kept for reading only)."""
    variables = list(variables)
    count = len(saved[f"{group}_paths"])
    shapes_match = count == len(variables) and all(
        saved[f"{group}/{index:04d}"].shape == tuple(variable.shape) for index, variable in enumerate(variables))
    if not shapes_match:
        raise CheckpointError(f"{path} was written for a different {group} ({count} variables, this one has "
                              f"{len(variables)}); run again with --overwrite to start the run afresh")
    for index, variable in enumerate(variables):
        variable.assign(saved[f"{group}/{index:04d}"])


def save_model_file(model, path: Path) -> Path:
    """``model.save`` to a temporary ``.keras`` name, renamed over ``path`` only once complete."""
    with atomic_path(path, suffix=".keras") as temporary:
        model.save(temporary)
    return path


def load_model_file(path: str | os.PathLike, *, compile: bool = False, remedy: str = MODEL_REMEDY):
    """``keras.saving.load_model`` of a ``.keras`` file, checked whole first (``check_archive``).

    Every model file is loaded here, so a truncated or overwritten one is one ``DamagedFileError``
    naming it and ``remedy``, not Keras's "File not found" for a file that exists. Checking reads
    the file once more; next to building the model that is cheap.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    check_archive(path, remedy)
    return keras.saving.load_model(path, compile=compile)


def load_model_weights(model, path: str | os.PathLike, *, remedy: str = START_AFRESH) -> None:
    """``model.load_weights`` from a ``.keras`` file (a run's ``best.keras``), checked whole first."""
    check_archive(Path(path), remedy)
    model.load_weights(path)


def best_epoch(history: list[dict[str, Any]], monitor: str, *, since: int = 0) -> int | None:
    """The first epoch >= ``since`` with the highest ``monitor`` (NaN and missing values never win)."""
    best, best_value = None, -math.inf
    for row in history:
        value = row.get(monitor)
        if row["epoch"] >= since and value is not None and not math.isnan(value) and value > best_value:
            best, best_value = row["epoch"], value
    return best


def should_stop(history: list[dict[str, Any]], monitor: str, patience: int | None, *, since: int) -> bool:
    """Early stopping: ``patience`` epochs of the stage starting at ``since`` without a new best ``monitor``."""
    if patience is None:
        return False
    epochs = [row["epoch"] for row in history if row["epoch"] >= since]
    if not epochs:
        return False
    best = best_epoch(history, monitor, since=since)
    return max(epochs) - (since - 1 if best is None else best) >= patience


def write_history(run: RunDir, history: list[dict[str, Any]]) -> None:
    """``history.csv`` from the state's rows (epoch first, then the logged quantities by name)."""
    import pandas as pd

    frame = pd.DataFrame(history)
    frame = frame[["epoch", *sorted(column for column in frame.columns if column != "epoch")]]
    with atomic_path(run.history) as temporary:
        frame.to_csv(temporary, index=False)


def epoch_checkpoint_callback(run: RunDir, state: TrainingState, *, monitor: str, patience: int | None,
                              stage_start: int, loader=None, interrupt=None):
    """A Keras callback that makes one fit call resumable (see ``EpochCheckpoint``).

    ``interrupt``: the fit's ``callbacks.StopOnInterrupt``; an epoch it cut short is not recorded.
    """
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        """At each epoch's start, point the loader at that epoch; at its end, log it, keep the best model,
        checkpoint everything and apply early stopping (on ``monitor``, higher is better)."""

        def on_epoch_begin(self, epoch, logs=None):
            # FashionSequence draws its order and augmentation from its ``epoch`` counter. Keras advances
            # that counter once before the first epoch too, so set it: fit epoch k reads loader epoch k,
            # in a resumed fit as in an uninterrupted one.
            if loader is not None and hasattr(type(loader), "epoch"):
                loader.epoch = epoch
            elif getattr(loader, "epoch_counter", None) is not None:  # make_dataset: its next iteration is this epoch
                loader.epoch_counter.assign(epoch - 1)

        def on_epoch_end(self, epoch, logs=None):
            if interrupt is not None and interrupt.requested:
                return  # cut short by Ctrl-C: the resumed run repeats this epoch from its start
            row = {"epoch": epoch, **{name: float(value) for name, value in (logs or {}).items()}}
            state.history.append(row)
            state.epochs_done = epoch + 1
            if best_epoch(state.history, monitor) == epoch:
                save_model_file(self.model, run.best)
            save_checkpoint(run, self.model, state)
            write_history(run, state.history)
            if should_stop(state.history, monitor, patience, since=stage_start):
                logger.info("early stopping after epoch %d: %s has not improved for %d epochs",
                            epoch, monitor, patience)
                self.model.stop_training = True

    return EpochCheckpoint()
