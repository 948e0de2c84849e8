"""report.py without a browser: worst confusions (checked against a Counter), the threshold hint, escaping."""
from __future__ import annotations

import collections

import numpy as np
import pandas as pd

from fashion_hier import report


def test_worst_confusions_match_a_counter():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 300)
    predicted = np.where(rng.random(300) < 0.6, true, rng.integers(0, 5, 300))
    ours = report.worst_confusions(true, predicted, list("abcde"), top=4)
    counts = collections.Counter((int(t), int(p)) for t, p in zip(true, predicted) if t != p)
    assert [n for *_, n in ours] == sorted(counts.values(), reverse=True)[:4]
    assert all(counts[(t, p)] == n for t, p, n in ours)
    assert report.worst_confusions(true, true, list("abcde")) == []


def test_threshold_hint_speaks_only_when_tuning_helps():
    rng = np.random.default_rng(0)
    y_true = (rng.random((200, 3)) < 0.3).astype(np.float32)
    low = np.where(y_true > 0, 0.3, 0.1 + 0.05 * rng.random(y_true.shape))  # all below 0.5: F1 0 at 0.5
    hint = report.threshold_hint(y_true, low, np.full(3, 0.5))
    assert hint is not None and "from 0.0% to about 100.0%" in hint and "--tune-thresholds" in hint
    calibrated = np.where(y_true > 0, 0.9, 0.1)
    assert report.threshold_hint(y_true, calibrated, np.full(3, 0.5)) is None


def test_audit_html_escapes_labels_and_counts_cards(tmp_path):
    shown = pd.DataFrame({"rank": [1, 2], "level": ["subcategory", "attributes"], "column": ["a", "b"],
                          "id": ["1", "2"], "image_path": [str(tmp_path / "missing.jpg")] * 2,
                          "given": ["<script>alert(1)</script>", "Summer"], "suggested": ["Shirts", "-"],
                          "score": [0.01, 0.2]})
    page = report.audit_html(shown, title="t", flagged=2, judged=10)
    assert page.count('class="card"') == 2 and "<script>alert(1)</script>" not in page
    assert page.count("no image") == 2  # an unreadable image is a placeholder, not a crash
