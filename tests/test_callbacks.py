"""StopOnInterrupt: Ctrl-C during fit stops at a batch boundary, then raises; a second one raises at once."""
from __future__ import annotations

import signal

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.callbacks import StopOnInterrupt  # noqa: E402


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    return model


class _CtrlCAt(keras.callbacks.Callback):
    """Sends this process a real SIGINT at the end of the given (epoch, batch) and records what ran."""

    def __init__(self, epoch: int, batch: int, times: int = 1):
        super().__init__()
        self.at, self.times = (epoch, batch), times
        self.epoch, self.batches, self.test_batches = None, [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((self.epoch, batch))
        if (self.epoch, batch) == self.at:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)

    def on_test_batch_end(self, batch, logs=None):
        self.test_batches.append((self.epoch, batch))


def test_ctrl_c_stops_fit_after_the_current_batch_skips_most_of_validation_and_raises_after_fit():
    x, y = np.zeros((20, 3), np.float32), np.zeros((20, 1), np.float32)
    ctrl_c, before = _CtrlCAt(epoch=1, batch=1), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="batch boundary"):
        with StopOnInterrupt() as interrupt:
            _model().fit(x, y, batch_size=2, epochs=5, validation_data=(x, y), verbose=0,
                         callbacks=[ctrl_c, interrupt])
    # 10 batches per epoch: epoch 0 whole, epoch 1 up to the signal's batch, then nothing more
    assert ctrl_c.batches == [(0, b) for b in range(10)] + [(1, 0), (1, 1)]
    assert ctrl_c.test_batches == [(0, b) for b in range(10)] + [(1, 0)]  # Keras still opens validation
    assert interrupt.requested and signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_raises_at_once_and_the_handler_is_restored():
    x, y = np.zeros((20, 3), np.float32), np.zeros((20, 1), np.float32)
    ctrl_c, before = _CtrlCAt(epoch=0, batch=3, times=2), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as raised:
        with StopOnInterrupt() as interrupt:
            _model().fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[ctrl_c, interrupt])
    assert "batch boundary" not in str(raised.value) and interrupt.requested
    assert ctrl_c.batches == [(0, b) for b in range(4)]
    assert signal.getsignal(signal.SIGINT) is before


def test_without_ctrl_c_fit_runs_to_the_end_and_nothing_is_raised():
    x, y = np.zeros((8, 3), np.float32), np.zeros((8, 1), np.float32)
    with StopOnInterrupt() as interrupt:
        history = _model().fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[interrupt])
    assert len(history.history["loss"]) == 3 and not interrupt.requested
