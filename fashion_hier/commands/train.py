"""``fashion-hier train``: train a model from a YAML config into a run directory (resumes an interrupted run)."""
from __future__ import annotations

import argparse
import sys

from fashion_hier import cli_args
from fashion_hier.config import TrainConfig, add_override_argument


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier train --config cfg.yaml [--set key=value ...] [--overwrite] [--no-resume]``.

    A user's mistake raises; ``fashion_hier.cli`` turns it into one line and exit code 2.
    """
    parser = parser or argparse.ArgumentParser(prog="fashion-hier train", description="train a model into a run directory")
    parser.add_argument("--config", required=True, type=cli_args.as_text(cli_args.existing_file("a YAML file of a TrainConfig")),
                        help="YAML file of a TrainConfig")
    add_override_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run of the same name")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="refuse to continue an interrupted run (use with --overwrite to start again)")
    args = parser.parse_args(argv)
    config = TrainConfig.from_yaml(args.config).with_overrides(args.overrides)
    from fashion_hier.train import train  # TensorFlow: only once the arguments and the config are known good

    train(config, overwrite=args.overwrite, resume=args.resume)
    return 0


if __name__ == "__main__":
    from fashion_hier.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
