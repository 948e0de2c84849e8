"""The `fashion-hier` command: one sub-command per module, each module owning its own arguments.

Every sub-command module exposes ``main(argv=None, parser=None) -> int`` (it adds its own arguments
to ``parser``): a thin module of ``fashion_hier.commands``, one per command, which may import any part of the
library.
What every command shares lives here, around the dispatch:

- ``-q/--quiet``, ``-v/--verbose`` (logging, Keras progress, TensorFlow's native log lines: see
  ``fashion_hier.logs``) and ``--debug``;
- a user's mistake (``USER_ERRORS``) is one line on stderr, ``fashion-hier COMMAND: message``, and
  exit code 2 (``--debug`` shows the traceback); anything else keeps its traceback. Arguments are checked
  while parsing (the rules of ``fashion_hier.cli_args``), so a bad one is such a line before any work;
- Ctrl-C is one line and exit code 130 (training stops at a batch's end first: ``callbacks.StopOnInterrupt``).
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

from fashion_hier.atomic import DiskFullError
from fashion_hier.cli_args import CommandParser
from fashion_hier.errors import RunDirectoryError

SUBCOMMANDS = {
    "demo": ("fashion_hier.commands.demo", "generate a synthetic catalogue, train a small model and evaluate it"),
    "train": ("fashion_hier.commands.train", "train a model from a YAML config into a run directory"),
    "evaluate": ("fashion_hier.commands.evaluate", "metrics, tables and plots for a run on a split or a labelled CSV"),
    "predict": ("fashion_hier.commands.predict", "score a folder or CSV of images with a trained run"),
    "features": ("fashion_hier.commands.features", "cache frozen-backbone features and train the head on them"),
    "audit": ("fashion_hier.commands.audit", "rank the catalogue rows whose labels are probably wrong (cleanlab, cross-validated)"),
    "experiments": ("fashion_hier.commands.experiments", "train and evaluate several configs into one comparison table"),
    "export": ("fashion_hier.commands.export", "export a run as a SavedModel (serves JPEG bytes) or TFLite"),
    "index": ("fashion_hier.commands.index", "embed a catalogue and build a similarity index"),
    "similar": ("fashion_hier.commands.similar", "nearest neighbours of query images in an index"),
}


def _usage() -> str:
    lines = ["usage: fashion-hier COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "Run 'fashion-hier COMMAND --help' for the options of a command."]
    return "\n".join(lines)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the user must change something: bad config values and arguments (``ValueError``,
    ``ConfigError`` included), missing files, a run directory in the way, a full disk."""
    return ValueError, FileNotFoundError, NotADirectoryError, RunDirectoryError, DiskFullError


RESUMABLE = ("train", "features", "experiments")  # commands that continue where an interrupted run stopped


def common_arguments() -> argparse.ArgumentParser:
    """The options every sub-command accepts (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    noise = common.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress")
    noise.add_argument("-v", "--verbose", action="store_true",
                       help="debug messages, and TensorFlow's own log lines")
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return common


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command's own ``main`` (imported lazily: TensorFlow loads only when needed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from fashion_hier import __version__

        print(f"fashion-hier {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"fashion-hier: unknown command {command!r}; known commands: {', '.join(SUBCOMMANDS)}",
              file=sys.stderr)
        return 2
    common = common_arguments()
    flags, _ = common.parse_known_args(rest)
    from fashion_hier.logs import setup_logging

    setup_logging(quiet=flags.quiet, verbose=flags.verbose)  # before TensorFlow is imported
    prog = f"fashion-hier {command}"
    try:
        module = import_module(SUBCOMMANDS[command][0])
        # "resolve": a sub-command's own option of the same name wins (experiments' --verbose N, for now)
        parser = CommandParser(prog=prog, description=SUBCOMMANDS[command][1], parents=[common],
                               conflict_handler="resolve")
        return int(module.main(rest, parser=parser) or 0)
    except KeyboardInterrupt:
        hint = "; run the same command again to resume" if command in RESUMABLE else ""
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return 130
    except user_errors() as error:
        if flags.debug:
            raise
        print(f"{prog}: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if flags.debug:
            raise
        print(f"{prog}: unexpected error: {type(error).__name__}: {_one_line(error)}\n"
              f"this is probably a bug; run again with --debug for the traceback and report it", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    """The error's message on one line (``KeyError`` quotes its key; an OSError keeps strerror and file)."""
    if isinstance(error, OSError) and error.strerror:
        message = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        message = str(error) or type(error).__name__
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
