"""Logging for the command line: the ``fashion_hier`` logger, Keras progress, and TensorFlow's native log lines.

Library code logs to ``logging.getLogger("fashion_hier")`` (or a child); the CLI calls
``setup_logging`` once with the ``-q``/``-v`` flags. Keras progress follows the same level
(``keras_verbosity``): bars on a terminal, one line per epoch in a log file, nothing when quiet.

TensorFlow's C++ lines: ``import fashion_hier`` sets ``TF_CPP_MIN_LOG_LEVEL=3`` unless the user set a level
(``quiet_tensorflow_by_default``; ``-v`` takes it back). Measured on TensorFlow 2.21 (CPU, no CUDA driver):
that level, set before TensorFlow loads, stops the lines TensorFlow writes once loaded
(``cpu_feature_guard.cc] This TensorFlow binary is optimized...``, ``E0000 ... cuda_platform.cc:52] failed
call to cuInit``), but not those its shared libraries write while they load, twice per import (two libraries)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796678973.588045   20381 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1796678973.588476   20381 cudart_stub.cc:31] Could not find cuda drivers on your machine, ...

No variable stops these: TF_CPP_MIN_LOG_LEVEL 0-3, TF_CPP_MAX_VLOG_LEVEL=-1, ABSL_MIN_LOG_LEVEL,
GLOG_minloglevel and CUDA_VISIBLE_DEVICES all leave them (absl's minimum level is a C++ flag, not read from
the environment); TF_ENABLE_ONEDNN_OPTS=0 drops the oneDNN line only, by turning oneDNN off. So
``native_load_lines_dropped`` captures descriptor 2 for the duration of TensorFlow's import alone (the hook
in ``fashion_hier/__init__.py``) and writes back all but the absl lines below the level.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from typing import Iterator

LOGGER_NAME = "fashion_hier"
TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "3"
_level_is_ours = False  # whether quiet_tensorflow_by_default set TF_LOG_LEVEL (so -v may take it back)
# absl's log prefix: severity, MMDD, time, thread id, file:line]; before absl is initialised (always, in
# TensorFlow's Python package) the date and time read "0000 00:00:<seconds since 1970>.<microseconds>"
_NATIVE_LINE = re.compile(rb"([IWEF])\d{4} [\d:.]+ +\d+ [\w.\-]+:\d+\] ")
_SEVERITIES = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
_ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> logging.Logger:
    """The ``fashion_hier`` logger at WARNING (quiet), INFO (default) or DEBUG (verbose), writing to stderr."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if verbose:
        show_tensorflow_logs()
    else:  # TensorFlow's Python-side warnings too
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        if "absl.logging" in sys.modules:
            sys.modules["absl.logging"].set_verbosity("error")
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


def quiet_tensorflow_by_default() -> None:
    """Set ``TF_CPP_MIN_LOG_LEVEL`` to 3 (fatal errors only) unless the user chose a level; TensorFlow reads it
    once, when it loads, so this runs when ``fashion_hier`` is imported."""
    global _level_is_ours
    if TF_LOG_LEVEL not in os.environ:
        os.environ[TF_LOG_LEVEL] = QUIET_LEVEL
        _level_is_ours = True


def show_tensorflow_logs() -> None:
    """Undo ``quiet_tensorflow_by_default`` (``-v``): TensorFlow's own default level, all its lines, if it has not
    loaded yet. A level the user set stays."""
    global _level_is_ours
    if _level_is_ours and "tensorflow" not in sys.modules:
        os.environ.pop(TF_LOG_LEVEL, None)
        _level_is_ours = False


def tensorflow_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it: 0 (all), 1 (no INFO), 2 (no WARNING), 3 (no ERROR)."""
    try:
        return int(os.environ.get(TF_LOG_LEVEL, "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def native_load_lines_dropped() -> Iterator[None]:
    """Run the body (TensorFlow's import) with descriptor 2 captured, then write back everything but the native
    log lines below ``TF_CPP_MIN_LOG_LEVEL``: the ones TensorFlow's libraries print while they load.

    A process that dies inside the body (an abort in a native library) loses what the body wrote; with
    ``TF_CPP_MIN_LOG_LEVEL=0`` nothing is captured.
    """
    level = tensorflow_log_level()
    try:
        real_stderr = os.dup(2) if level > 0 else None
    except OSError:  # no descriptor 2 to capture
        real_stderr = None
    if real_stderr is None:
        yield
        return
    import tempfile

    with tempfile.TemporaryFile() as captured:
        _flush_stderr()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()  # Python's own lines written meanwhile go to the capture, in order
            os.dup2(real_stderr, 2)
            os.close(real_stderr)
            captured.seek(0)
            kept = b"".join(line for line in captured.read().splitlines(keepends=True)
                            if _native_severity(line) >= level)
            with open(2, "wb", closefd=False) as stderr:
                stderr.write(kept)


def _native_severity(line: bytes) -> int:
    """0-3 (INFO to FATAL) for an absl log line or absl's banner, 3 (always kept) for any other line."""
    if line.startswith(_ABSL_BANNER):
        return 1
    match = _NATIVE_LINE.match(line)
    return _SEVERITIES[match.group(1)] if match else 3


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):  # None, closed or detached
        pass
