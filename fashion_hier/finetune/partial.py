"""Partial fine-tuning from an activation cache: the backbone layers above a cut, with the head.

The model trained here is ``[backbone layers after the cut] -> pooling -> head``, reading cached
cut-layer activations (``activations.py``) instead of images: each epoch costs the layers above
the cut only. Every BatchNormalization layer above the cut is frozen (``trainable=False``, which
in Keras 3 also runs it in inference mode), so its statistics stay the ImageNet ones and the
assembled image model computes exactly what was trained. Each sample is seen as its original or
its mirror image, drawn per epoch from a seeded generator, optionally randomly cropped
(``training.finetune_crop``). It trains through the one training loop (``fashion_hier.training_loop``):
checkpointed every epoch, early stopping on the (unweighted) validation subcategory accuracy, ending on
the best epoch.

``assemble_full_model`` then builds the ordinary image model (``build_model``) and copies the
fine-tuned backbone layers and the head into it by layer name, so ``Predictor``/``evaluate`` on
images give the cached path's numbers.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from fashion_hier.checkpoints import Backup
from fashion_hier.data.epochs import EpochDataset
from fashion_hier.finetune.activations import DEFAULT_CUT, ActivationCache, ActivationCacheMismatch
from fashion_hier.labels import LEVELS
from fashion_hier.training_loop import Stage, fit_resumable, monitor_name

logger = logging.getLogger(__name__)

MONITOR = monitor_name(has_validation=True)  # what the fine-tune must beat the frozen head on


@dataclass
class FinetuneResult:
    """What ``finetune_from_cache`` returns: the assembled image model and how training went."""

    model: object                       # keras.Model: build_model(...) with the fine-tuned weights
    upper: object                       # keras.Model: backbone layers above the cut (cut map -> pooled)
    head: object                        # keras.Model: build_head_model(...) with the fine-tuned weights
    history: dict = field(default_factory=dict)
    epoch_seconds: list = field(default_factory=list)
    best_epoch: int | None = None


def upper_backbone(backbone: str = "resnet50", weights: str | os.PathLike | None = "imagenet",
                   image_size: tuple[int, int] = (224, 224), cut_layer: str = DEFAULT_CUT):
    """The backbone's layers after ``cut_layer`` as a model: cut-layer map in, pooled features out.

    Built from ``build_backbone`` (same layer names and weights as in ``build_model``), its
    BatchNormalization layers frozen (inference mode), the other layers trainable.
    """
    from fashion_hier.models import build_backbone
    from fashion_hier.models.factory import BACKBONE_LAYER

    network = build_backbone(backbone, weights, (*image_size, 3), model_name=BACKBONE_LAYER)
    try:
        cut = network.get_layer(cut_layer)
    except ValueError:
        raise ValueError(f"cut layer {cut_layer!r} is not a layer of {backbone!r}; pass a layer name such as "
                         f"{DEFAULT_CUT!r}") from None
    try:
        upper = keras.Model(cut.output, network.output, name=BACKBONE_LAYER)
    except ValueError:  # e.g. resnet50_multiscale pools conv3 too: its features need layers below the cut
        raise ValueError(f"{backbone!r}'s pooled features read layers below the cut {cut_layer!r}, so the layers "
                         f"above it cannot be fine-tuned from that layer's activations alone; cut at a later "
                         f"layer, or use a backbone whose features come after the cut (e.g. 'resnet50')") from None
    for layer in upper.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return upper


def cached_model(upper, head_model):
    """``upper`` then ``head_model`` on a cut-layer input: the model trained on the cache (shares their layers)."""
    activations = keras.Input(shape=tuple(upper.input.shape[1:]), name="activations")
    outputs = head_model(upper(activations))
    return keras.Model(activations, {level: keras.layers.Identity(name=level)(outputs[level]) for level in LEVELS},
                       name="cached_finetune")


def assemble_full_model(upper, head_model, config, label_space):
    """``build_model_from_config`` with ``upper``'s backbone layers and ``head_model``'s head copied in by name.

    The layers below the cut come from ``config.model.weights`` (what the cache was computed with).
    """
    from fashion_hier.models import backbone_model, build_model_from_config, copy_head_weights

    model = build_model_from_config(config, label_space)
    target = backbone_model(model)
    for layer in upper.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
    copy_head_weights(head_model, model)
    return model


def random_crop_boxes(generator: np.random.Generator, count: int, crop: float) -> np.ndarray:
    """``count`` random boxes ``(y1, x1, y2, x2)`` in map fractions, each side a fraction in ``[crop, 1]``."""
    side = generator.uniform(crop, 1.0, (count, 2))
    top = generator.uniform(0.0, 1.0, (count, 2)) * (1.0 - side)
    return np.concatenate([top, top + side], axis=1)


def crop_and_resize(maps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Each map's box ``(y1, x1, y2, x2)`` (fractions of the map) resampled bilinearly to the map's size.

    ``tf.image.crop_and_resize`` on the cached float maps: it runs in TensorFlow's thread pool, where
    numpy's own (two batched matrix products) fought the training step for the two cores and added
    ~40 s to a 90 s epoch.
    """
    import tensorflow as tf

    count, height, width, _ = maps.shape
    return tf.image.crop_and_resize(maps, np.asarray(boxes, np.float32), np.arange(count, dtype=np.int32),
                                    (height, width)).numpy()


class CachedViews(EpochDataset):
    """Batches of cached activations (float32) and targets; a seeded random view per sample per epoch.

    ``seed=None``: the original view, rows in order (validation, scoring). ``crop`` (training only,
    in (0, 1]): each map is also a random crop, each side a fraction in ``[crop, 1]`` of the map's,
    resized back -- the image crops that a cached map cannot be given any more, approximated one stage up.
    """

    def __init__(self, activations: np.ndarray, rows: np.ndarray, labels: dict | None, batch_size: int,
                 seed: int | None = None, crop: float | None = None):
        super().__init__()
        if crop is not None and not 0 < crop <= 1:
            raise ValueError(f"crop={crop!r}: expected the smallest side fraction of a crop, in (0, 1], or None")
        if crop is not None and seed is None:
            raise ValueError("crop needs a seed (random crops are for training batches)")
        self.activations, self.rows, self.labels = activations, np.asarray(rows), labels
        self.batch_size, self.seed, self.crop = int(batch_size), seed, crop
        self.epoch = 0

    def draw(self, epoch: int) -> None:
        """The order and the view (original or mirrored) of every row in ``epoch``; its crops follow from it too."""
        count = len(self.rows)
        if self.seed is None:
            self.order, self.views = np.arange(count), np.zeros(count, dtype=np.int64)
            return
        generator = np.random.default_rng([self.seed, epoch])
        self.order, self.views = generator.permutation(count), generator.integers(0, 2, count)

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int):
        picked = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        rows = self.rows[picked]
        x = np.asarray(self.activations[rows, self.views[picked]], dtype=np.float32)
        if self.crop is not None and self.crop < 1:
            generator = np.random.default_rng([self.seed, self.epoch, index, 1])
            x = crop_and_resize(x, random_crop_boxes(generator, len(x), self.crop))
        if self.labels is None:
            return (x,)
        return x, {level: np.asarray(self.labels[level])[picked] for level in LEVELS}



def cached_batches(cache: ActivationCache, rows: Sequence[int], labels: dict | None, batch_size: int, *,
                   seed: int | None = None, crop: float | None = None):
    """A Keras ``PyDataset`` over ``rows`` of ``cache`` (see ``CachedViews``)."""
    return CachedViews(cache.activations, np.asarray(rows), labels, batch_size, seed, crop)


def predict_from_cache(cached, cache: ActivationCache, rows: Sequence[int], *, view: int = 0,
                       batch_size: int = 32) -> dict[str, np.ndarray]:
    """Scores per level of ``cached`` (``cached_model``) on ``rows`` of the cache, view 0 = original."""
    scores = {level: [] for level in LEVELS}
    rows = np.asarray(rows)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        x = np.asarray(cache.activations[chunk, view], dtype=np.float32)
        outputs = cached.predict_on_batch(x)
        for level in LEVELS:
            scores[level].append(np.asarray(outputs[level], dtype=np.float32))
    return {level: np.concatenate(parts) for level, parts in scores.items()}


def pooled_from_cache(upper, cache: ActivationCache, rows: Sequence[int], *, view: int = 0,
                      batch_size: int = 32) -> np.ndarray:
    """Pooled features of ``rows`` through ``upper`` (e.g. untrained: the frozen backbone's features)."""
    rows = np.asarray(rows)
    parts = [np.asarray(upper.predict_on_batch(np.asarray(cache.activations[rows[s:s + batch_size], view],
                                                           dtype=np.float32)), dtype=np.float32)
             for s in range(0, len(rows), batch_size)]
    return np.concatenate(parts)


def _check_rows(cache: ActivationCache, rows: np.ndarray, source: str) -> None:
    unreadable = np.flatnonzero(~cache.readable[rows])
    if len(unreadable):
        raise ActivationCacheMismatch(
            f"{len(unreadable)} {source} rows are unreadable images in {cache.cache_dir} (e.g. "
            f"{cache.paths[rows[unreadable[:3]]].tolist()}); leave them out of the split")


def finetune_from_cache(config, cache: ActivationCache, label_space, train_paths: Sequence[str], train_labels: dict,
                        validation_paths: Sequence[str] | None = None, validation_labels: dict | None = None, *,
                        cut_layer: str | None = None, learning_rate: float = 1e-4, epochs: int | None = None,
                        losses: dict | None = None, initial_head=None, callbacks: Sequence = (),
                        verbose: int | str = "auto", backup: Backup | None = None,
                        history_path: os.PathLike | None = None) -> FinetuneResult:
    """Fine-tune ``config``'s backbone above ``cut_layer`` with its head on ``cache``; return the image model.

    Args:
        config: a resolved ``TrainConfig``; uses ``model.*`` (backbone, weights, head, units, l2, dropout,
            switches), ``data.image_size``/``resize``, ``training.batch_size``/``epochs``/
            ``early_stopping_patience``/``finetune_crop`` and ``training_seed(config)``.
        cache: ``load_activation_cache(...)``, made with ``config``'s backbone, weights, size, resize and cut.
        train_paths, train_labels: the training rows and their encoded targets (``label_space.encode``).
        validation_paths, validation_labels: for early stopping on validation subcategory accuracy
            (restores the best epoch); without them all epochs run.
        cut_layer: default ``cache.manifest["cut_layer"]`` (config key ``model.trainable_from``).
        learning_rate: Adam's, for the backbone layers and the head alike (small: 1e-4).
        losses: per-level losses (default ``fashion_hier.compiling.weighted_losses(config, ...)``).
        initial_head: a ``build_head_model`` head (e.g. trained on the frozen features) to start from;
            a fresh head otherwise.
        backup, history_path: where a run keeps this fit's checkpoints and history, so that a killed fine-tune
            resumes exactly (the one training loop, ``fashion_hier.training_loop``); None: a temporary folder.
    Returns:
        ``FinetuneResult`` whose ``model`` is the ``build_model`` image model (``model.keras``-ready).
    """
    from fashion_hier.compiling import compile_model, weighted_losses
    from fashion_hier.config import training_seed
    from fashion_hier.features import weights_identity
    from fashion_hier.models import backbone_spec, backbone_trunk, build_head_model_from_config, copy_head_weights

    cut_layer = cut_layer or cache.manifest["cut_layer"]
    expected = {"backbone": backbone_trunk(config.model.backbone), "weights": weights_identity(config.model.weights),
                "image_size": [int(s) for s in config.data.image_size], "resize": config.data.resize,
                "cut_layer": cut_layer}
    differences = [f"{key}: cache has {cache.manifest.get(key)!r}, config has {value!r}"
                   for key, value in expected.items() if cache.manifest.get(key) != value]
    if differences:
        raise ActivationCacheMismatch(f"activation cache {cache.cache_dir} does not serve this config ("
                                      + "; ".join(differences) + "); extract activations for this config")
    train_rows = cache.rows(train_paths, source="train images")
    _check_rows(cache, train_rows, "train")
    seed = training_seed(config)
    keras.utils.set_random_seed(seed)
    upper = upper_backbone(config.model.backbone, config.model.weights, tuple(config.data.image_size), cut_layer)
    head_model = build_head_model_from_config(config, label_space,
                                              feature_dim=backbone_spec(config.model.backbone).feature_dim)
    if initial_head is not None:
        copy_head_weights(initial_head, head_model)
    model = cached_model(upper, head_model)
    losses = losses or weighted_losses(config, label_space, train_labels)
    batch_size = config.training.batch_size
    epochs = int(epochs or config.training.epochs)

    learning = config.training
    train_data = cached_batches(cache, train_rows, train_labels, batch_size, seed=seed, crop=learning.finetune_crop)
    validation_data = None
    if validation_paths is not None and len(validation_paths):
        validation_rows = cache.rows(validation_paths, source="validation images")
        _check_rows(cache, validation_rows, "validation")
        validation_data = cached_batches(cache, validation_rows, validation_labels, batch_size)
    compile_stage = lambda network: compile_model(  # noqa: E731
        network, config, losses, label_space, learning_rate, jit_compile=False,
        steps_per_epoch=-(-len(train_rows) // batch_size), epochs=epochs)
    outcome = fit_resumable(model, [Stage(0, epochs, compile_stage)], train_data, validation_data, backup=backup,
                            history_path=None if history_path is None else Path(history_path),
                            patience=learning.early_stopping_patience, callbacks=callbacks, verbose=verbose)
    best_epoch = outcome.best_epoch + 1 if validation_data is not None and outcome.best_epoch is not None else None
    full = assemble_full_model(upper, head_model, config, label_space)
    return FinetuneResult(full, upper, head_model, outcome.history, outcome.epoch_seconds, best_epoch)
