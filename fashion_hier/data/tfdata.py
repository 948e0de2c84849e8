"""``make_dataset``: the ``FashionSequence`` contract as a tf.data pipeline (parallel map and prefetch).

Batches are built by the same ``LoaderInputs.read`` (``load_image`` + ``augment.apply``) inside
``tf.numpy_function``, so decoding, resizing, augmentation and the skipping of unreadable images
are the Sequence's, byte for byte;
OpenCV releases the GIL, so the parallel map decodes on several cores. Labels are gathered in
TensorFlow. Shuffling uses tf.data's own seeded per-iteration reshuffle, and augmentation seeds
come from a seeded ``Dataset.random`` stream that changes every iteration (epoch), so a seed
gives the same sequence of epochs, though not the Sequence's order.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from fashion_hier.data.sequence import LoaderInputs
from fashion_hier.data.unreadable import UnreadableImages


def make_dataset(paths: Sequence[str | os.PathLike], labels: Mapping[str, np.ndarray] | None = None, *,
                 sample_weights: Mapping[str, np.ndarray] | None = None, batch_size: int = 32,
                 image_size: int | Sequence[int] = (224, 224), resize: str = "stretch", augment=None,
                 shuffle: bool = False, seed: int = 0, unreadable: UnreadableImages | None = None,
                 workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10,
                 num_parallel_calls: int | None = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Batches ``(images, labels[, sample_weights])``, or images only when ``labels`` is None.

    Same arguments and batches as ``FashionSequence`` (the last partial batch is kept).
    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are accepted so that both loaders
    take the same keywords; tf.data's parallelism is ``num_parallel_calls`` and prefetching is tuned
    by tf.data (AUTOTUNE). Unreadable images are left out of their batch with their labels and
    weights, and recorded in ``unreadable`` (a new ``UnreadableImages`` if None), which is also the
    returned dataset's ``unreadable`` attribute (attributes do not survive further transformations:
    keep the record, not the attribute, if you ``.map``/``.repeat`` the dataset).
    """
    del workers, use_multiprocessing, max_queue_size
    inputs = LoaderInputs.build(paths, labels, sample_weights=sample_weights, batch_size=batch_size,
                                image_size=image_size, resize=resize, augment=augment, shuffle=shuffle, seed=seed)
    indices = tf.data.Dataset.range(len(inputs))
    if inputs.shuffle:
        indices = indices.shuffle(max(1, len(inputs)), seed=inputs.seed, reshuffle_each_iteration=True)
    if inputs.augment is not None:
        seeds = tf.data.Dataset.random(seed=inputs.seed, rerandomize_each_iteration=True)
        indices = tf.data.Dataset.zip(indices, seeds)
    else:
        indices = indices.map(lambda index: (index, tf.zeros((), tf.int64)))
    batches = indices.batch(inputs.batch_size)
    unreadable = UnreadableImages() if unreadable is None else unreadable
    dataset = (batches.map(_batch_builder(inputs, unreadable), num_parallel_calls=num_parallel_calls,
                           deterministic=True)
               .prefetch(tf.data.AUTOTUNE))
    dataset.unreadable = unreadable
    return dataset


def _batch_builder(inputs: LoaderInputs, unreadable: UnreadableImages):
    """The map function: sample indices and augmentation seeds -> the batch's structure (readable rows only)."""
    label_tensors = None if inputs.labels is None else {k: tf.constant(v) for k, v in inputs.labels.items()}
    weight_tensors = (None if inputs.sample_weights is None
                      else {k: tf.constant(v) for k, v in inputs.sample_weights.items()})
    height, width = inputs.image_size

    count = len(inputs)

    def read_images(indices: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # a labelled batch with no readable image takes the next readable sample in index order
        substitutes = None if inputs.labels is None else (np.arange(count) + int(indices[-1]) + 1) % count
        images, kept, _ = inputs.read(indices, (seeds & 0xFFFFFFFF).astype(np.uint32),  # 32-bit seeds for albumentations
                                      unreadable, substitutes)
        return images.astype(np.float32, copy=False), kept

    def build(indices: tf.Tensor, seeds: tf.Tensor):
        images, kept = tf.numpy_function(read_images, [indices, seeds], (tf.float32, tf.int64), stateful=True,
                                         name="load_images")
        images.set_shape((None, height, width, 3))
        kept.set_shape((None,))
        indices = kept
        if label_tensors is None:
            return images
        labels = {level: tf.gather(values, indices) for level, values in label_tensors.items()}
        if weight_tensors is None:
            return images, labels
        return images, labels, {level: tf.gather(values, indices) for level, values in weight_tensors.items()}

    return build
