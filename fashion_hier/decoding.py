"""Scores to a catalogue entry: names, scores, thresholded attributes, and what is left for a person.

The one decoder behind ``HierarchicalClassifier.decode`` (and so ``Predictor``, ``predict``, Spark): the
arg-max (or the joint best category/subcategory pair), attributes at or above their thresholds, best first,
and a level whose score is below its confidence left empty with the row marked ``needs_review``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from fashion_hier.labels import IMAGE_PATH

PREDICTION_COLUMNS = (IMAGE_PATH, "category", "category_score", "subcategory", "subcategory_score",
                      "attributes", "attribute_scores", "needs_review")
SCORE_SUFFIX = "_score"  # a group's score column: season -> season_score, as category -> category_score


def prediction_columns(label_space=None) -> tuple[str, ...]:
    """The columns of a decoded table: ``PREDICTION_COLUMNS`` for the flat tag set; with attribute columns,
    per group its value (``multi``: "|"-joined, best first) and its score, in place of ``attributes``."""
    if label_space is None or not label_space.grouped:
        return PREDICTION_COLUMNS
    groups = [column for group in label_space.groups for column in (group.name, group.name + SCORE_SUFFIX)]
    return (*PREDICTION_COLUMNS[:5], *groups, "needs_review")


def decode_scores(scores: dict[str, np.ndarray], label_space, thresholds: np.ndarray,
                  min_confidence: dict[str, float | None], image_paths: Sequence[str | None] | None = None, *,
                  consistent: bool = False) -> pd.DataFrame:
    """One row per sample: ``PREDICTION_COLUMNS``.

    ``min_confidence``: below its value a level is left empty for a person ("stop at the category"; no
    category, no subcategory), its score kept, and ``needs_review`` is True.
    """
    category_probs, subcategory_probs = scores["category"], scores["subcategory"]
    if consistent:
        category, subcategory = consistent_decode(category_probs, subcategory_probs, label_space.parent_index)
    else:
        category, subcategory = category_probs.argmax(axis=1), subcategory_probs.argmax(axis=1)
    rows = np.arange(len(category))
    if label_space.grouped:
        attribute_table = group_columns(scores["attributes"], thresholds, label_space, category)
    else:
        attributes, attribute_scores = attribute_columns(scores["attributes"], thresholds, label_space.attributes)
        attribute_table = {"attributes": attributes, "attribute_scores": attribute_scores}
    category_score, subcategory_score = category_probs[rows, category], subcategory_probs[rows, subcategory]
    category_sure = category_score >= (min_confidence.get("category") or 0.0)
    subcategory_sure = category_sure & (subcategory_score >= (min_confidence.get("subcategory") or 0.0))
    return pd.DataFrame({
        IMAGE_PATH: list(image_paths) if image_paths is not None else [None] * len(rows),
        "category": _kept(label_space.decode_category(category), category_sure),
        "category_score": category_score,
        "subcategory": _kept(label_space.decode_subcategory(subcategory), subcategory_sure),
        "subcategory_score": subcategory_score,
        **attribute_table,
        "needs_review": ~subcategory_sure,
    })


def group_columns(scores: np.ndarray, thresholds: np.ndarray, label_space, category: np.ndarray) -> dict[str, list]:
    """Per attribute group, its answer and score per row; None (and a NaN score) where the group does not
    apply to the row's predicted ``category`` (indices), consistent with the hierarchy.

    ``single``: the arg-max value and its probability. ``multi``: the values at or above their thresholds,
    best first, "|"-joined, with their scores likewise (empty when none reaches its threshold).
    """
    category = np.asarray(category, dtype=int)
    applies = label_space.applicability()[category]  # (N, G)
    scores = category_scores(scores, category, label_space)
    table: dict[str, list] = {}
    for j, group in enumerate(label_space.groups):
        block = scores[:, group.slice]
        if group.kind == "single":
            best = block.argmax(axis=1)
            values = [group.values[i] for i in best]
            score = block[np.arange(len(block)), best]
            table[group.name] = [v if ok else None for v, ok in zip(values, applies[:, j])]
            table[group.name + SCORE_SUFFIX] = np.where(applies[:, j], score, np.nan)
        else:
            values, value_scores = attribute_columns(block, thresholds[group.slice], group.values)
            table[group.name] = [v if ok else None for v, ok in zip(values, applies[:, j])]
            table[group.name + SCORE_SUFFIX] = [v if ok else None for v, ok in zip(value_scores, applies[:, j])]
    return table


def consistent_decode(category_probs: np.ndarray, subcategory_probs: np.ndarray,
                      parent_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint best (category, subcategory) pair per row: argmax over s of p_cat[parent(s)] * p_sub[s].

    The chosen subcategory then always belongs to the chosen category.
    """
    category_probs, subcategory_probs = np.asarray(category_probs), np.asarray(subcategory_probs)
    parent_index = np.asarray(parent_index, dtype=int)
    if (category_probs.ndim != 2 or subcategory_probs.ndim != 2 or len(category_probs) != len(subcategory_probs)
            or parent_index.shape != (subcategory_probs.shape[1],)):
        raise ValueError(f"expected category (N, C), subcategory (N, S) and parent_index (S,); got "
                         f"{category_probs.shape}, {subcategory_probs.shape} and {parent_index.shape}")
    if parent_index.size and (parent_index.min() < 0 or parent_index.max() >= category_probs.shape[1]):
        raise ValueError(f"parent_index values must lie in [0, {category_probs.shape[1] - 1}]")
    joint = category_probs[:, parent_index] * subcategory_probs
    subcategory = joint.argmax(axis=1)
    return parent_index[subcategory], subcategory


def category_scores(scores: np.ndarray, category: np.ndarray, label_space) -> np.ndarray:
    """Attribute scores limited to the values each row's ``category`` (indices) can have (``value_mask``):
    others 0, each ``single`` group renormalised over what is left — a column whose meaning depends on the
    category never answers another category's value. The flat tag set is returned unchanged."""
    scores = np.asarray(scores)
    if not label_space.grouped:
        return scores
    limited = np.where(label_space.value_mask()[np.asarray(category, dtype=int)], scores, 0).astype(scores.dtype)
    for group in label_space.groups:
        if group.kind == "single":
            total = limited[:, group.slice].sum(axis=1, keepdims=True)
            limited[:, group.slice] = np.divide(limited[:, group.slice], total, out=np.zeros_like(limited[:, group.slice]),
                                                where=total > 0)
    return limited


def attribute_columns(scores: np.ndarray, thresholds: np.ndarray, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Per row, the attributes at or above threshold ("|"-joined, best first) and their scores, same order."""
    joined_names, joined_scores = [], []
    for row in scores:
        chosen = [j for j in np.argsort(-row, kind="stable") if row[j] >= thresholds[j]]
        joined_names.append("|".join(names[j] for j in chosen))
        joined_scores.append("|".join(f"{row[j]:.4f}" for j in chosen))
    return joined_names, joined_scores


def _kept(names: Sequence[str], sure: np.ndarray) -> list[str | None]:
    """The names where the model is sure enough, None (an empty cell, for a person) elsewhere."""
    return [name if ok else None for name, ok in zip(names, sure)]
