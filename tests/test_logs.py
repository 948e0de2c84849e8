"""Command-line output: -q/-v on every command, Keras progress per epoch off a terminal, no TensorFlow native lines."""
from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fashion_hier import logs
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
    tf_level, ours = os.environ.get(logs.TF_LOG_LEVEL), logs._level_is_ours  # setup_logging(verbose=True) may drop it
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers
    if tf_level is not None:
        os.environ[logs.TF_LOG_LEVEL] = tf_level
    logs._level_is_ours = ours


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


# what a process writes to descriptor 2 inside and after the window that native_load_lines_dropped filters:
# absl's banner and lines of each severity as TensorFlow's libraries write them while loading, then a
# Python line and a plain native line, both always kept, and an INFO line after the window (never filtered)
LOADING = [
    ("W", b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"),
    ("I", b"I0000 00:00:1795587596.348228   12669 port.cc:153] oneDNN custom operations are on.\n"),
    ("W", b"W0000 00:00:1795587596.348231   12669 loader.cc:7] a warning while loading\n"),
    ("E", b"E0000 00:00:1795588821.073453   32677 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n"),
    ("F", b"F0000 00:00:1795588821.073453   32677 check.cc:1] a fatal native error stays\n"),
    ("F", b"a plain line from a library\n"),
]
AFTER = b"I0000 00:00:1795587599.000001   12669 loop.cc:9] written after TensorFlow loaded\n"
FILTER_SCRIPT = textwrap.dedent(f"""
    import os, sys
    from fashion_hier.logs import native_load_lines_dropped
    with native_load_lines_dropped():
        for line in {[line for _, line in LOADING]!r}:
            os.write(2, line)
        print("a Python line stays", file=sys.stderr)
    os.write(2, {AFTER!r})
    raise SystemExit(3)
""")


def _env(**variables: str | None) -> dict[str, str]:
    """This environment with the repository importable, ``TF_CPP_MIN_LOG_LEVEL`` as a user without it has it,
    and ``variables`` set (None: removed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # this process imported fashion_hier, which set it
    env.update(variables)
    return {name: value for name, value in env.items() if value is not None}


@pytest.mark.parametrize("level, kept_severities", [(None, "F"), ("3", "F"), ("2", "EF"), ("1", "WEF"),
                                                    ("0", "IWEF")])
def test_lines_written_while_tensorflow_loads_are_kept_from_the_log_level_up(level, kept_severities):
    done = subprocess.run([sys.executable, "-c", FILTER_SCRIPT], capture_output=True, env=_env(TF_CPP_MIN_LOG_LEVEL=level),
                          timeout=60)
    assert done.returncode == 3
    expected = b"".join(line for severity, line in LOADING if severity in kept_severities)
    assert done.stderr == expected + b"a Python line stays\n" + AFTER


# absl's log prefix (severity, MMDD, time, thread id, file:line]) or its banner: any native line of TensorFlow's
NATIVE_LINE = re.compile(r"^(?:[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl)", re.M)
# first use too: a tensor on the default device is when TensorFlow initialises CUDA (and logs cuInit's failure)
IMPORT_AND_USE = "import fashion_hier, keras, tensorflow; keras.ops.ones((2,))"


@pytest.mark.slow
def test_importing_the_library_then_tensorflow_writes_nothing_to_stderr():
    done = subprocess.run([sys.executable, "-c", IMPORT_AND_USE], capture_output=True, text=True, env=_env(),
                          timeout=300)
    assert done.returncode == 0 and done.stderr == ""
    # the premise: without the library, or with the user's own level 0, TensorFlow does write its lines here
    unquieted = IMPORT_AND_USE.replace("fashion_hier, ", "")
    for script, variables in ((unquieted, {}), (IMPORT_AND_USE, {"TF_CPP_MIN_LOG_LEVEL": "0"})):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_env(**variables),
                              timeout=300)
        assert done.returncode == 0 and NATIVE_LINE.search(done.stderr), (script, variables, done.stderr)


@pytest.mark.slow
def test_a_command_shows_tensorflow_native_lines_only_with_verbose(tmp_path):
    # train imports TensorFlow once its arguments and config are read, then refuses a config with no catalogue:
    # the -v run's lines show that TensorFlow loaded
    config = tmp_path / "config.yaml"
    config.write_text("name: x\n", encoding="utf-8")
    command = [sys.executable, "-m", "fashion_hier.cli", "train", "--config", str(config)]
    quiet = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    verbose = subprocess.run([*command[:4], "-v", *command[4:]], capture_output=True, text=True, env=_env(),
                             timeout=300)
    assert quiet.returncode == verbose.returncode == 2 and "data.labels_csv and data.image_dir must be set" in quiet.stderr
    assert not NATIVE_LINE.search(quiet.stderr), quiet.stderr
    assert NATIVE_LINE.search(verbose.stderr), "-v should show TensorFlow's own lines"
