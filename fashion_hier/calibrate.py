"""Calibrate a run on its validation split, and choose the confidence that reaches a target accuracy.

Both are fitted on validation rows (never test ones, which then measure them honestly) and stored in the run's
model file: temperatures as ``TemperatureScaling`` layers of ``HierarchicalClassifier``, so that ``predict``,
Spark and the exports answer calibrated scores with no code of their own; the chosen confidences as the task's
``min_confidence``, which ``Predictor.decode`` applies ("stop at the category", rows marked for a person).
A summary of what was fitted, with the calibration figures before and after, is ``RUN/calibration.json``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashion_hier import metrics
from fashion_hier.evaluation_data import prepare, read_split, score_rows
from fashion_hier.jsonio import read_json, write_json
from fashion_hier.labels import LEVELS
from fashion_hier.rundir import RunDir

logger = logging.getLogger(__name__)

SINGLE_LABEL_LEVELS = ("category", "subcategory")
UNCALIBRATED = {level: 1.0 for level in LEVELS}
NO_MIN_CONFIDENCE = {level: None for level in SINGLE_LABEL_LEVELS}


@dataclass
class Calibration:
    """What ``calibrate_run`` fitted on ``split`` and how calibrated the scores were before and after."""

    split: str
    rows: int
    temperatures: dict[str, float]
    before: dict[str, dict[str, float]]
    after: dict[str, dict[str, float]]
    selective: dict[str, Any] = field(default_factory=dict)


def calibrated_levels(label_space) -> tuple[str, ...]:
    """The levels temperature scaling covers: all three, or category and subcategory with attribute columns
    (one temperature cannot serve softmax groups, sigmoid groups and unknown entries at once)."""
    return SINGLE_LABEL_LEVELS if label_space.grouped else LEVELS


def calibration_figures(targets: dict[str, np.ndarray], scores: dict[str, np.ndarray],
                        levels: Sequence[str] = LEVELS) -> dict[str, dict[str, float]]:
    """Per level: top-label ECE (15 equal-width bins, and adaptive), Brier score and log loss.

    The attributes are read as one binary prediction per (row, attribute) pair: their ECE is that of
    those yes/no answers.
    """
    figures = {}
    for level in levels:
        truth, score = targets[level], np.asarray(scores[level], dtype=np.float64)
        if level == "attributes":
            truth = np.asarray(truth).ravel().astype(int)
            score = np.stack([1 - score.ravel(), score.ravel()], axis=1)
        figures[level] = {
            "ece": metrics.expected_calibration_error(truth, score),
            "adaptive_ece": metrics.expected_calibration_error(truth, score, strategy="quantile"),
            "brier": metrics.brier_score(truth, score),
            "log_loss": metrics.log_loss(truth, score),
        }
    return figures


def fit_temperatures(targets: dict[str, np.ndarray], scores: dict[str, np.ndarray],
                     levels: Sequence[str] = LEVELS) -> dict[str, float]:
    """One temperature per level by maximum likelihood (softmax levels; one T shared by the attribute sigmoids)."""
    return {level: metrics.fit_temperature(scores[level], targets[level],
                                           activation="sigmoid" if level == "attributes" else "softmax")
            for level in levels}


def calibrate_run(run_dir: str | os.PathLike, *, split: str = "validation", checkpoint: str = RunDir.MODEL,
                  batch_size: int = 32, progress: bool = False) -> Calibration:
    """Fit the run's temperatures on ``split``, store them in its model file, and return what changed."""
    run = RunDir(run_dir)
    task = _load_task(run, checkpoint)
    uncalibrated = task.with_temperatures(UNCALIBRATED)
    targets, scores = _split_scores(uncalibrated, run, split, batch_size, progress, checkpoint)
    levels = calibrated_levels(task.label_space)
    temperatures = fit_temperatures(targets, scores, levels)
    calibrated = {level: metrics.apply_temperature(scores[level], temperatures[level],
                                                   activation="sigmoid" if level == "attributes" else "softmax")
                  for level in levels}
    result = Calibration(split, len(targets["category"]), temperatures, calibration_figures(targets, scores, levels),
                         calibration_figures(targets, calibrated, levels))
    # new temperatures move every score: a confidence chosen on the old ones no longer holds
    _save_task(task.with_temperatures(temperatures).with_min_confidence(NO_MIN_CONFIDENCE), run, checkpoint)
    _write_record(run, result)
    for level in levels:
        logger.info("calibrated %s on %d %s rows: temperature %.3f, ECE %.4f -> %.4f", level, result.rows, split,
                    temperatures[level], result.before[level]["ece"], result.after[level]["ece"])
    return result


def choose_min_confidence(run_dir: str | os.PathLike, target_accuracy: float, *, split: str = "validation",
                          checkpoint: str = RunDir.MODEL, batch_size: int = 32, progress: bool = False
                          ) -> dict[str, Any]:
    """The confidence per level whose accepted ``split`` rows reach ``target_accuracy``; stored in the model.

    The promise that goes with it is measured on ``split`` with ``Predictor.decode``'s rule (a subcategory
    is answered only where its category is too): the share of rows answered in full and their accuracy.
    """
    run = RunDir(run_dir)
    task = _load_task(run, checkpoint)
    targets, scores = _split_scores(task, run, split, batch_size, progress, checkpoint)
    chosen = {level: metrics.confidence_for_accuracy(targets[level], scores[level], target_accuracy)[0]
              for level in SINGLE_LABEL_LEVELS}
    unreachable = [level for level, value in chosen.items() if value is None]
    if unreachable:
        raise ValueError(f"no confidence reaches accuracy {target_accuracy:g} for {', '.join(unreachable)} on the "
                         f"{split} split of {run.path}; ask for a lower --target-accuracy")
    accepted = ((scores["category"].max(axis=1) >= chosen["category"])
                & (scores["subcategory"].max(axis=1) >= chosen["subcategory"]))
    right = scores["subcategory"].argmax(axis=1) == targets["subcategory"]
    promise = {"target_accuracy": float(target_accuracy), "min_confidence": chosen, "split": split,
               "coverage": float(accepted.mean()),
               "subcategory_accuracy": float(right[accepted].mean()) if accepted.any() else None}
    _save_task(task.with_min_confidence(chosen), run, checkpoint)
    record = _read_record(run)
    record["selective"] = promise
    write_json(run.calibration, record)
    logger.info("min confidence category %.3f, subcategory %.3f: %.1f%% of %s rows answered in full, "
                "subcategory accuracy %s", chosen["category"], chosen["subcategory"], 100 * promise["coverage"],
                split, promise["subcategory_accuracy"])
    return promise


# ---- the run's model and split --------------------------------------------------------------

def _load_task(run: RunDir, checkpoint: str):
    from fashion_hier.predict import load_classifier

    return load_classifier(run.path, checkpoint=checkpoint)


def _save_task(task, run: RunDir, checkpoint: str) -> Path:
    from fashion_hier.checkpoints import save_model_file

    return save_model_file(task, run / checkpoint)


def _split_scores(task, run: RunDir, split: str, batch_size: int, progress: bool, checkpoint: str
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets and scores of the ``split`` rows whose labels the model knows and whose images can be read,
    scored as ``evaluate`` scores them (a head-only run from its feature cache)."""
    from fashion_hier.predict import Predictor

    data = prepare(read_split(run.path, split), task.label_space, str(run.split(split)))
    if not len(data.frame):
        raise ValueError(f"{run.split(split)} has no row the model can be judged on; nothing to calibrate on")
    scores, _, data = score_rows(Predictor(task), data, batch_size, progress, run.path, checkpoint)
    return data.targets, {level: np.asarray(values, dtype=np.float64) for level, values in scores.items()}


def _read_record(run: RunDir) -> dict[str, Any]:
    if not run.calibration.is_file():
        return {}
    return read_json(run.calibration, remedy=f"run 'fashion-hier evaluate --run {run.path} --calibrate' again")


def _write_record(run: RunDir, calibration: Calibration) -> None:
    record = {**_read_record(run), **asdict(calibration)}
    record.pop("selective", None)  # new temperatures: an earlier confidence choice no longer holds
    write_json(run.calibration, record)
