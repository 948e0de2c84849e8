"""The recipe's last stage: fine-tune the backbone above ``model.trainable_from`` from its activation cache.

With ``training.cache_features`` and ``model.trainable_from`` (e.g. ``conv4_block6_out``), the head is
first trained on the frozen backbone's pooled features (``fashion_hier.features.head_training``); then
the backbone layers after the cut and that head are trained together on the cached cut-layer
activations of every training photo and its mirror image (``partial.finetune_from_cache``), at
``training.finetune_learning_rate`` for ``training.finetune_epochs`` epochs (cosine decay, no warm-up:
the head is already trained). The epoch with the best validation subcategory accuracy is kept, and
only if it beats the frozen head's on validation -- otherwise the frozen model stands, and the run
record says so.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

from fashion_hier.checkpoints import Backup
from fashion_hier.config import TrainConfig
from fashion_hier.cachefiles import request_digest
from fashion_hier.engine import extraction_calibration_paths, extraction_engine, extraction_identity
from fashion_hier.finetune.activations import KERAS_ENGINE, ActivationCache, _request_identity, extract_activations
from fashion_hier.finetune.partial import MONITOR, FinetuneResult, finetune_from_cache
from fashion_hier.labels import LabelSpace
from fashion_hier.models import backbone_trunk

logger = logging.getLogger(__name__)


def default_activation_cache_dir(config: TrainConfig, paths: Sequence[str], *, catalog=None) -> Path:
    """``output_dir/features/activations_<trunk>_<h>x<w>_<cut>_<hash of the request>``, beside the feature caches.
    ``catalog``: the config's catalogue when already read (int8 names its training photos)."""
    return _default_activation_cache_dir(config, paths, extraction_calibration_paths(config, catalog))


def _default_activation_cache_dir(config: TrainConfig, paths: Sequence[str],
                                  calibration_paths: Sequence[str] | None) -> Path:
    trunk = backbone_trunk(config.model.backbone)   # resnet50_multiscale shares resnet50's cache
    engine = extraction_identity(extraction_engine(config), calibration_paths)
    request = _request_identity([str(p) for p in paths], trunk, config.model.weights, config.data.image_size,
                                config.data.resize, config.model.trainable_from, "float16", engine)
    if request["engine"] == KERAS_ENGINE:
        del request["engine"]  # Keras's caches keep the names they had before engines existed
    height, width = config.data.image_size
    name = f"activations_{trunk}_{height}x{width}_{config.model.trainable_from}"
    return Path(config.output_dir) / "features" / f"{name}_{request_digest(request)}"


def ensure_activation_cache(config: TrainConfig, paths: Sequence[str],
                            cache_dir: str | os.PathLike | None = None, *, catalog=None) -> ActivationCache:
    """The activation cache at ``model.trainable_from`` of ``paths`` (both views): reused, resumed or extracted.
    ``catalog``: the config's catalogue when already read (int8 calibrates on its training split)."""
    calibration_paths = extraction_calibration_paths(config, catalog)
    if cache_dir is None:
        cache_dir = _default_activation_cache_dir(config, paths, calibration_paths)
    cache = extract_activations(paths, cache_dir=Path(cache_dir), backbone=config.model.backbone,
                                weights=config.model.weights, image_size=tuple(config.data.image_size),
                                resize=config.data.resize, cut_layer=config.model.trainable_from,
                                engine=extraction_engine(config), calibration_paths=calibration_paths)
    logger.info("activations at %s cached in %s", config.model.trainable_from, cache_dir)
    return cache


@dataclasses.dataclass
class FinetuneOutcome:
    """The fine-tune's result, the frozen head's best validation score, and whether the fine-tune was kept."""

    result: FinetuneResult
    frozen_score: float | None
    finetuned_score: float | None
    kept: bool


def finetune_stage(config: TrainConfig, cache: ActivationCache, label_space: LabelSpace, frozen_head,
                   frozen_history: dict, train_paths: Sequence[str], train_labels: dict,
                   validation_paths: Sequence[str] | None, validation_labels: dict | None, *,
                   callbacks: Sequence = (), verbose: int | str = "auto", backup: Backup | None = None,
                   history_path: Path | None = None) -> FinetuneOutcome:
    """Fine-tune ``frozen_head`` with the backbone above the cut; keep it only if validation says it is better.

    ``frozen_history`` is the head fit's Keras history (its best ``val_subcategory_accuracy`` is what the
    fine-tune must beat). Without validation rows the fine-tune is always kept (all epochs run).
    ``backup``/``history_path``: the run's folder for the fine-tune's checkpoints and its history CSV
    (``finetune_from_cache``).
    """
    finetune_config = dataclasses.replace(config, optimizer=dataclasses.replace(config.optimizer, warmup_epochs=0))
    result = finetune_from_cache(finetune_config, cache, label_space, train_paths, train_labels, validation_paths,
                                 validation_labels, cut_layer=config.model.trainable_from,
                                 learning_rate=config.training.finetune_learning_rate,
                                 epochs=config.training.finetune_epochs, initial_head=frozen_head,
                                 callbacks=callbacks, verbose=verbose, backup=backup, history_path=history_path)
    frozen = frozen_history.get(MONITOR)
    finetuned = result.history.get(MONITOR)
    frozen_score = max(frozen) if frozen else None
    finetuned_score = max(finetuned) if finetuned else None
    kept = frozen_score is None or finetuned_score is None or finetuned_score > frozen_score
    logger.info("fine-tune above %s: best validation subcategory accuracy %s (epoch %s) against the frozen "
                "head's %s: %s", config.model.trainable_from, _fmt(finetuned_score), result.best_epoch,
                _fmt(frozen_score), "fine-tuned model kept" if kept else "frozen model kept")
    return FinetuneOutcome(result, frozen_score, finetuned_score, kept)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
