"""Per-label attribute thresholds: the default, and the one reader and writer of a run's thresholds file.

``evaluate --tune-thresholds`` writes ``RunDir.thresholds``, ``Predictor`` and ``evaluate`` read it. Thresholds
are keyed by attribute name, so a file that does not match the run's label space is refused
instead of silently applied to the wrong columns.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashion_hier.atomic import atomic_write_text

DEFAULT_THRESHOLD = 0.75  # the paper's attribute threshold; the one definition, imported everywhere
DEFAULT_FLOOR = 0.05  # bounds of tuned thresholds: one lucky validation sample cannot push a label to 0 or 1
DEFAULT_CAP = 0.95


def save_thresholds(
    path: str | Path,
    thresholds: Sequence[float] | np.ndarray,
    attribute_names: Sequence[str],
    *,
    floor: float | None = None,
    cap: float | None = None,
    split: str | None = None,
) -> Path:
    """Write ``{"attributes": {name: threshold}, "floor", "cap", "split"}`` as indented JSON."""
    path = Path(path)
    values = np.asarray(thresholds, dtype=float)
    names = list(attribute_names)
    if values.shape != (len(names),):
        raise ValueError(f"thresholds must have shape ({len(names)},) — one per attribute, got {values.shape}")
    _check_range(values, f"thresholds for {path}")
    data: dict[str, Any] = {
        "attributes": {name: float(value) for name, value in zip(names, values)},
        "floor": floor,
        "cap": cap,
        "split": split,
    }
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_thresholds_file(path: str | Path) -> dict[str, Any]:
    """The whole thresholds file (thresholds by name plus how they were tuned)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); rewrite it with fashion-hier evaluate --tune-thresholds") from error
    if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
        raise ValueError(
            f"{path}: expected an object with 'attributes': {{name: threshold}}; "
            "rewrite it with fashion-hier evaluate --tune-thresholds"
        )
    return data


def load_thresholds(path: str | Path, attribute_names: Sequence[str]) -> np.ndarray:
    """Thresholds (A,) in the order of ``attribute_names``; names must match the file exactly."""
    path = Path(path)
    by_name = read_thresholds_file(path)["attributes"]
    names = list(attribute_names)
    missing = [name for name in names if name not in by_name]
    extra = [name for name in by_name if name not in set(names)]
    if missing or extra:
        raise ValueError(
            f"{path}: thresholds do not match the run's attributes (missing: {missing}, unknown: {extra}); "
            "re-tune them for this run with fashion-hier evaluate --tune-thresholds"
        )
    try:
        values = np.array([float(by_name[name]) for name in names], dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: every threshold must be a number ({error})") from error
    _check_range(values, str(path))
    return values


def _check_range(values: np.ndarray, where: str) -> None:
    bad = [float(v) for v in values if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
    if bad:
        raise ValueError(f"{where}: thresholds must lie in [0, 1], got {bad[:5]}")
