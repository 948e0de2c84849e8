"""Selective prediction: how accurate the answers a model is sure of are, and how many it can give.

A catalogue team accepts the predictions whose top score reaches a confidence P and sends the rest to a
person. ``accuracy_coverage_curve`` gives, for every P that changes the accepted set, the share of rows
accepted (coverage) and their accuracy; ``confidence_for_accuracy`` picks the P with the largest coverage
whose accepted rows reach a target accuracy (chosen on validation, applied by ``predict --min-confidence``).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fashion_hier.metrics.checks import single_label_inputs


class AccuracyCoverage(NamedTuple):
    """One point per distinct confidence, most confident first: accept rows with score >= ``threshold``."""

    threshold: np.ndarray  # (K,) decreasing
    coverage: np.ndarray   # (K,) share of rows accepted, increasing to 1
    accuracy: np.ndarray   # (K,) accuracy of the accepted rows


def accuracy_coverage_curve(y_true, y_score) -> AccuracyCoverage:
    """Accuracy of the rows whose top score is at least each threshold, against the share of rows accepted.

    Rows with equal confidence are accepted together (a threshold cannot split them), so the curve has
    one point per distinct top score. The prediction is the arg-max of ``y_score`` (N, C).

    Examples
    --------
    >>> curve = accuracy_coverage_curve([0, 1, 1], [[.9, .1], [.8, .2], [.4, .6]])
    >>> curve.threshold, curve.coverage, curve.accuracy
    (array([0.9, 0.8, 0.6]), array([0.33333333, 0.66666667, 1.        ]), array([1.        , 0.5       , 0.66666667]))
    """
    truth, scores = single_label_inputs(y_true, y_score)
    confidence = scores.max(axis=1)
    correct = scores.argmax(axis=1) == truth
    order = np.argsort(-confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    last_of_tie = np.r_[confidence[1:] != confidence[:-1], True]  # accept a whole tie at once
    accepted = np.arange(1, len(confidence) + 1)[last_of_tie]
    hits = np.cumsum(correct)[last_of_tie]
    return AccuracyCoverage(confidence[last_of_tie].astype(float), accepted / len(confidence), hits / accepted)


def confidence_for_accuracy(y_true, y_score, target_accuracy: float) -> tuple[float | None, float]:
    """The smallest confidence P whose accepted rows (top score >= P) are at least ``target_accuracy`` accurate,
    and the coverage it gives; ``(None, 0.0)`` when no P reaches the target.

    Examples
    --------
    >>> confidence_for_accuracy([0, 1, 1], [[.9, .1], [.8, .2], [.4, .6]], 0.6)
    (0.6, 1.0)
    """
    target = float(target_accuracy)
    if not 0 < target <= 1:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {target_accuracy!r}")
    curve = accuracy_coverage_curve(y_true, y_score)
    reaching = np.flatnonzero(curve.accuracy >= target)
    if not len(reaching):
        return None, 0.0
    best = reaching[-1]  # the largest coverage that still reaches the target
    return float(curve.threshold[best]), float(curve.coverage[best])


def coverage_at_accuracies(y_true, y_score, targets=(0.95, 0.98, 0.99)) -> dict[float, dict[str, float | None]]:
    """For each target accuracy: the confidence P that reaches it with the most rows, and that coverage."""
    result = {}
    for target in targets:
        threshold, coverage = confidence_for_accuracy(y_true, y_score, target)
        result[float(target)] = {"min_confidence": threshold, "coverage": coverage}
    return result
