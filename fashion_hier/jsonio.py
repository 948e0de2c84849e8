"""JSON files the library writes (metrics, run records): strict JSON, undefined metrics as null; read back checked."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fashion_hier.atomic import atomic_write_text
from fashion_hier.errors import DamagedFileError


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


def read_json(path: str | Path, *, remedy: str, keys: Sequence[str] = ()) -> Any:
    """The JSON data in ``path``, a file the library wrote; unreadable JSON is a ``DamagedFileError``.

    The one reader of manifests, index records and backup states, so that a truncated or overwritten
    one is a line naming the file and ``remedy`` (what to do), not a bare ``JSONDecodeError``.
    ``keys``: the top-level keys the file must hold (then it must be a JSON object).
    A missing file stays a ``FileNotFoundError``: callers decide what absence means.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise DamagedFileError(path, "not UTF-8 text", remedy) from None
    except json.JSONDecodeError as error:
        raise DamagedFileError(path, "empty" if not text.strip() else f"not valid JSON: {error}", remedy) from None
    if keys:
        missing = [key for key in keys if not isinstance(data, dict) or key not in data]
        if missing:
            raise DamagedFileError(path, f"no {', '.join(map(repr, missing))} in it", remedy)
    return data
