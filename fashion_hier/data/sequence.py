"""``FashionSequence``: batches of (images, {category, subcategory, attributes}) as a Keras PyDataset.

Images are RGB float32 in 0..255 (the model preprocesses them itself), decoded and resized by
``load_image``. Keras 3 does not reshuffle a PyDataset between epochs, so the Sequence does:
the order of epoch ``e`` is a permutation drawn from ``(seed, e)``, and every image's
augmentation seed from ``(seed, e, sample index)``, so a batch's content never depends on
which worker built it or when.

``LoaderInputs`` validates and holds what both loaders share (this Sequence and
``make_dataset``'s tf.data pipeline), and builds a batch from sample indices.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from fashion_hier.data.augment import apply, check_augment, sample_seeds
from fashion_hier.data.epochs import EpochDataset
from fashion_hier.data.images import (DEFAULT_MAX_PIXELS, ImageReadError, check_max_pixels, check_resize, check_size,
                                       read_images)
from fashion_hier.data.unreadable import UnreadableImage, UnreadableImages
from fashion_hier.labels import LEVELS


class LoadedBatch(NamedTuple):
    """One batch as loaded: the images, their targets, which paths they are and which were skipped.

    ``images[i]`` is the image of ``paths[i]``; ``targets`` is ``()``, ``(labels,)`` or
    ``(labels, sample_weights)`` for those rows only; ``unreadable`` lists the batch's images that
    could not be read (left out of ``images``, ``paths`` and ``targets``).
    """

    images: np.ndarray
    targets: tuple
    paths: list[str]
    unreadable: list[UnreadableImage]


@dataclass(frozen=True)
class LoaderInputs:
    """Validated loader arguments: paths, label and weight arrays aligned with them, image options."""

    paths: np.ndarray                       # (N,) str
    labels: dict[str, np.ndarray] | None    # level -> (N,) int32 or (N, K) float32
    sample_weights: dict[str, np.ndarray] | None  # level -> (N,) float32
    batch_size: int
    image_size: tuple[int, int]
    resize: str
    augment: object
    shuffle: bool
    seed: int
    max_pixels: int = DEFAULT_MAX_PIXELS    # images whose header declares more are skipped as unreadable

    @classmethod
    def build(cls, paths, labels=None, *, sample_weights=None, batch_size=32, image_size=(224, 224),
              resize="stretch", augment=None, shuffle=False, seed=0,
              max_pixels=DEFAULT_MAX_PIXELS) -> LoaderInputs:
        """Check every argument up front, with messages that name it, and normalise the arrays."""
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(f"paths must be a sequence of image paths, got the single path {os.fspath(paths)!r}")
        paths = np.asarray([os.fspath(path) for path in paths], dtype=str)
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        check_augment(augment)
        labels = _aligned(labels, "labels", len(paths))
        if sample_weights is not None and labels is None:
            raise ValueError("sample_weights were given without labels; pass labels too, or drop the weights")
        sample_weights = _aligned(sample_weights, "sample_weights", len(paths), levels=labels, one_dim=True)
        return cls(paths, labels, sample_weights, int(batch_size), check_size(image_size, "image_size"),
                   check_resize(resize), augment, bool(shuffle), int(seed), check_max_pixels(max_pixels))

    def __len__(self) -> int:
        return len(self.paths)

    def num_batches(self) -> int:
        """Batches per epoch; the last, partial batch is kept."""
        return math.ceil(len(self.paths) / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices in the order of ``epoch``: a permutation seeded by (seed, epoch), or 0..N-1."""
        if not self.shuffle:
            return np.arange(len(self.paths))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.paths))

    def read(self, indices: np.ndarray, seeds: np.ndarray | None, unreadable: UnreadableImages,
             substitutes: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray, list[UnreadableImage]]:
        """Images of the readable ``indices`` (augmented, one seed per image), those indices, and the failures.

        Unreadable images are left out and added to ``unreadable``. When none of ``indices`` can be
        read and ``substitutes`` are given (batches with labels), the first readable image among
        them is loaded instead, so that a training batch is never empty (BatchNormalization would
        turn an empty batch into NaN statistics).
        """
        indices = np.asarray(indices, dtype=np.int64)
        loaded = read_images(self.paths[indices], self.image_size, resize=self.resize, max_pixels=self.max_pixels)
        failed = [UnreadableImage(path, reason) for path, reason in loaded.failed]
        for path, reason in failed:
            unreadable.add(path, reason)
        kept, images = indices[loaded.kept], loaded.images
        batch_seeds = None if seeds is None else np.asarray(seeds)[loaded.kept]
        if not len(kept) and len(indices) and substitutes is not None:
            kept, images = self._substitute(substitutes, set(indices.tolist()), unreadable)
            batch_seeds = None if seeds is None else np.asarray(seeds)[:1]
        if self.augment is not None and len(kept):
            images = apply(self.augment, images, batch_seeds)
        return images, kept, failed

    def _substitute(self, candidates: Iterable[int], tried: set[int], unreadable: UnreadableImages
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The first readable image among ``candidates`` (each sample tried at most once), as a one-image batch."""
        for index in candidates:
            index = int(index)
            if index in tried or self.paths[index] in unreadable:
                continue
            tried.add(index)
            loaded = read_images(self.paths[[index]], self.image_size, resize=self.resize, max_pixels=self.max_pixels)
            for path, reason in loaded.failed:
                unreadable.add(path, reason)
            if len(loaded.kept):
                return np.asarray([index], np.int64), loaded.images
        raise ImageReadError(self.paths[0], f"none of the {len(self.paths)} images given to the loader can be "
                                            "read; check the image folder (see the unreadable-images report)")

    def targets(self, indices: np.ndarray) -> tuple:
        """``()``, ``(labels,)`` or ``(labels, sample_weights)`` of ``indices``, each a dict by level."""
        if self.labels is None:
            return ()
        labels = {level: values[indices] for level, values in self.labels.items()}
        if self.sample_weights is None:
            return (labels,)
        return labels, {level: values[indices] for level, values in self.sample_weights.items()}


def _aligned(arrays: Mapping[str, np.ndarray] | None, name: str, rows: int, *, levels=None,
             one_dim: bool = False) -> dict[str, np.ndarray] | None:
    """Check a {level: array} dict: known levels, one row per path; integer labels -> int32, others float32."""
    if arrays is None:
        return None
    if not isinstance(arrays, Mapping) or not arrays:
        raise TypeError(f"{name} must be a non-empty dict {{level: array}} with levels from {LEVELS}, "
                        f"got {type(arrays).__name__}")
    allowed = tuple(levels) if levels is not None else LEVELS
    unknown = sorted(set(arrays) - set(allowed))
    if unknown:
        raise ValueError(f"{name} has keys {unknown}; expected keys among {list(allowed)}")
    checked = {}
    for level, values in arrays.items():
        values = np.asarray(values)
        if values.ndim == 0 or len(values) != rows:
            length = "a scalar" if values.ndim == 0 else f"{len(values)} rows"
            raise ValueError(f"{name}[{level!r}] has {length} but paths has {rows}; "
                             "pass one row per image path, in the same order")
        if one_dim and values.ndim != 1:
            raise ValueError(f"{name}[{level!r}] must be one weight per sample, shape ({rows},), got {values.shape}")
        integer = np.issubdtype(values.dtype, np.integer)
        if not (integer or np.issubdtype(values.dtype, np.floating) or values.dtype == bool):
            raise TypeError(f"{name}[{level!r}] must be numeric, got dtype {values.dtype}")
        checked[level] = values.astype(np.int32 if integer and not one_dim else np.float32)
    return checked


class FashionSequence(EpochDataset):
    """Batches ``(images, labels[, sample_weights])`` (or images only when ``labels`` is None).

    An image that cannot be read is left out of its batch together with its labels and weights
    (the batch shrinks), logged once, and recorded in ``unreadable`` (an ``UnreadableImages``;
    ``write_unreadable_report(sequence.unreadable, run_dir.unreadable_images)`` saves it). A
    labelled batch whose images are all unreadable takes the next readable image of the epoch.

    Args:
        paths: image files, one per sample.
        labels: ``{"category": (N,), "subcategory": (N,), "attributes": (N, A)}`` as from
            ``LabelSpace.encode`` (any subset of the levels), or None for prediction.
        sample_weights: optional ``{level: (N,)}`` per-sample loss weights.
        augment: an albumentations transform taking float32 0..255 (``augment.training_preset``)
            or None.
        shuffle: reshuffle the samples every epoch, from ``seed``.
        max_pixels: pixel budget per image, checked from the header before decoding; a larger
            image is skipped and reported like an unreadable one.
        unreadable: the record to add skipped images to (shared between loaders); a new one if None
            (kept across processes with ``use_multiprocessing``; pass
            ``UnreadableImages(across_processes=True)`` when sharing one with such a loader).
        workers, use_multiprocessing, max_queue_size: Keras PyDataset options.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], labels: Mapping[str, np.ndarray] | None = None, *,
                 sample_weights: Mapping[str, np.ndarray] | None = None, batch_size: int = 32,
                 image_size: int | Sequence[int] = (224, 224), resize: str = "stretch", augment=None,
                 shuffle: bool = False, seed: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS,
                 unreadable: UnreadableImages | None = None,
                 workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.inputs = LoaderInputs.build(paths, labels, sample_weights=sample_weights, batch_size=batch_size,
                                         image_size=image_size, resize=resize, augment=augment, shuffle=shuffle,
                                         seed=seed, max_pixels=max_pixels)
        if unreadable is None:
            unreadable = UnreadableImages(across_processes=bool(use_multiprocessing and workers > 1))
        self.unreadable = unreadable
        # on_epoch_end calls so far. Keras's fit calls it once before its first epoch too, so fit's
        # epoch k reads epoch k + 1; setting epoch = initial_epoch before a resumed fit repeats that.
        self.epoch = 0

    def __len__(self) -> int:
        return self.inputs.num_batches()

    def __getitem__(self, index: int):
        batch = self.load_batch(index)
        return (batch.images, *batch.targets) if batch.targets else batch.images

    def load_batch(self, index: int) -> LoadedBatch:
        """Batch ``index`` with the paths it holds and the images it skipped (for callers that report per path).

        Without labels a batch whose images are all unreadable is empty (0 rows).
        """
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        size = self.inputs.batch_size
        indices = self._order[index * size:(index + 1) * size]
        seeds = sample_seeds(self.inputs.seed, self.epoch, indices) if self.inputs.augment is not None else None
        following = np.roll(self._order, -(index * size + len(indices)))  # the rest of the epoch, then its start
        substitutes = None if self.inputs.labels is None else following
        images, kept, failed = self.inputs.read(indices, seeds, self.unreadable, substitutes)
        return LoadedBatch(images, self.inputs.targets(kept), self.inputs.paths[kept].tolist(), failed)

    def draw(self, epoch: int) -> None:
        """The sample order of ``epoch`` (when shuffling); its augmentation seeds follow from the epoch too."""
        self._order = self.inputs.order(epoch)
