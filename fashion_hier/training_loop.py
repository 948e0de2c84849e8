"""The one training loop: every trainer's epochs are checkpointed, resumed exactly, stopped early and ended the same way.

The full image model (``fashion_hier.train``), the head on cached features (``fashion_hier.features``)
and the partial fine-tune from cached activations (``fashion_hier.finetune``) all fit through
``fit_resumable``. Each keeps its own backup folder (``checkpoints.Backup``), so each resumes after a
kill from its last finished epoch and ends with the weights of an uninterrupted run:

- after every epoch, every model and optimiser variable and the history so far are checkpointed;
- early stopping follows one quantity, ``MONITOR`` (the validation subcategory accuracy when there is a
  validation split): unweighted, so class weights never pick the epoch (issue 11);
- the fit ends on the weights of its best epoch on that quantity;
- the loader's epoch is set at each epoch's start, so a resumed fit draws the batches an uninterrupted one did.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import keras

from fashion_hier.callbacks import StopOnInterrupt
from fashion_hier.checkpoints import (
    Backup,
    TrainingState,
    best_epoch,
    restore_best,
    restore_checkpoint,
    save_checkpoint,
    should_stop,
    write_history,
)
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

MONITOR = "subcategory_accuracy"  # higher is better; "val_" prefixed when there is a validation split
SECONDS = "seconds"  # each history row's wall time of its epoch


def monitor_name(has_validation: bool) -> str:
    """The quantity early stopping and the best epoch follow: ``val_subcategory_accuracy`` with validation data."""
    return f"val_{MONITOR}" if has_validation else MONITOR


@dataclass(frozen=True)
class Stage:
    """Epochs ``first_epoch`` to ``end_epoch - 1`` of a fit; ``prepare`` compiles the model for them (and freezes or
    unfreezes layers). Stages of one fit share its backup; the optimiser's state is restored only within a stage."""

    first_epoch: int
    end_epoch: int
    prepare: Callable[[Any], None]


@dataclass
class FitOutcome:
    """How a fit went: its state (epochs done, history rows) and the quantity that picked its best epoch."""

    state: TrainingState
    monitor: str

    @property
    def epochs(self) -> int:
        return self.state.epochs_done

    @property
    def best_epoch(self) -> int | None:
        return best_epoch(self.state.history, self.monitor)

    @property
    def best_score(self) -> float | None:
        best = self.best_epoch
        return None if best is None else float(self.state.history[best][self.monitor])

    @property
    def epoch_seconds(self) -> list[float]:
        return [float(row.get(SECONDS, float("nan"))) for row in self.state.history]

    @property
    def history(self) -> dict[str, list[float]]:
        """Keras's ``History.history`` shape: one list per logged quantity, epochs in order."""
        names = [name for name in self.state.history[0] if name not in ("epoch", SECONDS)] if self.state.history else []
        return {name: [row.get(name) for row in self.state.history] for name in names}


def fit_resumable(model, stages: Sequence[Stage], train_data, validation_data=None, *, backup: Backup | None,
                  history_path: Path | None, patience: int | None, callbacks: Sequence = (),
                  verbose: int | str = 0) -> FitOutcome:
    """Fit ``model`` through ``stages``, resuming from ``backup``; end on the best epoch's weights.

    Args:
        model: a built Keras model; its weights are its initial ones (the caller seeds them).
        stages: consecutive ``Stage``s; a stage already finished (or stopped early) in ``backup`` is skipped.
        train_data: a loader with an ``epoch`` (``FashionSequence``, ``ArrayBatches``, ``CachedViews``) or a
            ``make_dataset`` pipeline; it must not be shuffled by Keras (it shuffles itself from its seed).
        validation_data: the validation loader; without it the monitor is the training accuracy.
        backup: where this fit's checkpoints live (``Backup.of(run, trainer)``); None: a temporary folder, removed
            after (a fit outside a run: the same loop, nothing to resume).
        history_path: the CSV written from the history after every epoch (None: none kept).
        patience: epochs of a stage without a new best monitor before the stage stops; None: every epoch runs.
        callbacks: the caller's Keras callbacks, after the loop's own.
    Returns:
        ``FitOutcome``; the model holds the best epoch's weights (the last epoch's if none has a monitor value).
    """
    if backup is None or history_path is None:
        with tempfile.TemporaryDirectory(prefix="fashion_hier_fit_") as scratch:
            return fit_resumable(model, stages, train_data, validation_data,
                                 backup=backup or Backup(Path(scratch) / "backup"),
                                 history_path=history_path or Path(scratch) / RunDir.HISTORY, patience=patience,
                                 callbacks=callbacks, verbose=verbose)
    monitor = monitor_name(validation_data is not None)
    state = TrainingState.load(backup)
    trained = False
    with StopOnInterrupt() as interrupt:  # Ctrl-C: stop at a batch's end, then KeyboardInterrupt
        for stage in stages:
            interrupt.raise_if_requested()
            if state.epochs_done >= stage.end_epoch or should_stop(state.history, monitor, patience,
                                                                   since=stage.first_epoch):
                continue  # finished (or stopped early) before an interruption: not repeated
            stage.prepare(model)
            if state.checkpoint is not None:  # the optimiser state only within the stage that wrote it
                restore_checkpoint(backup, model, state, optimizer=state.epochs_done > stage.first_epoch)
            checkpoint = EpochCheckpoint(backup, history_path, state, monitor=monitor, patience=patience,
                                         stage_start=stage.first_epoch, loader=train_data, interrupt=interrupt)
            model.fit(train_data, validation_data=validation_data, epochs=stage.end_epoch,
                      initial_epoch=max(stage.first_epoch, state.epochs_done),
                      callbacks=[interrupt, checkpoint, *callbacks], verbose=verbose, shuffle=False)
            trained = True
    if not trained and state.checkpoint is not None:  # every stage was done before: the last checkpoint's weights
        restore_checkpoint(backup, model, state, optimizer=False)
    restore_best(backup, model)
    return FitOutcome(state, monitor)


class EpochCheckpoint(keras.callbacks.Callback):
    """At each epoch's start, point the loader at that epoch; at its end, log it, checkpoint everything (marking
    the best epoch) and apply early stopping (on ``monitor``, higher is better)."""

    def __init__(self, backup: Backup, history_path: Path, state: TrainingState, *, monitor: str,
                 patience: int | None, stage_start: int, loader=None, interrupt: StopOnInterrupt | None = None):
        super().__init__()
        self.backup, self.history_path, self.state = backup, history_path, state
        self.monitor, self.patience, self.stage_start = monitor, patience, stage_start
        self.loader, self.interrupt = loader, interrupt
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        # The loaders draw their order and augmentation from their ``epoch`` counter. Keras advances that
        # counter once before the first epoch too, so set it: fit epoch k reads loader epoch k, in a resumed
        # fit as in an uninterrupted one.
        if self.loader is not None and hasattr(type(self.loader), "epoch"):
            self.loader.epoch = epoch
        elif getattr(self.loader, "epoch_counter", None) is not None:  # make_dataset: its next iteration is this epoch
            self.loader.epoch_counter.assign(epoch - 1)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.interrupt is not None and self.interrupt.requested:
            return  # cut short by Ctrl-C: the resumed run repeats this epoch from its start
        row = {"epoch": epoch, **{name: float(value) for name, value in (logs or {}).items()},
               SECONDS: time.perf_counter() - self._started}
        self.state.history.append(row)
        self.state.epochs_done = epoch + 1
        save_checkpoint(self.backup, self.model, self.state,
                        best=best_epoch(self.state.history, self.monitor) == epoch)
        write_history(self.history_path, self.state.history)
        if should_stop(self.state.history, self.monitor, self.patience, since=self.stage_start):
            logger.info("early stopping after epoch %d: %s has not improved for %d epochs",
                        epoch, self.monitor, self.patience)
            self.model.stop_training = True
