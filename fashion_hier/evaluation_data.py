"""The rows an evaluation scores: a run's saved split or a new labelled CSV, encoded with the run's label space.

Shared by ``evaluate`` (the report) and ``calibrate`` (fitting on validation), so both judge the same rows:
labels the model never saw are counted and left out, not fatal; unreadable images are recorded when scored.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.labels import LabelSpace
from fashion_hier.rundir import SPLIT_NAMES, RunDir

logger = logging.getLogger(__name__)

SPLITS = SPLIT_NAMES


@dataclass
class EvaluationData:
    """The rows that can be scored, their targets, and what was left out because the model never saw it."""

    frame: pd.DataFrame                     # rows whose category and subcategory the model knows
    targets: dict[str, np.ndarray]          # label_space.encode of ``frame``
    unseen_labels: dict[str, dict[str, int]]  # level -> {label never seen in training: rows}
    rows_read: int
    source: str
    unreadable: list = field(default_factory=list)  # UnreadableImage(path, reason): skipped when scoring

    @property
    def rows_dropped(self) -> int:
        """Rows left out because of labels the model never saw (unreadable images are counted apart)."""
        return self.rows_read - len(self.frame) - len(self.unreadable)

    def without_unreadable(self, kept: np.ndarray, unreadable: list) -> "EvaluationData":
        """The rows whose images could be read (``kept``), with the skipped ones recorded."""
        if kept.all():
            return self
        return replace(self, frame=self.frame.loc[kept].reset_index(drop=True),
                       targets={level: values[kept] for level, values in self.targets.items()},
                       unreadable=[*self.unreadable, *unreadable])


def read_split(run_dir: Path, split: str) -> pd.DataFrame:
    """The frame a run saved for ``split`` (``RUN/splits/<split>.csv``, with ``image_path``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = RunDir(run_dir).split(split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: the run has no saved {split} split. Train with fashion-hier train "
            "(it writes RUN/splits/), or evaluate a labelled CSV with --labels CSV --images DIR"
        )
    frame = pd.read_csv(path, dtype=str)  # as read_catalog does: labels are text, "NA"/empty are missing
    if "image_path" not in frame.columns:
        raise ValueError(f"{path}: no 'image_path' column (columns: {list(frame.columns)}); it was not written by train")
    return frame


def read_labelled_csv(run_dir: Path, labels_csv: str | Path, image_dir: str | Path, label_space: LabelSpace) -> pd.DataFrame:
    """A new labelled catalogue, read with the run's label columns and id column; its report is logged."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import read_catalog

    config_path = RunDir(run_dir).config
    id_column = TrainConfig.from_yaml(config_path).data.id_column if config_path.is_file() else "id"
    catalog = read_catalog(labels_csv, image_dir, columns=label_space.columns, id_column=id_column)
    logger.info("%s", catalog.report)
    return catalog.frame


def prepare(frame: pd.DataFrame, label_space: LabelSpace, source: str) -> EvaluationData:
    """Targets for the rows the model can be judged on; unseen labels counted instead of raising."""
    unseen = label_space.unknown_labels(frame)
    known = frame.loc[label_space.known_rows(frame)].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unseen labels are reported by us, with the counts
        targets = label_space.encode(known, unknown="drop")
    return EvaluationData(known, targets, unseen, rows_read=len(frame), source=source)


def check_not_empty(data: EvaluationData) -> None:
    """One line when nothing is left to score: every image unreadable, or every label unseen."""
    if len(data.frame) == 0 and data.unreadable:
        raise ValueError(f"{data.source}: none of its images could be read ({len(data.unreadable)} unreadable, "
                         f"e.g. {data.unreadable[0].path}: {data.unreadable[0].reason}); nothing to evaluate")
    if len(data.frame) == 0:
        raise ValueError(
            f"{data.source}: none of its {data.rows_read} rows has a category and subcategory the model "
            f"was trained on (unseen: {data.unseen_labels}); nothing to evaluate"
        )
