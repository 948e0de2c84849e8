import json
import math

import numpy as np

from fashion_hier.jsonio import to_json_data, write_json


def test_numpy_values_become_plain_json_and_nan_becomes_null(tmp_path):
    data = {"accuracy": np.float32(0.5), "count": np.int64(3), "flags": np.array([True, False]),
            "undefined": float("nan"), "nested": {1: [np.float64(math.nan), 2.0]}}
    path = write_json(tmp_path / "metrics.json", data)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "accuracy": 0.5, "count": 3, "flags": [True, False], "undefined": None, "nested": {"1": [None, 2.0]}}
    assert to_json_data((np.float64(0.25),)) == [0.25]
