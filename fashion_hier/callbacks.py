"""Keras callbacks the trainers share."""
from __future__ import annotations

import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each training epoch (for the cached-against-full speed comparisons)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)
