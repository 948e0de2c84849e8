"""Exact-resume checkpoints of a training run, and the per-epoch bookkeeping that writes them.

Format, in the run's ``backup/`` directory (``RunDir.backup``):

- ``epoch-NNNN.npz`` (``RunDir.backup_checkpoint``): every variable after NNNN finished epochs —
  ``model.variables`` (weights, BatchNorm statistics and the dropout layers' seed-generator
  states, which ``model.weights`` leaves out) as ``model/0000...`` and ``optimizer.variables``
  (iteration count, moments) as ``optimizer/0000...``; ``model_paths``/``optimizer_paths`` hold
  the variable paths, checked on load.
- ``state.json`` (``RunDir.backup_state``): ``{"epochs_done", "checkpoint", "history"}``, written
  after the ``.npz`` it names. Both are atomic, so a kill at any point leaves a consistent pair:
  the new one, or the previous one.

Restoring every variable (seed states included) and setting the loader's epoch makes a resumed run
end with the same weights as an uninterrupted one (tests/test_faults.py).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from fashion_hier.atomic import atomic_open, atomic_path, atomic_write_text
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """The checkpoint in ``backup/`` does not fit the model being trained."""


@dataclasses.dataclass
class TrainingState:
    """How far a run got: epochs finished, their history rows, and the checkpoint file of that point."""

    epochs_done: int = 0
    checkpoint: str | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, run: RunDir) -> TrainingState:
        """The saved state, or a fresh one when the run has none."""
        if not run.backup_state.is_file():
            return cls()
        data = json.loads(run.backup_state.read_text(encoding="utf-8"))
        return cls(int(data["epochs_done"]), data.get("checkpoint"), list(data.get("history", [])))

    def save(self, run: RunDir) -> None:
        atomic_write_text(run.backup_state, json.dumps(dataclasses.asdict(self), indent=1, allow_nan=True) + "\n")


def _values(variables) -> dict[str, np.ndarray]:
    return {f"{index:04d}": np.asarray(variable.numpy()) for index, variable in enumerate(variables)}


def save_checkpoint(run: RunDir, model, state: TrainingState) -> None:
    """Write every model and optimiser variable, then ``state`` naming that file; drop older checkpoints."""
    path = run.backup_checkpoint(state.epochs_done)
    optimizer_variables = list(model.optimizer.variables) if model.optimizer is not None else []
    arrays = {f"model/{key}": value for key, value in _values(model.variables).items()}
    arrays.update({f"optimizer/{key}": value for key, value in _values(optimizer_variables).items()})
    arrays["model_paths"] = np.array([variable.path for variable in model.variables])
    arrays["optimizer_paths"] = np.array([variable.path for variable in optimizer_variables])
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    state.checkpoint = path.name
    state.save(run)
    for stale in run.backup.glob("*.npz"):
        if stale.name != path.name:
            stale.unlink(missing_ok=True)


def restore_checkpoint(run: RunDir, model, state: TrainingState, *, optimizer: bool) -> None:
    """Load ``state``'s checkpoint into ``model`` (and, with ``optimizer``, into its built optimiser)."""
    path = run.backup / state.checkpoint
    with np.load(path) as saved:
        _assign(model.variables, saved, "model", path)
        if optimizer:
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            _assign(model.optimizer.variables, saved, "optimizer", path)
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
