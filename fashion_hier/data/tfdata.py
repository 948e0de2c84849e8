"""``make_dataset``: the ``FashionSequence`` contract as a tf.data pipeline (parallel map and prefetch).

Batches are built by the same ``LoaderInputs.read`` (``load_image`` + ``augment.apply``) inside
``tf.numpy_function``, so decoding, resizing, augmentation and the skipping of unreadable images
are the Sequence's, byte for byte;
OpenCV releases the GIL, so the parallel map decodes on several cores. Labels are gathered in
TensorFlow. Epoch ``e``'s sample order and augmentation seeds are the Sequence's
(``LoaderInputs.order(e)``, ``augment.sample_seeds``): a function of (seed, epoch), not of how many
times the dataset was iterated in this process. The epoch is the dataset's ``epoch_counter`` variable,
advanced at each new iteration and set by the trainer at each epoch's start, so a resumed run reads
exactly the batches an uninterrupted one would (tests/test_faults.py).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from fashion_hier.data.augment import sample_seeds
from fashion_hier.data.images import DEFAULT_MAX_PIXELS
from fashion_hier.data.sequence import LoaderInputs
from fashion_hier.data.unreadable import UnreadableImages


def make_dataset(paths: Sequence[str | os.PathLike], labels: Mapping[str, np.ndarray] | None = None, *,
                 sample_weights: Mapping[str, np.ndarray] | None = None, batch_size: int = 32,
                 image_size: int | Sequence[int] = (224, 224), resize: str = "stretch", augment=None,
                 shuffle: bool = False, seed: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS,
                 unreadable: UnreadableImages | None = None,
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
                                image_size=image_size, resize=resize, augment=augment, shuffle=shuffle, seed=seed,
                                max_pixels=max_pixels)
    # -1: the first iteration is epoch 0. A trainer sets it to e - 1 before epoch e (EpochCheckpoint).
    epoch_counter = tf.Variable(-1, dtype=tf.int64, trainable=False, name="loader_epoch")

    def one_epoch(_):
        epoch = epoch_counter.assign_add(1)
        order = tf.numpy_function(lambda e: inputs.order(int(e)).astype(np.int64), [epoch], tf.int64,
                                  stateful=True, name="epoch_order")
        order.set_shape((len(inputs),))
        return tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(order),
                                   tf.data.Dataset.from_tensors(epoch).repeat())

    # flat_map over one element: the order is drawn when an iteration starts, after the trainer set the epoch
    # (first element asked for); the known batch count keeps Keras's progress bars and epoch ends as before
    indices = tf.data.Dataset.range(1).flat_map(one_epoch)
    batches = indices.batch(inputs.batch_size).apply(tf.data.experimental.assert_cardinality(inputs.num_batches()))
    unreadable = UnreadableImages() if unreadable is None else unreadable
    dataset = (batches.map(_batch_builder(inputs, unreadable), num_parallel_calls=num_parallel_calls,
                           deterministic=True)
               .prefetch(tf.data.AUTOTUNE))
    dataset.unreadable = unreadable
    dataset.epoch_counter = epoch_counter
    return dataset


def _batch_builder(inputs: LoaderInputs, unreadable: UnreadableImages):
    """The map function: sample indices and their epoch -> the batch's structure (readable rows only)."""
    label_tensors = None if inputs.labels is None else {k: tf.constant(v) for k, v in inputs.labels.items()}
    weight_tensors = (None if inputs.sample_weights is None
                      else {k: tf.constant(v) for k, v in inputs.sample_weights.items()})
    height, width = inputs.image_size

    count = len(inputs)

    def read_images(indices: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # a labelled batch with no readable image takes the next readable sample in index order
        substitutes = None if inputs.labels is None else (np.arange(count) + int(indices[-1]) + 1) % count
        seeds = None if inputs.augment is None else sample_seeds(inputs.seed, int(epochs[0]), indices)
        images, kept, _ = inputs.read(indices, seeds, unreadable, substitutes)
        return images.astype(np.float32, copy=False), kept

    def build(indices: tf.Tensor, epochs: tf.Tensor):
        images, kept = tf.numpy_function(read_images, [indices, epochs], (tf.float32, tf.int64), stateful=True,
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
