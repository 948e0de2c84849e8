"""Exact-resume checkpoints of one fit, kept in a backup folder, and the one reader of model files.

Every trainer (``fashion_hier.training_loop``) keeps its checkpoints in a backup folder of the run:
``backup/`` for the image trainer, ``backup/head`` and ``backup/finetune`` for the cached-feature
trainer's two fits (``RunDir.trainer_backup``). A folder holds:

- ``epoch-NNNN.npz`` (``RunDir.checkpoint_name``): every variable after NNNN finished epochs —
  ``model.variables`` (weights, BatchNorm statistics and the dropout layers' seed-generator
  states, which ``model.weights`` leaves out) as ``model/0000...`` and ``optimizer.variables``
  (iteration count, moments) as ``optimizer/0000...``; ``model_paths``/``optimizer_paths`` hold
  the variable paths, checked on load; ``state`` holds that point's ``TrainingState`` as JSON, so
  each checkpoint can be resumed from on its own.
- ``best.npz`` (``RunDir.BACKUP_BEST``): the checkpoint of the best epoch so far on the monitor, a
  hard link to that epoch's file (no second write), which the fit ends on.
- ``state.json`` (``RunDir.BACKUP_STATE``): ``{"epochs_done", "checkpoint", "history"}``, written
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
import shutil
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


@dataclasses.dataclass(frozen=True)
class Backup:
    """One fit's backup folder (``RunDir.trainer_backup``): its state file, epoch checkpoints and best checkpoint."""

    path: Path

    @classmethod
    def of(cls, run: RunDir, trainer: str | None = None) -> Backup:
        """The backup of ``run``'s image trainer (``trainer=None``) or of its ``"head"``/``"finetune"`` fit."""
        return cls(run.trainer_backup(trainer))

    @property
    def state(self) -> Path:
        return self.path / RunDir.BACKUP_STATE

    @property
    def best(self) -> Path:
        return self.path / RunDir.BACKUP_BEST

    def checkpoint(self, epochs_done: int) -> Path:
        return self.path / RunDir.checkpoint_name(epochs_done)

    def checkpoints(self) -> list[Path]:
        """The epoch checkpoints, newest first (their epoch counts are zero-padded). The best checkpoint and a
        temporary file a kill left behind (``.epoch-0003.npz.*.npz``) are not among them."""
        return sorted((path for path in self.path.glob("epoch-*.npz")), reverse=True)

    def relative(self, path: Path) -> str:
        """``path`` as named within the run: ``backup/epoch-0003.npz``, ``backup/head/state.json``."""
        top = self.path if self.path.name == RunDir.BACKUP else self.path.parent
        return os.path.relpath(path, top.parent)


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
    def load(cls, backup: Backup) -> TrainingState:
        """The state to resume from, or a fresh one when the run has none.

        That is ``state.json``'s; when it or the checkpoint it names is damaged, the state of the newest
        checkpoint that reads back whole, with a warning naming the damaged files. Raises
        ``DamagedFileError`` when the run has a backup but no checkpoint in it can be read.
        """
        if not backup.state.is_file():
            return cls()
        damaged: list[DamagedFileError] = []
        candidates = backup.checkpoints()
        try:
            recorded = cls.from_dict(read_json(backup.state, remedy=START_AFRESH, keys=_STATE_KEYS))
        except DamagedFileError as error:
            damaged.append(error)
        else:
            named = backup.path / str(recorded.checkpoint)
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
            logger.warning("%s; resuming from epoch %d (%s)", "; ".join(_damage(backup, error) for error in damaged),
                           state.epochs_done, backup.relative(path))
            return state
        first = damaged[0]
        others = f"; no other checkpoint in {backup.path} reads back whole" if len(damaged) > 1 else ""
        raise DamagedFileError(first.path, first.problem + others, START_AFRESH)

    def save(self, backup: Backup) -> None:
        atomic_write_text(backup.state, json.dumps(dataclasses.asdict(self), indent=1, allow_nan=True) + "\n")


def _damage(backup: Backup, error: DamagedFileError) -> str:
    """``backup/epoch-0003.npz is damaged (...)``: a damaged backup file, named within the run."""
    return f"{backup.relative(Path(error.path))} is damaged ({error.problem})"


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


def save_checkpoint(backup: Backup, model, state: TrainingState, *, best: bool = False) -> None:
    """Write every model and optimiser variable with ``state``, then ``state.json`` naming that file.

    ``best``: this epoch is the best so far, so ``best.npz`` becomes a link to its checkpoint. Older
    checkpoints are dropped only now, and the one before this is kept: the point to resume from should
    this one be found damaged.
    """
    path = backup.checkpoint(state.epochs_done)
    optimizer_variables = list(model.optimizer.variables) if model.optimizer is not None else []
    arrays = {f"model/{key}": value for key, value in _values(model.variables).items()}
    arrays.update({f"optimizer/{key}": value for key, value in _values(optimizer_variables).items()})
    arrays["model_paths"] = np.array([variable.path for variable in model.variables])
    arrays["optimizer_paths"] = np.array([variable.path for variable in optimizer_variables])
    arrays["state"] = np.array(json.dumps(dataclasses.asdict(dataclasses.replace(state, checkpoint=path.name))))
    backup.path.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    if best:
        link_file(path, backup.best)
    state.checkpoint = path.name
    state.save(backup)
    keep = [path.name, *(stale.name for stale in backup.checkpoints() if stale.name < path.name)][:2]
    for stale in backup.checkpoints():
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def link_file(source: Path, target: Path) -> None:
    """``target`` becomes the same file as ``source``: a hard link where the file system has them, else a copy;
    atomic either way."""
    with atomic_path(target, suffix=target.suffix) as temporary:
        Path(temporary).unlink(missing_ok=True)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)


def restore_checkpoint(backup: Backup, model, state: TrainingState, *, optimizer: bool) -> None:
    """Load ``state``'s checkpoint into ``model`` (and, with ``optimizer``, into its built optimiser)."""
    _restore(backup.path / state.checkpoint, model, optimizer=optimizer)
    logger.debug("restored %s (%d epochs done)", backup.relative(backup.path / state.checkpoint), state.epochs_done)


def restore_best(backup: Backup, model) -> bool:
    """Load the best epoch's model variables (``best.npz``) into ``model``; False when there is none."""
    if not backup.best.is_file():
        return False
    check_archive(backup.best, START_AFRESH)
    _restore(backup.best, model, optimizer=False)
    return True


def _restore(path: Path, model, *, optimizer: bool) -> None:
    try:
        with np.load(path) as saved:
            _assign(model.variables, saved, "model", path)
            if optimizer:
                if not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                _assign(model.optimizer.variables, saved, "optimizer", path)
    except (zipfile.BadZipFile, EOFError, zlib.error, KeyError) as error:  # damaged since TrainingState.load
        raise DamagedFileError(path, f"unreadable: {error}", START_AFRESH) from None


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


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """A history CSV (``history.csv``) from the state's rows (epoch first, then the logged quantities by name)."""
    import pandas as pd

    frame = pd.DataFrame(history)
    frame = frame[["epoch", *sorted(column for column in frame.columns if column != "epoch")]]
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
