"""Precision, recall, F1 and accuracy of arg-max and thresholded predictions, computed by scikit-learn.

Our inputs are probabilities, so these functions check them, turn them into predictions (arg-max,
or ``score >= threshold``) and hand them to ``sklearn.metrics``. Consistency with the category
tree (``hierarchy_metrics``) has no scikit-learn counterpart and is two numpy lines.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from fashion_hier.metrics.checks import (
    check_average,
    check_parents,
    check_threshold,
    check_zero_division,
    multi_label_inputs,
    single_label_inputs,
    two_level_inputs,
)
from fashion_hier.thresholds import DEFAULT_THRESHOLD


def classification_prf(y_true, y_score, *, average: str | None = "weighted", zero_division: float = 0.0):
    """Precision, recall, F1 and support of a single-label level, predicting the arg-max class.

    ``sklearn.metrics.precision_recall_fscore_support(y_true, y_score.argmax(1), labels=range(C),
    average=average, zero_division=zero_division)`` after checking the inputs. ``"weighted"`` gives
    the paper's OP/OR/OF1 (support-weighted; the weighted F1 need not lie between them),
    ``"macro"`` its CP/CR/CF1, ``None`` one value per class and the support ``(C,)``.

    Examples
    --------
    >>> y_true = np.array([0, 0, 1, 2])
    >>> y_score = np.array([[.8, .1, .1], [.3, .6, .1], [.2, .7, .1], [.1, .1, .8]])
    >>> precision, recall, f1, _ = classification_prf(y_true, y_score, average="macro")
    >>> round(precision, 4), round(recall, 4), round(f1, 4)   # P = (1 + 1/2 + 1) / 3, R = (1/2 + 1 + 1) / 3
    (0.8333, 0.8333, 0.7778)
    """
    check_average(average)
    zero_division = check_zero_division(zero_division)
    true_index, scores = single_label_inputs(y_true, y_score)
    return precision_recall_fscore_support(
        true_index, scores.argmax(axis=1), labels=np.arange(scores.shape[1]), average=average,
        zero_division=zero_division,
    )


def multilabel_prf(
    y_true, y_score, *, threshold: float | np.ndarray = DEFAULT_THRESHOLD, average: str | None = "micro",
    zero_division: float = 0.0,
):
    """Precision, recall, F1 and support of multi-label predictions ``y_score >= threshold``.

    Equals ``sklearn.metrics.precision_recall_fscore_support(y_true, y_score >= threshold,
    average=average, zero_division=zero_division)`` (counted here: much faster, see below). ``threshold`` is one number or one per
    label ``(A,)`` (see :func:`tune_thresholds`). ``"micro"`` (over all sample-label pairs) gives the
    paper's OP/OR/OF1, ``"macro"`` its CP/CR/CF1.

    Examples
    --------
    >>> y_true = np.array([[1, 0], [1, 1]])
    >>> y_score = np.array([[.9, .8], [.2, .9]])
    >>> precision, recall, f1, _ = multilabel_prf(y_true, y_score, threshold=0.5)
    >>> precision, recall        # 2 of 3 predicted pairs are right, 2 of 3 true pairs found
    (0.6666666666666666, 0.6666666666666666)
    """
    check_average(average)
    zero_division = check_zero_division(zero_division)
    labels, scores = multi_label_inputs(y_true, y_score)
    predicted = scores >= check_threshold(threshold, scores.shape[1])
    # Counting here instead of calling scikit-learn: its input checks sort the whole (N, A) matrix;
    # at 100,000 x 1,000 labels it took 37.5 s per call against 0.28 s for these three counts
    # (benchmarks/bench_metrics.py, 2026-11-25). tests/test_metrics.py checks equality with sklearn.
    counts = (np.count_nonzero(predicted & labels, axis=0), np.count_nonzero(predicted, axis=0),
              np.count_nonzero(labels, axis=0))
    return _prf_from_counts(*counts, average=average, zero_division=zero_division)


def _prf_from_counts(true_positives, predicted, actual, *, average, zero_division):
    """scikit-learn's ``precision_recall_fscore_support`` arithmetic on per-label counts."""
    if average == "micro":
        true_positives, predicted, actual = (np.sum(x, keepdims=True) for x in (true_positives, predicted, actual))
    precision = _divide(true_positives, predicted, zero_division)
    recall = _divide(true_positives, actual, zero_division)
    f1 = _divide(2 * np.asarray(true_positives), np.asarray(predicted) + np.asarray(actual), zero_division)
    if average is None:
        return precision, recall, f1, np.asarray(actual)
    weights = np.asarray(actual, dtype=float) if average == "weighted" else None
    return tuple(_nanaverage(values, weights) for values in (precision, recall, f1)) + (None,)


def _divide(numerator, denominator, zero_division: float) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return np.where(denominator == 0, zero_division, numerator / np.where(denominator == 0, 1.0, denominator))


def _nanaverage(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Mean ignoring NaN (scikit-learn's rule); all weights zero -> plain mean; all NaN -> NaN."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is None or np.sum(weights[keep]) == 0:
        return float(np.mean(values[keep]))
    return float(np.average(values[keep], weights=weights[keep]))


def accuracy(y_true, y_score) -> float:
    """Fraction of samples whose arg-max class is the true class (``sklearn.metrics.accuracy_score``).

    Examples
    --------
    >>> accuracy(np.array([0, 1]), np.array([[.9, .1], [.6, .4]]))
    0.5
    """
    true_index, scores = single_label_inputs(y_true, y_score)
    return float(accuracy_score(true_index, scores.argmax(axis=1)))


def hierarchy_metrics(
    category_true, subcategory_true, category_score, subcategory_score, parents
) -> tuple[float, float]:
    """Consistency rate and joint accuracy of arg-max predictions on the two single-label levels.

    Consistency: the fraction of samples whose predicted subcategory's parent is the predicted
    category. Joint accuracy: the fraction with both predictions right. ``parents`` ``(S,)`` is
    the category index of each subcategory (``LabelSpace.parent_index``).

    Examples
    --------
    >>> parents = np.array([0, 0, 1])          # subcategories 0 and 1 belong to category 0
    >>> category_score = np.array([[.9, .1], [.8, .2]])
    >>> subcategory_score = np.array([[.7, .2, .1], [.1, .1, .8]])
    >>> hierarchy_metrics([0, 0], [0, 1], category_score, subcategory_score, parents)
    (0.5, 0.5)
    """
    names = {level: (f"{level}_true", f"{level}_score") for level in ("category", "subcategory")}
    (category_true, category_scores), (subcategory_true, subcategory_scores) = two_level_inputs(
        category_true, subcategory_true, category_score, subcategory_score, names
    )
    parents = check_parents(parents, category_scores.shape[1], subcategory_scores.shape[1])
    category_predicted, subcategory_predicted = category_scores.argmax(axis=1), subcategory_scores.argmax(axis=1)
    consistency = float(np.mean(parents[subcategory_predicted] == category_predicted))
    joint = float(np.mean((category_predicted == category_true) & (subcategory_predicted == subcategory_true)))
    return consistency, joint
