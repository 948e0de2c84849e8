"""Hierarchical precision, recall and F1 over the category -> subcategory tree (Kiritchenko et al. 2006).

A wrong subcategory under the right category is half right, not wrong: each sample's true and
predicted label sets are augmented with their ancestors and compared as sets (section 3 of
Kiritchenko, Matwin, Nock and Famili, "Learning and evaluation in the presence of class hierarchies",
Canadian AI 2006). A prediction may stop at the category (subcategory ``-1``: the subcategory is
left for a person), which is how selective prediction scores what it keeps. The tests check
every value against ``hiclass.metrics``.
"""
from __future__ import annotations

import logging

import numpy as np

from fashion_hier.metrics.checks import (
    check_average,
    check_class_indices,
    check_parents,
    check_same_length,
    check_scores,
    check_zero_division,
)

logger = logging.getLogger(__name__)

STOPPED = -1  # a predicted subcategory of -1: the prediction stops at the category


def _predicted_index(y_pred, n_classes: int, name: str, *, allow_stop: bool) -> np.ndarray:
    """Class indices ``(N,)`` from indices, or from scores ``(N, K)`` by arg-max; ``-1`` kept if allowed."""
    array = np.asarray(y_pred)
    if array.ndim == 2:
        scores = check_scores(array, name)
        if scores.shape[1] != n_classes:
            raise ValueError(f"{name} has {scores.shape[1]} score columns, expected {n_classes} (one per class)")
        return scores.argmax(axis=1)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be class indices (n_samples,) or scores (n_samples, n_classes), got shape {array.shape}"
        )
    if not allow_stop or array.dtype.kind not in "iuf":
        return check_class_indices(array, n_classes, name)
    stopped = array == STOPPED
    try:
        indices = check_class_indices(np.where(stopped, 0, array), n_classes, name)
    except ValueError as error:
        raise ValueError(f"{error}; or {STOPPED} where the prediction stops at the category") from None
    return np.where(stopped, STOPPED, indices)


def _tree(parents, category_pred, n_categories: int | None) -> tuple[np.ndarray, int]:
    """Checked ``parents`` and the number of categories (from the scores, the argument or the tree)."""
    parents_array = np.asarray(parents)
    if parents_array.ndim != 1 or parents_array.size == 0:
        raise ValueError(
            f"parents must be a non-empty 1-D array (LabelSpace.parent_index), got shape {parents_array.shape}"
        )
    width = np.shape(category_pred)[1] if np.ndim(category_pred) == 2 else None
    if width is not None and n_categories is not None and width != n_categories:
        raise ValueError(f"category_pred has {width} score columns but n_categories is {n_categories}")
    if parents_array.dtype.kind in "iu":
        default = int(parents_array.max()) + 1
    else:
        default = 0  # check_parents names the wrong dtype
    n_categories = width or n_categories or default
    return check_parents(parents_array, n_categories, len(parents_array)), n_categories


def _set_sizes(category_true, subcategory_true, category_pred, subcategory_pred, parents):
    """Per sample ``(|P∩T|, |P|, |T|)`` of the ancestor-augmented sets.

    Nodes are (level, index) pairs, so a subcategory never coincides with a category. T is
    {true category, true subcategory, its parent}; P is {predicted category} plus, unless the
    prediction stopped, {predicted subcategory, its parent}. Either set holds a third node when a
    subcategory's parent is not the category beside it (an inconsistent prediction, or a
    catalogue row filed under a category other than its subcategory's majority parent).
    """
    true_parent = parents[subcategory_true]
    predicted = subcategory_pred != STOPPED
    predicted_parent = np.where(predicted, parents[np.where(predicted, subcategory_pred, 0)], STOPPED)
    true_size = 2 + (true_parent != category_true).astype(np.int64)
    extra_predicted = predicted & (predicted_parent != category_pred)  # a second predicted category
    predicted_size = 1 + predicted.astype(np.int64) + extra_predicted

    def in_true_categories(category: np.ndarray) -> np.ndarray:
        return (category == category_true) | (category == true_parent)

    common = (
        in_true_categories(category_pred).astype(np.int64)  # int: numpy adds booleans as a logical or
        + (extra_predicted & in_true_categories(predicted_parent))
        + (predicted & (subcategory_pred == subcategory_true))
    )
    return common, predicted_size, true_size


def _f1(precision, recall, zero_division: float):
    precision, recall = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    total = precision + recall
    return np.where(total == 0, zero_division, 2 * precision * recall / np.where(total == 0, 1.0, total))


def hierarchical_prf(
    category_true,
    subcategory_true,
    category_pred,
    subcategory_pred,
    parents,
    *,
    n_categories: int | None = None,
    average: str = "micro",
    zero_division: float = 0.0,
) -> tuple[float, float, float]:
    """Hierarchical precision hP, recall hR and F1 hF of category/subcategory predictions.

    Each sample's true and predicted sets are augmented with their ancestors (T̂, P̂; see
    ``_set_sizes``). ``"micro"`` sums over samples: hP = Σ|P̂∩T̂| / Σ|P̂|, hR = Σ|P̂∩T̂| / Σ|T̂|,
    hF = 2·hP·hR / (hP + hR). ``"macro"`` averages per sample, exactly as ``hiclass.metrics``
    (version 5): hP and hR are the means of each sample's |P̂∩T̂|/|P̂| and |P̂∩T̂|/|T̂|, and hF is
    the mean of each sample's F1 (not the F1 of the macro hP and hR).

    ``category_true`` and ``subcategory_true`` are class indices (or one-hot rows);
    ``category_pred`` and ``subcategory_pred`` are class indices or score matrices (arg-max
    taken). A predicted subcategory of ``-1`` stops at the category: P̂ is the category alone,
    so precision is unharmed and recall loses the subcategory. ``parents`` ``(S,)`` is the
    category of each subcategory (``LabelSpace.parent_index``); the number of categories comes
    from ``category_pred``'s columns, else ``n_categories``, else ``parents.max() + 1``.

    ``zero_division`` is hF where hP + hR = 0 (no node in common); hP and hR never divide by
    zero, as P̂ and T̂ are never empty. Equal to hiclass with its default ``"warn"`` for 0.0 and
    for 1.0; with ``np.nan``, macro hF leaves those samples out (this package's rule) where
    hiclass returns NaN. To reproduce hiclass, give it label paths whose names are unique
    across levels: it compares names, so a subcategory named like its category (``Watches``
    under ``Watches``) would count once there and twice here.

    Examples
    --------
    >>> parents = np.array([0, 0, 1])          # subcategories 0 and 1 under category 0, 2 under 1
    >>> category_true, subcategory_true = [0, 0, 1], [0, 0, 2]
    >>> category_pred, subcategory_pred = [0, 0, 1], [0, 1, -1]   # right; wrong sibling; stopped
    >>> hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents)
    (0.8, 0.6666666666666666, 0.7272727272727272)
    >>> hierarchical_prf(category_true, subcategory_true, category_pred, subcategory_pred, parents,
    ...                  average="macro")   # per sample P = (1, 1/2, 1), R = (1, 1/2, 1/2), F = (1, 1/2, 2/3)
    (0.8333333333333334, 0.6666666666666666, 0.7222222222222222)
    """
    check_average(average, ("micro", "macro"))
    zero_division = check_zero_division(zero_division)
    parents, n_categories = _tree(parents, category_pred, n_categories)
    n_subcategories = len(parents)
    category_true = check_class_indices(category_true, n_categories, "category_true")
    subcategory_true = check_class_indices(subcategory_true, n_subcategories, "subcategory_true")
    category_pred = _predicted_index(category_pred, n_categories, "category_pred", allow_stop=False)
    subcategory_pred = _predicted_index(subcategory_pred, n_subcategories, "subcategory_pred", allow_stop=True)
    for other, name in ((subcategory_true, "subcategory_true"), (category_pred, "category_pred"),
                        (subcategory_pred, "subcategory_pred")):
        check_same_length(category_true, other, ("category_true", name))
    if len(category_true) == 0:
        raise ValueError("hierarchical_prf needs at least one sample, got 0")

    misfiled = np.count_nonzero(parents[subcategory_true] != category_true)
    if misfiled:
        logger.info("hierarchical_prf: %d of %d true rows are filed under a category other than their "
                    "subcategory's parent in the tree; their true sets hold both categories", misfiled,
                    len(category_true))
    common, predicted, true = _set_sizes(category_true, subcategory_true, category_pred, subcategory_pred, parents)
    if average == "micro":
        precision, recall = common.sum() / predicted.sum(), common.sum() / true.sum()
        return float(precision), float(recall), float(_f1(precision, recall, zero_division))
    precision, recall = common / predicted, common / true
    f1 = _f1(precision, recall, zero_division)
    f1 = f1[~np.isnan(f1)]
    return float(precision.mean()), float(recall.mean()), float(f1.mean()) if f1.size else float("nan")
