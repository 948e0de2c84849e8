"""The reliability diagram shows the computed bins: bar heights, widths and counts read back from the figure."""
import numpy as np
import pytest
from matplotlib.lines import Line2D
from PIL import Image
from scipy.special import softmax

from fashion_hier import plots
from fashion_hier.metrics import expected_calibration_error, reliability_curve


@pytest.fixture
def drawn_figures(monkeypatch):
    """Every figure ``plots`` saves, kept for inspection (the PNG is still written)."""
    figures = []
    save = plots._save

    def keep(figure, path):
        figures.append(figure)
        return save(figure, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def over_confident_scores(seed=0, n_samples=600, n_classes=6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_samples, n_classes)) * 1.5
    probabilities = softmax(logits, axis=1)
    labels = (rng.random((n_samples, 1)) > np.cumsum(probabilities, axis=1)).sum(axis=1)
    return np.minimum(labels, n_classes - 1), softmax(logits * 2.5, axis=1)


def bars(axes, label):
    (container,) = [c for c in axes.containers if c.get_label() == label]
    return container.patches


def panels(figure):
    (reliability,) = [a for a in figure.axes if a.get_ylabel() == "accuracy"]
    (histogram,) = [a for a in figure.axes if a.get_ylabel() == "samples"]
    return reliability, histogram


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_bars_are_the_per_bin_accuracies_against_the_diagonal(tmp_path, drawn_figures, strategy):
    labels, scores = over_confident_scores()
    path = plots.plot_reliability(labels, scores, tmp_path / "reliability.png", n_bins=10, strategy=strategy,
                                  title="category: reliability")
    curve = reliability_curve(labels, scores, n_bins=10, strategy=strategy)
    filled = curve.count > 0
    reliability, histogram = panels(drawn_figures[-1])

    accuracy_bars = bars(reliability, "accuracy")
    np.testing.assert_allclose([bar.get_height() for bar in accuracy_bars], curve.accuracy[filled])
    np.testing.assert_allclose([bar.get_x() for bar in accuracy_bars], curve.edges[:-1][filled])
    np.testing.assert_allclose([bar.get_width() for bar in accuracy_bars], np.diff(curve.edges)[filled])
    gap_tops = [bar.get_y() + bar.get_height() for bar in bars(reliability, "gap to mean confidence")]
    np.testing.assert_allclose(gap_tops, curve.confidence[filled])
    diagonal = [line for line in reliability.get_lines() if line.get_label() == "perfect calibration"]
    assert len(diagonal) == 1 and isinstance(diagonal[0], Line2D)
    np.testing.assert_allclose(diagonal[0].get_xydata(), [[0, 0], [1, 1]])
    assert reliability.get_xlim() == (0, 1) and reliability.get_ylim() == (0, 1)

    np.testing.assert_array_equal([bar.get_height() for bar in histogram.patches], curve.count)
    assert histogram.get_xlabel().startswith("confidence")
    ece = expected_calibration_error(labels, scores, n_bins=10, strategy=strategy)
    assert f"ECE = {ece:.3f}" in reliability.get_title() and "category: reliability" in reliability.get_title()
    assert ece > 0.1  # the scores are over-confident: the diagram has something to show

    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 300
        assert np.asarray(image.convert("L")).std() > 0


def test_reliability_marks_mean_confidence_right_of_accuracy_when_over_confident(tmp_path, drawn_figures):
    labels, scores = over_confident_scores(seed=1)
    plots.plot_reliability(labels, scores, tmp_path / "r.png")
    _, histogram = panels(drawn_figures[-1])
    marks = {line.get_label().split()[0]: line.get_xdata()[0] for line in histogram.get_lines()}
    assert marks["mean"] == pytest.approx(scores.max(axis=1).mean())
    assert marks["accuracy"] == pytest.approx(np.mean(scores.argmax(axis=1) == labels))
    assert marks["mean"] > marks["accuracy"]


def test_reliability_plot_refuses_what_the_metric_refuses(tmp_path):
    with pytest.raises(ValueError, match="y_score must be 2-D"):
        plots.plot_reliability(np.array([0, 1]), np.array([.3, .9]), tmp_path / "r.png")
