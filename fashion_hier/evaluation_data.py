"""The rows an evaluation scores: a run's saved split or a new labelled CSV, encoded with the run's label space.

Shared by ``evaluate`` (the report) and ``calibrate`` (fitting on validation), so both judge the same rows,
scored the same way (``score_rows``: a head-only run from its feature cache, else the images): labels the
model never saw are counted and left out, not fatal; unreadable images are recorded when scored.
"""
from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_hier.labels import IMAGE_PATH, LEVELS, LabelSpace
from fashion_hier.metrics.calibration import apply_temperature
from fashion_hier.rundir import SPLIT_NAMES, RunDir
from fashion_hier.task import LEVEL_ACTIVATIONS

logger = logging.getLogger(__name__)

SPLITS = SPLIT_NAMES
FEATURE_CHECKPOINTS = (RunDir.MODEL, RunDir.BEST)  # a head-only run saves its head in both (and RunDir.HEAD)


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
    if IMAGE_PATH not in frame.columns:
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


def score_rows(predictor, data: EvaluationData, batch_size: int, progress: bool,
            run_dir: Path | None = None, checkpoint: str = RunDir.MODEL
            ) -> tuple[dict[str, np.ndarray], str, EvaluationData]:
    """Scores per level of ``predictor`` (a ``Predictor``), where they came from, and the rows they belong to
    (unreadable images left out).

    A head trained on cached features (``fashion-hier features``) is scored on those features: the same
    numbers as its full model on the images, without a second backbone pass (minutes on a CPU).
    """
    paths = data.frame[IMAGE_PATH].astype(str).tolist()
    scores, source = None, "images"
    if run_dir is not None and checkpoint in FEATURE_CHECKPOINTS:
        scores, source = _cached_scores(RunDir(run_dir), paths)
        if scores is not None:  # the head's own scores: the task's temperatures apply on top, as in the model
            scores = {level: scores[level] if temperature == 1.0 else apply_temperature(
                np.asarray(scores[level], dtype=np.float32), temperature, activation=LEVEL_ACTIVATIONS[level])
                for level, temperature in predictor.model.temperatures.items()}
    if scores is None:
        scores, kept, unreadable = predictor.score_paths(paths, batch_size=batch_size, progress=progress)
        data = data.without_unreadable(kept, unreadable)
    return {level: np.asarray(scores[level], dtype=np.float32) for level in LEVELS}, source, data


def _cached_scores(run: RunDir, paths: list[str]) -> tuple[dict[str, np.ndarray] | None, str]:
    """Scores from the feature cache a head-only run was trained on, or (None, "images") when it cannot serve.

    The one place evaluate reaches into the feature cache; imported here, on use, so that evaluating
    a full-model run never imports the feature module (its lookup, not its head trainer, is what is used).
    """
    if not run.features_record.is_file():
        return None, "images"
    from fashion_hier.features.scoring import scores_from_feature_cache

    scores = scores_from_feature_cache(run.path, paths)
    if scores is None:
        return None, "images"
    return scores, "feature cache " + json.loads(run.features_record.read_text(encoding="utf-8"))["cache_dir"]
