"""Logging for the command line: the ``fashion_hier`` logger, Keras progress, and TensorFlow's native noise.

Library code logs to ``logging.getLogger("fashion_hier")`` (or a child); the CLI calls
``setup_logging`` once with the ``-q``/``-v`` flags. Keras progress follows the same level
(``keras_verbosity``): bars on a terminal, one line per epoch in a log file, nothing when quiet.

TensorFlow 2.21 writes its C++ log lines (``I0000 ... oneDNN custom operations are on``,
``E0000 ... failed call to cuInit``) to file descriptor 2 before absl logging is initialised, and
``TF_CPP_MIN_LOG_LEVEL`` does not stop them (measured: levels 2 and 3 both still print them).
``silence_native_logs`` therefore routes descriptor 2 through a filter that drops those lines and
passes everything else (Python's tracebacks and warnings, fatal native errors) unchanged.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

LOGGER_NAME = "fashion_hier"
# absl's native log prefix (severity I/W/E, MMDD, time, thread id, file:line]) and its one-time banner;
# before absl is initialised the time reads "00:00:<seconds since 1970>.<microseconds>"
_NATIVE_NOISE = re.compile(rb"^(?:[IWE]\d{4} [\d:.]+ +\d+ [\w.\-]+:\d+\] |"
                           rb"WARNING: All log messages before absl::InitializeLog\(\) is called)")


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> logging.Logger:
    """The ``fashion_hier`` logger at WARNING (quiet), INFO (default) or DEBUG (verbose), writing to stderr."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if not verbose:
        quiet_tensorflow()
    return logger


class _StderrHandler(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is at each message (a test's capture, a redirect), not at setup."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def keras_verbosity(stream=None) -> int:
    """Keras ``verbose`` for fit/predict: 0 when the ``fashion_hier`` logger was set quiet (WARNING or above),
    1 (per-step bars) on a terminal or in a notebook, 2 (one line per epoch) in a log file or pipe."""
    level = logging.getLogger(LOGGER_NAME).level
    if level != logging.NOTSET and level > logging.INFO:
        return 0
    stream = sys.stdout if stream is None else stream
    terminal = hasattr(stream, "isatty") and stream.isatty()
    return 1 if terminal or "ipykernel" in sys.modules else 2


def quiet_tensorflow() -> None:
    """Ask TensorFlow and absl for errors only (effective for imports yet to come), and filter descriptor 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("error")
    silence_native_logs()


_filter_lock = threading.Lock()
_filter_installed = False


def silence_native_logs() -> bool:
    """Drop TensorFlow's native log lines from descriptor 2, once per process; returns whether it is on.

    Only when ``sys.stderr`` writes to descriptor 2 (not under a test's capture), since the filter
    replaces that descriptor with a pipe read by a thread.
    """
    global _filter_installed
    with _filter_lock:
        if _filter_installed:
            return True
        try:
            if sys.stderr is None or sys.stderr.fileno() != 2:
                return False
        except (AttributeError, ValueError, OSError):
            return False
        sys.stderr.flush()
        real_stderr = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        thread = threading.Thread(target=_forward, args=(read_end, real_stderr), name="native-log-filter",
                                  daemon=True)
        thread.start()
        atexit.register(_restore, real_stderr, thread)
        _filter_installed = True
        return True


def _forward(read_end: int, real_stderr: int) -> None:
    """Copy lines from the pipe to the real stderr, minus TensorFlow's native log lines."""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not _NATIVE_NOISE.match(line))
            if kept:
                os.write(real_stderr, kept)
        if pending and not _NATIVE_NOISE.match(pending):
            os.write(real_stderr, pending)


def _restore(real_stderr: int, thread: threading.Thread) -> None:
    """At exit: put the real stderr back (closing the pipe) and let the filter pass on what it holds."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    os.dup2(real_stderr, 2)
    thread.join(timeout=2)
