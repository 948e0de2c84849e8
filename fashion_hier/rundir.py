"""The run directory: every file a run holds is named here, and nowhere else.

``train`` writes a run, ``Predictor``/``evaluate``/``demo``/``experiments`` and the feature-cache
trainer read it, all through ``RunDir``. A run is finished only when ``finished.json`` exists: it
is written last, after the model file was renamed into place, so a run killed or out of disk
mid-save is never taken for a finished one. Runs of version 0.1.0 (no marker) are recognised by
``is_legacy`` and still load.

A run directory is a thing the library made, and only that is ever removed or cleared: ``create`` writes
``MARKER`` first, ``clear`` removes only the entries this class names (a folder holding anything else is
refused, never emptied), and ``training_lock`` lets one process at a time write a run (``filelock``: the
operating system drops the lock of a killed process, so a crash never blocks the resume). Every file a
run holds must be named here, or ``clear`` refuses the run.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import filelock

from fashion_hier.atomic import atomic_write_text
from fashion_hier.errors import RunDirectoryError, RunLockedError

SPLIT_NAMES = ("train", "validation", "test")
PROBE_SECONDS = 0.5  # how long a reader tries the run's lock before saying that a training holds it


class RunDir:
    """The paths of one run directory (the directory need not exist yet)."""

    CONFIG = "config.yaml"
    LABELS = "labels.json"
    MODEL = "model.keras"
    BEST = "best.keras"
    HISTORY = "history.csv"
    FINETUNE_HISTORY = "finetune_history.csv"  # model.trainable_from: the partial fine-tune's epochs
    SPLITS = "splits"
    THRESHOLDS = "thresholds.json"
    BACKUP = "backup"
    BACKUP_STATE = "state.json"  # in a backup folder: epochs done, history rows, the checkpoint file it goes with
    BACKUP_BEST = "best.npz"  # in a backup folder: the checkpoint of the best epoch so far (a hard link)
    HEAD_BACKUP, FINETUNE_BACKUP = "head", "finetune"  # backup/ subfolders: the cached-feature trainer's two fits
    TENSORBOARD = "tensorboard"
    HEAD = "head.keras"
    FEATURES_RECORD = "features.json"
    FINISHED = "finished.json"
    UNREADABLE_IMAGES = "unreadable_images.csv"
    RECORD = "run.json"
    MARKER = ".fashion_hier_run"  # written first by ``create``: this directory is a run the library made
    LOCK = ".lock"  # filelock's lock file: one process writes the run at a time
    LOCK_HOLDER = ".lock.json"  # who holds the lock (pid, host, since), for the message to a second process
    GITIGNORE = ".gitignore"  # fashion_hier.experiments: git sees only the small results
    CALIBRATION = "calibration.json"  # fashion_hier.calibrate: temperatures and chosen confidences, with figures
    TIMINGS = "timings.json"  # fashion_hier.timings: seconds per stage of the training command
    OPENVINO = "openvino"  # fashion_hier.engine: converted models, one folder per model digest and precision
    # evaluation outputs (in the run directory or in evaluate's --out directory)
    METRICS_JSON = "metrics.json"
    METRICS_MD = "metrics.md"
    PREDICTIONS = "predictions.npz"
    PLOTS = "plots"
    REPORT_HTML = "report.html"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ---- files of a run ----------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def labels(self) -> Path:
        return self.path / self.LABELS

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def history(self) -> Path:
        return self.path / self.HISTORY

    @property
    def splits_dir(self) -> Path:
        return self.path / self.SPLITS

    def split(self, name: str) -> Path:
        """``splits/<name>.csv`` for ``name`` in train, validation, test."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; known splits: {', '.join(SPLIT_NAMES)}")
        return self.splits_dir / f"{name}.csv"

    @property
    def timings(self) -> Path:
        return self.path / self.TIMINGS

    @property
    def thresholds(self) -> Path:
        return self.path / self.THRESHOLDS

    @property
    def backup(self) -> Path:
        return self.path / self.BACKUP

    @property
    def backup_state(self) -> Path:
        return self.backup / self.BACKUP_STATE

    def backup_checkpoint(self, epochs_done: int) -> Path:
        """``backup/epoch-NNNN.npz``: every model and optimiser variable after ``epochs_done`` epochs."""
        return self.backup / self.checkpoint_name(epochs_done)

    @staticmethod
    def checkpoint_name(epochs_done: int) -> str:
        """``epoch-NNNN.npz``, zero-padded so that names sort as epochs do."""
        return f"epoch-{epochs_done:04d}.npz"

    def trainer_backup(self, trainer: str | None = None) -> Path:
        """The backup folder of one fit: ``backup/`` (the image trainer), ``backup/head`` or ``backup/finetune``."""
        if trainer is None:
            return self.backup
        if trainer not in (self.HEAD_BACKUP, self.FINETUNE_BACKUP):
            raise ValueError(f"trainer={trainer!r}: expected None, {self.HEAD_BACKUP!r} or {self.FINETUNE_BACKUP!r}")
        return self.backup / trainer

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def finetune_history(self) -> Path:
        return self.path / self.FINETUNE_HISTORY

    @property
    def head(self) -> Path:
        return self.path / self.HEAD

    @property
    def features_record(self) -> Path:
        return self.path / self.FEATURES_RECORD

    @property
    def finished_marker(self) -> Path:
        return self.path / self.FINISHED

    @property
    def unreadable_images(self) -> Path:
        return self.path / self.UNREADABLE_IMAGES

    @property
    def calibration(self) -> Path:
        return self.path / self.CALIBRATION

    @property
    def record(self) -> Path:
        return self.path / self.RECORD

    # ---- evaluation outputs ------------------------------------------------------------------
    @property
    def metrics_json(self) -> Path:
        return self.path / self.METRICS_JSON

    @property
    def metrics_md(self) -> Path:
        return self.path / self.METRICS_MD

    @property
    def predictions(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def plots(self) -> Path:
        return self.path / self.PLOTS

    @property
    def report_html(self) -> Path:
        return self.path / self.REPORT_HTML

    PER_CLASS_PATTERN = "per_class_*.csv"
    TEMPORARY_PATTERN = ".*.partial*"  # fashion_hier.atomic's temporary files, left by a killed write

    def per_class(self, level: str) -> Path:
        return self.path / f"per_class_{level}.csv"

    # ---- ownership: what the library made, and only that, is removed ---------------------------
    @classmethod
    def known_names(cls) -> frozenset[str]:
        """Every file or folder name a run directory can hold (the class's upper-case string constants)."""
        return frozenset(value for key, value in vars(cls).items()
                         if key.isupper() and isinstance(value, str) and not key.endswith("_PATTERN"))

    def foreign_entries(self) -> list[str]:
        """Names in the directory that no run writes: a user's own files, never to be removed."""
        if not self.path.is_dir():
            return []
        known = self.known_names()
        return sorted(entry.name for entry in self.path.iterdir()
                      if entry.name not in known and not fnmatch.fnmatch(entry.name, self.PER_CLASS_PATTERN)
                      and not fnmatch.fnmatch(entry.name, self.TEMPORARY_PATTERN))

    @property
    def is_run(self) -> bool:
        """The library made this directory: it holds the marker, or it is shaped like a run of version 0.1/0.2
        (a config and a label space or model or backup, and nothing a run does not write)."""
        if (self.path / self.MARKER).is_file():
            return True
        earlier_run = self.config.is_file() and any(
            path.exists() for path in (self.labels, self.model, self.backup, self.finished_marker))
        return earlier_run and not self.foreign_entries()

    def create(self) -> None:
        """Make the directory (or adopt an earlier version's run) and write the marker that says the library owns it."""
        self._refuse_if_not_a_run()
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / self.MARKER).is_file():
            atomic_write_text(self.path / self.MARKER, json.dumps({"created": time.time()}) + "\n")

    def clear(self) -> None:
        """Remove everything a run wrote (not the lock, which its holder keeps); refuse a folder that is not a run
        or that holds anything else, naming those files."""
        self._refuse_if_not_a_run()
        foreign = self.foreign_entries()
        if foreign:
            raise RunDirectoryError(
                f"{self.path} holds files a run does not write ({_some(foreign)}); move them out of it, or choose "
                f"another name (--set name=NEW) — nothing was removed")
        for entry in self.path.iterdir() if self.path.is_dir() else ():
            if entry.name in (self.LOCK, self.LOCK_HOLDER):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)

    def _refuse_if_not_a_run(self) -> None:
        """A non-empty folder the library did not make is never written into, cleared or removed."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{self.path} is a file, not a run directory; choose another name (--set name=NEW)")
        if self.path.is_dir() and not self.is_run:
            entries = sorted(entry.name for entry in self.path.iterdir() if entry.name not in (self.LOCK, self.LOCK_HOLDER))
            if entries:
                raise RunDirectoryError(
                    f"{self.path} is not empty and is not a run directory made by fashion_hier (it holds "
                    f"{_some(entries)}); choose another output_dir or name (--set name=NEW) — nothing was removed")

    # ---- one writer at a time ------------------------------------------------------------------
    @contextlib.contextmanager
    def training_lock(self) -> Iterator[None]:
        """Hold the run's exclusive lock while writing it; a second process is refused at once, naming the holder.

        Re-entrant within a process (``train`` holds it around the head trainer, which takes it too).
        """
        self._refuse_if_not_a_run()
        self.path.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.path / self.LOCK, is_singleton=True)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunLockedError(f"{self.path} is being trained by another process ({self._holder_text()}); wait "
                                 f"for it to finish, or stop it first — two trainings of one run would mix "
                                 f"their epochs") from None
        try:
            if lock.lock_counter == 1:
                atomic_write_text(self.path / self.LOCK_HOLDER, json.dumps(
                    {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}) + "\n")
            yield
        finally:
            if lock.lock_counter == 1:
                (self.path / self.LOCK_HOLDER).unlink(missing_ok=True)
            lock.release()

    def training_holder(self) -> str | None:
        """"pid N on HOST" while another process trains this run (holds its lock), else None."""
        lock_file = self.path / self.LOCK
        if not lock_file.is_file():
            return None
        lock = filelock.FileLock(lock_file, is_singleton=True)
        try:  # other readers probe the same lock for an instant (Spark's workers all at once): a trainer holds it
            lock.acquire(timeout=PROBE_SECONDS)  # for minutes, so only a lock held that long is a training
        except filelock.Timeout:
            return self._holder_text()
        except OSError:  # a read-only copy of a run: nobody trains it here
            return None
        lock.release()
        return None

    def _holder_text(self) -> str:
        try:
            holder = json.loads((self.path / self.LOCK_HOLDER).read_text(encoding="utf-8"))
            return f"pid {holder['pid']} on {holder['host']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its pid is not recorded yet"

    # ---- state -------------------------------------------------------------------------------
    @property
    def is_finished(self) -> bool:
        """The run said it finished (its marker exists), or it is a finished run of version 0.1.0."""
        return self.finished_marker.is_file() or self.is_legacy

    @property
    def is_legacy(self) -> bool:
        """A finished run written by version 0.1.0: a model file, no marker, no backup in progress."""
        return (not self.finished_marker.is_file() and self.model.is_file() and self.labels.is_file()
                and not self.backup.exists())

    @property
    def is_interrupted(self) -> bool:
        """A run that started (config written) and did not say it finished."""
        return self.config.is_file() and not self.is_finished

    def mark_finished(self, info: dict[str, Any] | None = None) -> Path:
        """Write the marker that makes this a finished run; call it after everything else is in place."""
        return atomic_write_text(self.finished_marker, json.dumps(info or {}, indent=2, sort_keys=True) + "\n")

    def finished_info(self) -> dict[str, Any]:
        """What ``mark_finished`` recorded ({} for a 0.1.0 run)."""
        if not self.finished_marker.is_file():
            return {}
        return json.loads(self.finished_marker.read_text(encoding="utf-8"))


def _some(names: list[str], shown: int = 5) -> str:
    """The first few names, and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
