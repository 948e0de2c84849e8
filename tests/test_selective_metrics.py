"""Accuracy-coverage curve and the confidence that reaches a target accuracy, against a brute-force oracle."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

from fashion_hier.metrics import selective
from fashion_hier.metrics.selective import accuracy_coverage_curve, confidence_for_accuracy, coverage_at_accuracies


def _data(seed: int, n: int = 300, classes: int = 6, decimals: int | None = 2):
    rng = np.random.default_rng(seed)
    scores = rng.dirichlet(np.full(classes, 0.5), size=n)
    if decimals is not None:  # ties in the top score, which a threshold cannot split
        scores = np.round(scores, decimals)
    truth = np.where(rng.random(n) < scores.max(axis=1), scores.argmax(axis=1), rng.integers(0, classes, n))
    return truth, scores


def _brute_force(truth, scores, threshold):
    accepted = scores.max(axis=1) >= threshold
    if not accepted.any():
        return 0.0, np.nan
    return accepted.mean(), (scores.argmax(axis=1)[accepted] == truth[accepted]).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_every_point_of_the_curve_equals_accepting_the_rows_at_or_above_its_threshold(seed, decimals):
    truth, scores = _data(seed, decimals=decimals)
    curve = accuracy_coverage_curve(truth, scores)
    assert len(curve.threshold) == len(np.unique(scores.max(axis=1)))
    assert np.all(np.diff(curve.threshold) < 0) and curve.coverage[-1] == 1.0
    for threshold, coverage, accuracy in zip(*curve):
        assert (coverage, accuracy) == pytest.approx(_brute_force(truth, scores, threshold))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("target", [0.6, 0.8, 0.95, 0.99])
def test_the_chosen_confidence_is_the_largest_coverage_reaching_the_target(seed, target):
    truth, scores = _data(seed)
    threshold, coverage = confidence_for_accuracy(truth, scores, target)
    candidates = [(coverage_, t) for t in np.unique(scores.max(axis=1))
                  for coverage_, accuracy in [_brute_force(truth, scores, t)] if accuracy >= target]
    best_coverage, best_threshold = max(candidates, default=(0.0, None))
    assert coverage == pytest.approx(best_coverage) and threshold == best_threshold


def test_an_unreachable_target_gives_no_confidence_and_no_coverage():
    truth = np.array([1, 1])  # both predictions (class 0) wrong
    scores = np.array([[.9, .1], [.6, .4]])
    assert confidence_for_accuracy(truth, scores, 0.5) == (None, 0.0)
    assert coverage_at_accuracies(truth, scores, (0.95,)) == {0.95: {"min_confidence": None, "coverage": 0.0}}


@pytest.mark.parametrize("target", [0, -0.1, 1.5])
def test_a_target_outside_zero_one_is_refused(target):
    with pytest.raises(ValueError, match="target_accuracy must lie in"):
        confidence_for_accuracy([0], [[1.0, 0.0]], target)


def test_docstring_examples_hold():
    assert doctest.testmod(selective).failed == 0


def test_the_accuracy_coverage_plot_draws_each_levels_curve_and_the_targets(tmp_path, monkeypatch):
    from fashion_hier import plots

    drawn = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: (drawn.append(figure), real_save(figure, path))[1])
    levels = {"category": _data(0, classes=3), "subcategory": _data(1)}
    path = plots.plot_accuracy_coverage(levels, tmp_path / "curve.png", targets=(0.9, 0.95))
    assert path.is_file() and path.stat().st_size > 0
    (axes,) = drawn[0].axes
    curves = {line.get_label(): line for line in axes.get_lines() if not line.get_label().startswith("_")}
    for level, (truth, scores) in levels.items():
        expected = accuracy_coverage_curve(truth, scores)
        np.testing.assert_allclose(curves[level].get_xdata(), expected.coverage)
        np.testing.assert_allclose(curves[level].get_ydata(), expected.accuracy)
    targets = sorted(line.get_ydata()[0] for line in axes.get_lines() if line.get_label().startswith("_"))
    assert targets == [0.9, 0.95]
    assert axes.get_xlabel().startswith("coverage") and axes.get_ylabel().startswith("accuracy")
