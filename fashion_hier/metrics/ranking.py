"""Ranking metrics computed here: top-k accuracy, P@k/R@k, AP/mAP and F1-optimal thresholds.

scikit-learn has no P@k with each sample's own k nor threshold tuning, and computes top-k accuracy
and AP many times slower at catalogue scale (the figures are beside the code, measured with
``python benchmarks/bench_metrics.py``); the tests check every function against scikit-learn or
a brute-force oracle.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fashion_hier.metrics.checks import check_average, check_k, multi_label_inputs, single_label_inputs
from fashion_hier.thresholds import DEFAULT_CAP, DEFAULT_FLOOR, DEFAULT_THRESHOLD

# Labels per block when walking attribute columns: bounds the transposed copy to ~50 MB at 100k rows.
_LABELS_PER_BLOCK = 128


# Our own count, not sklearn's top_k_accuracy_score: that sorts every row, 9.6x and 21.8x slower at
# 100,000 x 1,000 (`python benchmarks/bench_metrics.py`: top5_speedup_vs_sklearn, two runs on the
# shared 2-core machine at load 13-19, 2026-11-25), and refuses (N, 2) scores, wanting a binary form.
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
    k = check_k(k)
    true_index, scores = single_label_inputs(y_true, y_score)
    return float(np.mean(_top_k_hits(true_index, scores, k)))


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
    k = None if k is None else check_k(k)
    return _precision_recall_at_k(*multi_label_inputs(y_true, y_score), k)


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


# Our own AP, not sklearn's average_precision_score, which builds a full precision-recall curve per
# label. At 100,000 samples x 1,000 labels (`python benchmarks/bench_metrics.py`): per label 9.4x
# faster on the quiet machine (ap_speedup_vs_sklearn in experiments/results/benchmarks/cpu.json),
# 6.8x and 19.0x in two contended runs (load 13-19 on 2 cores, 2026-11-25); micro AP 17.4x and
# 25.6x in the same runs. tune_thresholds needs the same counts, which sklearn does not expose.
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
    check_average(average, ("macro", "micro", None))
    labels, scores = multi_label_inputs(y_true, y_score)
    if average == "micro":
        return _average_precision_of(scores.ravel(), labels.ravel())
    per_label = _average_precision_per_label(labels, scores)
    if average is None:
        return per_label
    with_positives = per_label[~np.isnan(per_label)]
    return float(with_positives.mean()) if with_positives.size else float("nan")


def tune_thresholds(
    y_true, y_score, *, floor: float = DEFAULT_FLOOR, cap: float = DEFAULT_CAP, default: float = DEFAULT_THRESHOLD
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
    labels, scores = multi_label_inputs(y_true, y_score)
    thresholds = np.full(scores.shape[1], float(default))
    for index, column, is_positive in _label_columns(labels, scores):
        if is_positive.any():
            candidates, positives_at_or_above, samples_at_or_above = _counts_at_positive_scores(column, is_positive)
            f1 = 2 * positives_at_or_above / (len(candidates) + samples_at_or_above)
            best = len(f1) - 1 - np.argmax(f1[::-1])  # the highest of equally good candidates
            thresholds[index] = np.clip(candidates[best], floor, cap)
    return thresholds
