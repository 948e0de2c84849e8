"""The rules every command's arguments follow: one argparse ``type=`` function per kind of value.

Each rule turns an argument's text into its value, or raises ``argparse.ArgumentTypeError`` saying what
the value is, what was expected and what to do; argparse prefixes the argument's name (``argument --run:``).
They run while the command line is parsed, so a bad value stops a command before TensorFlow loads or a
file is written. ``CommandParser`` (what ``fashion_hier.cli`` parses with) raises ``UsageError`` instead of
printing the usage, so that the CLI shows every argument mistake as one line with exit code 2.

No TensorFlow here (nor anything that imports it): parsing must stay fast.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable, NoReturn

from fashion_hier.engine import ENGINES, PRECISIONS
from fashion_hier.labels import IMAGE_PATH
from fashion_hier.rundir import RunDir

Rule = Callable[[str], object]


class UsageError(ValueError):
    """A command line that cannot work (bad value, missing or unknown argument); the CLI prints it as one line."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise ``UsageError`` (one line via ``fashion_hier.cli``), not usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')") from None


# ---- numbers --------------------------------------------------------------------------------
def int_at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``."""

    def rule(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"pass a whole number >= {minimum}, not {text!r}")
        return value

    return rule


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def _number_in(low: float, high: float, *, low_included: bool) -> Callable[[str], float]:
    interval = f"{'[' if low_included else '('}{low:g}, {high:g}]"

    def rule(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = low <= value <= high if low_included else low < value <= high  # NaN is never inside
        if not inside:
            raise argparse.ArgumentTypeError(f"pass a number in {interval}, not {text!r}")
        return value

    return rule


fraction = _number_in(0.0, 1.0, low_included=False)  # (0, 1]: a share of something that cannot be empty
probability = _number_in(0.0, 1.0, low_included=True)  # [0, 1]: a probability or a score threshold


# ---- paths read -----------------------------------------------------------------------------
def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; pass a file or folder name")
    return Path(text)


def _missing(path: Path, what: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{path} does not exist; pass {what}")


def existing_file(what: str) -> Callable[[str], Path]:
    """An existing file; ``what`` says which (``"a YAML file of a TrainConfig"``)."""

    def rule(text: str) -> Path:
        path = _path(text)
        if not path.exists():
            raise _missing(path, what)
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"{path} is a folder, not a file; pass {what}")
        return path

    return rule


def existing_directory(what: str) -> Callable[[str], Path]:
    """An existing folder; ``what`` says which (``"the folder of the catalogue's images"``)."""

    def rule(text: str) -> Path:
        path = _path(text)
        if not path.exists():
            raise _missing(path, what)
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file, not a folder; pass {what}")
        return path

    return rule


_RUN = "a run directory written by 'fashion-hier train'"


def run_directory(text: str) -> Path:
    """A run directory: a folder holding the run's config or model file (every run holds one of them)."""
    path = existing_directory(_RUN)(text)
    run = RunDir(path)
    holder = run.training_holder()
    if holder is not None:  # files in flux: say so rather than "not a run" or "did not finish"
        raise argparse.ArgumentTypeError(f"training in progress in {path} ({holder}); wait for it to finish "
                                         f"(it writes {RunDir.FINISHED}), then run this command again")
    if not (run.config.is_file() or run.model.is_file()):
        raise argparse.ArgumentTypeError(f"{path} is not a run directory (it holds neither {RunDir.CONFIG} nor "
                                         f"{RunDir.MODEL}); pass {_RUN}")
    return path


def run_or_model(text: str) -> Path:
    """A run directory, or one ``.keras`` model file (what ``Predictor.load`` reads)."""
    path = _path(text)
    what = f"{_RUN} or a .keras model file"
    if not path.exists():
        raise _missing(path, what)
    if path.is_file() and path.suffix != ".keras":
        raise argparse.ArgumentTypeError(f"{path} is not a .keras model file; pass {what}")
    return path if path.is_file() else run_directory(text)


def image_source(text: str) -> Path:
    """A folder of images, or a ``.csv`` file listing them (what ``predict.list_images`` reads)."""
    path = _path(text)
    what = "a folder of images or a .csv file with a column of image paths"
    if not path.exists():
        raise _missing(path, what)
    if path.is_file() and path.suffix.lower() != ".csv":
        raise argparse.ArgumentTypeError(f"{path} is neither a folder nor a .csv file; pass {what}")
    return path


def backbone_weights(text: str) -> str:
    """``imagenet``, ``none`` (random initialisation) or an existing weights file; the text is kept as given."""
    if text in ("imagenet", "none", "None", "null"):
        return text
    existing_file("'imagenet', 'none' or an existing weights file (.h5)")(text)
    return text


# ---- paths written --------------------------------------------------------------------------
def _check_can_create(folder: Path, target: Path) -> None:
    """``folder`` exists as a writable folder, or can be made: its nearest existing ancestor is a writable folder."""
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {target}: {existing} is a file, so no folder can be made "
                                         f"there; pass a path inside a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {target}: no permission to write in {existing}; pass a "
                                         f"path in a folder you can write to")


def output_file(text: str) -> Path:
    """A file to write: not an existing folder, in a folder that exists or can be made and is writable."""
    path = _path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder, not a file; pass the name of a file to write")
    _check_can_create(path.parent, path)
    return path


def output_directory(text: str) -> Path:
    """A folder to write into: not an existing file, and it exists or can be made, writable."""
    path = _path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; pass a folder to write into (made if missing)")
    _check_can_create(path, path)
    return path


def output_directory_or_file(*file_suffixes: str) -> Callable[[str], Path]:
    """A file to write when the path ends in one of ``file_suffixes`` (``".tflite"``), else a folder."""

    def rule(text: str) -> Path:
        return output_file(text) if Path(text).suffix in file_suffixes else output_directory(text)

    return rule


def as_text(rule: Rule) -> Callable[[str], str]:
    """``rule``'s check, keeping the argument's text as given (for commands that use it as a string)."""

    def checked(text: str) -> str:
        rule(text)
        return text

    return checked


# ---- the photos a command scores ------------------------------------------------------------
def add_image_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--images`` (a folder, or a CSV of paths) and ``--path-column``: how predict and index take their photos."""
    parser.add_argument("--images", required=True, type=image_source,
                        help="folder of images, or a CSV with an image_path column")
    parser.add_argument("--path-column", default=IMAGE_PATH, help="column of image paths when --images is a CSV")


# ---- the inference engine -------------------------------------------------------------------
def add_engine_arguments(parser: argparse.ArgumentParser, *, spark: bool = True) -> None:
    """``--engine`` and ``--precision`` (fashion_hier.engine), the same for every command that scores photos.

    ``spark``: also accept 0.3's ``--engine local|spark`` (predict's former meaning of the option).
    """
    parser.add_argument("--engine", choices=(*ENGINES, "local", "spark") if spark else ENGINES, default="keras",
                        help="what runs the model: keras (default) or openvino (pip install 'fashion-hier[openvino]'; "
                             "the converted model is kept in RUN/openvino/)"
                             + (". 'local' and 'spark' are 0.3's spellings of keras and --spark" if spark else ""))
    parser.add_argument("--precision", choices=PRECISIONS, default="f32",
                        help="with --engine openvino: f32 (equals keras), bf16, or int8 (calibrated on the run's "
                             "training photos); see the README for the speed and accuracy of each")

