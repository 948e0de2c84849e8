"""The run directory: every file a run holds is named here, and nowhere else.

``train`` writes a run, ``Predictor``/``evaluate``/``demo``/``experiments`` and the feature-cache
trainer read it, all through ``RunDir``. A run is finished only when ``finished.json`` exists: it
is written last, after the model file was renamed into place, so a run killed or out of disk
mid-save is never taken for a finished one. Runs of version 0.1.0 (no marker) are recognised by
``is_legacy`` and still load.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fashion_hier.atomic import atomic_write_text

SPLIT_NAMES = ("train", "validation", "test")


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
    BACKUP_STATE = "state.json"  # in backup/: epochs done, history rows, the checkpoint file it goes with
    TENSORBOARD = "tensorboard"
    HEAD = "head.keras"
    FEATURES_RECORD = "features.json"
    FINISHED = "finished.json"
    UNREADABLE_IMAGES = "unreadable_images.csv"
    RECORD = "run.json"
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
        return self.backup / f"epoch-{epochs_done:04d}.npz"

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

    def per_class(self, level: str) -> Path:
        return self.path / f"per_class_{level}.csv"

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
