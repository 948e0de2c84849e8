"""The evaluation figures, one function per figure: arrays in, a PNG written, its path returned.

Figures are built on ``matplotlib.figure.Figure`` directly (Agg canvas), never through pyplot:
nothing is registered globally, no rcParams change, and the figure is freed when the function
returns — safe to call from tests, notebooks and servers alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_curve

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
    top: int = 5,
) -> Path:
    """Attribute precision-recall curves: micro-averaged over all pairs, plus the ``top`` most frequent labels.

    Labels without a positive sample have no curve and are skipped.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must both be (N, A), got {y_true.shape} and {y_score.shape}")
    names = _check_names(names, y_true.shape[1], "plot_precision_recall")
    positives = (y_true > 0).sum(axis=0)
    # stable sort: equally frequent labels keep label order, so the figure is deterministic
    frequent = [j for j in np.argsort(-positives, kind="stable")[:top] if positives[j] > 0]
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    if positives.sum() > 0:
        precision, recall, _ = precision_recall_curve(y_true.ravel() > 0, y_score.ravel())
        axes.step(recall, precision, where="post", color="black", linewidth=2, label="micro (all labels)")
    for j in frequent:
        precision, recall, _ = precision_recall_curve(y_true[:, j] > 0, y_score[:, j])
        axes.step(recall, precision, where="post", linewidth=1, label=f"{names[j]} (n={positives[j]})")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title="attributes: precision-recall")
    if axes.lines:
        axes.legend(loc="lower left", fontsize="small")
    return _save(figure, path)


def plot_confusion_matrix(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    *,
    title: str = "category: confusion matrix (rows normalised)",
) -> Path:
    """Row-normalised confusion matrix (each true class sums to 1) with class names on both axes."""
    names = [str(name) for name in names]
    for what, values in (("y_true", y_true), ("y_pred", y_pred)):
        values = np.asarray(values)
        if values.ndim != 1 or (values.size and (values.min() < 0 or values.max() >= len(names))):
            raise ValueError(
                f"plot_confusion_matrix: {what} must be class indices (N,) in [0, {len(names) - 1}] "
                f"(one name per class), got shape {values.shape}"
                + (f" and values {values.min()}..{values.max()}" if values.size else "")
            )
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(names)), normalize="true")
    size = 3 + 0.45 * len(names)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=60, ha="right", fontsize="small")
    axes.set_yticks(ticks, names, fontsize="small")
    if len(names) <= 20:
        for (row, column), value in np.ndenumerate(matrix):
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                      color="white" if value > 0.5 else "black")
    axes.set(xlabel="predicted", ylabel="true", title=title)
    figure.tight_layout()
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
            axes.text(min(f1[i] if np.isfinite(f1[i]) else 0, 1) + 0.01, position, f"n={support[i]}",
                      va="center", fontsize="x-small")
    axes.set(xlim=(0, 1.15), xlabel="F1", title=title)
    figure.tight_layout()
    return _save(figure, path)


def plot_sample_grid(
    images: Sequence[np.ndarray],
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    path: str | Path,
    *,
    correct: Sequence[bool] | None = None,
    columns: int = 4,
) -> Path:
    """A grid of images (RGB, 0..255) captioned with true and predicted labels; green when right, red when wrong."""
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
    figure = Figure(figsize=(3 * columns, 3.9 * rows), layout="constrained")
    for i, (image, truth, prediction) in enumerate(zip(images, true_labels, predicted_labels)):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.imshow(np.clip(np.asarray(image, dtype=float), 0, 255).astype(np.uint8))
        axes.set_axis_off()
        colour = "black" if correct is None else ("tab:green" if correct[i] else "tab:red")
        axes.set_title(f"true: {truth}\npred: {prediction}", fontsize="x-small", color=colour)
    return _save(figure, path)
