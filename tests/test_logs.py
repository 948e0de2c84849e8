"""Command-line output: -q/-v on every command, Keras progress per epoch off a terminal, TensorFlow's native lines filtered."""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fashion_hier.cli import SUBCOMMANDS, common_arguments
from fashion_hier.logs import LOGGER_NAME, keras_verbosity, setup_logging

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logger():
    logger = logging.getLogger(LOGGER_NAME)
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_keras_progress_is_bars_on_a_terminal_epoch_lines_in_a_file_and_nothing_when_quiet(restore_logger):
    restore_logger.setLevel(logging.NOTSET)  # a library user who configured nothing still sees progress
    assert keras_verbosity(_Terminal()) == 1 and keras_verbosity(io.StringIO()) == 2
    setup_logging(quiet=True)
    assert restore_logger.level == logging.WARNING and keras_verbosity(_Terminal()) == 0
    setup_logging(verbose=True)
    assert restore_logger.level == logging.DEBUG and keras_verbosity(io.StringIO()) == 2
    setup_logging()
    assert restore_logger.level == logging.INFO
    assert sum(type(handler).__name__ == "_StderrHandler" for handler in restore_logger.handlers) == 1


def test_the_logger_writes_to_the_stderr_of_the_moment(restore_logger, capsys):
    setup_logging()
    logging.getLogger(f"{LOGGER_NAME}.train").info("resuming the interrupted run in %s", "runs/x")
    logging.getLogger(f"{LOGGER_NAME}.train").debug("not shown without -v")
    assert capsys.readouterr().err == "resuming the interrupted run in runs/x\n"


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_command_accepts_quiet_verbose_and_debug(command):
    import argparse
    from importlib import import_module

    parser = argparse.ArgumentParser(parents=[common_arguments()], conflict_handler="resolve")
    module = import_module(SUBCOMMANDS[command][0])
    with pytest.raises(SystemExit) as stopped:  # --help after parsing the shared flags: exit 0 if all are known
        module.main(["-q", "--debug", "--help"], parser=parser)
    assert stopped.value.code == 0
    with pytest.raises(SystemExit):
        common_arguments().parse_args(["-q", "-v"])  # one or the other


NATIVE = textwrap.dedent("""
    import os, sys
    from fashion_hier.logs import setup_logging
    setup_logging(verbose=sys.argv[1] == "verbose")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1795587596.348228   12669 port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"E0000 00:00:1795588821.073453   32677 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\\n")
    os.write(2, b"F0000 00:00:1795588821.073453   32677 check.cc:1] a fatal native error stays\\n")
    print("a Python warning stays", file=sys.stderr)
    raise SystemExit(3)
""")


@pytest.mark.parametrize("mode, kept", [("default", 2), ("verbose", 5)])
def test_tensorflow_native_log_lines_are_dropped_unless_verbose(mode, kept):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", NATIVE, mode], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 3
    lines = done.stderr.splitlines()
    assert len(lines) == kept, done.stderr
    assert lines[-2:] == ["F0000 00:00:1795588821.073453   32677 check.cc:1] a fatal native error stays",
                          "a Python warning stays"]
