"""Input checks shared by every metric: one clear ValueError naming the argument, row and column.

Each checker returns the input in the form the metrics compute on (float scores, integer class
indices, boolean multi-hot), so a metric checks its inputs once, at the boundary.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from fashion_hier.labels import LEVELS  # noqa: F401  (the levels a report is keyed by)
_AVERAGES = ("micro", "macro", "weighted", None)


def _numeric(value, name: str, expected: str) -> np.ndarray:
    """``value`` as a numpy array of booleans or numbers, or a ValueError naming what was expected."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold {expected}, got dtype {array.dtype}")
    return array


def check_scores(y_score, name: str = "y_score") -> np.ndarray:
    """``y_score`` as a 2-D float array of probabilities, or a ValueError saying what is wrong."""
    scores = _numeric(y_score, name, "numeric probabilities")
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


def check_class_indices(y_true, n_classes: int, name: str = "y_true") -> np.ndarray:
    """Class indices ``(N,)`` from indices or one-hot rows, checked against ``n_classes``."""
    labels = _numeric(y_true, name, "class indices or one-hot rows")
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


def check_multi_hot(y_true, name: str = "y_true") -> np.ndarray:
    """Boolean ``(N, A)`` from a multi-hot 0/1 array."""
    labels = _numeric(y_true, name, "multi-hot 0/1")
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


def check_same_length(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    """One row of ``second`` per row of ``first``."""
    if len(first) != len(second):
        raise ValueError(
            f"{names[0]} has {len(first)} samples but {names[1]} has {len(second)}; expected one score row per sample"
        )


def single_label_inputs(y_true, y_score, names=("y_true", "y_score")) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(class indices (N,), scores (N, C))``; ``names`` are the arguments' names in messages."""
    scores = check_scores(y_score, names[1])
    true_index = check_class_indices(y_true, scores.shape[1], names[0])
    check_same_length(true_index, scores, names)
    return true_index, scores


def multi_label_inputs(y_true, y_score, names=("y_true", "y_score")) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(boolean multi-hot (N, A), scores (N, A))``; ``names`` as in :func:`single_label_inputs`."""
    scores = check_scores(y_score, names[1])
    labels = check_multi_hot(y_true, names[0])
    if labels.shape != scores.shape:
        raise ValueError(
            f"{names[0]} has shape {labels.shape} but {names[1]} has shape {scores.shape}; "
            "expected the same (n_samples, n_labels)"
        )
    return labels, scores


def check_threshold(threshold, n_labels: int) -> float | np.ndarray:
    """A probability, or one probability per label ``(A,)``."""
    values = np.asarray(threshold, dtype=float)
    if values.ndim > 1 or (values.ndim == 1 and values.shape != (n_labels,)):
        raise ValueError(f"threshold must be a number or have shape ({n_labels},), one per label; got shape {values.shape}")
    outside = np.atleast_1d(~((values >= 0.0) & (values <= 1.0)))
    if outside.any():
        raise ValueError(f"threshold must lie in [0, 1], got {np.atleast_1d(values)[outside][:5].tolist()}")
    return float(values) if values.ndim == 0 else values


def check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def check_average(average, averages=_AVERAGES) -> None:
    if average not in averages:
        raise ValueError(f"average must be one of {list(averages)}, got {average!r}")


def check_zero_division(zero_division) -> float:
    try:
        value = float(zero_division)
    except (TypeError, ValueError):
        value = -1.0
    if not (value in (0.0, 1.0) or np.isnan(value)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or np.nan, got {zero_division!r}")
    return value


def two_level_inputs(category_true, subcategory_true, category_score, subcategory_score, names: dict):
    """Checked ``(index, scores)`` of each single-label level; ``names[level]`` = (true name, score name)."""
    category = single_label_inputs(category_true, category_score, names["category"])
    subcategory = single_label_inputs(subcategory_true, subcategory_score, names["subcategory"])
    check_same_length(category[1], subcategory[1], (names["category"][1], names["subcategory"][1]))
    return category, subcategory


def check_parents(parents, n_categories: int, n_subcategories: int) -> np.ndarray:
    """``parents`` ``(S,)``: the category index of each subcategory."""
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


def check_level_keys(mapping, name: str) -> None:
    """``mapping`` is a dict with exactly the keys ``LEVELS``."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a dict keyed {list(LEVELS)}, got {type(mapping).__name__}")
    missing = [level for level in LEVELS if level not in mapping]
    unknown = [key for key in mapping if key not in LEVELS]
    if missing or unknown:
        raise ValueError(f"{name} must have exactly the keys {list(LEVELS)}; missing {missing}, unexpected {unknown}")
