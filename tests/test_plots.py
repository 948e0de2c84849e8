"""Each evaluation figure is a real, decodable PNG; bad inputs are refused with a clear message."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from fashion_hier import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path, min_side=100):
    """The file starts with the PNG signature, decodes, and is more than a thumbnail."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert min(width, height) >= min_side
    assert pixels.std() > 0, "the figure is a blank canvas"
    return pixels


@pytest.fixture
def attribute_scores():
    rng = np.random.default_rng(0)
    y_true = (rng.random((40, 6)) < [0.6, 0.4, 0.3, 0.2, 0.1, 0.0]).astype(np.float32)
    y_score = np.clip(0.6 * y_true + 0.5 * rng.random(y_true.shape), 0, 1)
    return y_true, y_score


def test_precision_recall_plot_is_png_and_skips_labels_without_positives(tmp_path, attribute_scores):
    y_true, y_score = attribute_scores
    names = [f"attr{j}" for j in range(6)]
    path = plots.plot_precision_recall(y_true, y_score, names, tmp_path / "pr.png", top=6)
    assert path == tmp_path / "pr.png"
    assert_valid_png(path)


def test_precision_recall_plot_refuses_mismatched_shapes(tmp_path, attribute_scores):
    y_true, y_score = attribute_scores
    with pytest.raises(ValueError, match=r"\(N, A\)"):
        plots.plot_precision_recall(y_true, y_score[:, :3], ["a"] * 6, tmp_path / "pr.png")
    with pytest.raises(ValueError, match="3 names for 6 classes"):
        plots.plot_precision_recall(y_true, y_score, ["a", "b", "c"], tmp_path / "pr.png")


def test_confusion_matrix_plot_is_png_and_checks_class_indices(tmp_path):
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    path = plots.plot_confusion_matrix(y_true, y_pred, ["Topwear", "Shoes", "Bags"], tmp_path / "cm" / "c.png")
    assert_valid_png(path)
    with pytest.raises(ValueError, match=r"y_pred must be class indices \(N,\) in \[0, 1\]"):
        plots.plot_confusion_matrix(y_true[:2], np.array([0, 2]), ["Topwear", "Shoes"], tmp_path / "bad.png")


def test_per_class_f1_plot_is_png_and_tolerates_nan(tmp_path):
    f1 = np.array([0.2, np.nan, 0.9, 0.5])
    path = plots.plot_per_class_f1(list("abcd"), f1, tmp_path / "f1.png", support=np.array([3, 0, 5, 2]))
    assert_valid_png(path)
    with pytest.raises(ValueError, match="2 names for 4 classes"):
        plots.plot_per_class_f1(["a", "b"], f1, tmp_path / "f1.png")


def test_sample_grid_draws_the_images_it_is_given(tmp_path):
    red = np.zeros((32, 32, 3), np.float32)
    red[..., 0] = 255.0
    images = [red] * 5
    path = plots.plot_sample_grid(images, ["Shoes"] * 5, ["Shoes", "Bags", "Shoes", "Shoes", "Bags"],
                                  tmp_path / "grid.png", correct=[True, False, True, True, False], columns=3)
    pixels = assert_valid_png(path).astype(int)
    pure_red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    assert pure_red.sum() > 5 * 32 * 32, "the five red images are not visible in the grid"


TAB_RED = np.array([214, 39, 40])
TAB_GREEN = np.array([44, 160, 44])


def caption_pixels(pixels, colour):
    return int((np.abs(pixels[..., :3].astype(int) - colour).max(axis=-1) < 30).sum())


def test_sample_grid_colours_each_caption_line_by_its_own_verdict(tmp_path):
    grey = np.full((32, 32, 3), 128.0, np.float32)
    truth = ["Topwear / Shirts\nSummer"] * 2
    right = plots.plot_sample_grid([grey] * 2, truth, truth, tmp_path / "right.png", correct=[[True, True]] * 2)
    attribute_wrong = plots.plot_sample_grid([grey] * 2, truth, ["Topwear / Shirts\n-"] * 2, tmp_path / "wrong.png",
                                             correct=[[True, True], [True, False]])
    right_pixels, wrong_pixels = assert_valid_png(right), assert_valid_png(attribute_wrong)
    assert caption_pixels(right_pixels, TAB_RED) == 0 and caption_pixels(right_pixels, TAB_GREEN) > 0
    assert caption_pixels(wrong_pixels, TAB_RED) > 0, "a wrong attribute line must be drawn in red"
    with pytest.raises(ValueError, match="3 verdicts for a 2-line caption"):
        plots.plot_sample_grid([grey], truth[:1], truth[:1], tmp_path / "g.png", correct=[[True, True, True]])


def test_precision_recall_draws_a_panel_per_attribute_with_positives(tmp_path, attribute_scores):
    y_true, y_score = attribute_scores
    names = [f"attr{j}" for j in range(6)]
    few = assert_valid_png(plots.plot_precision_recall(y_true, y_score, names, tmp_path / "few.png", top=1))
    every = assert_valid_png(plots.plot_precision_recall(y_true, y_score, names, tmp_path / "all.png"))
    # micro + 1 panel fit in one row; micro + 5 labels (attr5 has no positive) need two rows of four
    assert every.shape[0] > 1.5 * few.shape[0]


def test_sample_grid_refuses_mismatched_captions(tmp_path):
    with pytest.raises(ValueError, match="2 images, 1 true and 2 predicted"):
        plots.plot_sample_grid([np.zeros((8, 8, 3))] * 2, ["a"], ["a", "b"], tmp_path / "g.png")


def test_plots_leave_global_matplotlib_state_alone(tmp_path, attribute_scores):
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    open_figures = plt.get_fignums()
    plots.plot_precision_recall(*attribute_scores, list("abcdef"), tmp_path / "pr.png")
    plots.plot_confusion_matrix(np.array([0, 1]), np.array([1, 1]), ["a", "b"], tmp_path / "cm.png")
    assert dict(matplotlib.rcParams) == before
    assert plt.get_fignums() == open_figures


def test_sample_grid_wraps_long_captions_instead_of_squeezing_the_panels(tmp_path):
    import warnings

    grey = np.full((32, 32, 3), 128.0, np.float32)
    long = "Topwear / Shirts\n" + ", ".join(f"attribute_{k}=value_{k}" for k in range(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib: "constrained_layout not applied because axes sizes collapsed"
        pixels = assert_valid_png(plots.plot_sample_grid([grey] * 4, [long] * 4, [long] * 4, tmp_path / "g.png",
                                                         correct=[[True, False]] * 4))
    mid_grey = (np.abs(pixels[..., :3].astype(int) - 128).max(axis=-1) < 3).sum()
    assert mid_grey > 4 * 32 * 32, "the images were squeezed out of the grid"
    assert caption_pixels(pixels, TAB_RED) > 0
