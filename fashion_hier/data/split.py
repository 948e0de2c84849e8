"""Stratified train/validation/test split of a catalogue frame, reproducible from a seed.

Two scikit-learn ``train_test_split`` calls with ``stratify``: first the test rows are split off,
then the validation rows. scikit-learn cannot stratify a class with a single member, nor a
split smaller than the number of classes, so each step applies a stated rule (see ``RULES``)
and the report says which classes and what was done.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
from sklearn.model_selection import train_test_split

from fashion_hier.rundir import SPLIT_NAMES

RULES = {
    "single_member_classes": "a class with one member left when a split is taken cannot be stratified: "
                             "its row stays on the train side (so a 1-row class goes to train, and a "
                             "2-row class to train plus at most one of validation/test)",
    "too_many_classes": "when a split would hold fewer rows than there are classes, stratification is "
                        "impossible: that split is drawn at random (unstratified) instead",
}


@dataclass
class Splits:
    """The three frames (rows in their original order) and a report of what the split did."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def split_frame(
    frame: pd.DataFrame,
    column: str,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    seed: int = 0,
) -> Splits:
    """Split ``frame`` into train/validation/test with ``fractions``, stratified on ``column``."""
    if column not in frame.columns:
        raise KeyError(f"cannot stratify on {column!r}: not a column (columns: {list(frame.columns)})")
    train_fraction, validation_fraction, test_fraction = _check_fractions(fractions)
    if frame[column].isna().any():
        raise ValueError(f"column {column!r} has {int(frame[column].isna().sum())} missing values; drop those rows before splitting")
    steps: dict[str, dict[str, Any]] = {}
    rest, test = _take_split(frame, column, test_fraction, seed, steps, "test")
    remaining = train_fraction + validation_fraction
    train, validation = _take_split(rest, column, validation_fraction / remaining, seed, steps, "validation")
    parts = {name: part.sort_index() for name, part in zip(SPLIT_NAMES, (train, validation, test))}
    report = {
        "by": column,
        "fractions": dict(zip(SPLIT_NAMES, (train_fraction, validation_fraction, test_fraction))),
        "seed": seed,
        "sizes": {name: len(part) for name, part in parts.items()},
        "steps": steps,
        "rules": RULES,
    }
    return Splits(**parts, report=report)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(v < 0 for v in values) or values[0] <= 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"fractions must be (train, validation, test), non-negative, train > 0, summing to 1; got {tuple(fractions)}"
        )
    return values  # type: ignore[return-value]


def _take_split(frame: pd.DataFrame, column: str, fraction: float, seed: int,
                steps: dict[str, dict[str, Any]], name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``fraction`` of ``frame`` off as ``name``, stratified where scikit-learn can; log the step."""
    if fraction == 0 or frame.empty:
        steps[name] = {"stratified": False, "reason": "empty split"}
        return frame, frame.iloc[:0]
    counts = frame[column].value_counts()
    single = sorted(counts.index[counts == 1])
    kept_back = frame[column].isin(single)
    candidates = frame.loc[~kept_back]
    size = math.ceil(fraction * len(candidates))  # scikit-learn's own rounding of test_size
    stratifiable = counts.size - len(single) <= min(size, len(candidates) - size)
    if len(candidates) < 2:
        steps[name] = {"stratified": False, "single_member_classes": single, "reason": "too few rows to split"}
        return frame, frame.iloc[:0]
    keep, taken = train_test_split(
        candidates, test_size=fraction, random_state=seed,
        stratify=candidates[column] if stratifiable else None,
    )
    steps[name] = {"stratified": stratifiable, "single_member_classes": single}
    if not stratifiable:
        steps[name]["reason"] = RULES["too_many_classes"]
    return pd.concat([keep, frame.loc[kept_back]]), taken
