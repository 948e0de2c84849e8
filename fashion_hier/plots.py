"""The evaluation figures, one function per figure: arrays in, a PNG written, its path returned.

Figures are built on ``matplotlib.figure.Figure`` directly (Agg canvas), never through pyplot:
nothing is registered globally, no rcParams change, and the figure is freed when the function
returns — safe to call from tests, notebooks and servers alike.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve

from fashion_hier.metrics.calibration import expected_calibration_error, reliability_curve
from fashion_hier.metrics.selective import accuracy_coverage_curve

DPI = 100


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _check_names(names: Sequence[str], count: int, what: str) -> list[str]:
    names = [str(name) for name in names]
    if len(names) != count:
        raise ValueError(f"{what}: got {len(names)} names for {count} classes; pass one name per class")
    return names


def plot_precision_recall(
    y_true: np.ndarray,
    y_score: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    *,
    top: int | None = None,
    columns: int = 4,
) -> Path:
    """Precision-recall curve of every attribute, one small panel each, AP and support in each legend.

    The first panel is the micro average over all (row, label) pairs. Panels follow label frequency
    (most frequent first); ``top`` keeps only that many labels (default: all). Labels without a
    positive sample have no curve: they are listed in the figure's footnote instead.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must both be (N, A), got {y_true.shape} and {y_score.shape}")
    names = _check_names(names, y_true.shape[1], "plot_precision_recall")
    positives = (y_true > 0).sum(axis=0)
    # stable sort: equally frequent labels keep label order, so the figure is deterministic
    ranked = [j for j in np.argsort(-positives, kind="stable") if positives[j] > 0][:top]
    absent = [names[j] for j in range(len(names)) if positives[j] == 0]
    panels = [None, *ranked] if positives.sum() > 0 else []
    columns = max(1, min(columns, len(panels) or 1))
    rows = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(3.2 * columns, 2.9 * rows + 0.5), layout="constrained")
    figure.suptitle(f"attributes: precision-recall ({y_true.shape[0]} rows; AP = average precision)")
    for i, j in enumerate(panels):
        axes = figure.add_subplot(rows, columns, i + 1)
        truth, score = (y_true.ravel() > 0, y_score.ravel()) if j is None else (y_true[:, j] > 0, y_score[:, j])
        precision, recall, _ = precision_recall_curve(truth, score)
        label = "micro (all labels)" if j is None else names[j]
        axes.step(recall, precision, where="post", color="black" if j is None else "tab:blue", linewidth=1.5,
                  label=f"AP {average_precision_score(truth, score):.2f}, n={int(truth.sum())}")
        axes.axhline(truth.mean(), color="grey", linewidth=0.8, linestyle=":")  # a random scorer's precision
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.05)
        axes.set_title(label, fontsize="medium")
        axes.tick_params(labelsize="small")
        if i % columns == 0:
            axes.set_ylabel("precision")
        if i >= len(panels) - columns:
            axes.set_xlabel("recall")
        axes.legend(loc="lower left", fontsize="small", frameon=True)
    if not panels:
        figure.add_subplot().text(0.5, 0.5, "no attribute has a positive sample", ha="center", va="center")
    note = "dotted: precision of random scores (label frequency)"
    if absent:
        note += f"; no positive sample, no curve: {', '.join(absent[:8])}{' ...' if len(absent) > 8 else ''}"
    figure.supxlabel(note, fontsize="small")
    return _save(figure, path)


def plot_confusion_matrix(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    *,
    title: str = "category: confusion matrix\n(each cell: share of the true class, and rows)",
) -> Path:
    """Confusion matrix coloured by row share (each true class sums to 1), with the counts.

    Each cell shows its share of the true class and its number of rows (up to 20 classes); the
    row labels carry each class's support, so counts can always be read back."""
    names = [str(name) for name in names]
    for what, values in (("y_true", y_true), ("y_pred", y_pred)):
        values = np.asarray(values)
        if values.ndim != 1 or (values.size and (values.min() < 0 or values.max() >= len(names))):
            raise ValueError(
                f"plot_confusion_matrix: {what} must be class indices (N,) in [0, {len(names) - 1}] "
                f"(one name per class), got shape {values.shape}"
                + (f" and values {values.min()}..{values.max()}" if values.size else "")
            )
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(len(names)))
    support = counts.sum(axis=1)
    matrix = counts / np.maximum(support, 1)[:, None]
    size = 3 + 0.45 * len(names)
    figure = Figure(figsize=(size + 2, size + 0.5), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=60, ha="right", fontsize="small")
    axes.set_yticks(ticks, [f"{name} (n={n})" for name, n in zip(names, support)], fontsize="small")
    if len(names) <= 20:  # share on top, row count below; empty cells stay blank so the errors stand out
        for (row, column), count in np.ndenumerate(counts):
            if count:
                value = matrix[row, column]
                axes.text(column, row, f"{value:.2f}\n{count}", ha="center", va="center", fontsize="x-small",
                          color="white" if value > 0.5 else "black")
    axes.set(xlabel="predicted", ylabel="true (rows in the split)")
    axes.set_title(title, fontsize="medium")
    return _save(figure, path)


def plot_per_class_f1(
    names: Sequence[str],
    f1: np.ndarray,
    path: str | Path,
    *,
    support: np.ndarray | None = None,
    title: str = "subcategory: F1 per class",
) -> Path:
    """Horizontal bars of per-class F1, best first; the support is shown beside each bar when given."""
    f1 = np.asarray(f1, dtype=float)
    names = _check_names(names, f1.shape[0], "plot_per_class_f1")
    order = np.argsort(-np.nan_to_num(f1, nan=-1.0), kind="stable")
    figure = Figure(figsize=(7, 1.5 + 0.3 * len(names)))
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.barh(positions, np.nan_to_num(f1[order]), color="tab:blue")
    axes.set_yticks(positions, [names[i] for i in order], fontsize="small")
    axes.invert_yaxis()  # best class on top
    if support is not None:
        support = np.asarray(support)
        for position, i in zip(positions, order):
            value = f"{f1[i]:.2f}" if np.isfinite(f1[i]) else "no F1"
            axes.text(min(f1[i] if np.isfinite(f1[i]) else 0, 1) + 0.01, position, f"{value}  n={support[i]}",
                      va="center", fontsize="x-small")
    axes.set(xlim=(0, 1.25), xlabel="F1", title=title)
    figure.tight_layout()
    return _save(figure, path)


CAPTION_CHARACTERS = 42      # a caption line that fits under a 3.2-inch panel at the "small" font size
CAPTION_LINE_INCHES = 0.18   # the height of one caption line (12 points, plus spacing)
CAPTION_KEY = ("caption: the catalogue's label (black), then the prediction: green where it matches, "
               "red where it differs; '-' = no attribute (none labelled, or none scored above its threshold); "
               "'?' = left empty in the catalogue (neither right nor wrong)")


def plot_sample_grid(
    images: Sequence[np.ndarray],
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    path: str | Path,
    *,
    correct: Sequence[bool] | Sequence[Sequence[bool]] | None = None,
    columns: int = 4,
) -> Path:
    """A grid of images (RGB, 0..255): the true caption in black, the predicted one below, with a key.

    A caption may hold several lines (e.g. ``"Topwear / Shirts\nSummer, Casual"``). ``correct`` is one
    bool per image, or one bool per caption line: each predicted line is then green when right and
    red when wrong, so a wrong attribute set shows in red even under a right category.
    """
    count = len(images)
    if not (len(true_labels) == len(predicted_labels) == count):
        raise ValueError(
            f"plot_sample_grid: {count} images, {len(true_labels)} true and {len(predicted_labels)} predicted "
            "labels; pass one of each per image"
        )
    if count == 0:
        raise ValueError("plot_sample_grid: no images to draw")
    if columns < 1:
        raise ValueError(f"plot_sample_grid: columns must be >= 1, got {columns}")
    columns = min(columns, count)
    rows = -(-count // columns)
    titles = [_wrapped(["true: " + line if k == 0 else line for k, line in enumerate(str(truth).split("\n"))])
              for truth in true_labels]
    captions = []
    for i, prediction in enumerate(predicted_labels):
        lines = str(prediction).split("\n")
        verdicts = _line_verdicts(None if correct is None else correct[i], len(lines))
        captions.append([(wrapped, verdict) for k, (line, verdict) in enumerate(zip(lines, verdicts))
                         for wrapped in _wrapped([("pred: " if k == 0 else "") + line])])
    title_inches = CAPTION_LINE_INCHES * max(len(title) for title in titles)
    caption_inches = CAPTION_LINE_INCHES * max(len(caption) for caption in captions) + 0.1
    figure = Figure(figsize=(3.2 * columns, (3.0 + title_inches + caption_inches) * rows + 0.4),
                    layout="constrained")
    # each row of images has a row of captions under it, so the layout keeps room for the predictions
    grid = figure.add_gridspec(2 * rows, columns, height_ratios=[3.0 + title_inches, caption_inches] * rows)
    for i, (image, title, caption) in enumerate(zip(images, titles, captions)):
        row, column = divmod(i, columns)
        axes = figure.add_subplot(grid[2 * row, column])
        axes.imshow(np.clip(np.asarray(image, dtype=float), 0, 255).astype(np.uint8))
        axes.set_axis_off()
        axes.set_title("\n".join(title), fontsize="small", color="black")
        below = figure.add_subplot(grid[2 * row + 1, column])
        below.set_axis_off()
        for k, (line, verdict) in enumerate(caption):
            colour = "black" if verdict is None else ("tab:green" if verdict else "tab:red")
            below.annotate(line, xy=(0.5, 1), xycoords="axes fraction",
                           xytext=(0, -12 * k), textcoords="offset points", ha="center", va="top",
                           fontsize="small", color=colour, fontweight="bold" if verdict is False else "normal")
    figure.suptitle(CAPTION_KEY if correct is not None else "caption: true label above, prediction below",
                    fontsize="small", wrap=True)
    return _save(figure, path)


def _wrapped(lines: Sequence[str]) -> list[str]:
    """Caption lines broken to a panel's width (a long one would squeeze every panel of the grid to nothing)."""
    return [part for line in lines for part in (textwrap.wrap(line, CAPTION_CHARACTERS) or [""])]


def _line_verdicts(verdict, lines: int) -> list[bool | None]:
    """One verdict per caption line: a single bool colours every line, a sequence colours line by line."""
    if verdict is None:
        return [None] * lines
    if np.ndim(verdict) == 0:
        return [bool(verdict)] * lines
    verdict = [bool(v) for v in verdict]
    if len(verdict) != lines:
        raise ValueError(f"plot_sample_grid: {len(verdict)} verdicts for a {lines}-line caption; pass one per line")
    return verdict


def plot_reliability(
    y_true: np.ndarray,
    y_score: np.ndarray,
    path: str | Path,
    *,
    n_bins: int = 15,
    strategy: str = "uniform",
    title: str = "category: reliability",
) -> Path:
    """Reliability diagram of the top label: accuracy per confidence bin against the diagonal.

    Above, one bar per non-empty bin at its accuracy, with the gap up (or down) to the bin's mean
    confidence hatched in red; a calibrated model's bars reach the dashed diagonal. Below, the
    confidence histogram (samples per bin) with the mean confidence and the accuracy marked: an
    over-confident model shows its mean confidence right of its accuracy. The ECE is in the title.
    Bins as :func:`fashion_hier.metrics.reliability_curve` (``strategy`` "uniform" or "quantile").
    """
    curve = reliability_curve(y_true, y_score, n_bins=n_bins, strategy=strategy)
    ece = expected_calibration_error(y_true, y_score, n_bins=n_bins, strategy=strategy)
    filled = curve.count > 0
    left, width = curve.edges[:-1], np.diff(curve.edges)
    total = int(curve.count.sum())
    figure = Figure(figsize=(5.5, 6.5), layout="constrained")
    reliability, histogram = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    reliability.bar(left[filled], curve.accuracy[filled], width[filled], align="edge", color="tab:blue",
                    edgecolor="black", linewidth=0.5, label="accuracy")
    reliability.bar(left[filled], (curve.confidence - curve.accuracy)[filled], width[filled],
                    bottom=curve.accuracy[filled], align="edge", color="tab:red", alpha=0.25, hatch="//",
                    edgecolor="tab:red", linewidth=0.5, label="gap to mean confidence")
    reliability.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    reliability.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    reliability.set_title(f"{title}\nECE = {ece:.3f} ({n_bins} {strategy} bins, {total} samples)", fontsize="medium")
    reliability.legend(loc="upper left", fontsize="small")
    histogram.bar(left, curve.count, width, align="edge", color="grey", edgecolor="black", linewidth=0.5)
    scores = np.asarray(y_score)
    mean_confidence = float(np.sum(np.nan_to_num(curve.confidence) * curve.count) / total)
    accuracy = float(np.sum(np.nan_to_num(curve.accuracy) * curve.count) / total)
    histogram.axvline(mean_confidence, color="tab:red", linestyle="--", label=f"mean confidence {mean_confidence:.2f}")
    histogram.axvline(accuracy, color="tab:blue", linestyle="-", label=f"accuracy {accuracy:.2f}")
    histogram.set(xlabel=f"confidence (top-label probability, {scores.shape[-1]} classes)", ylabel="samples")
    histogram.legend(loc="upper left", fontsize="x-small")
    return _save(figure, path)


def plot_accuracy_coverage(
    levels: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    targets: Sequence[float] = (0.95, 0.98, 0.99),
    title: str = "accuracy of the accepted answers against the share accepted",
) -> Path:
    """One accuracy-coverage curve per level (``{level: (y_true, y_score)}``), with the target accuracies drawn.

    Accepting the rows whose top score reaches a confidence P (``metrics.accuracy_coverage_curve``): read
    along a dashed target line to see how many rows a team can accept unseen at that accuracy.
    """
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.subplots()
    lowest = 1.0
    for level, (y_true, y_score) in levels.items():
        curve = accuracy_coverage_curve(y_true, y_score)
        axes.step(curve.coverage, curve.accuracy, where="post", label=level)
        lowest = min(lowest, float(curve.accuracy.min()))
    for target in targets:
        axes.axhline(target, color="grey", linestyle="--", linewidth=0.8)
        axes.annotate(f"{target:.0%}", (0.995, target), fontsize="x-small", color="grey", ha="right", va="bottom")
    axes.set(xlim=(0, 1), ylim=(max(0.0, min(lowest, min(targets)) - 0.02), 1.005),
             xlabel="coverage (share of rows accepted, most confident first)", ylabel="accuracy of the accepted rows",
             title=title)
    axes.legend(loc="lower left", fontsize="small")
    return _save(figure, path)
