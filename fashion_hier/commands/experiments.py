"""``fashion-hier experiments`` (also ``python -m experiments.run``): train and evaluate several configs, print
their comparison table."""
from __future__ import annotations

import argparse
import sys

from fashion_hier import cli_args, experiments
from fashion_hier.config import ConfigError, add_override_argument
from fashion_hier.data.synthetic import ARTICLES


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``python -m experiments.run CONFIG... [--data DIR | --synthetic N] [--set k=v ...] [--out DIR]``."""
    parser = parser or argparse.ArgumentParser(prog="python -m experiments.run",
                                               description=experiments.__doc__.splitlines()[0])
    config_file = cli_args.as_text(cli_args.existing_file("a YAML file of a TrainConfig"))
    parser.add_argument("configs", nargs="+", type=config_file, help="YAML files of TrainConfig (e.g. experiments/configs/*.yaml)")
    source = parser.add_mutually_exclusive_group()
    catalogue_folder = cli_args.as_text(cli_args.existing_directory("a catalogue folder with styles.csv and images/"))
    source.add_argument("--data", type=catalogue_folder,
                        help="catalogue folder with styles.csv and images/ (overrides the configs' data paths)")
    # make_synthetic_catalog's smallest catalogue (one product per subcategory) and image size
    source.add_argument("--synthetic", type=cli_args.int_at_least(len(ARTICLES)), metavar="N",
                        help="generate a synthetic catalogue of N products under OUT/catalog")
    parser.add_argument("--synthetic-image-size", type=cli_args.int_at_least(16), default=64,
                        help="pixel size of synthetic images (default 64)")
    add_override_argument(parser)
    parser.add_argument("--out", type=cli_args.as_text(cli_args.output_directory), default="experiments/results",
                        help="results folder (default: experiments/results)")
    parser.add_argument("--overwrite", action="store_true", help="run again configs that finished earlier")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras fit verbosity (default 2)")
    args = parser.parse_args(argv)
    try:
        overrides = []
        if args.data:
            overrides = experiments.data_overrides(args.data)
        elif args.synthetic is not None:
            catalog_dir = experiments.synthetic_catalog(args.out, args.synthetic, image_size=args.synthetic_image_size)
            overrides = experiments.data_overrides(catalog_dir)
        configs = experiments.experiment_configs(args.configs, out_dir=args.out,
                                                 overrides=[*overrides, *args.overrides])
        records = experiments.run_experiments(configs, args.out, overwrite=args.overwrite, verbose=args.verbose)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"experiments: {error}", file=sys.stderr)
        return 2
    print(experiments.comparison_markdown(experiments.comparison_frame(records)))
    print(f"wrote {experiments.COMPARISON_NAME}.csv and {experiments.COMPARISON_NAME}.md to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
