"""thresholds.json: exact round trip by attribute name, and files that do not fit the run are refused."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_hier.thresholds import load_thresholds, read_thresholds_file, save_thresholds

NAMES = ["Casual", "Formal", "Summer"]


def test_thresholds_round_trip_by_name_in_the_callers_order(tmp_path):
    path = save_thresholds(tmp_path / "thresholds.json", [0.3, 0.61, 0.05], NAMES, floor=0.05, cap=0.95, split="validation")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"attributes": {"Casual": 0.3, "Formal": 0.61, "Summer": 0.05},
                    "floor": 0.05, "cap": 0.95, "split": "validation"}
    np.testing.assert_array_equal(load_thresholds(path, NAMES), [0.3, 0.61, 0.05])
    np.testing.assert_array_equal(load_thresholds(path, ["Summer", "Casual", "Formal"]), [0.05, 0.3, 0.61])
    assert read_thresholds_file(path)["split"] == "validation"


def test_thresholds_for_other_attributes_are_refused(tmp_path):
    path = save_thresholds(tmp_path / "thresholds.json", [0.3, 0.6, 0.5], NAMES)
    with pytest.raises(ValueError, match=r"missing: \['Winter'\], unknown: \['Summer'\]"):
        load_thresholds(path, ["Casual", "Formal", "Winter"])


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ('{"attributes": [0.5, 0.5, 0.5]}', "'attributes': {name: threshold}"),
    ('{"attributes": {"Casual": 1.5, "Formal": 0.5, "Summer": 0.5}}', r"must lie in \[0, 1\], got \[1.5\]"),
    ('{"attributes": {"Casual": "high", "Formal": 0.5, "Summer": 0.5}}', "must be a number"),
])
def test_malformed_thresholds_files_name_the_file_and_the_fix(tmp_path, content, message):
    path = tmp_path / "thresholds.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        load_thresholds(path, NAMES)
    assert str(path) in str(error.value)


def test_saving_refuses_a_threshold_per_attribute_mismatch(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        save_thresholds(tmp_path / "t.json", [0.5, 0.5], NAMES)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        save_thresholds(tmp_path / "t.json", [0.5, np.nan, 0.5], NAMES)
