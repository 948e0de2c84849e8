"""``fashion-hier similar``: the nearest catalogue images of query images, printed, as CSV, or as pictures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_hier import cli_args
from fashion_hier.atomic import atomic_path
from fashion_hier.search import load_index
from fashion_hier.search.plot import plot_neighbours


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """``fashion-hier similar --index INDEX IMAGE [IMAGE ...] -k 10 [--out CSV] [--plot DIR]``."""
    parser = parser or argparse.ArgumentParser(prog="fashion-hier similar", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=cli_args.as_text(cli_args.existing_file("a query image file")),
                        help="query image files")
    parser.add_argument("--index", required=True,
                        type=cli_args.existing_directory("an index folder written by 'fashion-hier index'"),
                        help="index directory written by fashion-hier index")
    parser.add_argument("--run", type=cli_args.run_or_model,
                        help="run to embed the queries (default: the one recorded in the index)")
    parser.add_argument("-k", type=cli_args.positive_int, default=10, help="neighbours per query")
    parser.add_argument("--out", type=cli_args.output_file, help="write the neighbours as CSV here instead of printing them")
    parser.add_argument("--plot", type=cli_args.output_directory,
                        help="folder for one PNG per query: the query beside its neighbours")
    args = parser.parse_args(argv)
    try:
        index = load_index(args.index, run=args.run)
        results = index.search(args.images, k=args.k)
    except (ValueError, FileNotFoundError) as error:
        print(f"fashion-hier similar: {error}", file=sys.stderr)
        return 2
    missing = sorted(set(args.images) - set(results["query"]))
    for path in missing:
        print(f"skipped unreadable query image {path}", file=sys.stderr)
    if args.out:
        with atomic_path(args.out) as target:
            results.to_csv(target, index=False)
        print(f"wrote {len(results)} neighbours of {results['query'].nunique()} images to {args.out}")
    else:
        print(results.to_string(index=False))
    if args.plot:
        for number, (query, neighbours) in enumerate(results.groupby("query", sort=False)):
            written = plot_neighbours(query, neighbours, args.plot / f"{number:03d}_{Path(query).stem}.png")
            print(f"wrote {written}")
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
