"""``fashion-hier demo``: a synthetic catalogue, a small model trained on it, its test-split accuracy beside chance."""
from __future__ import annotations

import argparse
import sys

from fashion_hier import cli_args, demo
from fashion_hier.data.synthetic import ARTICLES


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier demo [--out DIR] [--n N] [--epochs E] [--seed S] [--overwrite]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier demo", description=demo.__doc__.splitlines()[0])
    parser.add_argument("--out", type=cli_args.output_directory, default="fashion_hier_demo",  # a string: checked too
                        help="folder for the catalogue and the run (default: ./fashion_hier_demo)")
    parser.add_argument("--n", type=cli_args.int_at_least(len(ARTICLES)), default=demo.DEFAULT_PRODUCTS,
                        help=f"products in the synthetic catalogue, one per subcategory at least (default {demo.DEFAULT_PRODUCTS})")
    parser.add_argument("--epochs", type=cli_args.positive_int, default=demo.DEFAULT_EPOCHS,
                        help=f"training epochs (default {demo.DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=cli_args.non_negative_int, default=0, help="seed of the catalogue and the split")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of --out")
    args = parser.parse_args(argv)
    try:
        report = demo.run_demo(args.out, n=args.n, epochs=args.epochs, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as error:
        print(f"fashion-hier demo: {error}", file=sys.stderr)
        return 2
    run_dir = args.out / demo.DEMO_RUN_NAME
    print(demo.summary_table(report, demo.chance_levels(run_dir)))
    print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
