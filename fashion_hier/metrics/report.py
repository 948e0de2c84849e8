"""The paper's table for one set of predictions (``hierarchical_report``) and per-class tables.

Inputs are checked once here, naming the level; the numbers come from the public metric functions.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fashion_hier.metrics.checks import (
    LEVELS,
    check_level_keys,
    check_parents,
    check_same_length,
    check_threshold,
    check_zero_division,
    multi_label_inputs,
    single_label_inputs,
    two_level_inputs,
)
from fashion_hier.metrics.classification import accuracy, classification_prf, hierarchy_metrics, multilabel_prf
from fashion_hier.metrics.ranking import average_precision, precision_recall_at_k, top_k_accuracy
from fashion_hier.thresholds import DEFAULT_THRESHOLD

SINGLE_LABEL_KEYS = ("OP", "OR", "OF1", "CP", "CR", "CF1", "accuracy", "top5_accuracy")
ATTRIBUTE_KEYS = ("OP", "OR", "OF1", "CP", "CR", "CF1", "P@k", "R@k", "F1@k", "mAP", "micro_AP")
HIERARCHY_KEYS = ("consistency", "joint_accuracy")


def _single_label_report(true_index: np.ndarray, scores: np.ndarray, zero_division: float) -> dict[str, float]:
    weighted = classification_prf(true_index, scores, average="weighted", zero_division=zero_division)
    macro = classification_prf(true_index, scores, average="macro", zero_division=zero_division)
    return {
        **dict(zip(SINGLE_LABEL_KEYS[:6], (*weighted[:3], *macro[:3]))),
        "accuracy": accuracy(true_index, scores),
        "top5_accuracy": top_k_accuracy(true_index, scores, k=5),
    }


def _attribute_report(labels: np.ndarray, scores: np.ndarray, threshold, zero_division: float) -> dict[str, float]:
    micro = multilabel_prf(labels, scores, threshold=threshold, average="micro", zero_division=zero_division)
    macro = multilabel_prf(labels, scores, threshold=threshold, average="macro", zero_division=zero_division)
    return {
        **dict(zip(ATTRIBUTE_KEYS[:6], (*micro[:3], *macro[:3]))),
        **dict(zip(("P@k", "R@k", "F1@k"), precision_recall_at_k(labels, scores))),
        "mAP": average_precision(labels, scores, average="macro"),
        "micro_AP": average_precision(labels, scores, average="micro"),
        "n_labels_without_positives": int(np.count_nonzero(~labels.any(axis=0))),
        "n_samples_without_labels": int(np.count_nonzero(~labels.any(axis=1))),
    }


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
    check_level_keys(y_true, "y_true")
    check_level_keys(y_score, "y_score")
    zero_division = check_zero_division(zero_division)
    names = {level: (f"y_true[{level!r}]", f"y_score[{level!r}]") for level in LEVELS}
    category, subcategory = two_level_inputs(
        y_true["category"], y_true["subcategory"], y_score["category"], y_score["subcategory"], names
    )
    labels, scores = multi_label_inputs(y_true["attributes"], y_score["attributes"], names["attributes"])
    check_same_length(category[1], scores, (names["category"][1], names["attributes"][1]))
    threshold = check_threshold(threshold, scores.shape[1])
    if parents is not None:
        parents = check_parents(parents, category[1].shape[1], subcategory[1].shape[1])
    report = {
        "category": _single_label_report(*category, zero_division),
        "subcategory": _single_label_report(*subcategory, zero_division),
        "attributes": _attribute_report(labels, scores, threshold, zero_division),
    }
    if parents is not None:
        consistency_and_joint = hierarchy_metrics(category[0], subcategory[0], category[1], subcategory[1], parents)
        report["hierarchy"] = dict(zip(HIERARCHY_KEYS, consistency_and_joint))
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
    zero_division = check_zero_division(zero_division)
    if multilabel:
        labels, scores = multi_label_inputs(y_true, y_score)
        prf = multilabel_prf(labels, scores, threshold=threshold, average=None, zero_division=zero_division)
    else:
        labels, scores = single_label_inputs(y_true, y_score)
        prf = classification_prf(labels, scores, average=None, zero_division=zero_division)
    names = list(names)
    if len(names) != scores.shape[1]:
        raise ValueError(f"names has {len(names)} entries but y_score has {scores.shape[1]} columns; expected one name per column")
    precision, recall, f1, support = prf
    table = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)},
        index=pd.Index(names, name="class"),
    )
    if multilabel:
        table.insert(3, "AP", average_precision(labels, scores, average=None))
    return table
