"""``EpochDataset``: a Keras ``PyDataset`` whose batches of epoch ``e`` are drawn from (seed, e) alone.

Keras 3 neither reshuffles a ``PyDataset`` nor tells it which epoch it serves, and a resumed fit starts at
its ``initial_epoch``. The library's loaders (``FashionSequence``, the head's ``ArrayBatches``, the
fine-tune's ``CachedViews``) therefore keep an ``epoch`` that the training loop sets at each epoch's start
(``fashion_hier.training_loop``) and draw that epoch's order (and augmentation) from it, so that a resumed
fit reads exactly the batches an uninterrupted one did.
"""
from __future__ import annotations

import keras


class EpochDataset(keras.utils.PyDataset):
    """A ``PyDataset`` with an ``epoch``: setting it calls ``draw(epoch)``; Keras's ``on_epoch_end`` advances it."""

    @property
    def epoch(self) -> int:
        """The epoch whose order (and augmentation) ``__getitem__`` uses."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = int(value)
        self.draw(self._epoch)

    def draw(self, epoch: int) -> None:
        """Prepare what ``__getitem__`` reads for ``epoch`` (its order, views, ...)."""
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        self.epoch += 1
