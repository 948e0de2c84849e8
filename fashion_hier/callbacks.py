"""Keras callbacks the trainers share."""
from __future__ import annotations

import logging

import keras

logger = logging.getLogger(__name__)


class StopOnInterrupt(keras.callbacks.Callback):
    """Ctrl-C during ``fit`` stops at the next batch boundary, then raises ``KeyboardInterrupt``.

    Python's own SIGINT handling raises ``KeyboardInterrupt`` at whatever bytecode the main thread is
    running. Inside Keras and TensorFlow that went wrong in two ways (tests/test_faults.py): about 1
    run in 4 trained on as if no Ctrl-C had come, and others stopped but then aborted at exit with
    the loader's threads and tf.data's generator mid-flight ("terminate called without an active
    exception", exit -6). Used as a context manager around ``fit`` and passed to it as a callback,
    this class makes the first SIGINT only set a flag. The next batch end asks Keras to stop
    (training, validation or prediction), ``fit`` returns through its own clean-up, and leaving the
    block raises ``KeyboardInterrupt``. One block may hold several fits (the stages of a run, so no
    Ctrl-C falls between two handlers); call ``raise_if_requested`` before each. A second SIGINT
    raises at once, as Python would. Outside the main thread, where no handler can be installed, it
    does nothing. Callbacks that record epochs check ``requested``, so a cut-short epoch is never
    recorded as finished.
    """

    def __init__(self):
        super().__init__()
        self.requested = False
        self._installed, self._previous = False, None

    def __enter__(self) -> "StopOnInterrupt":
        import signal
        import threading

        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        import signal

        if self._installed:  # None: the previous handler was not Python's (a C one); Python's default then
            signal.signal(signal.SIGINT, signal.default_int_handler if self._previous is None else self._previous)
            self._installed, self._previous = False, None
        if exc_type is None:
            self.raise_if_requested()

    def raise_if_requested(self) -> None:
        """``KeyboardInterrupt`` if Ctrl-C was pressed: between two fits of one block, before the next starts."""
        if self.requested:
            raise KeyboardInterrupt("stopped at a batch boundary after Ctrl-C")

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:  # the second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: stopping after the current batch (press it again to stop at once)")

    def _stop_if_requested(self) -> None:
        if self.requested and self.model is not None:
            self.model.stop_training = True
            self.model.stop_evaluating = True
            self.model.stop_predicting = True

    def on_train_batch_end(self, batch, logs=None):
        self._stop_if_requested()

    def on_test_batch_end(self, batch, logs=None):
        self._stop_if_requested()

    def on_predict_batch_end(self, batch, logs=None):
        self._stop_if_requested()
