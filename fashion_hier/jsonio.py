"""JSON files the library writes (metrics, run records): strict JSON, undefined metrics as null."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from fashion_hier.atomic import atomic_write_text


def to_json_data(value: Any) -> Any:
    """Plain JSON data: numpy scalars/arrays to Python, NaN (an undefined metric) to null."""
    if isinstance(value, dict):
        return {str(key): to_json_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json_data(item) for item in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` (converted by ``to_json_data``) as indented UTF-8 JSON, atomically; NaN never slips through."""
    return atomic_write_text(path, json.dumps(to_json_data(data), indent=2, ensure_ascii=False, allow_nan=False)
                             + "\n")
