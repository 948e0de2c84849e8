"""Scores of a head-only run from the feature cache: what ``evaluate`` uses instead of a second backbone pass.

Depends on the cache alone, never on the head trainer, so evaluating a run imports no trainer.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from fashion_hier.features.cache import (
    IMAGES_SOURCE,
    KERAS_F32,
    FeatureCacheMismatch,
    _features_of,
    _identity,
    load_feature_cache,
)
from fashion_hier.labels import LEVELS
from fashion_hier.rundir import RunDir


def predict_from_features(model, features: np.ndarray, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Probabilities per level from pooled features, with a head model or a head run's directory.

    ``model`` is a head model (``build_head_model``) or a run directory written by
    ``train_head_on_features`` (its ``head.keras``). Equals the run's full model on the images.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_head(Path(model))
    outputs = model.predict(np.asarray(features, dtype=np.float32), batch_size=batch_size, verbose=0)
    if not isinstance(outputs, dict):
        outputs = dict(zip(model.output_names, outputs))
    return {level: np.asarray(outputs[level], dtype=np.float32) for level in LEVELS}


def scores_from_feature_cache(run_dir: str | os.PathLike, paths: Sequence[str], *,
                              batch_size: int = 256) -> dict[str, np.ndarray] | None:
    """The run's scores for ``paths`` from its feature cache, or None when that cannot be done exactly.

    None when the run was not trained on cached features, its cache is gone or unfinished, or the
    cache lacks one of ``paths``: the caller then runs the full model on the images (same numbers,
    slower). This is how ``evaluate`` can score a head-only run without a second backbone pass.
    """
    record_path = RunDir(run_dir).features_record
    if not record_path.is_file() or not RunDir(run_dir).head.is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    try:
        cache = load_feature_cache(record["cache_dir"])
    except (FileNotFoundError, FeatureCacheMismatch):
        return None
    if _identity(cache.manifest) != _identity(record) or set(paths) & set(cache.unreadable):
        return None  # unreadable images: scoring the images themselves skips and reports them properly
    if not _what_the_model_computes(cache.manifest):
        return None  # bf16 or derived features: close to, not equal to, what model.keras computes on the images
    try:
        features = _features_of(cache, paths, "evaluated")
    except FeatureCacheMismatch:
        return None
    return predict_from_features(run_dir, features, batch_size=batch_size)


def _what_the_model_computes(manifest: dict) -> bool:
    """Whether a cache holds exactly the features ``model.keras`` computes: Keras float32, from the images."""
    identity = _identity(manifest)
    return identity["engine"] == KERAS_F32 and identity["source"] == IMAGES_SOURCE


def load_head(run_dir: Path):
    import fashion_hier.models  # noqa: F401  registers the head's custom layers for loading
    from fashion_hier.checkpoints import load_model_file

    path = RunDir(run_dir).head
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} was not trained on cached features; "
                                f"use Predictor.load({str(run_dir)!r}) to score images with its full model")
    return load_model_file(path, remedy="train the head again ('fashion-hier features --run RUN --overwrite')")
