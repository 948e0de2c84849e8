"""Metrics of attribute groups (catalogue columns), each a slice ``[start, stop)`` of the attribute axis.

A ``single`` group (one value per product, a softmax over its slice) is scored like a single-label
level on the rows that have a value; a ``multi`` group (a set of values, sigmoids) like the paper's
attribute level on its known entries. A target of ``UNKNOWN`` (-1: the cell was empty, or the group
does not apply to the row's category) is left out of every metric: it is never a negative, and its
score is never looked at. ``masked_attribute_report`` is the paper's flat attribute table under the
same mask; ``group_report`` scores each group (``LabelSpace.groups``) on its slice.

The numbers come from the same functions as the rest of ``fashion_hier.metrics`` (scikit-learn's
precision/recall/F1, our AP and P@k), applied to the known rows or entries only.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from fashion_hier.labels import GROUP_KINDS, UNKNOWN
from fashion_hier.metrics.checks import (
    _numeric,
    check_same_length,
    check_scores,
    check_threshold,
    check_zero_division,
)
from fashion_hier.metrics.classification import _prf_from_counts, accuracy, classification_prf
from fashion_hier.metrics.ranking import _LABELS_PER_BLOCK, _average_precision_of, _precision_recall_at_k
from fashion_hier.metrics.report import ATTRIBUTE_KEYS
from fashion_hier.thresholds import DEFAULT_THRESHOLD

SINGLE_GROUP_KEYS = ("known", "coverage", "accuracy", "macro_f1", "micro_f1", "hmean_f1")
MULTI_GROUP_KEYS = ("known", "coverage", "AP", "mAP", "OP", "OR", "OF1", "CP", "CR", "CF1")
_PRF_KEYS = ATTRIBUTE_KEYS[:6]  # OP, OR, OF1 (micro), CP, CR, CF1 (per-value averages), as report.py


def _group_scores(y_score, name: str) -> np.ndarray:
    """``y_score`` as 2-D float probabilities; unlike ``check_scores``, zero rows are allowed."""
    scores = _numeric(y_score, name, "numeric probabilities")
    if scores.ndim == 2 and scores.shape[0] == 0 and scores.shape[1] > 0:
        return scores.astype(np.float64)
    return check_scores(scores, name)


def _targets(y_true, name: str) -> np.ndarray:
    """``y_true`` as floats holding only 1, 0 and -1 (unknown), or a ValueError naming the first other value."""
    targets = _numeric(y_true, name, "targets 1 (present), 0 (absent) or -1 (unknown)")
    if targets.dtype.kind == "b":
        return targets.astype(np.float64)
    bad = ~np.isin(targets, (0.0, 1.0, UNKNOWN))
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must hold only 1 (present), 0 (absent) and -1 (unknown), got {targets[tuple(where)].item()!r} "
            f"at {'row {}, column {}'.format(*where) if targets.ndim == 2 else f'index {tuple(where)}'}"
        )
    return targets.astype(np.float64)


def _masked_inputs(y_true, y_score, names=("y_true", "y_score")) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(positive (N, A), known (N, A), scores (N, A))`` of multi-valued targets with -1 unknown."""
    scores = _group_scores(y_score, names[1])
    targets = _targets(y_true, names[0])
    if targets.ndim != 2:
        raise ValueError(f"{names[0]} must be 2-D (n_samples, n_values) of 1, 0 and -1, got shape {targets.shape}")
    if targets.shape != scores.shape:
        raise ValueError(
            f"{names[0]} has shape {targets.shape} but {names[1]} has shape {scores.shape}; "
            "expected the same (n_samples, n_values)"
        )
    return targets == 1, targets != UNKNOWN, scores


def _single_group_inputs(y_true, y_score, names=("y_true", "y_score")) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(class index (N,), -1 where unknown; scores (N, K))`` from one-hot/all -1 rows or indices."""
    scores = _group_scores(y_score, names[1])
    n_values = scores.shape[1]
    if np.ndim(y_true) == 2:
        targets = _targets(y_true, names[0])
        if targets.shape[1] != n_values:
            raise ValueError(
                f"{names[0]} is one-hot with {targets.shape[1]} columns but {names[1]} has {n_values}; "
                f"expected shape (n_samples, {n_values})"
            )
        unknown = targets == UNKNOWN
        all_unknown = unknown.all(axis=1)
        bad = np.flatnonzero((unknown.any(axis=1) & ~all_unknown)
                             | (~all_unknown & (np.count_nonzero(targets == 1, axis=1) != 1)))
        if bad.size:
            raise ValueError(
                f"{names[0]} row {bad[0]} is {targets[bad[0]].tolist()[:10]}; a single group's row must be one-hot "
                "(exactly one 1, zeros elsewhere) or all -1 (unknown), never a mix of -1 and 0/1"
            )
        index = np.where(all_unknown, -1, np.argmax(targets, axis=1))
    else:
        labels = _numeric(y_true, names[0], "class indices (-1 unknown) or one-hot/all -1 rows")
        if labels.ndim != 1:
            raise ValueError(
                f"{names[0]} must be class indices (n_samples,) or one-hot rows (n_samples, {n_values}), "
                f"got shape {labels.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)) | (labels < -1) | (labels >= n_values))
        if bad.size:
            raise ValueError(
                f"{names[0]} has {labels[bad[0]].item()!r} at row {bad[0]}; expected a class index "
                f"0..{n_values - 1} or -1 (unknown)"
            )
        index = labels.astype(np.int64)
    check_same_length(index, scores, names)
    return index, scores


def _single_group_scores(index: np.ndarray, scores: np.ndarray) -> dict:
    n_samples = len(index)
    known = index >= 0
    n_known = int(np.count_nonzero(known))
    result = {"known": n_known, "coverage": n_known / n_samples if n_samples else float("nan")}
    if n_known == 0:
        return {**result, **{key: float("nan") for key in SINGLE_GROUP_KEYS[2:]}}
    true_index, known_scores = index[known], scores[known]
    n_values = scores.shape[1]
    # scikit-learn's default labels for macro-F1: the classes seen in y_true or in the predictions.
    # classification_prf's "macro" averages over all K columns instead; a value no known row has and
    # no known row is predicted would add a 0 and make a group's score depend on unseen values.
    seen = (np.bincount(true_index, minlength=n_values) > 0) | (
        np.bincount(known_scores.argmax(axis=1), minlength=n_values) > 0)
    per_value_f1 = classification_prf(true_index, known_scores, average=None)[2]
    macro_f1 = float(np.mean(per_value_f1[seen]))
    micro_f1 = float(classification_prf(true_index, known_scores, average="micro")[2])
    hmean_f1 = 0.0 if macro_f1 + micro_f1 == 0 else 2 * macro_f1 * micro_f1 / (macro_f1 + micro_f1)
    return {**result, "accuracy": accuracy(true_index, known_scores), "macro_f1": macro_f1,
            "micro_f1": micro_f1, "hmean_f1": hmean_f1}


def single_group_metrics(y_true, y_score) -> dict:
    """Accuracy and F1 of a single group's arg-max prediction, on the rows whose value is known.

    ``y_true`` is one-hot ``(N, K)`` with all -1 rows where the value is unknown, or class indices
    ``(N,)`` with -1 for unknown; ``y_score`` ``(N, K)`` the group's softmax. Unknown rows are left
    out of every score (their scores are never looked at).

    Returns a dict: ``known`` (rows with a value), ``coverage`` (known / N; NaN for N = 0), and on
    the known rows ``accuracy``, ``macro_f1``, ``micro_f1`` (equal to the accuracy, every row having
    one value) and ``hmean_f1``, the harmonic mean of micro- and macro-F1 (the Meesho Visual Taxonomy
    challenge's per-attribute score; 0 when both are 0). Macro-F1 averages over the values that
    appear in ``y_true`` or in the predictions of the known rows, scikit-learn's default ``labels``
    (``f1_score(y_true, y_pred, average="macro")``), not over all K columns as
    :func:`classification_prf` does. With no known row every score is NaN.

    Examples
    --------
    >>> y_true = np.array([0, 1, -1, 1])               # row 2: no value
    >>> y_score = np.array([[.7, .2, .1], [.6, .3, .1], [.1, .1, .8], [.2, .7, .1]])
    >>> metrics = single_group_metrics(y_true, y_score)
    >>> metrics["known"], metrics["coverage"], round(metrics["accuracy"], 4)
    (3, 0.75, 0.6667)
    >>> round(metrics["macro_f1"], 4), round(metrics["hmean_f1"], 4)  # F1 of values 0 and 1: 2/3, 2/3
    (0.6667, 0.6667)
    """
    return _single_group_scores(*_single_group_inputs(y_true, y_score))


def single_group_confusion(y_true, y_score) -> np.ndarray:
    """Confusion matrix ``(K, K)`` of a single group's arg-max prediction on its known rows (rows = true value).

    Equals ``sklearn.metrics.confusion_matrix(y_true[known], y_score[known].argmax(1), labels=range(K))``;
    inputs as :func:`single_group_metrics`.

    Examples
    --------
    >>> single_group_confusion(np.array([0, 1, -1]), np.array([[.9, .1], [.8, .2], [.3, .7]]))
    array([[1, 0],
           [1, 0]])
    """
    index, scores = _single_group_inputs(y_true, y_score)
    known = index >= 0
    n_values = scores.shape[1]
    cells = index[known] * n_values + scores[known].argmax(axis=1)
    return np.bincount(cells, minlength=n_values * n_values).reshape(n_values, n_values).astype(np.int64)


def _masked_prf(positive: np.ndarray, known: np.ndarray, predicted: np.ndarray, zero_division: float) -> dict:
    """OP, OR, OF1 (micro) and CP, CR, CF1 (per-value averages) counted on the known entries only."""
    if not known.any():
        return dict.fromkeys(_PRF_KEYS, float("nan"))
    predicted = predicted & known
    counts = (np.count_nonzero(predicted & positive, axis=0), np.count_nonzero(predicted, axis=0),
              np.count_nonzero(positive, axis=0))
    micro = _prf_from_counts(*counts, average="micro", zero_division=zero_division)
    macro = _prf_from_counts(*counts, average="macro", zero_division=zero_division)
    return dict(zip(_PRF_KEYS, (float(value) for value in (*micro[:3], *macro[:3]))))


def _masked_average_precision(positive: np.ndarray, known: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AP of each value ``(A,)`` over the rows where it is known; NaN where none of them is positive."""
    per_value = np.full(scores.shape[1], np.nan)
    for start in range(0, scores.shape[1], _LABELS_PER_BLOCK):
        stop = min(start + _LABELS_PER_BLOCK, scores.shape[1])
        blocks = (np.ascontiguousarray(array[:, start:stop].T) for array in (scores, positive, known))
        for offset, (column, is_positive, is_known) in enumerate(zip(*blocks)):
            per_value[start + offset] = _average_precision_of(column[is_known], is_positive[is_known])
    return per_value


def _mean_with_positives(per_value: np.ndarray) -> float:
    with_positives = per_value[~np.isnan(per_value)]
    return float(with_positives.mean()) if with_positives.size else float("nan")


def _multi_group_scores(positive, known, scores, threshold, zero_division: float) -> dict:
    n_samples = len(scores)
    n_known = int(np.count_nonzero(known.any(axis=1)))
    per_value_ap = _masked_average_precision(positive, known, scores)
    return {
        "known": n_known,
        "coverage": n_known / n_samples if n_samples else float("nan"),
        "AP": per_value_ap,
        "mAP": _mean_with_positives(per_value_ap),
        **_masked_prf(positive, known, scores >= threshold, zero_division),
    }


def multi_group_metrics(y_true, y_score, *, threshold: float | np.ndarray = DEFAULT_THRESHOLD,
                        zero_division: float = 0.0) -> dict:
    """AP and thresholded precision/recall/F1 of a multi group, with unknown (-1) entries left out.

    ``y_true`` ``(N, K)`` holds 1 (value present), 0 (absent) and -1 (unknown); ``y_score``
    ``(N, K)`` the group's sigmoids; a value is predicted when its score is at or above
    ``threshold`` (one number, or one per value ``(K,)``).

    Returns a dict: ``known`` (rows with at least one known entry), ``coverage`` (known / N; NaN
    for N = 0), ``AP`` ``(K,)`` (each value's AP over the rows where it is known, as
    ``sklearn.metrics.average_precision_score``; NaN for a value with no positive there), ``mAP``
    (the mean over values with a positive), ``OP``, ``OR``, ``OF1`` (micro over the known entries)
    and ``CP``, ``CR``, ``CF1`` (per-value precision, recall and F1 on each value's known entries,
    averaged over the K values; ``zero_division`` where a denominator is 0), the definitions of
    ``hierarchical_report``'s attribute table. With no known entry every score is NaN.

    Examples
    --------
    >>> y_true = np.array([[1, 0], [0, -1], [1, 1]])       # row 1: value 1 unknown
    >>> y_score = np.array([[.9, .2], [.6, .9], [.4, .8]])
    >>> metrics = multi_group_metrics(y_true, y_score, threshold=0.5)
    >>> metrics["AP"], metrics["mAP"]                      # value 0: (1/1 + 2/3) / 2
    (array([0.83333333, 1.        ]), 0.9166666666666666)
    >>> metrics["OP"], metrics["OR"]    # predicted known: (0,0) (1,0) (2,1); the .9 in row 1 is unknown
    (0.6666666666666666, 0.6666666666666666)
    """
    zero_division = check_zero_division(zero_division)
    positive, known, scores = _masked_inputs(y_true, y_score)
    threshold = check_threshold(threshold, scores.shape[1])
    return _multi_group_scores(positive, known, scores, threshold, zero_division)


def masked_attribute_report(y_true, y_score, *, threshold: float | np.ndarray = DEFAULT_THRESHOLD,
                            zero_division: float = 0.0) -> dict[str, float]:
    """The paper's attribute table (``hierarchical_report(...)["attributes"]``) with unknown (-1) entries left out.

    ``y_true`` ``(N, A)`` holds 1, 0 and -1 (unknown); ``y_score`` ``(N, A)``; ``threshold`` one
    number or one per attribute ``(A,)``. Every key of the unmasked table, each on the known entries:
    OP, OR, OF1 (micro), CP, CR, CF1 (per attribute, averaged), mAP (attributes with a known
    positive), micro_AP (all known entries as one binary problem), n_labels_without_positives,
    n_samples_without_labels (no known positive). P@k, R@k and F1@k are defined on each row's
    known entries: k is the row's number of known positives and its top k are taken among its known
    entries (unknown ones rank last), so a high score on an unknown entry costs nothing; rows
    without a known positive are left out, as unmasked. Without any -1 the table equals the
    unmasked one; with no known entry every score is NaN.

    Examples
    --------
    >>> y_true = np.array([[1, 0, -1], [0, 1, 0]])
    >>> y_score = np.array([[.6, .2, .9], [.1, .8, .3]])
    >>> report = masked_attribute_report(y_true, y_score, threshold=0.5)
    >>> report["OP"], report["P@k"], report["mAP"]   # the .9 is unknown: not a false positive, not ranked
    (1.0, 1.0, 1.0)
    """
    zero_division = check_zero_division(zero_division)
    positive, known, scores = _masked_inputs(y_true, y_score)
    threshold = check_threshold(threshold, scores.shape[1])
    ranked = np.where(known, scores, -1.0)  # below every probability: unknown entries never enter a top k
    return {
        **_masked_prf(positive, known, scores >= threshold, zero_division),
        **dict(zip(("P@k", "R@k", "F1@k"), _precision_recall_at_k(positive, ranked, None))),
        "mAP": _mean_with_positives(_masked_average_precision(positive, known, scores)),
        "micro_AP": _average_precision_of(scores[known], positive[known]),
        "n_labels_without_positives": int(np.count_nonzero(~positive.any(axis=0))),
        "n_samples_without_labels": int(np.count_nonzero(~positive.any(axis=1))),
    }


def _check_groups(groups, n_attributes: int) -> list:
    """``groups`` as a list, each with a known kind, a slice inside the attribute axis and one value per column."""
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise TypeError(f"groups must be a sequence of groups (LabelSpace.groups), got {type(groups).__name__}")
    names = set()
    for position, group in enumerate(groups):
        missing = [field for field in ("name", "kind", "start", "stop", "values") if not hasattr(group, field)]
        if missing:
            raise TypeError(f"groups[{position}] has no {', '.join(missing)}; expected a group like LabelSpace.groups")
        label = f"groups[{position}] ({group.name!r})"
        if group.kind not in GROUP_KINDS:
            raise ValueError(f"{label} has kind {group.kind!r}; expected one of {GROUP_KINDS}")
        bounds = (group.start, group.stop)
        if not all(isinstance(bound, numbers.Integral) for bound in bounds) or not (
                0 <= group.start < group.stop <= n_attributes):
            raise ValueError(f"{label} has slice [{group.start}, {group.stop}), outside the {n_attributes} attribute "
                             f"columns of y_true; expected 0 <= start < stop <= {n_attributes}")
        if len(group.values) != group.stop - group.start:
            raise ValueError(f"{label} has {len(group.values)} values for its {group.stop - group.start} columns "
                             f"[{group.start}, {group.stop}); expected one value per column")
        if group.name in names:
            raise ValueError(f"groups has two groups named {group.name!r}; the report is keyed by group name")
        names.add(group.name)
    return list(groups)


def group_report(y_true, y_score, groups, *, thresholds: float | np.ndarray = DEFAULT_THRESHOLD,
                 zero_division: float = 0.0) -> dict[str, dict]:
    """Each group's metrics on its slice of the attribute axis: ``{name: {"kind": ..., **metrics}}``.

    ``y_true`` and ``y_score`` are the whole attribute level ``(N, A)`` (targets 1, 0, -1 unknown;
    probabilities); ``groups`` the groups (``LabelSpace.groups``: ``name``, ``kind``, ``start``,
    ``stop``, ``values``); ``thresholds`` one number or one per attribute ``(A,)``, sliced per group
    and used by ``multi`` groups. A ``single`` group gets :func:`single_group_metrics`, a ``multi``
    group :func:`multi_group_metrics`, in the order of ``groups``.

    Examples
    --------
    >>> from types import SimpleNamespace as Group
    >>> groups = [Group(name="season", kind="single", start=0, stop=2, values=["Summer", "Winter"]),
    ...           Group(name="tags", kind="multi", start=2, stop=3, values=["Casual"])]
    >>> y_true = np.array([[1, 0, 1], [-1, -1, 0]])
    >>> y_score = np.array([[.8, .2, .9], [.3, .7, .1]])
    >>> report = group_report(y_true, y_score, groups, thresholds=0.5)
    >>> report["season"]["kind"], report["season"]["coverage"], report["tags"]["OP"]
    ('single', 0.5, 1.0)
    """
    zero_division = check_zero_division(zero_division)
    positive, known, scores = _masked_inputs(y_true, y_score)
    try:
        thresholds = check_threshold(thresholds, scores.shape[1])
    except ValueError as error:
        raise ValueError(f"thresholds: {error}") from None
    report = {}
    for group in _check_groups(groups, scores.shape[1]):
        columns = slice(group.start, group.stop)
        if group.kind == "single":
            targets = np.where(known[:, columns], positive[:, columns], UNKNOWN)
            names = (f"y_true[:, {group.start}:{group.stop}] (group {group.name!r})",
                     f"y_score[:, {group.start}:{group.stop}] (group {group.name!r})")
            metrics = _single_group_scores(*_single_group_inputs(targets, scores[:, columns], names))
        else:
            threshold = thresholds if np.ndim(thresholds) == 0 else thresholds[columns]
            metrics = _multi_group_scores(positive[:, columns], known[:, columns], scores[:, columns], threshold,
                                          zero_division)
        report[group.name] = {"kind": group.kind, **metrics}
    return report
