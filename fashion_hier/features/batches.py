"""Batches of in-memory feature rows for the head, in an order drawn from (seed, epoch).

Keras's own ``shuffle=True`` on arrays draws each epoch's order from TensorFlow's global random state, so a
resumed fit would see other batches than an uninterrupted one. Here epoch ``e``'s order is the permutation
``default_rng([seed, e])`` draws, and the training loop sets ``epoch`` at each epoch's start
(``fashion_hier.training_loop``), so a resumed head trains on exactly the batches it would have.
"""
from __future__ import annotations

import math

import numpy as np

from fashion_hier.data.epochs import EpochDataset


class ArrayBatches(EpochDataset):
    """``(features, {level: targets})`` batches of ``x`` and ``labels``; shuffled per epoch when ``seed`` is given.

    ``seed=None``: rows in order (validation, scoring). The last, partial batch is kept.
    """

    def __init__(self, x: np.ndarray, labels: dict[str, np.ndarray], batch_size: int, *, seed: int | None = None):
        super().__init__()
        self.x, self.labels = np.asarray(x), {level: np.asarray(values) for level, values in labels.items()}
        for level, values in self.labels.items():
            if len(values) != len(self.x):
                raise ValueError(f"labels[{level!r}] has {len(values)} rows but x has {len(self.x)}; pass one "
                                 f"target per feature row")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected a positive number of rows per batch")
        self.batch_size, self.seed = int(batch_size), seed
        self.epoch = 0

    def draw(self, epoch: int) -> None:
        self._order = (np.arange(len(self.x)) if self.seed is None
                       else np.random.default_rng([self.seed, epoch]).permutation(len(self.x)))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[rows], {level: values[rows] for level, values in self.labels.items()}

