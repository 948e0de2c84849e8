"""Metrics for the three levels: the paper's table (Ferreira et al. 2018, section 4) and more.

scikit-learn computes precision, recall, F1 (``precision_recall_fscore_support``) and accuracy
(``accuracy_score``). This module adds what scikit-learn lacks or does many times slower at
catalogue scale — top-k accuracy, P@k/R@k, per-label and micro AP, F1-optimal thresholds, the
hierarchy's consistency — and checks every input up front, naming the offending row and column.
Every function takes the model's *probabilities*, so one set of predictions feeds thresholded
metrics (OP/OR/OF1, CP/CR/CF1) and threshold-free ones (top-k accuracy, P@k, AP/mAP).

Conventions, all as in scikit-learn unless said otherwise:

* Single-label levels (``category``, ``subcategory``): ``y_true`` is class indices ``(N,)`` or
  one-hot ``(N, C)``; the prediction is the arg-max of ``y_score`` ``(N, C)``. Every one of the
  ``C`` columns is a class (``labels=range(C)``): a class absent from ``y_true`` has recall
  ``zero_division``, precision 0 if it was predicted, and takes part in the macro averages.
* ``zero_division`` (``0.0``, ``1.0`` or ``np.nan``) is the value of a ratio whose denominator
  is 0; NaN values are left out of averages.
* Attributes (multi-label): ``y_true`` is multi-hot ``(N, A)``; an attribute is predicted when
  its score is *at or above* the threshold (as ``LabelSpace.decode_attributes``).
"""
from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from fashion_hier.thresholds import DEFAULT_THRESHOLD

LEVELS = ("category", "subcategory", "attributes")
SINGLE_LABEL_KEYS = ("OP", "OR", "OF1", "CP", "CR", "CF1", "accuracy", "top5_accuracy")
ATTRIBUTE_KEYS = ("OP", "OR", "OF1", "CP", "CR", "CF1", "P@k", "R@k", "F1@k", "mAP", "micro_AP")
HIERARCHY_KEYS = ("consistency", "joint_accuracy")

_AVERAGES = ("micro", "macro", "weighted", None)
# Labels per block when walking attribute columns: bounds the transposed copy to ~50 MB at 100k rows.
_LABELS_PER_BLOCK = 128


# --------------------------------------------------------------------------- input validation
def _check_scores(y_score, name: str = "y_score") -> np.ndarray:
    """``y_score`` as a 2-D float array of probabilities, or a ValueError saying what is wrong."""
    scores = np.asarray(y_score)
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numeric probabilities, got dtype {scores.dtype}")
    if scores.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_classes) probabilities, got shape {scores.shape}")
    if 0 in scores.shape:
        raise ValueError(f"{name} is empty (shape {scores.shape}); metrics need at least one sample and class")
    scores = scores if scores.dtype.kind == "f" else scores.astype(np.float64)
    finite = np.isfinite(scores)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise ValueError(
            f"{name} has {np.count_nonzero(~finite)} NaN or infinite values (first at row {row}, column {column}); "
            "expected probabilities in [0, 1] — check the model's outputs"
        )
    low, high = float(scores.min()), float(scores.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got values from {low:g} to {high:g}; "
            "pass the softmax/sigmoid outputs, not logits"
        )
    return scores


def _check_class_indices(y_true, n_classes: int, name: str = "y_true") -> np.ndarray:
    """Class indices ``(N,)`` from indices or one-hot rows, checked against ``n_classes``."""
    labels = np.asarray(y_true)
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold class indices or one-hot rows, got dtype {labels.dtype}")
    if labels.ndim == 2:
        if labels.shape[1] != n_classes:
            raise ValueError(
                f"{name} is one-hot with {labels.shape[1]} columns but the scores have {n_classes} classes; "
                f"expected shape (n_samples, {n_classes})"
            )
        ones = np.count_nonzero(labels == 1, axis=1)
        bad = np.flatnonzero(~((labels == 0) | (labels == 1)).all(axis=1) | (ones != 1))
        if bad.size:
            raise ValueError(
                f"{name} is 2-D so it is read as one-hot, but row {bad[0]} is {labels[bad[0]].tolist()[:10]}; "
                "expected exactly one 1 and zeros elsewhere (or pass class indices of shape (n_samples,))"
            )
        return np.argmax(labels, axis=1)
    if labels.ndim != 1:
        raise ValueError(
            f"{name} must be class indices (n_samples,) or one-hot (n_samples, n_classes), got shape {labels.shape}"
        )
    if labels.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            raise ValueError(f"{name} must be whole class indices, got {labels[bad[0]].item()!r} at row {bad[0]}")
    indices = labels.astype(np.int64)
    bad = np.flatnonzero((indices < 0) | (indices >= n_classes))
    if bad.size:
        raise ValueError(
            f"{name} has class index {indices[bad[0]]} at row {bad[0]}, but the scores have {n_classes} "
            f"columns (classes 0..{n_classes - 1})"
        )
    return indices


def _check_multi_hot(y_true, name: str = "y_true") -> np.ndarray:
    """Boolean ``(N, A)`` from a multi-hot 0/1 array."""
    labels = np.asarray(y_true)
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be multi-hot 0/1, got dtype {labels.dtype}")
    if labels.ndim != 2:
        raise ValueError(f"{name} must be multi-hot of shape (n_samples, n_labels), got shape {labels.shape}")
    if labels.dtype.kind == "b":
        return labels
    not_binary = (labels != 0) & (labels != 1)
    if not_binary.any():
        row, column = np.argwhere(not_binary)[0]
        raise ValueError(
            f"{name} must be multi-hot with only 0 and 1, got {labels[row, column].item()!r} at row {row}, column {column}"
        )
    return labels.astype(bool)


def _check_same_length(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    if len(first) != len(second):
        raise ValueError(
            f"{names[0]} has {len(first)} samples but {names[1]} has {len(second)}; expected one score row per sample"
        )


def _single_label_inputs(y_true, y_score, names=("y_true", "y_score")) -> tuple[np.ndarray, np.ndarray]:
    scores = _check_scores(y_score, names[1])
    true_index = _check_class_indices(y_true, scores.shape[1], names[0])
    _check_same_length(true_index, scores, names)
    return true_index, scores


def _multi_label_inputs(y_true, y_score, names=("y_true", "y_score")) -> tuple[np.ndarray, np.ndarray]:
    scores = _check_scores(y_score, names[1])
    labels = _check_multi_hot(y_true, names[0])
    if labels.shape != scores.shape:
        raise ValueError(
            f"{names[0]} has shape {labels.shape} but {names[1]} has shape {scores.shape}; "
            "expected the same (n_samples, n_labels)"
        )
    return labels, scores


def _check_threshold(threshold, n_labels: int) -> float | np.ndarray:
    """A probability, or one probability per label ``(A,)``."""
    values = np.asarray(threshold, dtype=float)
    if values.ndim > 1 or (values.ndim == 1 and values.shape != (n_labels,)):
        raise ValueError(f"threshold must be a number or have shape ({n_labels},), one per label; got shape {values.shape}")
    outside = np.atleast_1d(~((values >= 0.0) & (values <= 1.0)))
    if outside.any():
        raise ValueError(f"threshold must lie in [0, 1], got {np.atleast_1d(values)[outside][:5].tolist()}")
    return float(values) if values.ndim == 0 else values


def _check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def _check_average(average, averages=_AVERAGES) -> None:
    if average not in averages:
        raise ValueError(f"average must be one of {list(averages)}, got {average!r}")


def _check_zero_division(zero_division) -> float:
    try:
        value = float(zero_division)
    except (TypeError, ValueError):
        value = -1.0
    if not (value in (0.0, 1.0) or np.isnan(value)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or np.nan, got {zero_division!r}")
    return value


# --------------------------------------------------------------------------- precision / recall / F1, accuracy
def _single_label_prf(true_index: np.ndarray, scores: np.ndarray, average, zero_division: float):
    return precision_recall_fscore_support(
        true_index, scores.argmax(axis=1), labels=np.arange(scores.shape[1]), average=average,
        zero_division=zero_division,
    )


def _multi_label_prf(labels: np.ndarray, predicted: np.ndarray, average, zero_division: float):
    if labels.shape[1] == 1:  # scikit-learn reads one column as a binary target: name the positive class
        labels, predicted, positive = labels[:, 0], predicted[:, 0], [True]
    else:
        positive = None
    return precision_recall_fscore_support(labels, predicted, labels=positive, average=average, zero_division=zero_division)


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
    _check_average(average)
    zero_division = _check_zero_division(zero_division)
    return _single_label_prf(*_single_label_inputs(y_true, y_score), average, zero_division)


def multilabel_prf(
    y_true, y_score, *, threshold: float | np.ndarray = DEFAULT_THRESHOLD, average: str | None = "micro",
    zero_division: float = 0.0,
):
    """Precision, recall, F1 and support of multi-label predictions ``y_score >= threshold``.

    ``sklearn.metrics.precision_recall_fscore_support(y_true, y_score >= threshold, average=average,
    zero_division=zero_division)`` after checking the inputs. ``threshold`` is one number or one per
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
    _check_average(average)
    zero_division = _check_zero_division(zero_division)
    labels, scores = _multi_label_inputs(y_true, y_score)
    return _multi_label_prf(labels, scores >= _check_threshold(threshold, scores.shape[1]), average, zero_division)


def accuracy(y_true, y_score) -> float:
    """Fraction of samples whose arg-max class is the true class (``sklearn.metrics.accuracy_score``).

    Examples
    --------
    >>> accuracy(np.array([0, 1]), np.array([[.9, .1], [.6, .4]]))
    0.5
    """
    true_index, scores = _single_label_inputs(y_true, y_score)
    return float(accuracy_score(true_index, scores.argmax(axis=1)))


# Our own count instead of sklearn's top_k_accuracy_score, which sorts every row (8.1 s against
# 1.1 s for this at 100,000 x 1,000: `python benchmarks/bench_metrics.py`, top5_speedup_vs_sklearn)
# and refuses (N, 2) scores, wanting the binary form.
def _top_k_hits(true_index: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Whether the true class ranks in the top ``k``; ties rank higher indices first, as sklearn."""
    true_score = np.take_along_axis(scores, true_index[:, None], axis=1)
    higher_index = np.arange(scores.shape[1]) > true_index[:, None]
    ahead = np.count_nonzero((scores > true_score) | ((scores == true_score) & higher_index), axis=1)
    return ahead < k


def top_k_accuracy(y_true, y_score, *, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    Equals ``sklearn.metrics.top_k_accuracy_score(y_true, y_score, k=k, labels=range(C))``,
    including its tie rule (among equal scores, higher class indices rank first); ``k >= C``
    gives 1.0.

    Examples
    --------
    >>> y_score = np.array([[.5, .3, .2], [.1, .2, .7]])
    >>> top_k_accuracy(np.array([1, 0]), y_score, k=2)   # class 1 is 2nd in row 0; class 0 is 3rd in row 1
    0.5
    """
    k = _check_k(k)
    true_index, scores = _single_label_inputs(y_true, y_score)
    return float(np.mean(_top_k_hits(true_index, scores, k)))


# --------------------------------------------------------------------------- P@k, R@k, F1@k (not in sklearn)
def _hits_in_top_k(labels: np.ndarray, scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """True labels among each row's ``k[i]`` highest scores; ties taken lowest label index first.

    One ``np.partition`` at the largest k finds each row's k-th largest score; labels above it
    are in, and only rows where that score is tied beyond the cut need a per-label count.
    """
    n_labels = scores.shape[1]
    k_max = int(k.max())
    largest = -np.sort(-np.partition(scores, n_labels - k_max, axis=1)[:, n_labels - k_max:], axis=1)
    cut = largest[np.arange(len(k)), k - 1][:, None]
    above, tied = scores > cut, scores == cut
    hits = np.count_nonzero(above & labels, axis=1)
    ties_taken = k - np.count_nonzero(above, axis=1)
    partial = np.count_nonzero(tied, axis=1) > ties_taken
    hits[~partial] += np.count_nonzero(tied[~partial] & labels[~partial], axis=1)
    if partial.any():
        taken = tied[partial] & (np.cumsum(tied[partial], axis=1) <= ties_taken[partial][:, None])
        hits[partial] += np.count_nonzero(taken & labels[partial], axis=1)
    return hits


def _precision_recall_at_k(labels: np.ndarray, scores: np.ndarray, k: int | None) -> tuple[float, float, float]:
    n_true = np.count_nonzero(labels, axis=1)
    has_labels = n_true > 0
    if not has_labels.any():
        return float("nan"), float("nan"), float("nan")
    per_sample_k = np.maximum(n_true, 1) if k is None else np.full(len(labels), min(k, scores.shape[1]))
    hits = _hits_in_top_k(labels, scores, per_sample_k)[has_labels]
    precision = float(np.mean(hits / per_sample_k[has_labels]))
    recall = float(np.mean(hits / n_true[has_labels]))
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def precision_recall_at_k(y_true, y_score, *, k: int | None = None) -> tuple[float, float, float]:
    """P@k, R@k and F1@k of multi-label scores: how many true labels are among the top k.

    For each sample, take its ``k`` highest-scoring labels (ties: lowest label index first);
    P@k is the mean over samples of hits / k, R@k the mean of hits / (number of true labels),
    F1@k the harmonic mean of those two means. ``k=None`` (the default) uses each sample's own
    number of true labels as its k, so P@k = R@k = F1@k (the "R-precision"); a ``k`` above the
    number of labels is clamped to it. Samples with no true label are left out of all three
    averages (count them with ``(y_true.sum(1) == 0).sum()``); all three are NaN if none has one.

    Examples
    --------
    >>> y_true = np.array([[1, 0, 1], [0, 1, 0]])
    >>> y_score = np.array([[.9, .8, .1], [.2, .7, .3]])
    >>> precision_recall_at_k(y_true, y_score)          # row 0: 1 of its top 2 is true; row 1: 1 of 1
    (0.75, 0.75, 0.75)
    >>> precision_recall_at_k(y_true, y_score, k=1)     # hits 1 and 1; P = 1, R = (1/2 + 1) / 2
    (1.0, 0.75, 0.8571428571428571)
    """
    k = None if k is None else _check_k(k)
    return _precision_recall_at_k(*_multi_label_inputs(y_true, y_score), k)


# --------------------------------------------------------------------------- AP, mAP, thresholds
def _counts_at_positive_scores(column: np.ndarray, is_positive: np.ndarray):
    """Each positive's score ``t`` (ascending), with #positives >= t and #samples >= t.

    These are the only thresholds where recall moves, so they are all AP and the best-F1
    threshold need; ties are whole groups, exactly as sklearn's precision-recall curve.
    """
    positive_scores = np.sort(column[is_positive])
    positives_at_or_above = len(positive_scores) - np.searchsorted(positive_scores, positive_scores, side="left")
    samples_at_or_above = len(column) - np.searchsorted(np.sort(column), positive_scores, side="left")
    return positive_scores, positives_at_or_above, samples_at_or_above


def _label_columns(labels: np.ndarray, scores: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, scores, labels)`` for each label, from contiguous blocks of transposed columns."""
    for start in range(0, scores.shape[1], _LABELS_PER_BLOCK):
        stop = min(start + _LABELS_PER_BLOCK, scores.shape[1])
        block_scores = np.ascontiguousarray(scores[:, start:stop].T)
        block_labels = np.ascontiguousarray(labels[:, start:stop].T)
        for offset in range(stop - start):
            yield start + offset, block_scores[offset], block_labels[offset]


# Our own AP instead of sklearn's average_precision_score, which builds a full precision-recall
# curve per label: at 100,000 samples x 1,000 labels this is MEASURED_AP_SPEEDUP faster per label
# and MEASURED_MICRO_AP_SPEEDUP for micro AP (`python benchmarks/bench_metrics.py`: ap_speedup_vs_sklearn,
# micro_ap_speedup_vs_sklearn). tune_thresholds needs the same counts, which sklearn does not expose.
def _average_precision_of(column: np.ndarray, is_positive: np.ndarray) -> float:
    """sklearn's AP: mean over positives of the precision at their score; NaN without positives."""
    if not is_positive.any():
        return float("nan")
    _, positives_at_or_above, samples_at_or_above = _counts_at_positive_scores(column, is_positive)
    return float(np.mean(positives_at_or_above / samples_at_or_above))


def _average_precision_per_label(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    per_label = np.full(scores.shape[1], np.nan)
    for index, column, is_positive in _label_columns(labels, scores):
        per_label[index] = _average_precision_of(column, is_positive)
    return per_label


def _mean_ignoring_nan(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def average_precision(y_true, y_score, *, average: str | None = "macro"):
    """Average precision of multi-label scores: per label ``(A,)``, macro (mAP) or micro.

    Per label, equal to ``sklearn.metrics.average_precision_score(y_true[:, j], y_score[:, j])``
    (the step-wise area under the precision-recall curve, equal scores forming one step).
    A label with no positive has no AP: NaN in the per-label array and left out of ``"macro"``
    (NaN if no label has a positive). ``"micro"`` treats all sample-label pairs as one binary
    problem, as sklearn.

    Examples
    --------
    >>> y_true = np.array([[1, 0], [0, 0], [1, 0]])
    >>> y_score = np.array([[.9, .5], [.8, .4], [.3, .2]])
    >>> average_precision(y_true, y_score, average=None)   # label 0: (1/1 + 2/3) / 2
    array([0.83333333,        nan])
    """
    _check_average(average, ("macro", "micro", None))
    labels, scores = _multi_label_inputs(y_true, y_score)
    if average == "micro":
        return _average_precision_of(scores.ravel(), labels.ravel())
    per_label = _average_precision_per_label(labels, scores)
    return per_label if average is None else _mean_ignoring_nan(per_label)


def tune_thresholds(
    y_true, y_score, *, floor: float = 0.05, cap: float = 0.95, default: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """Per-label thresholds ``(A,)`` that maximise F1 of ``y_score >= threshold`` on validation data.

    For each label, every score of a positive sample is a candidate (only there can F1 rise);
    the best one (the highest, when several tie) is then clamped to ``[floor, cap]`` so that
    one lucky validation sample cannot push a threshold to 0 or 1. Labels with no positive
    get ``default``.

    Examples
    --------
    >>> y_true = np.array([[1, 0], [1, 0], [0, 0]])
    >>> y_score = np.array([[.9, .3], [.6, .2], [.7, .1]])
    >>> tune_thresholds(y_true, y_score)   # label 0: >= .6 gives F1 = 0.8, >= .9 gives 0.67
    array([0.6 , 0.75])
    """
    for name, value in (("floor", floor), ("cap", cap), ("default", default)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    if floor > cap:
        raise ValueError(f"floor ({floor}) must not exceed cap ({cap})")
    labels, scores = _multi_label_inputs(y_true, y_score)
    thresholds = np.full(scores.shape[1], float(default))
    for index, column, is_positive in _label_columns(labels, scores):
        if is_positive.any():
            candidates, positives_at_or_above, samples_at_or_above = _counts_at_positive_scores(column, is_positive)
            f1 = 2 * positives_at_or_above / (len(candidates) + samples_at_or_above)
            best = len(f1) - 1 - np.argmax(f1[::-1])  # the highest of equally good candidates
            thresholds[index] = np.clip(candidates[best], floor, cap)
    return thresholds


# --------------------------------------------------------------------------- hierarchy
def _check_parents(parents, n_categories: int, n_subcategories: int) -> np.ndarray:
    index = np.asarray(parents)
    if index.shape != (n_subcategories,) or index.dtype.kind not in "iu":
        raise ValueError(
            f"parents must be integer category indices of shape ({n_subcategories},), one per subcategory "
            f"(LabelSpace.parent_index); got shape {index.shape}, dtype {index.dtype}"
        )
    bad = np.flatnonzero((index < 0) | (index >= n_categories))
    if bad.size:
        raise ValueError(f"parents[{bad[0]}] = {index[bad[0]]} is not a category index (0..{n_categories - 1})")
    return index


def _two_level_inputs(category_true, subcategory_true, category_score, subcategory_score, names: dict):
    """Checked ``(index, scores)`` of each single-label level; ``names[level]`` = (true name, score name)."""
    category = _single_label_inputs(category_true, category_score, names["category"])
    subcategory = _single_label_inputs(subcategory_true, subcategory_score, names["subcategory"])
    _check_same_length(category[1], subcategory[1], (names["category"][1], names["subcategory"][1]))
    return category, subcategory


def _hierarchy_metrics(category, subcategory, parents) -> tuple[float, float]:
    (category_true, category_scores), (subcategory_true, subcategory_scores) = category, subcategory
    category_predicted, subcategory_predicted = category_scores.argmax(axis=1), subcategory_scores.argmax(axis=1)
    consistency = float(np.mean(parents[subcategory_predicted] == category_predicted))
    joint = float(np.mean((category_predicted == category_true) & (subcategory_predicted == subcategory_true)))
    return consistency, joint


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
    category, subcategory = _two_level_inputs(category_true, subcategory_true, category_score, subcategory_score, names)
    return _hierarchy_metrics(category, subcategory, _check_parents(parents, category[1].shape[1], subcategory[1].shape[1]))


# --------------------------------------------------------------------------- reports
def _prf_entries(keys: tuple[str, ...], prf) -> dict[str, float]:
    return dict(zip(keys, prf[:3]))


def _single_label_report(true_index: np.ndarray, scores: np.ndarray, zero_division: float) -> dict[str, float]:
    return {
        **_prf_entries(("OP", "OR", "OF1"), _single_label_prf(true_index, scores, "weighted", zero_division)),
        **_prf_entries(("CP", "CR", "CF1"), _single_label_prf(true_index, scores, "macro", zero_division)),
        "accuracy": float(accuracy_score(true_index, scores.argmax(axis=1))),
        "top5_accuracy": float(np.mean(_top_k_hits(true_index, scores, 5))),
    }


def _attribute_report(labels: np.ndarray, scores: np.ndarray, threshold, zero_division: float) -> dict[str, float]:
    predicted = scores >= threshold
    precision_at_k, recall_at_k, f1_at_k = _precision_recall_at_k(labels, scores, None)
    return {
        **_prf_entries(("OP", "OR", "OF1"), _multi_label_prf(labels, predicted, "micro", zero_division)),
        **_prf_entries(("CP", "CR", "CF1"), _multi_label_prf(labels, predicted, "macro", zero_division)),
        "P@k": precision_at_k, "R@k": recall_at_k, "F1@k": f1_at_k,
        "mAP": _mean_ignoring_nan(_average_precision_per_label(labels, scores)),
        "micro_AP": _average_precision_of(scores.ravel(), labels.ravel()),
        "n_labels_without_positives": int(np.count_nonzero(~labels.any(axis=0))),
        "n_samples_without_labels": int(np.count_nonzero(~labels.any(axis=1))),
    }


def _check_level_keys(mapping, name: str) -> None:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a dict keyed {list(LEVELS)}, got {type(mapping).__name__}")
    missing = [level for level in LEVELS if level not in mapping]
    unknown = [key for key in mapping if key not in LEVELS]
    if missing or unknown:
        raise ValueError(f"{name} must have exactly the keys {list(LEVELS)}; missing {missing}, unexpected {unknown}")


def hierarchical_report(
    y_true: Mapping[str, np.ndarray],
    y_score: Mapping[str, np.ndarray],
    *,
    parents=None,
    threshold: float | np.ndarray = DEFAULT_THRESHOLD,
    zero_division: float = 0.0,
) -> dict[str, dict[str, float]]:
    """The paper's table for one set of predictions, as a nested dict of plain floats.

    ``y_true`` and ``y_score`` are dicts keyed ``category``, ``subcategory`` (indices ``(N,)`` or
    one-hot; probabilities ``(N, C)``, ``(N, S)``) and ``attributes`` (multi-hot and probabilities
    ``(N, A)``). ``threshold`` (one or ``(A,)``) applies to the thresholded attribute metrics;
    ``parents`` (``LabelSpace.parent_index``) adds the ``hierarchy`` entry.

    Returns ``category`` and ``subcategory``: OP, OR, OF1 (support-weighted), CP, CR, CF1 (macro
    over all C columns), accuracy, top5_accuracy. ``attributes``: OP, OR, OF1 (micro), CP, CR,
    CF1 (macro), P@k, R@k, F1@k (k = each sample's number of true labels), mAP (labels with
    positives), micro_AP, and the counts n_labels_without_positives, n_samples_without_labels.
    ``hierarchy``: consistency, joint_accuracy. Undefined values are NaN.

    Examples
    --------
    >>> y_true = {"category": np.array([0, 1]), "subcategory": np.array([0, 2]),
    ...           "attributes": np.array([[1, 0], [0, 1]])}
    >>> y_score = {"category": np.array([[.9, .1], [.4, .6]]),
    ...            "subcategory": np.array([[.8, .1, .1], [.5, .2, .3]]),
    ...            "attributes": np.array([[.9, .2], [.1, .8]])}
    >>> report = hierarchical_report(y_true, y_score, parents=np.array([0, 0, 1]))
    >>> report["category"]["accuracy"], report["subcategory"]["accuracy"], report["attributes"]["mAP"]
    (1.0, 0.5, 1.0)
    >>> report["hierarchy"]       # sample 1: category 1 predicted, subcategory 0 (of category 0)
    {'consistency': 0.5, 'joint_accuracy': 0.5}
    """
    _check_level_keys(y_true, "y_true")
    _check_level_keys(y_score, "y_score")
    zero_division = _check_zero_division(zero_division)
    names = {level: (f"y_true[{level!r}]", f"y_score[{level!r}]") for level in LEVELS}
    category, subcategory = _two_level_inputs(
        y_true["category"], y_true["subcategory"], y_score["category"], y_score["subcategory"], names
    )
    labels, scores = _multi_label_inputs(y_true["attributes"], y_score["attributes"], names["attributes"])
    _check_same_length(category[1], scores, (names["category"][1], names["attributes"][1]))
    report = {
        "category": _single_label_report(*category, zero_division),
        "subcategory": _single_label_report(*subcategory, zero_division),
        "attributes": _attribute_report(labels, scores, _check_threshold(threshold, scores.shape[1]), zero_division),
    }
    if parents is not None:
        parents = _check_parents(parents, category[1].shape[1], subcategory[1].shape[1])
        report["hierarchy"] = dict(zip(HIERARCHY_KEYS, _hierarchy_metrics(category, subcategory, parents)))
    return report


def per_class_report(
    y_true,
    y_score,
    names: Sequence[str],
    *,
    multilabel: bool = False,
    threshold: float | np.ndarray = DEFAULT_THRESHOLD,
    zero_division: float = 0.0,
) -> pd.DataFrame:
    """One row per class: precision, recall, f1, support (and AP for ``multilabel=True``).

    Single-label (``multilabel=False``): ``y_true`` indices or one-hot, arg-max predictions.
    Multi-label: ``y_true`` multi-hot, predictions ``y_score >= threshold``; AP is NaN for a
    label without positives. The index is the class names (named ``"class"``), in column order.

    Examples
    --------
    >>> table = per_class_report(np.array([0, 1, 1]), np.array([[.9, .1], [.8, .2], [.3, .7]]), ["Bags", "Shoes"])
    >>> table["recall"].tolist(), table["support"].tolist()
    ([1.0, 0.5], [1, 2])
    """
    zero_division = _check_zero_division(zero_division)
    if multilabel:
        labels, scores = _multi_label_inputs(y_true, y_score)
        predicted = scores >= _check_threshold(threshold, scores.shape[1])
        precision, recall, f1, support = _multi_label_prf(labels, predicted, None, zero_division)
    else:
        labels, scores = _single_label_inputs(y_true, y_score)
        precision, recall, f1, support = _single_label_prf(labels, scores, None, zero_division)
    names = list(names)
    if len(names) != scores.shape[1]:
        raise ValueError(f"names has {len(names)} entries but y_score has {scores.shape[1]} columns; expected one name per column")
    table = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)},
        index=pd.Index(names, name="class"),
    )
    if multilabel:
        table.insert(3, "AP", _average_precision_per_label(labels, scores))
    return table
