"""Images through a task in batches: paths streamed from disk (unreadable ones skipped and reported) or arrays.

The one scoring loop behind ``HierarchicalClassifier.predict_scores``/``predict_catalog`` and ``Predictor``
(and so ``evaluate``, Spark, search). It uses only what a task exposes (``preprocessor``, ``image_size``,
``label_space``, ``predict_on_batch``), so the task calls it without this module importing the task. Images are
read by the task's ``ImagePreprocessor`` (``fashion_hier.preprocessing``), the one the export runs in its graph.
"""
from __future__ import annotations

import logging
import os
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from fashion_hier.labels import LEVELS

logger = logging.getLogger(__name__)


class ScoredBatch(NamedTuple):
    """One batch of ``iter_batches``: readable paths, their scores, and the skipped images."""

    paths: list[str]
    scores: dict[str, np.ndarray]
    unreadable: list  # fashion_hier.data.UnreadableImage(path, reason)


def iter_batches(task, paths: Sequence[str | os.PathLike], *, batch_size: int = 32, progress: bool = False,
                 image_size: tuple[int, int] | None = None, resize: str | None = None,
                 forward=None, preprocessor=None) -> Iterator[ScoredBatch]:
    """Batch by batch: the readable paths, their scores, and the batch's unreadable images (skipped, never fatal).

    One batch is in memory at a time. Each unreadable image is logged once with its reason. Images are
    read by ``preprocessor`` (default ``task.preprocessor``), at another size or resize policy when
    ``image_size``/``resize`` say so. ``forward``: what runs the task's forward pass
    (``fashion_hier.engine.compile_engine``'s answer; default the task).
    """
    from fashion_hier.data import UnreadableImage

    paths = [str(p) for p in paths]
    check_batch_size(batch_size)
    if not paths:
        return
    preprocessor = _preprocessor(task, preprocessor, image_size, resize)
    with progress_bar(len(paths), progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            loaded = preprocessor.load(chunk)
            unreadable = [UnreadableImage(path, reason) for path, reason in loaded.failed]
            for image in unreadable:
                logger.warning("skipped unreadable image %s: %s", image.path, image.reason)
            readable = [chunk[row] for row in loaded.kept]
            scores = score_images(task, loaded.images, forward) if readable else empty_scores(task.label_space)
            bar.update(len(chunk))
            yield ScoredBatch(readable, scores, unreadable)


def iter_chunks(task, paths_or_images, *, batch_size: int = 32, progress: bool = False,
                image_size: tuple[int, int] | None = None, resize: str | None = None, forward=None,
                preprocessor=None) -> Iterator[tuple[list[str | None], dict[str, np.ndarray]]]:
    """(paths, scores) per batch for paths (streamed from disk, unreadable ones skipped) or an array of images
    at the model's size (paths None)."""
    if not (isinstance(paths_or_images, np.ndarray) and paths_or_images.dtype.kind in "fiu"):
        if isinstance(paths_or_images, (str, os.PathLike)):
            paths_or_images = [paths_or_images]
        for batch in iter_batches(task, paths_or_images, batch_size=batch_size, progress=progress,
                                  image_size=image_size, resize=resize, forward=forward, preprocessor=preprocessor):
            if batch.paths:
                yield batch.paths, batch.scores
        return
    images = _preprocessor(task, preprocessor, image_size, resize).load(paths_or_images).images
    check_batch_size(batch_size)
    with progress_bar(len(images), progress) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            bar.update(len(batch))
            yield [None] * len(batch), score_images(task, batch, forward)


def score_images(task, images: np.ndarray, forward=None) -> dict[str, np.ndarray]:
    """The task's probabilities per level for one batch of RGB 0..255 images, as float32 (through ``forward``,
    an engine's compiled task, when given)."""
    outputs = (forward or task).predict_on_batch(images)
    if not isinstance(outputs, dict):
        outputs = dict(zip(task.output_names, outputs))
    return {level: np.asarray(outputs[level], dtype=np.float32) for level in LEVELS}


def empty_scores(label_space) -> dict[str, np.ndarray]:
    sizes = (label_space.num_categories, label_space.num_subcategories, label_space.num_attributes)
    return {level: np.zeros((0, size), np.float32) for level, size in zip(LEVELS, sizes)}


def concatenate(chunks: list[dict[str, np.ndarray]], label_space) -> dict[str, np.ndarray]:
    """Batches' scores as one array per level (empty arrays of the right width when there are none)."""
    if not chunks:
        return empty_scores(label_space)
    return {level: np.concatenate([chunk[level] for chunk in chunks]) for level in LEVELS}


def _preprocessor(task, preprocessor, image_size: tuple[int, int] | None, resize: str | None):
    """``preprocessor``, else the task's, with ``image_size``/``resize`` changed where given."""
    preprocessor = preprocessor if preprocessor is not None else task.preprocessor
    changes = {name: value for name, value in (("image_size", image_size), ("resize", resize)) if value is not None}
    return preprocessor.replace(**changes) if changes else preprocessor


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", disable=not enabled, desc="predict")
